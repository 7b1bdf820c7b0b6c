//! The persisted root chain: every root version the device accepted after
//! its factory root, kept in the state folder and verified again, link by
//! link from the factory root in the read-only image, every time it is
//! loaded.
//!
//! The writable state partition is never trusted more than the image: a
//! root read from it counts only when the chain from the image's root
//! verifies up to it (each link signed by a threshold of the previous
//! root's root keys and of its own, exactly one version more). Whoever can
//! write the state folder can therefore not add a key; the most they can do
//! is take links away. That is what the floor record stops: the highest
//! root version accepted and its payload digest, in a second file
//! (`root-floor.json`). A chain that ends below it is refused as state
//! corruption, so restoring an older genuine root (which re-trusts the keys
//! a later one revoked) is noticed, not obeyed.
//!
//! Layout in the state folder:
//!
//! - `roots/N.root.json`: root version N as received (the DSSE envelope),
//!   for every N from 2 on that the device accepted. Links at or below the
//!   factory root's version are kept but not needed: an image may carry a
//!   newer root as its factory root (a checkpoint that shortens the chain),
//!   while the other slot's older image still starts from root 1, so no
//!   link is ever removed.
//! - `root-floor.json`: `{ "version": 1, "root": N, "payload_sha256": … }`.
//! - `root.json`: a copy of the newest link, written only for agents of
//!   earlier releases (round 2) that run in the other slot after a rollback
//!   and read it. This agent never reads it, except once, to migrate: when
//!   there is no floor record yet, its version and digest become the floor.
//!
//! Order of durable writes when root N is accepted: the pending floor reset
//! it carries (`trust.json`), `roots/N.root.json`, `root-floor.json`, then
//! `root.json`. A crash between any two leaves a chain at or above the
//! floor. All of it happens under the state lock only.

use std::path::{Path, PathBuf};

use crate::error::StateCorruptError;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use updater_format::root::TrustedRoot;

use crate::util::fs::write_atomic;

/// The folder of accepted root versions, in the state folder.
pub const CHAIN_DIR: &str = "roots";
/// The floor record: the highest root version accepted, and its digest.
pub const FLOOR_FILE: &str = "root-floor.json";
/// The newest accepted root, written for earlier agents (never trusted).
pub const LEGACY_ROOT_FILE: &str = "root.json";

/// How an operator gets a chain back: fetched again from the release
/// server and verified from the image's root.
pub const REFETCH_HINT: &str = "fetch the chain again from the release server and verify it from the image's root with `updater root refresh` (it uses the configured channel, or give it a release or channel URL)";

/// `root-floor.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootFloor {
    /// The file's format version, 1.
    pub version: u32,
    /// The highest root version the device accepted.
    pub root: u64,
    /// The sha256 of that root's signed payload.
    pub payload_sha256: String,
}

/// Where the floor came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloorOrigin {
    /// `root-floor.json`.
    Record,
    /// An earlier agent's `root.json`, on a device not yet migrated.
    Legacy,
}

/// The chain as loaded and verified.
#[derive(Debug, Clone)]
pub struct Chain {
    /// The image's root: the anchor.
    pub factory: TrustedRoot,
    /// Accepted roots after it, each verified from the one before.
    pub links: Vec<TrustedRoot>,
    /// The highest version the device accepted, when it recorded one.
    pub floor: Option<(RootFloor, FloorOrigin)>,
}

impl Chain {
    /// The image's root alone, with no floor.
    pub fn bare(factory: TrustedRoot) -> Chain {
        Chain {
            factory,
            links: Vec::new(),
            floor: None,
        }
    }

    /// The newest verified root.
    pub fn head(&self) -> &TrustedRoot {
        self.links.last().unwrap_or(&self.factory)
    }

    /// Whether the head comes from the state folder rather than the image.
    pub fn from_state(&self) -> bool {
        !self.links.is_empty()
    }

    /// Refuse a chain that ends below the floor, or that holds another root
    /// under the floor's version (the device accepted a different one).
    pub fn check_floor(&self, state_dir: &Path) -> Result<()> {
        let Some((floor, origin)) = &self.floor else {
            return Ok(());
        };
        let file = match origin {
            FloorOrigin::Record => state_dir.join(FLOOR_FILE),
            FloorOrigin::Legacy => state_dir.join(LEGACY_ROOT_FILE),
        };
        if floor.root <= self.factory.version() {
            // The image itself carries that version or a newer one.
            return Ok(());
        }
        let head = self.head().version();
        if head < floor.root {
            return Err(StateCorruptError(format!(
                "the root chain in {} ends at root version {head}, but this device accepted root version {} ({}): links are missing or an older copy was restored, which would trust keys a later root revoked; {REFETCH_HINT}",
                state_dir.join(CHAIN_DIR).display(),
                floor.root,
                file.display()
            ))
            .into());
        }
        let at = &self.links[(floor.root - self.factory.version() - 1) as usize];
        if at.digest.hex() != floor.payload_sha256 {
            return Err(StateCorruptError(format!(
                "{}: root version {} has payload sha256 {}, but this device accepted root version {} with {} ({}); {REFETCH_HINT}",
                link_path(state_dir, floor.root).display(),
                floor.root,
                at.digest.hex(),
                floor.root,
                floor.payload_sha256,
                file.display()
            ))
            .into());
        }
        Ok(())
    }
}

/// Where root version `n` is kept.
pub fn link_path(state_dir: &Path, n: u64) -> PathBuf {
    state_dir.join(CHAIN_DIR).join(crate::trust::root_name(n))
}

