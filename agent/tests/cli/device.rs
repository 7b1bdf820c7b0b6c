//! The one device of the CLI tests, built as each test needs it: slots as
//! files, a boot env of the chosen backend (the agent's file env, or a real
//! GRUB environment block made by grub-editenv), a kernel command line, a
//! state folder, a release served by the loopback test server, and,
//! optionally, a reboot command that only records the request, health
//! checks, a channel to follow, a root key, a release of the factory image
//! (with its index kept, for deltas), a fixed clock, and any further
//! setting. `reset` plays the backend's boot script, so a test can
//! power-cycle the device as often as it likes.
//!
//! Every test builds its device with [`Builder`]; the device's
//! configuration file is written in one place, [`Builder::build`].

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

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
    /// systemd-boot: entries in `dev/esp/loader/entries`, its variables in
    /// the efivarfs folder `dev/efivars`.
    SdLoader,
    /// The firmware's boot manager: `Boot0001` (A, labelled `updater A`),
    /// `Boot0002` (B) and a network boot option `Boot0003` that is not the
    /// agent's, `BootOrder` and `BootNext` in the efivarfs folder
    /// `dev/efivars`; the configuration names the options by label.
    Efi,
}

/// systemd's Boot Loader Interface GUID, as efivarfs file names carry it.
pub const LOADER_GUID: &str = "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f";
/// The UEFI global variables' GUID.
pub const GLOBAL_GUID: &str = "8be4df61-93ca-11d2-aa0d-00e098032b8c";

/// A Unified Kernel Image as ukify makes one: `.osrel`, `.cmdline`,
/// `.linux` and `.initrd` sections in a PE.
pub fn uki_image(cmdline: &[u8], kernel: &[u8], initrd: &[u8]) -> Vec<u8> {
    updater_format::pe::build(&[
        (".osrel", b"ID=updater\nVERSION_ID=1.2.0\n"),
        (".cmdline", cmdline),
        (".linux", kernel),
        (".initrd", initrd),
    ])
}

/// `s` as UTF-16LE with a terminating NUL (systemd's string variables).
pub fn utf16z(s: &str) -> Vec<u8> {
    s.encode_utf16()
        .chain([0])
        .flat_map(u16::to_le_bytes)
        .collect()
}

/// A UTF-16LE string variable's text, up to its NUL.
pub fn from_utf16z(b: &[u8]) -> String {
    let units: Vec<u16> = b
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|&u| u != 0)
        .collect();
    String::from_utf16(&units).unwrap()
}

/// An EFI load option (`Boot####`): attributes (ACTIVE or not), the
/// description, and an empty device path (the end node only).
pub fn load_option(active: bool, description: &str) -> Vec<u8> {
    let mut v = u32::from(active).to_le_bytes().to_vec();
    v.extend_from_slice(&4u16.to_le_bytes());
    v.extend(utf16z(description));
    v.extend_from_slice(&[0x7f, 0xff, 0x04, 0x00]);
    v
}

/// A `u16` list variable (`BootOrder`, `BootNext`, `BootCurrent`).
pub fn u16s(v: &[u16]) -> Vec<u8> {
    v.iter().flat_map(|n| n.to_le_bytes()).collect()
}

/// The fixed clock's time, and the release's `created` a day before.
pub const NOW: &str = "2026-03-02T00:00:00Z";
/// When the fixed-clock device's releases were made.
pub const CREATED: &str = "2026-03-01T00:00:00Z";

/// How big the test image is: ten chunks of 256 KiB, and a bit.
pub const ROOTFS_LEN: usize = 2_500_000;

/// In a setting's value, the device's folder (`dev/` of the workspace).
pub const DEV: &str = "{dev}";

/// The configuration file's text: tables of `key = value` lines, in the
/// order they were first set; the top-level keys (table `""`) first.
#[derive(Default)]
struct Config {
    tables: Vec<(String, Vec<(String, String)>)>,
}

impl Config {
    /// Set `key = value` in `[table]`, replacing a value set before.
    fn set(&mut self, table: &str, key: &str, value: &str) {
        let i = match self.tables.iter().position(|(t, _)| t == table) {
            Some(i) => i,
            None => {
                self.tables.push((table.to_string(), Vec::new()));
                self.tables.len() - 1
            }
        };
        let lines = &mut self.tables[i].1;
        match lines.iter_mut().find(|(k, _)| k == key) {
            Some(line) => line.1 = value.to_string(),
            None => lines.push((key.to_string(), value.to_string())),
        }
    }

