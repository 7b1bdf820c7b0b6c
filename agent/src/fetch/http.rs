//! HTTP(S) fetching with reqwest over rustls.
//!
//! Resumes use `Range: bytes=N-`, deltas `Range: bytes=A-B`, with
//! `If-Range: <etag>` so that a file replaced on the server mid-download
//! comes back whole (200) instead of a splice of two files. A server that
//! ignores Range also answers 200: the caller then skips what it does not
//! need. Either way every chunk is still checked against the signed chunk
//! table or index before it is written.

use std::io::Read;

use anyhow::{Context, Result};
use reqwest::blocking::{Client, Response};
use reqwest::header::{CONTENT_RANGE, ETAG, IF_RANGE, RANGE, RETRY_AFTER};
use reqwest::StatusCode;

use super::{AttemptError, ByteStream, Counted, Counter, Fetcher};
use crate::config::HttpSettings;
use crate::error::usage;

/// Fetches release files relative to a manifest URL.
pub struct HttpFetcher {
    client: Client,
    settings: HttpSettings,
    manifest_url: reqwest::Url,
    counter: Counter,
    requests: Counter,
    /// ETag per file name, from the first response.
    etags: std::collections::HashMap<String, String>,
    /// Whether the server honours Range, once a range request (an index
    /// page, a resume) has shown it: then no probe is needed.
    range_honoured: Option<bool>,
}

impl HttpFetcher {
    /// A fetcher for the release whose manifest is at `manifest_url`.
    pub fn new(manifest_url: &str, s: &HttpSettings) -> Result<HttpFetcher> {
        let url = reqwest::Url::parse(manifest_url)
            .map_err(|e| usage(format!("source {manifest_url:?} is not a URL: {e}")))?;
        let client = client(s)?;
        Ok(HttpFetcher {
            client,
            settings: s.clone(),
            manifest_url: url,
            counter: Counter::default(),
            requests: Counter::default(),
            etags: Default::default(),
            range_honoured: None,
        })
    }

    fn url_of(&self, name: &str) -> Result<reqwest::Url, AttemptError> {
        self.manifest_url.join(name).map_err(|e| {
            AttemptError::fatal(format!("joining {name} to {}: {e}", self.manifest_url))
        })
    }

    /// GET `url`, bytes `range` of a file of `size` bytes (no Range header
    /// for the whole file).
    fn get(
        &self,
        url: &reqwest::Url,
        range: std::ops::Range<u64>,
        size: u64,
        etag: Option<&String>,
    ) -> Result<Response, AttemptError> {
        let mut req = self.client.get(url.clone());
        self.requests.add(1);
        if range.start > 0 || range.end < size {
            let value = if range.end < size {
                format!("bytes={}-{}", range.start, range.end - 1)
            } else {
                format!("bytes={}-", range.start)
            };
            req = req.header(RANGE, value);
            if let Some(t) = etag {
                req = req.header(IF_RANGE, t.as_str());
            }
        }
        let resp = send(req, url)?;
        check_status(url, resp)
    }
}

/// Send a request: network failures as attempt errors, any status as a
/// response.
fn send(
    req: reqwest::blocking::RequestBuilder,
    url: &reqwest::Url,
) -> Result<Response, AttemptError> {
    req.send().map_err(|e| {
        // The URL once: reqwest's own message repeats it.
        let redirect = e.is_redirect();
        let msg = format!("GET {url}: {}", error_chain(&e.without_url()));
        // A refused redirect is the server's answer, not a network
        // fault: retrying would only ask again.
        if redirect {
            AttemptError::fatal(msg)
        } else {
            AttemptError::transient(msg)
        }
    })
}

/// A success passes; any other status is an attempt error, retryable for
/// 408, 429 and 5xx (with the server's Retry-After).
fn check_status(url: &reqwest::Url, resp: Response) -> Result<Response, AttemptError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let retryable = status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error();
    let retry_after = resp
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .map(std::time::Duration::from_secs);
    Err(AttemptError {
        message: format!("GET {url}: HTTP {status}"),
        retryable,
        retry_after,
    })
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

