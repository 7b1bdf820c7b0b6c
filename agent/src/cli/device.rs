//! Device-side commands: `apply`, `status`, `health`, `mark-good`,
//! `mark-bad` and `rollback`.

use anyhow::Result;
use clap::Args;

use super::print_json;
use crate::clock::Clock;
use crate::config::Settings;
use crate::error::usage;
use crate::progress::Progress;
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
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_download: Option<u64>,
    /// Emit JSON-lines progress events on stdout instead of a progress bar.
    #[arg(long)]
    pub json: bool,
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
    let mut progress = Progress::new(a.json);
    let how = if a.kexec {
        Some(How::Kexec { dry_run: a.dry_run })
    } else if a.reboot {
        Some(How::Reboot)
    } else {
        None
    };
    let mut session = Session::open(settings, clock)?;
    // Run again after a crash between recording the trial and restarting:
    // the release is installed and the trial recorded, so finish its start.
    if let (Some(how), Some(g)) = (how, crate::trial::interrupted_start(&session)) {
        if session.install_target()? == g && !a.dry_run {
            let mut machine = RealMachine::new(settings);
            let out =
                crate::trial::activate(&mut session, None, how, machine.parts(), &mut progress)?;
            crate::say!(
                "slot {} ({}): finished starting the trial a stopped command recorded",
                out.group,
                out.version
            );
            return Ok(());
        }
    }
    let opts = crate::install::Options {
        dry_run: a.dry_run && !a.kexec,
        max_download: a.max_download,
    };
    let out = crate::install::install(&mut session, &source, None, &mut progress, &opts)?;
    if opts.dry_run {
        if a.json {
            progress.event("result", serde_json::to_value(&out).unwrap_or_default());
        } else {
            crate::say!(
                "dry run: {} {} into slot {} would cost:
{}",
                session
                    .state()
                    .group(&out.group)
                    .version()
                    .map(|_| "release")
                    .unwrap_or("release"),
                out.version,
                out.group,
                crate::install::describe_plan(&out)
            );
        }
        return Ok(());
    }
    // The install ends at "installed"; the trial is started by its owner.
    let kexec = match how {
        Some(how) => {
            let mut machine = RealMachine::new(settings);
            crate::trial::start(
                &mut session,
                &out.group,
                &out.manifest,
                how,
                machine.parts(),
                &mut progress,
            )?
        }
        None => None,
    };
    if a.json {
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
    }
    print_outcome(&out, kexec.as_ref(), a.json, a.reboot);
    Ok(())
}

/// A size in bytes: digits, optionally followed by K, M or G (or KiB, MiB,
/// GiB), powers of 1024.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a size (bytes, or a number with K, M or G)"))?;
    let mult: u64 = match unit.trim() {
        "" => 1,
        "K" | "k" | "KiB" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        "G" | "GiB" => 1 << 30,
        _ => {
            return Err(format!(
                "{s:?}: the unit must be K, M or G (powers of 1024)"
            ))
        }
    };
    let v = n
        .checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))?;
    if v == 0 {
        return Err(format!("{s:?}: the limit must be positive"));
    }
    Ok(v)
}