    /// The text, with [`DEV`] in values replaced by `dev`.
    fn text(&self, dev: &str) -> String {
        let (top, tables): (Vec<_>, Vec<_>) = self.tables.iter().partition(|(t, _)| t.is_empty());
        let mut out = String::new();
        for (table, lines) in top.into_iter().chain(tables) {
            if !table.is_empty() {
                out.push_str(&format!("[{table}]\n"));
            }
            for (k, v) in lines {
                out.push_str(&format!("{k} = {}\n", v.replace(DEV, dev)));
            }
        }
        out
    }
}

/// What to build.
pub struct Builder {
    boot: Boot,
    fixed_clock: bool,
    trial: bool,
    channel: bool,
    root_key: bool,
    checkpoint_ms: u64,
    factory: Vec<u8>,
    image: Vec<u8>,
    release_args: Vec<String>,
    factory_release: Option<bool>,
    settings: Vec<(String, String, String)>,
}

impl Default for Builder {
    fn default() -> Builder {
        Builder::new()
    }
}

impl Builder {
    /// A file-env device with the wall clock, no reboot command, no checks,
    /// no channel; the keyring trusts m1 (manifests) and k1 (kernels).
    pub fn new() -> Builder {
        Builder {
            boot: Boot::File,
            fixed_clock: false,
            trial: false,
            channel: false,
            root_key: false,
            checkpoint_ms: 50,
            factory: pattern(ROOTFS_LEN, 3),
            image: pattern(ROOTFS_LEN, 11),
            release_args: vec!["--chunk-size".into(), "262144".into()],
            factory_release: None,
            settings: Vec::new(),
        }
    }

    /// The boot env backend.
    pub fn boot(mut self, boot: Boot) -> Builder {
        self.boot = boot;
        self
    }

    /// Every command runs at [`NOW`], and the releases are made at
    /// [`CREATED`]: runs that do the same leave byte-identical states.
    pub fn fixed_clock(mut self) -> Builder {
        self.fixed_clock = true;
        self
    }

    /// A recorded reboot command (`[trial]`) and a passing health check
    /// (`10-ok` in `[health]`'s folder).
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

    /// A root key (r1) in the keyring: the factory keyring is root version 1.
    pub fn root_key(mut self) -> Builder {
        self.root_key = true;
        self
    }

    /// Checkpoints only every `ms` milliseconds (a long one makes the
    /// number of durable writes of an install the same in every run).
    pub fn checkpoint_ms(mut self, ms: u64) -> Builder {
        self.checkpoint_ms = ms;
        self
    }

    /// What slot A holds (the factory image; `factory.img` in the
    /// workspace). Default: [`ROOTFS_LEN`] bytes of pattern 3.
    pub fn factory(mut self, image: Vec<u8>) -> Builder {
        self.factory = image;
        self
    }

    /// The image of the release served (`rootfs.img` in the workspace).
    /// Default: [`ROOTFS_LEN`] bytes of pattern 11.
    pub fn image(mut self, image: Vec<u8>) -> Builder {
        self.image = image;
        self
    }

    /// The `release create` arguments of the releases the device makes
    /// (default `--chunk-size 262144`; none: the vendor tool's defaults).
    pub fn release_args(mut self, args: &[&str]) -> Builder {
        self.release_args = args.iter().map(|a| a.to_string()).collect();
        self
    }

    /// The factory image is a release too, made into `rel1/` (not served);
    /// with `kept_index`, its index is kept for slot A in the state folder,
    /// as after an install by the agent (a delta then has it as its seed).
    pub fn factory_release(mut self, kept_index: bool) -> Builder {
        self.factory_release = Some(kept_index);
        self
    }

    /// Set `key = value` (the value as TOML, [`DEV`] standing for the
    /// device's folder) in `[table]` (`""`: the top level), replacing what
    /// the builder would write there.
    pub fn set(mut self, table: &str, key: &str, value: &str) -> Builder {
        self.settings
            .push((table.to_string(), key.to_string(), value.to_string()));
        self
    }

