//! The chunk index of an image (release format schema 2): what each
//! content-defined chunk is, compressed and not, so that a device can take
//! the chunks it already has from its own slots and fetch only the rest.
//!
//! One binary file per image, `CLASS.index`, served beside the image:
//!
//! ```text
//! header  64 bytes   magic "UPDIDX\0\x01", version, chunk sizes, counts
//! root    18 bytes a page: the page's hash (16) and entry count (u16 LE)
//! pages   40 bytes an entry: size u32, csize u32, hash [16], chash [16]
//! ```
//!
//! Integers are little-endian. `hash` is the first 16 bytes of the sha256 of
//! the chunk's bytes, `chash` of its compressed bytes (a zstd frame, served
//! back to back in the image file in index order), and a page's hash of its
//! bytes: 128 bits, which an attacker would have to match with other bytes
//! (a second preimage) — the signature chain pins the rest. The manifest
//! pins the header and root (`root_size`, `root_sha256`); the root pins the
//! pages; a page pins its chunks.
//!
//! Pages end where the chunks say (content-defined, like the chunks
//! themselves: after an entry whose hash, read as a little-endian u64, is a
//! multiple of [`PAGE_DIV`], once the page has [`PAGE_MIN`] entries, or at
//! [`PAGE_MAX`]), so a change in the image changes only the pages around it,
//! and a device fetches only those: the rest it has in the index it kept of
//! the release it runs.

use sha2::{Digest, Sha256};

use crate::chunker::ChunkParams;
use crate::error::Rejected;
use crate::limits;

/// The first bytes of an index file.
pub const MAGIC: [u8; 8] = *b"UPDIDX\0\x01";
/// The index format version this code reads and writes.
pub const VERSION: u32 = 1;
/// Header length.
pub const HEADER_LEN: usize = 64;
/// One root entry.
pub const ROOT_ENTRY_LEN: usize = 18;
/// One chunk entry.
pub const ENTRY_LEN: usize = 40;
/// A page ends after an entry whose hash is a multiple of this...
pub const PAGE_DIV: u64 = 32;
/// ...once it has at least this many entries...
pub const PAGE_MIN: usize = 8;
/// ...and at this many at the latest.
pub const PAGE_MAX: usize = 128;

/// A chunk's (or page's) identity: the first 16 bytes of its sha256.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ChunkHash(pub [u8; 16]);

impl ChunkHash {
    /// The hash of `data`.
    pub fn of(data: &[u8]) -> ChunkHash {
        Self::from_sha256(&Sha256::digest(data))
    }

    /// The identity from a full sha256.
    pub fn from_sha256(full: &[u8]) -> ChunkHash {
        let mut h = [0u8; 16];
        h.copy_from_slice(&full[..16]);
        ChunkHash(h)
    }

    /// The first 8 bytes as a number (lookup tables, page boundaries).
    pub fn key(&self) -> u64 {
        u64::from_le_bytes(self.0[..8].try_into().expect("16 bytes"))
    }

    /// Lowercase hex.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl std::fmt::Debug for ChunkHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.hex())
    }
}

/// One chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// Uncompressed size.
    pub size: u32,
    /// Compressed size (its zstd frame in the image file).
    pub csize: u32,
    /// Hash of the uncompressed bytes.
    pub hash: ChunkHash,
    /// Hash of the compressed bytes.
    pub chash: ChunkHash,
}

impl Entry {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.size.to_le_bytes());
        out.extend_from_slice(&self.csize.to_le_bytes());
        out.extend_from_slice(&self.hash.0);
        out.extend_from_slice(&self.chash.0);
    }

    fn decode(b: &[u8]) -> Entry {
        let mut hash = [0u8; 16];
        let mut chash = [0u8; 16];
        hash.copy_from_slice(&b[8..24]);
        chash.copy_from_slice(&b[24..40]);
        Entry {
            size: u32::from_le_bytes(b[0..4].try_into().expect("4 bytes")),
            csize: u32::from_le_bytes(b[4..8].try_into().expect("4 bytes")),
            hash: ChunkHash(hash),
            chash: ChunkHash(chash),
        }
    }
}

