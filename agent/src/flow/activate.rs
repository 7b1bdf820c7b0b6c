//! `activate`: boot the release already installed in the inactive group as
//! a trial (after `apply` without a trial, or the daemon's download-only and
//! window strategies). Its kept manifest is verified again first — the
//! device's floor, the root of trust or the release's expiry may have moved
//! since the download.

use anyhow::{Context, Result};
use updater_format::keys::Keyring;
use updater_format::manifest::verify::verify;

use crate::error::{usage, Rejected};
use crate::events::Events;
use crate::session::Session;
use crate::state::Phase;
use crate::trial::{interrupted_start, start, How, KexecOutcome, Machine};

/// `updater activate`: boot the release already installed in the inactive
/// group as a trial (after `apply` without a trial, or the daemon's
/// download-only and window strategies). Its kept manifest is verified
/// again first — the device's floor or the release's expiry may have moved.
/// With `expect`, the installed release must be that digest (the daemon
/// boots what the channel pins, not whatever happens to be installed).
pub fn activate(
    session: &mut Session,
    expect: Option<&str>,
    how: How,
    machine: Machine<'_>,
    events: &mut dyn Events,
) -> Result<Activated> {
    let target = session.install_target()?;
    let resume = interrupted_start(session).as_deref() == Some(target.as_str());
    if let Some(t) = session.state().trial().filter(|_| !resume) {
        return Err(crate::state::TransitionError::TrialPending {
            trial: t.group.clone(),
            doing: "starting another",
        }
        .into());
    }
    let g = session.state().group(&target).clone();
    if !resume && session.state().phase(&target) != Phase::Installed {
        return Err(usage(format!(
            "slot {target} holds no installed release to boot (it is {}); install one with `updater apply`",
            session.state().phase(&target)
        )));
    }
    let kept = session.kept_manifest(&target);
    let bytes = std::fs::read(&kept).with_context(|| {
        format!(
            "reading {}, the manifest of the release in slot {target}; install it again with `updater apply`",
            kept.display()
        )
    })?;
    let keyring: Keyring = session.keyring()?;
    let verified = verify(&bytes, &keyring, &session.policy())
        .with_context(|| format!("verifying {} again before booting it", kept.display()))?;
    let digest = verified.digest.hex();
    session.raise_floor(
        verified.manifest.created,
        &format!("created of release {}", verified.manifest.version),
    )?;
    if let Some(want) = expect.filter(|w| *w != digest) {
        return Err(Rejected::Mismatch {
            what: format!("the release in slot {target}"),
            reason: format!(
                "is {digest}, the channel names {want}; the daemon installs that one first"
            ),
        }
        .into());
    }
    if g.digest() != Some(digest.as_str()) {
        return Err(Rejected::Mismatch {
            what: kept.display().to_string(),
            reason: format!(
                "holds release {digest}, the state says slot {target} holds {}",
                g.digest().unwrap_or("nothing")
            ),
        }
        .into());
    }
    let kexec = start(session, &target, &bytes, how, machine, events)?;
    Ok(Activated {
        group: target,
        version: verified.manifest.version.to_string(),
        digest,
        kexec,
    })
}

/// What `activate` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Activated {
    /// The group booted.
    pub group: String,
    /// Its release version.
    pub version: String,
    /// Its release digest.
    pub digest: String,
    /// What the kexec step did, when the trial was by kexec.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kexec: Option<KexecOutcome>,
}
