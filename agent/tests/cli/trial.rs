//! Trials, health, commit and rollback on a simulated device whose boot env
//! is a real GRUB environment block (made and read by grub-editenv), with a
//! test double of the bootloader that follows packaging/grub/grub.cfg's rules
//! and a reboot command that only records the request.

use std::process::Command;

use crate::device::{grub_editenv, Boot, Builder, Device};
use serde_json::Value;

/// A device with a GRUB env, a recorded reboot command and a passing
/// health check.
fn trial_device() -> Device {
    trial().build()
}

/// [`trial_device`]'s builder, for more options.
fn trial() -> Builder {
    Builder::new().boot(Boot::Grub).trials()
}

#[test]
fn reboot_trial_commits_when_healthy() {
    let t = trial_device();
    t.apply_reboot().assert_ok();
    assert_eq!(t.reboots(), vec!["reboot"]);
    let env = t.boot_env();
    assert_eq!(
        env["ORDER"], "A B",
        "the primary must not change before commit"
    );
    assert_eq!(env["B_TRY"], "1");
    assert_eq!(env["B_OK"], "0");
    let st = t.status();
    assert_eq!(st["groups"]["B"]["status"], "trial");
    assert_eq!(st["trial"]["group"], "B");
    assert_eq!(
        st["highest_security_version"], 0,
        "the floor rises only at commit"
    );
    t.check_boot_invariants();

    assert_eq!(t.reset(), "B");
    assert_eq!(
        t.boot_env()["B_TRY"],
        "0",
        "the one-shot is consumed before booting"
    );
    let r = t.run(&["health"]);
    r.assert_ok();
    assert!(r.stdout.contains("committed"), "{}", r.stdout);
    let env = t.boot_env();
    assert_eq!(env["ORDER"], "B A");
    assert_eq!((env["A_OK"].as_str(), env["B_OK"].as_str()), ("1", "1"));
    let st = t.status();
    assert_eq!(st["groups"]["B"]["status"], "good");
    assert_eq!(
        st["groups"]["A"]["status"], "good",
        "A stays good as the fallback"
    );
    assert!(st["trial"].is_null());
    assert_eq!(st["highest_security_version"], 5);
    t.check_boot_invariants();
    // Next reset boots B by default; health has nothing to do.
    assert_eq!(t.reset(), "B");
    assert!(t.run(&["health"]).stdout.contains("no trial pending"));
}

#[test]
fn failed_check_marks_bad_and_reboots_back() {
    let t = trial_device();
    t.check(
        "20-app",
        "echo 'app did not start: port 443 closed'; exit 1",
    );
    t.apply_reboot().assert_ok();
    assert_eq!(t.reset(), "B");
    let r = t.run(&["health", "--json"]);
    // Exit 7: this boot's slot failed its trial; the JSON says how.
    assert_eq!(r.code, 7, "{} {}", r.stdout, r.stderr);
    assert!(r.stderr.contains("slot B failed its trial"), "{}", r.stderr);
    let v: Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(v["outcome"], "failed");
    assert_eq!(t.reboots(), vec!["reboot", "reboot"]);
    let st = t.status();
    assert_eq!(st["groups"]["B"]["status"], "bad");
    let why = st["groups"]["B"]["last_error"].as_str().unwrap();
    assert!(
        why.contains("20-app") && why.contains("port 443 closed"),
        "{why}"
    );
    t.check_boot_invariants();
    assert_eq!(t.reset(), "A", "the fallback boots");
    assert!(t.run(&["health"]).stdout.contains("no trial pending"));
    let st = t.status();
    assert_eq!(st["booted"], "A");
    assert_eq!(st["groups"]["B"]["status"], "bad");
}

#[test]
fn a_trial_that_never_confirms_is_marked_bad() {
    let t = trial_device();
    t.apply_reboot().assert_ok();
    assert_eq!(t.reset(), "B");
    // B hangs: no health run. The watchdog resets the machine.
    assert_eq!(t.reset(), "A");
    let r = t.run(&["health"]);
    r.assert_ok();
    let st = t.status();
    assert_eq!(st["groups"]["B"]["status"], "bad");
    assert!(st["groups"]["B"]["last_error"]
        .as_str()
        .unwrap()
        .contains("trial did not confirm"));
    t.check_boot_invariants();
}

