//! `updater verify`: as this device would decide (its configuration), or
//! against a keyring alone (`--keyring`, for a build machine or a release
//! manager's laptop).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use serde_json::json;
use updater_format::keys::Keyring;
use updater_format::manifest::verify::{Policy, Verified};

use super::print_json;
use crate::config::Settings;

/// Arguments of `updater verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The release: a manifest's URL, a release folder or manifest file,
    /// or a channel document (followed to this device's release), as
    /// `apply` takes it.
    pub source: String,
    /// Verify against this keyring alone instead of the device's
    /// configuration (its keyring, trusted root and compatible string).
    #[arg(long)]
    pub keyring: Option<PathBuf>,
    /// With --keyring: the compatible string to check.
    #[arg(long, requires = "keyring")]
    pub compatible: Option<String>,
    /// With --keyring: a lower release version is refused.
    #[arg(long, requires = "keyring")]
    pub installed_version: Option<semver::Version>,
    /// With --keyring: a lower security_version is refused.
    #[arg(long, default_value_t = 0, requires = "keyring")]
    pub installed_security_version: u64,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

pub(super) fn run(
    a: VerifyArgs,
    clock: crate::clock::Clock,
    settings: impl FnOnce() -> Result<Settings>,
) -> Result<()> {
    let result = match &a.keyring {
        Some(dir) => with_keyring(&a, dir, clock),
        None => settings()
            .context(
                "`updater verify` without --keyring decides as this device would, from its configuration; \
                 pass --keyring DIR to verify against a keyring alone",
            )
            .and_then(|s| crate::flow::verify::verify(&s, clock, &a.source)),
    };
    match (&result, a.json) {
        (Ok(v), true) => print_json(&v.summary()),
        (Ok(v), false) => crate::util::print_out(format_args!("{}", v.describe())),
        (Err(e), true) => print_json(&json!({"ok": false, "reason": format!("{e:#}")})),
        (Err(_), false) => {}
    }
    result
        .map(|_| ())
        .with_context(|| format!("verifying {}", a.source))
}

/// The policy given on the command line, checked against the keyring in
/// `dir` alone.
fn with_keyring(
    a: &VerifyArgs,
    dir: &std::path::Path,
    clock: crate::clock::Clock,
) -> Result<Verified> {
    let policy = Policy {
        compatible: a.compatible.clone(),
        installed_version: a.installed_version.clone(),
        min_security_version: a.installed_security_version,
        agent_version: Some(crate::agent_version()),
        now: clock.now(),
        max_validity: None,
        max_security_step: None,
    };
    crate::flow::verify::with_keyring(&a.source, &Keyring::load(dir)?, &policy)
}
