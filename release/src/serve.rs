//! A small static HTTP/1.1 file server for loopback: the demo serves releases
//! with it, the benchmark measures against it, and the tests use its fault
//! injection to prove the install pipeline survives bad networks.
//!
//! It serves GET and HEAD of the files in one folder, with single byte-range
//! requests (`Range: bytes=N-` / `N-M`), a strong ETag and `If-Range`. Faults
//! are armed through [`Server::fault`]; each fires a given number of times.
//! It binds only to loopback addresses.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// One injected fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Close the connection after sending this many body bytes.
    DropAfter(u64),
    /// Answer with this status and no body.
    Status(u16),
    /// After this many body bytes, stop sending for the duration (then close).
    StallAfter(u64, Duration),
    /// Declare this many bytes more in Content-Length than are sent, then close.
    ShortBody(u64),
    /// Ignore Range and If-Range: answer 200 with the whole file.
    IgnoreRange,
    /// Flip the byte at this file offset in what is sent.
    FlipByte(u64),
    /// Close the connection after this many body bytes, and from then on
    /// serve the file under a new ETag, as if it had been re-uploaded.
    DropAndReplace(u64),
    /// Hold the request before anything is answered (before the file is
    /// even opened) until [`Server::release_holds`], then answer it as the
    /// folder is then: a slow client in a race, made deterministic.
    Hold,
}

/// A fault, the file it applies to (by name; None: any) and how many more
/// requests it affects.
#[derive(Debug, Clone)]
pub struct ArmedFault {
    /// The fault.
    pub fault: Fault,
    /// Only requests for this file name.
    pub file: Option<String>,
    /// Requests left to affect.
    pub times: u32,
}

/// A request as the server saw it.
#[derive(Debug, Clone)]
pub struct RequestLog {
    /// Requested path.
    pub path: String,
    /// Range start, if any.
    pub range_start: Option<u64>,
    /// Status sent.
    pub status: u16,
    /// Whether an If-Range validator was sent, and whether it matched.
    pub if_range_matched: Option<bool>,
}

/// Shared state between the server threads and the test.
#[derive(Debug, Default)]
pub struct Shared {
    faults: Mutex<VecDeque<ArmedFault>>,
    log: Mutex<Vec<RequestLog>>,
    body_bytes: AtomicU64,
    /// Body bytes sent per file name.
    by_file: Mutex<std::collections::HashMap<String, u64>>,
    /// Bytes per second for bodies (0: unlimited).
    rate: AtomicU64,
    /// Bumped by `DropAndReplace`: part of every ETag.
    generation: AtomicU64,
    /// Where each request is appended as lines (`serve --log`).
    log_file: Mutex<Option<File>>,
    /// Request ids for that log.
    next_id: AtomicU64,
    /// Requests held by `Fault::Hold` so far.
    held: AtomicU64,
    /// Set by `release_holds`; held requests wait on it.
    released: (Mutex<bool>, std::sync::Condvar),
}