#[test]
fn apply_is_refused_while_a_trial_is_pending() {
    let t = trial_device();
    t.apply_reboot().assert_ok();
    let url = t.server.url("manifest.json");
    t.run(&["apply", &url])
        .assert_fails(9, "a trial of slot B is pending");
    // The restart it asked for never came (this boot goes on): asking again
    // finishes the start of the trial it recorded, and nothing else.
    let again = t.apply_reboot();
    again.assert_ok();
    assert!(
        again.stdout.contains("finished starting the trial"),
        "{}",
        again.stdout
    );
    assert_eq!(t.reboots(), vec!["reboot", "reboot"]);
    assert_eq!(t.reset(), "B");
    // In the trial boot, nothing is started again.
    t.apply_reboot()
        .assert_fails(9, "a trial of slot B is pending");
}

#[test]
fn mark_good_mark_bad_and_rollback() {
    let t = trial_device();
    t.apply_reboot().assert_ok();
    assert_eq!(t.reset(), "B");
    t.run(&["mark-good"]).assert_ok();
    assert_eq!(t.boot_env()["ORDER"], "B A");
    t.check_boot_invariants();
    let b_digest = t.status()["groups"]["B"]["digest"].clone();
    // Roll back to A: A is the default again; B, rolled back from, is bad
    // with the reason (status tells the truth), unbootable, and its
    // release is remembered so the daemon does not install it again.
    t.run(&["rollback"]).assert_ok();
    let env = t.boot_env();
    assert_eq!((env["ORDER"].as_str(), env["B_OK"].as_str()), ("A B", "0"));
    let st = t.status();
    assert_eq!(st["groups"]["B"]["status"], "bad", "{st}");
    assert!(
        st["groups"]["B"]["last_error"]
            .as_str()
            .unwrap()
            .contains("rolled back by the operator"),
        "{st}"
    );
    assert_eq!(st["bad_releases"][0]["digest"], b_digest, "{st}");
    assert_eq!(st["groups"]["A"]["status"], "good");
    t.check_boot_invariants();
    // Still running B: installing into A, the default, is refused.
    t.apply_reboot().assert_fails(
        2,
        "slot A is the bootloader's default but slot B is running",
    );
    assert_eq!(t.boot_env()["A_OK"], "1");
    // B is bad and A the only good slot: A cannot be marked bad, there is
    // nothing to roll back to, and the bad B cannot be confirmed.
    t.run(&["mark-bad", "A"])
        .assert_fails(6, "no other slot is good");
    t.run(&["rollback"])
        .assert_fails(6, "nothing to roll back to");
    t.run(&["mark-good"]).assert_fails(2, "slot B is bad");
    t.check_boot_invariants();
    // The next boot is A, and nothing is pending there.
    assert_eq!(t.reset(), "A");
    assert!(t.run(&["health"]).stdout.contains("no trial pending"));
    t.check_boot_invariants();
    // An empty slot has nothing to mark bad.
    let fresh = trial_device();
    fresh
        .run(&["mark-bad", "B"])
        .assert_fails(2, "holds no release");
}

#[test]
fn marking_the_default_bad_moves_the_default_first() {
    let t = trial_device();
    t.apply_reboot().assert_ok();
    assert_eq!(t.reset(), "B");
    t.run(&["health"]).assert_ok();
    assert_eq!(t.boot_env()["ORDER"], "B A");
    // B is the default and runs; marking it bad makes A the default first.
    t.run(&["mark-bad", "B"]).assert_ok();
    let env = t.boot_env();
    assert_eq!((env["ORDER"].as_str(), env["B_OK"].as_str()), ("A B", "0"));
    assert_eq!(t.status()["groups"]["B"]["status"], "bad");
    t.check_boot_invariants();
    assert_eq!(t.reset(), "A");
    t.run(&["health"]).assert_ok();
    t.check_boot_invariants();
}

