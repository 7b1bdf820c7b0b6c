//! `[daemon]` and `[daemon.window]`: following a channel, and when to apply.

use std::time::Duration;

use anyhow::Result;
use serde::{Deserialize, Deserializer};

use super::Origin;

/// Default poll interval of the daemon.
pub const DEFAULT_POLL_INTERVAL_SECS: u64 = 3600;
/// Default first delay after a failed poll.
pub const DEFAULT_RETRY_INITIAL_SECS: u64 = 60;
/// Default longest channel validity accepted.
pub const DEFAULT_MAX_CHANNEL_VALIDITY_DAYS: u32 = 31;

/// When the daemon applies a release it has found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Install into the inactive slot and wait for `updater activate`.
    DownloadOnly,
    /// Install and boot it as a trial at once.
    #[default]
    Immediate,
    /// Install at once; boot it only inside the maintenance window.
    Window,
}

/// A weekly maintenance window in a time zone.
#[derive(Debug, Clone, PartialEq)]
pub struct MaintenanceWindow {
    /// Allowed days (Monday first); the day the window opens.
    pub days: [bool; 7],
    /// Opening time of day (local).
    pub start: chrono::NaiveTime,
    /// Closing time of day (local); at or before `start` means the next day.
    pub end: chrono::NaiveTime,
    /// The time zone the times are in.
    pub timezone: chrono_tz::Tz,
}

/// `updater daemon` settings.
#[derive(Debug, Clone)]
pub struct DaemonSettings {
    /// The channel document's URL (http, https, file URL or path).
    pub channel: Option<String>,
    /// The channel name the document must carry (default: the URL's file
    /// name without extension).
    pub channel_name: Option<String>,
    /// The longest channel validity accepted.
    pub max_channel_validity: chrono::Duration,
    /// Poll interval.
    pub interval: Duration,
    /// Up to this much random delay is added to every poll.
    pub jitter: Duration,
    /// When to apply.
    pub strategy: Strategy,
    /// The maintenance window (required by the `window` strategy).
    pub window: Option<MaintenanceWindow>,
    /// First delay after a failed poll; doubles each failure.
    pub retry_initial: Duration,
    /// Longest delay after failures.
    pub retry_max: Duration,
}

/// `[daemon]` as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Raw {
    channel: Option<String>,
    channel_name: Option<String>,
    max_channel_validity_days: Option<u32>,
    interval_secs: Option<u64>,
    jitter_secs: Option<u64>,
    #[serde(default)]
    strategy: Strategy,
    retry_initial_secs: Option<u64>,
    retry_max_secs: Option<u64>,
    window: Option<RawWindow>,
}

/// `[daemon.window]` as written; each field is checked as it is read, so a
/// bad day or time is reported with its line.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWindow {
    #[serde(default, deserialize_with = "days")]
    days: Option<[bool; 7]>,
    #[serde(default, deserialize_with = "time_of_day")]
    start: Option<chrono::NaiveTime>,
    #[serde(default, deserialize_with = "time_of_day")]
    end: Option<chrono::NaiveTime>,
    #[serde(default, deserialize_with = "timezone")]
    timezone: Option<chrono_tz::Tz>,
}

/// Day names: any prefix of at least three letters (mon, tues, thurs,
/// friday), in any case.
fn day(name: &str) -> Option<usize> {
    const NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    const LONG: [&str; 7] = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];
    let lower = name.to_ascii_lowercase();
    NAMES
        .iter()
        .zip(LONG)
        .position(|(n, l)| lower.starts_with(n) && l.starts_with(&lower))
}

fn days<'de, D: Deserializer<'de>>(d: D) -> Result<Option<[bool; 7]>, D::Error> {
    let names = Vec::<String>::deserialize(d)?;
    let mut out = [false; 7];
    for n in &names {
        let i = day(n).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "{n:?} is not a day: use mon, tue, wed, thu, fri, sat, sun (or the full names)"
            ))
        })?;
        out[i] = true;
    }
    if !out.contains(&true) {
        return Err(serde::de::Error::custom(
            "the list of days is empty: the window would never open",
        ));
    }
    Ok(Some(out))
}

