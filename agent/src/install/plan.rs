//! The plan of a schema-2 install: for each chunk of the new image, where
//! its bytes will come from, and what that costs.
//!
//! Three places on the device can hold a chunk, tried in this order:
//!
//! 1. **in place**: the target slot already has it at its offset (a resumed
//!    install, a re-install, a region unchanged since the release the slot
//!    held before). Probed now, by reading and hashing; nothing is written.
//! 2. **the booted slot** (read-only), found through the index kept of the
//!    booted release, or, where none is kept (a factory image, a schema-1
//!    release, other chunk sizes), by reading the slot and cutting it with
//!    the new release's chunk sizes.
//! 3. otherwise **fetched**, in range requests over runs of consecutive
//!    chunks of the image file.
//!
//! Seeds are trusted for the plan only: each chunk read from one is hashed
//! again as it is read, and fetched when it does not match (a modified
//! seed lowers the reuse; it never puts a wrong byte in the slot).

use std::collections::{HashMap, HashSet};
use std::ops::Range;

use anyhow::Result;
use serde::Serialize;
use updater_format::chunker::chunk_stream;
use updater_format::index::{ChunkHash, Entry};

use super::pins::{IndexPins, Pins};
use crate::slots::SlotReader;

/// Where one chunk comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum From {
    /// Fetched from the server.
    Fetch,
    /// Read from the booted slot at this offset (checked when read).
    Seed(u64),
    /// Already in the target slot (checked while planning).
    InPlace,
}

/// Most requests for the chunks of one image: beyond that, the smallest
/// gaps between runs are fetched too (more bytes, fewer round trips).
pub const MAX_REQUESTS: usize = 4096;
/// Largest range one request asks for.
pub const MAX_REQUEST_BYTES: u64 = 64 << 20;
/// Consecutive chunks that are not in place before the probe of the target
/// stops following the last run written (a resumed install).
const PROBE_MISSES: usize = 16;

/// Bytes of a booted slot without an index read before giving up on it
/// when none of them is a chunk of the new image.
const GIVE_UP_AFTER: u64 = 64 << 20;

/// The cut of an unrelated slot stopped early.
#[derive(Debug, thiserror::Error)]
#[error("the slot shares no chunk with the new image")]
struct Unrelated;

/// How the booted slot's chunks were found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SeedKind {
    /// Through the index kept of the release installed there.
    KeptIndex,
    /// By reading the slot and cutting it (no usable index kept).
    Cut,
}

/// The booted slot as a seed.
#[derive(Debug, Clone, Serialize)]
pub struct SeedInfo {
    /// The slot group.
    pub group: String,
    /// Its storage.
    pub path: String,
    /// How its chunks were found.
    pub kind: SeedKind,
    /// Bytes read to cut it (0 with a kept index).
    pub bytes_read: u64,
}

/// The plan for one image.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The image class.
    pub class: String,
    /// The image's size.
    pub image_size: u64,
    /// The image file's size (a full download).
    pub compressed_size: u64,
    /// Number of chunks.
    pub chunks: usize,
    /// Where each chunk comes from.
    #[serde(skip)]
    pub from: Vec<From>,
    /// The ranges of the image file to fetch, in order.
    #[serde(skip)]
    pub requests: Vec<Range<u64>>,
    /// Bytes of the image file to fetch (gaps merged into requests
    /// included).
    pub fetch_bytes: u64,
    /// Chunks to fetch.
    pub fetch_chunks: usize,
    /// Requests for them.
    pub fetch_requests: usize,
    /// Bytes of the image found in place in the target slot.
    pub in_place_bytes: u64,
    /// Bytes of the image to read from the booted slot.
    pub seed_bytes: u64,
    /// The booted slot, when it is a seed.
    pub seed: Option<SeedInfo>,
    /// Bytes of the index fetched (the root included).
    pub index_bytes: u64,
    /// Requests made for the index.
    pub index_requests: u64,
    /// Index pages read from kept indexes.
    pub index_pages_local: usize,
    /// Index pages in all.
    pub index_pages: usize,
}

impl Plan {
    /// Requests for the chunks.
    pub fn chunk_requests(&self) -> usize {
        self.requests.len()
    }

