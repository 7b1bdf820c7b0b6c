//! `[device]` and `[report]`: the device's identity and its status reports.

use std::path::PathBuf;

use anyhow::Result;
use serde::Deserialize;

use super::Origin;
use crate::error::usage;

/// The device's identity.
#[derive(Debug, Clone)]
pub struct DeviceSettings {
    /// A fixed id (overrides `id_file`).
    pub id: Option<String>,
    /// The file holding the id (first line; default `/etc/machine-id`).
    pub id_file: PathBuf,
}

impl DeviceSettings {
    /// The device id: `id` as written, else derived from the first line of
    /// `id_file` as the first 32 hex digits of
    /// sha256("updater-device-id-v1\n" followed by the line). The machine id
    /// itself is confidential (systemd's rule: it must not leave the
    /// machine); the derived id is stable, specific to this agent, and is
    /// what the rollout hashes and the reports carry.
    pub fn id(&self) -> Result<String> {
        if let Some(id) = &self.id {
            return Ok(id.clone());
        }
        let text = std::fs::read_to_string(&self.id_file).map_err(|e| {
            usage(format!(
                "reading the device id from {}: {e}; set device.id or device.id_file in the configuration",
                self.id_file.display()
            ))
        })?;
        let id = text.lines().next().unwrap_or("").trim().to_string();
        if id.is_empty() || id == "uninitialized" {
            return Err(usage(format!(
                "{} is empty; it must hold the device id (systemd writes /etc/machine-id at first boot)",
                self.id_file.display()
            )));
        }
        use sha2::Digest;
        let h = sha2::Sha256::digest(format!("updater-device-id-v1\n{id}").as_bytes());
        Ok(hex::encode(&h[..16]))
    }
}

/// Status reports.
#[derive(Debug, Clone)]
pub struct ReportSettings {
    /// Where events are POSTed; none: reporting is off.
    pub url: Option<String>,
    /// Events kept in the outbox at most (the oldest are dropped beyond).
    pub max_events: usize,
}

/// Default size of the report outbox.
pub const DEFAULT_MAX_EVENTS: usize = 10_000;

/// `[device]` as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDevice {
    id: Option<String>,
    id_file: Option<PathBuf>,
}

/// `[report]` as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReport {
    url: Option<String>,
    max_events: Option<usize>,
}

pub(super) fn validate_device(d: RawDevice, origin: &Origin) -> Result<DeviceSettings> {
    if d.id.as_ref().is_some_and(|i| i.trim().is_empty()) {
        return Err(origin.invalid("device.id", " is empty"));
    }
    Ok(DeviceSettings {
        id: d.id,
        id_file: d
            .id_file
            .unwrap_or_else(|| PathBuf::from("/etc/machine-id")),
    })
}

pub(super) fn validate_report(r: RawReport, origin: &Origin) -> Result<ReportSettings> {
    if let Some(u) = &r.url {
        if !(u.starts_with("http://") || u.starts_with("https://")) {
            return Err(origin.invalid(
                "report.url",
                format!(" = {u:?} is not an http or https URL"),
            ));
        }
    }
    Ok(ReportSettings {
        url: r.url,
        max_events: r.max_events.unwrap_or(DEFAULT_MAX_EVENTS).max(1),
    })
}
