//! Device-side commands: `apply`, `status`, `health`, `mark-good`,
//! `mark-bad` and `rollback`.

use anyhow::Result;
use clap::Args;

use super::print_json;
use super::progress::Progress;
use crate::clock::Clock;
use crate::config::Settings;
use crate::error::usage;
use crate::flow;
use crate::session::Session;
use crate::trial::{How, KexecOutcome, RealMachine};

/// Arguments of `updater apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// A manifest URL (http, https, file), a channel URL, or a local release
    /// folder; default: `source` from the configuration.
    pub source: Option<String>,
    /// Install only; do not start a trial (the default).
    #[arg(long, conflicts_with = "reboot")]
    pub no_reboot: bool,
    /// After installing, arm the bootloader's one-shot trial of the new slot
    /// and reboot into it.
    #[arg(long, conflicts_with = "kexec")]
    pub reboot: bool,
    /// After installing, verify the new slot's kernel and kexec into it as a
    /// trial (kexec.policy decides what happens when the kernel refuses).
    #[arg(long)]
    pub kexec: bool,
    /// Print the plan — bytes to fetch, bytes reused from each slot, number
    /// of requests — and stop: nothing is written (the slots are read to
    /// find what can be reused). With --kexec: install, then verify and load
    /// the kernel and unload it, reporting what would run.
    #[arg(long)]
    pub dry_run: bool,
    /// Refuse the install when it would download more than this (bytes, or
    /// with a suffix: 500K, 20M, 1G, powers of 1024); overrides
    /// install.max_download_bytes.
    #[arg(long, value_name = "SIZE", value_parser = crate::util::parse_size)]
    pub max_download: Option<u64>,
    /// Emit JSON-lines progress events on stdout instead of a progress bar.
    #[arg(long)]
    pub json: bool,
    /// Install the release even when the booted slot runs it already (by
    /// default that is nothing to do).
    #[arg(long)]
    pub reinstall: bool,
}

/// Arguments of `updater status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

pub(super) fn apply(settings: &Settings, clock: Clock, a: ApplyArgs) -> Result<()> {
    let source = a
        .source
        .or_else(|| settings.source.clone())
        .ok_or_else(|| usage("no SOURCE given and no `source` in the configuration"))?;
    let trial = if a.kexec {
        Some(How::Kexec { dry_run: a.dry_run })
    } else if a.reboot {
        Some(How::Reboot)
    } else {
        None
    };
    let mut progress = Progress::new(a.json);
    let mut session = Session::open(settings, clock)?;
    let mut machine = RealMachine::new(settings);
    super::progress::on_interrupt_say_how_to_resume();
    let applied = flow::apply(
        &mut session,
        &flow::Request {
            source: &source,
            trial,
            dry_run: a.dry_run,
            max_download: a.max_download,
            expect: None,
            reinstall: a.reinstall,
        },
        machine.parts(),
        &mut progress,
    )?;
    render_applied(&applied, &mut progress, a.json, a.reboot);
    Ok(())
}

/// Print what `apply` did: JSON's last line, or a sentence.
fn render_applied(applied: &flow::Applied, progress: &mut Progress, json: bool, reboot: bool) {
    let (out, kexec) = match applied {
        flow::Applied::FinishedStart(a) => {
            crate::say!(
                "slot {} ({}): finished starting the trial a stopped command recorded",
                a.group,
                a.version
            );
            return;
        }
        flow::Applied::AlreadyRunning { group, version } => {
            if json {
                progress.event(
                    "result",
                    serde_json::json!({"already_running": true, "group": group, "version": version}),
                );
            } else {
                crate::say!(
                    "release {version} already runs in slot {group}: nothing to do (`--reinstall` installs it into the other slot anyway)"
                );
            }
            return;
        }
        flow::Applied::Installed {
            installed, kexec, ..
        } => (installed, kexec.as_ref()),
    };
    if out.dry_run {
        if json {
            progress.event("result", serde_json::to_value(out).unwrap_or_default());
        } else {
            crate::say!(
                "dry run: release {} into slot {} would cost:\n{}",
                out.version,
                out.group,
                crate::install::describe_plan(out)
            );
        }
        return;
    }
    if json {
        // The last line: what the install cost.
        progress.event(
            "result",
            serde_json::json!({
                "group": out.group,
                "version": out.version,
                "bytes_fetched": out.bytes_fetched,
                "bytes_reused": out.bytes_reused,
                "bytes_in_place": out.bytes_in_place,
                "bytes_from_booted": out.bytes_from_booted,
                "requests": out.requests,
                "resumed": out.resumed,
            }),
        );
        return;
    }
    print_outcome(out, kexec, reboot);
}

