//! `updater apply`: put a verified release into the inactive slot group.
//!
//! The order of durable steps (each one fsynced before the next starts):
//!
//! 1. fetch the manifest (size-capped) and verify it completely — nothing
//!    else is requested before this passes;
//! 2. mark the target group unbootable in the bootloader env;
//! 3. record the target `installing` (with the release digest) in the state;
//! 4. stream each image; every second or 64 MiB: fsync the slot, then
//!    checkpoint the chunks written in the state;
//! 5. fsync, check size and whole-image sha256;
//! 6. record the group `installed` in the state.
//!
//! A crash anywhere leaves the group unbootable (2 happened before any byte),
//! and a new `apply` of the same release resumes from the checkpoint.

pub mod pipeline;
pub mod progress;

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use chrono::Utc;
use serde_json::json;

use crate::config::Settings;
use crate::error::{usage, OneLine, Rejected};
use crate::fetch::{fetch_small, open_source, RetryBudget};
use crate::state::{GroupStatus, InstallProgress, State, StateStore};
use progress::Progress;
use updater_format::keys::Keyring;
use updater_format::manifest::verify::{check_chunk_table, verify, Policy, MANIFEST_SIZE_CAP};
use updater_format::Sha256Digest;

/// What `apply` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ApplyOutcome {
    /// The group written.
    pub group: String,
    /// The release version.
    pub version: String,
    /// The release digest.
    pub digest: String,
    /// Bytes received over the network (or read from the folder).
    pub downloaded_bytes: u64,
    /// Whether the install continued an interrupted one.
    pub resumed: bool,
    /// Retries after transient faults.
    pub retries: u32,
    /// What the kexec step did, with `--kexec`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kexec: Option<crate::kexec::KexecOutcome>,
}

/// Load (or create) the state, knowing the booted group.
pub fn load_state(store: &StateStore, settings: &Settings, booted: &str) -> Result<State> {
    match store.load()? {
        Some(s) => Ok(s),
        None => {
            let groups: Vec<String> = settings.slots.iter().map(|g| g.name.clone()).collect();
            let s = State::fresh(&groups, booted);
            store.save(&s)?;
            Ok(s)
        }
    }
}

/// What to do once the release is installed.
pub enum Then<'a> {
    /// Nothing: the group stays installed and unbootable.
    Stay,
    /// Start a one-shot reboot trial of the group.
    Reboot(&'a dyn crate::boot::reboot::Rebooter),
    /// Start a kexec trial of the group (or only load and unload it).
    Kexec {
        /// Loader, watchdog, rebooter.
        deps: crate::kexec::KexecDeps<'a>,
        /// Load, unload, report; change nothing.
        dry_run: bool,
    },
}

/// The verification policy for this device now.
fn device_policy(settings: &Settings, state: &State, booted: &str) -> Policy {
    Policy {
        now: Utc::now(),
        compatible: Some(settings.compatible.clone()),
        installed_version: state
            .group(booted)
            .version
            .as_deref()
            .and_then(|v| semver::Version::parse(v).ok()),
        min_security_version: state.highest_security_version,
        agent_version: Some(crate::agent_version()),
    }
}

/// Where the verified manifest of the release installed in `group` is kept,
/// so that the release can be booted later (`updater activate`, the
/// daemon's window) without fetching anything.
pub fn kept_manifest(settings: &Settings, group: &str) -> std::path::PathBuf {
    settings
        .state_dir
        .join("releases")
        .join(format!("{group}.manifest.json"))
}

/// What to do after an install, before the borrowed parts exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    /// Nothing.
    Stay,
    /// A reboot trial.
    Reboot,
    /// A kexec trial (policy decides on refusal), or a dry run of it.
    Kexec {
        /// Load, unload, report.
        dry_run: bool,
    },
}

impl How {
    /// How to boot a trial on this device: kexec unless `kexec.policy` is
    /// `never` (the policy then also decides what a refused kexec does).
    pub fn from_policy(settings: &Settings) -> How {
        match settings.kexec.policy {
            crate::config::KexecPolicy::Never => How::Reboot,
            _ => How::Kexec { dry_run: false },
        }
    }
}

