//! The one clock of a command.
//!
//! Every time the agent compares or records (expiry of manifests and
//! channels, trial deadlines, maintenance windows, timestamps in the state
//! and in reports) comes from the [`Clock`] the command was started with:
//! the system clock, or a fixed time given with `--now` (tests, and "what
//! would happen at ..."). Nothing below the command line calls `Utc::now()`
//! itself, so a test that fixes the time fixes it everywhere.

use chrono::{DateTime, SubsecRound, Utc};

/// The time source of a command: the system clock or a fixed time, never
/// earlier than the floor (the latest signed time the device has accepted;
/// `state::floor`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Clock {
    fixed: Option<DateTime<Utc>>,
    floor: Option<DateTime<Utc>>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock {
            fixed: None,
            floor: None,
        }
    }

    /// A clock stopped at `t`.
    pub fn fixed(t: DateTime<Utc>) -> Clock {
        Clock {
            fixed: Some(t),
            floor: None,
        }
    }

    /// The system clock, or `t` when given (`--now`).
    pub fn from_option(t: Option<DateTime<Utc>>) -> Clock {
        Clock {
            fixed: t,
            floor: None,
        }
    }

    /// The same clock, never earlier than `floor`.
    pub fn with_floor(self, floor: Option<DateTime<Utc>>) -> Clock {
        Clock {
            floor: self.floor.max(floor),
            ..self
        }
    }

    /// The floor.
    pub fn floor(&self) -> Option<DateTime<Utc>> {
        self.floor
    }

    /// The time now, in whole seconds (what the state and reports record):
    /// the clock, or the floor when the clock is behind it.
    pub fn now(&self) -> DateTime<Utc> {
        let t = self.fixed.unwrap_or_else(|| Utc::now().trunc_subsecs(0));
        match self.floor {
            Some(f) if f > t => f,
            _ => t,
        }
    }

    /// Whether the clock is fixed (`--now`).
    pub fn is_fixed(&self) -> bool {
        self.fixed.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_clock_stays_put() {
        let t = DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let c = Clock::fixed(t);
        assert_eq!(c.now(), t);
        assert!(c.is_fixed());
        assert_eq!(Clock::from_option(None), Clock::system());
        assert!(!Clock::system().is_fixed());
        // The floor wins over a clock behind it, not over one ahead.
        let later = t + chrono::Duration::days(3);
        assert_eq!(c.with_floor(Some(later)).now(), later);
        assert_eq!(Clock::fixed(later).with_floor(Some(t)).now(), later);
    }
}