/// Print what `apply` did.
fn print_outcome(
    out: &crate::install::Installed,
    kexec: Option<&KexecOutcome>,
    json: bool,
    reboot: bool,
) {
    if json {
        return;
    }
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

pub(super) fn status(settings: &Settings, a: StatusArgs) -> Result<()> {
    let v = crate::status::status(settings)?;
    if a.json {
        print_json(&v);
        return Ok(());
    }
    match v["booted"].as_str() {
        Some(b) => crate::say!("booted: slot {b}"),
        None => crate::say!(
            "booted: unknown ({})",
            v["booted_error"].as_str().unwrap_or("")
        ),
    }
    if let Some(p) = v["primary"].as_str() {
        crate::say!("primary: slot {p}");
    }
    if let Some(groups) = v["groups"].as_object() {
        for (name, g) in groups {
            let version = g["version"].as_str().unwrap_or("-");
            let bootable = match g["bootable"].as_bool() {
                Some(true) => "bootable",
                Some(false) => "unbootable",
                None => "bootable?",
            };
            crate::say!(
                "slot {name}: {:<10} {version:<12} {bootable}",
                g["status"].as_str().unwrap_or("?")
            );
            if let Some(e) = g["last_error"].as_str() {
                crate::say!("  last error: {e}");
            }
        }
    }
    if let Some(bad) = v["bad_releases"].as_array().filter(|b| !b.is_empty()) {
        crate::say!("releases that failed here (never installed again by the daemon):");
        for b in bad {
            crate::say!(
                "  {} ({}): {}",
                b["version"].as_str().unwrap_or("?"),
                &b["digest"].as_str().unwrap_or("?")
                    [..12.min(b["digest"].as_str().unwrap_or("?").len())],
                b["reason"].as_str().unwrap_or("")
            );
        }
    }
    if let Some(l) = v["last_install"].as_object() {
        crate::say!(
            "last install: {} into slot {}, {} bytes fetched, {} reused",
            l.get("version").and_then(|x| x.as_str()).unwrap_or("?"),
            l.get("group").and_then(|x| x.as_str()).unwrap_or("?"),
            l.get("bytes_fetched").and_then(|x| x.as_u64()).unwrap_or(0),
            l.get("bytes_reused").and_then(|x| x.as_u64()).unwrap_or(0),
        );
    }
    if let Ok(k) =
        serde_json::from_value::<crate::trial::kexec::kernel::KernelFacts>(v["kernel"].clone())
    {
        crate::say!("kernel: {}", k.summary());
    }
    match (v["root"]["version"].as_u64(), v["root"]["error"].as_str()) {
        (Some(n), _) => crate::say!(
            "trusted root: version {n}, expires {} (from the {})",
            v["root"]["expires"].as_str().unwrap_or("?"),
            v["root"]["from"].as_str().unwrap_or("?")
        ),
        (None, Some(e)) => crate::say!("trusted root: unreadable: {e}"),
        (None, None) => {}
    }
    if let Some(n) = v["reports_pending"].as_u64().filter(|n| *n > 0) {
        crate::say!("{n} status report(s) waiting to be sent");
    }
    if let Some(i) = v["install"].as_object() {
        crate::say!(
            "interrupted install of {} into slot {} (run apply again to resume)",
            i["version"].as_str().unwrap_or("?"),
            i["group"].as_str().unwrap_or("?")
        );
    }
    Ok(())
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
    let outcome = crate::mark::health(Session::open(settings, clock)?, machine.rebooter())?;
    // The exit status tells boot-complete.target whether this boot is good:
    // 7 when the booted slot failed its trial and was marked bad. A trial
    // found lost from the fallback slot leaves this (fallback) boot good.
    let failed = match &outcome {
        crate::mark::HealthOutcome::Failed { group, reason, .. } => Some(
            crate::error::TrialFailedError(format!("slot {group} failed its trial: {reason}")),
        ),
        _ => None,
    };
    if a.json {
        print_json(&serde_json::to_value(&outcome)?);
        return failed.map_or(Ok(()), |e| Err(e.into()));
    }
    use crate::mark::HealthOutcome as H;
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
        H::Failed {
            group,
            reason,
            rebooting,
        } => {
            crate::say!(
                "slot {group} marked bad: {reason}{}",
                if *rebooting {
                    "; rebooting to the fallback"
                } else {
                    ""
                }
            )
        }
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
    let g = crate::mark::mark_good(&mut Session::open(settings, clock)?)?;
    crate::say!("slot {g} marked good and made the default");
    Ok(())
}

pub(super) fn mark_bad(settings: &Settings, clock: Clock, a: MarkBadArgs) -> Result<()> {
    let g = crate::mark::mark_bad(&mut Session::open(settings, clock)?, a.group.as_deref())?;
    crate::say!("slot {g} marked bad");
    Ok(())
}

pub(super) fn rollback(settings: &Settings, clock: Clock) -> Result<()> {
    let g = crate::mark::rollback(&mut Session::open(settings, clock)?)?;
    crate::say!("slot {g} is the default again; reboot to boot it");
    Ok(())
}