/// A response body: read errors become descriptive I/O errors, and a
/// transfer that stays below the minimum speed for the whole window is cut
/// (`http.min_speed_bytes_per_sec` over `http.min_speed_window_secs`).
struct Body {
    resp: Response,
    url: String,
    min_speed: u64,
    window: std::time::Duration,
    window_start: std::time::Instant,
    window_bytes: u64,
}

impl Body {
    fn new(resp: Response, url: String, s: &HttpSettings) -> Body {
        Body {
            resp,
            url,
            min_speed: s.min_speed_bytes_per_sec,
            window: s.min_speed_window,
            window_start: std::time::Instant::now(),
            window_bytes: 0,
        }
    }
}

impl Read for Body {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.resp.read(buf).map_err(|e| {
            let kind = if e.kind() == std::io::ErrorKind::TimedOut {
                std::io::ErrorKind::TimedOut
            } else {
                std::io::ErrorKind::ConnectionAborted
            };
            std::io::Error::new(kind, format!("reading {}: {}", self.url, error_chain(&e)))
        })?;
        self.window_bytes += n as u64;
        let elapsed = self.window_start.elapsed();
        if elapsed >= self.window {
            let floor = self.min_speed.saturating_mul(self.window.as_secs().max(1));
            if self.window_bytes < floor {
                tracing::warn!(
                    "{}: {} bytes in {}s, below http.min_speed_bytes_per_sec = {}; giving up on this transfer",
                    self.url,
                    self.window_bytes,
                    elapsed.as_secs(),
                    self.min_speed
                );
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "reading {}: the transfer fell below {} bytes/s for {}s ({} bytes; http.min_speed_bytes_per_sec, http.min_speed_window_secs)",
                        self.url,
                        self.min_speed,
                        elapsed.as_secs(),
                        self.window_bytes
                    ),
                ));
            }
            self.window_start = std::time::Instant::now();
            self.window_bytes = 0;
        }
        Ok(n)
    }
}

/// The HTTP client every request of the agent uses: timeouts, the extra CA
/// bundle and the client identity from the configuration.
pub fn client(s: &HttpSettings) -> Result<Client> {
    builder(s)?.build().context("setting up the HTTP client")
}

/// Most redirects followed for one request.
pub const MAX_REDIRECTS: usize = 10;

/// Whether a redirect from `first` (the URL asked for) to `to` may be
/// followed: only to http or https (never `file:` or another local scheme),
/// never from https down to http, and only to the origin asked for or to a
/// host listed in `http.allow_redirect_hosts` (`host` or `host:port`). A
/// redirect is not a signature: everything fetched is verified anyway, but
/// a release server must not be able to turn the device into a client of
/// another host, or a TLS download into a plain one.
pub fn redirect_allowed(
    first: &reqwest::Url,
    to: &reqwest::Url,
    allow: &[String],
) -> Result<(), String> {
    if !matches!(to.scheme(), "http" | "https") {
        return Err(format!(
            "refusing the redirect from {first} to {to}: only http and https are followed"
        ));
    }
    if first.scheme() == "https" && to.scheme() != "https" {
        return Err(format!(
            "refusing the redirect from {first} to {to}: never from https to http"
        ));
    }
    let same_origin = first.scheme() == to.scheme()
        && first.host_str() == to.host_str()
        && first.port_or_known_default() == to.port_or_known_default();
    let host = to.host_str().unwrap_or("");
    let host_port = format!("{host}:{}", to.port_or_known_default().unwrap_or(0));
    if same_origin || allow.iter().any(|a| a == host || *a == host_port) {
        Ok(())
    } else {
        Err(format!(
            "refusing the redirect from {first} to {to}: another host; list it in http.allow_redirect_hosts if the release server redirects there on purpose"
        ))
    }
}

