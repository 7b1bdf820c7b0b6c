//! `updater daemon` and `updater check`: follow a signed channel.
//!
//! One poll: fetch and verify the channel, refuse a replay of an older one,
//! find this device's entry, and decide ([`decide`], a pure function of the
//! state, the channel, the strategy and the time):
//!
//! - nothing, when the device runs the release, the release failed here
//!   before (never retried: that is the update loop fleets report), it is
//!   not newer, the device's bucket is not in the rollout yet, or a trial is
//!   pending;
//! - install it into the inactive slot (resuming an interrupted install);
//! - boot the installed release as a trial (kexec per `kexec.policy`), at
//!   once, inside the maintenance window, or never by itself
//!   (`download-only`: the operator runs `updater activate`).
//!
//! The daemon polls at an interval plus random jitter; a failed poll is
//! retried after a delay that doubles up to `retry_max`. Under systemd it is
//! `Type=notify`: READY=1 once configured, WATCHDOG=1 while its loop makes
//! progress, STATUS= with what it is doing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::{DateTime, Datelike, TimeZone, Utc};
use serde::Serialize;

use crate::config::{MaintenanceWindow, Settings, Strategy};
use crate::error::{usage, ExitCode, OneLine, Rejected};
use crate::report::{self, Details, EventKind};
use crate::state::{GroupStatus, State};
use crate::util::notify;
use updater_format::channel::{self, Channel, ChannelRelease};

/// What the daemon does about the channel's release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    /// Nothing to do.
    Idle,
    /// Install the release into the inactive slot, then boot it as a trial
    /// when `activate`.
    Install {
        /// Boot it right after installing.
        activate: bool,
    },
    /// Boot the already installed release as a trial.
    Activate,
    /// The release is installed; it boots later.
    Wait {
        /// When it may boot (none: only by `updater activate`).
        until: Option<DateTime<Utc>>,
    },
}

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

/// Is `now` inside the window?
pub fn window_contains(w: &MaintenanceWindow, now: DateTime<Utc>) -> bool {
    let local = now.with_timezone(&w.timezone);
    let t = local.time();
    let day = local.weekday().num_days_from_monday() as usize;
    let yesterday = (day + 6) % 7;
    if w.start < w.end {
        w.days[day] && t >= w.start && t < w.end
    } else {
        // Crosses midnight: open from start on an allowed day to end on the
        // next one.
        (w.days[day] && t >= w.start) || (w.days[yesterday] && t < w.end)
    }
}

/// When the window is next open at or after `from` (`from` itself when it
/// is open then).
pub fn window_next_open(w: &MaintenanceWindow, from: DateTime<Utc>) -> DateTime<Utc> {
    if window_contains(w, from) {
        return from;
    }
    let local_date = from.with_timezone(&w.timezone).date_naive();
    for i in 0..9 {
        let date = local_date + chrono::Days::new(i);
        if !w.days[date.weekday().num_days_from_monday() as usize] {
            continue;
        }
        // A start inside a DST gap opens at the first minute after it
        // (gaps are at most a few hours).
        let mut naive = date.and_time(w.start);
        let mut open = None;
        for _ in 0..(4 * 60) {
            if let Some(t) = w.timezone.from_local_datetime(&naive).earliest() {
                open = Some(t.with_timezone(&Utc));
                break;
            }
            naive += chrono::Duration::minutes(1);
        }
        // A window lying wholly in a DST gap does not open that day.
        if let Some(t) = open.filter(|t| *t > from && window_contains(w, *t)) {
            return t;
        }
    }
    // Unreachable with at least one allowed day; poll again in a day.
    from + chrono::Duration::days(1)
}

