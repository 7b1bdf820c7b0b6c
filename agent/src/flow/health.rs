//! `health`: reconcile a pending trial at boot. What to do is decided by a
//! pure function of the facts ([`verdict`], then [`after_checks`]), tried
//! case by case in the tests; this module carries it out.

use anyhow::Result;

use super::steps::{
    booted_by_kexec, commit, defer_to_cold_boot, discrepancies, mark_bad_steps, record,
};
use crate::report::EventKind;
use crate::session::Session;
use crate::state::trialclock::TrialClock;
use crate::state::Trial;
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

/// What a boot knows when `updater health` runs.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    /// The pending trial.
    pub trial: Option<&'a Trial>,
    /// The booted group.
    pub booted: &'a str,
    /// The trial is a cold-boot trial (its checks passed after a kexec).
    pub cold_boot: bool,
    /// This boot was started by the agent's kexec (`updater.kexec=1`).
    pub booted_by_kexec: bool,
    /// Why the trial's deadline has passed, when it has.
    pub overdue: Option<String>,
    /// `trial.guard_cold_boot`.
    pub guard_cold_boot: bool,
}

/// What `updater health` does, from the facts alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No trial: report any state/env disagreement, nothing else.
    NothingPending,
    /// Another group booted than the one on trial: mark it bad, why.
    Lost {
        /// The reason recorded.
        reason: String,
    },
    /// The kexec boot that already deferred: its cold boot decides.
    AwaitColdBoot,
    /// The checks passed before a crash interrupted the commit: finish it.
    FinishCommit,
    /// The deadline passed before the checks ran: mark it bad, why.
    Overdue {
        /// The reason recorded.
        reason: String,
    },
    /// Run the checks; then [`after_checks`].
    RunChecks,
}

/// What to do with the trial of this boot, given the facts.
pub fn verdict(f: &Facts) -> Verdict {
    let Some(trial) = f.trial else {
        return Verdict::NothingPending;
    };
    if trial.group != f.booted {
        let reason = if f.cold_boot {
            format!(
                "committed by kexec, failed its first cold boot: slot {} passed its checks after a kexec, but its first boot through firmware and bootloader (armed at {}) did not confirm and slot {} booted instead (the bootloader could not load it, or it hung, reset or lost power before its health checks)",
                trial.group,
                trial.started.to_rfc3339(),
                f.booted
            )
        } else {
            format!(
                "trial did not confirm: slot {} was tried at {} but slot {} booted instead (hang, watchdog reset, power cut or crash before the health checks)",
                trial.group,
                trial.started.to_rfc3339(),
                f.booted
            )
        };
        return Verdict::Lost { reason };
    }
    // Still the kexec boot that deferred (only the agent's kexec puts the
    // mark on a command line; the bootloader's never has it): the proof is
    // the next boot through the bootloader, nothing to decide in this one.
    if f.cold_boot && f.booted_by_kexec {
        return Verdict::AwaitColdBoot;
    }
    if trial.confirmed {
        return Verdict::FinishCommit;
    }
    match &f.overdue {
        Some(why) => Verdict::Overdue {
            reason: why.clone(),
        },
        None => Verdict::RunChecks,
    }
}

/// What the checks' result leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterChecks {
    /// Commit: the group becomes the default.
    Commit,
    /// Guard the first cold boot: passed in a kexec boot.
    DeferToColdBoot,
    /// Mark it bad, why (the failed check and its output).
    MarkBad(String),
}

/// After [`Verdict::RunChecks`]: the checks' result, and whether this is a
/// kexec boot that guards its first cold boot.
pub fn after_checks(result: &Result<Vec<String>, String>, f: &Facts) -> AfterChecks {
    match result {
        Err(reason) => AfterChecks::MarkBad(reason.clone()),
        Ok(_) if f.guard_cold_boot && f.booted_by_kexec => AfterChecks::DeferToColdBoot,
        Ok(_) => AfterChecks::Commit,
    }
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
        let groups = session.slots().groups();
        let d = discrepancies(session.state(), session.bootloader(), &groups);
        for line in &d {
            tracing::warn!("{line}");
        }
        return Ok(HealthOutcome::NothingPending { discrepancies: d });
    };
    let clock = TrialClock::load(&session.settings().state_dir, &trial.group, trial.started);
    let overdue = overdue(&session, &trial, clock.as_ref());
    let facts = Facts {
        trial: Some(&trial),
        booted: &booted,
        cold_boot: clock.as_ref().is_some_and(|c| c.cold_boot),
        booted_by_kexec: booted_by_kexec(session.settings()),
        overdue,
        guard_cold_boot: session.settings().trial.guard_cold_boot,
    };
    let result = match verdict(&facts) {
        Verdict::NothingPending => unreachable!("a trial is pending"),
        Verdict::Lost { reason } => {
            mark_bad_steps(&mut session, "health", &trial.group, &reason)?;
            // Said once, by the front end (the CLI's line goes to the
            // journal under systemd).
            return Ok(HealthOutcome::TrialLost {
                group: trial.group,
                booted,
                reason,
            });
        }
        Verdict::AwaitColdBoot => {
            return Ok(HealthOutcome::ColdBootPending {
                group: booted,
                checks: vec![],
            })
        }
        Verdict::FinishCommit => Ok(vec![]),
        Verdict::Overdue { reason } => Err(reason),
        Verdict::RunChecks => crate::health::run_checks(
            &session.settings().health,
            session.settings().security.allow_insecure_permissions,
        )
        .map_err(|f| f.to_string()),
    };
    carry_out(
        session,
        after_checks(&result, &facts),
        booted,
        result,
        rebooter,
    )
}

