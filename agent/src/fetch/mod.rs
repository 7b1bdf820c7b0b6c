//! Fetching release files: over HTTP(S) with reqwest/rustls, or from a local
//! folder (a USB stick). Every fetch is bounded: the caller states how many
//! bytes it may take, and stalls and retries are limited by the settings.

mod channel;
pub mod http;
pub mod range;
mod retry;

pub use channel::{channel_fetcher, fetch_channel, resolve};
pub use http::HttpFetcher;
pub use retry::{Backoff, RetryBudget};

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};

use crate::config::HttpSettings;
use crate::error::{usage, Rejected};

/// Why one attempt failed, and whether another attempt could succeed.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct AttemptError {
    /// What went wrong, naming the URL.
    pub message: String,
    /// Connection errors, timeouts, 408, 429 and 5xx are worth retrying.
    pub retryable: bool,
    /// A server-requested delay (Retry-After).
    pub retry_after: Option<std::time::Duration>,
}

impl AttemptError {
    /// A transient failure.
    pub fn transient(message: String) -> Self {
        AttemptError {
            message,
            retryable: true,
            retry_after: None,
        }
    }
    /// A permanent failure.
    pub fn fatal(message: String) -> Self {
        AttemptError {
            message,
            retryable: false,
            retry_after: None,
        }
    }
}

/// A stream of a file's bytes from some offset.
pub type ByteStream = Box<dyn Read + Send>;

/// Where a release comes from.
pub trait Fetcher: Send {
    /// The manifest's location, for messages.
    fn describe(&self) -> String;
    /// Where `name` (relative to the manifest) is, for messages: its URL or
    /// path.
    fn locate(&self, name: &str) -> String;
    /// Open bytes `range` of `name` (relative to the manifest), a file of
    /// exactly `size` bytes by the signed manifest. Returns the stream and
    /// the offset of its first byte: `range.start`, or 0 when the server
    /// ignored the range and sent the whole file (the caller skips). The
    /// stream ends at `range.end`, or at `size` for a whole file, even if
    /// the server would send more.
    fn open_range(
        &mut self,
        name: &str,
        range: std::ops::Range<u64>,
        size: u64,
    ) -> std::result::Result<(ByteStream, u64), AttemptError>;
    /// Open `name` from `offset` to its end (`size` bytes by the signed
    /// manifest), skipping to `offset` when the server sent the whole file.
    fn open(
        &mut self,
        name: &str,
        offset: u64,
        size: u64,
    ) -> std::result::Result<ByteStream, AttemptError> {
        let (mut stream, at) = self.open_range(name, offset..size, size)?;
        if at < offset {
            let skip = offset - at;
            tracing::info!(
                "{name}: the server answered a range request with the whole file; skipping {skip} bytes"
            );
            let copied = std::io::copy(&mut (&mut stream).take(skip), &mut std::io::sink())
                .map_err(|e| {
                    AttemptError::transient(format!("skipping to {offset} in {name}: {e}"))
                })?;
            if copied < skip {
                return Err(AttemptError::transient(format!(
                    "{name} ended before byte {offset}"
                )));
            }
        }
        Ok(stream)
    }
    /// Open the manifest itself; at most `cap` bytes are read from the stream.
    fn open_manifest(&mut self, cap: u64) -> std::result::Result<ByteStream, AttemptError>;
    /// Open `name` (relative to the manifest), a file that may not exist
    /// (a root document the vendor has not published): `None` when the
    /// server answers one of `http.absent_status` (404 and 410 unless
    /// configured), or the folder has no such file. The stream
    /// stops at `cap + 1` bytes (the caller refuses more than `cap`).
    fn open_optional(
        &mut self,
        name: &str,
        cap: u64,
    ) -> std::result::Result<Option<ByteStream>, AttemptError>;
    /// Body bytes received so far (for progress, budgets and reports).
    fn received(&self) -> u64;
    /// Requests made so far (opens of a file or a range, the manifest's
    /// included).
    fn requests(&self) -> u64;
    /// Whether the server answers a range request of `name` (a file of
    /// `size` bytes) with the range: known from an earlier range request
    /// (an index page), else one request for its first byte. A server
    /// that ignores Range answers with the whole file, and every
    /// range then costs the file up to its end. A folder always reads
    /// ranges.
    fn honours_range(
        &mut self,
        _name: &str,
        _size: u64,
    ) -> std::result::Result<bool, AttemptError> {
        Ok(true)
    }
    /// The server's host, for messages (the folder for a folder).
    fn host(&self) -> String {
        self.describe()
    }
}

