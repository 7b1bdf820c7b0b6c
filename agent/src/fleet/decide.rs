//! The daemon's decision: a pure function of the state, the channel, the
//! strategy and the time. No I/O, so every case is a row of the table test
//! below.

use chrono::{DateTime, Utc};
use updater_format::channel::{self, Channel};

use super::strategy::{self, Ready};
use crate::config::{MaintenanceWindow, Strategy};
use crate::state::{Phase, UpdateState};

pub use super::action::Action;

/// Everything the decision looks at.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    /// This device's compatible string.
    pub compatible: &'a str,
    /// The strategy.
    pub strategy: Strategy,
    /// The maintenance window (the window strategy).
    pub window: Option<&'a MaintenanceWindow>,
    /// The update state.
    pub state: &'a UpdateState,
    /// The booted group.
    pub booted: &'a str,
    /// The group an install would write.
    pub target: &'a str,
    /// The verified channel.
    pub channel: &'a Channel,
    /// This device's id (rollout bucket).
    pub device: &'a str,
    /// Whether the target group's kept manifest exists (a slot installed by
    /// an older agent has none and is installed again).
    pub kept_manifest: bool,
    /// The time now.
    pub now: DateTime<Utc>,
}

/// What to do, why, and this device's bucket for the release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// What to do.
    pub action: Action,
    /// Why, in words.
    pub reason: String,
    /// This device's bucket for the release (0..10000), when there is one.
    pub bucket: Option<u32>,
}

