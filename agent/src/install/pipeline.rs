//! Streaming one image into its slot target, chunk by verified chunk.
//!
//! Three stages run at once, joined by channels of one chunk each, so that
//! both cores work and memory stays bounded (at most a handful of chunks in
//! flight):
//!
//! 1. fetch: read exactly one chunk's compressed bytes from the stream,
//!    hashing them, and compare with the chunk table;
//! 2. decompress: inflate with an output cap of the chunk's declared size,
//!    hash, compare;
//! 3. write (this thread): `pwrite` at the chunk's offset, feed the
//!    whole-image hash, and every so often fsync and checkpoint.
//!
//! No byte reaches the slot before both of its chunk's hashes matched.
//!
//! Buffers go round: the decompress stage hands each compressed buffer back
//! to the fetch stage, the writer hands each decompressed buffer back to the
//! decompress stage. After the first few chunks nothing is allocated, which
//! keeps the peak RSS flat and saves the page faults of fresh 4 MiB buffers.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::time::Instant;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use super::progress::Progress;
use crate::config::InstallSettings;
use crate::error::Rejected;
use crate::fetch::{AttemptError, Fetcher, RetryBudget};
use updater_format::manifest::types::{ChunkTable, Image};
use updater_format::Sha256Digest;

/// A verified, decompressed chunk ready to write.
struct Ready {
    index: usize,
    data: Vec<u8>,
}

/// Install `img` into `target`, starting at chunk `start`. `checkpoint` is
/// called with the number of chunks durably written (after an fsync).
#[allow(clippy::too_many_arguments)]
pub fn install_image(
    settings: &InstallSettings,
    fetcher: &mut dyn Fetcher,
    img: &Image,
    table: &ChunkTable,
    target: &Path,
    start: usize,
    budget: &mut RetryBudget,
    progress: &mut Progress,
    checkpoint: &mut dyn FnMut(u64) -> Result<()>,
) -> Result<()> {
    let out = open_target(target, img.size)?;
    // Chunks written by an earlier run are re-read and checked, both to
    // rebuild the whole-image hash and because a checkpoint only promises
    // what was fsynced before it: trust nothing that is not re-verified.
    let mut whole = Sha256::new();
    let start = reverify_prefix(&out, table, start, &mut whole, target)?;
    let done_bytes: u64 = table.chunks[..start].iter().map(|c| c.size).sum();
    progress.begin(img.class.as_str(), done_bytes, img.size);
    if start < table.chunks.len() {
        crate::failpoint!("before-first-write");
        stream(
            settings, fetcher, img, table, &out, start, &mut whole, budget, progress, checkpoint,
            target,
        )?;
    }
    // Exact size: a file target left longer by an older, bigger image would
    // otherwise keep a stale tail.
    if out.metadata().map(|m| m.is_file()).unwrap_or(false) {
        out.set_len(img.size)
            .with_context(|| format!("truncating {}", target.display()))?;
    }
    out.sync_all()
        .with_context(|| format!("syncing {}", target.display()))?;
    let got = Sha256Digest::from_hasher(whole);
    if got != img.sha256 {
        return Err(Rejected::Mismatch {
            what: format!("image {} in {}", img.class, target.display()),
            reason: format!("sha256 is {got}, the manifest says {}", img.sha256),
        }
        .into());
    }
    progress.finish(img.class.as_str(), img.size);
    Ok(())
}

fn open_target(target: &Path, size: u64) -> Result<File> {
    let is_block = std::fs::metadata(target)
        .map(|m| {
            use std::os::unix::fs::FileTypeExt;
            m.file_type().is_block_device()
        })
        .unwrap_or(false);
    let mut out = OpenOptions::new()
        .read(true)
        .write(true)
        .create(!is_block)
        .truncate(false)
        .open(target)
        .with_context(|| format!("opening slot target {}", target.display()))?;
    if is_block {
        let dev_size = out
            .seek(SeekFrom::End(0))
            .with_context(|| format!("reading the size of {}", target.display()))?;
        if dev_size < size {
            return Err(anyhow::Error::new(std::io::Error::other(format!(
                "slot target {} holds {dev_size} bytes, the image needs {size}",
                target.display()
            ))));
        }
    }
    Ok(out)
}

