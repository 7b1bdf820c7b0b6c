//! The bounded threaded runner of the install pipeline: a chunk source,
//! the verification stages, and a slot sink, for one image.
//!
//! Three stages run at once, joined by rendezvous channels, so that both
//! cores work and memory stays bounded (a few batches in flight, whatever
//! the image size):
//!
//! 1. fetch: take chunks from the [`ChunkSource`] into a batch; a fetched
//!    chunk is checked against its pinned compressed hash here, a chunk the
//!    source read on the device was checked by the source;
//! 2. inflate: decompress each fetched chunk into exactly its declared size
//!    (an output cap: no decompression bombs) and, where the format pins it
//!    (schema 1), check its uncompressed hash;
//! 3. write (the caller's thread): the [`SlotSink`] `pwrite`s each run of
//!    consecutive chunks at once, chunks already in place are skipped, and
//!    the [`Checkpoints`] policy decides when to make the slot durable and
//!    record progress.
//!
//! No byte reaches the slot before its chunk's pin matched.
//!
//! Small content-defined chunks travel in batches of about a MiB: one
//! channel hand-off and one `pwrite` per batch instead of per 8 KiB chunk.
//! Batches go round (the writer hands each one back to the fetch stage), so
//! after the first few nothing is allocated and the peak RSS stays flat.

use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use updater_format::error::Rejected;
use updater_format::Sha256Digest;

use super::pins::Pins;
use super::source::{ChunkSource, Got};
use crate::config::InstallSettings;
use crate::events::Events;
use crate::slots::SlotSink;

/// When to make the slot durable and record progress: every `bytes` bytes
/// or `interval`, whichever comes first. Fewer checkpoints mean less flash
/// wear; more mean less to redo after a power cut.
#[derive(Debug, Clone)]
pub struct Checkpoints {
    bytes: u64,
    interval: Duration,
    since_bytes: u64,
    since: Instant,
}

impl Checkpoints {
    /// The policy of the configuration.
    pub fn new(settings: &InstallSettings) -> Checkpoints {
        Checkpoints {
            bytes: settings.checkpoint_bytes,
            interval: settings.checkpoint_interval,
            since_bytes: 0,
            since: Instant::now(),
        }
    }

    /// `n` more bytes were written; whether a checkpoint is due now.
    fn wrote(&mut self, n: u64) -> bool {
        self.since_bytes += n;
        self.since_bytes >= self.bytes || self.since.elapsed() >= self.interval
    }

    fn reset(&mut self) {
        self.since_bytes = 0;
        self.since = Instant::now();
    }
}

/// A batch closes once it holds this many bytes, as served or uncompressed
/// (or one chunk bigger): chunks of zeros compress to a few bytes each, and
/// must not make a batch of 256 × 256 KiB.
const BATCH_BYTES: usize = 1 << 20;
/// ...or this many chunks.
const BATCH_CHUNKS: usize = 256;

/// Consecutive chunks on their way through the pipeline.
#[derive(Default)]
struct Batch {
    /// Index of the first chunk.
    first: usize,
    /// How each chunk was found, and its bytes' span in `input`.
    items: Vec<(Got, usize, usize)>,
    /// The bytes as the source gave them (compressed, stored or plain).
    input: Vec<u8>,
    /// The chunks' uncompressed bytes, back to back (chunks in place
    /// excluded).
    output: Vec<u8>,
}

impl Batch {
    fn clear(&mut self, first: usize) {
        self.first = first;
        self.items.clear();
        self.input.clear();
        self.output.clear();
    }
}

/// What one image's install did, chunk by chunk.
#[derive(Debug, Default, Clone, Copy)]
pub struct Written {
    /// Bytes written to the slot.
    pub written: u64,
    /// Bytes found in place (not written).
    pub in_place: u64,
}