    /// The request covering image-file byte `at`, if any.
    pub fn request_at(&self, at: u64) -> Option<&Range<u64>> {
        let k = self.requests.partition_point(|r| r.end <= at);
        self.requests.get(k).filter(|r| r.start <= at)
    }
}

/// What the plan reads on the device.
pub struct Inputs<'a> {
    /// The target slot, read-only (None: it does not exist yet).
    pub target: Option<&'a dyn SlotReader>,
    /// The index kept of the release the target slot held.
    pub target_kept: Option<&'a [Entry]>,
    /// The booted slot, read-only, with its group name.
    pub booted: Option<(&'a dyn SlotReader, &'a str)>,
    /// The index kept of the booted release, when its chunk sizes are the
    /// new release's.
    pub booted_kept: Option<&'a [Entry]>,
}

/// Plan the install of the image `pins` describes: (1) what is in place,
/// (2) what the booted slot holds, (3) the rest fetched in coalesced
/// requests.
pub fn plan(pins: &IndexPins<'_>, inputs: &Inputs<'_>) -> Result<Plan> {
    let n = pins.entries().len();
    let mut from = vec![From::Fetch; n];
    let in_place_bytes = match inputs.target {
        Some(target) => in_place(pins, target, inputs.target_kept, &mut from)?,
        None => 0,
    };
    let (seed, seed_bytes) = match inputs.booted {
        Some((reader, group)) if from.contains(&From::Fetch) => {
            let (info, bytes) = seeds(pins, reader, group, inputs.booted_kept, &mut from)?;
            (Some(info), bytes)
        }
        _ => (None, 0),
    };
    let requests = coalesce(pins, &from);
    let fetch_bytes = requests.iter().map(|r| r.end - r.start).sum();
    Ok(Plan {
        class: pins.class().to_string(),
        image_size: pins.image_size(),
        compressed_size: pins.coffset(n - 1) + pins.csize(n - 1) as u64,
        chunks: n,
        fetch_chunks: from.iter().filter(|f| **f == From::Fetch).count(),
        fetch_requests: requests.len(),
        from,
        requests,
        fetch_bytes,
        in_place_bytes,
        seed_bytes,
        seed,
        index_bytes: 0,
        index_requests: 0,
        index_pages_local: 0,
        index_pages: 0,
    })
}

/// (1) The chunks the target already holds at their offset: those its old
/// index has there, and the run a previous attempt wrote from the start
/// (probed until [`PROBE_MISSES`] misses in a row). Marks them and returns
/// their bytes.
fn in_place(
    pins: &IndexPins<'_>,
    target: &dyn SlotReader,
    target_kept: Option<&[Entry]>,
    from: &mut [From],
) -> Result<u64> {
    let entries = pins.entries();
    let old: HashMap<u64, ChunkHash> = target_kept
        .map(|k| offsets(k).map(|(off, e)| (off, e.hash)).collect())
        .unwrap_or_default();
    let (mut buf, mut misses, mut bytes) = (Vec::new(), 0, 0);
    for (i, slot) in from.iter_mut().enumerate() {
        let (off, e) = (pins.offset(i), &entries[i]);
        let candidate = misses < PROBE_MISSES || old.get(&off) == Some(&e.hash);
        if !candidate {
            continue;
        }
        buf.resize(e.size as usize, 0);
        let hit = target.read_at(off, &mut buf)? && pins.check_plain(i, &buf).is_ok();
        if hit {
            *slot = From::InPlace;
            bytes += u64::from(e.size);
            misses = 0;
        } else if misses < PROBE_MISSES {
            misses += 1;
        }
    }
    Ok(bytes)
}

