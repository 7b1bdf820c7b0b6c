//! Crash consistency: every command converges when it is run again after a
//! crash at any of its durable writes (docs/boot-control.md, "Durable
//! writes, command by command").
//!
//! The sweep learns where a command's durable writes are from a run that
//! does not crash (`UPDATER_FAILPOINTS_TRACE`: every rename, in-place env
//! write and removal is the failpoint `durable-write`, besides the named
//! ones between steps), then, for each in turn, starts from the same
//! device, stops the command there (the process aborts, as at a power cut),
//! optionally power-cycles the device (the boot script and `updater health`
//! as the boot unit runs it), runs the command again, boots as often as the
//! agent asks, and requires the device to end exactly where the
//! uninterrupted run ended: the same state, boot env, slots and kept
//! releases, and nothing left over (no temporary file, no intent).

use crate::device::{Boot, Builder, Device};

/// A command to sweep, from a device made ready by `setup`.
struct Case {
    name: &'static str,
    boot: Boot,
    setup: fn(&Device),
    command: fn(&Device) -> Vec<String>,
    /// Also power-cycle between the crash and the run again (for commands
    /// an operator runs again after a power cut: they do not restart the
    /// device themselves).
    power_cycle: bool,
}

fn fresh(_: &Device) {}

fn installed(d: &Device) {
    d.run(&["apply", &d.url()]).assert_ok();
}

/// B booted on trial (a one-shot reboot trial).
fn on_trial(d: &Device) {
    d.run(&["apply", &d.url(), "--reboot"]).assert_ok();
    assert_eq!(d.reset(), "B");
}

/// B on trial, and its health check fails.
fn on_trial_failing(d: &Device) {
    on_trial(d);
    d.check("20-fail", "echo 'the app did not start' >&2; exit 1");
}

/// B committed, the default, and booted; A still good.
fn b_committed(d: &Device) {
    on_trial(d);
    d.run(&["health"]).assert_ok();
    assert_eq!(d.status()["groups"]["B"]["status"], "good");
}

/// B committed and booted; the server has release 1.3.0, a few chunks
/// changed: the next install into A reuses B's chunks (a delta).
fn b_committed_delta_ready(d: &Device) {
    b_committed(d);
    let mut img = std::fs::read(d.env.p("rootfs.img")).unwrap();
    for b in &mut img[600_000..610_000] {
        *b ^= 0x5a;
    }
    std::fs::write(d.env.p("rootfs2.img"), img).unwrap();
    d.publish("rootfs2.img", "1.3.0");
}

fn args(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "apply",
            boot: Boot::File,
            setup: fresh,
            command: |d| args(&["apply", &d.url()]),
            power_cycle: true,
        },
        Case {
            name: "apply --reboot",
            boot: Boot::Grub,
            setup: fresh,
            command: |d| args(&["apply", &d.url(), "--reboot"]),
            power_cycle: false,
        },
        Case {
            name: "apply (delta from the booted slot)",
            boot: Boot::File,
            setup: b_committed_delta_ready,
            command: |d| args(&["apply", &d.url()]),
            power_cycle: false,
        },
        Case {
            name: "apply (in place, again)",
            boot: Boot::File,
            setup: installed,
            command: |d| args(&["apply", &d.url()]),
            power_cycle: false,
        },
        Case {
            name: "activate --reboot",
            boot: Boot::File,
            setup: installed,
            command: |_| args(&["activate", "--reboot"]),
            power_cycle: false,
        },
        Case {
            name: "health (passing)",
            boot: Boot::Grub,
            setup: on_trial,
            command: |_| args(&["health"]),
            power_cycle: false,
        },
        Case {
            name: "health (failing)",
            boot: Boot::File,
            setup: on_trial_failing,
            command: |_| args(&["health"]),
            // After a power cut the boot unit runs health itself; a cut
            // before the failure was recorded is a trial that never
            // confirmed (`the_reason_a_trial_failed_survives_a_crash`).
            power_cycle: false,
        },
        Case {
            name: "mark-good",
            boot: Boot::File,
            setup: on_trial,
            command: |_| args(&["mark-good"]),
            power_cycle: false,
        },
        Case {
            name: "mark-bad B",
            boot: Boot::Grub,
            setup: b_committed,
            command: |_| args(&["mark-bad", "B"]),
            power_cycle: true,
        },
        Case {
            name: "mark-bad (the booted slot)",
            boot: Boot::File,
            setup: b_committed,
            command: |_| args(&["mark-bad"]),
            power_cycle: true,
        },
        Case {
            name: "rollback",
            boot: Boot::Grub,
            setup: b_committed,
            command: |_| args(&["rollback"]),
            power_cycle: true,
        },
        Case {
            name: "rollback (file env)",
            boot: Boot::File,
            setup: b_committed,
            command: |_| args(&["rollback"]),
            power_cycle: true,
        },
        Case {
            name: "activate --reboot (systemd-boot)",
            boot: Boot::SdLoader,
            setup: installed,
            command: |_| args(&["activate", "--reboot"]),
            power_cycle: false,
        },
        Case {
            name: "health (passing, systemd-boot)",
            boot: Boot::SdLoader,
            setup: on_trial,
            command: |_| args(&["health"]),
            power_cycle: false,
        },
        Case {
            name: "rollback (systemd-boot)",
            boot: Boot::SdLoader,
            setup: b_committed,
            command: |_| args(&["rollback"]),
            power_cycle: true,
        },
        Case {
            name: "activate --reboot (efi)",
            boot: Boot::Efi,
            setup: installed,
            command: |_| args(&["activate", "--reboot"]),
            power_cycle: false,
        },
        Case {
            name: "health (passing, efi)",
            boot: Boot::Efi,
            setup: on_trial,
            command: |_| args(&["health"]),
            power_cycle: false,
        },
        Case {
            name: "rollback (efi)",
            boot: Boot::Efi,
            setup: b_committed,
            command: |_| args(&["rollback"]),
            power_cycle: true,
        },
    ]
}