/// A running server; stopped when dropped.
pub struct Server {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Serve `dir` on `addr` (a loopback address; port 0 picks one).
    pub fn start(dir: &Path, addr: &str) -> Result<Server> {
        let listener = TcpListener::bind(addr).with_context(|| format!("binding {addr}"))?;
        let local = listener.local_addr()?;
        if !local.ip().is_loopback() {
            bail!("the test server only listens on loopback addresses, not {local}");
        }
        let shared = Arc::new(Shared::default());
        let stop = Arc::new(AtomicBool::new(false));
        let dir = dir.to_path_buf();
        let (s2, stop2) = (shared.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (dir, shared, stop) = (dir.clone(), s2.clone(), stop2.clone());
                std::thread::spawn(move || {
                    let _ = handle(conn, &dir, &shared, &stop);
                });
            }
        });
        Ok(Server {
            addr: local,
            shared,
            stop,
            thread: Some(thread),
        })
    }

    /// The address served.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR/NAME`.
    pub fn url(&self, name: &str) -> String {
        format!("http://{}/{}", self.addr, name)
    }

    /// Arm a fault for the next `times` requests (of `file`, if given).
    pub fn fault(&self, fault: Fault, file: Option<&str>, times: u32) {
        self.shared.faults.lock().unwrap().push_back(ArmedFault {
            fault,
            file: file.map(str::to_string),
            times,
        });
    }

    /// Append two lines per request to `path`: `REQ ID PATH STATUS
    /// RANGE_START` (RANGE_START `-` for a whole file) when the answer
    /// starts, and `DONE ID BYTES` when its body is done or the connection
    /// ends, so that a harness counts what was really sent and in which
    /// order the requests came.
    pub fn log_to(&self, path: &Path) -> Result<()> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        *self.shared.log_file.lock().unwrap() = Some(f);
        Ok(())
    }

    /// Requests that `Fault::Hold` has held so far (released or not).
    pub fn held(&self) -> u64 {
        self.shared.held.load(Ordering::SeqCst)
    }

    /// Let every held request go on (and any later one armed to be held).
    pub fn release_holds(&self) {
        let (lock, cv) = &self.shared.released;
        *lock.lock().unwrap() = true;
        cv.notify_all();
    }

    /// Limit body throughput (bytes per second; 0 for none).
    pub fn set_rate(&self, bytes_per_sec: u64) {
        self.shared.rate.store(bytes_per_sec, Ordering::SeqCst);
    }

    /// Body bytes sent so far.
    pub fn body_bytes(&self) -> u64 {
        self.shared.body_bytes.load(Ordering::SeqCst)
    }

    /// Body bytes sent so far of the file `name`.
    pub fn bytes_of(&self, name: &str) -> u64 {
        self.shared
            .by_file
            .lock()
            .unwrap()
            .get(name)
            .copied()
            .unwrap_or(0)
    }

    /// Reset the byte counters (the total and per file) and the log.
    pub fn reset_counter(&self) {
        self.shared.body_bytes.store(0, Ordering::SeqCst);
        self.shared.by_file.lock().unwrap().clear();
        self.shared.log.lock().unwrap().clear();
    }

    /// The requests served so far.
    pub fn log(&self) -> Vec<RequestLog> {
        self.shared.log.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Take the first armed fault for `file` of the kind `which` accepts.
fn take_fault(shared: &Shared, file: &str, which: fn(&Fault) -> bool) -> Option<Fault> {
    let mut faults = shared.faults.lock().unwrap();
    let pos = faults.iter().position(|f| {
        f.times > 0 && f.file.as_deref().is_none_or(|n| n == file) && which(&f.fault)
    })?;
    let f = &mut faults[pos];
    f.times -= 1;
    let fault = f.fault.clone();
    if f.times == 0 {
        faults.remove(pos);
    }
    Some(fault)
}

/// A strong validator: the file's identity and version, plus the
/// generation that `DropAndReplace` bumps.
fn etag(md: &std::fs::Metadata, generation: u64) -> String {
    format!(
        "\"{:x}-{:x}-{:x}-{generation}\"",
        md.ino(),
        md.len(),
        md.mtime_nsec() as u64 ^ (md.mtime() as u64) << 20
    )
}

fn handle(conn: TcpStream, dir: &Path, shared: &Shared, stop: &AtomicBool) -> Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    // The head and the body go out in separate writes: without this, Nagle
    // holds the body until the client's delayed ACK (40 ms a request).
    conn.set_nodelay(true)?;
    // A client that vanished (a guest reset) must not hold a thread forever.
    conn.set_write_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut out = conn;
    // Keep-alive: serve requests until the client closes or a fault closes.
    loop {
        if stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
        let mut range = None;
        let mut if_range = None;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h)? == 0 {
                return Ok(());
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                match k.trim().to_ascii_lowercase().as_str() {
                    "range" => range = Some(v.trim().to_string()),
                    "if-range" => if_range = Some(v.trim().to_string()),
                    _ => {}
                }
            }
        }
        let keep = serve_one(&mut out, method, target, range, if_range, dir, shared)?;
        if !keep {
            let _ = out.shutdown(Shutdown::Both);
            return Ok(());
        }
    }
}