/// A counter shared by a fetcher and its streams.
#[derive(Clone, Default, Debug)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    /// Add bytes.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    /// Current total.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A reader that counts what passes through it.
pub struct Counted<R> {
    inner: R,
    counter: Counter,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.counter.add(n as u64);
        Ok(n)
    }
}

/// Open the fetcher for a SOURCE: an http(s) or file URL of a manifest, a
/// channel URL (`.../stable`, meaning `.../stable/manifest.json`), or a local
/// release folder or manifest path.
pub fn open_source(source: &str, http: &HttpSettings) -> Result<Box<dyn Fetcher>> {
    if source.starts_with("http://") || source.starts_with("https://") {
        let manifest_url = if source.ends_with(".json") {
            source.to_string()
        } else {
            format!("{}/manifest.json", source.trim_end_matches('/'))
        };
        return Ok(Box::new(HttpFetcher::new(&manifest_url, http)?));
    }
    let path = match source.strip_prefix("file://") {
        Some(p) => PathBuf::from(p),
        None if source.contains("://") => {
            return Err(usage(format!(
                "source {source:?}: only http, https and file URLs or a local folder are supported"
            )))
        }
        None => PathBuf::from(source),
    };
    let manifest = if path.is_dir() {
        path.join("manifest.json")
    } else {
        path
    };
    Ok(Box::new(DirFetcher::new(&manifest)?))
}

/// Files in a local folder.
pub struct DirFetcher {
    manifest: PathBuf,
    dir: PathBuf,
    counter: Counter,
    requests: Counter,
}

impl DirFetcher {
    /// Fetch the release whose manifest is at `manifest`.
    pub fn new(manifest: &Path) -> Result<DirFetcher> {
        if !manifest.is_file() {
            return Err(usage(format!(
                "{} is not a release manifest or a folder holding manifest.json",
                manifest.display()
            )));
        }
        let dir = crate::util::fs::parent_dir(manifest).to_path_buf();
        Ok(DirFetcher {
            manifest: manifest.to_path_buf(),
            dir,
            counter: Counter::default(),
            requests: Counter::default(),
        })
    }
}

impl Fetcher for DirFetcher {
    fn describe(&self) -> String {
        self.manifest.display().to_string()
    }

