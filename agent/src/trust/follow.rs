//! Following a source's root chain: fetch `N+1.root.json`, `N+2…` beside
//! its manifest or channel, verify each from the one before, persist what
//! verified under the state lock, check the last one's expiry.
//!
//! Two commands can follow chains at once: `check` and the daemon's
//! planning hold no state lock while they fetch, and an `apply` may accept
//! newer roots meanwhile. So roots are written only under the lock, and
//! only when they extend the chain on disk: a refresh that finds the chain
//! on disk grown since it started (another command accepted a newer root)
//! writes nothing and starts again from the newer chain. A version at or
//! below the one on disk is never written, and no command ever verifies
//! with a root older than the one on disk when it finished.

use crate::error::{BusyError, StateCorruptError};
use anyhow::{anyhow, Result};
use chrono::{DateTime, Utc};
use updater_format::keys::Keyring;
use updater_format::root::{TrustedRoot, MAX_ROOT_ROTATIONS, ROOT_SIZE_CAP};

use super::chain::{self, Chain, REFETCH_HINT};
use super::{read_trust_state, root_name, write_trust_state, PendingReset};
use crate::config::Settings;
use crate::fetch::{fetch_optional, Fetcher, RetryBudget};
use crate::state::StateStore;

/// How many times a refresh starts again from a chain another command grew
/// meanwhile before it gives up (exit 8): each restart means a new root
/// version was accepted, and roots are rotated rarely.
const MAX_RESTARTS: usize = 4;

/// How many root versions `updater root refresh` follows in one run: a
/// chain fetched again from the image's root may be long (an update follows
/// at most `MAX_ROOT_ROTATIONS`, as TUF's clients do).
pub const REBUILD_MAX_ROOTS: usize = 1024;

/// How a refresh may persist the roots it accepts.
pub enum Persist<'a> {
    /// The caller holds the state lock (its session's store).
    Held(&'a StateStore),
    /// Take the state lock to write; when another command holds it, write
    /// nothing (the roots verified and are used for this command only; the
    /// holder, or the next command, persists them).
    TryLock,
    /// Write nothing (a dry run).
    Not,
}

/// What [`refresh`] did.
#[derive(Debug)]
pub struct Refreshed {
    /// The keyring to verify the source's documents with.
    pub keyring: Keyring,
    /// The root now trusted (None: no root role).
    pub root: Option<TrustedRoot>,
    /// Root versions accepted from the source, in order.
    pub accepted: Vec<TrustedRoot>,
}

/// Follow the source's root chain from the trusted root, persisting each
/// accepted root as `persist` allows, then check the last one's expiry
/// against `now`.
pub fn refresh(
    settings: &Settings,
    now: DateTime<Utc>,
    fetcher: &mut dyn Fetcher,
    budget: &mut RetryBudget,
    persist: Persist,
) -> Result<Refreshed> {
    for _ in 0..MAX_RESTARTS {
        let Some(factory) = super::factory(settings)? else {
            return Ok(Refreshed {
                keyring: super::keyring(settings)?,
                root: None,
                accepted: Vec::new(),
            });
        };
        // A persisted link that does not verify is refused here (exit 10);
        // a chain that merely ends early (below the floor) is extended from
        // the source and checked against the floor at the end.
        let disk = chain::load(&settings.state_dir, factory)?;
        if let Some(done) = follow_once(settings, disk, now, fetcher, budget, &persist)? {
            return Ok(done);
        }
    }
    Err(BusyError(format!(
        "the root chain in {} kept growing while this command followed it (other updaters are accepting root versions); run it again",
        settings.state_dir.join(chain::CHAIN_DIR).display()
    ))
    .into())
}