#[test]
fn bad_boot_envs_are_clear_errors() {
    let t = trial_device();
    let grubenv = t.env.p("dev/grubenv");
    let url = t.server.url("manifest.json");
    grub_editenv(&grubenv, &["set", "ORDER=A C"]);
    t.run(&["apply", &url]).assert_fails(6, "names slot \"C\"");
    grub_editenv(&grubenv, &["set", "ORDER=A B"]);
    grub_editenv(&grubenv, &["unset", "B_OK"]);
    t.run(&["apply", &url])
        .assert_fails(6, "has no B_OK variable");
    std::fs::write(&grubenv, b"garbage").unwrap();
    t.run(&["apply", &url]).assert_fails(6, "GRUB env");
    std::fs::write(
        &grubenv,
        b"# GRUB Environment Block\nORDER=A B\nA_OK=1\nB_OK=0\nxx",
    )
    .unwrap();
    t.run(&["apply", &url]).assert_fails(6, "not padded");
    // Nothing was written to slot B in any of these.
    assert!(!t.env.p("dev/slots/B.rootfs").exists());
}

#[test]
fn state_disagreeing_with_the_env_is_reported() {
    let t = trial_device();
    t.run(&["health"]).assert_ok();
    // Someone hand-edits the env: B becomes the default though B is empty.
    grub_editenv(&t.env.p("dev/grubenv"), &["set", "ORDER=B A", "B_OK=1"]);
    let r = t.run(&["health"]);
    r.assert_ok();
    assert!(
        r.stdout
            .contains("slot B is the grub env's primary but is empty in the state"),
        "{}",
        r.stdout
    );
}

/// Stop the agent between every pair of durable steps of every transition,
/// then reset and reconcile as a device would: the invariants hold after
/// every step, and the device converges on the committed update.
#[test]
fn crash_between_every_durable_step() {
    let points = [
        "after-mark-unbootable",
        "after-state-installing",
        "before-first-write",
        "chunk-written@3",
        "before-state-installed",
        "after-state-installed",
        "after-record-trial",
        "after-arm-trial",
        "commit-after-confirmed",
        "commit-after-bootable",
        "commit-after-primary",
        "state-save@2",
        "state-save@4",
    ];
    for fp in points {
        let t = trial_device();
        let url = t.server.url("manifest.json");
        let mut crashed = false;
        // Install + trial, with the failpoint armed.
        let code = t.run_failpoint(fp, &["apply", &url, "--reboot"]);
        if code.is_none() {
            crashed = true;
        }
        t.check_boot_invariants();
        // Power comes back (or the reboot happens).
        t.reset();
        t.check_boot_invariants();
        let code = t.run_failpoint(fp, &["health"]);
        if code.is_none() {
            crashed = true;
            t.reset();
        }
        t.check_boot_invariants();
        // Keep going as a device would until B is committed: reconcile at
        // every boot, re-apply when no trial is pending.
        for _ in 0..4 {
            t.run(&["health"]).assert_ok();
            t.check_boot_invariants();
            let st = t.status();
            if st["groups"]["B"]["status"] == "good" && t.boot_env()["ORDER"].starts_with('B') {
                break;
            }
            if st["trial"].is_null() && st["booted"] == "A" {
                t.apply_reboot().assert_ok();
                t.check_boot_invariants();
            }
            t.reset();
            t.check_boot_invariants();
        }
        assert!(crashed, "failpoint {fp} was never reached");
        let st = t.status();
        assert_eq!(
            st["groups"]["B"]["status"], "good",
            "after a crash at {fp}: {st}"
        );
        assert_eq!(t.boot_env()["ORDER"], "B A", "after a crash at {fp}");
        assert!(
            t.b() == t.expected(),
            "after a crash at {fp}: slot B is wrong"
        );
        t.check_invariants_a_intact();
    }
}