/// Decide what to do (pure: no I/O).
#[allow(clippy::too_many_arguments)]
pub fn decide(
    settings: &Settings,
    state: &State,
    booted: &str,
    target: &str,
    ch: &Channel,
    device: &str,
    kept_manifest: bool,
    now: DateTime<Utc>,
) -> (Action, String, Option<u32>) {
    let Some(r) = ch.release_for(&settings.compatible) else {
        return (
            Action::Idle,
            format!(
                "channel {:?} names no release for compatible {:?}",
                ch.name, settings.compatible
            ),
            None,
        );
    };
    let bucket = channel::bucket(device, &r.version);
    let idle = |why: String| (Action::Idle, why, Some(bucket));
    if let Some(t) = &state.trial {
        return idle(format!(
            "a trial of slot {} is pending; `updater health` decides it",
            t.group
        ));
    }
    let digest = r.digest.hex();
    let running = state.group(booted);
    if running.digest.as_deref() == Some(digest.as_str()) {
        return idle(format!("up to date: slot {booted} runs {}", r.version));
    }
    if let Some(b) = state.bad_release(&digest, &r.version.to_string()) {
        return idle(format!(
            "release {} failed on this device ({}) and is not retried; waiting for a newer release",
            r.version, b.reason
        ));
    }
    if let Some(v) = running
        .version
        .as_deref()
        .and_then(|v| semver::Version::parse(v).ok())
    {
        if r.version <= v {
            return idle(format!(
                "the channel's release {} is not newer than {v}, which slot {booted} runs",
                r.version
            ));
        }
    }
    let threshold = r.rollout_buckets();
    if bucket >= threshold {
        return idle(format!(
            "not in the rollout of {} yet: this device's bucket {bucket} is not below {threshold} ({}%)",
            r.version, r.rollout_percent
        ));
    }
    let tg = state.group(target);
    // Installed, and with its kept manifest (a slot installed by an older
    // agent has none and is installed again).
    let installed = tg.status == GroupStatus::Installed
        && tg.digest.as_deref() == Some(digest.as_str())
        && kept_manifest;
    let boot_from = r.not_before.filter(|t| *t > now);
    let (action, reason) = match settings.daemon.strategy {
        Strategy::DownloadOnly if installed => (
            Action::Wait { until: None },
            format!(
                "{} is installed in slot {target}; download-only: boot it with `updater activate`",
                r.version
            ),
        ),
        Strategy::DownloadOnly => (
            Action::Install { activate: false },
            format!("download-only: install {} into slot {target}", r.version),
        ),
        Strategy::Immediate => match (boot_from, installed) {
            (Some(t), true) => (
                Action::Wait { until: Some(t) },
                format!(
                    "{} is installed in slot {target}; the channel allows booting it from {}",
                    r.version,
                    t.to_rfc3339()
                ),
            ),
            (Some(t), false) => (
                Action::Install { activate: false },
                format!(
                    "install {} into slot {target} now, boot it from {}",
                    r.version,
                    t.to_rfc3339()
                ),
            ),
            (None, true) => (
                Action::Activate,
                format!("boot {} in slot {target} as a trial", r.version),
            ),
            (None, false) => (
                Action::Install { activate: true },
                format!(
                    "install {} into slot {target} and boot it as a trial",
                    r.version
                ),
            ),
        },
        Strategy::Window => {
            let w = settings
                .daemon
                .window
                .as_ref()
                .expect("validated: the window strategy has a window");
            let open = window_next_open(w, boot_from.unwrap_or(now));
            let ready = open <= now;
            match (ready, installed) {
                (true, true) => (
                    Action::Activate,
                    format!(
                        "inside the maintenance window: boot {} in slot {target} as a trial",
                        r.version
                    ),
                ),
                (true, false) => (
                    Action::Install { activate: true },
                    format!(
                        "inside the maintenance window: install {} into slot {target} and boot it",
                        r.version
                    ),
                ),
                (false, true) => (
                    Action::Wait { until: Some(open) },
                    format!(
                        "{} is installed in slot {target}; it boots in the maintenance window at {}",
                        r.version,
                        open.to_rfc3339()
                    ),
                ),
                (false, false) => (
                    Action::Install { activate: false },
                    format!(
                        "install {} into slot {target} now; it boots in the maintenance window at {}",
                        r.version,
                        open.to_rfc3339()
                    ),
                ),
            }
        }
    };
    (action, reason, Some(bucket))
}