/// Build the device's real rebooter, kexec loader and watchdog for `how`
/// and run `f` with the resulting [`Then`].
pub fn with_then<T>(settings: &Settings, how: How, f: impl FnOnce(Then) -> Result<T>) -> Result<T> {
    let rebooter = crate::boot::reboot::rebooter(settings.trial.reboot_command.as_ref());
    let loader = crate::kexec::loader::SyscallLoader;
    let mut dev_watchdog = settings
        .kexec
        .watchdog
        .as_ref()
        .map(|w| crate::kexec::watchdog::DevWatchdog::new(w, &settings.kexec.sys_root));
    let then = match how {
        How::Stay => Then::Stay,
        How::Reboot => Then::Reboot(rebooter.as_ref()),
        How::Kexec { dry_run } => Then::Kexec {
            deps: crate::kexec::KexecDeps {
                loader: &loader,
                watchdog: dev_watchdog
                    .as_mut()
                    .map(|w| w as &mut dyn crate::kexec::watchdog::Watchdog),
                rebooter: rebooter.as_ref(),
            },
            dry_run,
        },
    };
    f(then)
}

/// The locked state, the booted group and the inactive group to change,
/// refusing while a trial is pending (`doing` says what was refused).
fn open_inactive<'a>(
    settings: &'a Settings,
    doing: &str,
) -> Result<(
    StateStore,
    String,
    &'a crate::config::SlotGroupConfig,
    State,
)> {
    let store = StateStore::open(&settings.state_dir)?;
    let booted = crate::slots::booted_group(settings)?;
    let target = crate::slots::install_target(settings, &booted)?;
    let state = load_state(&store, settings, &booted)?;
    if let Some(t) = &state.trial {
        return Err(usage(format!(
            "a trial of slot {} is pending; let `updater health` reconcile it at boot (or `updater mark-bad {}`) before {doing}",
            t.group, t.group
        )));
    }
    Ok((store, booted, target, state))
}

