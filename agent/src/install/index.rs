//! The chunk index on the device: fetched by difference against the
//! indexes kept of installed releases, and kept after an install for the
//! next one.
//!
//! The manifest pins the index's header and root; the root pins each page
//! by hash. The pages are content-defined (like the chunks), so a release
//! that changed a few regions of an image shares most pages with the
//! release before it: the device reads those from the index it kept
//! (`STATE_DIR/releases/GROUP.CLASS.index`), checks each against the new
//! root, and fetches only the rest, in coalesced range requests. A kept
//! file that is damaged or of another release only costs fetches.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use anyhow::Result;
use updater_format::index::{
    self, check_totals, parse_page, parse_root, ChunkHash, Entry, Root, HEADER_LEN,
};
use updater_format::manifest::types::Image;
use updater_format::manifest::verify::check_index_root;

use crate::fetch::{fetch_range, Fetcher, RetryBudget};

/// A checked index, with what it cost to get.
#[derive(Debug)]
pub struct Loaded {
    /// The header and root.
    pub root: Root,
    /// Every chunk, in order.
    pub entries: Vec<Entry>,
    /// The index file's bytes, to keep.
    pub bytes: Vec<u8>,
    /// Bytes of it fetched.
    pub fetched: u64,
    /// Requests made for it.
    pub requests: u64,
    /// Pages read from kept indexes.
    pub pages_local: usize,
}

/// Open a kept index and list its pages by hash (as file number `n`); None
/// when it is missing or does not parse (then nothing is read from it).
fn open_kept(
    path: &Path,
    pages: &mut HashMap<ChunkHash, (usize, u64, usize)>,
    n: usize,
) -> Option<File> {
    let file = File::open(path).ok()?;
    let mut header = [0u8; HEADER_LEN];
    file.read_exact_at(&mut header, 0).ok()?;
    let len = index::root_len(&header).ok()?;
    let mut root_bytes = vec![0u8; len];
    file.read_exact_at(&mut root_bytes, 0).ok()?;
    let root = parse_root(&root_bytes).ok()?;
    for (p, (off, plen)) in root.pages.iter().zip(root.page_spans()) {
        pages.entry(p.hash).or_insert((n, off, plen));
    }
    Some(file)
}

/// Load the index of `img`: the root from the server (checked against the
/// manifest), each page from the first of `kept` that has it (checked
/// against the root), the others fetched.
pub fn load(
    fetcher: &mut dyn Fetcher,
    budget: &mut RetryBudget,
    img: &Image,
    kept: &[PathBuf],
) -> Result<Loaded> {
    let x = img
        .index
        .as_ref()
        .expect("a schema-2 image has an index (check_structure)");
    let name = x.file.as_str();
    let before = (fetcher.received(), fetcher.requests());
    let root_bytes = fetch_range(
        fetcher,
        name,
        0..x.root_size,
        x.size,
        &format!("the header and root of {name}"),
        budget,
    )?;
    let root = check_index_root(&root_bytes, img)?;

    let mut by_hash: HashMap<ChunkHash, (usize, u64, usize)> = HashMap::new();
    let mut files: Vec<File> = Vec::new();
    for p in kept {
        if let Some(f) = open_kept(p, &mut by_hash, files.len()) {
            files.push(f);
        }
    }

    let mut pages: Vec<Option<Vec<u8>>> = Vec::with_capacity(root.pages.len());
    let mut pages_local = 0;
    for p in &root.pages {
        let found = by_hash.get(&p.hash).and_then(|&(n, off, len)| {
            let mut buf = vec![0u8; len];
            files[n].read_exact_at(&mut buf, off).ok()?;
            parse_page(&buf, p, root.params).ok()?;
            Some(buf)
        });
        pages_local += usize::from(found.is_some());
        pages.push(found);
    }

    // The missing pages, in runs that are contiguous in the index file.
    let spans: Vec<(u64, usize)> = root.page_spans().collect();
    let mut k = 0;
    while k < pages.len() {
        if pages[k].is_some() {
            k += 1;
            continue;
        }
        let first = k;
        while k < pages.len() && pages[k].is_none() {
            k += 1;
        }
        let start = spans[first].0;
        let end = spans[k - 1].0 + spans[k - 1].1 as u64;
        let run = fetch_range(
            fetcher,
            name,
            start..end,
            x.size,
            &format!("pages of {name}"),
            budget,
        )?;
        for j in first..k {
            let at = (spans[j].0 - start) as usize;
            let page = run[at..at + spans[j].1].to_vec();
            parse_page(&page, &root.pages[j], root.params)?;
            pages[j] = Some(page);
        }
    }

    let mut bytes = root_bytes;
    bytes.reserve(x.size as usize - bytes.len());
    let mut entries = Vec::with_capacity(root.chunks as usize);
    for (page, p) in pages.iter().zip(&root.pages) {
        let page = page.as_ref().expect("every page is read or fetched");
        entries.extend(parse_page(page, p, root.params)?);
        bytes.extend_from_slice(page);
    }
    let size: u64 = entries.iter().map(|e| u64::from(e.size)).sum();
    let csize: u64 = entries.iter().map(|e| u64::from(e.csize)).sum();
    check_totals(&root, size, csize)?;
    tracing::info!(
        "{name}: {} of {} index pages from kept indexes, {} fetched",
        pages_local,
        root.pages.len(),
        root.pages.len() - pages_local
    );
    Ok(Loaded {
        root,
        entries,
        bytes,
        fetched: fetcher.received() - before.0,
        requests: fetcher.requests() - before.1,
        pages_local,
    })
}

/// Read a kept index whole and check it against itself (its own root):
/// the chunks of the release installed in a slot, or None when the file is
/// missing or damaged.
pub fn read_kept(path: &Path) -> Option<(Root, Vec<Entry>)> {
    let bytes = std::fs::read(path).ok()?;
    let len = index::root_len(bytes.get(..HEADER_LEN)?).ok()?;
    let root = parse_root(bytes.get(..len)?).ok()?;
    if root.file_size() != bytes.len() as u64 {
        return None;
    }
    let mut entries = Vec::with_capacity(root.chunks as usize);
    for (p, (off, plen)) in root.pages.iter().zip(root.page_spans()) {
        let page = bytes.get(off as usize..off as usize + plen)?;
        entries.extend(parse_page(page, p, root.params).ok()?);
    }
    Some((root, entries))
}
