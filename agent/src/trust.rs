//! The device's root of trust (docs/security.md, "Root rotation").
//!
//! The factory root is the keyring folder's: its `root.json`, or its
//! `keyring.toml` with a `root` role (root version 1). Each root the
//! device accepts later is persisted in the state folder (`root.json`,
//! atomically) and supersedes it. Before anything from a source is
//! verified, [`refresh`] asks the source for `N+1.root.json`,
//! `N+2.root.json`… beside its manifest or channel, accepts each only
//! as `updater_format::root` allows, persists it, and finally checks the
//! last one's expiry. The keyring every verification uses is then the last
//! root's: keys a root drops are revoked from the moment it is accepted.
//!
//! A keyring without a root role (a device provisioned before roots) has no
//! root: it trusts `keyring.toml` as it is and fetches no roots. The
//! migration path is a release whose image carries a keyring with a root
//! role (docs/security.md).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use updater_format::error::StateCorruptError;
use updater_format::keys::{test_keys_allowed, Keyring};
use updater_format::root::{
    factory_root, FloorReset, TrustedRoot, MAX_ROOT_ROTATIONS, ROOT_SIZE_CAP,
};

use crate::config::Settings;
use crate::fetch::{fetch_optional, Fetcher, RetryBudget};

/// The accepted root, in the state folder.
pub const ROOT_FILE: &str = "root.json";

/// What the device keeps about roots besides the root itself, in the
/// state folder (beside `state.json`, which older agents read and which
/// therefore never gains a field).
pub const TRUST_FILE: &str = "trust.json";

/// `trust.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrustState {
    /// A floor reset from an accepted root, not yet applied to the state
    /// (it is applied under the state lock, by the next install).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<PendingReset>,
    /// The last root version whose reset was applied.
    #[serde(default)]
    pub applied: u64,
    /// The version floor of the last reset applied: releases from this
    /// version on are not downgrades while the release found running then
    /// (`while_booted`, its digest) still runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_floor: Option<VersionFloor>,
}

/// A root's reset, waiting to be applied.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PendingReset {
    /// The root version that carried it.
    pub root: u64,
    /// The floors its signed `reset` sets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset: Option<FloorReset>,
    /// Forget the channel replay floors: the reset says so, or the root
    /// replaced every channel key (TUF's fast-forward recovery: floors a
    /// compromised channel key pushed up are void once it is gone).
    #[serde(default)]
    pub channels: bool,
}

/// A version floor set by a reset.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VersionFloor {
    /// Releases from this version on are not refused as downgrades.
    pub version: String,
    /// While the release with this digest runs (None: none ran).
    pub while_booted: Option<String>,
}

