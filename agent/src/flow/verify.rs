//! `verify`: what `apply` would decide about a release, without installing
//! it: the device's keyring and trusted root (its chain followed beside the
//! source, not persisted), its compatible string, the version it runs and
//! its floors, and the same SOURCE forms as `apply`.

use anyhow::{Context, Result};
use updater_format::keys::Keyring;
use updater_format::manifest::verify::{
    verify as verify_manifest, Policy, Verified, MANIFEST_SIZE_CAP,
};

use crate::clock::Clock;
use crate::config::{HttpSettings, Settings};
use crate::state::{read_state, UpdateState, STATE_FILE};
use crate::trust::Persist;

/// `updater verify SOURCE` on a device: the verified release, or why the
/// device refuses it (exit 3, as `apply` would).
pub fn verify(settings: &Settings, clock: Clock, source: &str) -> Result<Verified> {
    let clock = clock.with_floor(crate::state::floor::floor(&settings.state_dir)?);
    let now = clock.now();
    let r = super::source::resolve(settings, now, source, Persist::Not)?;
    let mut fetcher = crate::fetch::open_source(&r.manifest, &settings.http)?;
    let mut budget = crate::fetch::RetryBudget::new(&settings.http);
    let keyring =
        crate::trust::refresh(settings, now, fetcher.as_mut(), &mut budget, Persist::Not)?.keyring;
    let bytes = fetch_manifest(fetcher.as_mut(), &mut budget)?;
    let slots = crate::slots::open(settings)?;
    let booted = crate::session::booted_of(settings, &*slots, None)?;
    let state = read_state(&settings.state_dir.join(STATE_FILE))?
        .unwrap_or_else(|| UpdateState::fresh(&slots.groups(), &booted));
    let policy = crate::session::device_policy(settings, &state, &booted, now);
    let v = verify_manifest(&bytes, &keyring, &policy)
        .with_context(|| format!("verifying the manifest from {}", fetcher.describe()))?;
    if let Some(want) = r.expect.filter(|w| *w != v.digest.hex()) {
        return Err(crate::error::Rejected::Mismatch {
            what: format!("manifest from {}", fetcher.describe()),
            reason: format!(
                "the channel pins release {want}, the server sent release {}",
                v.digest.hex()
            ),
        }
        .into());
    }
    Ok(v)
}

/// `updater verify SOURCE --keyring DIR`: the release at `source` (a
/// manifest's URL, a release folder or manifest file) against `keyring`
/// and `policy` alone, no device configuration needed (a build host).
pub fn with_keyring(source: &str, keyring: &Keyring, policy: &Policy) -> Result<Verified> {
    let http = HttpSettings::defaults();
    let mut fetcher = crate::fetch::open_source(source, &http)?;
    let mut budget = crate::fetch::RetryBudget::new(&http);
    let bytes = fetch_manifest(fetcher.as_mut(), &mut budget)?;
    Ok(verify_manifest(&bytes, keyring, policy)?)
}

/// The manifest's bytes from `fetcher`, capped at [`MANIFEST_SIZE_CAP`].
fn fetch_manifest(
    fetcher: &mut dyn crate::fetch::Fetcher,
    budget: &mut crate::fetch::RetryBudget,
) -> Result<Vec<u8>> {
    crate::fetch::fetch_small(fetcher, None, 0, MANIFEST_SIZE_CAP, "manifest", budget)
}
