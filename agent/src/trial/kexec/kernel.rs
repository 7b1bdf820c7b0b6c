//! What the running kernel lets a kexec do, read from sysfs and procfs:
//! the lockdown mode, whether kexec is disabled, whether an image is
//! loaded, Secure Boot, and whether the kernel will refuse a kexec image
//! without a valid signature (KEXEC_SIG enforcement).
//!
//! `updater status --json` reports it under `kernel`, and the agent logs it
//! when it prepares a kexec, so that an operator sees *before* an update
//! why a kernel would be refused. Nothing here is a decision: the running
//! kernel decides when kexec_file_load is called, and the agent explains
//! its errno (see [`super::loader::explain_with`]).
//!
//! The kernel refuses an unsigned or badly signed image
//! (kernel/kexec_file.c, `kimage_validate_signature`) when it was built
//! with `CONFIG_KEXEC_SIG_FORCE`, or when it is locked down (`integrity` or
//! `confidentiality`, which Debian's kernels enter under Secure Boot) and
//! IMA does not appraise the image instead. The lockdown mode is in
//! securityfs; the build option is not in sysfs, so it is read from
//! `/boot/config-RELEASE` when that exists.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The EFI global variable GUID `SecureBoot` lives under.
const SECURE_BOOT_VAR: &str = "SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c";

/// Whether the running kernel refuses kexec images without a valid signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SigEnforcement {
    /// Unsigned or wrongly signed images are refused.
    Enforced,
    /// Unsigned images are accepted (a present signature may still be checked).
    NotEnforced,
    /// Neither the lockdown mode nor the kernel's build options could be read.
    Unknown,
}

/// The running kernel's kexec-relevant facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelFacts {
    /// Lockdown mode: `none`, `integrity` or `confidentiality`; None when
    /// securityfs is not mounted or the kernel has no lockdown LSM.
    pub lockdown: Option<String>,
    /// Whether UEFI Secure Boot is on; None without EFI variables.
    pub secure_boot: Option<bool>,
    /// `kernel.kexec_load_disabled`: kexec is off until the next boot.
    pub kexec_load_disabled: Option<bool>,
    /// Whether a kexec image is loaded right now.
    pub kexec_loaded: Option<bool>,
    /// KEXEC_SIG enforcement.
    pub kexec_sig: SigEnforcement,
    /// Why `kexec_sig` says what it says, in one sentence.
    pub kexec_sig_reason: String,
}

impl KernelFacts {
    /// One line for logs and the human `status`.
    pub fn summary(&self) -> String {
        format!(
            "lockdown {}, kexec signature {} ({}){}",
            self.lockdown.as_deref().unwrap_or("unknown"),
            match self.kexec_sig {
                SigEnforcement::Enforced => "enforced",
                SigEnforcement::NotEnforced => "not enforced",
                SigEnforcement::Unknown => "enforcement unknown",
            },
            self.kexec_sig_reason,
            if self.kexec_load_disabled == Some(true) {
                "; kexec is disabled until the next boot (kernel.kexec_load_disabled = 1)"
            } else {
                ""
            }
        )
    }
}

/// Read a small text file, trimmed; None when absent or unreadable.
fn read_small(path: &Path) -> Option<String> {
    use std::io::Read;
    let mut s = String::new();
    // Bounded: these files are a line long; /boot/config is about 300 KB.
    std::fs::File::open(path)
        .ok()?
        .take(4 * 1024 * 1024)
        .read_to_string(&mut s)
        .ok()?;
    Some(s.trim().to_string())
}

fn flag(path: &Path) -> Option<bool> {
    match read_small(path)?.as_str() {
        "0" => Some(false),
        "1" => Some(true),
        _ => None,
    }
}

/// The lockdown mode from securityfs' `[none] integrity confidentiality`.
fn lockdown(text: &str) -> Option<String> {
    let start = text.find('[')?;
    let end = text[start..].find(']')? + start;
    Some(text[start + 1..end].to_string())
}

/// `SecureBoot` is 4 bytes of attributes and one byte of value.
fn secure_boot(sys_root: &Path) -> Option<bool> {
    let bytes = std::fs::read(sys_root.join("firmware/efi/efivars").join(SECURE_BOOT_VAR)).ok()?;
    bytes.get(4).map(|b| *b == 1)
}

/// What the kernel's build configuration says, when it can be read.
#[derive(Debug, PartialEq, Eq)]
enum Built {
    Force,
    Sig,
    NoSig,
}

fn built(root: &Path, release: Option<&str>) -> Option<Built> {
    let config = read_small(&root.join(format!("boot/config-{}", release?)))?;
    let has = |opt: &str| config.lines().any(|l| l.trim() == opt);
    Some(if has("CONFIG_KEXEC_SIG_FORCE=y") {
        Built::Force
    } else if has("CONFIG_KEXEC_SIG=y") {
        Built::Sig
    } else {
        Built::NoSig
    })
}