    /// [`Builder::set`] for each `key = value` line of `lines`.
    pub fn lines(mut self, table: &str, lines: &str) -> Builder {
        for line in lines.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let (k, v) = line
                .split_once('=')
                .unwrap_or_else(|| panic!("not a `key = value` line: {line:?}"));
            self = self.set(table, k.trim(), v.trim());
        }
        self
    }

    /// `lines` in `[http]`.
    pub fn http(self, lines: &str) -> Builder {
        self.lines("http", lines)
    }

    /// Make it.
    pub fn build(self) -> Device {
        let env = TestEnv::new();
        std::fs::write(env.p("rootfs.img"), &self.image).unwrap();
        std::fs::write(env.p("factory.img"), &self.factory).unwrap();
        let dev = Device {
            server: Server::start(&env.p("rel"), "127.0.0.1:0").unwrap(),
            env,
            a_hash: Sha256Digest::of(&self.factory),
            boot: self.boot,
            now: self.fixed_clock.then(|| NOW.to_string()),
            release_args: self.release_args.clone(),
        };
        let e = &dev.env;
        if self.channel || self.root_key {
            let mut roles = vec![("--manifest-key", "m1"), ("--kernel-key", "k1")];
            if self.channel {
                e.keygen("c1");
                roles.push(("--channel-key", "c1"));
            }
            if self.root_key {
                e.keygen("r1");
                roles.push(("--root-key", "r1"));
            }
            e.reinit_ring(&roles);
        }
        dev.publish("rootfs.img", "1.2.0");
        if let Some(kept_index) = self.factory_release {
            let args: Vec<&str> = self.release_args.iter().map(String::as_str).collect();
            dev.make_release("rel1", "factory.img", "1.2.0", &args)
                .assert_ok();
            if kept_index {
                std::fs::create_dir_all(e.p("dev/state/releases")).unwrap();
                std::fs::copy(
                    e.p("rel1/rootfs.index"),
                    e.p("dev/state/releases/A.rootfs.index"),
                )
                .unwrap();
            }
        }
        if self.channel {
            dev.publish_channel(&["--release", "acme-gw=manifest.json"])
                .assert_ok();
        }
        std::fs::create_dir_all(e.p("dev/slots")).unwrap();
        std::fs::write(e.p("dev/slots/A.rootfs"), &self.factory).unwrap();
        std::fs::write(e.p("dev/cmdline"), "console=ttyS0 updater.slot=A quiet\n").unwrap();

        let q = |s: &str| format!("\"{s}\"");
        let mut c = Config::default();
        c.set("", "compatible", &q("acme-gw"));
        c.set("", "state_dir", &q("{dev}/state"));
        c.set("", "keyring", &q(&e.s("ring")));
        c.set("", "cmdline_path", &q("{dev}/cmdline"));
        match self.boot {
            Boot::File => {
                std::fs::write(e.p("dev/boot.env"), "ORDER=A B\nA_OK=1\nB_OK=0\nTRY=\n").unwrap();
                c.set("bootloader", "backend", &q("file"));
                c.set("bootloader", "path", &q("{dev}/boot.env"));
            }
            Boot::Grub => {
                let g = e.p("dev/grubenv");
                grub_editenv(&g, &["create"]);
                grub_editenv(
                    &g,
                    &["set", "ORDER=A B", "A_OK=1", "B_OK=0", "A_TRY=0", "B_TRY=0"],
                );
                c.set("bootloader", "backend", &q("grub"));
                c.set("bootloader", "path", &q("{dev}/grubenv"));
            }
            Boot::SdLoader => {
                let entries = e.p("dev/esp/loader/entries");
                std::fs::create_dir_all(&entries).unwrap();
                std::fs::create_dir_all(e.p("dev/efivars")).unwrap();
                for (g, name) in [("A", "updater-A.conf"), ("B", "updater-B.conf.disabled")] {
                    std::fs::write(
                        entries.join(name),
                        format!("title Slot {g}\nlinux /updater/{g}/vmlinuz\ninitrd /updater/{g}/initrd\noptions console=ttyS0 updater.slot={g}\n"),
                    )
                    .unwrap();
                }
                dev.efi_set("LoaderEntryDefault", LOADER_GUID, &utf16z("updater-A.conf"));
                dev.efi_set(
                    "LoaderEntrySelected",
                    LOADER_GUID,
                    &utf16z("updater-A.conf"),
                );
                c.set("bootloader", "backend", &q("systemd-boot"));
                c.set("bootloader", "esp", &q("{dev}/esp"));
                c.set("bootloader", "efivarfs", &q("{dev}/efivars"));
            }
            Boot::Efi => {
                std::fs::create_dir_all(e.p("dev/efivars")).unwrap();
                dev.efi_set("Boot0001", GLOBAL_GUID, &load_option(true, "updater A"));
                dev.efi_set("Boot0002", GLOBAL_GUID, &load_option(false, "updater B"));
                dev.efi_set("Boot0003", GLOBAL_GUID, &load_option(true, "network"));
                // Every option stays in BootOrder (OVMF deletes the others);
                // B's is inactive until its first trial.
                dev.efi_set("BootOrder", GLOBAL_GUID, &u16s(&[1, 2, 3]));
                dev.efi_set("BootCurrent", GLOBAL_GUID, &u16s(&[1]));
                c.set("bootloader", "backend", &q("efi"));
                c.set("bootloader", "efivarfs", &q("{dev}/efivars"));
                c.set(
                    "bootloader",
                    "entries",
                    r#"{ A = "updater A", B = "updater B" }"#,
                );
            }
        }
        c.set("http", "connect_timeout_secs", "2");
        c.set("http", "stall_timeout_secs", "2");
        c.set("http", "retries", "4");
        c.set("http", "backoff_initial_ms", "20");
        c.set("http", "backoff_max_ms", "200");
        c.set(
            "install",
            "checkpoint_interval_ms",
            &self.checkpoint_ms.to_string(),
        );
        c.set("slots.A.targets", "rootfs", &q("{dev}/slots/A.rootfs"));
        c.set("slots.B.targets", "rootfs", &q("{dev}/slots/B.rootfs"));
        c.set("kexec", "policy", &q("never"));
        if self.trial {
            c.set(
                "trial",
                "reboot_command",
                r#"["sh", "-c", "echo \"$0\" >> {dev}/reboots"]"#,
            );
            c.set("health", "dir", &q("{dev}/health.d"));
            c.set("health", "check_timeout_secs", "5");
            std::fs::create_dir_all(e.p("dev/health.d")).unwrap();
        }
        if self.channel {
            c.set("device", "id", &q("device-0001"));
            c.set("daemon", "channel", &q(&dev.server.url("stable.json")));
        }
        for (table, key, value) in &self.settings {
            c.set(table, key, value);
        }
        std::fs::write(e.p("dev/config.toml"), c.text(&e.s("dev"))).unwrap();
        if self.trial {
            dev.check("10-ok", "exit 0");
        }
        dev
    }
}

