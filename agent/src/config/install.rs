//! `[install]`: checkpoints of the install pipeline, release validity and
//! the download budget.

use std::time::Duration;

use serde::Deserialize;

/// Default checkpoint interval.
pub const DEFAULT_CHECKPOINT_INTERVAL_MS: u64 = 1000;
/// Default checkpoint byte interval.
pub const DEFAULT_CHECKPOINT_BYTES: u64 = 64 * 1024 * 1024;
/// Default longest release validity accepted (a year and a day; vendors
/// sign for 90 days by default).
pub const DEFAULT_MAX_RELEASE_VALIDITY_DAYS: u32 = 366;

/// Install behaviour.
#[derive(Debug, Clone)]
pub struct InstallSettings {
    /// Checkpoint (fsync the slot, record progress) at least this often...
    pub checkpoint_interval: Duration,
    /// ...or after this many bytes, whichever comes first. Fewer checkpoints
    /// mean less flash wear; more mean less to redo after a power cut.
    pub checkpoint_bytes: u64,
    /// The longest validity (`expires - created`) a release may have: an
    /// expiry years ahead would switch freeze detection off.
    pub max_release_validity: chrono::Duration,
    /// Most bytes one install may download (manifest, indexes and chunks);
    /// an install whose plan needs more is refused before anything is
    /// written. None: no limit.
    pub max_download_bytes: Option<u64>,
    /// The most one release may raise security_version above the device's
    /// floor (a trusted root may set another). None: no limit.
    pub max_security_step: Option<u64>,
}

/// `[install]` as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Raw {
    checkpoint_interval_ms: Option<u64>,
    checkpoint_bytes: Option<Size>,
    max_release_validity_days: Option<u32>,
    max_download_bytes: Option<Size>,
    max_security_step: Option<u64>,
}

/// A size as written: bytes, or the command line's forms (`50M`).
#[derive(Debug, Clone, Deserialize)]
#[serde(
    untagged,
    expecting = "a number of bytes, or a size such as \"50M\" (K, M, G: powers of 1024)"
)]
pub(super) enum Size {
    /// Bytes.
    Bytes(u64),
    /// `500K`, `50M`, `2G`.
    Text(String),
}

impl Size {
    /// Bytes, or why not, for `key`.
    fn bytes(&self, key: &str, origin: &super::Origin) -> anyhow::Result<u64> {
        match self {
            Size::Bytes(0) => {
                Err(origin.invalid(key, " must be positive (leave it out for no limit)"))
            }
            Size::Bytes(n) => Ok(*n),
            Size::Text(t) => {
                crate::util::parse_size(t).map_err(|e| origin.invalid(key, format!(": {e}")))
            }
        }
    }
}

pub(super) fn validate(i: Raw, origin: &super::Origin) -> anyhow::Result<InstallSettings> {
    let days = i
        .max_release_validity_days
        .unwrap_or(DEFAULT_MAX_RELEASE_VALIDITY_DAYS);
    if days == 0 {
        return Err(origin.invalid("install.max_release_validity_days", " must be positive"));
    }
    Ok(InstallSettings {
        checkpoint_interval: Duration::from_millis(
            i.checkpoint_interval_ms
                .unwrap_or(DEFAULT_CHECKPOINT_INTERVAL_MS)
                .max(1),
        ),
        checkpoint_bytes: match &i.checkpoint_bytes {
            Some(s) => s.bytes("install.checkpoint_bytes", origin)?,
            None => DEFAULT_CHECKPOINT_BYTES,
        },
        max_release_validity: chrono::Duration::days(days.into()),
        max_download_bytes: match &i.max_download_bytes {
            Some(s) => Some(s.bytes("install.max_download_bytes", origin)?),
            None => None,
        },
        max_security_step: match i.max_security_step {
            Some(0) => {
                return Err(origin.invalid(
                    "install.max_security_step",
                    " must be positive (leave it out for no limit)",
                ))
            }
            n => n,
        },
    })
}
