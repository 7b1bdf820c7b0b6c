//! What boots from now on: reconciling a trial at boot (`updater health`),
//! commit, mark-good, mark-bad and rollback. Every flow takes the session,
//! and with it the session's bootloader backend.
//!
//! Each flow is an order of durable steps (every step fsynced before the
//! next), chosen so that a crash between any two leaves the invariants
//! standing: the primary always points at a group that can boot and is good
//! or a confirmed trial, an unconfirmed trial never becomes primary, and the
//! next `updater health` tells the truth.
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
use crate::error::{usage, BootError};
use crate::report::{self, Details, EventKind};
use crate::session::Session;
use crate::state::trialclock::TrialClock;
use crate::state::{GroupStatus, Phase, UpdateState};
use crate::trial::reboot::{Rebooter, Restart};

/// What `updater health` found and did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum HealthOutcome {
    /// No trial was pending.
    NothingPending {
        /// Differences between the state and the bootloader env, if any.
        discrepancies: Vec<String>,
    },
    /// The trial group passed its checks and is now the primary.
    Committed {
        /// The group.
        group: String,
        /// The checks that passed.
        checks: Vec<String>,
    },
    /// A check failed: the group is bad.
    Failed {
        /// The group.
        group: String,
        /// The failed check and its output.
        reason: String,
        /// Whether the agent is rebooting back to the fallback.
        rebooting: bool,
    },
    /// The group passed its checks in a kexec boot; it becomes the primary
    /// only after its first boot through firmware and bootloader confirms
    /// (armed as a one-shot trial; the old primary stays the default).
    ColdBootPending {
        /// The group.
        group: String,
        /// The checks that passed (empty when this boot already deferred).
        checks: Vec<String>,
    },
    /// The machine came back in another group: the trial never confirmed.
    TrialLost {
        /// The group that was tried.
        group: String,
        /// The group that booted instead.
        booted: String,
        /// The recorded reason.
        reason: String,
    },
}

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
        .map(|c| {
            c.split_whitespace()
                .any(|w| w == crate::trial::kexec::KEXEC_MARK)
        })
        .unwrap_or(false)
}