/// Print what `apply` installed and how its trial starts.
fn print_outcome(out: &crate::install::Installed, kexec: Option<&KexecOutcome>, reboot: bool) {
    crate::say!(
        "installed {} into slot {} ({} bytes fetched, {} reused{}{}){}",
        out.version,
        out.group,
        out.bytes_fetched,
        out.bytes_reused,
        if out.resumed { ", resumed" } else { "" },
        if out.retries > 0 { format!(", {} retries", out.retries) } else { String::new() },
        match kexec {
            Some(KexecOutcome::DryRun { cmdline, kernel_bytes, initrd_bytes }) => format!(
                "; kexec dry run: kernel ({kernel_bytes} bytes){} verified, loaded and unloaded; would boot with: {cmdline}",
                initrd_bytes.map(|n| format!(" and initrd ({n} bytes)")).unwrap_or_default()
            ),
            Some(KexecOutcome::Jumped { cmdline }) => format!("; kexec into the trial with: {cmdline}"),
            Some(KexecOutcome::FellBack { reason }) => {
                format!("; kexec not possible ({reason}): rebooting into a one-shot trial instead")
            }
            None if reboot => "; rebooting into a one-shot trial".into(),
            None => "; the slot stays unbootable until it is tried (updater activate, or apply --reboot or --kexec)".into(),
        }
    );
}

pub(super) fn status(settings: &Settings, a: StatusArgs, verbose: bool) -> Result<()> {
    let st = flow::status(settings)?;
    if a.json {
        print_json(&serde_json::to_value(&st)?);
        return Ok(());
    }
    render_status(settings, &st, verbose);
    Ok(())
}

/// `status` for people.
fn render_status(settings: &Settings, st: &flow::Status, verbose: bool) {
    match &st.booted {
        Some(b) => crate::say!("booted: slot {b}"),
        None => crate::say!(
            "booted: unknown ({})",
            st.booted_error.as_deref().unwrap_or("")
        ),
    }
    if let Some(p) = &st.primary {
        crate::say!("primary: slot {p}");
    }
    for (name, g) in &st.groups {
        let bootable = match g.bootable {
            Some(true) => "bootable",
            Some(false) => "unbootable",
            None => "bootable?",
        };
        crate::say!(
            "slot {name}: {:<10} {:<12} {bootable}",
            g.status,
            g.version.as_deref().unwrap_or("-")
        );
        if let Some(e) = &g.last_error {
            crate::say!("  last error: {e}");
        }
    }
    if !st.bad_releases.is_empty() {
        crate::say!("releases that failed here (never installed again by the daemon):");
        for b in &st.bad_releases {
            crate::say!(
                "  {} ({}): {}",
                b.version.as_deref().unwrap_or("?"),
                &b.digest[..12.min(b.digest.len())],
                b.reason
            );
        }
    }
    if let Some(l) = &st.last_install {
        crate::say!(
            "last install: {} into slot {}, {} bytes fetched, {} reused",
            l.version,
            l.group,
            l.bytes_fetched,
            l.bytes_reused
        );
    }
    if let Some(t) = &st.trial {
        let (version, cold) = (
            st.groups
                .get(&t.group)
                .and_then(|g| g.version.as_deref())
                .unwrap_or("?"),
            crate::state::trialclock::TrialClock::load(&settings.state_dir, &t.group, t.started)
                .is_some_and(|c| c.cold_boot),
        );
        let next = if t.confirmed {
            "its health checks passed and its commit is under way; the next `updater health` finishes it".to_string()
        } else if cold {
            "it passed its checks after a kexec; its first boot through the bootloader decides: reboot once, and `updater health` there commits it (a boot of another slot marks it bad)".to_string()
        } else if st.booted.as_deref() == Some(t.group.as_str()) {
            format!("`updater health` in this boot decides it: its checks pass by {}, or it is marked bad", t.deadline.to_rfc3339())
        } else {
            format!("it boots at the next restart, and `updater health` there decides it by {} (a boot of another slot marks it bad; `updater mark-bad {}` gives it up)", t.deadline.to_rfc3339(), t.group)
        };
        crate::say!(
            "trial: slot {} ({version}) since {}; {next}",
            t.group,
            t.started.to_rfc3339()
        );
    }
    // What the kernel lets a kexec do matters when a kexec may happen.
    if verbose || settings.kexec.policy != crate::config::KexecPolicy::Never {
        crate::say!("kernel: {}", st.kernel.summary());
    }
    match &st.root {
        Some(flow::status::RootStatus::Trusted {
            version,
            expires,
            from,
            ..
        }) => crate::say!("trusted root: version {version}, expires {expires} (from the {from})"),
        Some(flow::status::RootStatus::Unreadable { error }) => {
            crate::say!("trusted root: unreadable: {error}")
        }
        None => {}
    }
    if let Some(n) = st.reports_pending.filter(|n| *n > 0) {
        crate::say!("{n} status report(s) waiting to be sent");
    }
    if let Some(i) = &st.install {
        match crate::state::lock_holder(&settings.state_dir) {
            Some(pid) => crate::say!(
                "install of {} into slot {} running now (process {pid} holds the state lock)",
                i.version,
                i.group
            ),
            None => crate::say!(
                "interrupted install of {} into slot {} (run apply again to resume)",
                i.version,
                i.group
            ),
        }
    }
}

