//! One device for the CLI tests, built as each test needs it: slots as
#![allow(dead_code)]
//! files, a boot env of the chosen backend (the agent's file env, or a real
//! GRUB environment block made by grub-editenv), a kernel command line, a
//! state folder, a release served by the loopback test server, and,
//! optionally, a reboot command that only records the request, health
//! checks, and a fixed clock. `reset` plays the backend's boot script, so a
//! test can power-cycle the device as often as it likes.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;
use serde_json::Value;
use updater_format::Sha256Digest;
use updater_testkit::Server;

/// The boot env backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Boot {
    /// The agent's own env file (`ORDER`, `A_OK`, `B_OK`, `TRY`).
    File,
    /// A GRUB environment block (`ORDER`, `A_OK`, `B_OK`, `A_TRY`, `B_TRY`).
    Grub,
}

/// The fixed clock's time, and the release's `created` a day before.
pub const NOW: &str = "2026-03-02T00:00:00Z";
/// When the fixed-clock device's releases were made.
pub const CREATED: &str = "2026-03-01T00:00:00Z";

/// How big the test image is: ten chunks of 256 KiB, and a bit.
pub const ROOTFS_LEN: usize = 2_500_000;

/// What to build.
pub struct Builder {
    boot: Boot,
    fixed_clock: bool,
    trial: bool,
    channel: bool,
    checkpoint_ms: u64,
    extra: String,
}

impl Builder {
    /// A file-env device with the wall clock, no reboot command, no checks.
    pub fn new() -> Builder {
        Builder {
            boot: Boot::File,
            fixed_clock: false,
            trial: false,
            channel: false,
            checkpoint_ms: 50,
            extra: String::new(),
        }
    }

    /// The boot env backend.
    pub fn boot(mut self, boot: Boot) -> Builder {
        self.boot = boot;
        self
    }

    /// Every command runs at [`NOW`], and the release is made at
    /// [`CREATED`]: runs that do the same leave byte-identical states.
    pub fn fixed_clock(mut self) -> Builder {
        self.fixed_clock = true;
        self
    }

    /// A recorded reboot command and a passing health check (`10-ok`).
    pub fn trials(mut self) -> Builder {
        self.trial = true;
        self
    }

    /// A channel key (c1) in the keyring, a device id, and the channel
    /// `stable.json` (naming the release, issued with it) that
    /// `daemon.channel` follows.
    pub fn channel(mut self) -> Builder {
        self.channel = true;
        self
    }

    /// Checkpoints only every `ms` milliseconds (a long one makes the
    /// number of durable writes of an install the same in every run).
    pub fn checkpoint_ms(mut self, ms: u64) -> Builder {
        self.checkpoint_ms = ms;
        self
    }

    /// More configuration, appended as written.
    pub fn config(mut self, text: &str) -> Builder {
        self.extra.push_str(text);
        self.extra.push('\n');
        self
    }

