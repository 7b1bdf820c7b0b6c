//! The state folder: `state.json`, replaced atomically, under an exclusive
//! lock held for the whole command.
//!
//! A corrupt or unknown-version state file is an error that names the file;
//! it is never silently replaced, because it holds the anti-rollback floor
//! and the pending trial.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;

use super::{UpdateState, STATE_VERSION};
/// Another updater holds the state lock (exit code 8).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BusyError(pub String);

/// The state cannot be used as it is: corrupt, or of a version this agent
/// does not read (exit code 10).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StateCorruptError(pub String);
use crate::util::fs::write_atomic;

/// The state file's name in the state directory.
pub const STATE_FILE: &str = "state.json";
const LOCK_FILE: &str = "lock";

/// The state directory, locked for as long as this value lives.
pub struct StateStore {
    dir: PathBuf,
    _lock: File,
}

impl StateStore {
    /// Lock the state directory (created if missing). Fails at once if another
    /// agent holds the lock: two agents writing slots at once would corrupt
    /// both the slot and the state.
    pub fn open(dir: &Path) -> Result<StateStore> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating state directory {}", dir.display()))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = crate::util::fs::open_lock(&lock_path).with_context(|| {
            format!(
                "opening the lock file {} (a link there is refused)",
                lock_path.display()
            )
        })?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(BusyError(format!(
                    "another updater is running (it holds {}); wait for it to finish",
                    lock_path.display()
                ))
                .into())
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("locking {}", lock_path.display()))
            }
        }
        Ok(StateStore {
            dir: dir.to_path_buf(),
            _lock: lock,
        })
    }

    /// The state file's path.
    pub fn path(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }

    /// Read the state; `None` if there is no state file yet.
    pub fn load(&self) -> Result<Option<UpdateState>> {
        read_state(&self.path())
    }

    /// Write the state atomically and durably.
    pub fn save(&self, state: &UpdateState) -> Result<()> {
        let mut bytes = serde_json::to_vec_pretty(state).context("encoding the state")?;
        bytes.push(b'\n');
        crate::failpoint!("state-save");
        write_atomic(&self.path(), &bytes, 0o644)
    }
}

/// The process that holds the state lock of `dir` now, if one does: read
/// from /proc/locks, without taking or touching the lock (status must
/// never make another command's lock fail, nor write).
pub fn lock_holder(dir: &Path) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::metadata(dir.join(LOCK_FILE)).ok()?;
    let dev = md.dev();
    let id = format!(
        "{:02x}:{:02x}:{}",
        libc::major(dev),
        libc::minor(dev),
        md.ino()
    );
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    locks.lines().find_map(|l| {
        // "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.get(1) == Some(&"FLOCK") && f.get(5) == Some(&id.as_str()))
            .then(|| f.get(4)?.parse().ok())
            .flatten()
    })
}

/// Where the verified manifest of the release installed in `group` is kept
/// (`STATE_DIR/releases/GROUP.manifest.json`), so that the release can be
/// booted later (`updater activate`, the daemon's window) without fetching
/// anything, and verified again first.
pub fn kept_manifest(state_dir: &Path, group: &str) -> PathBuf {
    state_dir
        .join("releases")
        .join(format!("{group}.manifest.json"))
}

/// Where the chunk index of the release installed in `group` is kept, per
/// image class (`STATE_DIR/releases/GROUP.CLASS.index`): the next delta
/// finds that slot's chunks through it, and fetches only the index pages it
/// does not already have.
pub fn kept_index(state_dir: &Path, group: &str, class: &str) -> PathBuf {
    state_dir
        .join("releases")
        .join(format!("{group}.{class}.index"))
}

/// Where the index of an install in progress is kept until it finishes (a
/// resumed install reads its pages from there).
pub fn staged_index(state_dir: &Path, group: &str, class: &str) -> PathBuf {
    state_dir
        .join("releases")
        .join(format!("{group}.{class}.index.installing"))
}

/// What the last install fetched and reused (`status --json` shows it).
pub fn last_install(state_dir: &Path) -> PathBuf {
    state_dir.join("last-install.json")
}

/// Read a state file without taking the lock (for `status`, which must work
/// while an install runs). `None` if it does not exist.
pub fn read_state(path: &Path) -> Result<Option<UpdateState>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    #[derive(Deserialize)]
    struct VersionOnly {
        version: u32,
    }
    let corrupt = |e: serde_json::Error| -> anyhow::Error {
        StateCorruptError(format!(
            "state file {} is corrupt ({e}); it was left as is: inspect it, then move it away to start from a fresh state",
            path.display()
        ))
        .into()
    };
    let v: VersionOnly = serde_json::from_slice(&bytes).map_err(corrupt)?;
    if v.version != STATE_VERSION {
        return Err(StateCorruptError(format!(
            "state file {} has version {}, this agent reads version {STATE_VERSION}; use a matching agent",
            path.display(),
            v.version
        ))
        .into());
    }
    serde_json::from_slice(&bytes).map(Some).map_err(corrupt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Release;

    #[test]
    fn round_trip_and_lock() {
        let d = tempfile::tempdir().unwrap();
        let store = StateStore::open(d.path()).unwrap();
        assert!(store.load().unwrap().is_none());
        let mut s = UpdateState::fresh(&["A".into(), "B".into()], "A");
        let release = Release {
            digest: "d".repeat(64),
            version: "1.0.0".into(),
            security_version: 1,
        };
        let t = chrono::DateTime::parse_from_rfc3339("2026-03-01T00:00:00Z").unwrap();
        s.begin_install("B", &release, t.into()).unwrap();
        store.save(&s).unwrap();
        assert_eq!(store.load().unwrap().unwrap(), s);
        // A second agent cannot take the lock while the first holds it.
        let e = StateStore::open(d.path()).err().unwrap().to_string();
        assert!(e.contains("another updater is running"), "{e}");
        drop(store);
        StateStore::open(d.path()).unwrap();
    }

    #[test]
    fn corrupt_or_unknown_version_is_reported_not_replaced() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(STATE_FILE);
        std::fs::write(&p, b"{\"version\": 1, \"groups\": ").unwrap();
        let e = read_state(&p).unwrap_err().to_string();
        assert!(e.contains("is corrupt") && e.contains("left as is"), "{e}");
        std::fs::write(&p, b"{\"version\": 7}").unwrap();
        let e = read_state(&p).unwrap_err().to_string();
        assert!(e.contains("has version 7"), "{e}");
        assert_eq!(std::fs::read(&p).unwrap(), b"{\"version\": 7}");
    }
}