/// Load the chain from `factory`: every persisted link after it, each
/// verified from the one before, up to the first version that is missing.
/// A link that does not verify is state corruption (exit 10), named by file
/// and version. The floor is read, not checked ([`Chain::check_floor`]).
pub fn load(state_dir: &Path, factory: TrustedRoot) -> Result<Chain> {
    let floor = read_floor(state_dir)?;
    let mut links: Vec<TrustedRoot> = Vec::new();
    loop {
        let prev = links.last().unwrap_or(&factory);
        let n = prev.version() + 1;
        let path = link_path(state_dir, n);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let next = prev.verify_next(&bytes).map_err(|e| {
            StateCorruptError(format!(
                "{}: root version {n} does not verify from root version {} (the chain is verified from the image's root, version {}): {e}; the state folder was changed since the device accepted it: {REFETCH_HINT}",
                path.display(),
                prev.version(),
                factory.version()
            ))
        })?;
        links.push(next);
    }
    Ok(Chain {
        factory,
        links,
        floor,
    })
}

/// The floor for a rebuild: the record, else (missing or damaged) the copy
/// kept for earlier agents, else none.
pub fn read_floor_lenient(state_dir: &Path) -> Option<(RootFloor, FloorOrigin)> {
    read_floor(state_dir).ok().flatten().or_else(|| {
        let b = std::fs::read(state_dir.join(LEGACY_ROOT_FILE)).ok()?;
        let r = TrustedRoot::open_provisioned(&b).ok()?;
        Some((
            RootFloor {
                version: 1,
                root: r.version(),
                payload_sha256: r.digest.hex(),
            },
            FloorOrigin::Legacy,
        ))
    })
}

/// The floor record, or, on a device an earlier agent left, the version and
/// digest of its `root.json` (a floor only: it is never trusted as a root).
fn read_floor(state_dir: &Path) -> Result<Option<(RootFloor, FloorOrigin)>> {
    let path = state_dir.join(FLOOR_FILE);
    match std::fs::read(&path) {
        Ok(b) => {
            let f: RootFloor = serde_json::from_slice(&b).map_err(|e| {
                StateCorruptError(format!(
                    "{} is corrupt ({e}); it records the newest root version this device accepted: {REFETCH_HINT}",
                    path.display()
                ))
            })?;
            if f.version != 1 {
                return Err(StateCorruptError(format!(
                    "{} has version {}, this agent reads version 1; use a matching agent",
                    path.display(),
                    f.version
                ))
                .into());
            }
            return Ok(Some((f, FloorOrigin::Record)));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    }
    let legacy = state_dir.join(LEGACY_ROOT_FILE);
    match std::fs::read(&legacy) {
        // Structure only: what it claims is used as a floor, never as keys.
        Ok(b) => match TrustedRoot::open_provisioned(&b) {
            Ok(r) => Ok(Some((
                RootFloor {
                    version: 1,
                    root: r.version(),
                    payload_sha256: r.digest.hex(),
                },
                FloorOrigin::Legacy,
            ))),
            Err(e) => Err(StateCorruptError(format!(
                "{}: {e}; an earlier agent wrote it as the newest root this device accepted: {REFETCH_HINT}",
                legacy.display()
            ))
            .into()),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", legacy.display())),
    }
}

/// Persist `root` as an accepted link, then raise the floor record to it,
/// then copy it for earlier agents. The caller holds the state lock and has
/// checked that `root` extends the chain on disk.
pub fn append(state_dir: &Path, root: &TrustedRoot) -> Result<()> {
    let dir = state_dir.join(CHAIN_DIR);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    crate::failpoint!("root-link");
    write_atomic(&link_path(state_dir, root.version()), &root.bytes, 0o600)?;
    crate::failpoint!("root-floor");
    raise_floor(state_dir, root)?;
    write_atomic(&state_dir.join(LEGACY_ROOT_FILE), &root.bytes, 0o600)
}

/// Replace every persisted link from `links[0]`'s version on with `links`
/// (a chain fetched again and verified from the image's root), and remove
/// links after its head (they did not verify), then raise the floor record
/// to the head. The caller holds the state lock and has checked the chain
/// against the floor.
pub fn replace(state_dir: &Path, links: &[TrustedRoot]) -> Result<()> {
    let Some(head) = links.last() else {
        return Ok(());
    };
    let dir = state_dir.join(CHAIN_DIR);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    for l in links {
        write_atomic(&link_path(state_dir, l.version()), &l.bytes, 0o600)?;
    }
    let mut n = head.version() + 1;
    while link_path(state_dir, n).exists() {
        crate::util::fs::remove_durable(&link_path(state_dir, n))?;
        n += 1;
    }
    raise_floor(state_dir, head)?;
    write_atomic(&state_dir.join(LEGACY_ROOT_FILE), &head.bytes, 0o600)
}

/// Record `root` as the highest version accepted, unless the record is
/// already at or above it (the floor never goes down). A floor taken from
/// an earlier agent's `root.json` becomes a record.
fn raise_floor(state_dir: &Path, root: &TrustedRoot) -> Result<()> {
    let current = read_floor_lenient(state_dir);
    if current
        .as_ref()
        .is_some_and(|(f, o)| *o == FloorOrigin::Record && f.root >= root.version())
    {
        return Ok(());
    }
    let floor = match current {
        Some((f, _)) if f.root > root.version() => f,
        _ => RootFloor {
            version: 1,
            root: root.version(),
            payload_sha256: root.digest.hex(),
        },
    };
    let mut bytes = serde_json::to_vec_pretty(&floor).expect("the floor record serialises");
    bytes.push(b'\n');
    write_atomic(&state_dir.join(FLOOR_FILE), &bytes, 0o600)
}