/// What a `Range` request header asks of a file of `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAsk {
    /// The whole file (no header, or one this server does not serve by
    /// parts: several ranges, suffix ranges, other units).
    Whole,
    /// Bytes `start..end` (end exclusive).
    Part {
        /// First byte.
        start: u64,
        /// One past the last byte.
        end: u64,
    },
    /// A range that starts at or past the end of the file (416).
    Unsatisfiable {
        /// The start asked for.
        start: u64,
    },
}

/// Parse a single-range `Range: bytes=START-[END]` header (RFC 9110 §14.2)
/// against a file of `len` bytes. Anything else is served whole, which a
/// client must handle anyway.
pub fn parse_range(header: Option<&str>, len: u64) -> RangeAsk {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeAsk::Whole;
    };
    let Some((a, b)) = spec.split_once('-') else {
        return RangeAsk::Whole;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    if !digits(a) || !(b.is_empty() || digits(b)) {
        return RangeAsk::Whole;
    }
    let Ok(start) = a.parse::<u64>() else {
        return RangeAsk::Whole;
    };
    if start >= len {
        return RangeAsk::Unsatisfiable { start };
    }
    let end = match b {
        "" => len,
        b => match b.parse::<u64>() {
            Ok(last) if last >= start => last.saturating_add(1).min(len),
            _ => return RangeAsk::Whole,
        },
    };
    RangeAsk::Part { start, end }
}

fn respond_empty(out: &mut TcpStream, status: u16, reason: &str) -> Result<()> {
    write!(
        out,
        "HTTP/1.1 {status} {reason}\r\nContent-Length: 0\r\n\r\n"
    )?;
    Ok(())
}

/// Serve one request; returns whether the connection stays open.
/// One request's entry in the request log.
struct Logger<'a> {
    shared: &'a Shared,
    name: &'a str,
    if_range_matched: Option<bool>,
}

impl Logger<'_> {
    fn log(&self, status: u16, start: Option<u64>) {
        self.shared.log.lock().unwrap().push(RequestLog {
            path: self.name.to_string(),
            range_start: start,
            status,
            if_range_matched: self.if_range_matched,
        });
    }
}

/// Answer one request: the file opened (or an early answer), the range
/// chosen, the head, then the body with any fault armed for it. Returns
/// whether the connection may serve another request.
fn serve_one(
    out: &mut TcpStream,
    method: &str,
    target: &str,
    range: Option<String>,
    if_range: Option<String>,
    dir: &Path,
    shared: &Shared,
) -> Result<bool> {
    let name = target
        .trim_start_matches('/')
        .split('?')
        .next()
        .unwrap_or("")
        .to_string();
    let mut logger = Logger {
        shared,
        name: &name,
        if_range_matched: None,
    };
    let Some(file) = open_or_answer(out, method, dir, &logger)? else {
        return Ok(true);
    };
    let fault = take_fault(shared, &name, |f| {
        !matches!(f, Fault::Hold | Fault::Status(_))
    });
    let md = file.metadata()?;
    let len = md.len();
    let tag = etag(&md, shared.generation.load(Ordering::SeqCst));
    logger.if_range_matched = if_range.as_deref().map(|v| v == tag);
    let ignore_range = fault == Some(Fault::IgnoreRange);
    // If-Range: honour the range only if the client's validator still matches.
    let range_ok = !ignore_range && if_range.as_deref().is_none_or(|v| v == tag);
    let (start, end, partial) = match parse_range(range.as_deref().filter(|_| range_ok), len) {
        RangeAsk::Whole => (0, len, false),
        RangeAsk::Part { start, end } => (start, end, true),
        RangeAsk::Unsatisfiable { start } => {
            logger.log(416, Some(start));
            write!(out, "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{len}\r\nContent-Length: 0\r\n\r\n")?;
            return Ok(true);
        }
    };
    let body_len = end - start;
    let declared = match fault {
        Some(Fault::ShortBody(extra)) => body_len + extra,
        _ => body_len,
    };
    let status = if partial { 206 } else { 200 };
    logger.log(status, partial.then_some(start));
    write_head(
        out,
        status,
        declared,
        &tag,
        partial.then_some((start, end, len)),
    )?;
    if method == "HEAD" {
        return Ok(true);
    }
    let whole = send_body(
        out,
        file,
        &name,
        start,
        body_len,
        status,
        partial,
        fault.as_ref(),
        shared,
    )?;
    // A body a fault cut closes the connection; a lying Content-Length can
    // only be followed by closing it too.
    Ok(whole && !matches!(fault, Some(Fault::ShortBody(_))))
}

