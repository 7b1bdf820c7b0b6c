#!/usr/bin/env bash
# Install benchmark: `updater apply` of a 512 MiB random image and a 1 GiB
# compressible image from a loopback HTTP server into a file slot, measured
# side by side, in the same run, on the same data, with:
#   - dd bs=4M conv=fsync of the raw image (the local write limit);
#   - curl -s URL | zstd -dc | tee SLOT | sha256sum (+ sync SLOT), the naive
#     streaming pipeline against the same server;
#   - RAUC installing the same image as a plain bundle into a file slot
#     (bench/rauc.sh).
# Each figure is wall seconds, CPU seconds (user+sys) and peak RSS, from GNU
# time. Usage: bench/install.sh [WORKDIR]   (default /tmp/updater-bench)
# Output: a markdown table on stdout (copy it into docs/benchmarks.md).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
WORK=${1:-/tmp/updater-bench}
RUNS=${RUNS:-2}
mkdir -p "$WORK"

need=()
for t in curl zstd /usr/bin/time; do command -v "$t" >/dev/null || need+=("$(basename "$t")"); done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi

cargo build --release --quiet -p updater-vendor
cargo build --release --quiet -p updater   # the device build, last (as the package builds it)
U=$REPO/target/release/updater
V=$REPO/target/release/updater-vendor

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# measure NAME CMD...: runs CMD under GNU time, prints "wall cpu rss_kib".
measure() {
  local t=$WORK/time.out
  /usr/bin/time -o "$t" -f '%e %U %S %M' "$@" >/dev/null 2>"$WORK/measure.err" || {
    echo "measure: $* failed: $(tail -3 "$WORK/measure.err")" >&2; return 1; }
  awk '{printf "%.2f %.2f %d\n", $1, $2+$3, $4}' "$t"
}

make_images() {
  if [ ! -f "$WORK/random.img" ]; then
    head -c 512M /dev/urandom >"$WORK/random.img"
  fi
  if [ ! -f "$WORK/fs.img" ]; then
    # A compressible "filesystem" image: a tar stream of the system's /usr
    # (binaries, libraries, text), cut to 1 GiB.
    (tar -cf - -C / usr 2>/dev/null || true) | head -c 1G >"$WORK/fs.img"
  fi
}

keys() {
  [ -f "$WORK/keys/m.key" ] && return
  "$V" keygen --out "$WORK/keys" --name m >/dev/null
  "$V" keygen --out "$WORK/keys" --name k >/dev/null
  "$V" keyring init "$WORK/ring" --manifest-key "$WORK/keys/m.pub" --kernel-key "$WORK/keys/k.pub" >/dev/null
}

row() { printf '| %s | %s | %s | %s | %s |\n' "$@"; }

