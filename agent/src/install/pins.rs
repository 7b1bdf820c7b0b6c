//! What the signed release pins about each chunk of an image, whichever the
//! schema, and how each kind of chunk is checked.
//!
//! Schema 1 pins the full sha256 of each chunk, compressed and not, and of
//! the whole image: a fetched chunk is hashed compressed, then
//! uncompressed, and the image once more as it is written.
//!
//! Schema 2 hashes each byte once. A fetched chunk is checked by the hash of
//! its compressed bytes (zstd decoding is deterministic: those bytes
//! decompress to one result, and the pipeline checks its declared size); a
//! chunk read on the device (a seed, or already in place) by the hash of its
//! bytes. The index pins every chunk (manifest → root → page → chunk), so
//! the image as a whole needs no second hash.

use updater_format::chunker::ChunkParams;
use updater_format::error::Rejected;
use updater_format::index::{ChunkHash, Entry};
use updater_format::manifest::types::{ChunkTable, Image};
use updater_format::Sha256Digest;

/// The pinned layout of one image.
pub trait Pins: Sync {
    /// The image's class, for progress and messages.
    fn class(&self) -> &str;
    /// The image file, for messages.
    fn file(&self) -> &str;
    /// The image's size.
    fn image_size(&self) -> u64;
    /// Number of chunks.
    fn count(&self) -> usize;
    /// Where chunk `i` starts in the image.
    fn offset(&self, i: usize) -> u64;
    /// Chunk `i`'s size.
    fn size(&self, i: usize) -> usize;
    /// Where chunk `i` starts in the image file as served.
    fn coffset(&self, i: usize) -> u64;
    /// Chunk `i`'s size as served.
    fn csize(&self, i: usize) -> usize;
    /// Whether chunk `i` is served as it is (not compressed).
    fn stored(&self, i: usize) -> bool;
    /// A fetched chunk's bytes, as served.
    fn check_fetched(&self, i: usize, bytes: &[u8]) -> Result<(), Rejected>;
    /// A fetched chunk's bytes after decompression (schema 1 pins them).
    fn check_inflated(&self, i: usize, data: &[u8]) -> Result<(), Rejected>;
    /// A chunk's bytes read on the device.
    fn check_plain(&self, i: usize, data: &[u8]) -> Result<(), Rejected>;
    /// The whole image's sha256, when the format wants it checked.
    fn whole_image(&self) -> Option<Sha256Digest>;
}

fn tampered(file: &str, i: usize, what: &str) -> Rejected {
    Rejected::Mismatch {
        what: format!("{file} chunk {i}"),
        reason: format!("{what} (tampered, or from another release)"),
    }
}

/// A schema-1 image: fixed-size chunks of a JSON chunk table.
pub struct TablePins<'a> {
    img: &'a Image,
    table: &'a ChunkTable,
}

impl<'a> TablePins<'a> {
    /// The pins of `img` with its checked chunk table.
    pub fn new(img: &'a Image, table: &'a ChunkTable) -> TablePins<'a> {
        TablePins { img, table }
    }
}

impl Pins for TablePins<'_> {
    fn class(&self) -> &str {
        self.img.class.as_str()
    }
    fn file(&self) -> &str {
        self.img.file.as_str()
    }
    fn image_size(&self) -> u64 {
        self.img.size
    }
    fn count(&self) -> usize {
        self.table.chunks.len()
    }
    fn offset(&self, i: usize) -> u64 {
        i as u64 * self.table.chunk_size
    }
    fn size(&self, i: usize) -> usize {
        self.table.chunks[i].size as usize
    }
    fn coffset(&self, i: usize) -> u64 {
        self.table.chunks[i].offset
    }
    fn csize(&self, i: usize) -> usize {
        self.table.chunks[i].csize as usize
    }
    fn stored(&self, _: usize) -> bool {
        false
    }
    fn check_fetched(&self, i: usize, bytes: &[u8]) -> Result<(), Rejected> {
        let ch = &self.table.chunks[i];
        let got = Sha256Digest::of(bytes);
        if bytes.len() as u64 != ch.csize || got != ch.csha256 {
            return Err(tampered(
                self.file(),
                i,
                &format!(
                    "compressed sha256 is {got}, the signed chunk table says {}",
                    ch.csha256
                ),
            ));
        }
        Ok(())
    }
    fn check_inflated(&self, i: usize, data: &[u8]) -> Result<(), Rejected> {
        self.check_plain(i, data)
    }
    fn check_plain(&self, i: usize, data: &[u8]) -> Result<(), Rejected> {
        let ch = &self.table.chunks[i];
        if data.len() as u64 != ch.size || Sha256Digest::of(data) != ch.sha256 {
            return Err(tampered(
                self.file(),
                i,
                "its uncompressed bytes do not match the signed chunk table",
            ));
        }
        Ok(())
    }
    fn whole_image(&self) -> Option<Sha256Digest> {
        Some(self.img.sha256)
    }
}