/// Before the file: the method, a plain name, a request held, an injected
/// status (taken before the file is opened, so that it also stands for a
/// file that is not there: a private S3 bucket answers 403 for a missing
/// object), and a missing file. The file, or None when answered already.
fn open_or_answer(
    out: &mut TcpStream,
    method: &str,
    dir: &Path,
    logger: &Logger<'_>,
) -> Result<Option<File>> {
    let (shared, name) = (logger.shared, logger.name);
    if method != "GET" && method != "HEAD" {
        logger.log(405, None);
        respond_empty(out, 405, "Method Not Allowed")?;
        return Ok(None);
    }
    // Plain names only: the server never leaves its folder.
    if updater_format::names::check_plain_name(name, "path").is_err() {
        logger.log(404, None);
        respond_empty(out, 404, "Not Found")?;
        return Ok(None);
    }
    if take_fault(shared, name, |f| matches!(f, Fault::Hold)).is_some() {
        shared.held.fetch_add(1, Ordering::SeqCst);
        let (lock, cv) = &shared.released;
        // Bounded: a test that forgets to release must not hang forever.
        let _ = cv
            .wait_timeout_while(lock.lock().unwrap(), Duration::from_secs(120), |r| !*r)
            .unwrap();
    }
    if let Some(Fault::Status(code)) = take_fault(shared, name, |f| matches!(f, Fault::Status(_))) {
        logger.log(code, None);
        respond_empty(out, code, "Injected")?;
        return Ok(None);
    }
    match File::open(dir.join(name)) {
        Ok(f) => Ok(Some(f)),
        Err(_) => {
            logger.log(404, None);
            respond_empty(out, 404, "Not Found")?;
            Ok(None)
        }
    }
}

/// The response head; `range` is (start, end, file length) of a 206.
fn write_head(
    out: &mut TcpStream,
    status: u16,
    declared: u64,
    tag: &str,
    range: Option<(u64, u64, u64)>,
) -> Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Length: {declared}\r\nETag: {tag}\r\nAccept-Ranges: bytes\r\nContent-Type: application/octet-stream\r\n",
        if range.is_some() { "Partial Content" } else { "OK" }
    );
    if let Some((start, end, len)) = range {
        head.push_str(&format!(
            "Content-Range: bytes {start}-{}/{len}\r\n",
            end - 1
        ));
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes())?;
    Ok(())
}

/// `DONE ID BYTES` in the request log file when a body ends, however it
/// ends (done, a fault, or the client went away).
struct Done<'a> {
    shared: &'a Shared,
    id: u64,
    sent: std::cell::Cell<u64>,
}

impl Drop for Done<'_> {
    fn drop(&mut self) {
        if let Some(f) = self.shared.log_file.lock().unwrap().as_mut() {
            let _ = writeln!(f, "DONE {} {}", self.id, self.sent.get());
        }
    }
}

