#!/usr/bin/env bash
# Run the time-sensitive tests with the clock moved by OFFSET (libfaketime,
# e.g. +730d): the unit tests of every crate and the CLI tests of the areas
# that deal in time (fleet channels and windows, expiry, TLS certificates,
# release and schema vectors). Run by ./test.sh after `cargo test`; the test
# binaries are already built, and are only run here.
set -euo pipefail
cd "$(dirname "$0")/.."
offset=${1:-+730d}
command -v faketime >/dev/null || { echo "faketime is missing: apt-get install faketime"; exit 1; }
# The executables of the test targets cargo already built (no rebuild: the
# sources did not change since `cargo test`).
mapfile -t bins < <(cargo test --locked --workspace --no-run --message-format=json 2>/dev/null |
  python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(m["target"]["kind"][0], m["target"]["name"], m["manifest_path"], m["executable"])
')
echo "clock under faketime: $(faketime -f "$offset" date -u +%FT%TZ) (real: $(date -u +%FT%TZ))"
ran=0
for line in "${bins[@]}"; do
  read -r kind name manifest exe <<<"$line"
  dir=$(dirname "$manifest")
  case "$kind:$name" in
    test:cli) filter=(fleet:: tls:: rejects:: schema:: release:: hardening::) ;;
    lib:*|bin:*) filter=() ;;
    *) continue ;;
  esac
  echo "-- $name ($kind) ${filter[*]:-all}"
  (cd "$dir" && faketime -f "$offset" "$exe" -q "${filter[@]}")
  ran=$((ran + 1))
done
[ "$ran" -gt 0 ] || { echo "FAIL: no test binaries found"; exit 1; }