/// One pass from the chain on disk; `None` when it must start again.
fn follow_once(
    settings: &Settings,
    disk: Chain,
    now: DateTime<Utc>,
    fetcher: &mut dyn Fetcher,
    budget: &mut RetryBudget,
    persist: &Persist,
) -> Result<Option<Refreshed>> {
    let mut accepted = Vec::new();
    // What verified is persisted even when a later root fails: what the
    // device trusts never goes back, even if this update fails later.
    let fetched = fetch_links(
        disk.head(),
        &disk,
        fetcher,
        budget,
        &mut accepted,
        MAX_ROOT_ROTATIONS as usize,
    );
    if !write_links(settings, &disk, &accepted, persist)? {
        return Ok(None);
    }
    fetched?;
    let mut full = disk;
    full.links.extend(accepted.iter().cloned());
    full.check_floor(&settings.state_dir)?;
    let root = full.head().clone();
    root.check_expiry(now)?;
    Ok(Some(Refreshed {
        keyring: root.keyring()?,
        root: Some(root),
        accepted,
    }))
}

/// Fetch and verify at most `max` links after `from`, pushing each onto
/// `accepted`.
fn fetch_links(
    from: &TrustedRoot,
    disk: &Chain,
    fetcher: &mut dyn Fetcher,
    budget: &mut RetryBudget,
    accepted: &mut Vec<TrustedRoot>,
    max: usize,
) -> Result<()> {
    let mut root = from.clone();
    for _ in 0..max {
        let n = root.version() + 1;
        let name = root_name(n);
        let Some(bytes) = fetch_optional(fetcher, &name, ROOT_SIZE_CAP, "root document", budget)?
        else {
            break;
        };
        let from = fetcher.locate(&name);
        let next = root
            .verify_next(&bytes)
            .map_err(|e| anyhow!(e).context(format!("root version {n} from {from} refused")))?;
        // A version the device accepted before must be the very root it
        // accepted (the floor record names its digest).
        if let Some((floor, _)) = disk.floor.as_ref().filter(|(f, _)| f.root == n) {
            if next.digest.hex() != floor.payload_sha256 {
                return Err(StateCorruptError(format!(
                    "root version {n} from {from} has payload sha256 {}, but this device accepted root version {n} with {} ({}): the floor record or the server's chain was changed; {REFETCH_HINT}",
                    next.digest.hex(),
                    floor.payload_sha256,
                    chain::FLOOR_FILE
                ))
                .into());
            }
        }
        for role in ["root", "manifest", "kernel", "channel"] {
            for id in root.dropped(&next, role) {
                tracing::info!(
                    "root version {n} revokes {role} key {}",
                    &id[..16.min(id.len())]
                );
            }
        }
        tracing::info!("accepted root version {n} from {from}");
        accepted.push(next.clone());
        root = next;
    }
    Ok(())
}

/// Persist `accepted` after the chain `disk` as `persist` allows. Returns
/// false when the chain on disk grew since it was loaded: nothing was
/// written, and the caller starts again from it.
fn write_links(
    settings: &Settings,
    disk: &Chain,
    accepted: &[TrustedRoot],
    persist: &Persist,
) -> Result<bool> {
    let dir = &settings.state_dir;
    // The load stopped at the first missing version: when that version is
    // there now, another command accepted it meanwhile.
    let grown = || chain::link_path(dir, disk.head().version() + 1).exists();
    let _lock = match persist {
        Persist::Not => return Ok(true),
        // Nobody else can write while the caller holds the lock.
        Persist::Held(_) => None,
        Persist::TryLock => match StateStore::open(dir) {
            Ok(store) => Some(store),
            Err(e) if e.is::<BusyError>() => {
                if grown() {
                    return Ok(false);
                }
                if !accepted.is_empty() {
                    tracing::info!(
                        "another updater holds the state lock: the root versions accepted are used by this command and persisted by the next"
                    );
                }
                return Ok(true);
            }
            Err(e) => return Err(e),
        },
    };
    if accepted.is_empty() {
        return Ok(!grown());
    }
    if grown() {
        return Ok(false);
    }
    let mut prev = disk.head();
    for next in accepted {
        record_reset(settings, prev, next)?;
        chain::append(dir, next)?;
        prev = next;
    }
    Ok(true)
}

