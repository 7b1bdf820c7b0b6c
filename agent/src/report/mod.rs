//! Status reports: events POSTed as JSON to a fleet server, through a
//! durable outbox in the state directory.
//!
//! Every event is first written to `outbox/<seq>.json` (atomically, fsynced)
//! by whichever command caused it — `updater health` commits in the new slot
//! long before the network may be up, a rollback is found by the old slot
//! after a reset — and only then sent. The daemon sends the outbox in order
//! at every poll; an event leaves the outbox only when the server answered
//! 2xx, so network loss and reboots lose nothing. Delivery is at least once:
//! each event carries a unique `id` for the server to drop duplicates.
//!
//! A server that refuses an event as malformed (400, 413, 422) gets it
//! moved to `outbox/refused/`, so one bad event cannot block the queue; any
//! other answer keeps it for the next try. Redirects are not followed: a
//! redirected POST turns into a GET and the event would be lost.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::Settings;
use crate::util::fs::write_atomic;

/// The outbox folder in the state directory.
pub const OUTBOX_DIR: &str = "outbox";
const SEQ_FILE: &str = "seq";
const EPOCH_FILE: &str = "epoch";
const LOCK_FILE: &str = ".lock";
const REFUSED_DIR: &str = "refused";

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    /// A release download (install into the inactive slot) began.
    Downloading,
    /// The release is installed in the inactive slot.
    Installed,
    /// The device is about to boot the release as a trial.
    TrialStarted,
    /// The release passed its health checks in its slot and is the default.
    Committed,
    /// The release was marked bad and the device runs (or is going back to)
    /// the previous slot.
    RolledBack,
    /// An update attempt failed.
    Failed,
}

/// One event as sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Unique id (device id, outbox epoch, sequence number) for
    /// de-duplication; the epoch is random per outbox, so a wiped state
    /// directory does not reuse ids.
    pub id: String,
    /// Sequence number on this device (increasing).
    pub seq: u64,
    /// The event.
    pub event: EventKind,
    /// The device id.
    pub device: String,
    /// The release version concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The release digest concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// The slot group concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<String>,
    /// Why (rolled-back, failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When it happened on the device.
    pub time: DateTime<Utc>,
    /// The agent version.
    pub agent: String,
}

/// The details of an event to record.
#[derive(Debug, Clone, Default)]
pub struct Details {
    /// Release version.
    pub version: Option<String>,
    /// Release digest.
    pub digest: Option<String>,
    /// Slot group.
    pub slot: Option<String>,
    /// Reason.
    pub reason: Option<String>,
}

impl Details {
    /// Details of the release held by `group` in the state.
    pub fn of_group(state: &crate::state::UpdateState, group: &str) -> Details {
        let g = state.group(group);
        Details {
            version: g.version().map(str::to_string),
            digest: g.digest().map(str::to_string),
            slot: Some(group.to_string()),
            reason: None,
        }
    }

    /// With a reason.
    pub fn because(mut self, reason: impl Into<String>) -> Details {
        self.reason = Some(reason.into());
        self
    }
}

/// The outbox of a state directory.
pub struct Outbox {
    dir: PathBuf,
}

impl Outbox {
    /// The outbox in `state_dir` (created on first use).
    pub fn new(state_dir: &Path) -> Outbox {
        Outbox {
            dir: state_dir.join(OUTBOX_DIR),
        }
    }