/// A built device.
pub struct Device {
    /// The test workspace (keys, keyring, releases, `dev/` the device).
    pub env: TestEnv,
    /// The release server, serving `rel/`.
    pub server: Server,
    /// What slot A holds: the factory image's digest (a test that changes
    /// slot A on purpose sets it anew).
    pub a_hash: Sha256Digest,
    boot: Boot,
    now: Option<String>,
    release_args: Vec<String>,
}

impl Device {
    /// The configuration file.
    pub fn config(&self) -> String {
        self.env.s("dev/config.toml")
    }

    /// The release's URL.
    pub fn url(&self) -> String {
        self.server.url("manifest.json")
    }

    /// `release create` into `folder` (replacing it): `image` as gw
    /// `version`, security version 5, signed by m1, with `args` (and, on a
    /// fixed clock, made at [`CREATED`] unless `args` says when).
    pub fn make_release(&self, folder: &str, image: &str, version: &str, args: &[&str]) -> Run {
        let _ = std::fs::remove_dir_all(self.env.p(folder));
        let key = self.env.s("keys/m1.key");
        let mut extra = args.to_vec();
        if self.now.is_some() && !args.contains(&"--created") {
            extra.extend(["--created", CREATED, "--now", CREATED]);
        }
        self.env
            .release_by(folder, image, ["--key", &key], version, "5", &extra)
    }

    /// Publish `image` as release `version` in `rel/` (the release
    /// arguments of the builder), replacing what was there.
    pub fn publish(&self, image: &str, version: &str) {
        self.publish_with(image, version, &[]);
    }

    /// [`Device::publish`] with `extra` arguments to `release create`.
    pub fn publish_with(&self, image: &str, version: &str, extra: &[&str]) {
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
        let mut args: Vec<&str> = self.release_args.iter().map(String::as_str).collect();
        args.extend_from_slice(extra);
        self.make_release("rel", image, version, &args).assert_ok();
        for (name, bytes) in kept {
            std::fs::write(self.env.p("rel").join(name), bytes).unwrap();
        }
    }