fn redirect_policy(allow: Vec<String>) -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(move |attempt| {
        let decision = match attempt.previous().first() {
            _ if attempt.previous().len() > MAX_REDIRECTS => {
                Err(format!("more than {MAX_REDIRECTS} redirects"))
            }
            Some(first) => redirect_allowed(first, attempt.url(), &allow),
            None => Ok(()),
        };
        match decision {
            Ok(()) => attempt.follow(),
            Err(why) => {
                tracing::warn!("{why}");
                attempt.error(why)
            }
        }
    })
}

/// [`client`]'s builder, for callers that change one more setting.
pub fn builder(s: &HttpSettings) -> Result<reqwest::blocking::ClientBuilder> {
    // `timeout` on the blocking client bounds each wait — for the response
    // headers and for every body read — so it is a stall timeout, not a
    // limit on the whole (possibly large) download.
    let mut b = Client::builder()
        .connect_timeout(s.connect_timeout)
        // Range requests of a delta are small and many: no Nagle delay.
        .tcp_nodelay(true)
        .timeout(s.stall_timeout)
        .user_agent(concat!("updater/", env!("CARGO_PKG_VERSION")))
        .redirect(redirect_policy(s.allow_redirect_hosts.clone()))
        .https_only(false);
    if let Some(ca) = &s.ca_bundle {
        let pem =
            std::fs::read(ca).with_context(|| format!("reading CA bundle {}", ca.display()))?;
        for cert in reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| usage(format!("CA bundle {}: {e}", ca.display())))?
        {
            b = b.add_root_certificate(cert);
        }
    }
    if let Some(id) = &s.client_identity {
        let pem = std::fs::read(id)
            .with_context(|| format!("reading client identity {}", id.display()))?;
        let ident = reqwest::Identity::from_pem(&pem).map_err(|e| {
            usage(format!(
                "client identity {} (certificate and key, PEM): {e}",
                id.display()
            ))
        })?;
        b = b.identity(ident);
    }
    Ok(b)
}

impl Fetcher for HttpFetcher {
    fn describe(&self) -> String {
        self.manifest_url.to_string()
    }

    fn locate(&self, name: &str) -> String {
        self.url_of(name)
            .map_or_else(|_| name.to_string(), |u| u.to_string())
    }

