//! The transition table of docs/boot-control.md, tried cell by cell: every
//! transition from every phase does what the table says, and a refusal
//! changes nothing. The test reads the table from the document itself, so
//! the two cannot drift apart.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};

use super::*;

const DOC: &str = include_str!("../../../docs/boot-control.md");
const MARKER: &str = "<!-- transition-table -->";
const REFUSED: &str = "✗";

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn release() -> Release {
    Release {
        digest: "b".repeat(64),
        version: "2.0.0".into(),
        security_version: 7,
    }
}

/// A state with slot A booted and good, and slot B in `phase`, reached
/// through the transitions themselves.
fn with_b_in(phase: Phase) -> UpdateState {
    let mut s = UpdateState::fresh(&["A".into(), "B".into()], "A");
    let now = t0();
    let deadline = now + Duration::minutes(10);
    let steps: &[Transition] = match phase {
        Phase::Empty => &[],
        Phase::Installing => &[Transition::BeginInstall],
        Phase::Installed => &[Transition::BeginInstall, Transition::FinishInstall],
        Phase::Trial => &[
            Transition::BeginInstall,
            Transition::FinishInstall,
            Transition::StartTrial,
        ],
        Phase::Confirmed => &[
            Transition::BeginInstall,
            Transition::FinishInstall,
            Transition::StartTrial,
            Transition::Confirm,
        ],
        Phase::Good => &[
            Transition::BeginInstall,
            Transition::FinishInstall,
            Transition::StartTrial,
            Transition::Confirm,
            Transition::Commit,
        ],
        Phase::Bad => &[
            Transition::BeginInstall,
            Transition::FinishInstall,
            Transition::MarkBad,
        ],
    };
    for t in steps {
        apply(&mut s, *t, now, deadline).unwrap();
    }
    assert_eq!(s.phase("B"), phase, "setting up {phase}");
    s
}

fn apply(
    s: &mut UpdateState,
    t: Transition,
    now: DateTime<Utc>,
    deadline: DateTime<Utc>,
) -> Result<(), TransitionError> {
    match t {
        Transition::BeginInstall => s.begin_install("B", &release(), now).map(|_| ()),
        Transition::Checkpoint => s.checkpoint("B", "rootfs", 3),
        Transition::InstallFailed => s.install_failed("B", "connection lost", now),
        Transition::FinishInstall => s.finish_install("B", now),
        Transition::StartTrial => s.start_trial("B", now, deadline),
        Transition::RevertTrial => s.revert_trial("B", now),
        Transition::DeferToColdBoot => s.defer_to_cold_boot("B", now, deadline),
        Transition::Confirm => s.confirm("B"),
        Transition::Commit => s.commit("B", now),
        Transition::Condemn => s.condemn("B", "rolled back", now),
        Transition::MarkBad => s.mark_bad("B", "health check failed", now),
    }
}

/// The table in the document: (phase, transition) -> next phase or refused.
fn documented() -> BTreeMap<(Phase, Transition), Option<Phase>> {
    let start = DOC
        .find(MARKER)
        .expect("docs/boot-control.md has the transition table marker");
    let mut rows = DOC[start + MARKER.len()..]
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'));
    let cells = |l: &str| -> Vec<String> {
        l.trim()
            .trim_matches('|')
            .split('|')
            .map(|c| c.trim().trim_matches('`').to_string())
            .collect()
    };
    let header = cells(rows.next().expect("a header row"));
    let columns: Vec<Transition> = header[1..]
        .iter()
        .map(|name| {
            *Transition::ALL
                .iter()
                .find(|t| t.name() == name)
                .unwrap_or_else(|| panic!("the table names an unknown transition {name:?}"))
        })
        .collect();
    let phase = |name: &str| {
        *Phase::ALL
            .iter()
            .find(|p| p.name() == name)
            .unwrap_or_else(|| panic!("the table names an unknown phase {name:?}"))
    };
    let mut out = BTreeMap::new();
    for row in rows.skip(1) {
        let c = cells(row);
        let from = phase(&c[0]);
        assert_eq!(c.len(), columns.len() + 1, "row {row:?}");
        for (t, cell) in columns.iter().zip(&c[1..]) {
            let next = if cell == REFUSED {
                None
            } else {
                Some(phase(cell))
            };
            assert!(
                out.insert((from, *t), next).is_none(),
                "the cell ({from}, {t}) appears twice"
            );
        }
    }
    out
}

