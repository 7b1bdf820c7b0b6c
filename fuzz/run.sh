#!/usr/bin/env bash
# Run every fuzz target for SECONDS each (default 3), after seeding the
# corpora: ./test.sh runs this so that the targets keep building and a
# quick pass over the seeds still finds nothing. Long runs (figures in
# docs/security.md): fuzz/run.sh 1800, or one target with
#   cargo +nightly fuzz run TARGET -- -runs=10000000
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-3}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --version 0.13.2
bash seed.sh
cargo +nightly fuzz build
mkdir -p logs
for t in $(cargo +nightly fuzz list); do
  if cargo +nightly fuzz run "$t" corpus/"$t" -- -max_total_time="$secs" -print_final_stats=1 >"logs/$t.log" 2>&1; then
    echo "ok: $t: $(grep -m1 '^stat::number_of_executed_units' "logs/$t.log" | awk '{print $2}') executions in ${secs}s"
  else
    grep -E "ERROR|panicked|SUMMARY" "logs/$t.log" | head -5
    echo "FAIL: fuzz target $t found a crash: fuzz/logs/$t.log, the input in fuzz/artifacts/$t/"
    exit 1
  fi
done
