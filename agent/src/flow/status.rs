//! `status`: what each slot group holds, what boots, why the last attempt
//! failed, and what the running kernel lets a kexec do — as one typed value,
//! [`Status`], which `status --json` serialises and the CLI renders for
//! people. Read-only and lock-free, so it works while an install runs; it
//! never writes (a missing file env is not created).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::bootloader::Bootloader;
use crate::config::Settings;
use crate::error::OneLine;
use crate::slots::SlotBackend;
use crate::state::{read_state, BadRelease, InstallProgress, Trial, STATE_FILE};
use crate::trial::kexec::kernel::KernelFacts;

/// The device's status (`updater status --json`: these keys, in this
/// shape, since round 1).
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// The booted group, when it can be told.
    pub booted: Option<String>,
    /// Why the booted group cannot be told.
    pub booted_error: Option<String>,
    /// The bootloader's default.
    pub primary: Option<String>,
    /// Each group, by name.
    pub groups: BTreeMap<String, Group>,
    /// The anti-rollback floor (none before the first state).
    pub highest_security_version: Option<u64>,
    /// The install in progress or interrupted.
    pub install: Option<InstallProgress>,
    /// The pending trial.
    pub trial: Option<Trial>,
    /// Releases that failed on this device.
    pub bad_releases: Vec<BadRelease>,
    /// Per channel name, the newest `issued` acted on.
    pub channels_issued: BTreeMap<String, DateTime<Utc>>,
    /// Reports waiting in the outbox (none when it cannot be read).
    pub reports_pending: Option<usize>,
    /// What the last completed install cost.
    pub last_install: Option<LastInstall>,
    /// What the running kernel lets a kexec do.
    pub kernel: KernelFacts,
    /// The root of trust (none: the keyring has no root role).
    pub root: Option<RootStatus>,
    /// The state file.
    pub state_file: PathBuf,
}

/// One group in [`Status`].
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    /// `empty`, `installing`, `installed`, `trial`, `good` or `bad`.
    pub status: &'static str,
    /// The version of the release it holds.
    pub version: Option<String>,
    /// The digest of the release it holds.
    pub digest: Option<String>,
    /// The last failure and its reason.
    pub last_error: Option<String>,
    /// When its entry last changed (RFC 3339).
    pub updated: Option<String>,
    /// Whether the bootloader may boot it (none: the env cannot be read).
    pub bootable: Option<bool>,
    /// Whether it is the bootloader's default.
    pub primary: bool,
    /// Whether it is booted.
    pub booted: bool,
}

/// What the last completed install fetched and reused, as it recorded it
/// (`STATE_DIR/last-install.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LastInstall {
    /// The group written.
    pub group: String,
    /// The release version.
    pub version: String,
    /// The release digest.
    pub digest: String,
    /// When it finished (RFC 3339).
    pub finished: String,
    /// Bytes received.
    pub bytes_fetched: u64,
    /// Bytes not fetched (in place, or from the booted slot).
    pub bytes_reused: u64,
    /// Of those, in place.
    #[serde(default)]
    pub bytes_in_place: u64,
    /// Of those, from the booted slot.
    #[serde(default)]
    pub bytes_from_booted: u64,
    /// What the plan said it would fetch.
    #[serde(default)]
    pub planned_bytes: u64,
    /// Requests made.
    pub requests: u64,
    /// Whether it continued an interrupted install.
    pub resumed: bool,
}

/// The root of trust in [`Status`].
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum RootStatus {
    /// The root trusted now.
    Trusted {
        /// Its version.
        version: u64,
        /// When it expires (RFC 3339).
        expires: String,
        /// `keyring` (the image's root) or `state` (a link of the persisted
        /// chain, verified from it).
        from: &'static str,
        /// Its limit on one release's security_version step.
        max_security_step: Option<u64>,
        /// The root version whose floor reset waits for the next install.
        reset_pending: Option<u64>,
    },
    /// The root cannot be used (the chain does not verify, ...).
    Unreadable {
        /// Why, with the way back.
        error: String,
    },
}

