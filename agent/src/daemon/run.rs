//! The daemon's run loop: poll at an interval plus jitter, back off after
//! failures, speak sd_notify (READY, STATUS, WATCHDOG while the loop makes
//! progress), and flush the report outbox.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::poll::poll;
use crate::clock::Clock;
use crate::config::Settings;
use crate::error::{usage, ExitCode, OneLine};
use crate::fleet::Action;
use crate::flow::check::channel_name;
use crate::report::{self, EventKind};
use crate::util::notify;

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
        crate::say!("{msg}");
        return Ok(());
    };
    // Everything that can be wrong before the first poll is a configuration
    // error that stops the service (exit 2), not something to retry forever.
    let device = settings.device.id()?;
    let keyring = crate::util::perm::load_keyring(
        &settings.keyring,
        settings.security.allow_insecure_permissions,
    )
    .map_err(|e| usage(format!("{}", OneLine(&e))))?;
    updater_format::channel::require_channel_role(&keyring)?;
    let name = channel_name(settings)?;
    tracing::info!(
        "following channel {name} at {url} as device {device} ({}, strategy {:?}), polling every {} (plus up to {} of jitter)",
        settings.compatible,
        settings.daemon.strategy,
        human_secs(settings.daemon.interval),
        human_secs(settings.daemon.jitter)
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
        crate::util::heartbeat::set_heartbeat(Box::new({
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
                    report::record(
                        settings,
                        EventKind::Failed,
                        details.because(&line),
                        o.clock.now(),
                    );
                    report::flush(settings);
                }
                last_failure = Some(key);
                retry_delay(settings, failures) + jitter(settings.daemon.retry_initial)
            }
        };
        if o.once {
            return result.map(|out| {
                crate::say!("{}", out.did);
            });
        }
        if let Ok(out) = &result {
            tracing::info!("{}; next poll in {}", out.did, human_secs(delay));
        } else {
            tracing::info!("next poll in {}", human_secs(delay));
        }
        sleep_beating(&heartbeat, delay);
    }
}

/// A duration for people: `45s`, `12m`, `3h 20m`.
fn human_secs(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        _ => format!("{}h {}m", s / 3600, s % 3600 / 60),
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
}
