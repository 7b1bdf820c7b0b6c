//! The kexec path, in-process, with test doubles for the three things that
//! must never run on a build host: the kexec_file_load syscall, the hardware
//! watchdog and the restart. Everything else is real: the install from a
//! loopback server, the sealed memfds, the signature checks, the state file
//! and the boot env.

use std::cell::RefCell;
use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

use crate::common::*;
use crate::device::{Builder, Device};
use nix::errno::Errno;
use serde_json::Value;
use updater::cli::progress::Progress;
use updater::clock::Clock;
use updater::error::{classify, ExitCode};
use updater::session::Session;
use updater::trial::kexec::loader::KexecLoader;
use updater::trial::kexec::watchdog::Watchdog;
use updater::trial::reboot::{Rebooter, Restart};
use updater::trial::{How, KexecOutcome, Machine};
use updater_format::Sha256Digest;

/// Records every call, in order, with what it could observe.
struct Recorder<'a> {
    log: &'a RefCell<Vec<String>>,
    state_path: std::path::PathBuf,
    load_result: Result<(), Errno>,
}

fn fd_digest(fd: BorrowedFd<'_>) -> String {
    let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    Sha256Digest::of(&std::fs::read(path).unwrap()).hex()
}

impl KexecLoader for Recorder<'_> {
    fn load(
        &self,
        kernel: BorrowedFd<'_>,
        initrd: Option<BorrowedFd<'_>>,
        cmdline: &CString,
    ) -> Result<(), Errno> {
        let st: Value = serde_json::from_slice(&std::fs::read(&self.state_path).unwrap()).unwrap();
        self.log.borrow_mut().push(format!(
            "load kernel={} initrd={} cmdline={} trial_recorded={}",
            fd_digest(kernel),
            initrd.map(fd_digest).unwrap_or_default(),
            cmdline.to_str().unwrap(),
            st["trial"]["group"] == "B"
        ));
        self.load_result
    }
    fn unload(&self) -> Result<(), Errno> {
        self.log.borrow_mut().push("unload".into());
        Ok(())
    }
}

struct FakeWatchdog<'a> {
    log: &'a RefCell<Vec<String>>,
    survives: Result<(), String>,
}

impl Watchdog for FakeWatchdog<'_> {
    fn survives_kexec(&self) -> Result<(), String> {
        self.survives.clone()
    }
    fn arm(&mut self, timeout: Duration) -> anyhow::Result<()> {
        self.log
            .borrow_mut()
            .push(format!("arm {}s", timeout.as_secs()));
        Ok(())
    }
}

struct FakeRebooter<'a> {
    log: &'a RefCell<Vec<String>>,
}

impl Rebooter for FakeRebooter<'_> {
    fn restart(&self, how: Restart) -> anyhow::Result<()> {
        self.log
            .borrow_mut()
            .push(format!("restart {}", how.name()));
        Ok(())
    }
}

/// The kernel of the release.
fn kernel() -> Vec<u8> {
    pattern(300_000, 21)
}

/// The initrd of the release.
fn initrd() -> Vec<u8> {
    pattern(120_000, 22)
}

/// A device whose slots have kernel and initrd targets (and B a root
/// device), `kexec.policy = POLICY` with a watchdog and a sysfs of the
/// test's own, and `kexec` lines more; the release served has a kernel, an
/// initrd and a command line.
fn device_with(policy: &str, kexec: &str) -> Device {
    // What the kernel reports about lockdown and kexec (sys_root) must not
    // come from the build host.
    let dev = Builder::new()
        .release_args(&[])
        .set("kexec", "policy", &format!("\"{policy}\""))
        .lines(
            "kexec",
            &format!(
                "watchdog = \"/dev/watchdog\"\nwatchdog_timeout_secs = 45\nsys_root = \"{{dev}}/sys\"\n{kexec}"
            ),
        )
        .lines(
            "slots.A.targets",
            "kernel = \"{dev}/slots/A.vmlinuz\"\ninitrd = \"{dev}/slots/A.initrd\"",
        )
        .set("slots.B", "root_device", "\"/dev/vda3\"")
        .lines(
            "slots.B.targets",
            "kernel = \"{dev}/slots/B.vmlinuz\"\ninitrd = \"{dev}/slots/B.initrd\"",
        )
        .build();
    std::fs::create_dir_all(dev.env.p("dev/sys")).unwrap();
    std::fs::write(dev.env.p("vmlinuz"), kernel()).unwrap();
    std::fs::write(dev.env.p("initrd.img"), initrd()).unwrap();
    // The release again, with a kernel, an initrd and a command line.
    let (k, i, kk) = (
        dev.env.s("vmlinuz"),
        dev.env.s("initrd.img"),
        dev.env.s("keys/k1.key"),
    );
    dev.publish_with(
        "rootfs.img",
        "1.2.0",
        &[
            "--kernel",
            &k,
            "--kernel-key",
            &kk,
            "--initrd",
            &i,
            "--cmdline",
            "console=ttyS0 quiet",
        ],
    );
    dev
}