/// Write the image `pins` describes into `sink` from chunk `start` on.
/// `checkpoint` is called with the number of chunks durably written (after
/// a sync). Schema 1 (`pins.whole_image()`): the chunks before `start` are
/// re-read and checked, to rebuild the whole-image hash that is checked at
/// the end.
#[allow(clippy::too_many_arguments)]
pub fn install_image(
    settings: &InstallSettings,
    source: &mut dyn ChunkSource,
    sink: &mut dyn SlotSink,
    pins: &dyn Pins,
    start: usize,
    progress: &mut dyn Events,
    checkpoint: &mut dyn FnMut(u64) -> Result<()>,
) -> Result<Written> {
    let class = pins.class().to_string();
    let mut whole = pins.whole_image().map(|_| Sha256::new());
    // A checkpoint only promises what was synced before it: trust nothing
    // that is not re-verified.
    let start = match whole.as_mut() {
        Some(h) => reverify_prefix(sink, pins, start, h)?,
        None => start,
    };
    let done_bytes = if start < pins.count() {
        pins.offset(start)
    } else {
        pins.image_size()
    };
    progress.image_begin(&class, done_bytes, pins.image_size());
    let mut out = Written::default();
    if start < pins.count() {
        crate::failpoint!("before-first-write");
        out = run(
            settings,
            source,
            sink,
            pins,
            start,
            whole.as_mut(),
            progress,
            checkpoint,
        )?;
    }
    sink.finish(pins.image_size())?;
    if let (Some(h), Some(want)) = (whole, pins.whole_image()) {
        let got = Sha256Digest::from_hasher(h);
        if got != want {
            return Err(Rejected::Mismatch {
                what: format!("image {class} in {}", sink.describe()),
                reason: format!("sha256 is {got}, the manifest says {want}"),
            }
            .into());
        }
    }
    progress.image_done(&class, pins.image_size());
    Ok(out)
}

fn reverify_prefix(
    sink: &dyn SlotSink,
    pins: &dyn Pins,
    start: usize,
    whole: &mut Sha256,
) -> Result<usize> {
    let mut buf = Vec::new();
    for i in 0..start.min(pins.count()) {
        let size = pins.size(i);
        if buf.len() < size {
            buf.try_reserve_exact(size - buf.len()).map_err(|e| {
                Rejected::Invalid(format!(
                    "cannot allocate {size} bytes to re-verify chunk {i} ({e})"
                ))
            })?;
        }
        buf.resize(size, 0);
        let ok = sink.read_at(pins.offset(i), &mut buf)? && pins.check_plain(i, &buf).is_ok();
        if !ok {
            tracing::warn!(
                "{}: chunk {i} from the last run does not verify; resuming from it",
                sink.describe()
            );
            return Ok(i);
        }
        whole.update(&buf);
    }
    if start > 0 {
        tracing::info!(
            "{}: resuming at chunk {start} of {}",
            sink.describe(),
            pins.count()
        );
    }
    Ok(start)
}

#[allow(clippy::too_many_arguments)]
fn run(
    settings: &InstallSettings,
    source: &mut dyn ChunkSource,
    sink: &mut dyn SlotSink,
    pins: &dyn Pins,
    start: usize,
    whole: Option<&mut Sha256>,
    progress: &mut dyn Events,
    checkpoint: &mut dyn FnMut(u64) -> Result<()>,
) -> Result<Written> {
    std::thread::scope(|s| -> Result<Written> {
        // Rendezvous channels: each stage holds one batch, none wait in
        // between, so at most four batches exist (the memory budget).
        let (fetched_tx, fetched_rx) = sync_channel::<Batch>(0);
        let (ready_tx, ready_rx) = sync_channel::<Batch>(0);
        // The return path (unbounded: only a few batches ever exist).
        let (back_tx, back_rx) = channel::<Batch>();
        let fetch = s.spawn(move || fetch_stage(source, pins, start, fetched_tx, back_rx));
        let inflated = s.spawn(move || inflate_stage(pins, fetched_rx, ready_tx));
        let written = write_stage(
            settings, pins, sink, start, whole, progress, checkpoint, ready_rx, back_tx,
        );
        // If writing failed, the receivers are gone and the other stages stop
        // at their next send; report the first real cause.
        let fetched = fetch.join().expect("fetch stage panicked");
        let inflated = inflated.join().expect("inflate stage panicked");
        fetched?;
        inflated?;
        written
    })
}

