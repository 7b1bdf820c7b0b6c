//! Trials, commits and rollbacks: the transitions that decide what boots.
//!
//! Each transition is an order of durable steps (every step fsynced before
//! the next), chosen so that a crash between any two leaves the invariants
//! standing: the primary always points at a group that can boot, an
//! unconfirmed trial never becomes primary, and the next `updater health`
//! tells the truth.
//!
//! Start a reboot trial (`apply --reboot`):
//!   T1 state: group `trial`, trial {group, started, deadline}
//!   T2 bootloader: arm the one-shot trial of the group
//!   T3 restart
//! (crash after T1: the next boot is the old primary, which sees an
//! unconfirmed trial and marks the group bad: conservative, never unsafe.)
//!
//! Start a kexec trial: T1, then the jump; the bootloader is not touched, so
//! any reset during the trial comes back to the old primary.
//!
//! Commit (health passed in the trial group):
//!   C0 state: trial marked confirmed
//!   C1 bootloader: group bootable
//!   C2 bootloader: group primary
//!   C3 state: group `good`, trial cleared
//! (crash after C0 or C1: the old primary boots and marks the trial bad;
//! after C2: the new group boots — it is primary only because it was
//! confirmed — and health finishes the commit.)
//!
//! Mark bad (a check failed, or the trial never confirmed):
//!   B1 bootloader: group not bootable (also disarms its one-shot)
//!   B2 state: group `bad` with the reason, trial cleared
//!   B3 restart, when a check failed and `health.reboot_on_failure`

use anyhow::{Context, Result};
use chrono::Utc;

use crate::boot::reboot::{Rebooter, Restart};
use crate::boot::Bootloader;
use crate::config::Settings;
use crate::error::{usage, BootError};
use crate::report::{self, Details, EventKind};
use crate::state::{GroupStatus, State, StateStore, Trial};

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

/// T1: record a trial of `group` durably.
pub fn record_trial(
    store: &StateStore,
    state: &mut State,
    group: &str,
    settings: &Settings,
) -> Result<()> {
    let now = Utc::now();
    let deadline = now
        + chrono::Duration::from_std(settings.trial.deadline)
            .unwrap_or(chrono::Duration::minutes(10));
    state.trial = Some(Trial {
        group: group.to_string(),
        started: now,
        deadline,
        confirmed: false,
    });
    let g = state.group_mut(group);
    g.status = GroupStatus::Trial;
    g.last_error = None;
    g.updated = Some(now);
    store.save(state)?;
    crate::failpoint!("after-record-trial");
    Ok(())
}

/// Report `trial-started` at the point of no return (right before the
/// restart), so that a refused kexec load that falls back or reverts does
/// not report a trial twice or one that never happened. Sent later from
/// whichever slot runs next (the outbox is on the data partition).
pub fn report_trial_started(settings: &Settings, state: &State, group: &str) {
    report::record(
        settings,
        EventKind::TrialStarted,
        Details::of_group(state, group),
    );
}

/// T1–T3: start a reboot trial of an installed group.
pub fn start_reboot_trial(
    settings: &Settings,
    store: &StateStore,
    state: &mut State,
    boot: &mut dyn Bootloader,
    rebooter: &dyn Rebooter,
    group: &str,
) -> Result<()> {
    record_trial(store, state, group, settings)?;
    boot.arm_trial(group)
        .with_context(|| format!("arming the one-shot trial of slot {group}"))?;
    crate::failpoint!("after-arm-trial");
    report_trial_started(settings, state, group);
    tracing::info!("rebooting into a one-shot trial of slot {group}");
    rebooter.restart(Restart::Reboot)
}