    /// Make it.
    pub fn build(self) -> Dev {
        let env = TestEnv::new();
        std::fs::write(env.p("rootfs.img"), pattern(ROOTFS_LEN, 11)).unwrap();
        let dev = Dev {
            server: Server::start(&env.p("rel"), "127.0.0.1:0").unwrap(),
            env,
            a_hash: Sha256Digest::of(&pattern(ROOTFS_LEN, 3)),
            boot: self.boot,
            now: self.fixed_clock.then(|| NOW.to_string()),
        };
        if self.channel {
            dev.env.keygen("c1");
            dev.env.reinit_ring(&[
                ("--manifest-key", "m1"),
                ("--kernel-key", "k1"),
                ("--channel-key", "c1"),
            ]);
        }
        dev.publish("rootfs.img", "1.2.0");
        if self.channel {
            dev.publish_channel(&["--release", "acme-gw=manifest.json"])
                .assert_ok();
        }
        let e = &dev.env;
        std::fs::create_dir_all(e.p("dev/slots")).unwrap();
        std::fs::write(e.p("dev/slots/A.rootfs"), pattern(ROOTFS_LEN, 3)).unwrap();
        std::fs::write(e.p("dev/cmdline"), "console=ttyS0 updater.slot=A quiet\n").unwrap();
        let d = e.s("dev");
        let bootloader = match self.boot {
            Boot::File => {
                std::fs::write(e.p("dev/boot.env"), "ORDER=A B\nA_OK=1\nB_OK=0\nTRY=\n").unwrap();
                format!("backend = \"file\"\npath = \"{d}/boot.env\"")
            }
            Boot::Grub => {
                let g = e.p("dev/grubenv");
                grub_editenv(&g, &["create"]);
                grub_editenv(
                    &g,
                    &["set", "ORDER=A B", "A_OK=1", "B_OK=0", "A_TRY=0", "B_TRY=0"],
                );
                format!("backend = \"grub\"\npath = \"{d}/grubenv\"")
            }
        };
        let mut config = format!(
            r#"compatible = "acme-gw"
state_dir = "{d}/state"
keyring = "{ring}"
cmdline_path = "{d}/cmdline"
[bootloader]
{bootloader}
[http]
connect_timeout_secs = 2
stall_timeout_secs = 2
retries = 4
backoff_initial_ms = 20
backoff_max_ms = 200
[install]
checkpoint_interval_ms = {cp}
[slots.A.targets]
rootfs = "{d}/slots/A.rootfs"
[slots.B.targets]
rootfs = "{d}/slots/B.rootfs"
[kexec]
policy = "never"
"#,
            ring = e.s("ring"),
            cp = self.checkpoint_ms,
        );
        if self.trial {
            config.push_str(&format!(
                "[trial]\nreboot_command = [\"sh\", \"-c\", \"echo \\\"$0\\\" >> {d}/reboots\"]\n[health]\ndir = \"{d}/health.d\"\ncheck_timeout_secs = 5\n"
            ));
            std::fs::create_dir_all(e.p("dev/health.d")).unwrap();
        }
        if self.channel {
            config.push_str(&format!(
                "[device]\nid = \"device-0001\"\n[daemon]\nchannel = \"{}\"\n",
                dev.server.url("stable.json")
            ));
        }
        config.push_str(&self.extra);
        std::fs::write(e.p("dev/config.toml"), config).unwrap();
        if self.trial {
            dev.check("10-ok", "exit 0");
        }
        dev
    }
}

/// A built device.
pub struct Dev {
    /// The test workspace (keys, keyring, releases, `dev/` the device).
    pub env: TestEnv,
    /// The release server, serving `rel/`.
    pub server: Server,
    /// What slot A held when the device was built.
    pub a_hash: Sha256Digest,
    boot: Boot,
    now: Option<String>,
}

impl Dev {
    /// The configuration file.
    pub fn config(&self) -> String {
        self.env.s("dev/config.toml")
    }