#[test]
fn crash_while_marking_bad() {
    let t = trial_device();
    t.check("20-fail", "exit 1");
    t.apply_reboot().assert_ok();
    assert_eq!(t.reset(), "B");
    assert_eq!(t.run_failpoint("bad-after-unbootable", &["health"]), None);
    t.check_boot_invariants();
    assert_eq!(t.reset(), "A");
    t.run(&["health"]).assert_ok();
    t.check_boot_invariants();
    assert_eq!(t.status()["groups"]["B"]["status"], "bad");
}

/// A rollback stopped after each of its durable steps leaves the invariants
/// standing, and running it again finishes it.
#[test]
fn crash_while_rolling_back() {
    for fp in [
        "default-bad-after-condemn",
        "default-bad-after-primary",
        "bad-after-unbootable",
        // The last save: B is condemned, A the default, B unbootable, but B
        // not yet recorded bad.
        "state-save@2",
    ] {
        let t = trial_device();
        t.apply_reboot().assert_ok();
        assert_eq!(t.reset(), "B");
        t.run(&["health"]).assert_ok();
        assert_eq!(t.run_failpoint(fp, &["rollback"]), None, "{fp} not reached");
        t.check_boot_invariants();
        // The release rolled back from is remembered from the first step on.
        assert_eq!(
            t.status()["bad_releases"].as_array().unwrap().len(),
            1,
            "{fp}"
        );
        // Run again, it finishes what the first run started (the intent
        // it recorded first), whatever step it stopped after.
        t.run(&["rollback"]).assert_ok();
        t.check_boot_invariants();
        let st = t.status();
        assert_eq!(st["groups"]["B"]["status"], "bad", "after {fp}: {st}");
        assert_eq!(t.boot_env()["ORDER"], "A B", "after {fp}");
        assert_eq!(t.reset(), "A", "after {fp}");
    }
}

