#!/usr/bin/env bash
# The size of the device binary (/usr/bin/updater of the Debian package),
# built the way the package builds it: `cargo build --release -p updater`
# (profile.release in Cargo.toml: opt-level "s" with sha2 and zstd at 3,
# fat LTO, one codegen unit, panic = abort, symbols stripped), on x86_64.
#
#   bench/size.sh [--reference COMMIT]
#
# With --reference, the same file of COMMIT (default a6538da, round 1) is
# built in a temporary worktree and stripped, side by side, in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
ref=""
if [ "${1:-}" = "--reference" ]; then ref=${2:-a6538da}; fi
limit=$((6 * 1024 * 1024))
cargo build --locked --release -p updater --quiet
size=$(stat -c %s target/release/updater)
strip -o target/updater.stripped target/release/updater
stripped=$(stat -c %s target/updater.stripped)
printf '%-28s %10s %10s\n' "binary" "bytes" "MiB"
printf '%-28s %10d %10.2f\n' "updater (this tree)" "$stripped" "$(echo "$stripped/1048576" | bc -l)"
if [ -n "$ref" ]; then
  wt=$(mktemp -d)
  trap 'git worktree remove --force "$wt" >/dev/null 2>&1 || true' EXIT
  git worktree add --detach "$wt" "$ref" >/dev/null 2>&1
  (cd "$wt" && cargo build --release --quiet -p updater --target-dir "$wt/target")
  strip -o "$wt/updater.stripped" "$wt/target/release/updater"
  r=$(stat -c %s "$wt/updater.stripped")
  printf '%-28s %10d %10.2f\n' "updater ($ref)" "$r" "$(echo "$r/1048576" | bc -l)"
fi
if [ "$stripped" -le "$limit" ]; then
  echo "within the 6 MiB target ($limit bytes); as built: $size bytes"
else
  echo "OVER the 6 MiB target ($limit bytes) by $((stripped - limit)) bytes"
  exit 1
fi
