//! Fleet commands: `channel publish` (vendor side), `check`, `daemon` and
//! `activate` (device side).

use std::path::PathBuf;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};

use super::print_json;
use crate::config::Settings;
use crate::daemon::{Action, Clock, DaemonOptions};
use crate::error::usage;
use crate::install::How;

/// `updater channel` subcommands.
#[derive(Debug, Subcommand)]
pub enum ChannelCommand {
    /// Write a signed channel document naming the current release per
    /// compatible string and its rollout percentage.
    Publish(PublishArgs),
}

/// Arguments of `updater channel publish`.
#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The channel file to write (relative manifest paths are read from its
    /// folder, as devices resolve them against the channel's URL).
    #[arg(long)]
    pub out: PathBuf,
    /// A channel-role private key (repeat to meet a threshold).
    #[arg(long = "key", required = true)]
    pub keys: Vec<PathBuf>,
    /// COMPATIBLE=MANIFEST_URL[@PERCENT]: the release devices of COMPATIBLE
    /// should run, and the share of them that should run it yet (default 100).
    #[arg(long = "release", required = true)]
    pub releases: Vec<crate::channel::ReleaseArg>,
    /// COMPATIBLE=TIME (RFC 3339): devices may download before TIME but boot
    /// the release only after it.
    #[arg(long = "not-before")]
    pub not_before: Vec<String>,
    /// Channel name (default: the name of the --out file without extension).
    #[arg(long)]
    pub name: Option<String>,
    /// Expiry: a duration from now (`90m`, `36h`, `7d`) or an RFC 3339 time.
    /// Re-publish well before it; devices refuse an expired channel.
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

/// Arguments of `updater check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Decide as if it were this time (RFC 3339), e.g. inside the window.
    #[arg(long, value_parser = parse_time)]
    pub now: Option<DateTime<Utc>>,
}

/// Arguments of `updater daemon`.
#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// Poll once, act, and exit with that poll's result.
    #[arg(long)]
    pub once: bool,
    /// Run with the clock fixed at this time (RFC 3339); for tests.
    #[arg(long, value_parser = parse_time)]
    pub now: Option<DateTime<Utc>>,
}

/// Arguments of `updater activate`.
#[derive(Debug, Args)]
pub struct ActivateArgs {
    /// Boot it by a one-shot reboot trial (default: as kexec.policy says).
    #[arg(long, conflicts_with = "kexec")]
    pub reboot: bool,
    /// Boot it by a kexec trial.
    #[arg(long)]
    pub kexec: bool,
    /// With --kexec: verify and load the kernel, then unload it.
    #[arg(long, requires = "kexec")]
    pub dry_run: bool,
}

fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{s:?} is not an RFC 3339 time such as 2026-11-27T02:30:00Z: {e}"))
}

fn parse_expiry(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
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
    Ok(now + d)
}

pub(super) fn channel(c: ChannelCommand) -> Result<()> {
    match c {
        ChannelCommand::Publish(a) => publish(a),
    }
}

fn publish(a: PublishArgs) -> Result<()> {
    let now = a.issued.unwrap_or_else(Utc::now);
    let keys = a
        .keys
        .iter()
        .map(|k| crate::keys::read_private_key(k))
        .collect::<Result<Vec<_>>>()?;
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
    // Manifests named by absolute URL are fetched with the defaults.
    let http = crate::config::HttpSettings::defaults();
    let (channel, env) = crate::channel::publish(&crate::channel::PublishOptions {
        name,
        out: &a.out,
        releases: a.releases,
        not_before,
        issued: now,
        expires: parse_expiry(&a.expires, now)?,
        keys,
        http: &http,
    })?;
    crate::util::fs::write_atomic(&a.out, &env.to_json(), 0o644)
        .with_context(|| format!("writing {}", a.out.display()))?;
    if a.json {
        print_json(&serde_json::to_value(&channel)?);
    } else {
        println!(
            "channel {} written to {} (expires {})",
            channel.name,
            a.out.display(),
            channel.expires.to_rfc3339()
        );
        for r in &channel.releases {
            println!(
                "  {}: {} at {}% ({})",
                r.compatible, r.version, r.rollout_percent, r.manifest
            );
        }
    }
    Ok(())
}

pub(super) fn check(settings: &Settings, a: CheckArgs) -> Result<()> {
    let now = a.now.unwrap_or_else(Utc::now);
    let (plan, _) = crate::daemon::plan(settings, now)?;
    if a.json {
        print_json(&serde_json::to_value(&plan)?);
        return Ok(());
    }
    println!(
        "channel {} ({}): issued {}, expires {}",
        plan.channel,
        plan.channel_url,
        plan.issued.to_rfc3339(),
        plan.expires.to_rfc3339()
    );
    println!(
        "device {} ({}), slot {} runs {}",
        plan.device,
        plan.compatible,
        plan.booted,
        plan.running.as_deref().unwrap_or("an unknown release")
    );
    if let Some(r) = &plan.release {
        println!(
            "release {} at {}% ({}){}",
            r.version,
            r.rollout_percent,
            plan.manifest_url.as_deref().unwrap_or(""),
            plan.bucket
                .map(|b| format!(", this device's bucket {b}"))
                .unwrap_or_default()
        );
    }
    let what = match &plan.action {
        Action::Idle => "nothing".to_string(),
        Action::Install { activate: true } => "install and boot".into(),
        Action::Install { activate: false } => "install".into(),
        Action::Activate => "boot".into(),
        Action::Wait { until: Some(t) } => format!("wait until {}", t.to_rfc3339()),
        Action::Wait { until: None } => "wait for `updater activate`".into(),
    };
    println!("would: {what} — {}", plan.reason);
    Ok(())
}

pub(super) fn daemon(settings: &Settings, a: DaemonArgs) -> Result<()> {
    crate::daemon::run(
        settings,
        DaemonOptions {
            once: a.once,
            clock: Clock(a.now),
        },
    )
}

pub(super) fn activate(settings: &Settings, a: ActivateArgs) -> Result<()> {
    let how = if a.kexec {
        How::Kexec { dry_run: a.dry_run }
    } else if a.reboot {
        How::Reboot
    } else {
        How::from_policy(settings)
    };
    let mut progress = crate::install::progress::Progress::new(false);
    let out = crate::install::with_then(settings, how, |then| {
        crate::install::activate(settings, None, &mut progress, then)
    })?;
    println!(
        "slot {} ({}) {}",
        out.group,
        out.version,
        match &out.kexec {
            Some(crate::kexec::KexecOutcome::DryRun { cmdline, .. }) =>
                format!("verified, loaded and unloaded (dry run); would boot with: {cmdline}"),
            Some(crate::kexec::KexecOutcome::Jumped { .. }) =>
                "is being booted by kexec as a trial".into(),
            Some(crate::kexec::KexecOutcome::FellBack { reason }) =>
                format!("could not be kexec'd ({reason}); rebooting into a one-shot trial instead"),
            None => "is being booted by a one-shot reboot trial".into(),
        }
    );
    Ok(())
}
