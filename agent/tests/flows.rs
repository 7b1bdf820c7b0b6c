//! The seams, proven by a second slot backend: a test double that keeps its
//! slot groups as files in a folder of its own and knows which group is
//! booted from a file there (not from the kernel command line), registered
//! by handing it to the session. The whole trial cycle runs through the
//! flows with it — apply, a reboot trial, health and commit, a failed trial
//! marked bad, rollback, mark-bad — with the machine (restarts, kexec)
//! injected as doubles too. Nothing outside this file knows the double.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use anyhow::Result;
use updater::clock::Clock;
use updater::events::Recorded;
use updater::flow::{self, Applied, HealthOutcome, Request};
use updater::session::Session;
use updater::slots::{
    FileReader, FileSink, ImageTargets, Installer, SlotBackend, SlotReader, SlotSink,
};
use updater::trial::kexec::loader::KexecLoader;
use updater::trial::reboot::{Rebooter, Restart};
use updater::trial::{How, Machine};
use updater_testkit::{pattern, Server, TestEnv};

/// The double: groups A and B, each a file `GROUP.CLASS` in `dir`, and
/// `dir/booted` naming the booted group.
struct FolderSlots {
    dir: PathBuf,
}

impl FolderSlots {
    fn path(&self, group: &str, class: &str) -> PathBuf {
        self.dir.join(format!("{group}.{class}"))
    }
}

impl SlotBackend for FolderSlots {
    fn name(&self) -> &'static str {
        "folder"
    }
    fn groups(&self) -> Vec<String> {
        vec!["A".into(), "B".into()]
    }
    fn booted(&self, _cmdline: &str) -> Result<String> {
        Ok(std::fs::read_to_string(self.dir.join("booted"))?
            .trim()
            .to_string())
    }
    fn install_target(&self, booted: &str) -> Result<String> {
        Ok(if booted == "A" { "B" } else { "A" }.to_string())
    }
    fn installer(&self) -> Installer<'_> {
        Installer::Images(self)
    }
    fn kernel(&self, group: &str) -> Option<PathBuf> {
        Some(self.path(group, "kernel"))
    }
    fn initrd(&self, _group: &str) -> Option<PathBuf> {
        None
    }
    fn boot_args(&self, group: &str) -> Vec<String> {
        vec![format!("folder.group={group}")]
    }
}

impl ImageTargets for FolderSlots {
    fn has_target(&self, group: &str, class: &str) -> bool {
        matches!(class, "rootfs" | "kernel") && self.groups().iter().any(|g| g == group)
    }
    fn open_sink(&self, group: &str, class: &str, size: u64) -> Result<Box<dyn SlotSink>> {
        Ok(Box::new(FileSink::open(&self.path(group, class), size)?))
    }
    fn open_reader(&self, group: &str, class: &str) -> Result<Option<Box<dyn SlotReader>>> {
        let p = self.path(group, class);
        if !p.exists() {
            return Ok(None);
        }
        Ok(Some(Box::new(FileReader::open(&p)?)))
    }
}

/// Restarts that are only counted.
#[derive(Default)]
struct Restarts(RefCell<Vec<Restart>>);

impl Rebooter for Restarts {
    fn restart(&self, how: Restart) -> Result<()> {
        self.0.borrow_mut().push(how);
        Ok(())
    }
}

/// A kexec loader that refuses (no kexec on a build host), keeping the
/// command lines it was asked to load.
#[derive(Default)]
struct NoKexec(RefCell<Vec<String>>);

impl KexecLoader for NoKexec {
    fn load(
        &self,
        _: std::os::fd::BorrowedFd<'_>,
        _: Option<std::os::fd::BorrowedFd<'_>>,
        cmdline: &std::ffi::CString,
    ) -> Result<(), nix::errno::Errno> {
        self.0
            .borrow_mut()
            .push(cmdline.to_string_lossy().into_owned());
        Err(nix::errno::Errno::EPERM)
    }
    fn unload(&self) -> Result<(), nix::errno::Errno> {
        Ok(())
    }
}

/// A device whose slots are the double's, with the file boot env, a health
/// folder and a release server.
struct Rig {
    env: TestEnv,
    server: Server,
    settings: updater::config::Settings,
    restarts: Restarts,
    loader: NoKexec,
}

