//! The bounded threaded runner of the install pipeline: a chunk source,
//! the verification stages, and a slot sink, for one image.
//!
//! Three stages run at once, joined by rendezvous channels, so that both
//! cores work and memory stays bounded (at most a handful of chunks in
//! flight, whatever the image size):
//!
//! 1. fetch: take chunk i from the [`ChunkSource`]; a compressed chunk is
//!    checked against its compressed hash here;
//! 2. verify: inflate with an output cap of the chunk's declared size and
//!    check the uncompressed hash (a plain chunk is only checked);
//! 3. write (the caller's thread): the [`SlotSink`] `pwrite`s it, the
//!    whole-image hash is fed, and the [`Checkpoints`] policy decides when
//!    to make the slot durable and record progress.
//!
//! No byte reaches the slot before its chunk's hashes matched.
//!
//! Buffers go round: the verify stage hands each compressed buffer back to
//! the fetch stage, the writer hands each uncompressed buffer back to the
//! verify stage. After the first few chunks nothing is allocated, which
//! keeps the peak RSS flat and saves the page faults of fresh buffers.

use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use updater_format::error::Rejected;
use updater_format::manifest::types::{ChunkTable, Image};
use updater_format::Sha256Digest;

use super::source::{ChunkData, ChunkSource};
use super::verify;
use crate::config::InstallSettings;
use crate::progress::Progress;
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

/// A verified, uncompressed chunk ready to write.
struct Ready {
    index: usize,
    data: Vec<u8>,
}

/// Write `img` into `sink` from chunk `start` on. `checkpoint` is called
/// with the number of chunks durably written (after a sync).
#[allow(clippy::too_many_arguments)]
pub fn install_image(
    settings: &InstallSettings,
    source: &mut dyn ChunkSource,
    sink: &mut dyn SlotSink,
    img: &Image,
    table: &ChunkTable,
    start: usize,
    progress: &mut Progress,
    checkpoint: &mut dyn FnMut(u64) -> Result<()>,
) -> Result<()> {
    // Chunks written by an earlier run are re-read and checked, both to
    // rebuild the whole-image hash and because a checkpoint only promises
    // what was synced before it: trust nothing that is not re-verified.
    let mut whole = Sha256::new();
    let start = reverify_prefix(sink, table, start, &mut whole)?;
    let done_bytes: u64 = table.chunks[..start].iter().map(|c| c.size).sum();
    progress.begin(img.class.as_str(), done_bytes, img.size);
    if start < table.chunks.len() {
        crate::failpoint!("before-first-write");
        run(
            settings, source, sink, img, table, start, &mut whole, progress, checkpoint,
        )?;
    }
    sink.finish(img.size)?;
    let got = Sha256Digest::from_hasher(whole);
    if got != img.sha256 {
        return Err(Rejected::Mismatch {
            what: format!("image {} in {}", img.class, sink.describe()),
            reason: format!("sha256 is {got}, the manifest says {}", img.sha256),
        }
        .into());
    }
    progress.finish(img.class.as_str(), img.size);
    Ok(())
}

fn reverify_prefix(
    sink: &dyn SlotSink,
    table: &ChunkTable,
    start: usize,
    whole: &mut Sha256,
) -> Result<usize> {
    let mut buf = Vec::new();
    for (i, ch) in table.chunks.iter().enumerate().take(start) {
        if buf.len() < ch.size as usize {
            buf.try_reserve_exact(ch.size as usize - buf.len())
                .map_err(|e| {
                    Rejected::Invalid(format!(
                        "cannot allocate {} bytes to re-verify chunk {i} ({e})",
                        ch.size
                    ))
                })?;
        }
        buf.resize(ch.size as usize, 0);
        let ok = sink.read_at(i as u64 * table.chunk_size, &mut buf)?
            && Sha256Digest::of(&buf) == ch.sha256;
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
            table.chunks.len()
        );
    }
    Ok(start)
}