fn fetch_stage(
    source: &mut dyn ChunkSource,
    pins: &dyn Pins,
    start: usize,
    tx: SyncSender<Batch>,
    back: Receiver<Batch>,
) -> Result<()> {
    let n = pins.count();
    let mut i = start;
    while i < n {
        let mut batch = back.try_recv().unwrap_or_default();
        batch.clear(i);
        let mut out_bytes = 0usize;
        while i < n
            && batch.items.len() < BATCH_CHUNKS
            && batch.input.len() < BATCH_BYTES
            && out_bytes < BATCH_BYTES
        {
            let at = batch.input.len();
            let got = source.chunk(i, &mut batch.input)?;
            let len = batch.input.len() - at;
            if got == Got::Fetched {
                pins.check_fetched(i, &batch.input[at..])?;
            }
            batch.items.push((got, at, len));
            out_bytes += pins.size(i);
            i += 1;
        }
        if tx.send(batch).is_err() {
            return Ok(()); // the writer stopped; it reports why
        }
    }
    Ok(())
}

fn inflate_stage(pins: &dyn Pins, rx: Receiver<Batch>, tx: SyncSender<Batch>) -> Result<()> {
    let mut dctx = zstd::bulk::Decompressor::new().context("setting up zstd")?;
    for mut batch in rx {
        let Batch {
            first,
            items,
            input,
            output,
        } = &mut batch;
        for (k, &(got, at, len)) in items.iter().enumerate() {
            let i = *first + k;
            let data = &input[at..at + len];
            match got {
                Got::InPlace => continue,
                Got::Fetched if !pins.stored(i) => {
                    inflate(&mut dctx, pins, i, data, output)?;
                    pins.check_inflated(i, &output[output.len() - pins.size(i)..])?;
                }
                Got::Fetched | Got::Verified => output.extend_from_slice(data),
            }
        }
        if tx.send(batch).is_err() {
            return Ok(());
        }
    }
    Ok(())
}

