//! The clock floor: the latest time this device knows to have passed,
//! from signed timestamps it accepted (a manifest's `created`, a channel's
//! `issued`). It is the floor of every time the agent uses: a clock set
//! back after boot (or a board without a battery-backed clock that boots in
//! 1970) cannot make an expired release or channel valid again.
//!
//! Only signed times raise it, never the device's own clock: a clock set
//! far ahead once would otherwise push the floor ahead for good, and every
//! release would look expired from then on.
//!
//! Kept in `clock.json` beside `state.json` (which older agents read and
//! which therefore never gains a field); the channel replay floors in
//! `state.json` are signed times too and count as well.

use std::path::Path;

use super::store::StateCorruptError;
use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{read_state, STATE_FILE};
use crate::util::fs::write_atomic;

/// The floor's file in the state folder.
pub const FLOOR_FILE: &str = "clock.json";

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FloorFile {
    version: u32,
    latest: DateTime<Utc>,
    /// What the time came from, for people reading the file.
    source: String,
}

fn read_file(state_dir: &Path) -> Result<Option<FloorFile>> {
    let path = state_dir.join(FLOOR_FILE);
    match std::fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| {
            StateCorruptError(format!(
                "{} is corrupt ({e}); it holds the latest time this device has seen: inspect it, then move it away (the device then trusts its clock again until the next signed document)",
                path.display()
            ))
            .into()
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// The floor: the latest signed time the device accepted (`clock.json` and
/// the channels followed in `state.json`).
pub fn floor(state_dir: &Path) -> Result<Option<DateTime<Utc>>> {
    let from_file = read_file(state_dir)?.map(|f| f.latest);
    let from_channels = read_state(&state_dir.join(STATE_FILE))?
        .and_then(|s| s.channels_issued().values().max().copied());
    Ok(from_file.max(from_channels))
}

/// Raise the floor to `t` (a signed time just accepted; `source` says
/// which). Returns whether it rose.
pub fn raise(state_dir: &Path, t: DateTime<Utc>, source: &str) -> Result<bool> {
    if read_file(state_dir)?.is_some_and(|f| f.latest >= t) {
        return Ok(false);
    }
    let f = FloorFile {
        version: 1,
        latest: t,
        source: source.to_string(),
    };
    let mut bytes = serde_json::to_vec_pretty(&f).context("encoding the clock floor")?;
    bytes.push(b'\n');
    write_atomic(&state_dir.join(FLOOR_FILE), &bytes, 0o644)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn the_floor_only_rises() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(floor(d.path()).unwrap(), None);
        assert!(raise(d.path(), t("2026-02-10T00:00:00Z"), "manifest created").unwrap());
        assert!(!raise(d.path(), t("2026-01-01T00:00:00Z"), "older").unwrap());
        assert_eq!(floor(d.path()).unwrap(), Some(t("2026-02-10T00:00:00Z")));
        std::fs::write(d.path().join(FLOOR_FILE), "{").unwrap();
        assert!(floor(d.path())
            .unwrap_err()
            .to_string()
            .contains("latest time this device has seen"));
    }
}