/// [`device_with`] and no more `kexec` lines.
fn device(policy: &str) -> Device {
    device_with(policy, "")
}

/// The device's settings, as the agent loads them.
fn settings(dev: &Device) -> updater::config::Settings {
    updater::config::load(Some(&dev.env.p("dev/config.toml"))).unwrap()
}

/// `apply URL --kexec` with the doubles: the install, then the trial start
/// in the same session. Returns what the trial start did (the install must
/// succeed) and the log.
fn apply(
    dev: &Device,
    load: Result<(), Errno>,
    survives: Result<(), String>,
    dry_run: bool,
) -> (anyhow::Result<Option<KexecOutcome>>, Vec<String>) {
    let log = RefCell::new(Vec::new());
    let settings = settings(dev);
    let loader = Recorder {
        log: &log,
        state_path: dev.env.p("dev/state/state.json"),
        load_result: load,
    };
    let mut wd = FakeWatchdog {
        log: &log,
        survives,
    };
    let rb = FakeRebooter { log: &log };
    let machine = Machine {
        rebooter: &rb,
        loader: &loader,
        watchdog: Some(&mut wd),
    };
    let url = dev.url();
    let mut session = Session::open(&settings, Clock::system()).unwrap();
    let installed = updater::install::install(
        &mut session,
        &url,
        None,
        &mut Progress::Quiet,
        &updater::install::Options::default(),
    )
    .unwrap();
    let r = updater::trial::start(
        &mut session,
        &installed.group,
        &installed.manifest,
        How::Kexec { dry_run },
        machine,
        &mut Progress::Quiet,
    );
    drop(session);
    (r, log.into_inner())
}

/// The file boot env's text.
fn env_text(dev: &Device) -> String {
    std::fs::read_to_string(dev.env.p("dev/boot.env")).unwrap()
}

#[test]
fn verify_record_load_arm_jump_in_that_order() {
    let k = device("require");
    let (r, log) = apply(&k, Ok(()), Ok(()), false);
    let out = r.unwrap();
    let kd = Sha256Digest::of(&kernel()).hex();
    let id = Sha256Digest::of(&initrd()).hex();
    assert_eq!(
        log,
        vec![
            format!("load kernel={kd} initrd={id} cmdline=console=ttyS0 quiet root=/dev/vda3 updater.slot=B updater.trial=1 updater.kexec=1 updater.deadline=600 trial_recorded=true"),
            "arm 45s".to_string(),
            "restart kexec".to_string(),
        ]
    );
    assert!(matches!(out, Some(KexecOutcome::Jumped { .. })));
    let st = k.status();
    assert_eq!(st["groups"]["B"]["status"], "trial");
    assert_eq!(st["trial"]["group"], "B");
    // The bootloader is untouched: A stays primary, no one-shot, B unbootable.
    let env = env_text(&k);
    assert!(
        env.contains("ORDER=A B") && env.contains("B_OK=0") && env.contains("TRY=\n"),
        "{env}"
    );
}

#[test]
fn every_kernel_refusal_maps_to_its_message_and_exit_6_under_require() {
    for (errno, word) in [
        (Errno::EKEYREJECTED, "KEXEC_SIG"),
        (Errno::EBADMSG, "KEXEC_SIG"),
        (Errno::EPERM, "lockdown"),
        (Errno::ENOSYS, "kexec_file_load"),
        (Errno::EOPNOTSUPP, "kexec_file_load"),
        (Errno::ENOEXEC, "bzImage"),
    ] {
        let k = device("require");
        let (r, log) = apply(&k, Err(errno), Ok(()), false);
        let e = r.unwrap_err();
        assert_eq!(classify(&e), ExitCode::Boot, "{errno}");
        assert!(format!("{e:#}").contains(word), "{errno}: {e:#}");
        // Loaded once, nothing armed, no restart; the trial is not left armed.
        assert_eq!(log.len(), 1, "{log:?}");
        let st = k.status();
        assert!(st["trial"].is_null(), "{st}");
        assert_eq!(st["groups"]["B"]["status"], "installed");
        assert!(env_text(&k).contains("TRY=\n"));
    }
}