impl Rig {
    fn new() -> Rig {
        let env = TestEnv::new();
        std::fs::write(env.p("rootfs.img"), pattern(1_000_000, 5)).unwrap();
        env.release("rel", &["--chunk-size", "65536"]).assert_ok();
        let d = env.s("dev");
        std::fs::create_dir_all(env.p("dev/folder")).unwrap();
        std::fs::create_dir_all(env.p("dev/health.d")).unwrap();
        std::fs::write(env.p("dev/folder/A.rootfs"), pattern(1_000_000, 3)).unwrap();
        std::fs::write(env.p("dev/folder/booted"), "A\n").unwrap();
        std::fs::write(env.p("dev/cmdline"), "quiet\n").unwrap();
        std::fs::write(env.p("dev/boot.env"), "ORDER=A B\nA_OK=1\nB_OK=0\nTRY=\n").unwrap();
        // The configuration's groups are never opened: the double is.
        let cfg = format!(
            "compatible = \"acme-gw\"\nstate_dir = \"{d}/state\"\nkeyring = \"{ring}\"\ncmdline_path = \"{d}/cmdline\"\n[bootloader]\nbackend = \"file\"\npath = \"{d}/boot.env\"\n[health]\ndir = \"{d}/health.d\"\n[kexec]\npolicy = \"prefer\"\n[slots.A.targets]\nrootfs = \"{d}/unused-A\"\n[slots.B.targets]\nrootfs = \"{d}/unused-B\"\n",
            ring = env.s("ring")
        );
        std::fs::write(env.p("dev/config.toml"), cfg).unwrap();
        let settings = updater::config::load(Some(&env.p("dev/config.toml"))).unwrap();
        let server = Server::start(&env.p("rel"), "127.0.0.1:0").unwrap();
        Rig {
            env,
            server,
            settings,
            restarts: Restarts::default(),
            loader: NoKexec::default(),
        }
    }

    /// A session with the double registered.
    fn session(&self) -> Session<'_> {
        let boot = updater::bootloader::open(&self.settings).unwrap();
        let slots = Box::new(FolderSlots {
            dir: self.env.p("dev/folder"),
        });
        Session::open_with_backends(&self.settings, Clock::system(), boot, slots).unwrap()
    }

    fn machine(&self) -> Machine<'_> {
        Machine {
            rebooter: &self.restarts,
            loader: &self.loader,
            watchdog: None,
        }
    }

    fn apply(&self, trial: Option<How>) -> Result<Applied> {
        let url = self.server.url("manifest.json");
        flow::apply(
            &mut self.session(),
            &Request {
                source: &url,
                trial,
                ..Default::default()
            },
            self.machine(),
            &mut Recorded::default(),
        )
    }

    /// The file env's boot script: a one-shot trial cleared, then booted;
    /// else the first bootable group of ORDER. The double learns which.
    fn reset(&self) -> String {
        let path = self.env.p("dev/boot.env");
        let text = std::fs::read_to_string(&path).unwrap();
        let var = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")))
                .unwrap_or("")
                .to_string()
        };
        let group = match var("TRY") {
            t if !t.is_empty() => {
                std::fs::write(&path, text.replace(&format!("TRY={t}"), "TRY=")).unwrap();
                t
            }
            _ => var("ORDER")
                .split_whitespace()
                .find(|g| var(&format!("{g}_OK")) == "1")
                .unwrap_or("A")
                .to_string(),
        };
        std::fs::write(self.env.p("dev/folder/booted"), format!("{group}\n")).unwrap();
        group
    }

    /// Status, asking the double.
    fn status(&self) -> flow::Status {
        let boot = updater::bootloader::open(&self.settings).unwrap();
        let slots = FolderSlots {
            dir: self.env.p("dev/folder"),
        };
        flow::status::status_with(&self.settings, &slots, Some(boot.as_ref())).unwrap()
    }

    fn health(&self) -> HealthOutcome {
        flow::health(self.session(), &self.restarts).unwrap()
    }

    fn env(&self) -> String {
        std::fs::read_to_string(self.env.p("dev/boot.env")).unwrap()
    }

    fn check(&self, body: &str) {
        use std::os::unix::fs::PermissionsExt;
        let p = self.env.p("dev/health.d/10-app");
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn publish(&self, seed: u32, version: &str) {
        std::fs::remove_dir_all(self.env.p("rel")).unwrap();
        std::fs::write(self.env.p("rootfs.img"), pattern(1_000_000, seed)).unwrap();
        let key = self.env.s("keys/m1.key");
        self.env
            .release_by(
                "rel",
                "rootfs.img",
                ["--key", &key],
                version,
                "5",
                &["--chunk-size", "65536"],
            )
            .assert_ok();
    }
}

fn file(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap()
}

