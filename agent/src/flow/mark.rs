//! `mark-good`, `mark-bad` and `rollback`: the operator's say over what
//! boots. The durable steps are `steps`' (and `Session::mark_bad`'s).

use anyhow::Result;

use super::steps::{commit, mark_bad_steps, mark_default_bad, other_good, record};
use crate::error::{usage, BootError};
use crate::report::EventKind;
use crate::session::Session;
use crate::state::Phase;

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
    if !session.slots().groups().contains(&group) {
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
    let groups = session.slots().groups();
    if other_good(&groups, session.state(), session.bootloader(), &primary)?.is_none() {
        return Err(BootError(format!(
            "no slot other than {primary} is good: there is nothing to roll back to"
        ))
        .into());
    }
    let reason = "rolled back by the operator (updater rollback)";
    mark_default_bad(session, "rollback", &primary, reason)
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use std::rc::Rc;

    use super::*;
    use crate::bootloader::Bootloader;
    use crate::clock::Clock;
    use crate::flow::health::{health, HealthOutcome};
    use crate::state::Release;
    use crate::trial::reboot::{Rebooter, Restart};

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