fn reverify_prefix(
    out: &File,
    table: &ChunkTable,
    start: usize,
    whole: &mut Sha256,
    target: &Path,
) -> Result<usize> {
    let mut buf = Vec::new();
    for (i, ch) in table.chunks.iter().enumerate().take(start) {
        buf.resize(ch.size as usize, 0);
        let ok = out
            .read_exact_at(&mut buf, i as u64 * table.chunk_size)
            .is_ok()
            && Sha256Digest::of(&buf) == ch.sha256;
        if !ok {
            tracing::warn!(
                "{}: chunk {i} from the last run does not verify; resuming from it",
                target.display()
            );
            return Ok(i);
        }
        whole.update(&buf);
    }
    if start > 0 {
        tracing::info!(
            "{}: resuming at chunk {start} of {}",
            target.display(),
            table.chunks.len()
        );
    }
    Ok(start)
}

#[allow(clippy::too_many_arguments)]
fn stream(
    settings: &InstallSettings,
    fetcher: &mut dyn Fetcher,
    img: &Image,
    table: &ChunkTable,
    out: &File,
    start: usize,
    whole: &mut Sha256,
    budget: &mut RetryBudget,
    progress: &mut Progress,
    checkpoint: &mut dyn FnMut(u64) -> Result<()>,
    target: &Path,
) -> Result<()> {
    std::thread::scope(|s| -> Result<()> {
        // Rendezvous channels: each stage holds one chunk, none wait in
        // between, so at most four chunk buffers exist (the memory budget).
        let (raw_tx, raw_rx) = sync_channel::<(usize, Vec<u8>)>(0);
        let (ready_tx, ready_rx) = sync_channel::<Ready>(0);
        // Return paths for buffers (unbounded: only a few ever exist).
        let (comp_back_tx, comp_back_rx) = std::sync::mpsc::channel::<Vec<u8>>();
        let (raw_back_tx, raw_back_rx) = std::sync::mpsc::channel::<Vec<u8>>();
        let fetch =
            s.spawn(move || fetch_stage(fetcher, img, table, start, budget, raw_tx, comp_back_rx));
        let inflate =
            s.spawn(move || inflate_stage(img, table, raw_rx, ready_tx, comp_back_tx, raw_back_rx));
        let written = write_stage(
            settings,
            img,
            table,
            out,
            start,
            whole,
            progress,
            checkpoint,
            target,
            ready_rx,
            raw_back_tx,
        );
        // If writing failed, the receivers are gone and the other stages stop
        // at their next send; report the first real cause.
        let fetched = fetch.join().expect("fetch stage panicked");
        let inflated = inflate.join().expect("decompress stage panicked");
        fetched?;
        inflated?;
        written
    })
}

fn fetch_stage(
    fetcher: &mut dyn Fetcher,
    img: &Image,
    table: &ChunkTable,
    start: usize,
    budget: &mut RetryBudget,
    tx: SyncSender<(usize, Vec<u8>)>,
    spare: Receiver<Vec<u8>>,
) -> Result<()> {
    let file = img.file.as_str();
    let mut stream: Option<crate::fetch::ByteStream> = None;
    let mut i = start;
    let mut attempt = 0u32;
    let mut backoff = budget.backoff();
    while i < table.chunks.len() {
        let ch = &table.chunks[i];
        let result = (|| -> Result<Vec<u8>, AttemptError> {
            if stream.is_none() {
                stream = Some(fetcher.open(file, ch.offset, img.compressed_size)?);
            }
            let s = stream.as_mut().expect("just opened");
            let mut buf = spare.try_recv().unwrap_or_default();
            buf.resize(ch.csize as usize, 0);
            s.read_exact(&mut buf).map_err(|e| {
                let msg = if e.kind() == std::io::ErrorKind::UnexpectedEof {
                    format!("{file}: the connection ended inside chunk {i}")
                } else {
                    format!("{file}: {e}")
                };
                AttemptError::transient(msg)
            })?;
            Ok(buf)
        })();
        match result {
            Ok(buf) => {
                let got = Sha256Digest::of(&buf);
                if got != ch.csha256 {
                    return Err(Rejected::Mismatch {
                        what: format!("{file} chunk {i}"),
                        reason: format!(
                            "compressed sha256 is {got}, the signed chunk table says {} (tampered, or from another release)",
                            ch.csha256
                        ),
                    }
                    .into());
                }
                if tx.send((i, buf)).is_err() {
                    return Ok(()); // the writer stopped; it reports why
                }
                i += 1;
                attempt = 0; // progress resets the per-request retry count
            }
            Err(e) => {
                // Reopen at the first chunk not yet received.
                stream = None;
                budget.wait(
                    &format!("downloading {file} from chunk {i}"),
                    &e,
                    attempt,
                    &mut backoff,
                )?;
                attempt += 1;
            }
        }
    }
    Ok(())
}