#[test]
fn prefer_falls_back_to_a_reboot_trial_and_says_so() {
    let k = device("prefer");
    let (r, log) = apply(&k, Err(Errno::EKEYREJECTED), Ok(()), false);
    let out = r.unwrap();
    match out {
        Some(KexecOutcome::FellBack { reason }) => {
            assert!(reason.contains("KEXEC_SIG"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(log.last().unwrap(), "restart reboot");
    assert!(
        !log.iter().any(|l| l.starts_with("arm")),
        "the watchdog must not be armed for a reboot trial: {log:?}"
    );
    assert!(env_text(&k).contains("TRY=B"), "{}", env_text(&k));
    assert_eq!(k.status()["trial"]["group"], "B");
}

/// What the running kernel says about itself (sysfs, procfs) is reported by
/// `status --json` and names the cause of a refusal.
#[test]
fn a_locked_down_kernel_is_reported_and_named_in_the_refusal() {
    let k = device("prefer");
    let sys = k.env.p("dev/sys");
    std::fs::create_dir_all(sys.join("kernel/security")).unwrap();
    std::fs::write(
        sys.join("kernel/security/lockdown"),
        "none [integrity] confidentiality\n",
    )
    .unwrap();
    std::fs::write(sys.join("kernel/kexec_loaded"), "0\n").unwrap();
    let st = k.status();
    assert_eq!(st["kernel"]["lockdown"], "integrity", "{st}");
    assert_eq!(st["kernel"]["kexec_sig"], "enforced", "{st}");
    assert_eq!(st["kernel"]["kexec_loaded"], false, "{st}");
    let human = k.run(&["status"]);
    human.assert_ok();
    assert!(
        human
            .stdout
            .contains("kernel: lockdown integrity, kexec signature enforced"),
        "{}",
        human.stdout
    );

    let (r, _) = apply(&k, Err(Errno::EPERM), Ok(()), false);
    match r.unwrap() {
        Some(KexecOutcome::FellBack { reason }) => assert!(
            reason.contains("enforces kexec signatures") && reason.contains("locked down"),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }

    // kexec switched off until the next boot is named as that.
    let k2 = device("require");
    let proc2 = k2.env.p("dev/proc/sys/kernel");
    std::fs::create_dir_all(&proc2).unwrap();
    std::fs::write(proc2.join("kexec_load_disabled"), "1\n").unwrap();
    let (r, _) = apply(&k2, Err(Errno::EPERM), Ok(()), false);
    let e = r.unwrap_err();
    assert_eq!(classify(&e), ExitCode::Boot);
    assert!(
        format!("{e:#}").contains("kexec_load_disabled = 1"),
        "{e:#}"
    );
}

#[test]
fn policy_never_reboots_without_loading() {
    let k = device("never");
    let (r, log) = apply(&k, Ok(()), Ok(()), false);
    assert!(matches!(r.unwrap(), Some(KexecOutcome::FellBack { .. })));
    assert_eq!(log, vec!["restart reboot"]);
}

#[test]
fn a_watchdog_that_stops_across_kexec_is_refused_or_warned() {
    let why = Err("the watchdog stops across a kexec".to_string());
    let k = device("require");
    let (r, log) = apply(&k, Ok(()), why.clone(), false);
    let e = r.unwrap_err();
    assert_eq!(classify(&e), ExitCode::Boot);
    assert!(log.is_empty(), "nothing may be loaded: {log:?}");
    assert!(k.status()["trial"].is_null());

    let k = device("prefer");
    let (r, log) = apply(&k, Ok(()), why.clone(), false);
    assert!(matches!(r.unwrap(), Some(KexecOutcome::FellBack { .. })));
    assert_eq!(log, vec!["restart reboot"]);

    let k = device_with("require", "watchdog_unsafe = \"warn\"");
    let (r, log) = apply(&k, Ok(()), why, false);
    assert!(matches!(r.unwrap(), Some(KexecOutcome::Jumped { .. })));
    assert_eq!(log.len(), 3);
}

#[test]
fn dry_run_loads_and_unloads_and_changes_nothing() {
    let k = device("require");
    let (r, log) = apply(&k, Ok(()), Ok(()), true);
    match r.unwrap() {
        Some(KexecOutcome::DryRun {
            cmdline,
            kernel_bytes,
            initrd_bytes,
        }) => {
            assert!(cmdline
                .ends_with("updater.slot=B updater.trial=1 updater.kexec=1 updater.deadline=600"));
            assert_eq!(kernel_bytes, 300_000);
            assert_eq!(initrd_bytes, Some(120_000));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(log.len(), 2);
    assert!(log[0].contains("trial_recorded=false"));
    assert_eq!(log[1], "unload");
    assert_eq!(k.status()["groups"]["B"]["status"], "installed");
}

/// A kernel or initrd changed on disk after the install, or a manifest whose
/// command line was edited, is refused before anything is loaded or recorded.
#[test]
fn tampered_kernel_initrd_or_cmdline_is_refused_before_loading() {
    for what in ["kernel", "initrd", "cmdline"] {
        let k = device("require");
        // Install only.
        let url = k.server.url("manifest.json");
        let settings = settings(&k);
        let mut session = Session::open(&settings, Clock::system()).unwrap();
        let installed = updater::install::install(
            &mut session,
            &url,
            None,
            &mut Progress::Quiet,
            &updater::install::Options::default(),
        )
        .unwrap();
        let mut manifest = installed.manifest.clone();
        match what {
            "kernel" | "initrd" => {
                let ext = if what == "kernel" {
                    "vmlinuz"
                } else {
                    "initrd"
                };
                let p = k.env.p(&format!("dev/slots/B.{ext}"));
                let mut b = std::fs::read(&p).unwrap();
                b[1000] ^= 1;
                std::fs::write(&p, b).unwrap();
            }
            _ => {
                let mut env: Value = serde_json::from_slice(&manifest).unwrap();
                let payload =
                    updater_format::envelope::decode_b64(env["payload"].as_str().unwrap()).unwrap();
                let forged = String::from_utf8(payload)
                    .unwrap()
                    .replace("console=ttyS0 quiet", "console=ttyS0 init=/bin/sh");
                use base64::Engine;
                env["payload"] =
                    Value::String(base64::engine::general_purpose::STANDARD.encode(forged));
                manifest = serde_json::to_vec(&env).unwrap();
            }
        }
        let log = RefCell::new(Vec::new());
        let loader = Recorder {
            log: &log,
            state_path: k.env.p("dev/state/state.json"),
            load_result: Ok(()),
        };
        let mut wd = FakeWatchdog {
            log: &log,
            survives: Ok(()),
        };
        let rb = FakeRebooter { log: &log };
        let machine = Machine {
            rebooter: &rb,
            loader: &loader,
            watchdog: Some(&mut wd),
        };
        let e = updater::trial::start(
            &mut session,
            "B",
            &manifest,
            How::Kexec { dry_run: false },
            machine,
            &mut Progress::Quiet,
        )
        .unwrap_err();
        assert_eq!(classify(&e), ExitCode::Security, "{what}: {e:#}");
        assert!(
            log.borrow().is_empty(),
            "{what}: something was loaded: {:?}",
            log.borrow()
        );
        drop(session);
        assert!(
            k.status()["trial"].is_null(),
            "{what}: a trial was recorded"
        );
    }
}

/// A device whose slots hold a Unified Kernel Image (class `uki`), served
/// as a release made with `release create --uki` from `uki` (bytes).
fn uki_device(uki: &[u8]) -> Device {
    let dev = Builder::new()
        .release_args(&[])
        .set("kexec", "policy", "\"require\"")
        .lines(
            "kexec",
            "watchdog = \"/dev/watchdog\"\nwatchdog_timeout_secs = 45\nsys_root = \"{dev}/sys\"",
        )
        .set("slots.A.targets", "uki", "\"{dev}/slots/A.efi\"")
        .set("slots.B", "root_device", "\"/dev/vda3\"")
        .set("slots.B.targets", "uki", "\"{dev}/slots/B.efi\"")
        .build();
    std::fs::create_dir_all(dev.env.p("dev/sys")).unwrap();
    std::fs::write(dev.env.p("uki.efi"), uki).unwrap();
    let (u, kk) = (dev.env.s("uki.efi"), dev.env.s("keys/k1.key"));
    dev.publish_with("rootfs.img", "1.2.0", &["--uki", &u, "--kernel-key", &kk]);
    dev
}

fn uki_bytes(cmdline: &[u8]) -> Vec<u8> {
    crate::device::uki_image(cmdline, &kernel(), &initrd())
}

/// A UKI release is unpacked before kexec: `.linux` and `.initrd` go to
/// kexec_file_load as sealed memfds of their own (mainline Linux cannot
/// load a UKI), `.cmdline` is the release's signed command line, and the
/// kernel-role signature covers `.linux`.
#[test]
fn a_uki_is_unpacked_checked_and_its_sections_kexecd() {
    let k = uki_device(&uki_bytes(b"console=ttyS0 quiet\n\0"));
    let (_, m) = k.env.read("rel/manifest.json");
    let u = m.uki.as_ref().expect("a uki entry");
    assert_eq!(u.linux.sha256, Sha256Digest::of(&kernel()));
    assert_eq!(u.linux.size, kernel().len() as u64);
    assert_eq!(m.cmdline.as_deref(), Some("console=ttyS0 quiet"));
    assert!(m.kernel.is_none() && m.initrd.is_none());
    let (r, log) = apply(&k, Ok(()), Ok(()), false);
    r.unwrap();
    let kd = Sha256Digest::of(&kernel()).hex();
    let id = Sha256Digest::of(&initrd()).hex();
    assert_eq!(
        log[0],
        format!("load kernel={kd} initrd={id} cmdline=console=ttyS0 quiet root=/dev/vda3 updater.slot=B updater.trial=1 updater.kexec=1 updater.deadline=600 trial_recorded=true")
    );
}

/// A UKI on the slot that is not the one installed (another kernel inside,
/// written over the slot after the install) is refused before anything is
/// loaded: the sealed bytes are checked against the manifest's pin first.
#[test]
fn a_uki_that_is_not_the_installed_one_is_refused_before_the_load() {
    let k = uki_device(&uki_bytes(b"console=ttyS0 quiet"));
    let (r, log) = apply(&k, Ok(()), Ok(()), true);
    r.unwrap();
    assert!(log[0].starts_with("load "), "{log:?}");
    // The same size, another kernel inside.
    let evil = updater_format::pe::build(&[
        (".osrel", b"ID=updater\n"),
        (".cmdline", b"console=ttyS0 quiet"),
        (".linux", &pattern(300_000, 99)),
        (".initrd", &initrd()),
    ]);
    assert_eq!(evil.len(), std::fs::read(k.env.p("uki.efi")).unwrap().len());
    std::fs::write(k.env.p("dev/slots/B.efi"), &evil).unwrap();
    let settings = settings(&k);
    let manifest = std::fs::read(k.env.p("dev/state/releases/B.manifest.json")).unwrap();
    let ring = updater_format::keys::Keyring::load(&k.env.p("ring")).unwrap();
    let e = updater::trial::kexec::prepare(
        &manifest,
        &ring,
        &*updater::slots::open(&settings).unwrap(),
        "B",
        Duration::from_secs(600),
    )
    .unwrap_err();
    assert_eq!(classify(&e), ExitCode::Security, "{e:#}");
    assert!(format!("{e:#}").contains("uki of slot B"), "{e:#}");
}

/// Under enforced kexec signatures, a kernel image with no Authenticode
/// signature is refused before the trial is recorded (the kernel would
/// refuse it with ENODATA at the load, after it): nothing to undo. One that
/// carries a signature goes on to the load, where the kernel decides whether
/// it trusts the key.
#[test]
fn an_unsigned_kernel_is_refused_before_the_trial_when_signatures_are_enforced() {
    // The UKI's kernel a PE image, first without a certificate table.
    let unsigned = updater_format::pe::build(&[(".text", &kernel())]);
    let mut signed = unsigned.clone();
    let dir4 = 0x40 + 24 + 112 + 4 * 8;
    signed[dir4..dir4 + 4].copy_from_slice(&0x400u32.to_le_bytes());
    signed[dir4 + 4..dir4 + 8].copy_from_slice(&0x100u32.to_le_bytes());
    for (linux, refused) in [(&unsigned, true), (&signed, false)] {
        let uki = updater_format::pe::build(&[
            (".cmdline", b"console=ttyS0 quiet"),
            (".linux", linux),
            (".initrd", &initrd()),
        ]);
        let k = uki_device(&uki);
        let sys = k.env.p("dev/sys/kernel/security");
        std::fs::create_dir_all(&sys).unwrap();
        std::fs::write(sys.join("lockdown"), "none [integrity] confidentiality\n").unwrap();
        let (r, log) = apply(&k, Ok(()), Ok(()), false);
        if refused {
            let e = r.unwrap_err();
            assert_eq!(classify(&e), ExitCode::Boot, "{e:#}");
            assert!(
                format!("{e:#}").contains("no Authenticode signature"),
                "{e:#}"
            );
            assert!(log.is_empty(), "loaded or armed: {log:?}");
            let st = k.status();
            assert_eq!(st["groups"]["B"]["status"], "installed", "{st}");
            assert!(st["trial"].is_null(), "{st}");
        } else {
            r.unwrap();
            assert!(log[0].starts_with("load "), "{log:?}");
        }
    }
}