/// `updater status`, with the configured backends.
pub fn status(settings: &Settings) -> Result<Status> {
    let slots = crate::slots::open(settings)?;
    let boot = crate::bootloader::open(settings).ok();
    status_with(settings, slots.as_ref(), boot.as_deref())
}

/// `updater status`, asking the given slot backend and bootloader (none:
/// the env cannot be read, which status reports rather than fails on).
pub fn status_with(
    settings: &Settings,
    slots: &dyn SlotBackend,
    boot: Option<&dyn Bootloader>,
) -> Result<Status> {
    let booted = match boot {
        Some(b) => crate::session::booted_of(settings, slots, Some(b)),
        None => crate::session::read_cmdline(settings).and_then(|c| slots.booted(&c)),
    }
    .map_err(|e| OneLine(&e).to_string());
    let state = read_state(&settings.state_dir.join(STATE_FILE))?;
    let primary = boot.and_then(|b| b.primary().ok().flatten());
    let mut groups = BTreeMap::new();
    for name in slots.groups() {
        let gs = state
            .as_ref()
            .map(|s| s.group(&name).clone())
            .unwrap_or_default();
        let group = Group {
            status: gs.status().name(),
            version: gs.version().map(str::to_string),
            digest: gs.digest().map(str::to_string),
            last_error: gs.last_error().map(str::to_string),
            updated: gs.updated().map(|t| t.to_rfc3339()),
            bootable: boot.and_then(|b| b.bootable(&name).ok()),
            primary: primary.as_deref() == Some(name.as_str()),
            booted: booted.as_deref().ok() == Some(name.as_str()),
        };
        groups.insert(name, group);
    }
    Ok(Status {
        booted: booted.as_ref().ok().cloned(),
        booted_error: booted.err(),
        primary,
        groups,
        highest_security_version: state.as_ref().map(|s| s.highest_security_version()),
        install: state.as_ref().and_then(|s| s.install().cloned()),
        trial: state.as_ref().and_then(|s| s.trial().cloned()),
        bad_releases: state
            .as_ref()
            .map(|s| s.bad_releases().to_vec())
            .unwrap_or_default(),
        channels_issued: state
            .as_ref()
            .map(|s| s.channels_issued().clone())
            .unwrap_or_default(),
        reports_pending: crate::report::Outbox::new(&settings.state_dir)
            .pending()
            .map(|p| p.len())
            .ok(),
        last_install: last_install(settings),
        kernel: crate::trial::kexec::kernel::facts(&settings.kexec.sys_root),
        root: root(settings),
        state_file: settings.state_dir.join(STATE_FILE),
    })
}

/// What the last completed install recorded (None before the first, or
/// when the record cannot be read).
fn last_install(settings: &Settings) -> Option<LastInstall> {
    let path = crate::state::last_install(&settings.state_dir);
    // Bounded: the agent writes a few hundred bytes.
    let bytes = std::fs::read(&path).ok().filter(|b| b.len() < 64 * 1024)?;
    serde_json::from_slice(&bytes).ok()
}

/// The root trusted now, where it came from, and the reset waiting.
fn root(settings: &Settings) -> Option<RootStatus> {
    match crate::trust::current(settings) {
        Ok(Some((r, from))) => Some(RootStatus::Trusted {
            version: r.version(),
            expires: r.root.expires.to_rfc3339(),
            from,
            max_security_step: r.root.max_security_step,
            reset_pending: crate::trust::read_trust_state(&settings.state_dir)
                .ok()
                .and_then(|t| t.pending)
                .map(|p| p.root),
        }),
        Ok(None) => None,
        Err(e) => Some(RootStatus::Unreadable {
            error: format!("{e:#}"),
        }),
    }
}
