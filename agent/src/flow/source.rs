//! What a SOURCE names: a release (a manifest's URL, a release folder, a
//! manifest file) as it is, or a channel document, followed to the release
//! it names for this device — verified with the channel role's keys (the
//! root chain beside it first), the release pinned by the digest the
//! channel gives. `apply`, `verify` and `check` take both.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use updater_format::channel::{self, CHANNEL_PAYLOAD_TYPE};
use updater_format::envelope::Envelope;

use crate::config::Settings;
use crate::error::usage;
use crate::trust::Persist;

/// A source, resolved to a release.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// Where the release's manifest is (a URL, folder or file).
    pub manifest: String,
    /// The release's digest, when a channel pins it.
    pub expect: Option<String>,
    /// The channel followed, by name.
    pub channel: Option<String>,
}

/// Whether `source` may be a channel document: a `.json` file or URL not
/// called `manifest.json` (what `channel publish` writes, `stable.json`).
fn may_be_channel(source: &str) -> bool {
    let path = source.split(['?', '#']).next().unwrap_or(source);
    let last = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    last.ends_with(".json") && last != "manifest.json"
}

/// Resolve `source` for this device at `now`. A channel's root chain is
/// persisted as `persist` allows.
pub fn resolve(
    settings: &Settings,
    now: DateTime<Utc>,
    source: &str,
    persist: Persist,
) -> Result<Resolved> {
    let as_is = Resolved {
        manifest: source.to_string(),
        expect: None,
        channel: None,
    };
    if !may_be_channel(source) {
        return Ok(as_is);
    }
    let mut fetcher = crate::fetch::channel_fetcher(source, &settings.http)?;
    let mut budget = crate::fetch::RetryBudget::new(&settings.http);
    let bytes = crate::fetch::fetch_channel(fetcher.as_mut(), &mut budget)?;
    let is_channel = serde_json::from_slice::<Envelope>(&bytes)
        .is_ok_and(|e| e.payload_type == CHANNEL_PAYLOAD_TYPE);
    if !is_channel {
        return Ok(as_is);
    }
    let keyring =
        crate::trust::refresh(settings, now, fetcher.as_mut(), &mut budget, persist)?.keyring;
    let name = crate::config::channel_name_of(source)
        .ok_or_else(|| usage(format!("{source}: a channel document needs a file name")))?;
    let ch = channel::verify(
        &bytes,
        &keyring,
        &super::check::expect(settings, &name, now),
    )
    .with_context(|| format!("verifying the channel from {source}"))?;
    // Read lock-free, as `check` reads it: an old copy of a channel this
    // device followed is refused here too, not only by the daemon.
    if let Some(state) =
        crate::state::read_state(&settings.state_dir.join(crate::state::STATE_FILE))?
    {
        super::check::refuse_replay(settings, &state, &ch.name, ch.issued, source)?;
    }
    let r = ch.release_for(&settings.compatible).ok_or_else(|| {
        usage(format!(
            "the channel {name:?} from {source} names no release for this device ({}); it names releases for {:?}",
            settings.compatible,
            ch.releases.iter().map(|r| r.compatible.as_str()).collect::<Vec<_>>()
        ))
    })?;
    Ok(Resolved {
        manifest: crate::fetch::resolve(source, &r.manifest)?,
        expect: Some(r.digest.hex()),
        channel: Some(name),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_documents_are_told_from_releases_by_name() {
        assert!(may_be_channel("https://u.example/gw/stable.json"));
        assert!(may_be_channel("/media/usb/beta.json"));
        assert!(!may_be_channel("https://u.example/gw/1.2.0/manifest.json"));
        assert!(!may_be_channel("https://u.example/gw/1.2.0/"));
        assert!(!may_be_channel("/media/usb/release"));
        assert_eq!(
            crate::config::channel_name_of("https://u.example/gw/stable.json?t=1").as_deref(),
            Some("stable")
        );
    }
}
