//! The chunk source of a schema-2 install: follows a [`Plan`], reading
//! chunks from the booted slot and fetching the rest with range requests.
//!
//! A chunk read from the booted slot is hashed as it is read; one that does
//! not match the index (the slot changed since its index was kept: fstrim,
//! a remount read-write, another factory image) is fetched instead, and
//! counted. Fetching follows the plan's requests; after a fault the request
//! is made again from the first byte not yet received, so a flaky link
//! costs each byte about once. A server that ignores Range answers with the
//! whole file; that one stream is then read to the end, skipping what is
//! not needed: more bytes, the same result. The download budget is a hard
//! limit throughout.

use std::io::Read;

use crate::error::BudgetError;
use anyhow::Result;

use super::pins::{IndexPins, Pins};
use super::plan::{From, Plan};
use super::source::{grow, ChunkSource, Got};
use crate::fetch::{AttemptError, Backoff, ByteStream, Fetcher, RetryBudget};
use crate::slots::SlotReader;

/// Follows a plan.
pub struct DeltaSource<'a> {
    fetcher: &'a mut dyn Fetcher,
    pins: &'a IndexPins<'a>,
    plan: &'a Plan,
    seed: Option<&'a dyn SlotReader>,
    budget: &'a mut RetryBudget,
    /// Most bytes the fetcher may have received in all.
    limit: Option<u64>,
    stream: Option<ByteStream>,
    /// Image-file offset of the stream's next byte.
    pos: u64,
    /// Where the stream ends.
    end: u64,
    attempt: u32,
    backoff: Backoff,
    /// Chunks the seed should have had but did not (fetched instead).
    pub seed_misses: u64,
    /// Their bytes.
    pub seed_miss_bytes: u64,
}

impl<'a> DeltaSource<'a> {
    /// Follow `plan` for the image `pins` describes; `limit` caps the bytes
    /// `fetcher` may have received in all.
    pub fn new(
        fetcher: &'a mut dyn Fetcher,
        pins: &'a IndexPins<'a>,
        plan: &'a Plan,
        seed: Option<&'a dyn SlotReader>,
        budget: &'a mut RetryBudget,
        limit: Option<u64>,
    ) -> DeltaSource<'a> {
        let backoff = budget.backoff();
        DeltaSource {
            fetcher,
            pins,
            plan,
            seed,
            budget,
            limit,
            stream: None,
            pos: 0,
            end: 0,
            attempt: 0,
            backoff,
            seed_misses: 0,
            seed_miss_bytes: 0,
        }
    }

    fn over_budget(&self, more: u64) -> Option<BudgetError> {
        let limit = self.limit?;
        let have = self.fetcher.received();
        (have.saturating_add(more) > limit).then(|| {
            BudgetError(format!(
                "the install would download more than the {limit} bytes allowed (install.max_download_bytes or --max-download): {have} received, {more} more needed for {}{}; raise the limit, or let the install fetch the whole image",
                self.pins.file(),
                if self.seed_misses > 0 {
                    format!(
                        " ({} chunks of the booted slot did not match its kept index and are fetched)",
                        self.seed_misses
                    )
                } else {
                    String::new()
                }
            ))
        })
    }

    /// Read `buf.len()` bytes of the image file from `start` into `buf`,
    /// across reconnections, within the request that covers `start`.
    fn fetch(&mut self, i: usize, start: u64, buf: &mut [u8]) -> Result<()> {
        let file = self.pins.file().to_string();
        let size = self.plan.compressed_size;
        let want_end = start + buf.len() as u64;
        let mut got = 0usize;
        loop {
            let before = got;
            let at = start + got as u64;
            let result = (|| -> Result<(), anyhow::Error> {
                let usable = self.stream.is_some() && self.pos <= at && want_end <= self.end;
                if !usable {
                    self.stream = None;
                    // The planned request covering it, or just this chunk
                    // (a seed chunk that did not match).
                    let end = self
                        .plan
                        .request_at(at)
                        .map(|r| r.end)
                        .filter(|e| *e >= want_end)
                        .unwrap_or(want_end);
                    if let Some(e) = self.over_budget(end - at) {
                        return Err(e.into());
                    }
                    let (stream, first) = self.fetcher.open_range(&file, at..end, size)?;
                    self.stream = Some(stream);
                    self.pos = first;
                    self.end = if first < at { size } else { end };
                }
                let s = self.stream.as_mut().expect("opened above");
                if self.pos < at {
                    // Bytes before the chunk: a merged gap, or a whole file
                    // sent for a range.
                    let skip = at - self.pos;
                    let n = std::io::copy(&mut s.take(skip), &mut std::io::sink())
                        .map_err(|e| AttemptError::transient(format!("{file}: {e}")))?;
                    self.pos += n;
                    if n < skip {
                        return Err(AttemptError::transient(format!(
                            "{file}: the connection ended before byte {at}"
                        ))
                        .into());
                    }
                }
                while got < buf.len() {
                    match s.read(&mut buf[got..]) {
                        Ok(0) => {
                            return Err(AttemptError::transient(format!(
                                "{file}: the connection ended inside chunk {i}"
                            ))
                            .into())
                        }
                        Ok(n) => {
                            got += n;
                            self.pos += n as u64;
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            return Err(AttemptError::transient(format!("{file}: {e}")).into())
                        }
                    }
                }
                if let Some(e) = self.over_budget(0) {
                    return Err(e.into());
                }
                Ok(())
            })();
            match result {
                Ok(()) => return Ok(()),
                Err(e) => {
                    self.stream = None;
                    // Budget errors end the install; network faults retry.
                    let e = e.downcast::<AttemptError>()?;
                    if got > before {
                        // Progress: the retry count and the backoff start over.
                        self.attempt = 0;
                        self.backoff = self.budget.backoff();
                    }
                    self.budget.wait(
                        &format!("downloading {file} from byte {}", start + got as u64),
                        &e,
                        self.attempt,
                        &mut self.backoff,
                    )?;
                    self.attempt += 1;
                }
            }
        }
    }

    fn fetch_chunk(&mut self, i: usize, out: &mut Vec<u8>) -> Result<Got> {
        let at = grow(out, self.pins.csize(i), self.pins.file(), i)?;
        let start = self.pins.coffset(i);
        self.fetch(i, start, &mut out[at..])?;
        self.attempt = 0;
        Ok(Got::Fetched)
    }
}

impl ChunkSource for DeltaSource<'_> {
    fn chunk(&mut self, i: usize, out: &mut Vec<u8>) -> Result<Got> {
        match self.plan.from[i] {
            From::InPlace => Ok(Got::InPlace),
            From::Fetch => self.fetch_chunk(i, out),
            From::Seed(off) => {
                let seed = self.seed.expect("a plan with seed chunks has a seed");
                let at = grow(out, self.pins.size(i), self.pins.file(), i)?;
                if seed.read_at(off, &mut out[at..])?
                    && self.pins.check_plain(i, &out[at..]).is_ok()
                {
                    return Ok(Got::Verified);
                }
                out.truncate(at);
                self.seed_misses += 1;
                self.seed_miss_bytes += self.pins.size(i) as u64;
                if self.seed_misses == 1 {
                    tracing::warn!(
                        "{}: a chunk at {off} does not match the index kept of the booted release (the slot changed since it was installed); fetching such chunks instead",
                        seed.describe()
                    );
                }
                self.fetch_chunk(i, out)
            }
        }
    }
}