/// Inflate chunk `i` onto the end of `out`, into exactly its declared size
/// and no more: a chunk that inflates to more (or less) is an error, not a
/// bigger allocation (decompression bombs).
fn inflate(
    dctx: &mut zstd::bulk::Decompressor<'_>,
    pins: &dyn Pins,
    i: usize,
    comp: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), Rejected> {
    let size = pins.size(i);
    let at = out.len();
    // Fallible: a device short of memory refuses the release with a line.
    out.try_reserve(size).map_err(|e| {
        Rejected::Invalid(format!(
            "cannot allocate {size} bytes for chunk {i} of {} ({e}): this device has too little memory for the release's chunk size",
            pins.file()
        ))
    })?;
    out.resize(at + size, 0);
    let n = dctx
        .decompress_to_buffer(comp, &mut out[at..])
        .map_err(|e| Rejected::Mismatch {
            what: format!("{} chunk {i}", pins.file()),
            reason: format!("does not decompress to its declared {size} bytes: {e}"),
        })?;
    if n != size {
        return Err(Rejected::Mismatch {
            what: format!("{} chunk {i}", pins.file()),
            reason: format!("decompresses to {n} bytes, the signed index says {size}"),
        });
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn write_stage(
    settings: &InstallSettings,
    pins: &dyn Pins,
    sink: &mut dyn SlotSink,
    start: usize,
    mut whole: Option<&mut Sha256>,
    progress: &mut dyn Events,
    checkpoint: &mut dyn FnMut(u64) -> Result<()>,
    rx: Receiver<Batch>,
    back: Sender<Batch>,
) -> Result<Written> {
    let class = pins.class().to_string();
    let n = pins.count();
    let mut expected = start;
    let mut done = if start < n { pins.offset(start) } else { 0 };
    let mut policy = Checkpoints::new(settings);
    let mut out = Written::default();
    for batch in rx {
        debug_assert_eq!(batch.first, expected, "batches arrive in order");
        // Runs of consecutive chunks to write go in one pwrite each.
        let mut at = 0usize; // in batch.output
        let mut run: Option<(u64, usize, usize)> = None; // slot offset, start, len
        for (k, &(got, _, _)) in batch.items.iter().enumerate() {
            let i = batch.first + k;
            let size = pins.size(i);
            if got == Got::InPlace {
                if let Some(r) = run.take() {
                    write_run(sink, &batch.output, r, i)?;
                }
                out.in_place += size as u64;
                continue;
            }
            if let Some(h) = whole.as_mut() {
                h.update(&batch.output[at..at + size]);
            }
            run = match run {
                Some((off, s, len)) => Some((off, s, len + size)),
                None => Some((pins.offset(i), at, size)),
            };
            at += size;
            out.written += size as u64;
        }
        if let Some(r) = run.take() {
            write_run(sink, &batch.output, r, batch.first + batch.items.len())?;
        }
        let bytes: u64 = (0..batch.items.len())
            .map(|k| pins.size(batch.first + k) as u64)
            .sum();
        let items = batch.items.len();
        expected += items;
        done += bytes;
        let due = policy.wrote(bytes);
        let _ = back.send(batch);
        crate::util::heartbeat::beat();
        progress.image_progress(&class, done, pins.image_size());
        for _ in 0..items {
            crate::failpoint!("chunk-written");
        }
        if expected < n && due {
            // Data first, then the checkpoint that promises it.
            sink.sync()?;
            checkpoint(expected as u64)?;
            policy.reset();
        }
    }
    if expected != n {
        // The fetch or inflate stage stopped early; its error is reported.
        return Err(anyhow::anyhow!("stopped at chunk {expected} of {n}"));
    }
    Ok(out)
}

fn write_run(
    sink: &mut dyn SlotSink,
    output: &[u8],
    (offset, start, len): (u64, usize, usize),
    before: usize,
) -> Result<()> {
    sink.write_at(offset, &output[start..start + len])
        .with_context(|| format!("writing the chunks before chunk {before}"))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    use super::*;
    use crate::events::Silent;
    use crate::install::pins::IndexPins;
    use crate::install::testutil::{bytes, entries, image, params};

    /// Hands out each chunk as read and checked on the device, recording
    /// how far ahead of the writer it was asked to go.
    struct Ahead<'a> {
        data: &'a [u8],
        pins: &'a IndexPins<'a>,
        written: Arc<AtomicU64>,
        most_ahead: u64,
        asked: Vec<usize>,
    }

    impl ChunkSource for Ahead<'_> {
        fn chunk(&mut self, i: usize, out: &mut Vec<u8>) -> Result<Got> {
            self.asked.push(i);
            let (off, size) = (self.pins.offset(i), self.pins.size(i));
            let ahead = off + size as u64 - self.written.load(Ordering::SeqCst);
            self.most_ahead = self.most_ahead.max(ahead);
            out.extend_from_slice(&self.data[off as usize..off as usize + size]);
            Ok(Got::Verified)
        }
    }

    /// A slot in memory that records every write and counts syncs.
    struct Slot {
        bytes: Vec<u8>,
        writes: Vec<(u64, usize)>,
        syncs: Arc<AtomicU64>,
        written: Arc<AtomicU64>,
    }

    impl Slot {
        fn new(written: Arc<AtomicU64>) -> Slot {
            Slot {
                bytes: Vec::new(),
                writes: Vec::new(),
                syncs: Arc::new(AtomicU64::new(0)),
                written,
            }
        }
    }

    impl SlotSink for Slot {
        fn describe(&self) -> String {
            "memory".into()
        }
        fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<()> {
            let end = offset as usize + data.len();
            if self.bytes.len() < end {
                self.bytes.resize(end, 0);
            }
            self.bytes[offset as usize..end].copy_from_slice(data);
            self.writes.push((offset, data.len()));
            self.written.fetch_max(end as u64, Ordering::SeqCst);
            Ok(())
        }
        fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<bool> {
            match self.bytes.get(offset as usize..offset as usize + buf.len()) {
                Some(s) => {
                    buf.copy_from_slice(s);
                    Ok(true)
                }
                None => Ok(false),
            }
        }
        fn sync(&mut self) -> Result<()> {
            self.syncs.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
        fn finish(&mut self, size: u64) -> Result<()> {
            self.bytes.truncate(size as usize);
            Ok(())
        }
    }

    fn settings(checkpoint_bytes: u64) -> InstallSettings {
        InstallSettings {
            checkpoint_interval: Duration::from_secs(3600),
            checkpoint_bytes,
            max_release_validity: chrono::Duration::days(366),
            max_download_bytes: None,
            max_security_step: None,
        }
    }

    #[test]
    fn chunks_are_written_in_order_and_checkpoints_follow_the_syncs() {
        let data = bytes(6 << 20, 7);
        let e = entries(&data);
        let img = image(&data, &e);
        let pins = IndexPins::new(&img, params(), &e);
        let written = Arc::new(AtomicU64::new(0));
        let mut source = Ahead {
            data: &data,
            pins: &pins,
            written: written.clone(),
            most_ahead: 0,
            asked: Vec::new(),
        };
        let mut slot = Slot::new(written.clone());
        let syncs = slot.syncs.clone();
        // Each checkpoint: the chunks it promises, the syncs so far, and how
        // far the slot was written.
        let mut cps: Vec<(u64, u64, u64)> = Vec::new();
        let out = install_image(
            &settings(512 * 1024),
            &mut source,
            &mut slot,
            &pins,
            0,
            &mut Silent,
            &mut |n| {
                cps.push((
                    n,
                    syncs.load(Ordering::SeqCst),
                    written.load(Ordering::SeqCst),
                ));
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(slot.bytes, data, "the slot holds the image");
        assert_eq!(out.written, data.len() as u64);
        // The source was asked for every chunk once, in order.
        assert_eq!(source.asked, (0..pins.count()).collect::<Vec<_>>());
        // Writes go forward, one run after another, without gaps.
        let mut at = 0u64;
        for (off, len) in &slot.writes {
            assert_eq!(*off, at, "writes out of order: {:?}", slot.writes);
            at += *len as u64;
        }
        // Checkpoints count up; each comes after one more sync, and promises
        // only chunks the slot had been written with.
        assert!(cps.len() >= 4, "{cps:?}");
        for (k, (n, synced, end)) in cps.iter().enumerate() {
            assert_eq!(
                *synced,
                k as u64 + 1,
                "checkpoint {k} without its sync: {cps:?}"
            );
            assert!(pins.offset(*n as usize) <= *end, "{cps:?}");
            if k > 0 {
                assert!(cps[k - 1].0 < *n, "{cps:?}");
            }
        }
    }

    #[test]
    fn memory_stays_bounded_whatever_the_image_size() {
        // The source may run ahead of the writer by a few batches (one in
        // each stage, and the one being filled), never more: memory is a few
        // MiB for any image.
        let data = bytes(24 << 20, 8);
        let e = entries(&data);
        let img = image(&data, &e);
        let pins = IndexPins::new(&img, params(), &e);
        let written = Arc::new(AtomicU64::new(0));
        let mut source = Ahead {
            data: &data,
            pins: &pins,
            written: written.clone(),
            most_ahead: 0,
            asked: Vec::new(),
        };
        let mut slot = Slot::new(written);
        install_image(
            &settings(u64::MAX),
            &mut source,
            &mut slot,
            &pins,
            0,
            &mut Silent,
            &mut |_| Ok(()),
        )
        .unwrap();
        assert_eq!(slot.bytes.len(), data.len());
        let bound = 5 * (BATCH_BYTES as u64 + params().max as u64);
        assert!(
            source.most_ahead <= bound,
            "the source ran {} bytes ahead of the slot (bound {bound})",
            source.most_ahead
        );
        // And each write is at most one batch.
        let largest = slot.writes.iter().map(|w| w.1).max().unwrap();
        assert!(largest <= BATCH_BYTES + params().max as usize, "{largest}");
    }
}
