//! Fleet commands: `check`, `daemon` and `activate`.

use anyhow::Result;
use chrono::{DateTime, Utc};
use clap::Args;

use super::print_json;
use crate::config::Settings;
use crate::daemon::{Action, Clock, DaemonOptions};
use crate::install::How;

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