/// The failpoints a run of `cmd` reaches, in order, as `name@N`.
fn trace(d: &Device, cmd: &[&str]) -> (Vec<String>, Option<i32>) {
    let path = d.env.p("trace");
    let _ = std::fs::remove_file(&path);
    let code = d.run_with(
        &[("UPDATER_FAILPOINTS_TRACE", &path.to_string_lossy())],
        cmd,
    );
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let mut seen = std::collections::BTreeMap::<&str, u32>::new();
    let points = text
        .lines()
        .map(|l| {
            let n = l.split(' ').next().unwrap_or(l);
            let c = seen.entry(n).or_default();
            *c += 1;
            format!("{n}@{c}")
        })
        .collect();
    (points, code)
}

/// The sweep of one case; returns the number of crashes it made.
fn sweep(case: &Case) -> usize {
    let d = Builder::new()
        .boot(case.boot)
        .fixed_clock()
        .trials()
        .checkpoint_ms(600_000)
        .build();
    (case.setup)(&d);
    d.snapshot("start");
    let cmd = (case.command)(&d);
    let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
    // The uninterrupted run, and where it ends.
    let before = d.reboots().len();
    let (points, code) = trace(&d, &cmd);
    assert!(
        matches!(code, Some(0 | 7)),
        "{}: the uninterrupted run exited {code:?}",
        case.name
    );
    d.settle(before);
    let want = d.observe();
    assert!(
        d.leftovers().is_empty(),
        "{}: {:?}",
        case.name,
        d.leftovers()
    );
    // What a second run after it says (a rollback run twice has nothing
    // left to roll back to).
    let again = d.run_with(&[], &cmd);
    assert!(!points.is_empty(), "{}: no failpoint reached", case.name);
    let mut crashes = 0;
    for power_cycle in [false, true] {
        if power_cycle && !case.power_cycle {
            continue;
        }
        for fp in &points {
            d.restore("start");
            let before = d.reboots().len();
            let code = d.run_with(&[("UPDATER_FAILPOINTS", fp)], &cmd);
            assert_eq!(
                code, None,
                "{}: failpoint {fp} was not reached again (the run is not deterministic)",
                case.name
            );
            crashes += 1;
            if power_cycle {
                d.boot();
            }
            let code = d.run_with(&[], &cmd);
            let ok = match code {
                Some(0 | 7) => true,
                c if c == again => true,
                // After a power cycle the boot unit may have finished the
                // command's work already, and the booted slot is another:
                // the command run again may find nothing left to do.
                Some(6) if power_cycle => true,
                _ => false,
            };
            assert!(
                ok,
                "{}: run again after a crash at {fp}{} exited {code:?} (a second uninterrupted run: {again:?})",
                case.name,
                if power_cycle { " and a power cycle" } else { "" }
            );
            d.settle(before);
            let got = d.observe();
            assert_eq!(
                got,
                want,
                "{}: after a crash at {fp}{} and a run again, the device is not where an uninterrupted run leaves it",
                case.name,
                if power_cycle { " and a power cycle" } else { "" }
            );
            assert!(
                d.leftovers().is_empty(),
                "{}: after a crash at {fp}: left over {:?}",
                case.name,
                d.leftovers()
            );
        }
    }
    crashes
}

