//! `updater verify`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use serde_json::json;
use updater_format::keys::Keyring;
use updater_format::manifest::verify::{read_capped, verify, Policy};

use super::print_json;

/// Arguments of `updater verify`.
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
    /// The installed version: a lower release version is refused.
    #[arg(long)]
    pub installed_version: Option<semver::Version>,
    /// The highest security_version seen: a lower one is refused.
    #[arg(long, default_value_t = 0)]
    pub installed_security_version: u64,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

pub(super) fn run(a: VerifyArgs, clock: crate::clock::Clock) -> Result<()> {
    let keyring = Keyring::load(&a.keyring)?;
    let bytes = read_capped(&a.manifest)?;
    let policy = Policy {
        compatible: a.compatible.clone(),
        installed_version: a.installed_version.clone(),
        min_security_version: a.installed_security_version,
        agent_version: Some(crate::agent_version()),
        now: clock.now(),
        max_validity: None,
        max_security_step: None,
    };
    let result = verify(&bytes, &keyring, &policy);
    match (&result, a.json) {
        (Ok(v), true) => print_json(&v.summary()),
        (Ok(v), false) => crate::util::print_out(format_args!("{}", v.describe())),
        (Err(e), true) => print_json(&json!({"ok": false, "reason": e.to_string()})),
        (Err(_), false) => {}
    }
    result
        .map(|_| ())
        .with_context(|| format!("verifying {}", a.manifest.display()))
}