    fn open_range(
        &mut self,
        name: &str,
        range: std::ops::Range<u64>,
        size: u64,
    ) -> Result<(ByteStream, u64), AttemptError> {
        let url = self.url_of(name)?;
        let known = self.etags.get(name).cloned();
        let end = range.end.min(size);
        let resp = self.get(&url, range.start..end, size, known.as_ref())?;
        let etag = resp
            .headers()
            .get(ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        if let (Some(old), Some(new)) = (&known, &etag) {
            if old != new {
                tracing::warn!("{url} changed on the server (ETag {old} -> {new}); every chunk is still checked against the signed index");
            }
        }
        if let Some(t) = &etag {
            self.etags.insert(name.to_string(), t.clone());
        }
        let ranged = range.start > 0 || end < size;
        // A 200 whose ETag changed is If-Range at work, not a server that
        // ignores Range.
        if ranged && (known.is_none() || known == etag) {
            self.range_honoured = Some(resp.status() == StatusCode::PARTIAL_CONTENT);
        }
        let (at, stop) = if ranged && resp.status() == StatusCode::PARTIAL_CONTENT {
            let header = resp
                .headers()
                .get(CONTENT_RANGE)
                .and_then(|v| v.to_str().ok());
            super::range::check_partial(header, range.start, end, size)
                .map_err(|why| AttemptError::transient(format!("GET {url}: {why}")))?;
            (range.start, end)
        } else {
            // 200: the whole file (asked for, or the server ignored Range,
            // or If-Range said the file changed): the body starts at byte 0.
            if ranged {
                tracing::info!(
                    "{url}: the server answered a range request with the whole file (200)"
                );
            }
            (0, size)
        };
        let body: ByteStream = Box::new(Counted {
            inner: Body::new(resp, url.to_string(), &self.settings),
            counter: self.counter.clone(),
        });
        // The signed size is a hard limit: never read past it (endless data).
        Ok((Box::new(body.take(stop - at)), at))
    }

    fn open_manifest(&mut self, cap: u64) -> Result<ByteStream, AttemptError> {
        let url = self.manifest_url.clone();
        // The cap is enforced on the bytes read (cap + 1 at most), whatever
        // Content-Length claims; the caller turns cap + 1 into a rejection.
        let resp = self.get(&url, 0..u64::MAX, u64::MAX, None)?;
        Ok(Box::new(
            Counted {
                inner: Body::new(resp, url.to_string(), &self.settings),
                counter: self.counter.clone(),
            }
            .take(cap + 1),
        ))
    }

    fn open_optional(&mut self, name: &str, cap: u64) -> Result<Option<ByteStream>, AttemptError> {
        let url = self.url_of(name)?;
        self.requests.add(1);
        let resp = send(self.client.get(url.clone()), &url)?;
        // A missing file is 404 or 410 on most servers; a private S3 bucket
        // answers 403 to a reader without s3:ListBucket (http.absent_status).
        if self
            .settings
            .absent_status
            .contains(&resp.status().as_u16())
        {
            return Ok(None);
        }
        let resp = check_status(&url, resp)?;
        Ok(Some(Box::new(
            Counted {
                inner: Body::new(resp, url.to_string(), &self.settings),
                counter: self.counter.clone(),
            }
            .take(cap + 1),
        )))
    }

    fn received(&self) -> u64 {
        self.counter.get()
    }

    fn requests(&self) -> u64 {
        self.requests.get()
    }

    fn honours_range(&mut self, name: &str, size: u64) -> Result<bool, AttemptError> {
        if let Some(known) = self.range_honoured {
            return Ok(known);
        }
        if size < 2 {
            return Ok(true);
        }
        let url = self.url_of(name)?;
        let resp = self.get(&url, 0..1, size, None)?;
        // The body is not read: a 200 is dropped with its connection.
        let honoured = resp.status() == StatusCode::PARTIAL_CONTENT;
        self.range_honoured = Some(honoured);
        Ok(honoured)
    }

    fn host(&self) -> String {
        match (self.manifest_url.host_str(), self.manifest_url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            _ => self.manifest_url.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> reqwest::Url {
        reqwest::Url::parse(s).unwrap()
    }

    #[test]
    fn redirects_stay_on_the_origin_and_never_downgrade() {
        let first = u("https://updates.example.com/gw/manifest.json");
        assert!(redirect_allowed(
            &first,
            &u("https://updates.example.com/v2/manifest.json"),
            &[]
        )
        .is_ok());
        for (to, why) in [
            (
                "http://updates.example.com/gw/manifest.json",
                "never from https to http",
            ),
            ("https://evil.example.net/m.json", "another host"),
            ("https://updates.example.com:8443/m.json", "another host"),
            ("file:///etc/shadow", "only http and https"),
        ] {
            let e = redirect_allowed(&first, &u(to), &[]).unwrap_err();
            assert!(e.contains(why), "{to}: {e}");
        }
        // A listed host (or host:port) may be redirected to.
        let cdn = ["cdn.example.net".to_string()];
        assert!(redirect_allowed(&first, &u("https://cdn.example.net/m.json"), &cdn).is_ok());
        let port = ["127.0.0.1:9000".to_string()];
        let local = u("http://127.0.0.1:8000/m.json");
        assert!(redirect_allowed(&local, &u("http://127.0.0.1:9000/m.json"), &port).is_ok());
        assert!(redirect_allowed(&local, &u("http://127.0.0.1:9001/m.json"), &port).is_err());
    }
}
