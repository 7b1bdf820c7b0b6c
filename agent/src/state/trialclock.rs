//! When a trial started, in the time of the boot that recorded it: the
//! trial's deadline is measured on `CLOCK_BOOTTIME` (`util::boottime`), not
//! on the wall clock, so that a clock that jumps after boot (a first NTP
//! sync on a board without a battery-backed clock, a hand-set date) cannot
//! fail a healthy trial, nor keep an overdue one alive.
//!
//! Kept in `trial-clock.json` beside `state.json` (which older agents read,
//! and which therefore never gains a field). A trial recorded by an older
//! agent has none, and its deadline is the wall-clock one in `state.json`.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::util::boottime;
use crate::util::fs::write_atomic;

/// The file in the state folder.
pub const TRIAL_CLOCK_FILE: &str = "trial-clock.json";

/// The boot-relative record of a trial.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrialClock {
    /// The group tried.
    pub group: String,
    /// The trial's wall-clock start, as in `state.json` (ties the two).
    pub started: DateTime<Utc>,
    /// The id of the boot that recorded the trial.
    pub boot_id: Option<String>,
    /// `CLOCK_BOOTTIME` when it was recorded, in milliseconds.
    pub boottime_ms: u64,
    /// How long the trial may take to confirm, in seconds.
    pub deadline_secs: u64,
    /// The trial is a cold-boot trial: the slot passed its checks in a
    /// kexec boot and must now confirm its first boot through firmware and
    /// bootloader. (Written only when true: an older agent that cannot read
    /// it falls back to the wall-clock deadline, which is what it did.)
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cold_boot: bool,
}

impl TrialClock {
    /// A trial of `group` starting now, with `deadline` to confirm.
    pub fn now(group: &str, started: DateTime<Utc>, deadline: Duration) -> TrialClock {
        TrialClock {
            group: group.to_string(),
            started,
            boot_id: boottime::boot_id(),
            boottime_ms: boottime::since_boot().as_millis() as u64,
            deadline_secs: deadline.as_secs(),
            cold_boot: false,
        }
    }

    /// A cold-boot trial of `group`, recorded in the kexec boot whose checks
    /// passed: its deadline runs from the start of the next boot.
    pub fn cold_boot(group: &str, started: DateTime<Utc>, deadline: Duration) -> TrialClock {
        TrialClock {
            cold_boot: true,
            ..TrialClock::now(group, started, deadline)
        }
    }

    /// How long the trial has been running, as far as this boot can tell:
    /// in the boot that recorded it, the boot time since the record; in a
    /// later boot (the trial boot itself), the time since that boot started
    /// — the record was made just before the restart that began it.
    pub fn elapsed(&self) -> Duration {
        let now = boottime::since_boot();
        match (&self.boot_id, boottime::boot_id()) {
            (Some(then), Some(now_id)) if *then == now_id => {
                now.saturating_sub(Duration::from_millis(self.boottime_ms))
            }
            _ => now,
        }
    }

    /// Whether the trial's deadline has passed.
    pub fn overdue(&self) -> bool {
        self.elapsed() > Duration::from_secs(self.deadline_secs)
    }

    /// Write the record durably.
    pub fn save(&self, state_dir: &Path) -> Result<()> {
        let mut bytes = serde_json::to_vec_pretty(self).context("encoding the trial clock")?;
        bytes.push(b'\n');
        write_atomic(&state_dir.join(TRIAL_CLOCK_FILE), &bytes, 0o644)
    }

    /// The record of the trial of `group` that started at `started`, if this
    /// agent wrote one (a record of another trial is not this one's).
    pub fn load(state_dir: &Path, group: &str, started: DateTime<Utc>) -> Option<TrialClock> {
        let bytes = std::fs::read(state_dir.join(TRIAL_CLOCK_FILE)).ok()?;
        let c: TrialClock = serde_json::from_slice(&bytes).ok()?;
        (c.group == group && c.started == started).then_some(c)
    }
}
