//! Helpers shared by updater's tests (and only its tests): a temporary
//! workspace with a vendor's keys, a device keyring and releases made by the
//! vendor tooling itself, deterministic image bytes, the loopback server, and
//! the interop tools (openssl).
//!
//! Vendor commands run in-process through `updater_release::cli::run_args`,
//! parsed by the very clap definitions of `updater-vendor`, so a test makes
//! a release exactly as a vendor's command line does.

use std::path::{Path, PathBuf};
use std::process::Output;

pub mod manpages;

pub use updater_release::serve::{Fault, RequestLog, Server};

use updater_format::envelope::{Envelope, MANIFEST_PAYLOAD_TYPE};
use updater_format::error::OneLine;
use updater_format::keys::{read_private_key, PrivateKey};
use updater_format::manifest::Manifest;

/// A temporary folder with a vendor's keys and a device keyring.
pub struct TestEnv {
    /// The folder (removed when the value is dropped).
    pub dir: tempfile::TempDir,
}

/// The result of a command: a process's, or an in-process vendor command's
/// (whose output went to the test's own stdout; `stderr` then holds the
/// error line).
pub struct Run {
    /// Exit code.
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
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

impl From<anyhow::Result<()>> for Run {
    fn from(r: anyhow::Result<()>) -> Run {
        match r {
            Ok(()) => Run {
                code: 0,
                stdout: String::new(),
                stderr: String::new(),
            },
            Err(e) => Run {
                code: updater_release::cli::exit_code(&e),
                stdout: String::new(),
                stderr: format!("error: {}\n", OneLine(&e)),
            },
        }
    }
}

impl Run {
    /// Assert the exit code and that stderr names the reason, on exactly one
    /// error line and without a panic.
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

    /// Assert success.
    pub fn assert_ok(&self) {
        assert_eq!(
            self.code, 0,
            "stdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
    }
}

/// Run a vendor command (`updater-vendor ARGS`) in-process.
pub fn vendor(args: &[&str]) -> Run {
    updater_release::cli::run_args(args).into()
}

impl TestEnv {
    /// Keys `m1`, `m2` (manifest role), `k1` (kernel role) and `rogue`, a
    /// keyring `ring` trusting m1 and k1 with threshold 1, and small image
    /// files `rootfs.img` and `vmlinuz`.
    pub fn new() -> TestEnv {
        let env = TestEnv {
            dir: tempfile::tempdir().expect("a temporary folder"),
        };
        for name in ["m1", "m2", "k1", "rogue"] {
            env.keygen(name);
        }
        env.keyring("ring", &["m1"], 1, &["k1"], 1);
        write(&env.p("rootfs.img"), &pattern(300_000, 7));
        write(&env.p("vmlinuz"), &pattern(50_000, 9));
        env
    }

    /// A path in the folder.
    pub fn p(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// A path in the folder, as a string.
    pub fn s(&self, rel: &str) -> String {
        self.p(rel).to_str().expect("a UTF-8 path").to_string()
    }

    /// Make the key pair `keys/NAME.key` and `keys/NAME.pub`.
    pub fn keygen(&self, name: &str) {
        vendor(&["keygen", "--out", &self.s("keys"), "--name", name]).assert_ok();
    }

    /// The private key `keys/NAME.key`.
    pub fn key(&self, name: &str) -> PrivateKey {
        read_private_key(&self.p(&format!("keys/{name}.key"))).expect("a test key")
    }

    /// `keyring init DIR` trusting the named keys with the thresholds.
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
        vendor(&a).assert_ok();
    }

    /// Replace the keyring `ring` by `keyring init ring FLAG VALUE...`: the
    /// value of a `--*-key` flag is a key name (`keys/NAME.pub`), any other
    /// value is given as it is (`("--root-threshold", "2")`).
    pub fn reinit_ring(&self, args: &[(&str, &str)]) {
        let _ = std::fs::remove_dir_all(self.p("ring"));
        let mut all = vec!["keyring".to_string(), "init".into(), self.s("ring")];
        for (flag, value) in args {
            all.push(flag.to_string());
            all.push(if flag.ends_with("-key") {
                self.s(&format!("keys/{value}.pub"))
            } else {
                value.to_string()
            });
        }
        let a: Vec<&str> = all.iter().map(String::as_str).collect();
        vendor(&a).assert_ok();
    }

    /// `release create` into `out` with the given extra arguments.
    pub fn release(&self, out: &str, extra: &[&str]) -> Run {
        self.release_of(out, "rootfs.img", extra)
    }

    /// `release create` into `out` with `image` (relative to the folder) as
    /// the rootfs: product gw 1.2.0, security version 5, for acme-gw.
    pub fn release_of(&self, out: &str, image: &str, extra: &[&str]) -> Run {
        self.release_signed(out, image, "m1", extra)
    }