#[test]
fn the_whole_trial_cycle_runs_through_the_flows_on_a_second_slot_backend() {
    let r = Rig::new();
    r.check("exit 0");
    let a0 = file(&r.env.p("dev/folder/A.rootfs"));
    // apply with a reboot trial: installed into the double's B, armed.
    let Applied::Installed {
        installed, trial, ..
    } = r.apply(Some(How::Reboot)).unwrap()
    else {
        panic!("a fresh apply finishes no trial start")
    };
    assert_eq!((installed.group.as_str(), trial), ("B", Some(How::Reboot)));
    assert_eq!(
        file(&r.env.p("dev/folder/B.rootfs")),
        file(&r.env.p("rootfs.img"))
    );
    assert_eq!(
        file(&r.env.p("dev/folder/A.rootfs")),
        a0,
        "the booted group was written"
    );
    assert_eq!(*r.restarts.0.borrow(), [Restart::Reboot]);
    assert!(r.env().contains("TRY=B"), "{}", r.env());
    // The trial boots B; health commits it.
    assert_eq!(r.reset(), "B");
    assert!(matches!(r.health(), HealthOutcome::Committed { ref group, .. } if group == "B"));
    assert!(r.env().contains("ORDER=B A"), "{}", r.env());
    let st = r.status();
    // Status asks the double, not the configuration, which group is booted.
    assert_eq!(st.booted.as_deref(), Some("B"));
    assert_eq!(st.groups["B"].status, "good");
    // Release 1.3.0 fails its check in A: marked bad, and a restart back.
    r.publish(9, "1.3.0");
    r.apply(Some(How::Reboot)).unwrap();
    assert_eq!(r.reset(), "A");
    r.check("echo 'the app did not start'; exit 1");
    match r.health() {
        HealthOutcome::Failed { group, reason, .. } => {
            assert_eq!(group, "A");
            assert!(reason.contains("the app did not start"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(r.restarts.0.borrow().len(), 3);
    assert_eq!(r.reset(), "B");
    assert!(matches!(r.health(), HealthOutcome::NothingPending { .. }));
    // Release 1.4.0 passes in A and is committed; then the operator rolls
    // back to B, and A is bad.
    r.check("exit 0");
    r.publish(11, "1.4.0");
    r.apply(Some(How::Reboot)).unwrap();
    assert_eq!(r.reset(), "A");
    assert!(matches!(r.health(), HealthOutcome::Committed { ref group, .. } if group == "A"));
    assert_eq!(flow::rollback(&mut r.session()).unwrap(), "B");
    let st = r.status();
    assert_eq!(st.groups["A"].status, "bad");
    assert_eq!(st.primary.as_deref(), Some("B"));
    // mark-bad of the default with nothing else good is refused; of A, it
    // is already bad, and stays so.
    assert_eq!(r.reset(), "B");
    let e = flow::mark_bad(&mut r.session(), Some("B")).unwrap_err();
    assert!(format!("{e:#}").contains("no other slot is good"), "{e:#}");
    assert_eq!(flow::mark_bad(&mut r.session(), Some("A")).unwrap(), "A");
    // An install-only apply, then mark-good is refused for an installed
    // group that is not booted; activate boots it as a trial.
    r.publish(13, "1.5.0");
    let Applied::Installed { trial, .. } = r.apply(None).unwrap() else {
        panic!()
    };
    assert_eq!(trial, None);
    let a = flow::activate(
        &mut r.session(),
        None,
        How::Reboot,
        r.machine(),
        &mut Recorded::default(),
    )
    .unwrap();
    assert_eq!((a.group.as_str(), a.version.as_str()), ("A", "1.5.0"));
    assert!(r.env().contains("TRY=A"), "{}", r.env());
}

#[test]
fn a_kexec_trial_asks_the_backend_for_the_kernel_and_its_boot_arguments() {
    // A release with a kernel: the double keeps it as `B.kernel`, and the
    // kexec command line carries the double's boot argument, not `root=`.
    let r = Rig::new();
    r.check("exit 0");
    std::fs::remove_dir_all(r.env.p("rel")).unwrap();
    r.env.release_with_kernel("rel");
    let applied = r.apply(Some(How::Kexec { dry_run: false })).unwrap();
    let Applied::Installed { kexec, .. } = applied else {
        panic!()
    };
    // The loader refused (a build host), and `prefer` fell back to a
    // reboot trial.
    assert!(
        matches!(kexec, Some(updater::trial::KexecOutcome::FellBack { .. })),
        "{kexec:?}"
    );
    assert_eq!(
        file(&r.env.p("dev/folder/B.kernel")),
        file(&r.env.p("vmlinuz"))
    );
    let lines = r.loader.0.borrow();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("console=ttyS0 folder.group=B updater.slot=B updater.trial=1"),
        "{lines:?}"
    );
    assert!(!lines[0].contains("root="), "{lines:?}");
}
