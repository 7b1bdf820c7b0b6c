//! `updater-vendor verify`: check a release before publishing it.

use std::path::PathBuf;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use clap::Args;
use updater_format::keys::Keyring;
use updater_format::manifest::verify::{read_capped, verify, Policy};

use super::print_json;

/// Arguments of `verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The release's manifest.json.
    pub manifest: PathBuf,
    /// The keyring folder to trust.
    #[arg(long)]
    pub keyring: PathBuf,
    /// The device's compatible string (checked when given).
    #[arg(long)]
    pub compatible: Option<String>,
    /// Check expiry as of this time (RFC 3339) instead of the clock.
    #[arg(long)]
    pub now: Option<DateTime<Utc>>,
    /// The longest validity (days from creation to expiry) the devices
    /// accept: their install.max_release_validity_days.
    #[arg(long, default_value_t = crate::DEFAULT_MAX_VALIDITY_DAYS)]
    pub max_validity_days: u32,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

pub(super) fn run(a: VerifyArgs) -> Result<()> {
    let keyring = Keyring::load(&a.keyring)?;
    let bytes = read_capped(&a.manifest)?;
    let policy = Policy {
        compatible: a.compatible.clone(),
        max_validity: Some(updater_format::limits::Limit {
            value: chrono::Duration::days(i64::from(a.max_validity_days)),
            setting: "the devices' install.max_release_validity_days; --max-validity-days",
        }),
        ..Policy::at(a.now.unwrap_or_else(Utc::now))
    };
    let result = verify(&bytes, &keyring, &policy);
    match (&result, a.json) {
        (Ok(v), true) => print_json(&v.summary()),
        (Ok(v), false) => crate::print_out(format_args!("{}", v.describe())),
        (Err(e), true) => print_json(&serde_json::json!({"ok": false, "reason": e.to_string()})),
        (Err(_), false) => {}
    }
    result
        .map(|_| ())
        .with_context(|| format!("verifying {}", a.manifest.display()))
}