/// Decide what to do (pure: no I/O).
pub fn decide(i: &Inputs) -> Decision {
    let Some(r) = i.channel.release_for(i.compatible) else {
        return Decision {
            action: Action::Idle,
            reason: format!(
                "channel {:?} names no release for compatible {:?}",
                i.channel.name, i.compatible
            ),
            bucket: None,
        };
    };
    let bucket = channel::bucket(i.device, &r.version);
    let idle = |reason: String| Decision {
        action: Action::Idle,
        reason,
        bucket: Some(bucket),
    };
    if let Some(t) = i.state.trial() {
        return idle(format!(
            "a trial of slot {} is pending; `updater health` decides it at the slot's next boot (after a kexec commit, its first boot through the bootloader)",
            t.group
        ));
    }
    let digest = r.digest.hex();
    let booted = i.booted;
    let running = i.state.group(booted);
    if running.digest() == Some(digest.as_str()) {
        return idle(format!("up to date: slot {booted} runs {}", r.version));
    }
    if let Some(b) = i.state.bad_release(&digest, &r.version.to_string()) {
        return idle(format!(
            "release {} failed on this device ({}) and is not retried; waiting for a newer release",
            r.version, b.reason
        ));
    }
    if let Some(v) = running
        .version()
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
    let tg = i.state.group(i.target);
    let installed = i.state.phase(i.target) == Phase::Installed
        && tg.digest() == Some(digest.as_str())
        && i.kept_manifest;
    let ready = Ready {
        version: &r.version,
        target: i.target,
        installed,
        boot_from: r.not_before.filter(|t| *t > i.now),
        now: i.now,
    };
    let (action, reason) = strategy::decide(i.strategy, i.window, &ready);
    Decision {
        action,
        reason,
        bucket: Some(bucket),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Release;
    use updater_format::channel::ChannelRelease;
    use updater_format::Sha256Digest;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    const NEW: &str = "2.0.0";

    fn digest(v: &str) -> Sha256Digest {
        Sha256Digest::of(v.as_bytes())
    }

    /// The device: A booted and good, running 1.0.0; B empty.
    fn device() -> UpdateState {
        let mut s = UpdateState::fresh(&["A".into(), "B".into()], "A");
        // Reach "A good with 1.0.0" through the transitions, as a device
        // would: install into A, try it, commit it.
        let now = t("2026-01-01T00:00:00Z");
        let r = Release {
            digest: digest("1.0.0").hex(),
            version: "1.0.0".into(),
            security_version: 1,
        };
        s.begin_install("A", &r, now).unwrap();
        s.finish_install("A", now).unwrap();
        s.start_trial("A", now, now).unwrap();
        s.confirm("A").unwrap();
        s.commit("A", now).unwrap();
        s
    }

    fn release(version: &str) -> Release {
        Release {
            digest: digest(version).hex(),
            version: version.into(),
            security_version: 1,
        }
    }

    fn channel(percent: f64, not_before: Option<&str>) -> Channel {
        Channel {
            schema: 1,
            name: "stable".into(),
            issued: t("2026-01-01T00:00:00Z"),
            expires: t("2026-01-08T00:00:00Z"),
            releases: vec![ChannelRelease {
                compatible: "acme-gw".into(),
                version: NEW.parse().unwrap(),
                manifest: "2.0.0/manifest.json".into(),
                digest: digest(NEW),
                rollout_percent: percent,
                not_before: not_before.map(t),
            }],
        }
    }

    /// Weekdays 02:00-04:00 UTC.
    fn window() -> MaintenanceWindow {
        MaintenanceWindow {
            days: [true, true, true, true, true, false, false],
            start: chrono::NaiveTime::from_hms_opt(2, 0, 0).unwrap(),
            end: chrono::NaiveTime::from_hms_opt(4, 0, 0).unwrap(),
            timezone: chrono_tz::UTC,
        }
    }

    /// What a row sets up.
    #[derive(Clone, Copy)]
    enum B {
        /// Slot B empty.
        Empty,
        /// The new release installed in B (with its kept manifest).
        Installed,
        /// Installed, but its kept manifest is missing.
        InstalledNoManifest,
        /// B on trial.
        Trial,
        /// The new release failed here before.
        FailedHere,
        /// A re-signed copy of the new release (same version, another
        /// digest) failed here before.
        SameVersionFailed,
        /// A runs the new release already.
        Running,
        /// A runs a newer release than the channel's.
        RunningNewer,
    }

    fn state_for(b: B) -> UpdateState {
        let now = t("2026-01-02T00:00:00Z");
        let mut s = device();
        match b {
            B::Empty => {}
            B::Installed | B::InstalledNoManifest | B::Trial => {
                s.begin_install("B", &release(NEW), now).unwrap();
                s.finish_install("B", now).unwrap();
                if matches!(b, B::Trial) {
                    s.start_trial("B", now, now).unwrap();
                }
            }
            B::FailedHere | B::SameVersionFailed => {
                let r = if matches!(b, B::FailedHere) {
                    release(NEW)
                } else {
                    Release {
                        digest: digest("2.0.0 re-signed").hex(),
                        ..release(NEW)
                    }
                };
                s.begin_install("B", &r, now).unwrap();
                s.finish_install("B", now).unwrap();
                s.mark_bad("B", "app did not start", now).unwrap();
            }
            B::Running | B::RunningNewer => {
                let v = if matches!(b, B::Running) {
                    NEW
                } else {
                    "3.0.0"
                };
                s = UpdateState::fresh(&["A".into(), "B".into()], "A");
                s.begin_install("A", &release(v), now).unwrap();
                s.finish_install("A", now).unwrap();
                s.start_trial("A", now, now).unwrap();
                s.confirm("A").unwrap();
                s.commit("A", now).unwrap();
            }
        }
        s
    }

    #[test]
    fn the_decision_table() {
        use Action::*;
        let friday_noon = "2026-01-02T12:00:00Z"; // outside the window
        let friday_3am = "2026-01-02T03:00:00Z"; // inside
        let monday_2am = t("2026-01-05T02:00:00Z");
        // (case, slot B, rollout %, not_before, strategy, now, action, reason contains)
        #[allow(clippy::type_complexity)]
        let rows: &[(&str, B, f64, Option<&str>, Strategy, &str, Action, &str)] = &[
            (
                "trial pending",
                B::Trial,
                100.0,
                None,
                Strategy::Immediate,
                friday_noon,
                Idle,
                "trial of slot B is pending",
            ),
            (
                "up to date",
                B::Running,
                100.0,
                None,
                Strategy::Immediate,
                friday_noon,
                Idle,
                "up to date",
            ),
            (
                "failed here",
                B::FailedHere,
                100.0,
                None,
                Strategy::Immediate,
                friday_noon,
                Idle,
                "failed on this device",
            ),
            (
                "re-signed copy failed here",
                B::SameVersionFailed,
                100.0,
                None,
                Strategy::Immediate,
                friday_noon,
                Idle,
                "failed on this device",
            ),
            (
                "not newer",
                B::RunningNewer,
                100.0,
                None,
                Strategy::Immediate,
                friday_noon,
                Idle,
                "not newer",
            ),
            (
                "not in the rollout",
                B::Empty,
                0.0,
                None,
                Strategy::Immediate,
                friday_noon,
                Idle,
                "not in the rollout",
            ),
            (
                "immediate",
                B::Empty,
                100.0,
                None,
                Strategy::Immediate,
                friday_noon,
                Install { activate: true },
                "and boot it",
            ),
            (
                "immediate, installed",
                B::Installed,
                100.0,
                None,
                Strategy::Immediate,
                friday_noon,
                Activate,
                "as a trial",
            ),
            (
                "immediate, no kept manifest",
                B::InstalledNoManifest,
                100.0,
                None,
                Strategy::Immediate,
                friday_noon,
                Install { activate: true },
                "install",
            ),
            (
                "immediate, not before ahead",
                B::Empty,
                100.0,
                Some("2026-01-03T00:00:00Z"),
                Strategy::Immediate,
                friday_noon,
                Install { activate: false },
                "boot it from",
            ),
            (
                "immediate, not before ahead, installed",
                B::Installed,
                100.0,
                Some("2026-01-03T00:00:00Z"),
                Strategy::Immediate,
                friday_noon,
                Wait {
                    until: Some(t("2026-01-03T00:00:00Z")),
                },
                "allows booting",
            ),
            (
                "immediate, not before passed",
                B::Empty,
                100.0,
                Some("2026-01-01T00:00:00Z"),
                Strategy::Immediate,
                friday_noon,
                Install { activate: true },
                "and boot it",
            ),
            (
                "download-only",
                B::Empty,
                100.0,
                None,
                Strategy::DownloadOnly,
                friday_noon,
                Install { activate: false },
                "download-only",
            ),
            (
                "download-only, installed",
                B::Installed,
                100.0,
                None,
                Strategy::DownloadOnly,
                friday_noon,
                Wait { until: None },
                "updater activate",
            ),
            (
                "window, outside",
                B::Empty,
                100.0,
                None,
                Strategy::Window,
                friday_noon,
                Install { activate: false },
                "boots in the maintenance window at 2026-01-05T02:00:00",
            ),
            (
                "window, outside, installed",
                B::Installed,
                100.0,
                None,
                Strategy::Window,
                friday_noon,
                Wait {
                    until: Some(monday_2am),
                },
                "maintenance window",
            ),
            (
                "window, inside",
                B::Empty,
                100.0,
                None,
                Strategy::Window,
                friday_3am,
                Install { activate: true },
                "inside the maintenance window",
            ),
            (
                "window, inside, installed",
                B::Installed,
                100.0,
                None,
                Strategy::Window,
                friday_3am,
                Activate,
                "inside the maintenance window",
            ),
            (
                "window, inside but not before ahead",
                B::Installed,
                100.0,
                Some("2026-01-02T05:00:00Z"),
                Strategy::Window,
                friday_3am,
                Wait {
                    until: Some(monday_2am),
                },
                "maintenance window",
            ),
        ];
        let w = window();
        for (case, b, percent, not_before, strategy, now, action, why) in rows {
            let state = state_for(*b);
            let ch = channel(*percent, *not_before);
            let d = decide(&Inputs {
                compatible: "acme-gw",
                strategy: *strategy,
                window: Some(&w),
                state: &state,
                booted: "A",
                target: "B",
                channel: &ch,
                device: "device-0001",
                kept_manifest: !matches!(b, B::InstalledNoManifest),
                now: t(now),
            });
            assert_eq!(d.action, *action, "{case}: {}", d.reason);
            assert!(
                d.reason.contains(why),
                "{case}: {:?} lacks {why:?}",
                d.reason
            );
            assert_eq!(
                d.bucket,
                Some(channel::bucket("device-0001", &NEW.parse().unwrap())),
                "{case}"
            );
        }
    }

    #[test]
    fn a_channel_without_this_device_is_idle_without_a_bucket() {
        let state = device();
        let ch = channel(100.0, None);
        let d = decide(&Inputs {
            compatible: "other-board",
            strategy: Strategy::Immediate,
            window: None,
            state: &state,
            booted: "A",
            target: "B",
            channel: &ch,
            device: "device-0001",
            kept_manifest: true,
            now: t("2026-01-02T00:00:00Z"),
        });
        assert_eq!(d.action, Action::Idle);
        assert!(d.reason.contains("names no release"), "{}", d.reason);
        assert_eq!(d.bucket, None);
    }
}
