//! Images for the install folder's unit tests: bytes cut into chunks with
//! the format's chunker, stored as they are (`csize == size`, so no zstd is
//! needed to serve them), with the index entries and the image entry a
//! signed manifest would carry.

use updater_format::chunker::{chunk_stream, ChunkParams};
use updater_format::index::{ChunkHash, Entry};
use updater_format::manifest::types::Image;

/// Chunk sizes small enough that a few hundred KiB make many chunks.
pub fn params() -> ChunkParams {
    ChunkParams {
        min: 1024,
        avg: 4096,
        max: 16384,
    }
}

/// Deterministic bytes that do not repeat (so chunks are distinct).
pub fn bytes(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 11) as u8
        })
        .collect()
}

/// The index entries of `data`, every chunk stored as it is.
pub fn entries(data: &[u8]) -> Vec<Entry> {
    let mut out = Vec::new();
    chunk_stream::<_, std::io::Error>(data, params(), |_, c| {
        let h = ChunkHash::of(c);
        out.push(Entry {
            size: c.len() as u32,
            csize: c.len() as u32,
            hash: h,
            chash: h,
        });
        Ok(())
    })
    .expect("in-memory bytes always cut");
    out
}

/// The manifest's entry for an image of `data` in `entries` (schema 2).
pub fn image(data: &[u8], entries: &[Entry]) -> Image {
    serde_json::from_value(serde_json::json!({
        "class": "rootfs",
        "file": "rootfs.img.zst",
        "size": data.len(),
        "sha256": updater_format::Sha256Digest::of(data).hex(),
        "compression": "zstd-cdc",
        "compressed_size": entries.iter().map(|e| u64::from(e.csize)).sum::<u64>(),
        "index": {
            "file": "rootfs.index",
            "size": 1,
            "root_size": 1,
            "root_sha256": "0".repeat(64),
            "chunks": entries.len(),
        },
    }))
    .expect("a valid image entry")
}
