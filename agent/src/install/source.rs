//! Chunk sources: where the bytes of an image's chunks come from.
//!
//! A fetched chunk is checked by the pipeline against its pinned hash
//! before a byte of it is written ([`super::pins`]). A chunk a source reads
//! on the device (a seed) is checked by the source itself, so that a seed
//! that does not match costs a fetch of that chunk, never a wrong byte.
//!
//! [`StreamSource`] reads one contiguous HTTP or file stream per image
//! with Range resume and the retry budget (schema 1, and a schema-2 image
//! with nothing to reuse); [`super::delta::DeltaSource`] follows a plan of
//! seeds and coalesced range requests.

use std::io::Read;

use anyhow::Result;

use super::pins::Pins;
use crate::fetch::{AttemptError, Backoff, ByteStream, Fetcher, RetryBudget};

/// How a source found a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Got {
    /// Fetched as served (compressed, or stored as it is): the pipeline
    /// checks it against its pinned hash.
    Fetched,
    /// Read on the device and already checked against the index.
    Verified,
    /// Already in the target slot at its place, checked: nothing to write.
    InPlace,
}

/// Where the chunks of one image come from. Chunks are asked for in order.
pub trait ChunkSource: Send {
    /// Append chunk `index`'s bytes to `out` (none for [`Got::InPlace`]).
    fn chunk(&mut self, index: usize, out: &mut Vec<u8>) -> Result<Got>;
}

/// Grow `out` by `n` zero bytes, fallibly: a device short of memory refuses
/// the release with a line instead of aborting. Returns where they start.
pub fn grow(out: &mut Vec<u8>, n: usize, file: &str, i: usize) -> Result<usize> {
    let at = out.len();
    out.try_reserve(n).map_err(|e| {
        updater_format::error::Rejected::Invalid(format!(
            "cannot allocate {n} bytes for chunk {i} of {file} ({e}): this device has too little memory for the release's chunk size"
        ))
    })?;
    out.resize(at + n, 0);
    Ok(at)
}

/// The published image file, read as one stream. After a fault it is
/// reopened with a Range request at the first byte not yet received — in
/// the middle of a chunk if need be — within the retry budget: a link that
/// drops every megabyte still completes, fetching each byte about once. The
/// per-request retry count and the backoff start over whenever an attempt
/// brought new bytes.
pub struct StreamSource<'a> {
    fetcher: &'a mut dyn Fetcher,
    pins: &'a dyn Pins,
    compressed_size: u64,
    budget: &'a mut RetryBudget,
    stream: Option<ByteStream>,
    attempt: u32,
    backoff: Backoff,
}

impl<'a> StreamSource<'a> {
    /// The image file `pins` describes, `compressed_size` bytes, from
    /// `fetcher`.
    pub fn new(
        fetcher: &'a mut dyn Fetcher,
        pins: &'a dyn Pins,
        compressed_size: u64,
        budget: &'a mut RetryBudget,
    ) -> StreamSource<'a> {
        let backoff = budget.backoff();
        StreamSource {
            fetcher,
            pins,
            compressed_size,
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
        let file = self.pins.file();
        let coffset = self.pins.coffset(i);
        let mut connections = 0u32;
        loop {
            let before = *got;
            let result = (|| -> Result<(), AttemptError> {
                if self.stream.is_none() {
                    connections += 1;
                    self.stream = Some(self.fetcher.open(
                        file,
                        coffset + *got as u64,
                        self.compressed_size,
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
                        &format!("downloading {file} from byte {}", coffset + *got as u64),
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
    fn chunk(&mut self, i: usize, out: &mut Vec<u8>) -> Result<Got> {
        // The size comes from the signed table or index and was capped when
        // it was checked.
        let at = grow(out, self.pins.csize(i), self.pins.file(), i)?;
        let mut got = 0;
        let connections = self.fill(i, &mut out[at..], &mut got)?;
        if connections > 1 && self.pins.check_fetched(i, &out[at..]).is_err() {
            // Possibly bytes of two different connections that disagree (a
            // file replaced under us): once more, whole, from one
            // connection. A second mismatch is the pipeline's to refuse.
            tracing::warn!(
                "{}: chunk {i} does not match its hash; fetching it once more, whole",
                self.pins.file()
            );
            self.stream = None;
            got = 0;
            self.fill(i, &mut out[at..], &mut got)?;
        }
        self.attempt = 0;
        Ok(Got::Fetched)
    }
}