/// Record the floor reset `next` carries (or implies, when it replaces
/// every channel key) in `trust.json`, before the root itself is persisted,
/// so that a crash in between cannot lose it. Applied by the next session
/// (`Session::apply_root_reset`), exactly once per root version.
fn record_reset(settings: &Settings, prev: &TrustedRoot, next: &TrustedRoot) -> Result<()> {
    let channel_rotated = prev.root.roles.channel.as_ref().is_some_and(|old| {
        let kept = next.root.roles.channel.as_ref();
        !old.keyids
            .iter()
            .any(|id| kept.is_some_and(|k| k.keyids.contains(id)))
    });
    if next.root.reset.is_none() && !channel_rotated {
        return Ok(());
    }
    let mut t = read_trust_state(&settings.state_dir)?;
    if next.version() <= t.applied {
        // Applied already (a chain fetched again after damage).
        return Ok(());
    }
    // A reset still pending from an earlier root is kept (its floors were
    // never applied) unless this one carries its own.
    let earlier = t.pending.take();
    let reset = next
        .root
        .reset
        .clone()
        .or_else(|| earlier.as_ref().and_then(|p| p.reset.clone()));
    let channels = channel_rotated
        || reset.as_ref().is_some_and(|r| r.channels)
        || earlier.is_some_and(|p| p.channels);
    t.pending = Some(PendingReset {
        root: next.version(),
        reset,
        channels,
    });
    write_trust_state(&settings.state_dir, &t)
}

/// What [`rebuild`] did.
#[derive(Debug)]
pub struct Rebuilt {
    /// The image's root version the chain starts from.
    pub factory: u64,
    /// The newest version that verified on disk before.
    pub kept: u64,
    /// The root now trusted.
    pub head: TrustedRoot,
    /// The link versions written.
    pub written: Vec<u64>,
}

/// `updater root refresh`: fetch the whole chain again from the source,
/// verify it from the image's root (ignoring every persisted link), require
/// it to reach the highest version the device accepted, and replace the
/// persisted links with it. The caller holds the state lock.
pub fn rebuild(
    settings: &Settings,
    _lock: &StateStore,
    now: DateTime<Utc>,
    fetcher: &mut dyn Fetcher,
    budget: &mut RetryBudget,
) -> Result<Rebuilt> {
    let Some(factory) = super::factory(settings)? else {
        return Err(crate::error::usage(format!(
            "the keyring {} has no root role, so the device follows no root chain; nothing to refresh",
            settings.keyring.display()
        )));
    };
    let dir = &settings.state_dir;
    // What verifies on disk today, for the report only: a link that does
    // not verify must not stop the rebuild.
    let kept = match chain::load(dir, factory.clone()) {
        Ok(c) => c.head().version(),
        Err(_) => factory.version(),
    };
    let mut links = Vec::new();
    fetch_links(
        &factory,
        &Chain::bare(factory.clone()),
        fetcher,
        budget,
        &mut links,
        REBUILD_MAX_ROOTS,
    )?;
    let fresh = Chain {
        factory: factory.clone(),
        links,
        // A damaged floor record falls back to the copy kept for earlier
        // agents: the rebuilt chain must still reach what was accepted.
        floor: chain::read_floor_lenient(dir),
    };
    if let Some((floor, _)) = fresh
        .floor
        .as_ref()
        .filter(|(f, _)| f.root > factory.version())
    {
        let head = fresh.head();
        let reached = fresh
            .links
            .get((floor.root - factory.version() - 1) as usize)
            .is_some_and(|l| l.digest.hex() == floor.payload_sha256);
        if !reached {
            return Err(StateCorruptError(format!(
                "the root chain from {} ends at root version {}, but this device accepted root version {} (payload sha256 {}): the server withholds a newer root, or serves another one; publish the chain up to that version beside the release and run this again (if the vendor never published it, the state folder was tampered with: provision the device again)",
                fetcher.describe(),
                head.version(),
                floor.root,
                floor.payload_sha256
            ))
            .into());
        }
    }
    let mut prev = &factory;
    for l in &fresh.links {
        record_reset(settings, prev, l)?;
        prev = l;
    }
    chain::replace(dir, &fresh.links)?;
    let head = fresh.head().clone();
    head.check_expiry(now)?;
    Ok(Rebuilt {
        factory: factory.version(),
        kept,
        head,
        written: fresh.links.iter().map(|l| l.version()).collect(),
    })
}
