//! Chunk sources: where the bytes of an image's chunks come from.
//!
//! A source only fetches; it verifies nothing. The pipeline checks every
//! chunk it returns against the signed chunk table before a byte of it is
//! written ([`super::verify`]). Today's source is [`StreamSource`], one
//! contiguous HTTP or file stream per image with Range resume and the retry
//! budget; a source that reads chunks already on the device (delta updates)
//! returns them uncompressed, as [`ChunkData::Plain`].

use std::io::Read;

use anyhow::Result;
use updater_format::manifest::types::{ChunkTable, Image};

use crate::fetch::{AttemptError, Backoff, ByteStream, Fetcher, RetryBudget};

/// The bytes of one chunk, as the source found them.
pub enum ChunkData {
    /// As published: compressed (the chunk table pins its compressed hash).
    Compressed(Vec<u8>),
    /// Already uncompressed (read from a slot on the device).
    Plain(Vec<u8>),
}

/// Where the chunks of one image come from. Chunks are asked for in order.
pub trait ChunkSource: Send {
    /// Chunk `index`; `spare` is a buffer to reuse (it may be empty).
    fn chunk(&mut self, index: usize, spare: Vec<u8>) -> Result<ChunkData>;
}

/// The published image file, read as one stream. After a fault it is
/// reopened with a Range request at the first byte not yet received — in
/// the middle of a chunk if need be — within the retry budget: a link that
/// drops every megabyte still completes, fetching each byte about once. The
/// per-request retry count and the backoff start over whenever an attempt
/// brought new bytes.
pub struct StreamSource<'a> {
    fetcher: &'a mut dyn Fetcher,
    img: &'a Image,
    table: &'a ChunkTable,
    budget: &'a mut RetryBudget,
    stream: Option<ByteStream>,
    attempt: u32,
    backoff: Backoff,
}

impl<'a> StreamSource<'a> {
    /// The image file of `img` from `fetcher`.
    pub fn new(
        fetcher: &'a mut dyn Fetcher,
        img: &'a Image,
        table: &'a ChunkTable,
        budget: &'a mut RetryBudget,
    ) -> StreamSource<'a> {
        let backoff = budget.backoff();
        StreamSource {
            fetcher,
            img,
            table,
            budget,
            stream: None,
            attempt: 0,
            backoff,
        }
    }

    /// Read chunk `i` into `buf` (sized to it), continuing from byte `*got`
    /// of the chunk, across reconnections.
    /// Returns how many connections the chunk took.
    fn fill(&mut self, i: usize, buf: &mut [u8], got: &mut usize) -> Result<u32> {
        let file = self.img.file.as_str();
        let ch = &self.table.chunks[i];
        let mut connections = 0u32;
        loop {
            let before = *got;
            let result = (|| -> Result<(), AttemptError> {
                if self.stream.is_none() {
                    connections += 1;
                    self.stream = Some(self.fetcher.open(
                        file,
                        ch.offset + *got as u64,
                        self.img.compressed_size,
                    )?);
                }
                let s = self.stream.as_mut().expect("just opened");
                while *got < buf.len() {
                    match s.read(&mut buf[*got..]) {
                        Ok(0) => {
                            return Err(AttemptError::transient(format!(
                                "{file}: the connection ended inside chunk {i} (byte {} of {})",
                                *got,
                                buf.len()
                            )))
                        }
                        Ok(n) => *got += n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(AttemptError::transient(format!("{file}: {e}"))),
                    }
                }
                Ok(())
            })();
            match result {
                Ok(()) => {
                    if connections > 1 {
                        tracing::debug!(
                            "{file}: chunk {i} assembled from {connections} connections"
                        );
                    }
                    return Ok(connections);
                }
                Err(e) => {
                    self.stream = None;
                    if *got > before {
                        // Progress: the retry count and the backoff start
                        // over (a link that drops often but moves is not a
                        // failing link).
                        self.attempt = 0;
                        self.backoff = self.budget.backoff();
                    }
                    self.budget.wait(
                        &format!("downloading {file} from byte {}", ch.offset + *got as u64),
                        &e,
                        self.attempt,
                        &mut self.backoff,
                    )?;
                    self.attempt += 1;
                }
            }
        }
    }
}

impl ChunkSource for StreamSource<'_> {
    fn chunk(&mut self, i: usize, mut buf: Vec<u8>) -> Result<ChunkData> {
        let ch = &self.table.chunks[i];
        let csize = ch.csize as usize;
        // The size comes from the signed table and was capped when it was
        // checked; the allocation is still fallible, so that a device short
        // of memory refuses the release with a line instead of aborting.
        buf.clear();
        buf.try_reserve_exact(csize).map_err(|e| {
            updater_format::error::Rejected::Invalid(format!(
                "cannot allocate {csize} bytes for chunk {i} of {} ({e}): this device has too little memory for the release's chunk size",
                self.img.file
            ))
        })?;
        buf.resize(csize, 0);
        let mut got = 0;
        let connections = self.fill(i, &mut buf, &mut got)?;
        if connections > 1 && updater_format::Sha256Digest::of(&buf) != ch.csha256 {
            // Possibly bytes of two different connections that disagree (a
            // file replaced under us): once more, whole, from one
            // connection. A second mismatch is the pipeline's to refuse.
            tracing::warn!(
                "{}: chunk {i} does not match its hash; fetching it once more, whole",
                self.img.file
            );
            self.stream = None;
            got = 0;
            self.fill(i, &mut buf, &mut got)?;
        }
        self.attempt = 0;
        Ok(ChunkData::Compressed(buf))
    }
}
