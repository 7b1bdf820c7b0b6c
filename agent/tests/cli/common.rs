//! Helpers shared by the CLI tests: a temporary workspace, keys, releases, and
//! running the real `updater` binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use updater::keys::{read_private_key, PrivateKey};
use updater::manifest::{Envelope, Manifest, MANIFEST_PAYLOAD_TYPE};

/// A temporary folder with a vendor's keys and a device keyring.
pub struct TestEnv {
    pub dir: tempfile::TempDir,
}

/// The result of running the binary.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Run {
    /// Assert the exit code and that stderr names the reason.
    pub fn assert_fails(&self, code: i32, reason: &str) {
        assert_eq!(
            self.code, code,
            "expected exit {code}, got {}\nstdout: {}\nstderr: {}",
            self.code, self.stdout, self.stderr
        );
        assert!(
            self.stderr.contains(reason),
            "stderr does not contain {reason:?}:\n{}",
            self.stderr
        );
        // One error line with the reason (warnings about retries may
        // precede it), and no panic.
        let errors = self
            .stderr
            .lines()
            .filter(|l| l.starts_with("error:"))
            .count();
        assert_eq!(errors, 1, "stderr: {}", self.stderr);
        assert!(!self.stderr.contains("panicked"), "stderr: {}", self.stderr);
    }

    pub fn assert_ok(&self) {
        assert_eq!(
            self.code, 0,
            "stdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
    }
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_updater")
}

pub fn updater(args: &[&str]) -> Run {
    Command::new(bin())
        .args(args)
        .env_remove("UPDATER_LOG")
        .env(updater::boot::reboot::NO_REAL_RESTART_ENV, "1")
        .output()
        .expect("running updater")
        .into()
}

impl TestEnv {
    /// Keys `m1`, `m2` (manifest role), `k1` (kernel role), a keyring trusting
    /// m1 and k1 with threshold 1, and small image files.
    pub fn new() -> TestEnv {
        let env = TestEnv {
            dir: tempfile::tempdir().unwrap(),
        };
        for name in ["m1", "m2", "k1", "rogue"] {
            updater(&[
                "keygen",
                "--out",
                env.p("keys").to_str().unwrap(),
                "--name",
                name,
            ])
            .assert_ok();
        }
        env.keyring("ring", &["m1"], 1, &["k1"], 1);
        std::fs::write(env.p("rootfs.img"), pattern(300_000, 7)).unwrap();
        std::fs::write(env.p("vmlinuz"), pattern(50_000, 9)).unwrap();
        env
    }

    pub fn p(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn s(&self, rel: &str) -> String {
        self.p(rel).to_str().unwrap().to_string()
    }

    pub fn key(&self, name: &str) -> PrivateKey {
        read_private_key(&self.p(&format!("keys/{name}.key"))).unwrap()
    }

    pub fn keyring(&self, dir: &str, manifest: &[&str], mt: usize, kernel: &[&str], kt: usize) {
        let mut args = vec!["keyring".to_string(), "init".into(), self.s(dir)];
        for m in manifest {
            args.push("--manifest-key".into());
            args.push(self.s(&format!("keys/{m}.pub")));
        }
        for k in kernel {
            args.push("--kernel-key".into());
            args.push(self.s(&format!("keys/{k}.pub")));
        }
        args.push("--manifest-threshold".into());
        args.push(mt.to_string());
        args.push("--kernel-threshold".into());
        args.push(kt.to_string());
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        updater(&a).assert_ok();
    }

    /// `release create` into `out` with the given extra arguments.
    pub fn release(&self, out: &str, extra: &[&str]) -> Run {
        self.release_of(out, "rootfs.img", extra)
    }

    /// `release create` into `out` with `image` (relative to the folder) as
    /// the rootfs.
    pub fn release_of(&self, out: &str, image: &str, extra: &[&str]) -> Run {
        let out = self.s(out);
        let rootfs = format!("rootfs={}", self.s(image));
        let key = self.s("keys/m1.key");
        let mut args = vec![
            "release",
            "create",
            "--out",
            &out,
            "--key",
            &key,
            "--product",
            "gw",
            "--version",
            "1.2.0",
            "--security-version",
            "5",
            "--compatible",
            "acme-gw",
            "--image",
            &rootfs,
        ];
        args.extend_from_slice(extra);
        updater(&args)
    }

    /// A release with a kernel signed by k1.
    pub fn release_with_kernel(&self, out: &str) {
        let kernel = self.s("vmlinuz");
        let kkey = self.s("keys/k1.key");
        self.release(
            out,
            &[
                "--kernel",
                &kernel,
                "--kernel-key",
                &kkey,
                "--cmdline",
                "console=ttyS0",
            ],
        )
        .assert_ok();
    }

    pub fn verify(&self, manifest: &str, extra: &[&str]) -> Run {
        let m = self.s(manifest);
        let ring = self.s("ring");
        let mut args = vec!["verify", &m, "--keyring", &ring];
        args.extend_from_slice(extra);
        updater(&args)
    }

    /// Read a release's envelope and manifest.
    pub fn read(&self, manifest: &str) -> (Envelope, Manifest) {
        let env: Envelope =
            serde_json::from_slice(&std::fs::read(self.p(manifest)).unwrap()).unwrap();
        let m = serde_json::from_slice(&env.payload_bytes().unwrap()).unwrap();
        (env, m)
    }

    /// Write an envelope around `payload`, signed by `keys`.
    pub fn write_signed(&self, path: &str, payload: &[u8], keys: &[&str]) {
        let keys: Vec<PrivateKey> = keys.iter().map(|k| self.key(k)).collect();
        let refs: Vec<&PrivateKey> = keys.iter().collect();
        let env = Envelope::seal(MANIFEST_PAYLOAD_TYPE, payload, &refs);
        write(&self.p(path), &env.to_json());
    }
}

pub fn write(path: &Path, data: &[u8]) {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(path, data).unwrap();
}

/// Deterministic bytes that compress a little.
pub fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2654435761).max(1);
    (0..len)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            if i % 7 == 0 {
                0
            } else {
                x as u8
            }
        })
        .collect()
}

/// Run openssl in `dir`; panics with its stderr when it fails.
pub fn openssl_in(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = std::process::Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("running openssl (install the openssl package)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
