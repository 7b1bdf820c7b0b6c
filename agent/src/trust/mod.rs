//! The device's root of trust (docs/security.md, "Root rotation").
//!
//! The anchor is the factory root in the read-only image's keyring folder:
//! its `root.json`, or its `keyring.toml` with a `root` role (root version
//! 1). Each root the device accepts later is kept in the state folder as a
//! link of a chain ([`chain`]), and every load verifies that chain again
//! from the anchor, link by link: nothing on the writable partition is
//! trusted more than the image. Before anything from a source is verified,
//! [`refresh`] asks the source for `N+1.root.json`, `N+2.root.json`…
//! beside its manifest or channel, accepts each only as
//! `updater_format::root` allows, persists it under the state lock, and
//! finally checks the last one's expiry. The keyring every verification
//! uses is then the last root's: keys a root drops are revoked from the
//! moment it is accepted.
//!
//! A keyring without a root role (a device provisioned before roots) has no
//! root: it trusts `keyring.toml` as it is and fetches no roots. The
//! migration path is a release whose image carries a keyring with a root
//! role (docs/security.md).

pub mod chain;
mod follow;

pub use follow::{rebuild, refresh, Persist, Rebuilt, Refreshed};

use std::path::Path;

use crate::error::StateCorruptError;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use updater_format::keys::{test_keys_allowed, Keyring};
use updater_format::root::{factory_root, FloorReset, TrustedRoot};

use crate::config::Settings;

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

/// The image's root, or `None` when the keyring has no root role.
pub fn factory(settings: &Settings) -> Result<Option<TrustedRoot>> {
    let allow = settings.security.allow_insecure_permissions;
    let ring = crate::util::perm::load_keyring(&settings.keyring, allow)?;
    factory_root(&settings.keyring, &ring, test_keys_allowed())
}

/// The persisted chain, verified from the image's root and checked against
/// the floor record; `None` when the keyring has no root role.
pub fn load_chain(settings: &Settings) -> Result<Option<chain::Chain>> {
    let Some(f) = factory(settings)? else {
        return Ok(None);
    };
    let c = chain::load(&settings.state_dir, f)?;
    c.check_floor(&settings.state_dir)?;
    Ok(Some(c))
}

/// The root the device trusts now, and where it came from (`"state"`: a
/// persisted link, verified from the image's root; `"keyring"`: the image's
/// root itself); `None` when the keyring has no root role.
pub fn current(settings: &Settings) -> Result<Option<(TrustedRoot, &'static str)>> {
    Ok(load_chain(settings)?.map(|c| {
        let from = if c.from_state() { "state" } else { "keyring" };
        (c.head().clone(), from)
    }))
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
