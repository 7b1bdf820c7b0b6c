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
use crate::install::Device;
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

struct KexecDevice {
    dev: Device,
    kernel: Vec<u8>,
    initrd: Vec<u8>,
}

impl KexecDevice {
    fn new(policy: &str) -> KexecDevice {
        let dev = Device::new();
        let kernel = pattern(300_000, 21);
        let initrd = pattern(120_000, 22);
        std::fs::write(dev.env.p("vmlinuz"), &kernel).unwrap();
        std::fs::write(dev.env.p("initrd.img"), &initrd).unwrap();
        // A release with a kernel, an initrd and a command line.
        std::fs::remove_dir_all(dev.env.p("rel")).unwrap();
        std::fs::create_dir_all(dev.env.p("rel")).unwrap();
        let (k, i, kk) = (
            dev.env.s("vmlinuz"),
            dev.env.s("initrd.img"),
            dev.env.s("keys/k1.key"),
        );
        dev.env
            .release(
                "rel",
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
            )
            .assert_ok();
        let d = dev.env.s("dev");
        let cfg = std::fs::read_to_string(dev.env.p("dev/config.toml")).unwrap();
        let cfg = cfg
            .replace(
                "[slots.B.targets]\n",
                &format!("[slots.B]\nroot_device = \"/dev/vda3\"\n[slots.B.targets]\nkernel = \"{d}/slots/B.vmlinuz\"\ninitrd = \"{d}/slots/B.initrd\"\n"),
            )
            .replace(
                "[slots.A.targets]\n",
                &format!("[slots.A.targets]\nkernel = \"{d}/slots/A.vmlinuz\"\ninitrd = \"{d}/slots/A.initrd\"\n"),
            );
        // A sysfs of the test's own: what the kernel reports about lockdown
        // and kexec must not come from the build host.
        std::fs::create_dir_all(dev.env.p("dev/sys")).unwrap();
        let cfg = format!("{cfg}\n[kexec]\npolicy = \"{policy}\"\nwatchdog = \"/dev/watchdog\"\nwatchdog_timeout_secs = 45\nsys_root = \"{d}/sys\"\n");
        std::fs::write(dev.env.p("dev/config.toml"), cfg).unwrap();
        KexecDevice {
            dev,
            kernel,
            initrd,
        }
    }

    fn settings(&self) -> updater::config::Settings {
        updater::config::load(Some(&self.dev.env.p("dev/config.toml"))).unwrap()
    }

