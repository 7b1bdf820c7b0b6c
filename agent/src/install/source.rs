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

/// The published image file, read as one stream: reopened with a Range
/// request at the first chunk not yet received after a fault, within the
/// retry budget.
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
}

impl ChunkSource for StreamSource<'_> {
    fn chunk(&mut self, i: usize, mut buf: Vec<u8>) -> Result<ChunkData> {
        let file = self.img.file.as_str();
        let ch = &self.table.chunks[i];
        loop {
            let result = (|| -> Result<(), AttemptError> {
                if self.stream.is_none() {
                    self.stream = Some(self.fetcher.open(
                        file,
                        ch.offset,
                        self.img.compressed_size,
                    )?);
                }
                let s = self.stream.as_mut().expect("just opened");
                buf.resize(ch.csize as usize, 0);
                s.read_exact(&mut buf).map_err(|e| {
                    let msg = if e.kind() == std::io::ErrorKind::UnexpectedEof {
                        format!("{file}: the connection ended inside chunk {i}")
                    } else {
                        format!("{file}: {e}")
                    };
                    AttemptError::transient(msg)
                })
            })();
            match result {
                Ok(()) => {
                    // Progress resets the per-request retry count.
                    self.attempt = 0;
                    return Ok(ChunkData::Compressed(buf));
                }
                Err(e) => {
                    // Reopen at the first chunk not yet received.
                    self.stream = None;
                    self.budget.wait(
                        &format!("downloading {file} from chunk {i}"),
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