/// C1–C3: make `group` the committed primary.
pub fn commit(
    store: &StateStore,
    state: &mut State,
    boot: &mut dyn Bootloader,
    group: &str,
) -> Result<()> {
    if let Some(t) = state.trial.as_mut().filter(|t| t.group == group) {
        t.confirmed = true;
        store.save(state)?;
        crate::failpoint!("commit-after-confirmed");
    }
    boot.set_bootable(group, true)?;
    crate::failpoint!("commit-after-bootable");
    boot.set_primary(group)?;
    crate::failpoint!("commit-after-primary");
    state.trial = None;
    let g = state.group_mut(group);
    g.status = GroupStatus::Good;
    g.last_error = None;
    g.updated = Some(Utc::now());
    // The anti-rollback floor rises only when a release has proven itself:
    // a failed trial must not lock the device out of the release it runs.
    let committed = g.security_version.unwrap_or(0);
    state.highest_security_version = state.highest_security_version.max(committed);
    store.save(state)
}

/// B1–B2: mark `group` bad with `reason`.
pub fn mark_bad_steps(
    store: &StateStore,
    state: &mut State,
    boot: &mut dyn Bootloader,
    group: &str,
    reason: &str,
) -> Result<()> {
    boot.set_bootable(group, false)?;
    crate::failpoint!("bad-after-unbootable");
    if state.trial.as_ref().is_some_and(|t| t.group == group) {
        state.trial = None;
    }
    state.remember_bad(group, reason);
    let g = state.group_mut(group);
    g.status = GroupStatus::Bad;
    g.last_error = Some(reason.to_string());
    g.updated = Some(Utc::now());
    store.save(state)
}