/// Fetch and verify the channel and decide. Read-only: `check` uses it as
/// is; the daemon then records the channel's issue time.
pub fn plan(settings: &Settings, now: DateTime<Utc>) -> Result<(Plan, State)> {
    let url = settings.daemon.channel.as_deref().ok_or_else(|| {
        usage("no channel configured: set daemon.channel to the channel document's URL")
    })?;
    let device = settings.device.id()?;
    let keyring = updater_format::keys::Keyring::load(&settings.keyring)?;
    channel::require_channel_role(&keyring)?;
    let name = channel_name(settings)?;
    let bytes = crate::fetch::fetch_channel(url, &settings.http)?;
    let expect = channel::Expect {
        name: &name,
        now,
        max_validity: settings.daemon.max_channel_validity,
    };
    let ch = channel::verify(&bytes, &keyring, &expect)
        .with_context(|| format!("verifying the channel from {url}"))?;
    let booted = crate::slots::booted_group(settings)?;
    let target = crate::slots::install_target(settings, &booted)?
        .name
        .clone();
    let state = crate::state::read_state(&settings.state_dir.join(crate::state::STATE_FILE))?
        .unwrap_or_else(|| {
            let groups: Vec<String> = settings.slots.iter().map(|g| g.name.clone()).collect();
            State::fresh(&groups, &booted)
        });
    if let Some(seen) = state
        .channels_issued
        .get(&ch.name)
        .filter(|seen| ch.issued < **seen)
    {
        return Err(Rejected::Channel(format!(
            "channel {:?} from {url} was issued at {}, before the one this device already followed ({}): a replayed or rolled-back channel; the server (or a mirror or proxy in between) serves an old copy — re-publish the channel",
            ch.name,
            ch.issued.to_rfc3339(),
            seen.to_rfc3339()
        ))
        .into());
    }
    let kept = crate::install::kept_manifest(settings, &target).is_file();
    let (action, reason, bucket) =
        decide(settings, &state, &booted, &target, &ch, &device, kept, now);
    let release = ch.release_for(&settings.compatible).cloned();
    let manifest_url = match &release {
        Some(r) => Some(crate::fetch::resolve(url, &r.manifest)?),
        None => None,
    };
    let plan = Plan {
        channel_url: url.to_string(),
        channel: ch.name.clone(),
        issued: ch.issued,
        expires: ch.expires,
        device,
        compatible: settings.compatible.clone(),
        running: state.group(&booted).version,
        booted,
        rollout_buckets: release.as_ref().map(|r| r.rollout_buckets()),
        release,
        manifest_url,
        bucket,
        strategy: settings.daemon.strategy,
        action,
        reason,
    };
    Ok((plan, state))
}

/// The channel name this device follows.
pub fn channel_name(settings: &Settings) -> Result<String> {
    settings.daemon.channel_name.clone().ok_or_else(|| {
        usage("the channel URL has no file name to take the channel name from; set daemon.channel_name")
    })
}

/// Record the channel's issue time as the newest followed (replay floor).
fn remember_channel(settings: &Settings, name: &str, issued: DateTime<Utc>) -> Result<()> {
    let store = crate::state::StateStore::open(&settings.state_dir)?;
    let booted = crate::slots::booted_group(settings)?;
    let mut state = crate::install::load_state(&store, settings, &booted)?;
    if state.channels_issued.get(name).is_none_or(|t| *t < issued) {
        state.channels_issued.insert(name.to_string(), issued);
        store.save(&state)?;
    }
    Ok(())
}

/// The clock: the real one, or a fixed time (`--now`, for tests and for
/// asking "what would happen at ...").
#[derive(Debug, Clone, Copy)]
pub struct Clock(pub Option<DateTime<Utc>>);

impl Clock {
    /// The time now.
    pub fn now(&self) -> DateTime<Utc> {
        self.0.unwrap_or_else(Utc::now)
    }
}

/// What one poll did.
#[derive(Debug, Clone, Serialize)]
pub struct PollOutcome {
    /// The plan it followed.
    pub plan: Plan,
    /// What happened, in words.
    pub did: String,
}