/// Install the release at `source` into the inactive group, then `then`.
/// With `expect`, the release's digest must be that one (the channel pins it).
pub fn apply(
    settings: &Settings,
    source: &str,
    expect: Option<&str>,
    progress: &mut Progress,
    then: Then,
) -> Result<ApplyOutcome> {
    let (store, booted, target, mut state) = open_inactive(settings, "installing again")?;
    let keyring = Keyring::load(&settings.keyring)?;
    let mut fetcher = open_source(source, &settings.http)?;
    let mut budget = RetryBudget::new(&settings.http);

    // 1. The manifest, verified before anything else is fetched.
    let bytes = fetch_small(
        fetcher.as_mut(),
        None,
        0,
        MANIFEST_SIZE_CAP,
        "manifest",
        &mut budget,
    )?;
    let policy = device_policy(settings, &state, &booted);
    let verified = verify(&bytes, &keyring, &policy)
        .with_context(|| format!("verifying the manifest from {}", fetcher.describe()))?;
    let m = &verified.manifest;
    let digest = verified.digest.hex();
    if let Some(want) = expect.filter(|w| *w != digest) {
        return Err(Rejected::Mismatch {
            what: format!("manifest from {}", fetcher.describe()),
            reason: format!(
                "the channel pins release {want}, the server sent release {digest} ({}); the channel and the release folder disagree — re-publish the channel after uploading the release it names",
                m.version
            ),
        }
        .into());
    }
    progress.event(
        "verified",
        json!({"product": m.product, "version": m.version.to_string(), "digest": digest, "group": target.name}),
    );
    let mut targets = Vec::new();
    for img in &m.images {
        let path = target.targets.get(img.class.as_str()).ok_or_else(|| {
            usage(format!(
                "the release has an image of class {}, but slot group {} has no target for it; add slots.{}.targets.{} to the configuration",
                img.class, target.name, target.name, img.class
            ))
        })?;
        targets.push(path.clone());
    }

    // Resume only the very same release into the very same group.
    let resume = state
        .install
        .as_ref()
        .filter(|p| p.group == target.name && p.digest == digest)
        .map(|p| p.chunks_done.clone());
    let resumed = resume.as_ref().is_some_and(|c| c.values().any(|n| *n > 0));

    // 2 + 3. Unbootable everywhere, durably, before the first byte.
    let mut boot = crate::boot::open(settings)?;
    if boot.primary()?.as_deref() == Some(target.name.as_str()) {
        // Booted from one slot while the bootloader's default is the other
        // (after a rollback, before the reboot): writing the default would
        // leave it unbootable.
        return Err(usage(format!(
            "slot {} is the bootloader's default but slot {booted} is running; reboot into slot {} (or `updater rollback`) before installing",
            target.name, target.name
        )));
    }
    boot.set_bootable(&target.name, false)
        .with_context(|| format!("marking slot {} unbootable", target.name))?;
    crate::failpoint!("after-mark-unbootable");
    let chunks_done = resume.unwrap_or_default();
    state.install = Some(InstallProgress {
        group: target.name.clone(),
        digest: digest.clone(),
        version: m.version.to_string(),
        chunks_done: chunks_done.clone(),
    });
    *state.group_mut(&target.name) = crate::state::GroupState {
        status: GroupStatus::Installing,
        version: Some(m.version.to_string()),
        digest: Some(digest.clone()),
        security_version: Some(m.security_version),
        last_error: None,
        updated: Some(Utc::now()),
    };
    store.save(&state)?;
    crate::failpoint!("after-state-installing");

    // 4 + 5. The images.
    let result = (|| -> Result<()> {
        for (img, path) in m.images.iter().zip(&targets) {
            let table_bytes = fetch_small(
                fetcher.as_mut(),
                Some(img.chunks.file.as_str()),
                img.chunks.size,
                img.chunks.size,
                "chunk table",
                &mut budget,
            )?;
            let got = Sha256Digest::of(&table_bytes);
            if table_bytes.len() as u64 != img.chunks.size || got != img.chunks.sha256 {
                return Err(Rejected::Mismatch {
                    what: format!("chunk table {}", img.chunks.file),
                    reason: format!(
                        "{} bytes with sha256 {got}, the manifest pins {} bytes with sha256 {}",
                        table_bytes.len(),
                        img.chunks.size,
                        img.chunks.sha256
                    ),
                }
                .into());
            }
            let table = check_chunk_table(&table_bytes, img)?;
            let start = chunks_done
                .get(img.class.as_str())
                .copied()
                .unwrap_or(0)
                .min(table.chunks.len() as u64);
            let class = img.class.to_string();
            let mut checkpoint = |n: u64| -> Result<()> {
                if let Some(p) = state.install.as_mut() {
                    p.chunks_done.insert(class.clone(), n);
                }
                store.save(&state)
            };
            pipeline::install_image(
                &settings.install,
                fetcher.as_mut(),
                img,
                &table,
                path,
                start as usize,
                &mut budget,
                progress,
                &mut checkpoint,
            )
            .with_context(|| format!("installing {} into {}", img.class, path.display()))?;
            if let Some(p) = state.install.as_mut() {
                p.chunks_done
                    .insert(img.class.to_string(), table.chunks.len() as u64);
            }
            store.save(&state)?;
        }
        Ok(())
    })();

    if let Err(e) = result {
        // The group stays unbootable; record why, keep the checkpoint.
        let g = state.group_mut(&target.name);
        g.last_error = Some(OneLine(&e).to_string());
        g.updated = Some(Utc::now());
        if let Err(save_err) = store.save(&state) {
            tracing::error!("could not record the failure in the state: {save_err:#}");
        }
        return Err(e);
    }

    // 6. Installed (the manifest kept first, so an installed group always
    // has it).
    let kept = kept_manifest(settings, &target.name);
    std::fs::create_dir_all(crate::util::fs::parent_dir(&kept))
        .with_context(|| format!("creating {}", kept.display()))?;
    crate::util::fs::write_atomic(&kept, &bytes, 0o644)?;
    crate::failpoint!("before-state-installed");
    state.install = None;
    let g = state.group_mut(&target.name);
    g.status = GroupStatus::Installed;
    g.updated = Some(Utc::now());
    store.save(&state)?;
    let mut outcome = ApplyOutcome {
        group: target.name.clone(),
        version: m.version.to_string(),
        digest,
        downloaded_bytes: fetcher.received(),
        resumed,
        retries: budget.retried,
        kexec: None,
    };
    progress.event(
        "installed",
        serde_json::to_value(&outcome).unwrap_or_default(),
    );
    crate::failpoint!("after-state-installed");
    outcome.kexec = start_trial(
        settings,
        &store,
        &mut state,
        boot.as_mut(),
        target,
        &bytes,
        progress,
        then,
    )?;
    Ok(outcome)
}

/// Start what `then` says for the installed `target`.
#[allow(clippy::too_many_arguments)]
fn start_trial(
    settings: &Settings,
    store: &StateStore,
    state: &mut State,
    boot: &mut dyn crate::boot::Bootloader,
    target: &crate::config::SlotGroupConfig,
    bytes: &[u8],
    progress: &mut Progress,
    then: Then,
) -> Result<Option<crate::kexec::KexecOutcome>> {
    match then {
        Then::Stay => Ok(None),
        Then::Reboot(rebooter) => {
            progress.event("trial", json!({"group": target.name, "how": "reboot"}));
            crate::trial::start_reboot_trial(settings, store, state, boot, rebooter, &target.name)?;
            Ok(None)
        }
        Then::Kexec { deps, dry_run } => {
            progress.event(
                "trial",
                json!({"group": target.name, "how": "kexec", "dry_run": dry_run}),
            );
            let k = crate::kexec::start_kexec_trial(
                settings, store, state, boot, target, bytes, deps, dry_run,
            )?;
            progress.event("kexec", serde_json::to_value(&k).unwrap_or_default());
            Ok(Some(k))
        }
    }
}