    fn locate(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    fn open_range(
        &mut self,
        name: &str,
        range: std::ops::Range<u64>,
        size: u64,
    ) -> std::result::Result<(ByteStream, u64), AttemptError> {
        let path = self.dir.join(name);
        let mut f = File::open(&path)
            .map_err(|e| AttemptError::fatal(format!("opening {}: {e}", path.display())))?;
        f.seek(SeekFrom::Start(range.start))
            .map_err(|e| AttemptError::fatal(format!("seeking {}: {e}", path.display())))?;
        let end = range.end.min(size);
        self.requests.add(1);
        Ok((
            Box::new(Counted {
                inner: f.take(end.saturating_sub(range.start)),
                counter: self.counter.clone(),
            }),
            range.start,
        ))
    }

    fn requests(&self) -> u64 {
        self.requests.get()
    }

    fn open_manifest(&mut self, cap: u64) -> std::result::Result<ByteStream, AttemptError> {
        self.requests.add(1);
        let f = File::open(&self.manifest).map_err(|e| {
            AttemptError::fatal(format!("opening {}: {e}", self.manifest.display()))
        })?;
        Ok(Box::new(Counted {
            inner: f.take(cap + 1),
            counter: self.counter.clone(),
        }))
    }

    fn open_optional(
        &mut self,
        name: &str,
        cap: u64,
    ) -> std::result::Result<Option<ByteStream>, AttemptError> {
        self.requests.add(1);
        let path = self.dir.join(name);
        match File::open(&path) {
            Ok(f) => Ok(Some(Box::new(Counted {
                inner: f.take(cap + 1),
                counter: self.counter.clone(),
            }))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(AttemptError::fatal(format!(
                "opening {}: {e}",
                path.display()
            ))),
        }
    }

    fn received(&self) -> u64 {
        self.counter.get()
    }
}

/// Fetch bytes `range` of `name`, a file of `size` bytes, whole into memory,
/// with retries (an index root, the pages of an index). The caller has
/// bounded the range by the signed manifest.
pub fn fetch_range(
    fetcher: &mut dyn Fetcher,
    name: &str,
    range: std::ops::Range<u64>,
    size: u64,
    what: &str,
    budget: &mut RetryBudget,
) -> Result<Vec<u8>> {
    let want = (range.end - range.start) as usize;
    let got = budget.run(&format!("fetching {what}"), |_| {
        let (stream, at) = fetcher.open_range(name, range.clone(), size)?;
        let mut stream = stream;
        if at < range.start {
            std::io::copy(
                &mut (&mut stream).take(range.start - at),
                &mut std::io::sink(),
            )
            .map_err(|e| AttemptError::transient(format!("reading {what}: {e}")))?;
        }
        let mut buf = Vec::new();
        buf.try_reserve_exact(want).map_err(|e| {
            AttemptError::fatal(format!("cannot allocate {want} bytes for {what}: {e}"))
        })?;
        stream
            .take(want as u64)
            .read_to_end(&mut buf)
            .map_err(|e| AttemptError::transient(format!("reading {what}: {e}")))?;
        if buf.len() != want {
            return Err(AttemptError::transient(format!(
                "{what}: the transfer ended after {} of {want} bytes",
                buf.len()
            )));
        }
        Ok(buf)
    });
    from_source(got, fetcher)
}

/// Name the source in a fetch's final error, unless an HTTP attempt's
/// message (`GET URL: …`) names it already: the URL once per line.
fn from_source<T>(r: Result<T>, fetcher: &dyn Fetcher) -> Result<T> {
    r.map_err(|e| {
        if format!("{e:#}").contains("GET http") {
            e
        } else {
            e.context(format!("from {}", fetcher.describe()))
        }
    })
}

/// Fetch a small file that may not exist (`None`), whole, with retries;
/// more than `cap` bytes is refused as `what` being too large.
pub fn fetch_optional(
    fetcher: &mut dyn Fetcher,
    name: &str,
    cap: u64,
    what: &'static str,
    budget: &mut RetryBudget,
) -> Result<Option<Vec<u8>>> {
    fetch_whole(fetcher, cap, what, budget, |f| f.open_optional(name, cap))
}

/// Fetch a small file whole (manifest, chunk table) with retries; more than
/// `cap` bytes is refused as `what` being too large.
pub fn fetch_small(
    fetcher: &mut dyn Fetcher,
    name: Option<&str>,
    size: u64,
    cap: u64,
    what: &'static str,
    budget: &mut RetryBudget,
) -> Result<Vec<u8>> {
    let got = fetch_whole(fetcher, cap, what, budget, |f| {
        Ok(Some(match name {
            Some(n) => f.open(n, 0, size)?,
            None => f.open_manifest(cap)?,
        }))
    })?;
    Ok(got.expect("an open that never answers None"))
}

/// Read what `open` opens, whole and at most `cap` bytes, with retries.
fn fetch_whole(
    fetcher: &mut dyn Fetcher,
    cap: u64,
    what: &'static str,
    budget: &mut RetryBudget,
    mut open: impl FnMut(&mut dyn Fetcher) -> std::result::Result<Option<ByteStream>, AttemptError>,
) -> Result<Option<Vec<u8>>> {
    let got = budget.run(&format!("fetching {what}"), |_| {
        let Some(stream) = open(&mut *fetcher)? else {
            return Ok(None);
        };
        let mut buf = Vec::new();
        stream.take(cap + 1).read_to_end(&mut buf).map_err(|e| {
            AttemptError::transient(format!("reading {what} from {}: {e}", fetcher.describe()))
        })?;
        Ok(Some(buf))
    });
    let got = from_source(got, fetcher)?;
    if let Some(buf) = &got {
        if buf.len() as u64 > cap {
            return Err(Rejected::TooLarge {
                what,
                size: buf.len() as u64,
                cap,
            })
            .with_context(|| format!("from {}", fetcher.describe()));
        }
    }
    Ok(got)
}
