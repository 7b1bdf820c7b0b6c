//! The agent's durable state: one versioned JSON file in the state directory,
//! replaced atomically, under an exclusive lock held for the whole command.
//!
//! A corrupt or unknown-version state file is an error that names the file;
//! it is never silently replaced, because it holds the anti-rollback floor
//! and the pending trial.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::usage;
use crate::util::fs::write_atomic;

/// The state file's format version.
pub const STATE_VERSION: u32 = 1;
/// The state file's name in the state directory.
pub const STATE_FILE: &str = "state.json";
const LOCK_FILE: &str = "lock";

/// What a slot group holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum GroupStatus {
    /// Nothing known to be installed.
    #[default]
    Empty,
    /// Being written (or a write was interrupted): never bootable.
    Installing,
    /// Completely written and verified; not yet tried.
    Installed,
    /// Being tried once; not yet confirmed.
    Trial,
    /// Confirmed healthy.
    Good,
    /// Failed; never booted again until reinstalled.
    Bad,
}

impl GroupStatus {
    /// The status name.
    pub fn name(self) -> &'static str {
        match self {
            GroupStatus::Empty => "empty",
            GroupStatus::Installing => "installing",
            GroupStatus::Installed => "installed",
            GroupStatus::Trial => "trial",
            GroupStatus::Good => "good",
            GroupStatus::Bad => "bad",
        }
    }
}

/// The state of one slot group.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GroupState {
    /// Status.
    pub status: GroupStatus,
    /// Installed release version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Installed release's manifest digest (sha256 of the signed payload).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Installed release's security_version (becomes the anti-rollback
    /// floor when the group is committed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_version: Option<u64>,
    /// The last failure on this group and its reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When this entry last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated: Option<DateTime<Utc>>,
}

/// An install in progress, checkpointed so that a new `apply` of the same
/// release resumes instead of starting over.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InstallProgress {
    /// Target group.
    pub group: String,
    /// Manifest digest being installed.
    pub digest: String,
    /// Version being installed.
    pub version: String,
    /// Per image class: chunks known to be durably written (fsynced).
    pub chunks_done: BTreeMap<String, u64>,
}

/// A pending trial boot (recorded before the reboot or kexec).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Trial {
    /// Group being tried.
    pub group: String,
    /// When the trial started.
    pub started: DateTime<Utc>,
    /// When it must have confirmed.
    pub deadline: DateTime<Utc>,
    /// The health checks passed and the commit has begun (set durably before
    /// the bootloader is touched, so that a crash mid-commit can be told
    /// from an unconfirmed trial).
    #[serde(default)]
    pub confirmed: bool,
}

/// The whole state file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct State {
    /// Format version.
    pub version: u32,
    /// Per group.
    pub groups: BTreeMap<String, GroupState>,
    /// Highest security_version committed: the anti-rollback floor.
    pub highest_security_version: u64,
    /// Install in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install: Option<InstallProgress>,
    /// Pending trial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial: Option<Trial>,
    /// Releases that failed on this device (newest last): the daemon never
    /// installs them again, which is what stops an update loop.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bad_releases: Vec<BadRelease>,
    /// Per channel name, the `issued` time of the newest channel document
    /// acted on: an older one (a replay of a superseded channel) is refused.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub channels_issued: BTreeMap<String, DateTime<Utc>>,
}

/// A release marked bad on this device.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BadRelease {
    /// Its manifest digest.
    pub digest: String,
    /// Its version.
    pub version: Option<String>,
    /// Why it was marked bad.
    pub reason: String,
    /// When.
    pub when: DateTime<Utc>,
}

/// How many bad releases the state remembers (the oldest are forgotten; a
/// channel never goes back that far).
pub const BAD_RELEASES_KEPT: usize = 32;

impl State {
    /// A fresh state: the booted group is `good` (it is running and is the
    /// bootloader's default), the others `empty`.
    pub fn fresh(groups: &[String], booted: &str) -> State {
        State {
            version: STATE_VERSION,
            groups: groups
                .iter()
                .map(|g| {
                    let status = if g == booted {
                        GroupStatus::Good
                    } else {
                        GroupStatus::Empty
                    };
                    (
                        g.clone(),
                        GroupState {
                            status,
                            ..Default::default()
                        },
                    )
                })
                .collect(),
            highest_security_version: 0,
            install: None,
            trial: None,
            bad_releases: Vec::new(),
            channels_issued: BTreeMap::new(),
        }
    }

    /// Remember the release in `group` as bad (no-op when it has no digest
    /// or is already remembered).
    pub fn remember_bad(&mut self, group: &str, reason: &str) {
        let g = self.group(group);
        let Some(digest) = g.digest else { return };
        if self.bad_releases.iter().any(|b| b.digest == digest) {
            return;
        }
        self.bad_releases.push(BadRelease {
            digest,
            version: g.version,
            reason: reason.to_string(),
            when: Utc::now(),
        });
        let excess = self.bad_releases.len().saturating_sub(BAD_RELEASES_KEPT);
        self.bad_releases.drain(..excess);
    }

    /// The bad-release entry for a release, if this device marked it bad:
    /// the same digest, or the same version — a release re-signed only to
    /// extend its expiry has a new digest but is the same software, and
    /// must not be tried again (a fix gets a new version).
    pub fn bad_release(&self, digest: &str, version: &str) -> Option<&BadRelease> {
        self.bad_releases
            .iter()
            .find(|b| b.digest == digest || b.version.as_deref() == Some(version))
    }

    /// A group's state (created empty if the config gained a group).
    pub fn group_mut(&mut self, name: &str) -> &mut GroupState {
        self.groups.entry(name.to_string()).or_default()
    }

    /// A group's state.
    pub fn group(&self, name: &str) -> GroupState {
        self.groups.get(name).cloned().unwrap_or_default()
    }
}

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
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .with_context(|| format!("opening {}", lock_path.display()))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(usage(format!(
                    "another updater is running (it holds {}); wait for it to finish",
                    lock_path.display()
                )))
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
    pub fn load(&self) -> Result<Option<State>> {
        read_state(&self.path())
    }

    /// Write the state atomically and durably.
    pub fn save(&self, state: &State) -> Result<()> {
        let mut bytes = serde_json::to_vec_pretty(state).context("encoding the state")?;
        bytes.push(b'\n');
        crate::failpoint!("state-save");
        write_atomic(&self.path(), &bytes, 0o644)
    }
}

/// Read a state file without taking the lock (for `status`, which must work
/// while an install runs). `None` if it does not exist.
pub fn read_state(path: &Path) -> Result<Option<State>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    #[derive(Deserialize)]
    struct VersionOnly {
        version: u32,
    }
    let corrupt = |e: serde_json::Error| {
        usage(format!(
            "state file {} is corrupt ({e}); it was left as is: inspect it, then move it away to start from a fresh state",
            path.display()
        ))
    };
    let v: VersionOnly = serde_json::from_slice(&bytes).map_err(corrupt)?;
    if v.version != STATE_VERSION {
        return Err(usage(format!(
            "state file {} has version {}, this agent reads version {STATE_VERSION}; use a matching agent",
            path.display(),
            v.version
        )));
    }
    serde_json::from_slice(&bytes).map(Some).map_err(corrupt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_lock() {
        let d = tempfile::tempdir().unwrap();
        let store = StateStore::open(d.path()).unwrap();
        assert!(store.load().unwrap().is_none());
        let mut s = State::fresh(&["A".into(), "B".into()], "A");
        s.group_mut("B").status = GroupStatus::Installing;
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