    /// Publish `image` as release `version` (security version 5, signed by
    /// m1) in `rel/`, replacing what was there.
    pub fn publish(&self, image: &str, version: &str) {
        // The root versions and the channel stay beside the new release.
        let kept: Vec<(std::ffi::OsString, Vec<u8>)> = std::fs::read_dir(self.env.p("rel"))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.ends_with(".root.json") || n == "stable.json"
            })
            .map(|e| (e.file_name(), std::fs::read(e.path()).unwrap()))
            .collect();
        let _ = std::fs::remove_dir_all(self.env.p("rel"));
        let key = self.env.s("keys/m1.key");
        let mut extra = vec!["--chunk-size", "262144"];
        if self.now.is_some() {
            extra.extend(["--created", CREATED]);
        }
        self.env
            .release_by("rel", image, ["--key", &key], version, "5", &extra)
            .assert_ok();
        for (name, bytes) in kept {
            std::fs::write(self.env.p("rel").join(name), bytes).unwrap();
        }
    }

    /// `updater-vendor channel publish --out rel/stable.json --key c1 ARGS`
    /// (issued at [`CREATED`] on a fixed clock).
    pub fn publish_channel(&self, args: &[&str]) -> Run {
        let out = self.env.s("rel/stable.json");
        let key = self.env.s("keys/c1.key");
        let mut all = vec!["channel", "publish", "--out", &out, "--key", &key];
        if self.now.is_some() {
            all.extend(["--issued", CREATED]);
        }
        all.extend_from_slice(args);
        vendor(&all)
    }

    /// The arguments every command gets: the configuration and the clock.
    fn base_args(&self) -> Vec<String> {
        let mut v = vec!["--config".to_string(), self.config()];
        if let Some(n) = &self.now {
            v.extend(["--now".to_string(), n.clone()]);
        }
        v
    }

    /// `updater ARGS`.
    pub fn run(&self, args: &[&str]) -> Run {
        let mut all = self.base_args();
        all.extend(args.iter().map(|s| s.to_string()));
        let a: Vec<&str> = all.iter().map(String::as_str).collect();
        updater(&a)
    }

    /// `updater ARGS` with extra environment variables; its exit code (None
    /// when it was killed or aborted).
    pub fn run_with(&self, vars: &[(&str, &str)], args: &[&str]) -> Option<i32> {
        let mut cmd = Command::new(bin());
        cmd.args(self.base_args())
            .args(args)
            .env_remove("UPDATER_LOG")
            .env(updater::trial::reboot::NO_REAL_RESTART_ENV, "1");
        for (k, v) in vars {
            cmd.env(k, v);
        }
        cmd.output().expect("running updater").status.code()
    }

    /// The release's URL.
    pub fn url(&self) -> String {
        self.server.url("manifest.json")
    }

    /// `updater status --json`, which must succeed.
    pub fn status(&self) -> Value {
        let r = self.run(&["status", "--json"]);
        r.assert_ok();
        serde_json::from_str(r.stdout.trim()).unwrap()
    }

    /// Write the health check `NAME` with `body` (a shell script).
    pub fn check(&self, name: &str, body: &str) {
        let p = self.env.p(&format!("dev/health.d/{name}"));
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// The reboots the agent asked for so far.
    pub fn reboots(&self) -> usize {
        std::fs::read_to_string(self.env.p("dev/reboots"))
            .unwrap_or_default()
            .lines()
            .count()
    }

    /// The boot env's variables.
    pub fn boot_env(&self) -> BTreeMap<String, String> {
        let text = match self.boot {
            Boot::File => std::fs::read_to_string(self.env.p("dev/boot.env")).unwrap(),
            Boot::Grub => grub_editenv(&self.env.p("dev/grubenv"), &["list"]),
        };
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The slot armed for a one-shot trial, if any.
    pub fn armed(&self) -> Option<String> {
        let env = self.boot_env();
        match self.boot {
            Boot::File => env.get("TRY").filter(|v| !v.is_empty()).cloned(),
            Boot::Grub => ["A", "B"]
                .into_iter()
                .find(|g| env.get(&format!("{g}_TRY")).map(String::as_str) == Some("1"))
                .map(str::to_string),
        }
    }

    /// What the backend's boot script does at a reset (packaging/grub/
    /// grub.cfg, and the file env's chooser): a one-shot trial is cleared,
    /// durably, before it is booted; else the first bootable slot of ORDER;
    /// else A. Writes the kernel command line of the slot booted and
    /// returns it.
    pub fn reset(&self) -> String {
        let env = self.boot_env();
        let (slot, trial) = match self.armed() {
            Some(g) => {
                match self.boot {
                    Boot::File => {
                        let mut e = env.clone();
                        e.insert("TRY".into(), String::new());
                        let text: String = e.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
                        std::fs::write(self.env.p("dev/boot.env"), text).unwrap();
                    }
                    Boot::Grub => {
                        grub_editenv(&self.env.p("dev/grubenv"), &["set", &format!("{g}_TRY=0")]);
                    }
                }
                (g, true)
            }
            None => {
                let order = env.get("ORDER").cloned().unwrap_or_else(|| "A".into());
                let slot = order
                    .split_whitespace()
                    .find(|g| env.get(&format!("{g}_OK")).map(String::as_str) == Some("1"))
                    .unwrap_or("A")
                    .to_string();
                (slot, false)
            }
        };
        let extra = if trial { " updater.trial=1" } else { "" };
        std::fs::write(
            self.env.p("dev/cmdline"),
            format!("console=ttyS0 updater.slot={slot}{extra}\n"),
        )
        .unwrap();
        slot
    }

    /// Power-cycle: the boot script, then `updater health` as the boot unit
    /// runs it. Returns the slot booted.
    pub fn boot(&self) -> String {
        let slot = self.reset();
        let code = self.run_with(&[], &["health"]);
        assert!(
            matches!(code, Some(0 | 7)),
            "health at boot exited {code:?}"
        );
        slot
    }

    /// Boot again for as long as the agent asked for a restart after `since`
    /// reboots, or a one-shot trial is armed (at most three boots).
    pub fn settle(&self, since: usize) {
        let mut seen = since;
        for _ in 0..3 {
            if self.reboots() == seen && self.armed().is_none() {
                return;
            }
            seen = self.reboots();
            self.boot();
        }
    }

    /// What must be the same after a run that crashed and was run again as
    /// after a run that did not: the state, the boot env, the slots, the
    /// kept releases.
    pub fn observe(&self) -> Observed {
        let state: Value =
            serde_json::from_slice(&std::fs::read(self.env.p("dev/state/state.json")).unwrap())
                .unwrap();
        let hash = |p: &str| {
            std::fs::read(self.env.p(p))
                .map(|b| Sha256Digest::of(&b).hex())
                .unwrap_or_default()
        };
        let mut kept: Vec<String> = std::fs::read_dir(self.env.p("dev/state/releases"))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        kept.sort();
        Observed {
            state,
            env: self.boot_env(),
            a: hash("dev/slots/A.rootfs"),
            b: hash("dev/slots/B.rootfs"),
            kept,
        }
    }

    /// Temporary files anywhere under the device's folder, and an intent
    /// record left over: what no finished session leaves.
    pub fn leftovers(&self) -> Vec<PathBuf> {
        fn walk(d: &Path, out: &mut Vec<PathBuf>) {
            for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out);
                } else if e.file_name().to_string_lossy().contains(".tmp.")
                    || e.file_name() == "intent.json"
                {
                    out.push(p);
                }
            }
        }
        let mut v = Vec::new();
        walk(&self.env.p("dev"), &mut v);
        v
    }

    /// Copy the device's folder aside as `name`.
    pub fn snapshot(&self, name: &str) {
        let to = self.env.p(&format!("snap-{name}"));
        let _ = std::fs::remove_dir_all(&to);
        copy_dir(&self.env.p("dev"), &to);
    }

    /// Put the device's folder back as it was at snapshot `name`.
    pub fn restore(&self, name: &str) {
        let dev = self.env.p("dev");
        std::fs::remove_dir_all(&dev).unwrap();
        copy_dir(&self.env.p(&format!("snap-{name}")), &dev);
    }
}

/// The observable device, for comparing two runs.
#[derive(Debug, PartialEq)]
pub struct Observed {
    /// `state.json`.
    pub state: Value,
    /// The boot env's variables.
    pub env: BTreeMap<String, String>,
    /// sha256 of slot A.
    pub a: String,
    /// sha256 of slot B.
    pub b: String,
    /// The files kept in `state/releases`.
    pub kept: Vec<String>,
}

fn copy_dir(from: &Path, to: &Path) {
    let out = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .output()
        .unwrap();
    assert!(out.status.success(), "cp -a: {out:?}");
}

/// Run grub-editenv on `env`.
pub fn grub_editenv(env: &Path, args: &[&str]) -> String {
    let out = Command::new("grub-editenv")
        .arg(env)
        .args(args)
        .output()
        .expect("grub-editenv (Debian package grub-common) is needed; ./test.sh installs it");
    assert!(
        out.status.success(),
        "grub-editenv {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
