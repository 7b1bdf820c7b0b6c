//! Weekly maintenance windows in a time zone, across midnight and daylight
//! saving switches.

use chrono::{DateTime, Datelike, TimeZone, Utc};

use crate::config::MaintenanceWindow;

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