/// The facts, with `sys_root` standing for `/sys` (`kexec.sys_root`); procfs
/// and /boot are looked up beside it (`/proc`, `/boot` for `/sys`), so a test
/// can hand in a whole fake root.
pub fn facts(sys_root: &Path) -> KernelFacts {
    let root: PathBuf = sys_root
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"));
    let lockdown = read_small(&sys_root.join("kernel/security/lockdown"))
        .as_deref()
        .and_then(lockdown);
    let release = read_small(&root.join("proc/sys/kernel/osrelease"));
    let built = built(&root, release.as_deref());
    let locked = lockdown.as_deref().map(|m| m != "none");
    let (kexec_sig, kexec_sig_reason) = match (locked, &built) {
        (_, Some(Built::Force)) => (
            SigEnforcement::Enforced,
            "the kernel is built with CONFIG_KEXEC_SIG_FORCE".to_string(),
        ),
        (Some(true), _) => (
            SigEnforcement::Enforced,
            format!(
                "the kernel is locked down ({}): it loads only kexec images signed by a key in its keyrings",
                lockdown.as_deref().unwrap_or("")
            ),
        ),
        (Some(false), Some(Built::Sig)) => (
            SigEnforcement::NotEnforced,
            "CONFIG_KEXEC_SIG without _FORCE and no lockdown: a signature is checked when present, unsigned images load".into(),
        ),
        (Some(false), Some(Built::NoSig)) => (
            SigEnforcement::NotEnforced,
            "the kernel is built without CONFIG_KEXEC_SIG and is not locked down".into(),
        ),
        (Some(false), None) => (
            SigEnforcement::NotEnforced,
            "not locked down; the kernel's build configuration is not readable (no /boot/config-RELEASE), so CONFIG_KEXEC_SIG_FORCE is assumed off".into(),
        ),
        (None, _) => (
            SigEnforcement::Unknown,
            "securityfs is not mounted (no /sys/kernel/security/lockdown) and the build configuration is not readable".into(),
        ),
    };
    KernelFacts {
        lockdown,
        secure_boot: secure_boot(sys_root),
        kexec_load_disabled: flag(&root.join("proc/sys/kernel/kexec_load_disabled")),
        kexec_loaded: flag(&sys_root.join("kernel/kexec_loaded")),
        kexec_sig,
        kexec_sig_reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake root: `files` are (path under the root, contents).
    fn root(files: &[(&str, &[u8])]) -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        for (p, c) in files {
            let p = t.path().join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, c).unwrap();
        }
        t
    }

    #[test]
    fn lockdown_integrity_enforces_signatures() {
        let t = root(&[
            (
                "sys/kernel/security/lockdown",
                b"none [integrity] confidentiality\n",
            ),
            (
                "sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c",
                &[6, 0, 0, 0, 1],
            ),
            ("sys/kernel/kexec_loaded", b"0\n"),
            ("proc/sys/kernel/kexec_load_disabled", b"0\n"),
        ]);
        let f = facts(&t.path().join("sys"));
        assert_eq!(f.lockdown.as_deref(), Some("integrity"));
        assert_eq!(f.secure_boot, Some(true));
        assert_eq!(f.kexec_loaded, Some(false));
        assert_eq!(f.kexec_load_disabled, Some(false));
        assert_eq!(f.kexec_sig, SigEnforcement::Enforced);
        assert!(f.kexec_sig_reason.contains("locked down"), "{f:?}");
    }

    #[test]
    fn the_build_configuration_decides_without_lockdown() {
        for (config, want) in [
            (
                "CONFIG_KEXEC_FILE=y\nCONFIG_KEXEC_SIG=y\nCONFIG_KEXEC_SIG_FORCE=y\n",
                SigEnforcement::Enforced,
            ),
            (
                "CONFIG_KEXEC_FILE=y\nCONFIG_KEXEC_SIG=y\n# CONFIG_KEXEC_SIG_FORCE is not set\n",
                SigEnforcement::NotEnforced,
            ),
            (
                "# CONFIG_KEXEC_SIG is not set\n",
                SigEnforcement::NotEnforced,
            ),
        ] {
            let t = root(&[
                (
                    "sys/kernel/security/lockdown",
                    b"[none] integrity confidentiality\n",
                ),
                ("proc/sys/kernel/osrelease", b"6.1.0-test\n"),
                ("boot/config-6.1.0-test", config.as_bytes()),
            ]);
            let f = facts(&t.path().join("sys"));
            assert_eq!(f.lockdown.as_deref(), Some("none"));
            assert_eq!(f.kexec_sig, want, "{config}: {f:?}");
            assert_eq!(f.secure_boot, None);
        }
    }

    #[test]
    fn nothing_readable_is_unknown_and_disabled_kexec_is_said() {
        let t = root(&[("proc/sys/kernel/kexec_load_disabled", b"1\n")]);
        let f = facts(&t.path().join("sys"));
        assert_eq!(f.lockdown, None);
        assert_eq!(f.kexec_sig, SigEnforcement::Unknown);
        assert_eq!(f.kexec_load_disabled, Some(true));
        assert!(
            f.summary().contains("kexec_load_disabled = 1"),
            "{}",
            f.summary()
        );
    }
}