/// K1–K3: the checks of a kexec trial of `group` passed; guard its first
/// cold boot instead of committing it now.
fn defer_to_cold_boot(session: &mut Session, group: &str) -> Result<()> {
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
fn mark_default_bad(session: &mut Session, by: &str, group: &str, reason: &str) -> Result<String> {
    let other = other_good(session.settings(), session.state(), session.bootloader(), group)?
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
pub fn discrepancies(
    state: &UpdateState,
    boot: &dyn Bootloader,
    settings: &Settings,
) -> Vec<String> {
    let mut out = Vec::new();
    let primary = boot.primary().ok().flatten();
    for g in &settings.slots {
        let st = state.group(&g.name).status();
        let Ok(bootable) = boot.bootable(&g.name) else {
            continue;
        };
        match (st, bootable) {
            (GroupStatus::Good, false) => out.push(format!(
                "slot {} is good in the state but not bootable in the {} env",
                g.name,
                boot.name()
            )),
            (GroupStatus::Bad | GroupStatus::Installing | GroupStatus::Empty, true)
                if primary.as_deref() == Some(g.name.as_str()) =>
            {
                out.push(format!(
                    "slot {} is the {} env's primary but is {} in the state",
                    g.name,
                    boot.name(),
                    st.name()
                ))
            }
            _ => {}
        }
    }
    out
}

fn record(session: &Session, kind: EventKind, group: &str, reason: Option<&str>) {
    let mut d = Details::of_group(session.state(), group);
    d.reason = reason.map(str::to_string);
    report::record(session.settings(), kind, d, session.now());
}

/// `updater health`: reconcile a pending trial at boot.
pub fn health(mut session: Session, rebooter: &dyn Rebooter) -> Result<HealthOutcome> {
    let booted = session.booted().to_string();
    // Run again after a crash while marking this boot's slot bad: the
    // session finished that; what is left is the restart back.
    if let Some(done) = session
        .finished_intent()
        .filter(|i| i.by == "health" && i.group == booted)
        .cloned()
    {
        let rebooting = session.settings().health.reboot_on_failure;
        drop(session);
        if rebooting {
            rebooter.restart(Restart::Reboot)?;
        }
        return Ok(HealthOutcome::Failed {
            group: booted,
            reason: done.reason,
            rebooting,
        });
    }
    let Some(trial) = session.state().trial().cloned() else {
        let d = discrepancies(session.state(), session.bootloader(), session.settings());
        for line in &d {
            tracing::warn!("{line}");
        }
        return Ok(HealthOutcome::NothingPending { discrepancies: d });
    };
    let clock = TrialClock::load(&session.settings().state_dir, &trial.group, trial.started);
    let cold_boot = clock.as_ref().is_some_and(|c| c.cold_boot);
    if trial.group != booted {
        let reason = if cold_boot {
            format!(
                "committed by kexec, failed its first cold boot: slot {} passed its checks after a kexec, but its first boot through firmware and bootloader (armed at {}) did not confirm and slot {booted} booted instead (the bootloader could not load it, or it hung, reset or lost power before its health checks)",
                trial.group,
                trial.started.to_rfc3339()
            )
        } else {
            format!(
                "trial did not confirm: slot {} was tried at {} but slot {booted} booted instead (hang, watchdog reset, power cut or crash before the health checks)",
                trial.group,
                trial.started.to_rfc3339()
            )
        };
        mark_bad_steps(&mut session, "health", &trial.group, &reason)?;
        tracing::error!("{reason}");
        return Ok(HealthOutcome::TrialLost {
            group: trial.group,
            booted,
            reason,
        });
    }
    // Still the kexec boot that deferred (only the agent's kexec puts the
    // mark on a command line; the bootloader's never has it): the proof is
    // the next boot through the bootloader, nothing to decide in this one.
    if cold_boot && booted_by_kexec(session.settings()) {
        return Ok(HealthOutcome::ColdBootPending {
            group: booted,
            checks: vec![],
        });
    }
    // The deadline on the boot's own clock when this agent recorded the
    // trial (immune to a clock that jumps after boot), else on the wall
    // clock, as an older agent recorded it.
    let overdue = match &clock {
        Some(c) => c.overdue().then(|| {
            format!(
                "the trial deadline of {}s passed before the health checks ran ({}s into the trial, by the boot's clock)",
                c.deadline_secs,
                c.elapsed().as_secs()
            )
        }),
        None => (session.now() > trial.deadline).then(|| {
            format!(
                "the trial deadline {} passed before the health checks ran",
                trial.deadline.to_rfc3339()
            )
        }),
    };
    let result = if trial.confirmed {
        // The checks already passed; a crash interrupted the commit.
        Ok(vec![])
    } else if let Some(why) = overdue {
        Err(why)
    } else {
        crate::health::run_checks(
            &session.settings().health,
            session.settings().security.allow_insecure_permissions,
        )
        .map_err(|f| f.to_string())
    };
    match result {
        Ok(checks)
            if !trial.confirmed
                && session.settings().trial.guard_cold_boot
                && booted_by_kexec(session.settings()) =>
        {
            defer_to_cold_boot(&mut session, &booted)?;
            tracing::info!(
                "slot {booted} is healthy after the kexec; it becomes the default once its first boot through the bootloader confirms (armed as a one-shot; slot {} stays the default until then)",
                session
                    .bootloader()
                    .primary()
                    .ok()
                    .flatten()
                    .unwrap_or_else(|| "?".into())
            );
            Ok(HealthOutcome::ColdBootPending {
                group: booted,
                checks,
            })
        }
        Ok(checks) => {
            commit(&mut session, &booted)?;
            tracing::info!("slot {booted} is healthy and committed as the default");
            // Reported only here: after the checks passed in the new slot
            // and the commit is durable.
            record(&session, EventKind::Committed, &booted, None);
            Ok(HealthOutcome::Committed {
                group: booted,
                checks,
            })
        }
        Err(reason) => {
            mark_bad_steps(&mut session, "health", &booted, &reason)?;
            tracing::error!("slot {booted}: {reason}");
            let rebooting = session.settings().health.reboot_on_failure;
            // Release the state lock before restarting.
            drop(session);
            if rebooting {
                rebooter.restart(Restart::Reboot)?;
            }
            Ok(HealthOutcome::Failed {
                group: booted,
                reason,
                rebooting,
            })
        }
    }
}

/// `updater mark-good`: confirm the booted group (commits a pending trial of
/// it without running the checks, or makes a good booted group the default
/// again).
pub fn mark_good(session: &mut Session) -> Result<String> {
    let booted = session.booted().to_string();
    if let Some(t) = session.state().trial() {
        if t.group != booted {
            return Err(usage(format!(
                "a trial of slot {} is pending but slot {booted} is booted; run `updater health` to reconcile first",
                t.group
            )));
        }
    }
    match session.state().phase(&booted) {
        Phase::Trial | Phase::Confirmed | Phase::Good => {}
        other => {
            return Err(usage(format!(
                "slot {booted} is {other}{}; only a slot on trial or a good slot can be confirmed",
                session
                    .state()
                    .group(&booted)
                    .last_error()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            )))
        }
    }
    // Only a confirmation that changes something is reported.
    let was_good = session.state().phase(&booted) == Phase::Good
        && session.bootloader().primary()?.as_deref() == Some(booted.as_str());
    commit(session, &booted)?;
    if !was_good {
        record(
            session,
            EventKind::Committed,
            &booted,
            Some("confirmed by the operator (updater mark-good)"),
        );
    }
    Ok(booted)
}

/// `updater mark-bad [GROUP]`: mark a group bad. Marking the bootloader's
/// default bad first moves the default to another good group, and is
/// refused when there is none (nothing would be left to boot).
pub fn mark_bad(session: &mut Session, group: Option<&str>) -> Result<String> {
    // Run again after a crash: the session finished what the first run
    // started; a slot named now that is another one is marked as well.
    if let Some(done) = session.finished_intent().filter(|i| i.by == "mark-bad") {
        if group.is_none_or(|g| g == done.group) {
            return Ok(done.group.clone());
        }
    }
    let group = group.unwrap_or(session.booted()).to_string();
    if session.settings().group(&group).is_none() {
        return Err(usage(format!("there is no slot group {group:?}")));
    }
    if session.state().phase(&group) == Phase::Empty {
        return Err(usage(format!(
            "slot {group} holds no release: there is nothing to mark bad"
        )));
    }
    let reason = "marked bad by the operator (updater mark-bad)";
    if session.bootloader().primary()?.as_deref() == Some(group.as_str()) {
        mark_default_bad(session, "mark-bad", &group, reason)?;
    } else {
        mark_bad_steps(session, "mark-bad", &group, reason)?;
    }
    Ok(group)
}

/// `updater rollback`: make the other good group the default; the group
/// rolled back from is marked bad, with its release remembered, so that
/// `status` says so and the daemon does not install it again at its next
/// poll. Returns the new default.
pub fn rollback(session: &mut Session) -> Result<String> {
    // Run again after a crash: the session finished the interrupted
    // rollback; rolling back once more would undo it.
    if let Some(done) = session.finished_intent().filter(|i| i.by == "rollback") {
        if let Some(to) = &done.default_to {
            return Ok(to.clone());
        }
    }
    let primary = session
        .bootloader()
        .primary()?
        .unwrap_or_else(|| session.booted().to_string());
    if other_good(
        session.settings(),
        session.state(),
        session.bootloader(),
        &primary,
    )?
    .is_none()
    {
        return Err(BootError(format!(
            "no slot other than {primary} is good: there is nothing to roll back to"
        ))
        .into());
    }
    let reason = "rolled back by the operator (updater rollback)";
    mark_default_bad(session, "rollback", &primary, reason)
}

fn other_good(
    settings: &Settings,
    state: &UpdateState,
    boot: &dyn Bootloader,
    not: &str,
) -> Result<Option<String>> {
    for g in &settings.slots {
        if g.name != not && state.phase(&g.name) == Phase::Good && boot.bootable(&g.name)? {
            return Ok(Some(g.name.clone()));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use std::rc::Rc;

    use super::*;
    use crate::clock::Clock;
    use crate::state::Release;

    /// A bootloader double that records every change: proof that the flows
    /// act through the session's backend, whatever it is.
    #[derive(Default)]
    struct Env {
        order: Vec<String>,
        bootable: BTreeMap<String, bool>,
        armed: Option<String>,
        log: Vec<String>,
    }

    struct Recording(Rc<RefCell<Env>>);

    impl Bootloader for Recording {
        fn name(&self) -> &'static str {
            "recording"
        }
        fn primary(&self) -> Result<Option<String>> {
            Ok(self.0.borrow().order.first().cloned())
        }
        fn set_primary(&mut self, group: &str) -> Result<()> {
            let mut e = self.0.borrow_mut();
            e.log.push(format!("primary {group}"));
            e.order.retain(|g| g != group);
            e.order.insert(0, group.to_string());
            Ok(())
        }
        fn bootable(&self, group: &str) -> Result<bool> {
            Ok(self
                .0
                .borrow()
                .bootable
                .get(group)
                .copied()
                .unwrap_or(false))
        }
        fn set_bootable(&mut self, group: &str, bootable: bool) -> Result<()> {
            let mut e = self.0.borrow_mut();
            e.log.push(format!("bootable {group} {bootable}"));
            e.bootable.insert(group.to_string(), bootable);
            Ok(())
        }
        fn arm_trial(&mut self, group: &str) -> Result<()> {
            let mut e = self.0.borrow_mut();
            e.log.push(format!("arm {group}"));
            e.armed = Some(group.to_string());
            Ok(())
        }
        fn armed_trial(&self) -> Result<Option<String>> {
            Ok(self.0.borrow().armed.clone())
        }
    }

    struct NoRestart;
    impl Rebooter for NoRestart {
        fn restart(&self, _: Restart) -> Result<()> {
            panic!("no restart expected")
        }
    }

    #[test]
    fn health_commit_and_rollback_act_through_the_sessions_backend() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().display();
        std::fs::create_dir_all(d.path().join("health.d")).unwrap();
        std::fs::write(d.path().join("cmdline"), "updater.slot=A\n").unwrap();
        let cfg = d.path().join("config.toml");
        std::fs::write(
            &cfg,
            format!(
                "compatible = \"x\"\nstate_dir = \"{p}/state\"\nkeyring = \"{p}/ring\"\ncmdline_path = \"{p}/cmdline\"\n[bootloader]\nbackend = \"file\"\npath = \"{p}/unused.env\"\n[health]\ndir = \"{p}/health.d\"\n[slots.A.targets]\nrootfs = \"{p}/A\"\n[slots.B.targets]\nrootfs = \"{p}/B\"\n"
            ),
        )
        .unwrap();
        let settings = crate::config::load(Some(&cfg)).unwrap();
        let env = Rc::new(RefCell::new(Env {
            order: vec!["A".into(), "B".into()],
            bootable: [("A".to_string(), true), ("B".to_string(), false)].into(),
            ..Default::default()
        }));
        let clock = Clock::fixed("2026-03-01T12:00:00Z".parse().unwrap());
        let open =
            || Session::open_with(&settings, clock, Box::new(Recording(env.clone()))).unwrap();
        // Slot B installed and on trial (as install and the trial start
        // would leave it).
        let mut s = open();
        let r = Release {
            digest: "b".repeat(64),
            version: "2.0.0".into(),
            security_version: 3,
        };
        s.transition(|st, now| st.begin_install("B", &r, now))
            .unwrap();
        s.transition(|st, now| st.finish_install("B", now)).unwrap();
        s.transition(|st, now| st.start_trial("B", now, now + chrono::Duration::minutes(5)))
            .unwrap();
        drop(s);
        // B boots and is healthy: the commit goes through the double.
        std::fs::write(d.path().join("cmdline"), "updater.slot=B\n").unwrap();
        let out = health(open(), &NoRestart).unwrap();
        assert!(matches!(out, HealthOutcome::Committed { ref group, .. } if group == "B"));
        assert_eq!(env.borrow().log, ["bootable B true", "primary B"]);
        // The operator rolls back: A becomes the default first, then B is
        // made unbootable, and the state says B is bad and why.
        let mut s = open();
        assert_eq!(rollback(&mut s).unwrap(), "A");
        assert_eq!(
            env.borrow().log[2..],
            ["primary A".to_string(), "bootable B false".to_string()]
        );
        assert_eq!(s.state().phase("B"), Phase::Bad);
        assert!(s
            .state()
            .group("B")
            .last_error()
            .unwrap()
            .contains("rolled back"));
        // Nothing is left to roll back to.
        let e = rollback(&mut s).unwrap_err().to_string();
        assert!(e.contains("nothing to roll back to"), "{e}");
        assert_eq!(
            env.borrow().log.len(),
            4,
            "a refused rollback touched the backend"
        );
    }
}