    /// A second loopback server, serving `folder` of the workspace.
    pub fn serve(&self, folder: &str) -> Server {
        Server::start(&self.env.p(folder), "127.0.0.1:0").unwrap()
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

    /// The device binary with the device's arguments, never restarting
    /// this machine.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(bin());
        cmd.args(self.base_args())
            .env_remove("UPDATER_LOG")
            .env(updater::trial::reboot::NO_REAL_RESTART_ENV, "1");
        cmd
    }

    /// `updater ARGS` with extra environment variables; its exit code (None
    /// when it was killed or aborted).
    pub fn run_with(&self, vars: &[(&str, &str)], args: &[&str]) -> Option<i32> {
        let mut cmd = self.command();
        cmd.args(args);
        for (k, v) in vars {
            cmd.env(k, v);
        }
        cmd.output().expect("running updater").status.code()
    }

    /// `updater ARGS` stopped at the failpoint `fp` (`NAME` or `NAME@N`):
    /// its exit code, None when the failpoint stopped it.
    pub fn run_failpoint(&self, fp: &str, args: &[&str]) -> Option<i32> {
        self.run_with(&[("UPDATER_FAILPOINTS", fp)], args)
    }

    /// `updater apply URL` running in the background, its output dropped.
    pub fn spawn_apply(&self) -> Child {
        self.command()
            .args(["apply", &self.url()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }

    /// `updater apply URL`.
    pub fn apply_url(&self) -> Run {
        self.run(&["apply", &self.url()])
    }

    /// `updater apply URL --reboot`.
    pub fn apply_reboot(&self) -> Run {
        self.run(&["apply", &self.url(), "--reboot"])
    }

    /// `updater status --json`, which must succeed.
    pub fn status(&self) -> Value {
        let r = self.run(&["status", "--json"]);
        r.assert_ok();
        serde_json::from_str(r.stdout.trim()).unwrap()
    }

    /// What slot B holds (nothing when it does not exist).
    pub fn b(&self) -> Vec<u8> {
        std::fs::read(self.env.p("dev/slots/B.rootfs")).unwrap_or_default()
    }

    /// The image of the release served (as the builder made it).
    pub fn expected(&self) -> Vec<u8> {
        std::fs::read(self.env.p("rootfs.img")).unwrap()
    }

    /// The factory image (what slot A held when the device was built).
    pub fn factory(&self) -> Vec<u8> {
        std::fs::read(self.env.p("factory.img")).unwrap()
    }

    /// The invariants after any install run: A untouched, the state parses,
    /// B not bootable unless installed.
    pub fn check_install_invariants(&self) {
        let a = std::fs::read(self.env.p("dev/slots/A.rootfs")).unwrap();
        assert_eq!(
            Sha256Digest::of(&a),
            self.a_hash,
            "the booted slot was written"
        );
        let st = self.status();
        assert_eq!(st["groups"]["A"]["status"], "good");
        // Once anything was attempted on B, B is unbootable until tried.
        if st["groups"]["B"]["status"] != "empty" {
            assert_eq!(st["groups"]["B"]["bootable"], false, "{st}");
        }
    }

    /// Slot A still holds what it held at the start.
    pub fn check_invariants_a_intact(&self) {
        let a = std::fs::read(self.env.p("dev/slots/A.rootfs")).unwrap();
        assert_eq!(Sha256Digest::of(&a), self.a_hash, "slot A was written");
    }

    /// Slot B holds the release served, installed, and the install
    /// invariants hold.
    pub fn assert_installed(&self) {
        assert!(
            self.b() == self.expected(),
            "slot B does not hold the release image"
        );
        let st = self.status();
        assert_eq!(st["groups"]["B"]["status"], "installed", "{st}");
        assert_eq!(st["groups"]["B"]["version"], "1.2.0");
        assert!(st["install"].is_null());
        self.check_install_invariants();
    }

    /// The boot invariants, checked after every step of a trial, crash or
    /// not: the default is bootable, and good or a confirmed trial; a slot
    /// that is bad, installing or installed is not bootable.
    pub fn check_boot_invariants(&self) {
        let st = self.status(); // parses, or the test fails
        let env = self.boot_env();
        let primary = env["ORDER"].split_whitespace().next().unwrap().to_string();
        assert_eq!(
            env.get(&format!("{primary}_OK")).map(String::as_str),
            Some("1"),
            "primary {primary} is not bootable: {env:?}"
        );
        let pstatus = st["groups"][&primary]["status"].as_str().unwrap();
        let confirmed_trial =
            st["trial"]["group"] == primary.as_str() && st["trial"]["confirmed"] == true;
        assert!(
            pstatus == "good" || confirmed_trial,
            "primary {primary} is {pstatus} (not good, not a confirmed trial): {st}"
        );
        for g in ["A", "B"] {
            let s = st["groups"][g]["status"].as_str().unwrap();
            if matches!(s, "bad" | "installing" | "installed") {
                assert_eq!(
                    env[&format!("{g}_OK")],
                    "0",
                    "slot {g} is {s} but bootable: {env:?}"
                );
            }
        }
    }

    /// Write the health check `NAME` with `body` (a shell script).
    pub fn check(&self, name: &str, body: &str) {
        let p = self.env.p(&format!("dev/health.d/{name}"));
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// The reboots the agent asked for so far, each as the reboot command
    /// recorded it (`reboot`).
    pub fn reboots(&self) -> Vec<String> {
        std::fs::read_to_string(self.env.p("dev/reboots"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The efivarfs file of variable `name`.
    pub fn efivar(&self, name: &str, guid: &str) -> PathBuf {
        self.env.p(&format!("dev/efivars/{name}-{guid}"))
    }

    /// An EFI variable's data (after its attributes), if it exists.
    pub fn efi_get(&self, name: &str, guid: &str) -> Option<Vec<u8>> {
        let b = std::fs::read(self.efivar(name, guid)).ok()?;
        assert!(b.len() >= 4, "{name}: shorter than its attributes");
        assert_eq!(
            &b[..4],
            &[7, 0, 0, 0],
            "{name}: attributes are not NV|BS|RT"
        );
        Some(b[4..].to_vec())
    }

    /// Set an EFI variable (NV|BS|RT), as the firmware or sd-boot does.
    pub fn efi_set(&self, name: &str, guid: &str, data: &[u8]) {
        let mut b = vec![7, 0, 0, 0];
        b.extend_from_slice(data);
        std::fs::write(self.efivar(name, guid), b).unwrap();
    }

    /// Delete an EFI variable, as the firmware or sd-boot does.
    pub fn efi_del(&self, name: &str, guid: &str) {
        let _ = std::fs::remove_file(self.efivar(name, guid));
    }

    /// The slot a systemd-boot string variable names (`updater-B.conf`).
    fn sd_var(&self, name: &str) -> Option<String> {
        let v = from_utf16z(&self.efi_get(name, LOADER_GUID)?);
        let g = v.strip_prefix("updater-")?.strip_suffix(".conf")?;
        Some(g.to_string())
    }

    /// A `u16` list variable.
    fn efi_u16s(&self, name: &str) -> Vec<u16> {
        self.efi_get(name, GLOBAL_GUID)
            .map(|b| {
                b.chunks_exact(2)
                    .map(|c| u16::from_le_bytes([c[0], c[1]]))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The boot env's variables. The EFI backends' state is shown in the
    /// file env's terms (`ORDER`, `A_OK`, `B_OK`, `TRY`), read from the ESP
    /// and the variables by this test's own decoding, so that every check
    /// written for the env holds for them too.
    pub fn boot_env(&self) -> BTreeMap<String, String> {
        let text = match self.boot {
            Boot::File => std::fs::read_to_string(self.env.p("dev/boot.env")).unwrap(),
            Boot::Grub => grub_editenv(&self.env.p("dev/grubenv"), &["list"]),
            Boot::SdLoader => {
                let primary = self.sd_var("LoaderEntryDefault").unwrap_or_default();
                let ok = |g: &str| {
                    let p = self
                        .env
                        .p(&format!("dev/esp/loader/entries/updater-{g}.conf"));
                    if p.exists() {
                        "1"
                    } else {
                        "0"
                    }
                };
                let mut order: Vec<&str> = vec![&primary];
                order.extend(["A", "B"].into_iter().filter(|g| *g != primary));
                format!(
                    "ORDER={}\nA_OK={}\nB_OK={}\nTRY={}\n",
                    order.join(" ").trim(),
                    ok("A"),
                    ok("B"),
                    self.sd_var("LoaderEntryOneShot").unwrap_or_default()
                )
            }
            Boot::Efi => {
                let group = |n: u16| match n {
                    1 => Some("A"),
                    2 => Some("B"),
                    _ => None,
                };
                let order = self.efi_u16s("BootOrder");
                let mut groups: Vec<&str> = order.iter().filter_map(|n| group(*n)).collect();
                for g in ["A", "B"] {
                    if !groups.contains(&g) {
                        groups.push(g);
                    }
                }
                let ok = |n: u16| {
                    let active = self
                        .efi_get(&format!("Boot{n:04X}"), GLOBAL_GUID)
                        .is_some_and(|o| o[0] & 1 == 1);
                    if active && order.contains(&n) {
                        "1"
                    } else {
                        "0"
                    }
                };
                format!(
                    "ORDER={}\nA_OK={}\nB_OK={}\nTRY={}\n",
                    groups.join(" "),
                    ok(1),
                    ok(2),
                    self.efi_u16s("BootNext")
                        .first()
                        .and_then(|n| group(*n))
                        .unwrap_or_default()
                )
            }
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
            Boot::File | Boot::SdLoader | Boot::Efi => {
                env.get("TRY").filter(|v| !v.is_empty()).cloned()
            }
            Boot::Grub => ["A", "B"]
                .into_iter()
                .find(|g| env.get(&format!("{g}_TRY")).map(String::as_str) == Some("1"))
                .map(str::to_string),
        }
    }

    /// Clear the one-shot trial armed for `slot`, durably, as the boot
    /// script does before booting it.
    fn disarm(&self, slot: &str) {
        match self.boot {
            Boot::File => {
                let mut e = self.boot_env();
                e.insert("TRY".into(), String::new());
                let text: String = e.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
                std::fs::write(self.env.p("dev/boot.env"), text).unwrap();
            }
            Boot::Grub => {
                grub_editenv(
                    &self.env.p("dev/grubenv"),
                    &["set", &format!("{slot}_TRY=0")],
                );
            }
            // Both delete the one-shot before they start what it names.
            Boot::SdLoader => self.efi_del("LoaderEntryOneShot", LOADER_GUID),
            Boot::Efi => self.efi_del("BootNext", GLOBAL_GUID),
        }
    }

    /// What the backend's boot script does at a reset (packaging/grub/
    /// grub.cfg, and the file env's chooser): a one-shot trial is cleared,
    /// durably, before it is booted; else the first bootable slot of ORDER;
    /// else A. Writes the kernel command line of the slot booted and
    /// returns it.
    pub fn reset(&self) -> String {
        let env = self.boot_env();
        let armed = self.armed().inspect(|g| self.disarm(g));
        // sd-boot and the firmware drop a one-shot whose entry they cannot
        // boot (disabled, inactive) and go on with the default.
        let uefi = matches!(self.boot, Boot::SdLoader | Boot::Efi);
        let armed =
            armed.filter(|g| !uefi || env.get(&format!("{g}_OK")).map(String::as_str) == Some("1"));
        let (slot, trial) = match armed {
            Some(g) => (g, true),
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
        // What the boot loader records of the boot (volatile variables, set
        // anew at every boot).
        match self.boot {
            // sd-boot 252 reports the id lowercased (seen in QEMU).
            Boot::SdLoader => self.efi_set(
                "LoaderEntrySelected",
                LOADER_GUID,
                &utf16z(&format!("updater-{}.conf", slot.to_ascii_lowercase())),
            ),
            Boot::Efi => self.efi_set(
                "BootCurrent",
                GLOBAL_GUID,
                &u16s(&[if slot == "A" { 1 } else { 2 }]),
            ),
            Boot::File | Boot::Grub => {}
        }
        let extra = if trial { " updater.trial=1" } else { "" };
        std::fs::write(
            self.env.p("dev/cmdline"),
            format!("console=ttyS0 updater.slot={slot}{extra}\n"),
        )
        .unwrap();
        slot
    }

    /// The state a kexec trial of B leaves, booted: the trial recorded, the
    /// env untouched (no one-shot: a reset goes back to A), and B's kernel
    /// started by the agent's kexec (`updater.kexec=1`). The kexec itself
    /// runs in-process in kexec.rs and in a QEMU guest (integration/).
    pub fn kexec_into_b(&self) {
        self.apply_reboot().assert_ok();
        self.disarm("B");
        std::fs::write(
            self.env.p("dev/cmdline"),
            "console=ttyS0 updater.slot=B updater.trial=1 updater.kexec=1\n",
        )
        .unwrap();
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
            if self.reboots().len() == seen && self.armed().is_none() {
                return;
            }
            seen = self.reboots().len();
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