#[test]
fn every_transition_from_every_phase_matches_the_documented_table() {
    let table = documented();
    let now = t0() + Duration::minutes(1);
    let deadline = now + Duration::minutes(10);
    let mut tried = 0;
    for from in Phase::ALL {
        for t in Transition::ALL {
            let want = *table
                .get(&(from, t))
                .unwrap_or_else(|| panic!("docs/boot-control.md has no cell for ({from}, {t})"));
            let mut s = with_b_in(from);
            let before = s.clone();
            let got = apply(&mut s, t, now, deadline);
            match want {
                Some(next) => {
                    assert!(got.is_ok(), "({from}, {t}) should give {next}: {got:?}");
                    assert_eq!(s.phase("B"), next, "({from}, {t})");
                    // Slot A, the booted one, is never touched.
                    assert_eq!(s.group("A"), before.group("A"), "({from}, {t})");
                }
                None => {
                    let e = got.expect_err(&format!("({from}, {t}) should be refused"));
                    assert!(
                        e.to_string().contains("slot B") || e.to_string().contains("trial"),
                        "({from}, {t}): {e}"
                    );
                    assert_eq!(s, before, "a refused ({from}, {t}) changed the state");
                }
            }
            tried += 1;
        }
    }
    assert_eq!(tried, Phase::ALL.len() * Transition::ALL.len());
    assert_eq!(table.len(), tried, "the table has cells for unknown pairs");
}

#[test]
fn a_pending_trial_blocks_installs_and_other_trials() {
    let now = t0();
    // Three groups, C booted; A and B both installed; B goes on trial.
    let mut s = UpdateState::fresh(&["A".into(), "B".into(), "C".into()], "C");
    for g in ["A", "B"] {
        s.begin_install(g, &release(), now).unwrap();
        s.finish_install(g, now).unwrap();
    }
    s.start_trial("B", now, now).unwrap();
    let before = s.clone();
    let e = s.start_trial("A", now, now).unwrap_err();
    assert!(
        matches!(e, TransitionError::TrialPending { ref trial, .. } if trial == "B"),
        "{e}"
    );
    let e = s.begin_install("A", &release(), now).unwrap_err();
    assert!(
        matches!(e, TransitionError::TrialPending { ref trial, .. } if trial == "B"),
        "{e}"
    );
    assert!(e.to_string().contains("updater health"), "{e}");
    assert_eq!(s, before);
}

#[test]
fn transitions_keep_the_records_consistent() {
    let now = t0();
    // Resume: the same release into the same group keeps its checkpoint.
    let mut s = with_b_in(Phase::Installing);
    s.checkpoint("B", "rootfs", 5).unwrap();
    let resume = s.begin_install("B", &release(), now).unwrap();
    assert_eq!(resume.get("rootfs"), Some(&5));
    let other = Release {
        digest: "c".repeat(64),
        ..release()
    };
    assert!(s.begin_install("B", &other, now).unwrap().is_empty());
    // A commit raises the anti-rollback floor; a failed trial does not.
    let mut good = with_b_in(Phase::Good);
    assert_eq!(good.highest_security_version(), 7);
    assert!(good.trial().is_none());
    let bad = with_b_in(Phase::Bad);
    assert_eq!(bad.highest_security_version(), 0);
    // Marking bad ends a trial and remembers the release, with the reason,
    // and status says so.
    let mut s = with_b_in(Phase::Trial);
    s.mark_bad("B", "trial did not confirm", now).unwrap();
    assert!(s.trial().is_none());
    assert_eq!(s.group("B").last_error(), Some("trial did not confirm"));
    assert!(s.bad_release(&"b".repeat(64), "9.9.9").is_some());
    // Condemning a good group remembers its release before it is marked
    // bad; marking it bad then keeps a single entry.
    good.condemn("B", "rolled back", now).unwrap();
    assert_eq!(good.phase("B"), Phase::Good);
    assert_eq!(good.bad_releases().len(), 1);
    good.mark_bad("B", "rolled back", now).unwrap();
    assert_eq!(good.bad_releases().len(), 1);
    assert_eq!(good.phase("B"), Phase::Bad);
    // Marking an installing group bad ends the install.
    let mut s = with_b_in(Phase::Installing);
    s.mark_bad("B", "operator", now).unwrap();
    assert!(s.install().is_none());
    // The channel replay floor only rises.
    assert!(s.follow_channel("stable", now));
    assert!(!s.follow_channel("stable", now - Duration::hours(1)));
    assert_eq!(s.channels_issued()["stable"], now);
}