/// One page, as the root lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRef {
    /// The hash of the page's bytes.
    pub hash: ChunkHash,
    /// Its number of entries.
    pub entries: u16,
}

impl PageRef {
    /// The page's length in bytes.
    pub fn len(&self) -> usize {
        self.entries as usize * ENTRY_LEN
    }

    /// Whether the page has no entries (never, in a valid index).
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }
}

/// The header and root of an index: what the manifest pins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    /// The chunk sizes the image was cut with (a device cuts seeds with the
    /// same).
    pub params: ChunkParams,
    /// Number of chunks.
    pub chunks: u64,
    /// The image's size, uncompressed.
    pub image_size: u64,
    /// The image file's size (all compressed chunks).
    pub compressed_size: u64,
    /// The pages, in order.
    pub pages: Vec<PageRef>,
}

impl Root {
    /// Header and root bytes (what `root_size` and `root_sha256` pin).
    pub fn len(&self) -> usize {
        HEADER_LEN + self.pages.len() * ROOT_ENTRY_LEN
    }

    /// Whether there are no pages (never, in a valid index).
    pub fn is_empty(&self) -> bool {
        self.pages.is_empty()
    }

    /// Where each page is in the index file: (offset, length).
    pub fn page_spans(&self) -> impl Iterator<Item = (u64, usize)> + '_ {
        let mut at = self.len() as u64;
        self.pages.iter().map(move |p| {
            let span = (at, p.len());
            at += p.len() as u64;
            span
        })
    }

    /// The index file's whole size.
    pub fn file_size(&self) -> u64 {
        self.len() as u64 + self.chunks * ENTRY_LEN as u64
    }
}

fn bad(reason: impl Into<String>) -> Rejected {
    Rejected::Mismatch {
        what: "chunk index".into(),
        reason: reason.into(),
    }
}

/// Cut a sequence of entries into pages, content-defined.
fn pages_of(entries: &[Entry]) -> Vec<&[Entry]> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, e) in entries.iter().enumerate() {
        let n = i + 1 - start;
        if (n >= PAGE_MIN && e.hash.key() % PAGE_DIV == 0) || n == PAGE_MAX {
            out.push(&entries[start..=i]);
            start = i + 1;
        }
    }
    if start < entries.len() {
        out.push(&entries[start..]);
    }
    out
}

/// Encode an index (the vendor side): header, root, pages.
pub fn encode(params: ChunkParams, entries: &[Entry]) -> Vec<u8> {
    let pages = pages_of(entries);
    let mut body = Vec::with_capacity(entries.len() * ENTRY_LEN);
    let mut root = Vec::with_capacity(pages.len() * ROOT_ENTRY_LEN);
    for p in &pages {
        let start = body.len();
        for e in *p {
            e.encode(&mut body);
        }
        root.extend_from_slice(&ChunkHash::of(&body[start..]).0);
        root.extend_from_slice(&(p.len() as u16).to_le_bytes());
    }
    let image_size: u64 = entries.iter().map(|e| u64::from(e.size)).sum();
    let compressed_size: u64 = entries.iter().map(|e| u64::from(e.csize)).sum();
    let mut out = Vec::with_capacity(HEADER_LEN + root.len() + body.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&params.min.to_le_bytes());
    out.extend_from_slice(&params.avg.to_le_bytes());
    out.extend_from_slice(&params.max.to_le_bytes());
    out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
    out.extend_from_slice(&image_size.to_le_bytes());
    out.extend_from_slice(&compressed_size.to_le_bytes());
    out.extend_from_slice(&(pages.len() as u32).to_le_bytes());
    out.resize(HEADER_LEN, 0);
    out.extend_from_slice(&root);
    out.extend_from_slice(&body);
    out
}

