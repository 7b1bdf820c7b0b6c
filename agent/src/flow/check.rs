//! `check`: one poll of the configured channel, read-only and lock-free:
//! fetch and verify the channel (the root chain beside it first), refuse a
//! replay of an older one, find this device's entry, and decide
//! (`fleet::decide`). The daemon carries the plan out; `updater check`
//! prints it.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;
use updater_format::channel::{self, ChannelRelease};
use updater_format::error::Rejected;

use crate::clock::Clock;
use crate::config::{Settings, Strategy};
use crate::error::usage;
use crate::fleet::{decide, Action, Inputs};
use crate::state::{read_state, UpdateState, STATE_FILE};

/// The result of one poll: what the daemon would do and why.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The channel URL.
    pub channel_url: String,
    /// The channel's name.
    pub channel: String,
    /// When the channel was issued.
    pub issued: DateTime<Utc>,
    /// When it expires.
    pub expires: DateTime<Utc>,
    /// This device's id.
    pub device: String,
    /// This device's compatible string.
    pub compatible: String,
    /// The booted slot group.
    pub booted: String,
    /// The version the booted group runs, if known.
    pub running: Option<String>,
    /// The channel's release for this device.
    pub release: Option<ChannelRelease>,
    /// The release's manifest URL, resolved.
    pub manifest_url: Option<String>,
    /// This device's bucket for the release (0..10000).
    pub bucket: Option<u32>,
    /// Buckets in the rollout (percent × 100).
    pub rollout_buckets: Option<u32>,
    /// The strategy.
    pub strategy: Strategy,
    /// What to do.
    #[serde(flatten)]
    pub action: Action,
    /// Why, in words.
    pub reason: String,
}

/// A channel issued before the one of the same name this device already
/// followed is a replay (or a rollback) of an old copy: refused, by `check`,
/// the daemon and `apply`/`verify` of a channel alike. A trusted root's
/// reset that clears the replay floors and waits for the next install to
/// apply it makes the floors void already.
pub(super) fn refuse_replay(
    settings: &Settings,
    state: &UpdateState,
    name: &str,
    issued: DateTime<Utc>,
    url: &str,
) -> Result<()> {
    let floors_reset = crate::trust::read_trust_state(&settings.state_dir)?
        .pending
        .is_some_and(|p| p.channels);
    if let Some(seen) = state
        .channels_issued()
        .get(name)
        .filter(|seen| issued < **seen && !floors_reset)
    {
        return Err(Rejected::Channel(format!(
            "channel {name:?} from {url} was issued at {}, before the one this device already followed ({}): a replayed or rolled-back channel; the server (or a mirror or proxy in between) serves an old copy — re-publish the channel",
            issued.to_rfc3339(),
            seen.to_rfc3339()
        ))
        .into());
    }
    Ok(())
}

/// `updater check`: the plan for now, by `clock` (no earlier than the clock
/// floor).
pub fn check(settings: &Settings, clock: Clock) -> Result<Plan> {
    let clock = clock.with_floor(crate::state::floor::floor(&settings.state_dir)?);
    plan(settings, clock.now())
}

/// Fetch and verify the channel and decide. Read-only, and lock-free:
/// `check` uses it as is; the daemon then records the channel's issue time.
pub fn plan(settings: &Settings, now: DateTime<Utc>) -> Result<Plan> {
    let url = settings.daemon.channel.as_deref().ok_or_else(|| {
        usage("no channel configured: set daemon.channel to the channel document's URL")
    })?;
    let device = settings.device.id()?;
    let mut fetcher = crate::fetch::channel_fetcher(url, &settings.http)?;
    let mut budget = crate::fetch::RetryBudget::new(&settings.http);
    // The root chain beside the channel first: the keyring the channel is
    // verified with.
    // Lock-free: roots are persisted only if the state lock is free, and a
    // chain another command grew meanwhile is followed from where it is.
    let keyring = crate::trust::refresh(
        settings,
        now,
        fetcher.as_mut(),
        &mut budget,
        crate::trust::Persist::TryLock,
    )?
    .keyring;
    channel::require_channel_role(&keyring)?;
    let name = channel_name(settings)?;
    let bytes = crate::fetch::fetch_channel(fetcher.as_mut(), &mut budget)?;
    let ch =
        channel::verify(&bytes, &keyring, &expect(settings, &name, now)).with_context(|| {
            format!("verifying the channel from {url} (daemon.channel, channel name {name:?})")
        })?;
    let slots = crate::slots::open(settings)?;
    let booted = crate::session::booted_of(settings, &*slots, None)?;
    let target = slots.install_target(&booted)?;
    let state = read_state(&settings.state_dir.join(STATE_FILE))?
        .unwrap_or_else(|| UpdateState::fresh(&slots.groups(), &booted));
    refuse_replay(settings, &state, &ch.name, ch.issued, url)?;
    let kept = crate::state::kept_manifest(&settings.state_dir, &target).is_file();
    let d = decide(&Inputs {
        compatible: &settings.compatible,
        strategy: settings.daemon.strategy,
        window: settings.daemon.window.as_ref(),
        state: &state,
        booted: &booted,
        target: &target,
        channel: &ch,
        device: &device,
        kept_manifest: kept,
        now,
    });
    let release = ch.release_for(&settings.compatible).cloned();
    let manifest_url = match &release {
        Some(r) => Some(crate::fetch::resolve(url, &r.manifest)?),
        None => None,
    };
    Ok(Plan {
        channel_url: url.to_string(),
        channel: ch.name.clone(),
        issued: ch.issued,
        expires: ch.expires,
        device,
        compatible: settings.compatible.clone(),
        running: state.group(&booted).version().map(str::to_string),
        booted,
        rollout_buckets: release.as_ref().map(|r| r.rollout_buckets()),
        release,
        manifest_url,
        bucket: d.bucket,
        strategy: settings.daemon.strategy,
        action: d.action,
        reason: d.reason,
    })
}

/// The channel name this device follows.
/// What a channel named `name` must be at `now` on this device: its name,
/// and a validity no longer than `daemon.max_channel_validity_days`.
pub fn expect<'a>(settings: &Settings, name: &'a str, now: DateTime<Utc>) -> channel::Expect<'a> {
    channel::Expect {
        name,
        now,
        max_validity: updater_format::limits::Limit {
            value: settings.daemon.max_channel_validity,
            setting: "daemon.max_channel_validity_days",
        },
    }
}

/// The channel name this device follows (`daemon.channel_name`, or the
/// channel URL's file name).
pub fn channel_name(settings: &Settings) -> Result<String> {
    settings.daemon.channel_name.clone().ok_or_else(|| {
        usage("the channel URL has no file name to take the channel name from; set daemon.channel_name")
    })
}