#[allow(clippy::too_many_arguments)]
fn run(
    settings: &InstallSettings,
    source: &mut dyn ChunkSource,
    sink: &mut dyn SlotSink,
    img: &Image,
    table: &ChunkTable,
    start: usize,
    whole: &mut Sha256,
    progress: &mut Progress,
    checkpoint: &mut dyn FnMut(u64) -> Result<()>,
) -> Result<()> {
    std::thread::scope(|s| -> Result<()> {
        // Rendezvous channels: each stage holds one chunk, none wait in
        // between, so at most four chunk buffers exist (the memory budget).
        let (fetched_tx, fetched_rx) = sync_channel::<(usize, ChunkData)>(0);
        let (ready_tx, ready_rx) = sync_channel::<Ready>(0);
        // Return paths for buffers (unbounded: only a few ever exist).
        let (comp_back_tx, comp_back_rx) = channel::<Vec<u8>>();
        let (raw_back_tx, raw_back_rx) = channel::<Vec<u8>>();
        let fetch =
            s.spawn(move || fetch_stage(source, img, table, start, fetched_tx, comp_back_rx));
        let verified = s.spawn(move || {
            verify_stage(img, table, fetched_rx, ready_tx, comp_back_tx, raw_back_rx)
        });
        let written = write_stage(
            settings,
            img,
            table,
            sink,
            start,
            whole,
            progress,
            checkpoint,
            ready_rx,
            raw_back_tx,
        );
        // If writing failed, the receivers are gone and the other stages stop
        // at their next send; report the first real cause.
        let fetched = fetch.join().expect("fetch stage panicked");
        let verified = verified.join().expect("verify stage panicked");
        fetched?;
        verified?;
        written
    })
}

fn fetch_stage(
    source: &mut dyn ChunkSource,
    img: &Image,
    table: &ChunkTable,
    start: usize,
    tx: SyncSender<(usize, ChunkData)>,
    spare: Receiver<Vec<u8>>,
) -> Result<()> {
    for i in start..table.chunks.len() {
        let data = source.chunk(i, spare.try_recv().unwrap_or_default())?;
        if let ChunkData::Compressed(comp) = &data {
            verify::check_compressed(img.file.as_str(), i, &table.chunks[i], comp)?;
        }
        if tx.send((i, data)).is_err() {
            return Ok(()); // the writer stopped; it reports why
        }
    }
    Ok(())
}

fn verify_stage(
    img: &Image,
    table: &ChunkTable,
    rx: Receiver<(usize, ChunkData)>,
    tx: SyncSender<Ready>,
    comp_back: Sender<Vec<u8>>,
    spare: Receiver<Vec<u8>>,
) -> Result<()> {
    let mut dctx = zstd::bulk::Decompressor::new().context("setting up zstd")?;
    let file = img.file.as_str();
    for (i, data) in rx {
        let ch = &table.chunks[i];
        let data = match data {
            ChunkData::Compressed(comp) => {
                let mut out = spare.try_recv().unwrap_or_default();
                verify::inflate(&mut dctx, file, i, ch, &comp, &mut out)?;
                let _ = comp_back.send(comp);
                out
            }
            ChunkData::Plain(data) => {
                verify::check_plain(file, i, ch, &data)?;
                data
            }
        };
        if tx.send(Ready { index: i, data }).is_err() {
            return Ok(());
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn write_stage(
    settings: &InstallSettings,
    img: &Image,
    table: &ChunkTable,
    sink: &mut dyn SlotSink,
    start: usize,
    whole: &mut Sha256,
    progress: &mut Progress,
    checkpoint: &mut dyn FnMut(u64) -> Result<()>,
    rx: Receiver<Ready>,
    spare: Sender<Vec<u8>>,
) -> Result<()> {
    let mut expected = start;
    let mut written: u64 = table.chunks[..start].iter().map(|c| c.size).sum();
    let mut policy = Checkpoints::new(settings);
    for Ready { index, data } in rx {
        debug_assert_eq!(index, expected, "chunks arrive in order");
        sink.write_at(index as u64 * table.chunk_size, &data)
            .with_context(|| format!("writing chunk {index}"))?;
        whole.update(&data);
        expected += 1;
        written += data.len() as u64;
        let due = policy.wrote(data.len() as u64);
        let _ = spare.send(data);
        progress.update(img.class.as_str(), written, img.size);
        crate::failpoint!("chunk-written");
        if expected < table.chunks.len() && due {
            // Data first, then the checkpoint that promises it.
            sink.sync()?;
            checkpoint(expected as u64)?;
            policy.reset();
        }
    }
    if expected != table.chunks.len() {
        // The fetch or verify stage stopped early; its error is reported.
        return Err(anyhow::anyhow!(
            "stopped at chunk {expected} of {}",
            table.chunks.len()
        ));
    }
    Ok(())
}