fn time_of_day<'de, D: Deserializer<'de>>(d: D) -> Result<Option<chrono::NaiveTime>, D::Error> {
    let s = String::deserialize(d)?;
    chrono::NaiveTime::parse_from_str(&s, "%H:%M")
        .map(Some)
        .map_err(|_| serde::de::Error::custom(format!("{s:?} is not a time of day HH:MM")))
}

fn timezone<'de, D: Deserializer<'de>>(d: D) -> Result<Option<chrono_tz::Tz>, D::Error> {
    let s = String::deserialize(d)?;
    s.parse().map(Some).map_err(|_| {
        serde::de::Error::custom(format!(
            "{s:?} is not an IANA time zone name such as \"Europe/Berlin\""
        ))
    })
}

pub(super) fn validate(d: Raw, origin: &Origin) -> Result<DaemonSettings> {
    let key = |k: &str| format!("daemon.{k}");
    let window = match d.window {
        None => None,
        Some(w) => Some(MaintenanceWindow {
            days: w.days.unwrap_or([true; 7]),
            start: w
                .start
                .ok_or_else(|| origin.missing("daemon.window.start (HH:MM)"))?,
            end: w
                .end
                .ok_or_else(|| origin.missing("daemon.window.end (HH:MM)"))?,
            timezone: w.timezone.unwrap_or(chrono_tz::UTC),
        }),
    };
    if d.strategy == Strategy::Window && window.is_none() {
        return Err(origin.invalid(
            &key("strategy"),
            ": \"window\" needs a [daemon.window] table (days, start, end, timezone)",
        ));
    }
    let interval = origin.positive_secs(
        d.interval_secs,
        DEFAULT_POLL_INTERVAL_SECS,
        &key("interval_secs"),
    )?;
    let channel_name = d
        .channel_name
        .or_else(|| d.channel.as_deref().and_then(channel_name_of));
    let validity_days = d
        .max_channel_validity_days
        .unwrap_or(DEFAULT_MAX_CHANNEL_VALIDITY_DAYS);
    if validity_days == 0 {
        return Err(origin.invalid(&key("max_channel_validity_days"), " must be positive"));
    }
    Ok(DaemonSettings {
        channel: d.channel,
        channel_name,
        max_channel_validity: chrono::Duration::days(validity_days.into()),
        interval,
        // By default up to a tenth of the interval, so a fleet that booted
        // together does not poll together.
        jitter: Duration::from_secs(d.jitter_secs.unwrap_or(interval.as_secs() / 10)),
        strategy: d.strategy,
        window,
        retry_initial: origin.positive_secs(
            d.retry_initial_secs,
            DEFAULT_RETRY_INITIAL_SECS,
            &key("retry_initial_secs"),
        )?,
        retry_max: origin.positive_secs(
            d.retry_max_secs,
            interval.as_secs().max(DEFAULT_RETRY_INITIAL_SECS),
            &key("retry_max_secs"),
        )?,
    })
}

/// The channel name a channel URL implies: its file's stem
/// (`…/gw/stable.json` → `stable`), as `daemon.channel_name` defaults.
pub fn channel_name_of(url: &str) -> Option<String> {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let last = path.trim_end_matches('/').rsplit('/').next()?;
    let stem = last.strip_suffix(".json").unwrap_or(last);
    (!stem.is_empty()).then(|| stem.to_string())
}

#[cfg(test)]
mod tests {
    use super::day;

    #[test]
    fn day_names_and_prefixes() {
        assert_eq!(day("mon"), Some(0));
        assert_eq!(day("Tues"), Some(1));
        assert_eq!(day("THURSDAY"), Some(3));
        assert_eq!(day("fri"), Some(4));
        for bad in ["mo", "monkey", "mon-fri", ""] {
            assert_eq!(day(bad), None, "{bad}");
        }
    }
}