/// One poll: plan, then carry the plan out. `release` is set to the
/// release the channel named, once known (the daemon reports a failure with
/// it).
pub fn poll(
    settings: &Settings,
    clock: Clock,
    release: &mut Option<Details>,
) -> Result<PollOutcome> {
    let (plan, _) = plan(settings, clock.now())?;
    remember_channel(settings, &plan.channel, plan.issued)?;
    let details = Details {
        version: plan.release.as_ref().map(|r| r.version.to_string()),
        digest: plan.release.as_ref().map(|r| r.digest.hex()),
        slot: None,
        reason: None,
    };
    *release = Some(details.clone());
    let digest = details.digest.clone();
    let mut progress = crate::install::progress::Progress::Quiet;
    let did = match &plan.action {
        Action::Idle | Action::Wait { .. } => plan.reason.clone(),
        Action::Install {
            activate: then_boot,
        } => {
            let url = plan.manifest_url.as_deref().unwrap_or_default();
            notify::notify(&format!("STATUS=installing: {}", plan.reason));
            report::record(settings, EventKind::Downloading, details.clone());
            let out = crate::install::apply(
                settings,
                url,
                digest.as_deref(),
                &mut progress,
                crate::install::Then::Stay,
            )?;
            report::record(
                settings,
                EventKind::Installed,
                Details {
                    slot: Some(out.group.clone()),
                    ..details
                },
            );
            // The window may have closed during a long download.
            let still = match settings.daemon.strategy {
                Strategy::Window => settings
                    .daemon
                    .window
                    .as_ref()
                    .is_some_and(|w| window_contains(w, clock.now())),
                _ => true,
            };
            if *then_boot && still {
                activate(settings, digest.as_deref())?;
                format!(
                    "installed {} into slot {} and started its trial",
                    out.version, out.group
                )
            } else {
                format!("installed {} into slot {}", out.version, out.group)
            }
        }
        Action::Activate => {
            activate(settings, digest.as_deref())?;
            format!("started the trial: {}", plan.reason)
        }
    };
    Ok(PollOutcome { plan, did })
}

/// Boot the installed release (which must be `digest`) as a trial, by
/// kexec or reboot as `kexec.policy` says. `trial-started` is reported by
/// the trial step itself, once the trial is recorded.
fn activate(settings: &Settings, digest: Option<&str>) -> Result<()> {
    notify::notify("STATUS=booting the new release as a trial");
    let how = crate::install::How::from_policy(settings);
    let mut progress = crate::install::progress::Progress::Quiet;
    crate::install::with_then(settings, how, |then| {
        crate::install::activate(settings, digest, &mut progress, then)
    })?;
    Ok(())
}

/// A uniformly random duration up to `max`.
fn jitter(max: Duration) -> Duration {
    let mut b = [0u8; 8];
    if getrandom::getrandom(&mut b).is_err() {
        return Duration::ZERO;
    }
    let ms = max.as_millis() as u64;
    if ms == 0 {
        return Duration::ZERO;
    }
    Duration::from_millis(u64::from_le_bytes(b) % (ms + 1))
}

/// The daemon's heartbeat: the loop stamps it; the systemd watchdog is fed
/// only while the stamp is fresh, so a hung loop gets the service restarted.
#[derive(Clone)]
struct Heartbeat {
    start: Instant,
    last_ms: Arc<AtomicU64>,
}

impl Heartbeat {
    fn new() -> Heartbeat {
        Heartbeat {
            start: Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
        }
    }

