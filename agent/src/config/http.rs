//! `[http]`: timeouts, retries, TLS.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use serde::Deserialize;

use super::Origin;

/// Default connect timeout.
pub const DEFAULT_CONNECT_TIMEOUT_SECS: u64 = 15;
/// Default stall timeout.
pub const DEFAULT_STALL_TIMEOUT_SECS: u64 = 30;
/// Default retries per request.
pub const DEFAULT_RETRIES: u32 = 8;
/// Default retry budget for one install.
pub const DEFAULT_RETRY_BUDGET_SECS: u64 = 900;
/// Default first retry delay.
pub const DEFAULT_BACKOFF_INITIAL_MS: u64 = 500;
/// Default largest retry delay.
pub const DEFAULT_BACKOFF_MAX_MS: u64 = 30_000;
/// Default slowest transfer kept alive, in bytes per second...
pub const DEFAULT_MIN_SPEED_BYTES_PER_SEC: u64 = 1024;
/// ...measured over this many seconds (as curl's --speed-limit/--speed-time).
pub const DEFAULT_MIN_SPEED_WINDOW_SECS: u64 = 60;

/// The answers that mean "no such file" for a file that may be missing
/// (the next root version): what every static server sends.
pub const DEFAULT_ABSENT_STATUS: [u16; 2] = [404, 410];

/// HTTP behaviour.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// TCP+TLS connect timeout.
    pub connect_timeout: Duration,
    /// Longest wait for any progress (response headers or body bytes).
    pub stall_timeout: Duration,
    /// Retries after a failed attempt (per request, reset by progress).
    pub retries: u32,
    /// Total time an install may spend retrying.
    pub retry_budget: Duration,
    /// First backoff delay; doubles each retry, with jitter.
    pub backoff_initial: Duration,
    /// Largest backoff delay.
    pub backoff_max: Duration,
    /// Extra CA bundle (PEM) trusted besides the built-in roots.
    pub ca_bundle: Option<PathBuf>,
    /// Client certificate and key (PEM, one file) for mutual TLS.
    pub client_identity: Option<PathBuf>,
    /// A transfer slower than this (bytes per second)...
    pub min_speed_bytes_per_sec: u64,
    /// ...over this window is given up on (and retried within the budget):
    /// a server that trickles must not keep an install alive for days.
    pub min_speed_window: Duration,
    /// Hosts (`host` or `host:port`) a redirect may lead to besides the
    /// origin of the URL asked for.
    pub allow_redirect_hosts: Vec<String>,
    /// Statuses that mean a file that may be missing (the next root
    /// version) does not exist: 404 and 410, plus 403 for a private S3
    /// bucket whose readers may not list it.
    pub absent_status: Vec<u16>,
}

impl HttpSettings {
    /// The defaults (what an empty `[http]` table gives).
    pub fn defaults() -> HttpSettings {
        HttpSettings {
            connect_timeout: Duration::from_secs(DEFAULT_CONNECT_TIMEOUT_SECS),
            stall_timeout: Duration::from_secs(DEFAULT_STALL_TIMEOUT_SECS),
            retries: DEFAULT_RETRIES,
            retry_budget: Duration::from_secs(DEFAULT_RETRY_BUDGET_SECS),
            backoff_initial: Duration::from_millis(DEFAULT_BACKOFF_INITIAL_MS),
            backoff_max: Duration::from_millis(DEFAULT_BACKOFF_MAX_MS),
            ca_bundle: None,
            client_identity: None,
            min_speed_bytes_per_sec: DEFAULT_MIN_SPEED_BYTES_PER_SEC,
            min_speed_window: Duration::from_secs(DEFAULT_MIN_SPEED_WINDOW_SECS),
            allow_redirect_hosts: Vec::new(),
            absent_status: DEFAULT_ABSENT_STATUS.to_vec(),
        }
    }
}

/// `[http]` as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Raw {
    connect_timeout_secs: Option<u64>,
    stall_timeout_secs: Option<u64>,
    retries: Option<u32>,
    retry_budget_secs: Option<u64>,
    backoff_initial_ms: Option<u64>,
    backoff_max_ms: Option<u64>,
    ca_bundle: Option<PathBuf>,
    client_identity: Option<PathBuf>,
    min_speed_bytes_per_sec: Option<u64>,
    min_speed_window_secs: Option<u64>,
    allow_redirect_hosts: Option<Vec<String>>,
    absent_status: Option<Vec<u16>>,
}

pub(super) fn validate(h: Raw, origin: &Origin) -> Result<HttpSettings> {
    Ok(HttpSettings {
        connect_timeout: origin.positive_secs(
            h.connect_timeout_secs,
            DEFAULT_CONNECT_TIMEOUT_SECS,
            "http.connect_timeout_secs",
        )?,
        stall_timeout: origin.positive_secs(
            h.stall_timeout_secs,
            DEFAULT_STALL_TIMEOUT_SECS,
            "http.stall_timeout_secs",
        )?,
        retries: h.retries.unwrap_or(DEFAULT_RETRIES),
        retry_budget: origin.positive_secs(
            h.retry_budget_secs,
            DEFAULT_RETRY_BUDGET_SECS,
            "http.retry_budget_secs",
        )?,
        backoff_initial: Duration::from_millis(
            h.backoff_initial_ms.unwrap_or(DEFAULT_BACKOFF_INITIAL_MS),
        ),
        backoff_max: Duration::from_millis(h.backoff_max_ms.unwrap_or(DEFAULT_BACKOFF_MAX_MS)),
        ca_bundle: h.ca_bundle,
        client_identity: h.client_identity,
        min_speed_bytes_per_sec: h
            .min_speed_bytes_per_sec
            .unwrap_or(DEFAULT_MIN_SPEED_BYTES_PER_SEC),
        min_speed_window: origin.positive_secs(
            h.min_speed_window_secs,
            DEFAULT_MIN_SPEED_WINDOW_SECS,
            "http.min_speed_window_secs",
        )?,
        allow_redirect_hosts: h.allow_redirect_hosts.unwrap_or_default(),
        absent_status: absent_status(h.absent_status, origin)?,
    })
}

/// `http.absent_status`: client errors only (a 5xx or a redirect is never
/// "no such file": it would end a root chain on a server's bad day).
fn absent_status(v: Option<Vec<u16>>, origin: &Origin) -> Result<Vec<u16>> {
    let Some(v) = v else {
        return Ok(DEFAULT_ABSENT_STATUS.to_vec());
    };
    if v.is_empty()
        || v.iter()
            .any(|s| !(400..500).contains(s) || *s == 408 || *s == 429)
    {
        return Err(origin.invalid(
            "http.absent_status",
            format!(" = {v:?}: give one or more 4xx statuses other than 408 and 429 (which are retried), such as [403, 404, 410]"),
        ));
    }
    Ok(v)
}