/// `updater activate`: boot the release already installed in the inactive
/// group as a trial (after `apply` without a trial, or the daemon's
/// download-only and window strategies). Its kept manifest is verified
/// again first — the device's floor or the release's expiry may have moved.
/// With `expect`, the installed release must be that digest (the daemon
/// boots what the channel pins, not whatever happens to be installed).
pub fn activate(
    settings: &Settings,
    expect: Option<&str>,
    progress: &mut Progress,
    then: Then,
) -> Result<ApplyOutcome> {
    let (store, booted, target, mut state) = open_inactive(settings, "starting another")?;
    let g = state.group(&target.name);
    if g.status != GroupStatus::Installed {
        return Err(usage(format!(
            "slot {} holds no installed release to boot (it is {}); install one with `updater apply`",
            target.name,
            g.status.name()
        )));
    }
    let kept = kept_manifest(settings, &target.name);
    let bytes = std::fs::read(&kept).with_context(|| {
        format!(
            "reading {}, the manifest of the release in slot {}; install it again with `updater apply`",
            kept.display(),
            target.name
        )
    })?;
    let keyring = Keyring::load(&settings.keyring)?;
    let verified = verify(&bytes, &keyring, &device_policy(settings, &state, &booted))
        .with_context(|| format!("verifying {} again before booting it", kept.display()))?;
    let digest = verified.digest.hex();
    if let Some(want) = expect.filter(|w| *w != digest) {
        return Err(Rejected::Mismatch {
            what: format!("the release in slot {}", target.name),
            reason: format!(
                "is {digest}, the channel names {want}; the daemon installs that one first"
            ),
        }
        .into());
    }
    if g.digest.as_deref() != Some(digest.as_str()) {
        return Err(Rejected::Mismatch {
            what: kept.display().to_string(),
            reason: format!(
                "holds release {digest}, the state says slot {} holds {}",
                target.name,
                g.digest.as_deref().unwrap_or("nothing")
            ),
        }
        .into());
    }
    let mut boot = crate::boot::open(settings)?;
    let mut outcome = ApplyOutcome {
        group: target.name.clone(),
        version: verified.manifest.version.to_string(),
        digest,
        downloaded_bytes: 0,
        resumed: false,
        retries: 0,
        kexec: None,
    };
    outcome.kexec = start_trial(
        settings,
        &store,
        &mut state,
        boot.as_mut(),
        target,
        &bytes,
        progress,
        then,
    )?;
    Ok(outcome)
}

/// The status report: booted group, each group's state, the pending trial.
pub fn status(settings: &Settings) -> Result<serde_json::Value> {
    let booted = crate::slots::booted_group(settings).map_err(|e| OneLine(&e).to_string());
    let state = crate::state::read_state(&settings.state_dir.join(crate::state::STATE_FILE))?;
    let boot = crate::boot::open(settings).ok();
    let primary = boot.as_ref().and_then(|b| b.primary().ok().flatten());
    let mut groups = BTreeMap::new();
    for g in &settings.slots {
        let gs = state.as_ref().map(|s| s.group(&g.name)).unwrap_or_default();
        let bootable = boot.as_ref().and_then(|b| b.bootable(&g.name).ok());
        groups.insert(
            g.name.clone(),
            json!({
                "status": gs.status.name(),
                "version": gs.version,
                "digest": gs.digest,
                "last_error": gs.last_error,
                "updated": gs.updated.map(|t| t.to_rfc3339()),
                "bootable": bootable,
                "primary": primary.as_deref() == Some(g.name.as_str()),
                "booted": booted.as_deref().ok() == Some(g.name.as_str()),
            }),
        );
    }
    Ok(json!({
        "booted": booted.as_ref().ok(),
        "booted_error": booted.as_ref().err(),
        "primary": primary,
        "groups": groups,
        "highest_security_version": state.as_ref().map(|s| s.highest_security_version),
        "install": state.as_ref().and_then(|s| s.install.clone()),
        "trial": state.as_ref().and_then(|s| s.trial.clone()),
        "bad_releases": state.as_ref().map(|s| s.bad_releases.clone()).unwrap_or_default(),
        "channels_issued": state.as_ref().map(|s| s.channels_issued.clone()).unwrap_or_default(),
        "reports_pending": crate::report::Outbox::new(&settings.state_dir).pending().map(|p| p.len()).ok(),
        "state_file": settings.state_dir.join(crate::state::STATE_FILE),
    }))
}