fn inflate_stage(
    img: &Image,
    table: &ChunkTable,
    rx: Receiver<(usize, Vec<u8>)>,
    tx: SyncSender<Ready>,
    comp_back: std::sync::mpsc::Sender<Vec<u8>>,
    spare: Receiver<Vec<u8>>,
) -> Result<()> {
    let mut dctx = zstd::bulk::Decompressor::new().context("setting up zstd")?;
    for (i, comp) in rx {
        let ch = &table.chunks[i];
        let what = || format!("{} chunk {i}", img.file);
        // zstd writes into the buffer's spare capacity and no further: the
        // output is bounded by the chunk size, so a chunk that inflates to
        // more is an error, not a bigger allocation (decompression bombs).
        let mut data = spare.try_recv().unwrap_or_default();
        data.clear();
        data.reserve_exact(ch.size as usize);
        dctx.decompress_to_buffer(&comp, &mut data)
            .map_err(|e| Rejected::Mismatch {
                what: what(),
                reason: format!("does not decompress to its declared {} bytes: {e}", ch.size),
            })?;
        let _ = comp_back.send(comp);
        if data.len() as u64 != ch.size || Sha256Digest::of(&data) != ch.sha256 {
            return Err(Rejected::Mismatch {
                what: what(),
                reason: "decompressed bytes do not match the signed chunk table".into(),
            }
            .into());
        }
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
    out: &File,
    start: usize,
    whole: &mut Sha256,
    progress: &mut Progress,
    checkpoint: &mut dyn FnMut(u64) -> Result<()>,
    target: &Path,
    rx: Receiver<Ready>,
    spare: std::sync::mpsc::Sender<Vec<u8>>,
) -> Result<()> {
    let mut expected = start;
    let mut written: u64 = table.chunks[..start].iter().map(|c| c.size).sum();
    let mut since_bytes = 0u64;
    let mut since = Instant::now();
    for Ready { index, data } in rx {
        debug_assert_eq!(index, expected, "chunks arrive in order");
        out.write_all_at(&data, index as u64 * table.chunk_size)
            .with_context(|| format!("writing chunk {index} to {}", target.display()))?;
        whole.update(&data);
        expected += 1;
        written += data.len() as u64;
        since_bytes += data.len() as u64;
        let _ = spare.send(data);
        progress.update(img.class.as_str(), written, img.size);
        crate::failpoint!("chunk-written");
        if expected < table.chunks.len()
            && (since_bytes >= settings.checkpoint_bytes
                || since.elapsed() >= settings.checkpoint_interval)
        {
            // Data first, then the checkpoint that promises it.
            out.sync_data()
                .with_context(|| format!("syncing {}", target.display()))?;
            checkpoint(expected as u64)?;
            since_bytes = 0;
            since = Instant::now();
        }
    }
    if expected != table.chunks.len() {
        // The fetch or decompress stage stopped early; its error is reported.
        return Err(anyhow::anyhow!(
            "stopped at chunk {expected} of {}",
            table.chunks.len()
        ));
    }
    Ok(())
}
