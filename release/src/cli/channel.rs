//! `updater-vendor channel publish`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use updater_format::error::usage;

use super::print_json;
use crate::publish::{publish, PublishOptions, ReleaseArg};

/// `channel` subcommands.
#[derive(Debug, Subcommand)]
pub enum ChannelCommand {
    /// Write a signed channel document naming the current release per
    /// compatible string and its rollout percentage.
    #[command(after_help = super::EXIT_CODES, after_long_help = super::with_examples(super::PUBLISH_EXAMPLES))]
    Publish(PublishArgs),
}

/// Arguments of `channel publish`.
#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The channel file to write (relative manifest paths are read from its
    /// folder, as devices resolve them against the channel's URL).
    #[arg(long)]
    pub out: PathBuf,
    /// A channel-role private key (repeat to meet a threshold).
    #[arg(long = "key", required_unless_present = "signers")]
    pub keys: Vec<PathBuf>,
    /// A channel-role external signer, PUBLIC-KEY-FILE=COMMAND (as in
    /// `release create --signer`; repeat for several).
    #[arg(long = "signer")]
    pub signers: Vec<String>,
    /// COMPATIBLE=MANIFEST_URL or COMPATIBLE=MANIFEST_URL@PERCENT: the release devices of COMPATIBLE
    /// should run, and the share of them that should run it yet (default 100).
    #[arg(long = "release", required = true)]
    pub releases: Vec<ReleaseArg>,
    /// COMPATIBLE=TIME (RFC 3339): devices may download before TIME but boot
    /// the release only after it.
    #[arg(long = "not-before")]
    pub not_before: Vec<String>,
    /// Channel name (default: the name of the --out file without extension).
    #[arg(long)]
    pub name: Option<String>,
    /// Expiry: a duration from the issue time (`90m`, `36h`, `7d`) or an
    /// RFC 3339 time. Re-publish well before it; devices refuse an expired
    /// channel.
    #[arg(long, default_value = "7d")]
    pub expires: String,
    /// Issue time, RFC 3339 (default now). Devices refuse a channel issued
    /// before the newest one they followed; set it for reproducible output.
    #[arg(long, value_parser = parse_time)]
    pub issued: Option<DateTime<Utc>>,
    /// Print the channel as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Parse an RFC 3339 time, with an error that shows the form.
pub fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{s:?} is not an RFC 3339 time such as 2026-11-27T02:30:00Z: {e}"))
}

fn parse_expiry(s: &str, issued: DateTime<Utc>) -> Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = num.parse().map_err(|_| {
        usage(format!(
            "--expires {s:?} is not a duration (90m, 36h, 7d) or an RFC 3339 time"
        ))
    })?;
    let d = match unit {
        "m" => chrono::Duration::minutes(n),
        "h" => chrono::Duration::hours(n),
        "d" => chrono::Duration::days(n),
        _ => {
            return Err(usage(format!(
                "--expires {s:?}: the unit must be m, h or d"
            )))
        }
    };
    Ok(issued + d)
}

pub(super) fn run(c: ChannelCommand) -> Result<()> {
    match c {
        ChannelCommand::Publish(a) => run_publish(a),
    }
}

fn run_publish(a: PublishArgs) -> Result<()> {
    let issued = a.issued.unwrap_or_else(Utc::now);
    let keys = crate::signer::load(&a.keys, &a.signers)?;
    crate::signer::distinct(&keys, "channel")?;
    let mut not_before = Vec::new();
    for nb in &a.not_before {
        let (c, t) = nb
            .split_once('=')
            .ok_or_else(|| usage(format!("--not-before {nb:?} is not COMPATIBLE=TIME")))?;
        not_before.push((c.to_string(), parse_time(t).map_err(usage)?));
    }
    let name = match a.name {
        Some(n) => n,
        None => a
            .out
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("stable")
            .to_string(),
    };
    let (channel, env) = publish(&PublishOptions {
        name,
        out: &a.out,
        releases: a.releases,
        not_before,
        issued,
        expires: parse_expiry(&a.expires, issued)?,
        keys,
    })?;
    crate::fs::write_atomic(&a.out, &env.to_json(), 0o644)
        .with_context(|| format!("writing {}", a.out.display()))?;
    if a.json {
        print_json(&serde_json::to_value(&channel)?);
    } else {
        crate::say!(
            "channel {} written to {} (expires {})",
            channel.name,
            a.out.display(),
            channel.expires.to_rfc3339()
        );
        for r in &channel.releases {
            crate::say!(
                "  {}: {} at {}% ({})",
                r.compatible,
                r.version,
                r.rollout_percent,
                r.manifest
            );
        }
    }
    Ok(())
}