/// Sweep the case named `name`.
fn sweep_named(name: &str) {
    let case = cases()
        .into_iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no case {name}"));
    let n = sweep(&case);
    eprintln!("{name}: {n} crashes, each converged");
}

// One test per command, so that the test harness runs them side by side.
macro_rules! sweeps {
    ($($test:ident: $name:literal,)*) => {
        $(
            #[test]
            fn $test() {
                sweep_named($name);
            }
        )*
        /// Every case has its test.
        #[test]
        fn every_case_is_swept() {
            let tested = [$($name),*];
            for c in cases() {
                assert!(tested.contains(&c.name), "{} has no sweep test", c.name);
            }
        }
    };
}

sweeps! {
    sweep_apply: "apply",
    sweep_apply_reboot: "apply --reboot",
    sweep_apply_delta: "apply (delta from the booted slot)",
    sweep_apply_in_place: "apply (in place, again)",
    sweep_activate: "activate --reboot",
    sweep_health_passing: "health (passing)",
    sweep_health_failing: "health (failing)",
    sweep_mark_good: "mark-good",
    sweep_mark_bad_named: "mark-bad B",
    sweep_mark_bad_booted: "mark-bad (the booted slot)",
    sweep_rollback: "rollback",
    sweep_rollback_file_env: "rollback (file env)",
    sweep_activate_sdboot: "activate --reboot (systemd-boot)",
    sweep_health_passing_sdboot: "health (passing, systemd-boot)",
    sweep_rollback_sdboot: "rollback (systemd-boot)",
    sweep_activate_efi: "activate --reboot (efi)",
    sweep_health_passing_efi: "health (passing, efi)",
    sweep_rollback_efi: "rollback (efi)",
}

// --- The four cases of issue 21, each on its own. -------------------------

fn device(boot: Boot) -> Device {
    Builder::new().boot(boot).fixed_clock().trials().build()
}

#[test]
fn an_interrupted_rollback_is_finished_not_reversed() {
    // Case 1: stopped between moving the default and marking the old one
    // unbootable, both slots good and bootable, the default switched.
    for power_cycle in [false, true] {
        let d = device(Boot::Grub);
        b_committed(&d);
        let digest = d.status()["groups"]["B"]["digest"].clone();
        let code = d.run_with(
            &[("UPDATER_FAILPOINTS", "default-bad-after-primary")],
            &["rollback"],
        );
        assert_eq!(code, None, "the failpoint was not reached");
        if power_cycle {
            assert_eq!(d.boot(), "A");
        }
        let again = d.run(&["rollback"]);
        if power_cycle {
            // The boot unit's session finished it: nothing left to do.
            again.assert_fails(6, "nothing to roll back to");
        } else {
            again.assert_ok();
            assert!(again.stdout.contains("slot A"), "{}", again.stdout);
        }
        let st = d.status();
        assert_eq!(st["groups"]["B"]["status"], "bad", "{st}");
        assert_eq!(st["groups"]["A"]["status"], "good", "{st}");
        assert_eq!(d.boot_env()["ORDER"], "A B");
        assert_eq!(d.boot_env()["B_OK"], "0");
        // The condemned release is not the default's.
        assert_eq!(st["bad_releases"][0]["digest"], digest);
        assert!(d.leftovers().is_empty(), "{:?}", d.leftovers());
    }
}

