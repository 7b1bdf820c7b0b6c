//! The durable step sequences the flows share, each in the order its
//! documentation gives (docs/boot-control.md lists every durable write):
//!
//! Commit (health passed in the trial group):
//!   C0 state: trial confirmed
//!   C1 bootloader: group bootable
//!   C2 bootloader: group primary
//!   C3 state: group `good`, trial cleared
//! (crash after C0 or C1: the old primary boots and marks the trial bad;
//! after C2: the new group boots — it is primary only because it was
//! confirmed — and health finishes the commit.)
//!
//! Defer to the first cold boot (the checks passed in a kexec boot, and
//! `trial.guard_cold_boot`, the default):
//!   K1 bootloader: one-shot trial of the group armed (the primary and the
//!      group's bootable flag do not change)
//!   K2 trial clock: a cold-boot trial, counted from the next boot
//!   K3 state: the trial restarted now (`defer_to_cold_boot`)
//! (any reset from here on boots the group once through firmware and
//! bootloader, with the trial flag; `updater health` there runs the checks
//! again and commits. If the bootloader cannot boot it, or that boot does
//! not confirm, the old primary boots and marks it bad: "committed by kexec,
//! failed its first cold boot". A crash before K1 leaves the kexec trial
//! unconfirmed, so the reset's fallback boot marks it bad: the safe side.)
//!
//! Mark bad (a check failed, or the trial never confirmed):
//!   I0 intent: which group, why (`intent.json`)
//!   B1 bootloader: group not bootable (also disarms its one-shot)
//!   B2 state: group `bad` with the reason, trial cleared
//!   I1 intent removed
//!   B3 restart, when a check failed and `health.reboot_on_failure`
//!
//! Mark the default bad, and rollback (the operator):
//!   I0 intent: which group, why, which group becomes the default
//!   D0 state: the group's release condemned (remembered as bad)
//!   D1 bootloader: the other good group primary
//!   B1, B2, I1 as above
//! (a crash after I0: every next session, whatever its command, finishes
//! the intent first, with the reason it names, before anything else; the
//! command run again reports it finished instead of starting a new one.
//! `Session::mark_bad` runs these steps.)

use anyhow::Result;

use crate::bootloader::Bootloader;
use crate::config::Settings;
use crate::error::BootError;
use crate::report::{self, Details, EventKind};
use crate::session::Session;
use crate::state::trialclock::TrialClock;
use crate::state::{GroupStatus, Phase, UpdateState};

/// C0–C3: make `group` the committed primary.
pub fn commit(session: &mut Session, group: &str) -> Result<()> {
    if matches!(
        session.state().phase(group),
        Phase::Trial | Phase::Confirmed
    ) {
        session.transition(|s, _| s.confirm(group))?;
        crate::failpoint!("commit-after-confirmed");
    }
    session.bootloader_mut().set_bootable(group, true)?;
    crate::failpoint!("commit-after-bootable");
    session.bootloader_mut().set_primary(group)?;
    crate::failpoint!("commit-after-primary");
    session.transition(|s, now| s.commit(group, now))
}

/// Whether the running kernel was started by the agent's kexec (its
/// command line carries `updater.kexec=1`, which only the agent's kexec
/// command line has).
pub fn booted_by_kexec(settings: &Settings) -> bool {
    crate::session::read_cmdline(settings)
        .map(|c| crate::session::kexec_marked(&c))
        .unwrap_or(false)
}

/// K1–K3: the checks of a kexec trial of `group` passed; guard its first
/// cold boot instead of committing it now.
pub fn defer_to_cold_boot(session: &mut Session, group: &str) -> Result<()> {
    session.bootloader_mut().arm_trial(group)?;
    crate::failpoint!("coldboot-after-arm");
    let limit = session.settings().trial.deadline;
    let deadline = chrono::Duration::from_std(limit).unwrap_or(chrono::Duration::minutes(10));
    let now = session.now();
    TrialClock::cold_boot(group, now, limit).save(&session.settings().state_dir)?;
    crate::failpoint!("coldboot-after-clock");
    session.transition(|s, _| s.defer_to_cold_boot(group, now, now + deadline))
}

/// I0, B1, B2, I1: mark `group` bad with `reason` (for the command `by`).
pub fn mark_bad_steps(session: &mut Session, by: &str, group: &str, reason: &str) -> Result<()> {
    session.mark_bad(by, group, reason, None)
}

/// I0, D0, D1, B1, B2, I1: mark the bootloader's default `group` bad, moving
/// the default to another good group first; refused when there is none.
pub fn mark_default_bad(
    session: &mut Session,
    by: &str,
    group: &str,
    reason: &str,
) -> Result<String> {
    let groups = session.slots().groups();
    let other = other_good(&groups, session.state(), session.bootloader(), group)?
        .ok_or_else(|| {
            BootError(format!(
                "refusing to mark slot {group} bad: it is the default and no other slot is good to boot instead"
            ))
        })?;
    session.mark_bad(by, group, reason, Some(&other))?;
    Ok(other)
}

/// Differences between what the state says and what the bootloader will do.
/// The bootloader env decides what boots; these are reported, not "fixed".
pub fn discrepancies(state: &UpdateState, boot: &dyn Bootloader, groups: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let primary = boot.primary().ok().flatten();
    for name in groups {
        let st = state.group(name).status();
        let Ok(bootable) = boot.bootable(name) else {
            continue;
        };
        match (st, bootable) {
            (GroupStatus::Good, false) => out.push(format!(
                "slot {} is good in the state but not bootable in the {} env",
                name,
                boot.name()
            )),
            (GroupStatus::Bad | GroupStatus::Installing | GroupStatus::Empty, true)
                if primary.as_deref() == Some(name.as_str()) =>
            {
                out.push(format!(
                    "slot {} is the {} env's primary but is {} in the state",
                    name,
                    boot.name(),
                    st.name()
                ))
            }
            _ => {}
        }
    }
    out
}

/// Report `kind` about `group` (the durable outbox).
pub fn record(session: &Session, kind: EventKind, group: &str, reason: Option<&str>) {
    let mut d = Details::of_group(session.state(), group);
    d.reason = reason.map(str::to_string);
    report::record(session.settings(), kind, d, session.now());
}

/// A group other than `not` that is good and bootable, to make the default.
pub fn other_good(
    groups: &[String],
    state: &UpdateState,
    boot: &dyn Bootloader,
    not: &str,
) -> Result<Option<String>> {
    for name in groups {
        if name != not && state.phase(name) == Phase::Good && boot.bootable(name)? {
            return Ok(Some(name.clone()));
        }
    }
    Ok(None)
}