    fn lock(&self) -> Result<File> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        let f = crate::util::fs::open_lock(&self.dir.join(LOCK_FILE))
            .with_context(|| format!("opening {}", self.dir.join(LOCK_FILE).display()))?;
        // Held only for the few file operations of an enqueue or a listing,
        // never across a network request.
        f.lock()
            .with_context(|| format!("locking {}", self.dir.display()))?;
        Ok(f)
    }

    /// Write an event that happened at `time` durably; drops the oldest
    /// beyond `max`.
    pub fn enqueue(
        &self,
        kind: EventKind,
        device: &str,
        d: Details,
        max: usize,
        time: DateTime<Utc>,
    ) -> Result<Event> {
        let _lock = self.lock()?;
        let epoch = self.epoch()?;
        let seq_path = self.dir.join(SEQ_FILE);
        let last_file = self
            .pending_files()?
            .last()
            .and_then(|p| p.file_stem()?.to_str()?.parse::<u64>().ok())
            .unwrap_or(0);
        let last = match std::fs::read_to_string(&seq_path) {
            Ok(t) => t.trim().parse::<u64>().unwrap_or_else(|_| {
                tracing::warn!(
                    "{} does not hold a sequence number; continuing after the newest event",
                    seq_path.display()
                );
                0
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e).with_context(|| format!("reading {}", seq_path.display())),
        };
        let seq = last.max(last_file) + 1;
        // The counter first: a crash after it leaves a gap, never two events
        // with one number.
        write_atomic(&seq_path, format!("{seq}\n").as_bytes(), 0o644)?;
        let event = Event {
            id: format!("{device}-{epoch}-{seq}"),
            seq,
            event: kind,
            device: device.to_string(),
            version: d.version,
            digest: d.digest,
            slot: d.slot,
            reason: d.reason,
            time,
            agent: env!("CARGO_PKG_VERSION").to_string(),
        };
        write_atomic(
            &self.dir.join(format!("{seq:020}.json")),
            &serde_json::to_vec(&event)?,
            0o644,
        )?;
        let pending = self.pending_files()?;
        if pending.len() > max {
            for old in &pending[..pending.len() - max] {
                tracing::warn!(
                    "report outbox holds more than {max} events; dropping the oldest, {}",
                    old.display()
                );
                let _ = std::fs::remove_file(old);
            }
        }
        Ok(event)
    }

    /// The outbox's random epoch (made on first use).
    fn epoch(&self) -> Result<String> {
        let path = self.dir.join(EPOCH_FILE);
        match std::fs::read_to_string(&path) {
            Ok(t) if !t.trim().is_empty() => return Ok(t.trim().to_string()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        }
        let mut b = [0u8; 4];
        getrandom::getrandom(&mut b).map_err(|e| anyhow::anyhow!("getrandom: {e}"))?;
        let epoch = hex::encode(b);
        write_atomic(&path, format!("{epoch}\n").as_bytes(), 0o644)?;
        Ok(epoch)
    }

    fn pending_files(&self) -> Result<Vec<PathBuf>> {
        let mut v: Vec<PathBuf> = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.extension().is_some_and(|e| e == "json")
                        && p.file_stem()
                            .and_then(|s| s.to_str())
                            .is_some_and(|s| s.bytes().all(|b| b.is_ascii_digit()))
                })
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => vec![],
            Err(e) => return Err(e).with_context(|| format!("listing {}", self.dir.display())),
        };
        v.sort();
        Ok(v)
    }

    /// The events waiting to be sent, oldest first.
    pub fn pending(&self) -> Result<Vec<Event>> {
        let files = {
            let _lock = self.lock()?;
            self.pending_files()?
        };
        let mut out = Vec::new();
        for f in files {
            match std::fs::read(&f) {
                Ok(b) => match serde_json::from_slice(&b) {
                    Ok(e) => out.push(e),
                    Err(e) => tracing::warn!("skipping unreadable event {}: {e}", f.display()),
                },
                // Sent and removed by another process meanwhile.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("reading {}", f.display())),
            }
        }
        Ok(out)
    }

    fn path_of(&self, e: &Event) -> PathBuf {
        self.dir.join(format!("{:020}.json", e.seq))
    }

    /// Send the pending events in order to `url`; stops at the first one the
    /// server does not take (it is retried next time). Returns how many were
    /// delivered.
    pub fn flush(&self, url: &str, client: &reqwest::blocking::Client) -> Result<usize> {
        let mut sent = 0;
        for e in self.pending()? {
            let resp = client
                .post(url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(serde_json::to_vec(&e)?)
                .send();
            match resp {
                Ok(r) if r.status().is_success() => {
                    let _ = std::fs::remove_file(self.path_of(&e));
                    sent += 1;
                }
                Ok(r) if matches!(r.status().as_u16(), 400 | 413 | 422) => {
                    let refused = self.dir.join(REFUSED_DIR);
                    std::fs::create_dir_all(&refused)?;
                    let dest = refused.join(format!("{:020}.json", e.seq));
                    std::fs::rename(self.path_of(&e), &dest)?;
                    tracing::warn!(
                        "the report server refused event {} with {}; kept in {}",
                        e.id,
                        r.status(),
                        dest.display()
                    );
                }
                Ok(r) if r.status().is_redirection() => {
                    anyhow::bail!(
                        "report.url {url} redirects ({} to {}); set report.url to the final URL. {} event(s) stay in the outbox",
                        r.status(),
                        r.headers()
                            .get(reqwest::header::LOCATION)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("?"),
                        self.pending_files()?.len()
                    )
                }
                Ok(r) => {
                    anyhow::bail!(
                        "the report server answered {} to event {}{}; {} event(s) stay in the outbox",
                        r.status(),
                        e.id,
                        if matches!(r.status().as_u16(), 401 | 403 | 404) {
                            " (check report.url and the client identity)"
                        } else {
                            ""
                        },
                        self.pending_files()?.len()
                    )
                }
                Err(err) => {
                    anyhow::bail!(
                        "sending event {} to {url}: {err}; {} event(s) stay in the outbox",
                        e.id,
                        self.pending_files()?.len()
                    )
                }
            }
        }
        Ok(sent)
    }
}

/// Record an event that happened at `now` when reporting is configured.
/// Never fails the caller: a transition that happened must not be undone
/// because its report could not be written; the failure is logged.
pub fn record(settings: &Settings, kind: EventKind, d: Details, now: DateTime<Utc>) {
    if settings.report.url.is_none() {
        return;
    }
    let device = match settings.device.id() {
        Ok(id) => id,
        Err(e) => {
            tracing::warn!("not reporting {kind:?}: {e:#}");
            return;
        }
    };
    if let Err(e) =
        Outbox::new(&settings.state_dir).enqueue(kind, &device, d, settings.report.max_events, now)
    {
        tracing::warn!("could not write the {kind:?} report to the outbox: {e:#}");
    }
}

/// Send the outbox when reporting is configured; failures are logged and
/// retried on the next call.
pub fn flush(settings: &Settings) -> Option<usize> {
    let url = settings.report.url.as_ref()?;
    let client = match crate::fetch::http::builder(&settings.http).and_then(|b| {
        b.redirect(reqwest::redirect::Policy::none())
            .build()
            .context("setting up the HTTP client")
    }) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("reports: {e:#}");
            return None;
        }
    };
    match Outbox::new(&settings.state_dir).flush(url, &client) {
        Ok(n) => Some(n),
        Err(e) => {
            tracing::warn!("reports: {e:#}");
            None
        }
    }
}
