//! Starting a trial: the one place that records a trial and runs the boot
//! method, by reboot or by kexec, each behind [`BootMethod`]. A kexec that
//! cannot happen comes back as a [`Refusal`], and `kexec.policy` decides
//! here, and only here, whether the trial falls back to a reboot or fails.
//!
//! The order of durable steps:
//!
//!   M1 method prepares (kexec: verify the kernel over sealed bytes, check
//!      the watchdog) — nothing recorded yet, so a refusal changes nothing;
//!   T1 state: group `trial`, trial {group, started, deadline};
//!   M2 method stages (reboot: arm the bootloader's one-shot; kexec: load the
//!      sealed kernel, arm the watchdog);
//!   R  report `trial-started`, at the point of no return;
//!   M3 restart into the group.
//!
//! A crash after T1: the next boot is the old primary, which sees an
//! unconfirmed trial and marks the group bad — conservative, never unsafe.
//! Before any reboot, the same command run again finishes the start
//! instead ([`interrupted_start`]): the trial recorded in this very boot is
//! staged and restarted into, with its first record's start and deadline.
//! A refusal at M2: with `prefer`, the recorded trial is staged by the
//! reboot method instead; with `require`, the trial is reverted (nothing
//! will boot it) and the command fails with exit code 6.

pub mod kexec;
pub mod method;
pub mod reboot;

use anyhow::Result;
use serde_json::json;

use crate::config::{KexecPolicy, Settings};
use crate::error::usage;
use crate::events::Events;
use crate::report::{self, Details, EventKind};
use crate::session::Session;
use crate::state::Phase;
pub use kexec::KexecOutcome;
use kexec::{loader::KexecLoader, watchdog::Watchdog, KexecMethod};
pub use method::{BootMethod, MethodError, Refusal};
use reboot::{RebootMethod, Rebooter};

/// How to boot a trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    /// The bootloader's one-shot, then a reboot.
    Reboot,
    /// kexec (the policy decides on refusal), or a dry run of it.
    Kexec {
        /// Verify, load and unload; record nothing, restart nothing.
        dry_run: bool,
    },
}

impl How {
    /// How to boot a trial on this device: kexec unless `kexec.policy` is
    /// `never` (the policy then also decides what a refused kexec does).
    pub fn from_policy(settings: &Settings) -> How {
        match settings.kexec.policy {
            KexecPolicy::Never => How::Reboot,
            _ => How::Kexec { dry_run: false },
        }
    }
}

/// The parts of the machine a trial start touches: what restarts it, what
/// loads a kernel, the hardware watchdog. Tests hand in doubles; the device
/// hands in [`RealMachine::parts`].
pub struct Machine<'m> {
    /// Restarts the machine.
    pub rebooter: &'m dyn Rebooter,
    /// Loads a kernel with kexec_file_load.
    pub loader: &'m dyn KexecLoader,
    /// The watchdog armed before a kexec, if one is configured.
    pub watchdog: Option<&'m mut dyn Watchdog>,
}

/// The device's own machine parts, from the configuration.
pub struct RealMachine {
    rebooter: Box<dyn Rebooter>,
    loader: kexec::loader::SyscallLoader,
    watchdog: Option<kexec::watchdog::DevWatchdog>,
}

impl RealMachine {
    /// The configured rebooter, the real kexec_file_load and watchdog.
    pub fn new(settings: &Settings) -> RealMachine {
        RealMachine {
            rebooter: reboot::rebooter(settings.trial.reboot_command.as_ref()),
            loader: kexec::loader::SyscallLoader,
            watchdog: settings
                .kexec
                .watchdog
                .as_ref()
                .map(|w| kexec::watchdog::DevWatchdog::new(w, &settings.kexec.sys_root)),
        }
    }

    /// Borrow the parts for one trial start.
    pub fn parts(&mut self) -> Machine<'_> {
        Machine {
            rebooter: self.rebooter.as_ref(),
            loader: &self.loader,
            watchdog: self.watchdog.as_mut().map(|w| w as &mut dyn Watchdog),
        }
    }

    /// The rebooter alone (health reboots back after a failed check).
    pub fn rebooter(&self) -> &dyn Rebooter {
        self.rebooter.as_ref()
    }
}

/// T1: record a trial of `group` durably: its boot-relative clock first
/// (it only means something once the state says "trial"), then the state.
fn record(session: &mut Session, group: &str) -> Result<()> {
    let limit = session.settings().trial.deadline;
    let deadline = chrono::Duration::from_std(limit).unwrap_or(chrono::Duration::minutes(10));
    let now = session.now();
    crate::state::trialclock::TrialClock::now(group, now, limit)
        .save(&session.settings().state_dir)?;
    session.transition(|s, _| s.start_trial(group, now, now + deadline))?;
    crate::failpoint!("after-record-trial");
    Ok(())
}

/// R: report `trial-started` at the point of no return (right before the
/// restart), so that a refused kexec load that falls back or reverts does
/// not report a trial twice or one that never happened. Sent later from
/// whichever slot runs next (the outbox is on the data partition).
fn report_started(session: &Session, group: &str) {
    report::record(
        session.settings(),
        EventKind::TrialStarted,
        Details::of_group(session.state(), group),
        session.now(),
    );
}

/// The group of a trial whose start a crash interrupted: recorded (T1) in
/// this very boot, by this agent, not yet booted, not a cold-boot trial.
/// Run again, `apply --reboot|--kexec` and `activate` finish its start (M2,
/// R, M3) instead of refusing it as pending; at the next boot `updater
/// health` would mark it bad, as it marks every trial that did not boot.
pub fn interrupted_start(session: &Session) -> Option<String> {
    let t = session.state().trial()?;
    if t.confirmed || t.group == session.booted() {
        return None;
    }
    let c = crate::state::trialclock::TrialClock::load(
        &session.settings().state_dir,
        &t.group,
        t.started,
    )?;
    let this_boot = crate::util::boottime::boot_id();
    (!c.cold_boot && c.boot_id.is_some() && c.boot_id == this_boot).then(|| t.group.clone())
}