/// Arguments of `updater health`.
#[derive(Debug, Args)]
pub struct HealthArgs {
    /// Print the outcome as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `updater mark-bad`.
#[derive(Debug, Args)]
pub struct MarkBadArgs {
    /// The slot group (default: the booted one).
    pub group: Option<String>,
}

pub(super) fn health(settings: &Settings, clock: Clock, a: HealthArgs) -> Result<()> {
    let machine = RealMachine::new(settings);
    let outcome = flow::health(Session::open(settings, clock)?, machine.rebooter())?;
    // The exit status tells boot-complete.target whether this boot is good:
    // 7 when the booted slot failed its trial and was marked bad. A trial
    // found lost from the fallback slot leaves this (fallback) boot good.
    let failed = match &outcome {
        flow::HealthOutcome::Failed { group, reason, .. } => Some(crate::error::TrialFailedError(
            format!("slot {group} failed its trial: {reason}"),
        )),
        _ => None,
    };
    if a.json {
        print_json(&serde_json::to_value(&outcome)?);
        return failed.map_or(Ok(()), |e| Err(e.into()));
    }
    use flow::HealthOutcome as H;
    match &outcome {
        H::NothingPending { discrepancies } => {
            crate::say!("no trial pending");
            for d in discrepancies {
                crate::say!("warning: {d}");
            }
        }
        H::Committed { group, checks } => {
            crate::say!(
                "slot {group} passed {} health check(s) and is committed as the default",
                checks.len()
            )
        }
        // The reason is the error line's (exit 7), said once.
        H::Failed {
            group, rebooting, ..
        } => crate::say!(
            "slot {group} marked bad{}",
            if *rebooting {
                "; rebooting to the fallback"
            } else {
                ""
            }
        ),
        H::TrialLost { group, reason, .. } => crate::say!("slot {group} marked bad: {reason}"),
        H::ColdBootPending { group, checks } if checks.is_empty() => crate::say!(
            "slot {group} passed its checks after a kexec; its first boot through the bootloader is armed and will decide"
        ),
        H::ColdBootPending { group, checks } => crate::say!(
            "slot {group} passed {} health check(s) after a kexec; it becomes the default once its first boot through the bootloader confirms (armed as a one-shot trial)",
            checks.len()
        ),
    }
    failed.map_or(Ok(()), |e| Err(e.into()))
}

pub(super) fn mark_good(settings: &Settings, clock: Clock) -> Result<()> {
    let g = flow::mark_good(&mut Session::open(settings, clock)?)?;
    crate::say!("slot {g} marked good and made the default");
    Ok(())
}

pub(super) fn mark_bad(settings: &Settings, clock: Clock, a: MarkBadArgs) -> Result<()> {
    let g = flow::mark_bad(&mut Session::open(settings, clock)?, a.group.as_deref())?;
    crate::say!("slot {g} marked bad");
    Ok(())
}

pub(super) fn rollback(settings: &Settings, clock: Clock) -> Result<()> {
    let g = flow::rollback(&mut Session::open(settings, clock)?)?;
    crate::say!("slot {g} is the default again; reboot to boot it");
    Ok(())
}