#[test]
fn mark_bad_of_the_booted_slot_after_a_power_cut_marks_the_same_slot() {
    // Case 1, mark-bad without a slot: B (booted, the default) is marked
    // bad; after the power cut A boots, and running mark-bad again must not
    // mark A.
    let d = device(Boot::File);
    b_committed(&d);
    let code = d.run_with(
        &[("UPDATER_FAILPOINTS", "default-bad-after-primary")],
        &["mark-bad"],
    );
    assert_eq!(code, None, "the failpoint was not reached");
    assert_eq!(d.boot(), "A");
    d.run(&["mark-bad"])
        .assert_fails(6, "no other slot is good to boot instead");
    let st = d.status();
    assert_eq!(st["groups"]["A"]["status"], "good", "{st}");
    assert_eq!(st["groups"]["B"]["status"], "bad", "{st}");
    assert_eq!(d.boot_env()["ORDER"], "A B");
}

#[test]
fn temporary_files_a_crash_left_are_removed_by_the_next_session() {
    // Case 2: a crash between creating `.NAME.tmp.<hex>` and renaming it
    // leaves the file; the next session removes it, in the state folder and
    // beside the boot env. No checkpoint on a timer: the k-th durable write
    // is then the same write in every run.
    let device = |_| {
        Builder::new()
            .boot(Boot::File)
            .fixed_clock()
            .trials()
            .checkpoint_ms(3_600_000)
            .build()
    };
    let d = device(Boot::File);
    // The durable writes that replace a file (renames and removals leave no
    // temporary file).
    let writes: Vec<usize> = durable_writes_raw(&d, &["apply", &d.url()])
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with("write "))
        .map(|(k, _)| k + 1)
        .collect();
    assert!(writes.len() > 5, "{writes:?}");
    let (mut in_state, mut beside_env) = (0, 0);
    for k in writes {
        let d = device(Boot::File);
        let fp = format!("durable-write@{k}");
        assert_eq!(
            d.run_with(&[("UPDATER_FAILPOINTS", &fp)], &["apply", &d.url()]),
            None
        );
        let left = d.leftovers();
        assert!(!left.is_empty(), "{fp}: no temporary file was left");
        for p in &left {
            if p.starts_with(d.env.p("dev/state")) {
                in_state += 1;
            } else if p.parent() == Some(&d.env.p("dev")) {
                beside_env += 1;
            }
        }
        // `status` takes no lock and removes nothing; any session does.
        d.run(&["status"]).assert_ok();
        assert_eq!(d.leftovers(), left);
        d.run(&["health"]).assert_ok();
        assert!(d.leftovers().is_empty(), "{fp}: {:?}", d.leftovers());
    }
    assert!(in_state > 0 && beside_env > 0, "{in_state} {beside_env}");
}

#[test]
fn the_reason_a_trial_failed_survives_a_crash() {
    // Case 3: health stopped after marking the trial slot unbootable, before
    // recording why; the power comes back in A.
    let d = device(Boot::Grub);
    on_trial_failing(&d);
    let code = d.run_with(
        &[("UPDATER_FAILPOINTS", "bad-after-unbootable")],
        &["health"],
    );
    assert_eq!(code, None);
    assert_eq!(d.boot(), "A");
    let st = d.status();
    assert_eq!(st["groups"]["B"]["status"], "bad", "{st}");
    let why = st["groups"]["B"]["last_error"].as_str().unwrap();
    assert!(why.contains("the app did not start"), "{why}");
    assert!(!why.contains("did not confirm"), "{why}");
}

#[test]
fn a_rollback_stopped_after_the_unbootable_mark_finishes_when_run_again() {
    // Case 4: the slot unbootable in the env but good in the state.
    let d = device(Boot::Grub);
    b_committed(&d);
    let code = d.run_with(
        &[("UPDATER_FAILPOINTS", "bad-after-unbootable")],
        &["rollback"],
    );
    assert_eq!(code, None);
    d.run(&["rollback"]).assert_ok();
    let st = d.status();
    assert_eq!(st["groups"]["B"]["status"], "bad", "{st}");
    assert_eq!(d.boot_env()["ORDER"], "A B");
    assert_eq!(d.boot_env()["B_OK"], "0");
}

// --- The randomized campaign. -----------------------------------------------

/// splitmix64: a small seeded generator (no dependency, the same sequence
/// on every machine).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What a campaign ran.
#[derive(Debug, Default)]
pub struct Tally {
    /// Commands started.
    pub steps: u64,
    /// Commands killed before they finished.
    pub kills: u64,
    /// Power cycles (the boot script and health).
    pub boots: u64,
    /// The most bytes the state folder held.
    pub max_state_bytes: u64,
}

