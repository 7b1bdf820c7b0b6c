//! `[trial]` and `[health]`: trial boots and the checks that confirm them.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use serde::Deserialize;

use super::Origin;

/// Default trial deadline.
pub const DEFAULT_TRIAL_DEADLINE_SECS: u64 = 600;
/// Default time limit of one health check.
pub const DEFAULT_CHECK_TIMEOUT_SECS: u64 = 60;
/// Default time limit of all health checks.
pub const DEFAULT_HEALTH_DEADLINE_SECS: u64 = 300;

/// Trial boots.
#[derive(Debug, Clone)]
pub struct TrialSettings {
    /// How long a trial may take to confirm (recorded as its deadline).
    pub deadline: Duration,
    /// Command run to restart instead of the built-in reboot, as a list of
    /// strings (program and arguments); the restart kind, `reboot` or
    /// `kexec`, is appended. For tests and special boards.
    pub reboot_command: Option<Vec<String>>,
    /// After a kexec trial passes its checks, keep the old primary and make
    /// the first boot of the new slot through firmware and bootloader a
    /// one-shot trial of its own; the new slot becomes the primary only
    /// when that boot confirms (docs/boot-control.md, "Cold-boot guard").
    pub guard_cold_boot: bool,
}

/// Health checks run by `updater health` during a trial.
#[derive(Debug, Clone)]
pub struct HealthSettings {
    /// Folder of executable checks, run in name order.
    pub dir: PathBuf,
    /// Time limit of each check.
    pub check_timeout: Duration,
    /// Time limit of all checks together.
    pub deadline: Duration,
    /// systemd units that must be active.
    pub required_units: Vec<String>,
    /// Reboot back to the fallback when a check fails.
    pub reboot_on_failure: bool,
}

/// `[trial]` as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTrial {
    deadline_secs: Option<u64>,
    reboot_command: Option<Vec<String>>,
    guard_cold_boot: Option<bool>,
}

/// `[health]` as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHealth {
    dir: Option<PathBuf>,
    check_timeout_secs: Option<u64>,
    deadline_secs: Option<u64>,
    required_units: Option<Vec<String>>,
    reboot_on_failure: Option<bool>,
}

pub(super) fn validate_trial(t: RawTrial, origin: &Origin) -> Result<TrialSettings> {
    if t.reboot_command.as_ref().is_some_and(|c| c.is_empty()) {
        return Err(origin.invalid(
            "trial.reboot_command",
            " is empty; give the program and its arguments as a list of strings, e.g. [\"/usr/local/bin/board-reset\"]",
        ));
    }
    Ok(TrialSettings {
        deadline: origin.positive_secs(
            t.deadline_secs,
            DEFAULT_TRIAL_DEADLINE_SECS,
            "trial.deadline_secs",
        )?,
        reboot_command: t.reboot_command,
        guard_cold_boot: t.guard_cold_boot.unwrap_or(true),
    })
}

pub(super) fn validate_health(h: RawHealth, origin: &Origin) -> Result<HealthSettings> {
    Ok(HealthSettings {
        dir: h
            .dir
            .unwrap_or_else(|| PathBuf::from("/etc/updater/health.d")),
        check_timeout: origin.positive_secs(
            h.check_timeout_secs,
            DEFAULT_CHECK_TIMEOUT_SECS,
            "health.check_timeout_secs",
        )?,
        deadline: origin.positive_secs(
            h.deadline_secs,
            DEFAULT_HEALTH_DEADLINE_SECS,
            "health.deadline_secs",
        )?,
        required_units: h.required_units.unwrap_or_default(),
        reboot_on_failure: h.reboot_on_failure.unwrap_or(true),
    })
}
