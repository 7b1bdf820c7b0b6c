#!/usr/bin/env bash
# Delta benchmark: bytes fetched, requests, device-side wall and CPU seconds
# and peak RSS for updater, casync, zchunk and (computed) RAUC's adaptive
# block-hash-index, side by side on the same images (bench/delta.py has
# the method). About 20 minutes; installs casync, zchunk, e2fsprogs and GNU
# time when missing; nginx is unpacked, never installed.
# Usage: bench/delta.sh [WORKDIR] [CASES]   (default /tmp/updater-delta abcde)
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v casync >/dev/null || need+=(casync)
command -v zck >/dev/null || need+=(zchunk)
command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
[ -x /usr/bin/time ] || need+=(time)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
cargo build --release --quiet -p updater-vendor
cargo build --release --quiet -p updater   # the device build, last
exec python3 bench/delta.py --work "${1:-/tmp/updater-delta}" --cases "${2:-abcde}"
