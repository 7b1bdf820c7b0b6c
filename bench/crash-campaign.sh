#!/usr/bin/env bash
# The randomized crash campaign, run long (docs/security.md, "Crash
# consistency"): random commands valid in the device's state on a
# file-backed device, each killed with SIGKILL (its whole process group)
# after a random delay or left to finish, the boot script emulated and
# `updater health` run as the boot unit would, every invariant checked after
# every step. The test suite runs it for 40 s with one seed; this runs it
# SECS seconds per seed (default 600) for each of SEEDS (default 1,2,3).
# Usage: bench/crash-campaign.sh   Output: one line per seed.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SECS:-600}
SEEDS=${SEEDS:-1,2,3}
UPDATER_CAMPAIGN_SECS=$SECS UPDATER_CAMPAIGN_SEEDS=$SEEDS \
  cargo test -q -p updater --test cli crash::a_randomized_crash_campaign_keeps_every_invariant \
  -- --exact --nocapture 2>&1 | grep -E '^campaign seed|panicked|test result'
