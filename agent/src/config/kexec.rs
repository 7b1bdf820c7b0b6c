//! `[kexec]`: whether and how trials boot by kexec.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use serde::Deserialize;

use super::Origin;

/// Default watchdog timeout for a kexec trial.
pub const DEFAULT_WATCHDOG_TIMEOUT_SECS: u64 = 60;

/// Whether a device boots trials by kexec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KexecPolicy {
    /// kexec when asked; when the kernel refuses, fall back to a reboot trial.
    #[default]
    Prefer,
    /// kexec or nothing: a refusal fails the command (exit 6).
    Require,
    /// Never kexec (hardware that does not survive it): always reboot.
    Never,
}

/// What to do when the watchdog will not survive a kexec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WatchdogUnsafe {
    /// Do not kexec (prefer: reboot trial instead; require: fail).
    #[default]
    Refuse,
    /// kexec anyway, with a warning.
    Warn,
}

/// kexec trials.
#[derive(Debug, Clone)]
pub struct KexecSettings {
    /// The policy.
    pub policy: KexecPolicy,
    /// The hardware watchdog to arm before the jump.
    pub watchdog: Option<PathBuf>,
    /// Its timeout.
    pub watchdog_timeout: Duration,
    /// What to do when it will not survive the kexec.
    pub watchdog_unsafe: WatchdogUnsafe,
    /// The sysfs root (tests point it elsewhere).
    pub sys_root: PathBuf,
}

/// `[kexec]` as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Raw {
    #[serde(default)]
    policy: KexecPolicy,
    watchdog: Option<PathBuf>,
    watchdog_timeout_secs: Option<u64>,
    #[serde(default)]
    watchdog_unsafe: WatchdogUnsafe,
    sys_root: Option<PathBuf>,
}

pub(super) fn validate(k: Raw, origin: &Origin) -> Result<KexecSettings> {
    Ok(KexecSettings {
        policy: k.policy,
        watchdog: k.watchdog,
        watchdog_timeout: origin.positive_secs(
            k.watchdog_timeout_secs,
            DEFAULT_WATCHDOG_TIMEOUT_SECS,
            "kexec.watchdog_timeout_secs",
        )?,
        watchdog_unsafe: k.watchdog_unsafe,
        sys_root: k.sys_root.unwrap_or_else(|| PathBuf::from("/sys")),
    })
}