/// (2) The chunks still to fetch that the booted slot holds: found through
/// its kept index, or by cutting the slot. Marks them and returns how they
/// were found and their bytes.
fn seeds(
    pins: &IndexPins<'_>,
    reader: &dyn SlotReader,
    group: &str,
    kept: Option<&[Entry]>,
    from: &mut [From],
) -> Result<(SeedInfo, u64)> {
    let entries = pins.entries();
    let wanted: HashSet<u64> = entries
        .iter()
        .zip(from.iter())
        .filter(|(_, f)| **f == From::Fetch)
        .map(|(e, _)| e.hash.key())
        .collect();
    let mut seed_at: HashMap<u64, (u64, u32, ChunkHash)> = HashMap::new();
    let (kind, bytes_read) = match kept {
        Some(kept) => {
            for (off, e) in offsets(kept) {
                if wanted.contains(&e.hash.key()) && off + u64::from(e.size) <= reader.len() {
                    seed_at.entry(e.hash.key()).or_insert((off, e.size, e.hash));
                }
            }
            (SeedKind::KeptIndex, 0)
        }
        None => (
            SeedKind::Cut,
            cut(pins, reader, group, &wanted, &mut seed_at)?,
        ),
    };
    let mut seed_bytes = 0;
    for (slot, e) in from.iter_mut().zip(entries) {
        if *slot != From::Fetch {
            continue;
        }
        if let Some(&(off, size, hash)) = seed_at.get(&e.hash.key()) {
            if size == e.size && hash == e.hash {
                *slot = From::Seed(off);
                seed_bytes += u64::from(e.size);
            }
        }
    }
    let info = SeedInfo {
        group: group.to_string(),
        path: reader.describe(),
        kind,
        bytes_read,
    };
    Ok((info, seed_bytes))
}

/// Read a slot that has no usable index and cut it with the new release's
/// chunk sizes, noting where each wanted chunk is. Returns the bytes read.
fn cut(
    pins: &IndexPins<'_>,
    reader: &dyn SlotReader,
    group: &str,
    wanted: &HashSet<u64>,
    seed_at: &mut HashMap<u64, (u64, u32, ChunkHash)>,
) -> Result<u64> {
    // Up to twice the new image: an older image may have been larger, and a
    // partition is often much larger than either.
    let limit = reader.len().min(pins.image_size().saturating_mul(2));
    tracing::info!(
        "no usable index is kept for slot {group}; reading {limit} bytes of {} to find chunks it already has",
        reader.describe()
    );
    let mut read = 0u64;
    let cut =
        chunk_stream::<_, anyhow::Error>(reader.stream(limit)?, pins.params(), |off, bytes| {
            let h = ChunkHash::of(bytes);
            if wanted.contains(&h.key()) {
                seed_at
                    .entry(h.key())
                    .or_insert((off, bytes.len() as u32, h));
            }
            read = off + bytes.len() as u64;
            crate::util::heartbeat::beat();
            // A slot that shares nothing with the new image in its first 64 MiB
            // is another system: stop paying a hash per byte for it.
            if read >= GIVE_UP_AFTER && seed_at.is_empty() {
                return Err(anyhow::Error::new(Unrelated));
            }
            Ok(())
        });
    match cut {
        Err(e) if e.is::<Unrelated>() => tracing::info!(
            "slot {group} shares no chunk with the new image in its first {read} bytes; not reading further"
        ),
        other => other?,
    }
    Ok(read)
}

/// The entries of an index with their offsets in the image.
fn offsets(entries: &[Entry]) -> impl Iterator<Item = (u64, &Entry)> {
    entries.iter().scan(0u64, |off, e| {
        let at = *off;
        *off += u64::from(e.size);
        Some((at, e))
    })
}

/// Runs of consecutive chunks to fetch, as ranges of the image file: split
/// at [`MAX_REQUEST_BYTES`], and, beyond [`MAX_REQUESTS`], the smallest gaps
/// merged.
fn coalesce(pins: &IndexPins<'_>, from: &[From]) -> Vec<Range<u64>> {
    let mut runs: Vec<Range<u64>> = Vec::new();
    for (i, f) in from.iter().enumerate() {
        if *f != From::Fetch {
            continue;
        }
        let (start, end) = (pins.coffset(i), pins.coffset(i) + pins.csize(i) as u64);
        match runs.last_mut() {
            Some(r) if r.end == start && end - r.start <= MAX_REQUEST_BYTES => r.end = end,
            _ => runs.push(start..end),
        }
    }
    if runs.len() > MAX_REQUESTS {
        // Merge the `need` smallest gaps (ties in order).
        let need = runs.len() - MAX_REQUESTS;
        let gaps: Vec<u64> = runs.windows(2).map(|w| w[1].start - w[0].end).collect();
        let mut sorted = gaps.clone();
        sorted.sort_unstable();
        let t = sorted[need - 1];
        let mut ties = need - sorted.iter().filter(|g| **g < t).count();
        let mut merged: Vec<Range<u64>> = Vec::with_capacity(MAX_REQUESTS);
        for (k, r) in runs.into_iter().enumerate() {
            let gap = if k > 0 { gaps[k - 1] } else { u64::MAX };
            let merge = gap < t || (gap == t && ties > 0);
            if gap == t && merge {
                ties -= 1;
            }
            match merged.last_mut() {
                Some(m) if merge => m.end = r.end,
                _ => merged.push(r),
            }
        }
        runs = merged;
    }
    runs
}