    /// [`TestEnv::release_of`], signed by key `keys/KEY.key`.
    pub fn release_signed(&self, out: &str, image: &str, key: &str, extra: &[&str]) -> Run {
        let key = self.s(&format!("keys/{key}.key"));
        self.release_by(out, image, ["--key", &key], "1.2.0", "5", extra)
    }

    /// `release create` into `out` with `image` as the rootfs: product gw
    /// VERSION with SECURITY, for acme-gw, signed as `signing` says
    /// (`["--key", PATH]` or `["--signer", PUB=COMMAND]`).
    pub fn release_by(
        &self,
        out: &str,
        image: &str,
        signing: [&str; 2],
        version: &str,
        security: &str,
        extra: &[&str],
    ) -> Run {
        let out = self.s(out);
        let rootfs = format!("rootfs={}", self.s(image));
        let mut args = vec![
            "release",
            "create",
            "--out",
            &out,
            signing[0],
            signing[1],
            "--product",
            "gw",
            "--version",
            version,
            "--security-version",
            security,
            "--compatible",
            "acme-gw",
            "--image",
            &rootfs,
        ];
        args.extend_from_slice(extra);
        vendor(&args)
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

    /// Read a release's envelope and manifest.
    pub fn read(&self, manifest: &str) -> (Envelope, Manifest) {
        let env: Envelope = serde_json_from(&std::fs::read(self.p(manifest)).expect("a manifest"));
        let m = serde_json_from(&env.payload_bytes().expect("a payload"));
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

impl Default for TestEnv {
    fn default() -> Self {
        Self::new()
    }
}

fn serde_json_from<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> T {
    serde_json::from_slice(bytes).expect("valid JSON")
}

/// Write `data` to `path`, creating its folder.
pub fn write(path: &Path, data: &[u8]) {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).expect("creating a folder");
    }
    std::fs::write(path, data).expect("writing a file");
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

/// One chunk of a schema-2 image, where it is in the image and in the
/// image file as served.
#[derive(Debug, Clone, Copy)]
pub struct IndexedChunk {
    /// Offset in the image.
    pub offset: u64,
    /// Size in the image.
    pub size: u64,
    /// Offset in the image file.
    pub coffset: u64,
    /// Size in the image file.
    pub csize: u64,
    /// The index entry.
    pub entry: updater_format::index::Entry,
}

/// Read a release's index file (checked against itself) into its chunks.
pub fn read_index(path: &Path) -> Vec<IndexedChunk> {
    use updater_format::index;
    let bytes = std::fs::read(path).unwrap();
    let len = index::root_len(&bytes[..index::HEADER_LEN]).unwrap();
    let root = index::parse_root(&bytes[..len]).unwrap();
    let (mut off, mut coff) = (0u64, 0u64);
    let mut out = Vec::new();
    for (p, (at, plen)) in root.pages.iter().zip(root.page_spans()) {
        let page = &bytes[at as usize..at as usize + plen];
        for e in index::parse_page(page, p, root.params).unwrap() {
            out.push(IndexedChunk {
                offset: off,
                size: e.size.into(),
                coffset: coff,
                csize: e.csize.into(),
                entry: e,
            });
            off += u64::from(e.size);
            coff += u64::from(e.csize);
        }
    }
    out
}

/// Run `ostree --repo=REPO ARGS` (the `ostree` command: test.sh installs
/// it), which must succeed: its stdout, trimmed.
pub fn ostree(repo: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("ostree")
        .arg(format!("--repo={}", repo.display()))
        .args(args)
        .output()
        .expect("running ostree (apt-get install ostree; test.sh installs it)");
    assert!(
        out.status.success(),
        "ostree {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Commit a tree of `files` (path in the tree, bytes) as `refname` into
/// the OSTree repository `repo` (made in archive mode, as a build's repo
/// served over HTTP is, when it does not exist): the commit's checksum.
/// The tree is an OS's as ostree lays it out: the kernel and initrd under
/// `/usr/lib/modules/KVER/`.
pub fn ostree_commit(repo: &Path, refname: &str, files: &[(&str, &[u8])]) -> String {
    if !repo.join("config").exists() {
        std::fs::create_dir_all(repo).unwrap();
        ostree(repo, &["init", "--mode=archive"]);
    }
    let tree = tempfile::tempdir().unwrap();
    for (path, bytes) in files {
        let p = tree.path().join(path.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, bytes).unwrap();
    }
    let dir = format!("--tree=dir={}", tree.path().display());
    ostree(
        repo,
        &[
            "commit",
            &format!("--branch={refname}"),
            "--subject=test",
            "--timestamp=2026-01-01T00:00:00Z",
            "--owner-uid=0",
            "--owner-gid=0",
            &dir,
        ],
    )
}
