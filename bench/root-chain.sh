#!/usr/bin/env bash
# Root chain benchmark: what verifying a persisted chain of root versions
# from the image's root costs a command. A device whose state folder holds
# root versions 2..N+1 (each signed by 2 of 3 root keys, as a vendor with
# offline key holders signs them) runs `updater status --json`, which loads
# and verifies the whole chain once, side by side in the same run with the
# same device holding no chain (the reference: the factory root alone).
# Also times `updater root refresh` (fetch N versions from a folder, verify,
# persist). Usage: bench/root-chain.sh [WORKDIR] (N=100 by default; RUNS=30).
# Output: a markdown table on stdout (docs/benchmarks.md, "Root chain").
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
WORK=${1:-/tmp/updater-bench-root}
N=${N:-100}
RUNS=${RUNS:-30}
rm -rf "$WORK"; mkdir -p "$WORK"
cargo build --release --quiet -p updater-vendor
cargo build --release --quiet -p updater
U=$REPO/target/release/updater
V=$REPO/target/release/updater-vendor
cd "$WORK"
for k in r1 r2 r3 m1 k1; do "$V" keygen --out keys --name $k >/dev/null; done
"$V" keyring init ring --manifest-key keys/m1.pub --kernel-key keys/k1.pub \
  --root-key keys/r1.pub --root-key keys/r2.pub --root-key keys/r3.pub --root-threshold 2 >/dev/null
mkdir -p chain
"$V" root init --keyring ring --out chain/1.root.json --expires 2099-01-01T00:00:00Z \
  --key keys/r1.key --key keys/r2.key >/dev/null
for ((n = 2; n <= N + 1; n++)); do
  "$V" root rotate --from chain/$((n - 1)).root.json --out chain/$n.root.json \
    --expires 2099-01-01T00:00:00Z --key keys/r1.key --key keys/r2.key >/dev/null
done
device() { # device DIR: a file-backed device trusting ring
  mkdir -p "$1/state"
  printf 'updater.slot=A\n' >"$1/cmdline"
  printf 'ORDER=A B\nA_OK=1\nB_OK=0\nTRY=\n' >"$1/boot.env"
  cat >"$1/config.toml" <<CFG
compatible = "bench"
state_dir = "$1/state"
keyring = "$WORK/ring"
cmdline_path = "$1/cmdline"
[bootloader]
backend = "file"
path = "$1/boot.env"
[slots.A.targets]
rootfs = "$1/A.img"
[slots.B.targets]
rootfs = "$1/B.img"
CFG
}
device "$WORK/with"; device "$WORK/without"
t0=$(date +%s.%N)
"$U" --config with/config.toml root refresh chain/1.root.json >/dev/null
t1=$(date +%s.%N)
v=$("$U" --config with/config.toml status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["root"]["version"])')
[ "$v" = $((N + 1)) ] || { echo "the chain did not persist: root version $v" >&2; exit 1; }
# best and median of RUNS runs of status --json, in milliseconds
timeit() {
  python3 - "$RUNS" "$@" <<'PY'
import statistics, subprocess, sys, time
runs = int(sys.argv[1]); cmd = sys.argv[2:]
ts = []
for _ in range(runs):
    t = time.perf_counter(); subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL); ts.append((time.perf_counter() - t) * 1000)
print(f"{min(ts):.1f} {statistics.median(ts):.1f}")
PY
}
read -r wb wm < <(timeit "$U" --config with/config.toml status --json)
read -r ob om < <(timeit "$U" --config without/config.toml status --json)
echo "| command | best ms | median ms |"
echo "|---|---:|---:|"
echo "| \`updater status --json\`, factory root only (reference) | $ob | $om |"
echo "| \`updater status --json\`, chain of $N versions after it | $wb | $wm |"
python3 -c "print(f'| chain verification, by difference ({$N} links, 2-of-3 signatures each) | {$wb-$ob:.1f} | {$wm-$om:.1f} |')"
python3 -c "print(f'| \`updater root refresh\` from a folder ({$N} links fetched, verified, persisted) | {($t1-$t0)*1000:.0f} | |')"