/// Boot the installed release of `group` (whose verified manifest is
/// `manifest`) as a trial, `how` the caller asks; or finish the start of
/// its trial that a crash interrupted in this boot.
pub fn start(
    session: &mut Session,
    group: &str,
    manifest: &[u8],
    how: How,
    machine: Machine<'_>,
    progress: &mut dyn Events,
) -> Result<Option<KexecOutcome>> {
    let resume = interrupted_start(session).as_deref() == Some(group);
    if resume {
        tracing::warn!(
            "the trial of slot {group} was recorded in this boot by a command that stopped before the restart: finishing its start"
        );
    } else if session.state().phase(group) != Phase::Installed {
        return Err(usage(format!(
            "slot {group} holds no installed release to boot (it is {}); install one with `updater apply`",
            session.state().phase(group)
        )));
    }
    match how {
        How::Reboot => {
            progress.step("trial", &json!({"group": group, "how": "reboot"}));
            let mut m = RebootMethod::new(machine.rebooter);
            run_reboot(session, &mut m, group, manifest, resume)?;
            Ok(None)
        }
        How::Kexec { dry_run } => {
            progress.step(
                "trial",
                &json!({"group": group, "how": "kexec", "dry_run": dry_run}),
            );
            let k = start_kexec(session, group, manifest, dry_run, resume, machine)?;
            progress.step("kexec", &serde_json::to_value(&k).unwrap_or_default());
            Ok(Some(k))
        }
    }
}

fn run_reboot(
    session: &mut Session,
    m: &mut RebootMethod<'_>,
    group: &str,
    manifest: &[u8],
    recorded: bool,
) -> Result<()> {
    m.prepare(session, group, manifest).map_err(into_error)?;
    if !recorded {
        record(session, group)?;
    }
    if let Err(e) = m.stage(session, group) {
        // The one-shot could not be armed (a full EFI variable store, a
        // read-only env): the release is not at fault, so the trial is
        // taken back instead of being marked bad at the next boot.
        take_back(session, group)?;
        return Err(into_error(e).context(format!(
            "arming the trial of slot {group} failed, so the trial was taken back (slot {group} stays installed); fix what the error names and run `updater activate`"
        )));
    }
    report_started(session, group);
    if let Err(e) = m.jump() {
        // Nothing restarted: take the trial back, so that a later reboot
        // (for whatever reason) does not boot the new slot unannounced.
        take_back(session, group)?;
        return Err(e.context(format!(
            "the restart into the trial of slot {group} failed, so the one-shot trial was disarmed and the trial taken back (slot {group} stays installed); fix the restart and run `updater activate`"
        )));
    }
    Ok(())
}

/// Undo a recorded trial that never restarted: `group` unbootable again
/// (which also disarms its one-shot), the state back to `installed`.
fn take_back(session: &mut Session, group: &str) -> Result<()> {
    session.bootloader_mut().set_bootable(group, false)?;
    session.transition(|s, now| s.revert_trial(group, now))
}

fn into_error(e: MethodError) -> anyhow::Error {
    match e {
        MethodError::Failed(e) => e,
        MethodError::Refused(r) => kexec::required(&r),
    }
}

fn start_kexec(
    session: &mut Session,
    group: &str,
    manifest: &[u8],
    dry_run: bool,
    recorded: bool,
    machine: Machine<'_>,
) -> Result<KexecOutcome> {
    let policy = session.settings().kexec.policy;
    let Machine {
        rebooter,
        loader,
        watchdog,
    } = machine;
    // The policy's answer to a refusal; `recorded` says whether T1 happened.
    let refused = |session: &mut Session, r: Refusal, recorded: bool| -> Result<KexecOutcome> {
        if policy == KexecPolicy::Require {
            if recorded {
                // Leave no trial armed: nothing will boot the new slot.
                session.transition(|s, now| s.revert_trial(group, now))?;
            }
            return Err(kexec::required(&r));
        }
        let reason = r.reason();
        tracing::warn!("{reason}; falling back to a reboot trial");
        run_reboot(
            session,
            &mut RebootMethod::new(rebooter),
            group,
            manifest,
            recorded,
        )?;
        Ok(KexecOutcome::FellBack { reason })
    };
    if policy == KexecPolicy::Never && !dry_run {
        return refused(session, Refusal::Disabled, recorded);
    }
    let mut k = KexecMethod::new(loader, watchdog, rebooter, dry_run);
    // M1: verify; nothing is recorded yet.
    match k.prepare(session, group, manifest) {
        Ok(()) => {}
        Err(MethodError::Failed(e)) => return Err(e),
        // A dry run changes nothing, so it never falls back to a reboot.
        Err(MethodError::Refused(r)) if dry_run => return Err(kexec::required(&r)),
        Err(MethodError::Refused(r)) => return refused(session, r, recorded),
    }
    if dry_run {
        return k.dry_run();
    }
    let cmdline = k.cmdline()?;
    if !recorded {
        record(session, group)?;
    }
    match k.stage(session, group) {
        Ok(()) => {}
        Err(MethodError::Refused(r)) => return refused(session, r, true),
        Err(MethodError::Failed(e)) => {
            session.transition(|s, now| s.revert_trial(group, now))?;
            return Err(e);
        }
    }
    report_started(session, group);
    tracing::info!("kexec into slot {group}");
    k.jump()?;
    Ok(KexecOutcome::Jumped { cmdline })
}