fn mib(b: u64) -> String {
    if b >= 10 << 20 {
        format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64)
    } else if b >= 10 << 10 {
        format!("{:.1} KiB", b as f64 / 1024.0)
    } else {
        format!("{b} bytes")
    }
}

impl Plan {
    /// Bytes this plan fetches: the index and the chunks.
    pub fn total_fetch(&self) -> u64 {
        self.index_bytes + self.fetch_bytes
    }

    /// Requests this plan makes.
    pub fn total_requests(&self) -> u64 {
        self.index_requests + self.requests.len() as u64
    }

    /// The plan in a few lines.
    pub fn describe(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let pct = |b: u64| 100.0 * b as f64 / self.image_size.max(1) as f64;
        let _ = writeln!(
            s,
            "  {}: {} in {} chunks ({} as served)",
            self.class,
            mib(self.image_size),
            self.chunks,
            mib(self.compressed_size)
        );
        if self.in_place_bytes > 0 {
            let _ = writeln!(
                s,
                "    in place     {:>12}  ({:.1}%) already in the target slot",
                mib(self.in_place_bytes),
                pct(self.in_place_bytes)
            );
        }
        if let Some(seed) = &self.seed {
            let how = match seed.kind {
                SeedKind::KeptIndex => "through its kept index".to_string(),
                SeedKind::Cut => {
                    format!("read and cut, {} read: no index kept", mib(seed.bytes_read))
                }
            };
            let _ = writeln!(
                s,
                "    reuse        {:>12}  ({:.1}%) from slot {} ({}, {how})",
                mib(self.seed_bytes),
                pct(self.seed_bytes),
                seed.group,
                seed.path
            );
        }
        let _ = writeln!(
            s,
            "    fetch        {:>12}  in {}: {} chunks ({:.1}% of the image file)",
            mib(self.fetch_bytes),
            crate::util::plural(self.requests.len() as u64, "request"),
            self.fetch_chunks,
            100.0 * self.fetch_bytes as f64 / self.compressed_size.max(1) as f64
        );
        let _ = writeln!(
            s,
            "    index        {:>12}  in {} ({} of {} pages kept)",
            mib(self.index_bytes),
            crate::util::plural(self.index_requests, "request"),
            self.index_pages_local,
            self.index_pages
        );
        s
    }
}

#[cfg(test)]
mod unit {
    //! The plan as a pure function of what the device holds: slots read
    //! from memory, the index made by the format's chunker.

    use super::*;
    use crate::install::testutil::{bytes, entries, image, params};

    /// A slot held in memory.
    struct Mem(Vec<u8>);

