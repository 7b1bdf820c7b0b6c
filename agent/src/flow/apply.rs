//! `apply`: install a release into the inactive group, then, when asked,
//! boot it as a trial — by reboot or by kexec, as `kexec.policy` allows.
//! The install is `install::install`'s (it ends at "installed"), the trial
//! start `trial::start`'s; this flow runs the two, and finishes a trial
//! start that a crash interrupted in this boot instead of refusing it.

use anyhow::Result;

use super::activate::{activate, Activated};
use crate::events::Events;
use crate::install::{Installed, Options};
use crate::session::Session;
use crate::trial::{How, KexecOutcome, Machine};

/// What to apply, and how.
#[derive(Debug, Clone, Default)]
pub struct Request<'r> {
    /// A manifest URL, a channel URL, or a release folder.
    pub source: &'r str,
    /// Boot it as a trial after installing, this way (none: install only).
    pub trial: Option<How>,
    /// Plan only (without a trial), or with `How::Kexec { dry_run: true }`:
    /// install, then verify, load and unload the kernel.
    pub dry_run: bool,
    /// The most bytes the install may download (else the configuration's).
    pub max_download: Option<u64>,
    /// The release's digest, when the caller pins it (a channel does).
    pub expect: Option<&'r str>,
    /// Install it even when the booted slot runs it already.
    pub reinstall: bool,
}

/// What `apply` did.
#[derive(Debug)]
pub enum Applied {
    /// The release installed (for a dry run: the plan), and the trial
    /// started as asked.
    Installed {
        /// What the install did.
        installed: Installed,
        /// How the trial was started (none: install only, or a dry run).
        trial: Option<How>,
        /// What the kexec step did, for a kexec trial.
        kexec: Option<KexecOutcome>,
    },
    /// Run again after a crash between recording the trial and restarting:
    /// the start of that trial was finished, nothing installed again.
    FinishedStart(Activated),
    /// The release is the one the booted slot runs: nothing was done.
    AlreadyRunning {
        /// The booted slot.
        group: String,
        /// The release's version.
        version: String,
    },
}

/// `updater apply`.
pub fn apply(
    session: &mut Session,
    req: &Request,
    machine: Machine<'_>,
    events: &mut dyn Events,
) -> Result<Applied> {
    if let (Some(how), Some(g)) = (req.trial, crate::trial::interrupted_start(session)) {
        if session.install_target()? == g && !req.dry_run {
            events.warn(&format!(
                "slot {g}'s trial was recorded in this boot by a command that stopped before the restart: finishing its start"
            ));
            let a = activate(session, req.expect, how, machine, events)?;
            return Ok(Applied::FinishedStart(a));
        }
    }
    // A channel document is followed to the release it names for this
    // device, and that release is pinned by the channel's digest.
    let persist = if req.dry_run {
        crate::trust::Persist::Not
    } else {
        crate::trust::Persist::Held(session.store())
    };
    let resolved = super::source::resolve(session.settings(), session.now(), req.source, persist)?;
    if let Some(name) = &resolved.channel {
        events.step(
            "channel",
            &serde_json::json!({"channel": name, "manifest": resolved.manifest}),
        );
    }
    let expect = req.expect.or(resolved.expect.as_deref());
    let opts = Options {
        // With --kexec, a dry run installs and then only loads the kernel.
        dry_run: req.dry_run && !matches!(req.trial, Some(How::Kexec { .. })),
        max_download: req.max_download,
        reinstall: req.reinstall,
    };
    let installed =
        match crate::install::install(session, &resolved.manifest, expect, events, &opts) {
            Ok(i) => i,
            Err(e) => match e.downcast::<crate::install::AlreadyRunning>() {
                Ok(a) => {
                    return Ok(Applied::AlreadyRunning {
                        group: a.group,
                        version: a.version,
                    })
                }
                Err(e) => return Err(e),
            },
        };
    if opts.dry_run {
        return Ok(Applied::Installed {
            installed,
            trial: None,
            kexec: None,
        });
    }
    let kexec = match req.trial {
        Some(how) => crate::trial::start(
            session,
            &installed.group,
            &installed.manifest,
            how,
            machine,
            events,
        )?,
        None => None,
    };
    Ok(Applied::Installed {
        installed,
        trial: req.trial,
        kexec,
    })
}