bench_image() {
  local name=$1 img=$2 port=$3
  local rel=$WORK/rel-$name dev=$WORK/dev-$name rel1=$WORK/rel1-$name
  rm -rf "$rel" "$dev" "$rel1"
  "$V" release create --out "$rel" --key "$WORK/keys/m.key" --product bench --version 1.0.0 \
    --security-version 1 --compatible bench --image "rootfs=$img" >/dev/null
  # The round-1 format, for the CPU per byte before and after.
  "$V" release create --out "$rel1" --key "$WORK/keys/m.key" --product bench --version 1.0.0 \
    --security-version 1 --compatible bench --image "rootfs=$img" --schema 1 >/dev/null
  mkdir -p "$dev"
  echo "updater.slot=A" >"$dev/cmdline"
  cat >"$dev/config.toml" <<CFG
compatible = "bench"
state_dir = "$dev/state"
keyring = "$WORK/ring"
cmdline_path = "$dev/cmdline"
[bootloader]
backend = "file"
path = "$dev/boot.env"
[slots.A.targets]
rootfs = "$dev/A.img"
[slots.B.targets]
rootfs = "$dev/B.img"
CFG
  "$V" serve "$rel" --listen "127.0.0.1:$port" >/dev/null &
  PIDS+=($!)
  "$V" serve "$rel1" --listen "127.0.0.1:$((port + 100))" >/dev/null &
  PIDS+=($!)
  sleep 0.5
  # The pipeline reads the schema-1 file: one zstd stream. A schema-2 image
  # file stores incompressible chunks raw, which zstd -dc cannot read.
  local url="http://127.0.0.1:$port/manifest.json" zurl="http://127.0.0.1:$((port + 100))/rootfs.img.zst"
  local url1="http://127.0.0.1:$((port + 100))/manifest.json"
  local size csize
  size=$(stat -c %s "$img"); csize=$(stat -c %s "$rel/rootfs.img.zst")
  echo "### $name: $((size >> 20)) MiB image, $((csize >> 20)) MiB compressed" >&2

  local r_upd=() r_upd1=() r_dd=() r_pipe=()
  for i in $(seq "$RUNS"); do
    rm -rf "$dev/state" "$dev/B.img"; printf 'ORDER=A B\nA_OK=1\nB_OK=0\nTRY=\n' >"$dev/boot.env"; sync
    r_upd+=("$(measure "$U" --config "$dev/config.toml" apply "$url")")
    cmp -s "$dev/B.img" "$img" || { echo "updater wrote a wrong slot" >&2; exit 1; }
    rm -rf "$dev/state" "$dev/B.img"; printf 'ORDER=A B\nA_OK=1\nB_OK=0\nTRY=\n' >"$dev/boot.env"; sync
    r_upd1+=("$(measure "$U" --config "$dev/config.toml" apply "$url1")")
    cmp -s "$dev/B.img" "$img" || { echo "updater (schema 1) wrote a wrong slot" >&2; exit 1; }
    rm -f "$dev/dd.img"; sync
    r_dd+=("$(measure dd if="$img" of="$dev/dd.img" bs=4M conv=fsync)")
    rm -f "$dev/pipe.img"; sync
    r_pipe+=("$(measure bash -c "curl -s '$zurl' | zstd -dc | tee '$dev/pipe.img' | sha256sum && sync '$dev/pipe.img'")")
    cmp -s "$dev/pipe.img" "$img" || { echo "pipeline wrote a wrong file" >&2; exit 1; }
  done
  local rauc
  rauc=$("$REPO/bench/rauc.sh" "$img" "$WORK/rauc-$name" | grep '^RAUC_RESULT' | tail -1)
  local rw rc rr
  rw=$(sed -E 's/.*wall_s=([0-9.]+).*/\1/' <<<"$rauc")
  rc=$(sed -E 's/.*cpu_s=([0-9.]+).*/\1/' <<<"$rauc")
  rr=$(sed -E 's/.*peak_rss_kib=([0-9]+).*/\1/' <<<"$rauc")

  # Best of the runs (least disturbed by the other core's background work).
  best() { printf '%s\n' "$@" | sort -n -k1 | head -1; }
  local u u1 d p
  u=$(best "${r_upd[@]}"); u1=$(best "${r_upd1[@]}"); d=$(best "${r_dd[@]}"); p=$(best "${r_pipe[@]}")
  read -r uw uc ur <<<"$u"; read -r u1w u1c u1r <<<"$u1"; read -r dw dc dr <<<"$d"; read -r pw pc pr <<<"$p"
  mib=$((size >> 20))
  gib() { awk "BEGIN{printf \"%.2f\", $1 * 1024 / $mib}"; }
  echo
  echo "#### $name ($mib MiB, $((csize >> 20)) MiB as served)"
  echo
  row "tool" "wall s (MiB/s)" "CPU s (per GiB)" "peak RSS MiB" "updater speed relative to it"
  row "---" "---" "---" "---" "---"
  row "updater apply" "$uw ($(awk "BEGIN{printf \"%.0f\", $mib/$uw}"))" "$uc ($(gib "$uc"))" "$(awk "BEGIN{printf \"%.1f\", $ur/1024}")" "1.00"
  row "updater apply, schema-1 release" "$u1w ($(awk "BEGIN{printf \"%.0f\", $mib/$u1w}"))" "$u1c ($(gib "$u1c"))" "$(awk "BEGIN{printf \"%.1f\", $u1r/1024}")" "$(awk "BEGIN{printf \"%.2f\", $u1w/$uw}")"
  row "dd bs=4M conv=fsync" "$dw ($(awk "BEGIN{printf \"%.0f\", $mib/$dw}"))" "$dc ($(gib "$dc"))" "$(awk "BEGIN{printf \"%.1f\", $dr/1024}")" "$(awk "BEGIN{printf \"%.2f\", $dw/$uw}")"
  row "curl \\| zstd -dc \\| tee \\| sha256sum" "$pw ($(awk "BEGIN{printf \"%.0f\", $mib/$pw}"))" "$pc ($(gib "$pc"))" "$(awk "BEGIN{printf \"%.1f\", $pr/1024}") (largest process)" "$(awk "BEGIN{printf \"%.2f\", $pw/$uw}")"
  row "RAUC plain bundle" "$rw ($(awk "BEGIN{printf \"%.0f\", $mib/$rw}"))" "$rc ($(gib "$rc"))" "$(awk "BEGIN{printf \"%.1f\", $rr/1024}")" "$(awk "BEGIN{printf \"%.2f\", $rw/$uw}")"
}

make_images
keys
echo "# updater install benchmark, $(date -u +%F), $(nproc) cores, $(uname -r)"
echo "(best of $RUNS runs for updater, dd and the pipeline; one RAUC run)"
bench_image random "$WORK/random.img" 18631
bench_image fs "$WORK/fs.img" 18632