fn dir_bytes(p: &std::path::Path) -> u64 {
    std::fs::read_dir(p)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Random commands valid in the device's state, each killed (SIGKILL to
/// its process group) after a random delay or left to finish, the boot
/// script emulated and `health` run as the boot unit would, and the
/// invariants checked after every step.
pub fn campaign(seed: u64, max_steps: u64, budget: std::time::Duration) -> Tally {
    use std::os::unix::process::CommandExt;
    use std::time::{Duration, Instant};
    use updater_format::Sha256Digest;
    let d = Builder::new().boot(Boot::File).trials().build();
    // Three releases: 1.2.0 (rootfs.img), then 1.3.0 and 1.4.0, each with a
    // region changed, served side by side: full installs, deltas from the
    // booted slot, installs in place.
    let mut img = std::fs::read(d.env.p("rootfs.img")).unwrap();
    let mut servers = vec![];
    let mut releases = vec![("1.2.0".to_string(), Sha256Digest::of(&img).hex(), d.url())];
    for (i, v) in ["1.3.0", "1.4.0"].iter().enumerate() {
        for b in &mut img[300_000 * (i + 1)..300_000 * (i + 1) + 20_000] {
            *b = b.wrapping_add(1);
        }
        let name = format!("rootfs-{v}.img");
        std::fs::write(d.env.p(&name), &img).unwrap();
        let out = format!("rel-{v}");
        let key = d.env.s("keys/m1.key");
        d.env
            .release_by(
                &out,
                &name,
                ["--key", &key],
                v,
                "5",
                &["--chunk-size", "262144"],
            )
            .assert_ok();
        let s = updater_testkit::Server::start(&d.env.p(&out), "127.0.0.1:0").unwrap();
        releases.push((
            v.to_string(),
            Sha256Digest::of(&img).hex(),
            s.url("manifest.json"),
        ));
        servers.push(s);
    }
    let factory = Sha256Digest::of(&std::fs::read(d.env.p("dev/slots/A.rootfs")).unwrap()).hex();
    let image_of = |version: &str| -> String {
        releases
            .iter()
            .find(|(v, _, _)| v == version)
            .map(|(_, h, _)| h.clone())
            .unwrap_or_default()
    };
    let slot_hash = |g: &str| {
        std::fs::read(d.env.p(&format!("dev/slots/{g}.rootfs")))
            .map(|b| Sha256Digest::of(&b).hex())
            .unwrap_or_default()
    };
    // The invariants; `settled`: a session ran to its end since the last
    // kill, so nothing may be half done.
    let check = |t: &mut Tally, when: &str, settled: bool| {
        let st = d.status();
        let env = d.boot_env();
        let primary = env["ORDER"].split_whitespace().next().unwrap().to_string();
        assert_eq!(
            env[&format!("{primary}_OK")],
            "1",
            "{when}: the primary {primary} is not bootable: {env:?}"
        );
        for g in ["A", "B"] {
            let s = st["groups"][g]["status"].as_str().unwrap();
            let ok = env[&format!("{g}_OK")] == "1";
            let armed = env.get("TRY").map(String::as_str) == Some(g);
            if ok {
                assert!(
                    matches!(s, "good" | "trial"),
                    "{when}: {g} is {s} and bootable: {st}"
                );
            }
            if armed {
                assert_eq!(s, "trial", "{when}: {g} is armed but {s}: {st}");
            }
            if ok || armed {
                // Exactly the image the state names (the factory image for
                // a slot that never got a release).
                let want = match st["groups"][g]["version"].as_str() {
                    Some(v) => image_of(v),
                    None => factory.clone(),
                };
                assert_eq!(
                    slot_hash(g),
                    want,
                    "{when}: bootable slot {g} holds another image: {st}"
                );
            }
        }
        if settled {
            assert!(
                d.leftovers().is_empty(),
                "{when}: left over {:?}",
                d.leftovers()
            );
            let ps = st["groups"][&primary]["status"].as_str().unwrap();
            let confirmed =
                st["trial"]["group"] == primary.as_str() && st["trial"]["confirmed"] == true;
            assert!(
                ps == "good" || confirmed,
                "{when}: the default {primary} is {ps}: {st}"
            );
        }
        t.max_state_bytes = t.max_state_bytes.max(dir_bytes(&d.env.p("dev/state")));
    };
    let mut rng = Rng(seed);
    let mut t = Tally::default();
    let started = Instant::now();
    let mut failing = false;
    // How long each kind of command took when it last ran to its end, in ms.
    let mut took = std::collections::BTreeMap::<String, u64>::new();
    // The last commands, for the message of a broken invariant.
    let mut history: Vec<String> = Vec::new();
    // The boot unit's first run writes the fresh state.
    d.run(&["health"]).assert_ok();
    check(&mut t, "at the start", true);
    while t.steps < max_steps && started.elapsed() < budget {
        t.steps += 1;
        let st = d.status();
        let booted = st["booted"].as_str().unwrap().to_string();
        let other = if booted == "A" { "B" } else { "A" };
        let running =
            semver::Version::parse(st["groups"][&booted]["version"].as_str().unwrap_or("1.2.0"))
                .unwrap();
        let cmd: Vec<String> = if st["trial"]["group"] == booted.as_str() {
            match rng.below(4) {
                0 => args(&["mark-good"]),
                1 => args(&["mark-bad"]),
                _ => args(&["health"]),
            }
        } else {
            // A release not older than the one running (an older one is
            // refused as a downgrade: not a crash case).
            let newer: Vec<&String> = releases
                .iter()
                .filter(|(v, _, _)| semver::Version::parse(v).unwrap() >= running)
                .map(|(_, _, url)| url)
                .collect();
            let url = newer[rng.below(newer.len() as u64) as usize];
            // Installing needs the booted slot to be the default (after a
            // rollback, the device reboots first).
            let default_booted = st["primary"] == booted.as_str();
            match rng.below(8) {
                0 | 1 if default_booted => args(&["apply", url]),
                2 | 3 if default_booted => args(&["apply", url, "--reboot"]),
                4 if default_booted => args(&["activate", "--reboot"]),
                5 => args(&["rollback"]),
                6 => args(&["mark-bad", other]),
                _ => args(&["health"]),
            }
        };
        if rng.below(3) == 0 {
            failing = !failing;
            if failing {
                d.check("20-fail", "echo 'the app did not start' >&2; exit 1");
            } else {
                let _ = std::fs::remove_file(d.env.p("dev/health.d/20-fail"));
            }
        }
        let booted_before = slot_hash(&booted);
        let reboots = d.reboots().len();
        let mut primary_before = d.boot_env()["ORDER"]
            .split_whitespace()
            .next()
            .unwrap()
            .to_string();
        // An unfinished intent is finished before the command does anything
        // else: a rollback run again after a crash finishes the rollback it
        // started (whose slot may no longer be the default) instead of
        // rolling back once more; after another command's intent, the
        // default it rolls back from is only known once that is finished.
        let pending: Option<serde_json::Value> = std::fs::read(d.env.p("dev/state/intent.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let rollback_from_known = match &pending {
            Some(i) if i["by"] == "rollback" => {
                primary_before = i["group"].as_str().unwrap().to_string();
                true
            }
            Some(_) => false,
            None => true,
        };
        let mut child = std::process::Command::new(crate::common::bin())
            .args(["--config", &d.config()])
            .args(&cmd)
            .env(updater::trial::reboot::NO_REAL_RESTART_ENV, "1")
            .env_remove("UPDATER_LOG")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let spawned = Instant::now();
        // Killed after a random delay within how long the command took when
        // it last ran to its end (so that kills land between its durable
        // writes, not all before the first), or left to finish one time in
        // four.
        let kind = cmd
            .iter()
            .filter(|a| !a.contains("://"))
            .cloned()
            .collect::<Vec<_>>()
            .join(" ");
        let typical = *took.get(&kind).unwrap_or(&60);
        let kill_after = (rng.below(4) != 0).then(|| Duration::from_millis(rng.below(typical + 1)));
        let mut killed = false;
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if kill_after.is_some_and(|k| spawned.elapsed() >= k) {
                // The whole process group, as a power cut stops everything.
                unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
                killed = true;
                break child.wait().unwrap();
            }
            assert!(
                spawned.elapsed() < Duration::from_secs(60),
                "{cmd:?} ran for 60 s"
            );
            std::thread::sleep(Duration::from_millis(2));
        };
        if !killed {
            took.insert(kind.clone(), spawned.elapsed().as_millis() as u64);
        }
        let mut err = String::new();
        use std::io::Read;
        let _ = child.stderr.take().unwrap().read_to_string(&mut err);
        let when = format!(
            "seed {seed} step {} `{}`{} (after: {})",
            t.steps,
            cmd.join(" "),
            if killed { " (killed)" } else { "" },
            history.join("; ")
        );
        history.push(format!("{}{}", kind, if killed { " (killed)" } else { "" }));
        while history.len() > 8 {
            history.remove(0);
        }
        match status.code() {
            None => {
                assert!(
                    killed,
                    "{when}: died of a signal nobody sent: {status:?}: {err}"
                );
                t.kills += 1;
            }
            Some(c) => assert!(!matches!(c, 1 | 101), "{when}: exit {c}: {err}"),
        }
        assert_eq!(
            slot_hash(&booted),
            booted_before,
            "{when}: the booted slot {booted} changed"
        );
        check(&mut t, &when, !killed);
        // A power cut after a kill (one time in two), or the restart the
        // agent asked for: the boot script, then health as the boot unit.
        let mut settled = !killed;
        if (killed && rng.below(2) == 0) || d.reboots().len() > reboots {
            t.boots += 1;
            history.push(format!("boot into {}", boot_until_settled(&d)));
            settled = true;
            check(&mut t, &format!("{when}, then a boot"), true);
        }
        // A rollback, however it was stopped, is never reversed: once the
        // slot it rolls back from is bad, that slot is not the default; and
        // one that finished made it bad.
        if cmd[0] == "rollback" && settled && rollback_from_known {
            let st = d.status();
            let primary = d.boot_env()["ORDER"]
                .split_whitespace()
                .next()
                .unwrap()
                .to_string();
            let from = st["groups"][&primary_before]["status"].as_str().unwrap();
            if from == "bad" || (status.code() == Some(0)) {
                assert_eq!(
                    from, "bad",
                    "{when}: the rollback left {primary_before} {from}: {st}"
                );
                assert_ne!(
                    primary, primary_before,
                    "{when}: rolled back from {primary_before}, still the default: {st}"
                );
            }
        }
        // An interrupted apply is run again as an operator would, to the
        // end: it must succeed (or find the trial it recorded pending, when
        // the device did not restart since).
        if killed && cmd[0] == "apply" && (settled || rng.below(2) == 0) {
            let reboots = d.reboots().len();
            let again: Vec<&str> = cmd.iter().map(String::as_str).collect();
            let r = d.run(&again);
            t.steps += 1;
            assert!(
                matches!(r.code, 0 | 9),
                "{when}: run again, it exited {}: {}",
                r.code,
                r.stderr
            );
            if d.reboots().len() > reboots {
                t.boots += 1;
                history.push(format!("boot into {}", boot_until_settled(&d)));
            }
            check(&mut t, &format!("{when}, run again"), true);
        }
    }
    drop(servers);
    t
}

/// Power-cycle, and again for as long as `health` asks for a restart (a
/// failed trial reboots back). Returns the slot finally booted.
fn boot_until_settled(d: &Device) -> String {
    let mut slot = String::new();
    for _ in 0..3 {
        let before = d.reboots().len();
        slot = d.boot();
        if d.reboots().len() == before {
            break;
        }
    }
    slot
}

/// A short campaign in every test run; `UPDATER_CAMPAIGN_SECS` and
/// `UPDATER_CAMPAIGN_SEEDS` run it longer (bench/crash-campaign.sh).
#[test]
fn a_randomized_crash_campaign_keeps_every_invariant() {
    let secs: u64 = std::env::var("UPDATER_CAMPAIGN_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40);
    let seeds: Vec<u64> = std::env::var("UPDATER_CAMPAIGN_SEEDS")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_else(|| vec![20261207]);
    for seed in seeds {
        let t = campaign(seed, u64::MAX, std::time::Duration::from_secs(secs));
        eprintln!(
            "campaign seed {seed}: {} commands, {} killed, {} boots, no invariant broken; the state folder held at most {} bytes",
            t.steps, t.kills, t.boots, t.max_state_bytes
        );
        assert!(t.kills > 0, "no command was killed in {secs} s");
    }
}

/// What each `durable-write` failpoint of a run of `cmd` was about to do, in
/// order (`write PATH`, `rename A to B`, `remove PATH`).
fn durable_writes_raw(d: &Device, cmd: &[&str]) -> Vec<String> {
    let path = d.env.p("trace");
    let _ = std::fs::remove_file(&path);
    d.run_with(
        &[("UPDATER_FAILPOINTS_TRACE", &path.to_string_lossy())],
        cmd,
    );
    std::fs::read_to_string(&path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix("durable-write "))
        .map(str::to_string)
        .collect()
}

/// The durable writes of a run of `cmd`, in order, as docs/boot-control.md
/// lists them: each file relative to the device's folder (`state/...`, the
/// boot env), a removal marked, the named steps between them in brackets,
/// runs of the same line counted.
fn durable_writes(d: &Device, cmd: &[&str]) -> Vec<String> {
    let path = d.env.p("trace");
    let _ = std::fs::remove_file(&path);
    d.run_with(
        &[("UPDATER_FAILPOINTS_TRACE", &path.to_string_lossy())],
        cmd,
    );
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let dev = format!("{}/", d.env.s("dev"));
    let mut out: Vec<(String, usize)> = Vec::new();
    for l in text.lines() {
        let line = match l.split_once(' ') {
            // `durable-write write PATH` or `durable-write remove PATH`.
            Some((_, what)) => {
                let (verb, p) = what.split_once(' ').unwrap_or(("write", what));
                let rel = |p: &str| p.strip_prefix(&dev).unwrap_or(p).to_string();
                match verb {
                    "remove" => format!("{} (removed)", rel(p)),
                    "rename" => match p.split_once(" to ") {
                        Some((a, b)) => format!("{} → {}", rel(a), rel(b)),
                        None => rel(p),
                    },
                    _ => rel(p),
                }
            }
            // `state-save` only names the state.json write that follows.
            None if l == "state-save" => continue,
            None => format!("[{l}]"),
        };
        match out.last_mut() {
            Some((last, n)) if *last == line => *n += 1,
            _ => out.push((line, 1)),
        }
    }
    out.into_iter()
        .map(|(l, n)| match n {
            1 => l,
            // One per chunk of the image: the count is the image's.
            _ if l == "[chunk-written]" => format!("{l} ×N"),
            _ => format!("{l} ×{n}"),
        })
        .collect()
}

/// docs/boot-control.md lists every command's durable writes in the order a
/// run makes them: this runs each command of the sweep and compares.
/// `UPDATER_BLESS=1` prints what the document should say.
#[test]
fn the_durable_writes_of_each_command_are_as_documented() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/boot-control.md"
    ))
    .unwrap();
    let mut wrong = Vec::new();
    let mut all = String::new();
    for case in cases() {
        let d = Builder::new()
            .boot(case.boot)
            .fixed_clock()
            .trials()
            .checkpoint_ms(600_000)
            .build();
        (case.setup)(&d);
        let cmd = (case.command)(&d);
        let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
        let got = durable_writes(&d, &cmd);
        // The document's list for the case: the numbered lines after its
        // heading, first column.
        let heading = format!("#### {}\n", case.name);
        let listed: Vec<String> = doc
            .split_once(&heading)
            .map(|(_, rest)| {
                rest.lines()
                    .skip_while(|l| !l.starts_with("| 1 |"))
                    .take_while(|l| l.starts_with("| "))
                    .filter_map(|l| l.split('|').nth(2))
                    .map(|c| c.trim().trim_matches('`').to_string())
                    .collect()
            })
            .unwrap_or_default();
        all.push_str(&format!("{heading}\n"));
        for (i, w) in got.iter().enumerate() {
            all.push_str(&format!("| {} | `{w}` | |\n", i + 1));
        }
        all.push('\n');
        if listed != got {
            wrong.push(format!(
                "{}: documented {listed:?}, made {got:?}",
                case.name
            ));
        }
    }
    if std::env::var_os("UPDATER_BLESS").is_some() {
        eprintln!("{all}");
    }
    assert!(
        wrong.is_empty(),
        "docs/boot-control.md is out of date:\n{}",
        wrong.join("\n")
    );
}
