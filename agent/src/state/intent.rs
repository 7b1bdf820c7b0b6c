//! An intent: what a command that changes the bootloader and the state in
//! several durable steps is about to do, written before its first step.
//!
//! Marking a slot bad takes two or four durable writes (remember its
//! release as bad, move the default away from it, make it unbootable,
//! record it bad with the reason) in two places, the state and the
//! bootloader env, which no single write can change together on every
//! backend. A crash between them used to leave a device that a second run
//! of the same command read differently: a rollback run again rolled back
//! from the *new* default. So the command first records, durably, which
//! slot it marks bad, why, and where the default goes; every session that
//! finds the record finishes that work before anything else
//! (a session does it as it opens), and the command run again reports
//! it finished instead of starting a new one. The record is removed last.
//!
//! Kept in `intent.json` beside `state.json` (which older agents read and
//! which therefore never gains a field). An older agent ignores the file; a
//! record it leaves is finished by this agent's next session.

use std::path::{Path, PathBuf};

use super::store::StateCorruptError;
use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::util::fs::{remove_durable, write_atomic};

/// The intent's file in the state folder.
pub const INTENT_FILE: &str = "intent.json";

/// What is to be done.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Intent {
    /// The file's format version, 1.
    pub version: u32,
    /// The command that started it (`rollback`, `mark-bad`, `health`):
    /// run again, that command reports this work finished.
    pub by: String,
    /// The slot marked bad.
    pub group: String,
    /// The digest of the release it held (what is remembered as bad).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Why, as recorded in the state.
    pub reason: String,
    /// The slot that becomes the bootloader's default first, when the slot
    /// marked bad is the default now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_to: Option<String>,
    /// When the command started it (its clock).
    pub started: DateTime<Utc>,
}

fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(INTENT_FILE)
}

/// The pending intent, if any.
pub fn read(state_dir: &Path) -> Result<Option<Intent>> {
    let p = path(state_dir);
    let bytes = match std::fs::read(&p) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", p.display())),
    };
    let i: Intent = serde_json::from_slice(&bytes).map_err(|e| {
        StateCorruptError(format!(
            "{} is corrupt ({e}); it records a slot being marked bad when a command stopped: check `updater status` and the bootloader env, finish by hand with `updater mark-bad SLOT`, then move the file away",
            p.display()
        ))
    })?;
    if i.version != 1 {
        return Err(StateCorruptError(format!(
            "{} has version {}, this agent reads version 1; use a matching agent",
            p.display(),
            i.version
        ))
        .into());
    }
    Ok(Some(i))
}

/// Record `intent` durably (before the first step it describes).
pub fn write(state_dir: &Path, intent: &Intent) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(intent).expect("an intent serialises");
    bytes.push(b'\n');
    write_atomic(&path(state_dir), &bytes, 0o644)
}

/// Remove the record durably (after its last step).
pub fn clear(state_dir: &Path) -> Result<()> {
    remove_durable(&path(state_dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_intent_round_trips_and_a_damaged_one_is_named() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(read(d.path()).unwrap(), None);
        let i = Intent {
            version: 1,
            by: "rollback".into(),
            group: "B".into(),
            digest: Some("d".repeat(64)),
            reason: "rolled back".into(),
            default_to: Some("A".into()),
            started: "2026-03-01T00:00:00Z".parse().unwrap(),
        };
        write(d.path(), &i).unwrap();
        assert_eq!(read(d.path()).unwrap(), Some(i));
        clear(d.path()).unwrap();
        assert_eq!(read(d.path()).unwrap(), None);
        clear(d.path()).unwrap();
        std::fs::write(d.path().join(INTENT_FILE), "{").unwrap();
        let e = read(d.path()).unwrap_err().to_string();
        assert!(e.contains("intent.json is corrupt"), "{e}");
    }
}
