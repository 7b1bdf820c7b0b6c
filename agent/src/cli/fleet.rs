//! Fleet commands: `check`, `daemon` and `activate`.

use anyhow::Result;
use clap::Args;

use super::print_json;
use super::progress::Progress;
use crate::clock::Clock;
use crate::config::Settings;
use crate::daemon::DaemonOptions;
use crate::fleet::Action;
use crate::flow;
use crate::session::Session;
use crate::trial::{How, KexecOutcome, RealMachine};

/// Arguments of `updater check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// A channel document's URL (or file) to check instead of
    /// daemon.channel; its name is its file's stem.
    pub channel: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `updater daemon`.
#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// Poll once, act, and exit with that poll's result.
    #[arg(long)]
    pub once: bool,
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

pub(super) fn check(settings: &Settings, clock: Clock, a: CheckArgs) -> Result<()> {
    let plan = match &a.channel {
        Some(url) => {
            let mut settings = settings.clone();
            settings.daemon.channel_name = crate::config::channel_name_of(url);
            settings.daemon.channel = Some(url.clone());
            flow::check(&settings, clock)?
        }
        None => flow::check(settings, clock)?,
    };
    if a.json {
        print_json(&serde_json::to_value(&plan)?);
        return Ok(());
    }
    crate::say!(
        "channel {} ({}): issued {}, expires {}",
        plan.channel,
        plan.channel_url,
        plan.issued.to_rfc3339(),
        plan.expires.to_rfc3339()
    );
    crate::say!(
        "device {} ({}), slot {} runs {}",
        plan.device,
        plan.compatible,
        plan.booted,
        plan.running.as_deref().unwrap_or("an unknown release")
    );
    if let Some(r) = &plan.release {
        crate::say!(
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
    crate::say!("would: {what} — {}", plan.reason);
    Ok(())
}

pub(super) fn daemon(settings: &Settings, clock: Clock, a: DaemonArgs) -> Result<()> {
    crate::daemon::run(
        settings,
        DaemonOptions {
            once: a.once,
            clock,
        },
    )
}

pub(super) fn activate(settings: &Settings, clock: Clock, a: ActivateArgs) -> Result<()> {
    let how = if a.kexec {
        How::Kexec { dry_run: a.dry_run }
    } else if a.reboot {
        How::Reboot
    } else {
        How::from_policy(settings)
    };
    let mut session = Session::open(settings, clock)?;
    let mut machine = RealMachine::new(settings);
    let out = flow::activate(
        &mut session,
        None,
        how,
        machine.parts(),
        &mut Progress::new(false),
    )?;
    crate::say!(
        "slot {} ({}) {}",
        out.group,
        out.version,
        match &out.kexec {
            Some(KexecOutcome::DryRun { cmdline, .. }) =>
                format!("verified, loaded and unloaded (dry run); would boot with: {cmdline}"),
            Some(KexecOutcome::Jumped { .. }) => "is being booted by kexec as a trial".into(),
            Some(KexecOutcome::FellBack { reason }) =>
                format!("could not be kexec'd ({reason}); rebooting into a one-shot trial instead"),
            None => "is being booted by a one-shot reboot trial".into(),
        }
    );
    Ok(())
}