/// The body: `body_len` bytes of `file` from `start`, at the configured
/// rate, with the fault armed for it (cut, stall, flip a byte). Whether it
/// was sent whole (false: a fault cut it).
#[allow(clippy::too_many_arguments)]
fn send_body(
    out: &mut TcpStream,
    mut file: File,
    name: &str,
    start: u64,
    body_len: u64,
    status: u16,
    partial: bool,
    fault: Option<&Fault>,
    shared: &Shared,
) -> Result<bool> {
    file.seek(SeekFrom::Start(start))?;
    let mut reader = file.take(body_len);
    let mut buf = vec![0u8; 64 * 1024];
    let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
    if let Some(f) = shared.log_file.lock().unwrap().as_mut() {
        let at = if partial {
            start.to_string()
        } else {
            "-".into()
        };
        let _ = writeln!(f, "REQ {id} {name} {status} {at}");
    }
    let done = Done {
        shared,
        id,
        sent: std::cell::Cell::new(0),
    };
    let mut sent = 0u64;
    let began = Instant::now();
    loop {
        // A slow rate is sent in small pieces (at most a second's worth at a
        // time), so that a client sees a trickle, not a burst and a pause.
        let rate = shared.rate.load(Ordering::SeqCst);
        let piece = if rate > 0 {
            (rate as usize).clamp(1, buf.len())
        } else {
            buf.len()
        };
        let mut n = reader.read(&mut buf[..piece])?;
        if n == 0 {
            break;
        }
        if let Some(Fault::DropAfter(at) | Fault::StallAfter(at, _) | Fault::DropAndReplace(at)) =
            fault
        {
            if sent + n as u64 > *at {
                n = at.saturating_sub(sent) as usize;
            }
        }
        if let Some(Fault::FlipByte(off)) = fault {
            let pos = start + sent;
            if *off >= pos && *off < pos + n as u64 {
                buf[(off - pos) as usize] ^= 0x01;
            }
        }
        out.write_all(&buf[..n])?;
        sent += n as u64;
        done.sent.set(sent);
        shared.body_bytes.fetch_add(n as u64, Ordering::SeqCst);
        *shared
            .by_file
            .lock()
            .unwrap()
            .entry(name.to_string())
            .or_insert(0) += n as u64;
        match fault {
            Some(Fault::DropAfter(at)) if sent >= *at => return Ok(false),
            Some(Fault::DropAndReplace(at)) if sent >= *at => {
                shared.generation.fetch_add(1, Ordering::SeqCst);
                return Ok(false);
            }
            Some(Fault::StallAfter(at, d)) if sent >= *at => {
                out.flush()?;
                std::thread::sleep(*d);
                return Ok(false);
            }
            _ => {}
        }
        let rate = shared.rate.load(Ordering::SeqCst);
        if rate > 0 {
            let due = Duration::from_secs_f64(sent as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(began.elapsed()) {
                std::thread::sleep(wait);
            }
        }
    }
    out.flush()?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_headers() {
        assert_eq!(parse_range(None, 10), RangeAsk::Whole);
        assert_eq!(
            parse_range(Some("bytes=2-"), 10),
            RangeAsk::Part { start: 2, end: 10 }
        );
        assert_eq!(
            parse_range(Some("bytes=2-4"), 10),
            RangeAsk::Part { start: 2, end: 5 }
        );
        assert_eq!(
            parse_range(Some("bytes=2-99"), 10),
            RangeAsk::Part { start: 2, end: 10 }
        );
        assert_eq!(
            parse_range(Some("bytes=10-"), 10),
            RangeAsk::Unsatisfiable { start: 10 }
        );
        for whole in [
            "bytes=-5",
            "bytes=1-2,4-5",
            "items=0-1",
            "bytes=5-2",
            "bytes=a-",
            "bytes=99999999999999999999999-",
        ] {
            assert_eq!(parse_range(Some(whole), 10), RangeAsk::Whole, "{whole}");
        }
    }
}