fn fw(config: &std::path::Path, tool: &str, args: &[&str]) -> String {
    let out = Command::new(tool)
        .arg("-c")
        .arg(config)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("{tool} (Debian package libubootenv-tool) is needed; ./test.sh installs it: {e}")
        });
    assert!(
        out.status.success(),
        "{tool} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The U-Boot backend on a redundant environment made by fw_setenv: what
/// the agent writes, fw_printenv reads, and a torn (corrupt) newest copy
/// falls back to the previous one for both.
#[test]
fn uboot_redundant_env_interoperates_with_fw_tools() {
    let size = 0x4000;
    // The agent's U-Boot backend on the two copies fw_setenv writes below;
    // a reboot command that does nothing, and no health checks.
    let dev = Builder::new()
        .lines(
            "bootloader",
            &format!(
                "backend = \"uboot\"\npath = \"{{dev}}/env0\"\nredundant_path = \"{{dev}}/env1\"\nsize = {size}"
            ),
        )
        .set("trial", "reboot_command", "[\"true\"]")
        .build();
    let d = dev.env.s("dev");
    for f in ["env0", "env1"] {
        std::fs::write(dev.env.p(&format!("dev/{f}")), vec![0xffu8; size]).unwrap();
    }
    let fwcfg = dev.env.p("dev/fw_env.config");
    std::fs::write(
        &fwcfg,
        format!("{d}/env0 0x0 {size:#x}\n{d}/env1 0x0 {size:#x}\n"),
    )
    .unwrap();
    std::fs::write(dev.env.p("dev/defenv"), "").unwrap();
    let defenv = dev.env.s("dev/defenv");
    fw(&fwcfg, "fw_setenv", &["-f", &defenv, "BOOT_ORDER", "A B"]);
    fw(&fwcfg, "fw_setenv", &["BOOT_A_LEFT", "3"]);
    fw(&fwcfg, "fw_setenv", &["BOOT_B_LEFT", "3"]);

    let url = dev.server.url("manifest.json");
    dev.run(&["apply", &url, "--reboot"]).assert_ok();
    let printed = fw(&fwcfg, "fw_printenv", &[]);
    assert!(printed.contains("BOOT_B_LEFT=0\n"), "{printed}");
    assert!(printed.contains("BOOT_TRY=B\n"), "{printed}");
    assert!(printed.contains("BOOT_ORDER=A B\n"), "{printed}");
    assert_eq!(dev.status()["groups"]["B"]["bootable"], false);

    // fw_setenv's change is seen by the agent.
    fw(&fwcfg, "fw_setenv", &["BOOT_TRY"]);
    let st = dev.status();
    assert!(st["groups"]["B"]["status"] == "trial");
    let r = dev.run(&["health", "--json"]);
    r.assert_ok(); // booted A != trial B: marked bad
    assert!(fw(&fwcfg, "fw_printenv", &[]).contains("BOOT_B_LEFT=0\n"));

    // Tear the newest copy: both fw_printenv and the agent fall back to the
    // other copy (the state before the last write), which still parses.
    let newest = |p: &str| std::fs::read(dev.env.p(p)).unwrap()[4];
    let (f0, f1) = (newest("dev/env0"), newest("dev/env1"));
    let active = if f1 == f0.wrapping_add(1) {
        "dev/env1"
    } else {
        "dev/env0"
    };
    let mut bytes = std::fs::read(dev.env.p(active)).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(dev.env.p(active), &bytes).unwrap();
    let theirs = fw(&fwcfg, "fw_printenv", &["BOOT_ORDER"]);
    assert_eq!(theirs.trim(), "BOOT_ORDER=A B");
    dev.run(&["status"]).assert_ok();
    // Both copies bad: a clear error, nothing written.
    let other = if active == "dev/env0" {
        "dev/env1"
    } else {
        "dev/env0"
    };
    let mut bytes = std::fs::read(dev.env.p(other)).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(dev.env.p(other), &bytes).unwrap();
    dev.run(&["mark-bad", "B"]).assert_fails(6, "U-Boot env");
}

/// After a kexec trial passes its checks, the old primary stays the default
/// and the first boot of B through the bootloader is a one-shot trial of its
/// own; B becomes the default only when that boot confirms.
#[test]
fn a_kexec_commit_guards_the_first_cold_boot() {
    let t = trial_device();
    t.kexec_into_b();
    let r = t.run(&["health", "--json"]);
    r.assert_ok();
    let v: Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(v["outcome"], "cold-boot-pending", "{v}");
    assert_eq!(v["checks"].as_array().unwrap().len(), 1, "{v}");
    let env = t.boot_env();
    assert_eq!(env["ORDER"], "A B", "A stays the default: {env:?}");
    assert_eq!(env["B_TRY"], "1", "B's first cold boot is armed: {env:?}");
    assert_eq!(env["B_OK"], "0", "{env:?}");
    let st = t.status();
    assert_eq!(st["groups"]["B"]["status"], "trial", "{st}");
    assert_eq!(st["trial"]["group"], "B");
    assert_eq!(st["highest_security_version"], 0, "no commit yet: {st}");
    t.check_boot_invariants();

    // Health again in the same kexec boot: nothing to decide, nothing changes.
    let r = t.run(&["health"]);
    r.assert_ok();
    assert!(r.stdout.contains("will decide"), "{}", r.stdout);
    assert_eq!(t.boot_env(), env);
    // No other update until the cold boot decides; the error says what to do.
    t.apply_reboot().assert_fails(9, "reboot once");

    // The next boot goes through GRUB: the one-shot boots B, and B confirms.
    assert_eq!(t.reset(), "B");
    assert_eq!(t.boot_env()["B_TRY"], "0");
    let r = t.run(&["health"]);
    r.assert_ok();
    assert!(r.stdout.contains("committed"), "{}", r.stdout);
    let env = t.boot_env();
    assert_eq!(env["ORDER"], "B A", "{env:?}");
    assert_eq!(env["B_OK"], "1");
    let st = t.status();
    assert_eq!(st["groups"]["B"]["status"], "good", "{st}");
    assert!(st["trial"].is_null());
    assert_eq!(st["highest_security_version"], 5);
    t.check_boot_invariants();
}

/// The bootloader cannot boot B (its kernel broken on the disk while the
/// kexec'd one was fine), or B's cold boot hangs: the one-shot is spent, A
/// boots, and B is marked bad with the reason.
#[test]
fn a_failed_first_cold_boot_comes_back_to_a_with_the_reason() {
    let t = trial_device();
    t.kexec_into_b();
    t.run(&["health"]).assert_ok();
    // GRUB consumes the one-shot, cannot load B and falls back to A
    // (packaging/grub/grub.cfg); a hang ends the same way via the watchdog.
    grub_editenv(&t.env.p("dev/grubenv"), &["set", "B_TRY=0"]);
    std::fs::write(t.env.p("dev/cmdline"), "console=ttyS0 updater.slot=A\n").unwrap();
    let r = t.run(&["health"]);
    r.assert_ok();
    let st = t.status();
    assert_eq!(st["booted"], "A");
    assert_eq!(st["groups"]["B"]["status"], "bad", "{st}");
    let why = st["groups"]["B"]["last_error"].as_str().unwrap();
    assert!(
        why.contains("committed by kexec, failed its first cold boot"),
        "{why}"
    );
    assert_eq!(t.boot_env()["ORDER"], "A B");
    assert!(st["bad_releases"].as_array().unwrap().len() == 1, "{st}");
    t.check_boot_invariants();

    // A health failure in the cold boot is a failed trial like any other.
    let t = trial_device();
    t.kexec_into_b();
    t.run(&["health"]).assert_ok();
    assert_eq!(t.reset(), "B");
    t.check("20-eth", "echo 'eth1 missing after a cold boot'; exit 1");
    let r = t.run(&["health"]);
    assert_eq!(r.code, 7, "{} {}", r.stdout, r.stderr);
    assert_eq!(t.reset(), "A");
    let st = t.status();
    assert_eq!(st["groups"]["B"]["status"], "bad");
    assert!(st["groups"]["B"]["last_error"]
        .as_str()
        .unwrap()
        .contains("eth1 missing"));
    t.check_boot_invariants();
}

/// `trial.guard_cold_boot = false` commits in the kexec boot (round 1's
/// behaviour); `mark-good` in the kexec boot confirms without the proof.
#[test]
fn the_cold_boot_guard_can_be_turned_off_or_overridden() {
    let t = trial().set("trial", "guard_cold_boot", "false").build();
    t.kexec_into_b();
    let r = t.run(&["health"]);
    r.assert_ok();
    assert!(r.stdout.contains("committed"), "{}", r.stdout);
    assert_eq!(t.boot_env()["ORDER"], "B A");

    let t = trial_device();
    t.kexec_into_b();
    t.run(&["health"]).assert_ok();
    t.run(&["mark-good"]).assert_ok();
    let env = t.boot_env();
    assert_eq!(env["ORDER"], "B A", "{env:?}");
    assert_eq!(t.status()["groups"]["B"]["status"], "good");
    t.check_boot_invariants();
}

/// A crash at every durable step of the deferral, then resets and health
/// runs as a device would: the invariants hold throughout, and B ends good,
/// its cold boot confirmed.
#[test]
fn crash_between_every_step_of_the_cold_boot_guard() {
    for fp in ["coldboot-after-arm", "coldboot-after-clock", "state-save@1"] {
        let t = trial_device();
        t.kexec_into_b();
        let code = t.run_failpoint(fp, &["health"]);
        assert_eq!(code, None, "failpoint {fp} was never reached");
        t.check_boot_invariants();
        for _ in 0..3 {
            t.reset();
            t.check_boot_invariants();
            let r = t.run(&["health"]);
            assert!(
                r.code == 0 || r.code == 7,
                "{fp}: {} {}",
                r.stdout,
                r.stderr
            );
            t.check_boot_invariants();
            if t.status()["trial"].is_null() {
                break;
            }
        }
        let st = t.status();
        let b = st["groups"]["B"]["status"].as_str().unwrap();
        let env = t.boot_env();
        // The one-shot is armed first, so every crash leaves B's cold boot
        // armed: the reset boots B through the bootloader, and it confirms.
        assert_eq!(b, "good", "{fp}: {st}");
        assert_eq!(env["ORDER"], "B A", "{fp}: {env:?}");
        assert!(st["trial"].is_null(), "{fp}: {st}");
        t.check_invariants_a_intact();
    }
}