/// Carry out what the checks' result leads to.
fn carry_out(
    mut session: Session,
    next: AfterChecks,
    booted: String,
    result: Result<Vec<String>, String>,
    rebooter: &dyn Rebooter,
) -> Result<HealthOutcome> {
    match next {
        AfterChecks::DeferToColdBoot => {
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
                checks: result.unwrap_or_default(),
            })
        }
        AfterChecks::Commit => {
            commit(&mut session, &booted)?;
            tracing::info!("slot {booted} is healthy and committed as the default");
            // Reported only here: after the checks passed in the new slot
            // and the commit is durable.
            record(&session, EventKind::Committed, &booted, None);
            Ok(HealthOutcome::Committed {
                group: booted,
                checks: result.unwrap_or_default(),
            })
        }
        AfterChecks::MarkBad(reason) => {
            mark_bad_steps(&mut session, "health", &booted, &reason)?;
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

/// Why the trial's deadline has passed, when it has: on the boot's own
/// clock when this agent recorded the trial (immune to a clock that jumps
/// after boot), else on the wall clock, as an older agent recorded it.
fn overdue(session: &Session, trial: &Trial, clock: Option<&TrialClock>) -> Option<String> {
    match clock {
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> chrono::DateTime<chrono::Utc> {
        s.parse().unwrap()
    }

    fn trial(group: &str, confirmed: bool) -> Trial {
        Trial {
            group: group.into(),
            started: t("2026-03-01T12:00:00Z"),
            deadline: t("2026-03-01T12:10:00Z"),
            confirmed,
        }
    }

    /// Every case of the verdict, as a row: the trial (group, confirmed),
    /// the booted group, a cold-boot trial, a kexec boot, overdue, the
    /// guard, and what it leads to (checks passing) and (checks failing).
    #[test]
    fn the_health_verdict_table() {
        use AfterChecks as A;
        type Row = (
            Option<(&'static str, bool)>,
            &'static str,
            bool,
            bool,
            bool,
            bool,
            &'static str,
            Option<(A, A)>,
        );
        let fail = || A::MarkBad("check 20-app failed".into());
        let rows: Vec<Row> = vec![
            // No trial: nothing, whatever else.
            (None, "A", false, false, false, true, "nothing", None),
            (None, "B", true, true, true, true, "nothing", None),
            // The trial's group did not boot: lost, cold boot or not.
            (
                Some(("B", false)),
                "A",
                false,
                false,
                false,
                true,
                "lost",
                None,
            ),
            (
                Some(("B", false)),
                "A",
                true,
                false,
                false,
                true,
                "lost-cold",
                None,
            ),
            (
                Some(("B", true)),
                "A",
                false,
                false,
                false,
                true,
                "lost",
                None,
            ),
            // The kexec boot that deferred: its cold boot decides.
            (
                Some(("B", false)),
                "B",
                true,
                true,
                false,
                true,
                "await",
                None,
            ),
            // The cold boot itself: checks, then commit.
            (
                Some(("B", false)),
                "B",
                true,
                false,
                false,
                true,
                "checks",
                Some((A::Commit, fail())),
            ),
            // A confirmed trial: finish the commit, no checks.
            (
                Some(("B", true)),
                "B",
                false,
                false,
                true,
                true,
                "finish",
                None,
            ),
            // Overdue: bad without checks.
            (
                Some(("B", false)),
                "B",
                false,
                false,
                true,
                true,
                "overdue",
                None,
            ),
            // A reboot trial: checks, then commit.
            (
                Some(("B", false)),
                "B",
                false,
                false,
                false,
                true,
                "checks",
                Some((A::Commit, fail())),
            ),
            // A kexec trial: checks, then guard the cold boot.
            (
                Some(("B", false)),
                "B",
                false,
                true,
                false,
                true,
                "checks",
                Some((A::DeferToColdBoot, fail())),
            ),
            // The guard switched off: commit in the kexec boot.
            (
                Some(("B", false)),
                "B",
                false,
                true,
                false,
                false,
                "checks",
                Some((A::Commit, fail())),
            ),
        ];
        for (i, (tr, booted, cold, kexec, overdue, guard, want, after)) in
            rows.into_iter().enumerate()
        {
            let tr = tr.map(|(g, c)| trial(g, c));
            let f = Facts {
                trial: tr.as_ref(),
                booted,
                cold_boot: cold,
                booted_by_kexec: kexec,
                overdue: overdue.then(|| "the deadline passed".to_string()),
                guard_cold_boot: guard,
            };
            let v = verdict(&f);
            let got = match &v {
                Verdict::NothingPending => "nothing",
                Verdict::Lost { reason } if reason.starts_with("committed by kexec") => "lost-cold",
                Verdict::Lost { reason } => {
                    assert!(
                        reason.starts_with("trial did not confirm"),
                        "row {i}: {reason}"
                    );
                    "lost"
                }
                Verdict::AwaitColdBoot => "await",
                Verdict::FinishCommit => "finish",
                Verdict::Overdue { reason } => {
                    assert_eq!(reason, "the deadline passed");
                    "overdue"
                }
                Verdict::RunChecks => "checks",
            };
            assert_eq!(got, want, "row {i}");
            if let Some((pass, fail)) = after {
                assert_eq!(after_checks(&Ok(vec!["10-ok".into()]), &f), pass, "row {i}");
                assert_eq!(
                    after_checks(&Err("check 20-app failed".into()), &f),
                    fail,
                    "row {i}"
                );
            }
        }
    }
}