    /// `apply URL --kexec` with the doubles: the install, then the trial
    /// start in the same session. Returns what the trial start did (the
    /// install must succeed) and the log.
    fn apply(
        &self,
        load: Result<(), Errno>,
        survives: Result<(), String>,
        dry_run: bool,
    ) -> (anyhow::Result<Option<KexecOutcome>>, Vec<String>) {
        let log = RefCell::new(Vec::new());
        let settings = self.settings();
        let loader = Recorder {
            log: &log,
            state_path: self.dev.env.p("dev/state/state.json"),
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
        let url = self.dev.server.url("manifest.json");
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

    fn env(&self) -> String {
        std::fs::read_to_string(self.dev.env.p("dev/boot.env")).unwrap()
    }
}

#[test]
fn verify_record_load_arm_jump_in_that_order() {
    let k = KexecDevice::new("require");
    let (r, log) = k.apply(Ok(()), Ok(()), false);
    let out = r.unwrap();
    let kd = Sha256Digest::of(&k.kernel).hex();
    let id = Sha256Digest::of(&k.initrd).hex();
    assert_eq!(
        log,
        vec![
            format!("load kernel={kd} initrd={id} cmdline=console=ttyS0 quiet root=/dev/vda3 updater.slot=B updater.trial=1 updater.kexec=1 updater.deadline=600 trial_recorded=true"),
            "arm 45s".to_string(),
            "restart kexec".to_string(),
        ]
    );
    assert!(matches!(out, Some(KexecOutcome::Jumped { .. })));
    let st = k.dev.status();
    assert_eq!(st["groups"]["B"]["status"], "trial");
    assert_eq!(st["trial"]["group"], "B");
    // The bootloader is untouched: A stays primary, no one-shot, B unbootable.
    let env = k.env();
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
        let k = KexecDevice::new("require");
        let (r, log) = k.apply(Err(errno), Ok(()), false);
        let e = r.unwrap_err();
        assert_eq!(classify(&e), ExitCode::Boot, "{errno}");
        assert!(format!("{e:#}").contains(word), "{errno}: {e:#}");
        // Loaded once, nothing armed, no restart; the trial is not left armed.
        assert_eq!(log.len(), 1, "{log:?}");
        let st = k.dev.status();
        assert!(st["trial"].is_null(), "{st}");
        assert_eq!(st["groups"]["B"]["status"], "installed");
        assert!(k.env().contains("TRY=\n"));
    }
}

#[test]
fn prefer_falls_back_to_a_reboot_trial_and_says_so() {
    let k = KexecDevice::new("prefer");
    let (r, log) = k.apply(Err(Errno::EKEYREJECTED), Ok(()), false);
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
    assert!(k.env().contains("TRY=B"), "{}", k.env());
    assert_eq!(k.dev.status()["trial"]["group"], "B");
}

/// What the running kernel says about itself (sysfs, procfs) is reported by
/// `status --json` and names the cause of a refusal.
#[test]
fn a_locked_down_kernel_is_reported_and_named_in_the_refusal() {
    let k = KexecDevice::new("prefer");
    let sys = k.dev.env.p("dev/sys");
    std::fs::create_dir_all(sys.join("kernel/security")).unwrap();
    std::fs::write(
        sys.join("kernel/security/lockdown"),
        "none [integrity] confidentiality\n",
    )
    .unwrap();
    std::fs::write(sys.join("kernel/kexec_loaded"), "0\n").unwrap();
    let st = k.dev.status();
    assert_eq!(st["kernel"]["lockdown"], "integrity", "{st}");
    assert_eq!(st["kernel"]["kexec_sig"], "enforced", "{st}");
    assert_eq!(st["kernel"]["kexec_loaded"], false, "{st}");
    let human = k.dev.run(&["status"]);
    human.assert_ok();
    assert!(
        human
            .stdout
            .contains("kernel: lockdown integrity, kexec signature enforced"),
        "{}",
        human.stdout
    );

    let (r, _) = k.apply(Err(Errno::EPERM), Ok(()), false);
    match r.unwrap() {
        Some(KexecOutcome::FellBack { reason }) => assert!(
            reason.contains("enforces kexec signatures") && reason.contains("locked down"),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }

    // kexec switched off until the next boot is named as that.
    let k2 = KexecDevice::new("require");
    let proc2 = k2.dev.env.p("dev/proc/sys/kernel");
    std::fs::create_dir_all(&proc2).unwrap();
    std::fs::write(proc2.join("kexec_load_disabled"), "1\n").unwrap();
    let (r, _) = k2.apply(Err(Errno::EPERM), Ok(()), false);
    let e = r.unwrap_err();
    assert_eq!(classify(&e), ExitCode::Boot);
    assert!(
        format!("{e:#}").contains("kexec_load_disabled = 1"),
        "{e:#}"
    );
}

#[test]
fn policy_never_reboots_without_loading() {
    let k = KexecDevice::new("never");
    let (r, log) = k.apply(Ok(()), Ok(()), false);
    assert!(matches!(r.unwrap(), Some(KexecOutcome::FellBack { .. })));
    assert_eq!(log, vec!["restart reboot"]);
}

#[test]
fn a_watchdog_that_stops_across_kexec_is_refused_or_warned() {
    let why = Err("the watchdog stops across a kexec".to_string());
    let k = KexecDevice::new("require");
    let (r, log) = k.apply(Ok(()), why.clone(), false);
    let e = r.unwrap_err();
    assert_eq!(classify(&e), ExitCode::Boot);
    assert!(log.is_empty(), "nothing may be loaded: {log:?}");
    assert!(k.dev.status()["trial"].is_null());

    let k = KexecDevice::new("prefer");
    let (r, log) = k.apply(Ok(()), why.clone(), false);
    assert!(matches!(r.unwrap(), Some(KexecOutcome::FellBack { .. })));
    assert_eq!(log, vec!["restart reboot"]);

    let k = KexecDevice::new("require");
    let cfg = std::fs::read_to_string(k.dev.env.p("dev/config.toml")).unwrap();
    std::fs::write(
        k.dev.env.p("dev/config.toml"),
        cfg.replace(
            "watchdog_timeout_secs = 45",
            "watchdog_timeout_secs = 45\nwatchdog_unsafe = \"warn\"",
        ),
    )
    .unwrap();
    let (r, log) = k.apply(Ok(()), why, false);
    assert!(matches!(r.unwrap(), Some(KexecOutcome::Jumped { .. })));
    assert_eq!(log.len(), 3);
}

#[test]
fn dry_run_loads_and_unloads_and_changes_nothing() {
    let k = KexecDevice::new("require");
    let (r, log) = k.apply(Ok(()), Ok(()), true);
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
    assert_eq!(k.dev.status()["groups"]["B"]["status"], "installed");
}

/// A kernel or initrd changed on disk after the install, or a manifest whose
/// command line was edited, is refused before anything is loaded or recorded.
#[test]
fn tampered_kernel_initrd_or_cmdline_is_refused_before_loading() {
    for what in ["kernel", "initrd", "cmdline"] {
        let k = KexecDevice::new("require");
        // Install only.
        let url = k.dev.server.url("manifest.json");
        let settings = k.settings();
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
                let p = k.dev.env.p(&format!("dev/slots/B.{ext}"));
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
            state_path: k.dev.env.p("dev/state/state.json"),
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
            k.dev.status()["trial"].is_null(),
            "{what}: a trial was recorded"
        );
    }
}