/// Differences between what the state says and what the bootloader will do.
/// The bootloader env decides what boots; these are reported, not "fixed".
pub fn discrepancies(state: &State, boot: &dyn Bootloader, settings: &Settings) -> Vec<String> {
    let mut out = Vec::new();
    let primary = boot.primary().ok().flatten();
    for g in &settings.slots {
        let st = state.group(&g.name).status;
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

/// `updater health`: reconcile a pending trial at boot.
pub fn health(settings: &Settings, rebooter: &dyn Rebooter) -> Result<HealthOutcome> {
    let store = StateStore::open(&settings.state_dir)?;
    let booted = crate::slots::booted_group(settings)?;
    let mut state = crate::install::load_state(&store, settings, &booted)?;
    let mut boot = crate::boot::open(settings)?;
    let Some(trial) = state.trial.clone() else {
        let d = discrepancies(&state, boot.as_ref(), settings);
        for line in &d {
            tracing::warn!("{line}");
        }
        return Ok(HealthOutcome::NothingPending { discrepancies: d });
    };
    if trial.group != booted {
        let reason = format!(
            "trial did not confirm: slot {} was tried at {} but slot {booted} booted instead (hang, watchdog reset, power cut or crash before the health checks)",
            trial.group,
            trial.started.to_rfc3339()
        );
        mark_bad_steps(&store, &mut state, boot.as_mut(), &trial.group, &reason)?;
        tracing::error!("{reason}");
        report::record(
            settings,
            EventKind::RolledBack,
            Details::of_group(&state, &trial.group).because(&reason),
        );
        return Ok(HealthOutcome::TrialLost {
            group: trial.group,
            booted,
            reason,
        });
    }
    let result = if trial.confirmed {
        // The checks already passed; a crash interrupted the commit.
        Ok(vec![])
    } else if Utc::now() > trial.deadline {
        Err(format!(
            "the trial deadline {} passed before the health checks ran",
            trial.deadline.to_rfc3339()
        ))
    } else {
        crate::health::run_checks(&settings.health).map_err(|f| f.to_string())
    };
    match result {
        Ok(checks) => {
            commit(&store, &mut state, boot.as_mut(), &booted)?;
            tracing::info!("slot {booted} is healthy and committed as the default");
            // Reported only here: after the checks passed in the new slot
            // and the commit is durable.
            report::record(
                settings,
                EventKind::Committed,
                Details::of_group(&state, &booted),
            );
            Ok(HealthOutcome::Committed {
                group: booted,
                checks,
            })
        }
        Err(reason) => {
            mark_bad_steps(&store, &mut state, boot.as_mut(), &booted, &reason)?;
            tracing::error!("slot {booted}: {reason}");
            report::record(
                settings,
                EventKind::RolledBack,
                Details::of_group(&state, &booted).because(&reason),
            );
            let rebooting = settings.health.reboot_on_failure;
            // Release the state lock before restarting.
            drop(store);
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
/// it without running the checks).
pub fn mark_good(settings: &Settings) -> Result<String> {
    let store = StateStore::open(&settings.state_dir)?;
    let booted = crate::slots::booted_group(settings)?;
    let mut state = crate::install::load_state(&store, settings, &booted)?;
    if let Some(t) = &state.trial {
        if t.group != booted {
            return Err(usage(format!(
                "a trial of slot {} is pending but slot {booted} is booted; run `updater health` to reconcile first",
                t.group
            )));
        }
    }
    let mut boot = crate::boot::open(settings)?;
    // Only a confirmation that changes something is reported.
    let was_good = state.trial.is_none() && state.group(&booted).status == GroupStatus::Good;
    commit(&store, &mut state, boot.as_mut(), &booted)?;
    if !was_good {
        report::record(
            settings,
            EventKind::Committed,
            Details::of_group(&state, &booted)
                .because("confirmed by the operator (updater mark-good)"),
        );
    }
    Ok(booted)
}

/// `updater mark-bad [GROUP]`: mark a group bad. Marking the booted group
/// bad first moves the primary to another good group, and is refused when
/// there is none (nothing would be left to boot).
pub fn mark_bad(settings: &Settings, group: Option<&str>) -> Result<String> {
    let store = StateStore::open(&settings.state_dir)?;
    let booted = crate::slots::booted_group(settings)?;
    let mut state = crate::install::load_state(&store, settings, &booted)?;
    let group = group.unwrap_or(&booted).to_string();
    if settings.group(&group).is_none() {
        return Err(usage(format!("there is no slot group {group:?}")));
    }
    let mut boot = crate::boot::open(settings)?;
    if boot.primary()?.as_deref() == Some(group.as_str()) {
        let other = other_good(settings, &state, boot.as_ref(), &group)?.ok_or_else(|| {
            BootError(format!(
                "refusing to mark slot {group} bad: it is the default and no other slot is good to boot instead"
            ))
        })?;
        boot.set_primary(&other)?;
    }
    let reason = "marked bad by the operator (updater mark-bad)";
    mark_bad_steps(&store, &mut state, boot.as_mut(), &group, reason)?;
    report::record(
        settings,
        EventKind::RolledBack,
        Details::of_group(&state, &group).because(reason),
    );
    Ok(group)
}

/// `updater rollback`: make the other good group the primary.
pub fn rollback(settings: &Settings) -> Result<String> {
    let store = StateStore::open(&settings.state_dir)?;
    let booted = crate::slots::booted_group(settings)?;
    let mut state = crate::install::load_state(&store, settings, &booted)?;
    let mut boot = crate::boot::open(settings)?;
    let primary = boot.primary()?.unwrap_or_else(|| booted.clone());
    let other = other_good(settings, &state, boot.as_ref(), &primary)?.ok_or_else(|| {
        BootError(format!(
            "no slot other than {primary} is good: there is nothing to roll back to"
        ))
    })?;
    // The release rolled back from is not wanted here: without this the
    // daemon would install it again at its next poll. Recorded before the
    // bootloader changes, so a crash in between cannot leave the rollback
    // without it.
    let reason = format!("rolled back to slot {other} by the operator (updater rollback)");
    state.remember_bad(&primary, &reason);
    store.save(&state)?;
    boot.set_primary(&other)?;
    report::record(
        settings,
        EventKind::RolledBack,
        Details::of_group(&state, &primary).because(reason),
    );
    Ok(other)
}

fn other_good(
    settings: &Settings,
    state: &State,
    boot: &dyn Bootloader,
    not: &str,
) -> Result<Option<String>> {
    for g in &settings.slots {
        if g.name != not
            && state.group(&g.name).status == GroupStatus::Good
            && boot.bootable(&g.name)?
        {
            return Ok(Some(g.name.clone()));
        }
    }
    Ok(None)
}