/// Read `trust.json` (default when missing).
pub fn read_trust_state(state_dir: &Path) -> Result<TrustState> {
    let path = state_dir.join(TRUST_FILE);
    match std::fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| {
            StateCorruptError(format!(
                "{}: {e}; restore it from a backup, or remove it (a pending root reset is then lost)",
                path.display()
            ))
            .into()
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(TrustState::default()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Write `trust.json` atomically.
pub fn write_trust_state(state_dir: &Path, t: &TrustState) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(t).expect("the trust state serialises");
    bytes.push(b'\n');
    crate::util::fs::write_atomic(&state_dir.join(TRUST_FILE), &bytes, 0o600)
}

/// Where a source publishes root version `n`, relative to its manifest or
/// channel document: beside it, named as TUF names root versions (a plain
/// file name, which every release server serves).
pub fn root_name(n: u64) -> String {
    format!("{n}.root.json")
}

/// Where the device keeps the last root it accepted.
pub fn persisted_path(state_dir: &Path) -> PathBuf {
    state_dir.join(ROOT_FILE)
}

/// The root the device trusts now, and where it came from (`"state"` or
/// `"keyring"`); `None` when the keyring has no root role.
pub fn current(settings: &Settings) -> Result<Option<(TrustedRoot, &'static str)>> {
    let allow = settings.security.allow_insecure_permissions;
    let ring = crate::util::perm::load_keyring(&settings.keyring, allow)?;
    let factory = factory_root(&settings.keyring, &ring, test_keys_allowed())?;
    let path = persisted_path(&settings.state_dir);
    let persisted = match std::fs::read(&path) {
        Ok(bytes) => Some(TrustedRoot::open_persisted(&bytes).map_err(|e| {
            StateCorruptError(format!(
                "{}: {e}; the device accepted this root once, so the state folder was changed since: restore it, or remove the file to fall back to the keyring's root",
                path.display()
            ))
        })?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    Ok(match (factory, persisted) {
        (Some(f), Some(p)) if f.version() > p.version() => Some((f, "keyring")),
        (_, Some(p)) => Some((p, "state")),
        (Some(f), None) => Some((f, "keyring")),
        (None, None) => None,
    })
}

/// The keyring verifications use: the trusted root's, else `keyring.toml`.
pub fn keyring(settings: &Settings) -> Result<Keyring> {
    match current(settings)? {
        Some((root, _)) => root.keyring(),
        None => crate::util::perm::load_keyring(
            &settings.keyring,
            settings.security.allow_insecure_permissions,
        ),
    }
}

/// What [`refresh`] did.
#[derive(Debug)]
pub struct Refreshed {
    /// The keyring to verify the source's documents with.
    pub keyring: Keyring,
    /// The root now trusted (None: no root role).
    pub root: Option<TrustedRoot>,
    /// Root versions accepted from the source, in order.
    pub accepted: Vec<TrustedRoot>,
}

/// Follow the source's root chain from the trusted root, persisting each
/// accepted root (unless `dry_run`), then check the last one's expiry
/// against `now`.
pub fn refresh(
    settings: &Settings,
    now: DateTime<Utc>,
    fetcher: &mut dyn Fetcher,
    budget: &mut RetryBudget,
    dry_run: bool,
) -> Result<Refreshed> {
    let Some((mut root, _)) = current(settings)? else {
        return Ok(Refreshed {
            keyring: keyring(settings)?,
            root: None,
            accepted: Vec::new(),
        });
    };
    let mut accepted = Vec::new();
    for _ in 0..MAX_ROOT_ROTATIONS {
        let n = root.version() + 1;
        let Some(bytes) = fetch_optional(
            fetcher,
            &root_name(n),
            ROOT_SIZE_CAP,
            "root document",
            budget,
        )?
        else {
            break;
        };
        let next = root.verify_next(&bytes).with_context(|| {
            format!(
                "verifying root version {n} from {} against root version {}",
                fetcher.describe(),
                root.version()
            )
        })?;
        for role in ["root", "manifest", "kernel", "channel"] {
            for id in root.dropped(&next, role) {
                tracing::info!(
                    "root version {n} revokes {role} key {}",
                    &id[..16.min(id.len())]
                );
            }
        }
        // Persisted before anything is verified with it: what the device
        // trusts never goes back, even if this update fails later. A reset
        // it carries is recorded first, so that a crash in between cannot
        // lose it.
        let channel_rotated = root.root.roles.channel.as_ref().is_some_and(|old| {
            let kept = next.root.roles.channel.as_ref();
            !old.keyids
                .iter()
                .any(|id| kept.is_some_and(|k| k.keyids.contains(id)))
        });
        if !dry_run && (next.root.reset.is_some() || channel_rotated) {
            let mut t = read_trust_state(&settings.state_dir)?;
            // A reset still pending from an earlier root is kept (its floors
            // were never applied) unless this one carries its own.
            let earlier = t.pending.take();
            let reset = next
                .root
                .reset
                .clone()
                .or_else(|| earlier.as_ref().and_then(|p| p.reset.clone()));
            let channels = channel_rotated
                || reset.as_ref().is_some_and(|r| r.channels)
                || earlier.is_some_and(|p| p.channels);
            t.pending = Some(PendingReset {
                root: n,
                reset,
                channels,
            });
            write_trust_state(&settings.state_dir, &t)?;
        }
        if !dry_run {
            crate::util::fs::write_atomic(&persisted_path(&settings.state_dir), &bytes, 0o600)?;
        }
        tracing::info!("accepted root version {n} from {}", fetcher.describe());
        accepted.push(next.clone());
        root = next;
    }
    root.check_expiry(now)?;
    Ok(Refreshed {
        keyring: root.keyring()?,
        root: Some(root),
        accepted,
    })
}

/// `updater status --json`'s `root`: version, expiry and origin, the floor
/// reset waiting to be applied, or null.
pub fn status(settings: &Settings) -> serde_json::Value {
    match current(settings) {
        Ok(Some((r, from))) => serde_json::json!({
            "version": r.version(),
            "expires": r.root.expires.to_rfc3339(),
            "from": from,
            "max_security_step": r.root.max_security_step,
            "reset_pending": read_trust_state(&settings.state_dir).ok().and_then(|t| t.pending).map(|p| p.root),
        }),
        Ok(None) => serde_json::Value::Null,
        Err(e) => serde_json::json!({ "error": format!("{e:#}") }),
    }
}