/// The header of an index file, from its first [`HEADER_LEN`] bytes: how
/// long the root is. Parsing the root needs that many bytes.
pub fn root_len(header: &[u8]) -> Result<usize, Rejected> {
    let (_, pages) = parse_header(header)?;
    Ok(HEADER_LEN + pages as usize * ROOT_ENTRY_LEN)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn parse_header(b: &[u8]) -> Result<([u64; 3], u32), Rejected> {
    if b.len() < HEADER_LEN {
        return Err(bad(format!("{} bytes, shorter than its header", b.len())));
    }
    if b[..7] != MAGIC[..7] {
        return Err(bad("does not start with the index magic"));
    }
    let version = u32_at(b, 8);
    if b[7] != MAGIC[7] || version != VERSION {
        return Err(Rejected::Invalid(format!(
            "the chunk index is format version {version}, this agent reads version {VERSION}; upgrade the agent"
        )));
    }
    if b[52..HEADER_LEN].iter().any(|x| *x != 0) {
        return Err(bad("the reserved header bytes are not zero"));
    }
    Ok(([u64_at(b, 24), u64_at(b, 32), u64_at(b, 40)], u32_at(b, 48)))
}

/// Parse and check the header and root, whose bytes the caller has already
/// matched against the manifest's pin.
pub fn parse_root(b: &[u8]) -> Result<Root, Rejected> {
    let ([chunks, image_size, compressed_size], page_count) = parse_header(b)?;
    let params = ChunkParams {
        min: u32_at(b, 12),
        avg: u32_at(b, 16),
        max: u32_at(b, 20),
    };
    params.validate().map_err(bad)?;
    if chunks == 0 || chunks > limits::MAX_CHUNKS {
        return Err(bad(format!(
            "declares {chunks} chunks (1 to {} allowed)",
            limits::MAX_CHUNKS
        )));
    }
    if image_size > limits::MAX_IMAGE_SIZE {
        return Err(bad(format!(
            "declares a {image_size}-byte image, over the {}-byte limit",
            limits::MAX_IMAGE_SIZE
        )));
    }
    let expect = HEADER_LEN + page_count as usize * ROOT_ENTRY_LEN;
    if b.len() != expect {
        return Err(bad(format!(
            "the header and root are {} bytes, the header says {expect}",
            b.len()
        )));
    }
    let mut pages = Vec::with_capacity(page_count as usize);
    let mut total = 0u64;
    for r in b[HEADER_LEN..].chunks_exact(ROOT_ENTRY_LEN) {
        let mut h = [0u8; 16];
        h.copy_from_slice(&r[..16]);
        let entries = u16::from_le_bytes([r[16], r[17]]);
        if entries == 0 || entries as usize > PAGE_MAX {
            return Err(bad(format!(
                "a page of {entries} entries (1 to {PAGE_MAX} allowed)"
            )));
        }
        total += u64::from(entries);
        pages.push(PageRef {
            hash: ChunkHash(h),
            entries,
        });
    }
    if total != chunks {
        return Err(bad(format!(
            "the pages hold {total} chunks, the header says {chunks}"
        )));
    }
    Ok(Root {
        params,
        chunks,
        image_size,
        compressed_size,
        pages,
    })
}

/// Parse a page and check it against the root's entry for it. Sizes are
/// checked against the root's chunk parameters (only the image's last chunk
/// may be smaller than the minimum) and the compressed bound.
pub fn parse_page(b: &[u8], page: &PageRef, params: ChunkParams) -> Result<Vec<Entry>, Rejected> {
    if b.len() != page.len() {
        return Err(bad(format!(
            "a page is {} bytes, the root says {}",
            b.len(),
            page.len()
        )));
    }
    let got = ChunkHash::of(b);
    if got != page.hash {
        return Err(bad(format!(
            "a page's hash is {}, the root says {} (tampered, or from another release)",
            got.hex(),
            page.hash.hex()
        )));
    }
    let mut out = Vec::with_capacity(page.entries as usize);
    for raw in b.chunks_exact(ENTRY_LEN) {
        let e = Entry::decode(raw);
        if e.size == 0 || e.size > params.max || e.csize == 0 {
            return Err(bad(format!(
                "a chunk of {} bytes ({} compressed), outside the index's sizes",
                e.size, e.csize
            )));
        }
        if e.csize == e.size && e.chash != e.hash {
            return Err(bad(
                "a chunk stored as it is (csize = size) has two different hashes",
            ));
        }
        if u64::from(e.csize) > limits::max_compressed(u64::from(e.size)) {
            return Err(bad(format!(
                "a chunk of {} bytes takes {} compressed, more than zstd ever needs",
                e.size, e.csize
            )));
        }
        out.push(e);
    }
    Ok(out)
}

/// Check the sums of a whole index against its root, once every page was
/// read: the sizes must add up to what the root (and the manifest) says.
pub fn check_totals(root: &Root, size: u64, csize: u64) -> Result<(), Rejected> {
    if size != root.image_size || csize != root.compressed_size {
        return Err(bad(format!(
            "the chunks add up to {size} bytes ({csize} compressed), the index says {} ({})",
            root.image_size, root.compressed_size
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: u32) -> Entry {
        Entry {
            size: 4096 + i % 100,
            csize: 4000,
            hash: ChunkHash::of(&i.to_le_bytes()),
            chash: ChunkHash::of(&(i + 1_000_000).to_le_bytes()),
        }
    }

    #[test]
    fn round_trip_and_pins() {
        let p = ChunkParams::for_image(0);
        let entries: Vec<Entry> = (0..1000).map(entry).collect();
        let bytes = encode(p, &entries);
        let rl = root_len(&bytes[..HEADER_LEN]).unwrap();
        let root = parse_root(&bytes[..rl]).unwrap();
        assert_eq!(root.chunks, 1000);
        assert_eq!(root.file_size(), bytes.len() as u64);
        let mut back = Vec::new();
        for (pr, (off, len)) in root.pages.iter().zip(root.page_spans()) {
            let page = &bytes[off as usize..off as usize + len];
            back.extend(parse_page(page, pr, p).unwrap());
        }
        assert_eq!(back, entries);
        let size: u64 = back.iter().map(|e| u64::from(e.size)).sum();
        check_totals(&root, size, 4000 * 1000).unwrap();
        assert!(root
            .pages
            .iter()
            .all(|p| (1..=PAGE_MAX as u16).contains(&p.entries)));
        // A flipped byte in a page is refused by the root's hash.
        let (off, len) = root.page_spans().nth(3).unwrap();
        let mut page = bytes[off as usize..off as usize + len].to_vec();
        page[5] ^= 1;
        assert!(parse_page(&page, &root.pages[3], p).is_err());
        // Another version is refused with "upgrade".
        let mut v2 = bytes[..rl].to_vec();
        v2[8] = 2;
        assert!(parse_root(&v2)
            .unwrap_err()
            .to_string()
            .contains("upgrade the agent"));
    }

    #[test]
    fn pages_resynchronise_after_a_change() {
        let p = ChunkParams::for_image(0);
        let a: Vec<Entry> = (0..5000).map(entry).collect();
        // Replace 30 entries in the middle with 37 others.
        let mut b = a[..2000].to_vec();
        b.extend((0..37).map(|i| entry(9_000_000 + i)));
        b.extend_from_slice(&a[2030..]);
        let pages = |e: &[Entry]| -> Vec<ChunkHash> {
            let bytes = encode(p, e);
            let root = parse_root(&bytes[..root_len(&bytes).unwrap()]).unwrap();
            root.pages.iter().map(|p| p.hash).collect()
        };
        let (pa, pb) = (pages(&a), pages(&b));
        let old: std::collections::HashSet<_> = pa.iter().collect();
        let new = pb.iter().filter(|h| !old.contains(h)).count();
        assert!(new <= 4, "{new} of {} pages changed", pb.len());
    }
}