    fn beat(&self) {
        self.last_ms
            .store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn age(&self) -> Duration {
        let now = self.start.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }
}

/// Options of `updater daemon`.
#[derive(Debug, Clone, Copy)]
pub struct DaemonOptions {
    /// Poll once, then exit with that poll's result.
    pub once: bool,
    /// The clock.
    pub clock: Clock,
}

/// Run the daemon.
pub fn run(settings: &Settings, o: DaemonOptions) -> Result<()> {
    // A device without a channel is updated by hand: nothing to follow, and
    // not a failure of the service.
    let Some(url) = settings.daemon.channel.clone() else {
        let msg = "no daemon.channel configured: nothing to follow (updates are applied by hand)";
        // A Type=notify service that exits before READY=1 counts as failed.
        notify::notify(&format!("READY=1\nSTATUS={msg}"));
        println!("{msg}");
        return Ok(());
    };
    // Everything that can be wrong before the first poll is a configuration
    // error that stops the service (exit 2), not something to retry forever.
    let device = settings.device.id()?;
    let keyring = updater_format::keys::Keyring::load(&settings.keyring)
        .map_err(|e| usage(format!("{}", OneLine(&e))))?;
    channel::require_channel_role(&keyring)?;
    let name = channel_name(settings)?;
    tracing::info!(
        "following channel {name} at {url} as device {device} ({}, strategy {:?})",
        settings.compatible,
        settings.daemon.strategy
    );
    let heartbeat = Heartbeat::new();
    heartbeat.beat();
    if let Some(interval) = notify::watchdog_interval() {
        let hb = heartbeat.clone();
        // Ping at half the interval while the loop is alive. The loop beats
        // at least every second while it sleeps, with every install progress
        // step and every retry wait, so a stall longer than the interval
        // stops the pings and systemd restarts the service.
        std::thread::spawn(move || loop {
            if hb.age() < interval {
                notify::notify("WATCHDOG=1");
            }
            std::thread::sleep(interval / 2);
        });
        crate::install::progress::set_heartbeat(Box::new({
            let hb = heartbeat.clone();
            move || hb.beat()
        }));
    }
    notify::notify("READY=1");
    if !o.once {
        // A fleet that powers up together must not poll together.
        sleep_beating(&heartbeat, jitter(settings.daemon.jitter));
    }
    let mut failures: u32 = 0;
    let mut last_failure: Option<(ExitCode, Option<String>)> = None;
    loop {
        heartbeat.beat();
        report::flush(settings);
        let mut release = None;
        let result = poll(settings, o.clock, &mut release);
        heartbeat.beat();
        report::flush(settings);
        let delay = match &result {
            Ok(out) => {
                failures = 0;
                last_failure = None;
                tracing::info!("{}", out.did);
                notify::notify(&format!("STATUS={}", out.did));
                let mut next = settings.daemon.interval + jitter(settings.daemon.jitter);
                if let Action::Wait { until: Some(t) } = out.plan.action {
                    // Not all at the same second: the whole cohort waits for
                    // the same window or not_before.
                    let until = (t - o.clock.now()).to_std().unwrap_or(Duration::ZERO);
                    next =
                        next.min(until + Duration::from_secs(1) + jitter(settings.daemon.jitter));
                }
                next
            }
            Err(e) => {
                failures += 1;
                let line = OneLine(e).to_string();
                tracing::error!("poll failed ({failures} in a row): {line}");
                notify::notify(&format!("STATUS=poll failed: {line}"));
                // Reported once per kind of failure and release, not at every
                // retry (a frozen channel must not make the whole fleet
                // report every few minutes).
                let details = release.unwrap_or_default();
                let key = (crate::error::classify(e), details.digest.clone());
                if last_failure.as_ref() != Some(&key) {
                    report::record(settings, EventKind::Failed, details.because(&line));
                    report::flush(settings);
                }
                last_failure = Some(key);
                retry_delay(settings, failures) + jitter(settings.daemon.retry_initial)
            }
        };
        if o.once {
            return result.map(|out| {
                println!("{}", out.did);
            });
        }
        tracing::debug!("next poll in {:?}", delay);
        sleep_beating(&heartbeat, delay);
    }
}

/// The delay after `failures` failed polls in a row: `retry_initial`
/// doubling per failure, at most `retry_max` (jitter is added by the caller).
pub fn retry_delay(settings: &Settings, failures: u32) -> Duration {
    let exp = 1u32 << failures.saturating_sub(1).min(20);
    settings
        .daemon
        .retry_initial
        .saturating_mul(exp)
        .min(settings.daemon.retry_max)
}

/// Sleep, stamping the heartbeat at least every second.
fn sleep_beating(heartbeat: &Heartbeat, d: Duration) {
    let until = Instant::now() + d;
    loop {
        heartbeat.beat();
        let now = Instant::now();
        if now >= until {
            return;
        }
        std::thread::sleep(Duration::from_secs(1).min(until - now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveTime;

    fn window(days: [bool; 7], start: &str, end: &str, tz: &str) -> MaintenanceWindow {
        MaintenanceWindow {
            days,
            start: NaiveTime::parse_from_str(start, "%H:%M").unwrap(),
            end: NaiveTime::parse_from_str(end, "%H:%M").unwrap(),
            timezone: tz.parse().unwrap(),
        }
    }

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn window_in_a_time_zone() {
        // Weekdays 02:00-04:00 in Berlin (UTC+1 in winter).
        let w = window(
            [true, true, true, true, true, false, false],
            "02:00",
            "04:00",
            "Europe/Berlin",
        );
        // Friday 2026-11-27 01:30 UTC = 02:30 Berlin: open.
        assert!(window_contains(&w, t("2026-11-27T01:30:00Z")));
        // 03:30 UTC = 04:30 Berlin: closed.
        assert!(!window_contains(&w, t("2026-11-27T03:30:00Z")));
        // Saturday: closed; next open is Monday 02:00 Berlin = 01:00 UTC.
        assert!(!window_contains(&w, t("2026-11-28T01:30:00Z")));
        assert_eq!(
            window_next_open(&w, t("2026-11-28T01:30:00Z")),
            t("2026-11-30T01:00:00Z")
        );
        // Summer time: 02:00 Berlin = 00:00 UTC.
        assert_eq!(
            window_next_open(&w, t("2026-07-01T12:00:00Z")),
            t("2026-07-02T00:00:00Z")
        );
    }

    #[test]
    fn failed_polls_back_off_exponentially_up_to_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("c.toml");
        std::fs::write(
            &cfg,
            "compatible = \"x\"\nstate_dir = \"/s\"\nkeyring = \"/k\"\n[bootloader]\nbackend = \"file\"\npath = \"/e\"\n[slots.A.targets]\nrootfs = \"/a\"\n[slots.B.targets]\nrootfs = \"/b\"\n[daemon]\nretry_initial_secs = 60\nretry_max_secs = 900\n",
        )
        .unwrap();
        let s = crate::config::load(Some(&cfg)).unwrap();
        let secs: Vec<u64> = (1..=6).map(|n| retry_delay(&s, n).as_secs()).collect();
        assert_eq!(secs, [60, 120, 240, 480, 900, 900]);
        assert_eq!(retry_delay(&s, 200).as_secs(), 900);
    }

    #[test]
    fn windows_across_daylight_saving_switches() {
        let every = [true; 7];
        // Berlin springs forward on 2026-03-29 at 02:00 (to 03:00 CEST).
        let w = window(every, "02:00", "04:00", "Europe/Berlin");
        assert_eq!(
            window_next_open(&w, t("2026-03-28T12:00:00Z")),
            t("2026-03-29T01:00:00Z")
        );
        // A window partly inside the gap opens when the gap ends...
        let part = window(every, "02:15", "03:10", "Europe/Berlin");
        assert_eq!(
            window_next_open(&part, t("2026-03-28T12:00:00Z")),
            t("2026-03-29T01:00:00Z")
        );
        // ...and one wholly inside it skips that day.
        let gap = window(every, "02:00", "02:30", "Europe/Berlin");
        assert_eq!(
            window_next_open(&gap, t("2026-03-28T12:00:00Z")),
            t("2026-03-30T00:00:00Z")
        );
        assert!(!window_contains(&gap, t("2026-03-29T01:15:00Z")));
        // It falls back on 2026-10-25 at 03:00 (02:00-03:00 twice): the
        // window opens at the first 02:00 and stays open through both.
        assert_eq!(
            window_next_open(&w, t("2026-10-24T12:00:00Z")),
            t("2026-10-25T00:00:00Z")
        );
        assert!(window_contains(&w, t("2026-10-25T01:30:00Z")));
        assert!(window_contains(&w, t("2026-10-25T02:30:00Z")));
        assert!(!window_contains(&w, t("2026-10-25T03:00:00Z")));
    }

    #[test]
    fn window_across_midnight() {
        // Saturday 23:00 to Sunday 01:00, UTC.
        let w = window(
            [false, false, false, false, false, true, false],
            "23:00",
            "01:00",
            "UTC",
        );
        assert!(window_contains(&w, t("2026-11-28T23:30:00Z")));
        assert!(window_contains(&w, t("2026-11-29T00:30:00Z")));
        assert!(!window_contains(&w, t("2026-11-29T01:30:00Z")));
        assert!(!window_contains(&w, t("2026-11-27T23:30:00Z")));
        assert_eq!(
            window_next_open(&w, t("2026-11-27T12:00:00Z")),
            t("2026-11-28T23:00:00Z")
        );
    }
}