    impl SlotReader for Mem {
        fn describe(&self) -> String {
            "memory".into()
        }
        fn len(&self) -> u64 {
            self.0.len() as u64
        }
        fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<bool> {
            let at = offset as usize;
            match self.0.get(at..at + buf.len()) {
                Some(src) => {
                    buf.copy_from_slice(src);
                    Ok(true)
                }
                None => Ok(false),
            }
        }
        fn stream(&self, limit: u64) -> Result<Box<dyn std::io::Read + '_>> {
            let n = (limit as usize).min(self.0.len());
            Ok(Box::new(&self.0[..n]))
        }
    }

    const NONE: Inputs<'static> = Inputs {
        target: None,
        target_kept: None,
        booted: None,
        booted_kept: None,
    };

    #[test]
    fn with_nothing_on_the_device_everything_is_fetched_in_one_request() {
        let data = bytes(300_000, 2);
        let e = entries(&data);
        let img = image(&data, &e);
        let p = plan(&IndexPins::new(&img, params(), &e), &NONE).unwrap();
        assert!(p.from.iter().all(|f| *f == From::Fetch));
        assert_eq!((p.fetch_chunks, p.fetch_requests), (e.len(), 1));
        assert_eq!(p.fetch_bytes, p.compressed_size);
        assert_eq!(p.requests, vec![0..p.compressed_size]);
        assert_eq!(p.in_place_bytes + p.seed_bytes, 0);
        assert!(p.seed.is_none());
    }

    #[test]
    fn a_target_that_holds_the_image_needs_nothing_fetched() {
        let data = bytes(300_000, 3);
        let e = entries(&data);
        let img = image(&data, &e);
        let target = Mem(data.clone());
        let p = plan(
            &IndexPins::new(&img, params(), &e),
            &Inputs {
                target: Some(&target),
                ..NONE
            },
        )
        .unwrap();
        assert!(p.from.iter().all(|f| *f == From::InPlace));
        assert_eq!((p.fetch_bytes, p.fetch_requests), (0, 0));
        assert_eq!(p.in_place_bytes, data.len() as u64);
    }

    #[test]
    fn a_booted_slot_with_one_change_seeds_all_but_the_chunks_around_it() {
        let old = bytes(400_000, 4);
        let mut new = old.clone();
        for b in &mut new[200_000..200_100] {
            *b ^= 0xff;
        }
        let e = entries(&new);
        let img = image(&new, &e);
        let pins = IndexPins::new(&img, params(), &e);
        let booted = Mem(old.clone());
        // Without an index kept of the booted release: the slot is cut.
        let cut = plan(
            &pins,
            &Inputs {
                booted: Some((&booted, "A")),
                ..NONE
            },
        )
        .unwrap();
        // With the booted release's index kept: the same answer, no read.
        let kept = entries(&old);
        let with_index = plan(
            &pins,
            &Inputs {
                booted: Some((&booted, "A")),
                booted_kept: Some(&kept),
                ..NONE
            },
        )
        .unwrap();
        for p in [&cut, &with_index] {
            assert_eq!(p.from, cut.from);
            // The change is within one or two chunks (content-defined cuts
            // realign after it); everything else comes from the slot.
            assert!((1..=3).contains(&p.fetch_chunks), "{}", p.fetch_chunks);
            assert_eq!(p.fetch_requests, 1, "adjacent chunks are one request");
            assert_eq!(p.seed_bytes + p.fetch_bytes, new.len() as u64);
            // Every seed offset holds exactly the chunk's bytes in the slot.
            for (i, f) in p.from.iter().enumerate() {
                if let From::Seed(off) = f {
                    let at = *off as usize;
                    pins.check_plain(i, &old[at..at + pins.size(i)]).unwrap();
                }
            }
        }
        assert_eq!(cut.seed.as_ref().unwrap().kind, SeedKind::Cut);
        assert!(cut.seed.as_ref().unwrap().bytes_read >= old.len() as u64);
        let s = with_index.seed.as_ref().unwrap();
        assert_eq!((s.kind, s.bytes_read), (SeedKind::KeptIndex, 0));
    }

    #[test]
    fn an_interrupted_install_resumes_in_place_and_seeds_the_rest() {
        let old = bytes(300_000, 5);
        let mut new = old.clone();
        new[..50_000].copy_from_slice(&bytes(50_000, 6));
        let e = entries(&new);
        let img = image(&new, &e);
        let pins = IndexPins::new(&img, params(), &e);
        // The target got the first half of the new image before the cut.
        let mut target = vec![0u8; new.len()];
        target[..150_000].copy_from_slice(&new[..150_000]);
        let (target, booted) = (Mem(target), Mem(old));
        let p = plan(
            &pins,
            &Inputs {
                target: Some(&target),
                booted: Some((&booted, "A")),
                ..NONE
            },
        )
        .unwrap();
        // Chunks wholly in the written half are in place, none after it.
        for (i, f) in p.from.iter().enumerate() {
            let end = pins.offset(i) + pins.size(i) as u64;
            if end <= 150_000 {
                assert_eq!(*f, From::InPlace, "chunk {i}");
            } else {
                assert_ne!(*f, From::InPlace, "chunk {i}");
            }
        }
        // The changed first region was written, so nothing is fetched: the
        // rest is the booted slot's.
        assert_eq!(p.fetch_chunks, 0);
        assert_eq!(p.in_place_bytes + p.seed_bytes, new.len() as u64);
    }
}