/// A schema-2 image: content-defined chunks of a checked index, with their
/// offsets (16 bytes a chunk on top of the index's 40).
pub struct IndexPins<'a> {
    img: &'a Image,
    params: ChunkParams,
    entries: &'a [Entry],
    offsets: Vec<u64>,
    coffsets: Vec<u64>,
}

impl<'a> IndexPins<'a> {
    /// The pins of `img` with its checked index entries, cut with
    /// `params`.
    pub fn new(img: &'a Image, params: ChunkParams, entries: &'a [Entry]) -> IndexPins<'a> {
        let (mut off, mut coff) = (0u64, 0u64);
        let mut offsets = Vec::with_capacity(entries.len());
        let mut coffsets = Vec::with_capacity(entries.len());
        for e in entries {
            offsets.push(off);
            coffsets.push(coff);
            off += u64::from(e.size);
            coff += u64::from(e.csize);
        }
        IndexPins {
            img,
            params,
            entries,
            offsets,
            coffsets,
        }
    }

    /// The entries.
    pub fn entries(&self) -> &[Entry] {
        self.entries
    }

    /// The chunk sizes the image was cut with.
    pub fn params(&self) -> ChunkParams {
        self.params
    }
}

impl Pins for IndexPins<'_> {
    fn class(&self) -> &str {
        self.img.class.as_str()
    }
    fn file(&self) -> &str {
        self.img.file.as_str()
    }
    fn image_size(&self) -> u64 {
        self.img.size
    }
    fn count(&self) -> usize {
        self.entries.len()
    }
    fn offset(&self, i: usize) -> u64 {
        self.offsets[i]
    }
    fn size(&self, i: usize) -> usize {
        self.entries[i].size as usize
    }
    fn coffset(&self, i: usize) -> u64 {
        self.coffsets[i]
    }
    fn csize(&self, i: usize) -> usize {
        self.entries[i].csize as usize
    }
    fn stored(&self, i: usize) -> bool {
        self.entries[i].csize == self.entries[i].size
    }
    fn check_fetched(&self, i: usize, bytes: &[u8]) -> Result<(), Rejected> {
        let e = &self.entries[i];
        if bytes.len() != e.csize as usize || ChunkHash::of(bytes) != e.chash {
            return Err(tampered(
                self.file(),
                i,
                "its bytes as served do not match the signed index",
            ));
        }
        Ok(())
    }
    fn check_inflated(&self, _: usize, _: &[u8]) -> Result<(), Rejected> {
        // Pinned by the compressed hash; the size was checked when inflating.
        Ok(())
    }
    fn check_plain(&self, i: usize, data: &[u8]) -> Result<(), Rejected> {
        let e = &self.entries[i];
        if data.len() != e.size as usize || ChunkHash::of(data) != e.hash {
            return Err(tampered(
                self.file(),
                i,
                "its bytes do not match the signed index",
            ));
        }
        Ok(())
    }
    fn whole_image(&self) -> Option<Sha256Digest> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::install::testutil::{bytes, entries, image, params};

    #[test]
    fn index_pins_place_each_chunk_and_refuse_any_other_bytes() {
        let data = bytes(200_000, 1);
        let e = entries(&data);
        let img = image(&data, &e);
        let pins = IndexPins::new(&img, params(), &e);
        assert!(pins.count() > 10);
        // Offsets run back to back over the image and the file as served.
        let mut off = 0u64;
        for i in 0..pins.count() {
            assert_eq!(pins.offset(i), off);
            assert_eq!(pins.coffset(i), off, "stored chunks: the same layout");
            assert!(pins.stored(i));
            let chunk = &data[off as usize..off as usize + pins.size(i)];
            pins.check_fetched(i, chunk).unwrap();
            pins.check_plain(i, chunk).unwrap();
            off += pins.size(i) as u64;
        }
        assert_eq!(off, pins.image_size());
        // A flipped byte, another chunk, one byte short: refused, naming the
        // file and the chunk.
        let first = &data[..pins.size(0)];
        let mut flipped = first.to_vec();
        flipped[7] ^= 1;
        let e1 = pins.check_fetched(0, &flipped).unwrap_err().to_string();
        assert!(e1.contains("rootfs.img.zst chunk 0"), "{e1}");
        let second = &data[pins.offset(1) as usize..][..pins.size(1)];
        assert!(pins.check_plain(0, second).is_err());
        assert!(pins.check_plain(0, &first[1..]).is_err());
        // Schema 2 leans on the index: no whole-image hash to check.
        assert!(pins.whole_image().is_none());
    }
}
