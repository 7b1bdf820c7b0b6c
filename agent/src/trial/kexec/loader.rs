//! Loading a kernel with kexec_file_load(2), behind a trait so that tests
//! never call the real syscall.
//!
//! kexec_file_load (not kexec_load) is what lets the running kernel check
//! the new kernel's signature (KEXEC_SIG, since Linux 3.17) and places the
//! image itself, so it cannot overwrite the running kernel.

use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd};

use nix::errno::Errno;

use crate::error::BootError;

/// `KEXEC_FILE_UNLOAD`: unload the loaded image.
pub const KEXEC_FILE_UNLOAD: libc::c_ulong = 0x1;
/// `KEXEC_FILE_NO_INITRAMFS`: there is no initrd fd.
pub const KEXEC_FILE_NO_INITRAMFS: libc::c_ulong = 0x4;

/// Loads and unloads kexec images.
pub trait KexecLoader {
    /// Load `kernel` (and `initrd`) with `cmdline` for the next kexec.
    fn load(
        &self,
        kernel: BorrowedFd<'_>,
        initrd: Option<BorrowedFd<'_>>,
        cmdline: &CString,
    ) -> Result<(), Errno>;
    /// Unload a loaded image.
    fn unload(&self) -> Result<(), Errno>;
}

/// The real syscall (nix has no wrapper for kexec_file_load).
pub struct SyscallLoader;

impl KexecLoader for SyscallLoader {
    fn load(
        &self,
        kernel: BorrowedFd<'_>,
        initrd: Option<BorrowedFd<'_>>,
        cmdline: &CString,
    ) -> Result<(), Errno> {
        // The same switch that stops real restarts stops real loads: test
        // suites on a developer's machine must never stage a kernel there.
        if std::env::var_os(crate::trial::reboot::NO_REAL_RESTART_ENV).is_some() {
            tracing::warn!(
                "not calling kexec_file_load: {} is set",
                crate::trial::reboot::NO_REAL_RESTART_ENV
            );
            return Err(Errno::EPERM);
        }
        let bytes = cmdline.as_bytes_with_nul();
        let (initrd_fd, flags) = match initrd {
            Some(fd) => (fd.as_raw_fd(), 0),
            None => (-1, KEXEC_FILE_NO_INITRAMFS),
        };
        // SAFETY: the fds are open for the duration of the call, the command
        // line pointer and its length (including the NUL, as the kernel
        // requires) come from a live CString.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_kexec_file_load,
                kernel.as_raw_fd(),
                initrd_fd,
                bytes.len() as libc::c_ulong,
                bytes.as_ptr(),
                flags,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(Errno::last())
        }
    }

    fn unload(&self) -> Result<(), Errno> {
        // SAFETY: with KEXEC_FILE_UNLOAD the kernel ignores the other arguments.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_kexec_file_load,
                -1,
                -1,
                0 as libc::c_ulong,
                std::ptr::null::<u8>(),
                KEXEC_FILE_UNLOAD,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(Errno::last())
        }
    }
}

/// What a refusal by the running kernel means, and what to do about it.
pub fn explain(errno: Errno) -> String {
    match errno {
        Errno::EKEYREJECTED | Errno::EBADMSG => format!(
            "the running kernel refused the new kernel's signature ({errno}): it enforces KEXEC_SIG, so the kernel image must carry a signature by a key in the running kernel's keyrings (sign it with sbsign and enroll the key)"
        ),
        // Measured under Secure Boot (UEFI-NOTES): an image with no
        // Authenticode signature gives ENODATA ("PEFILE: Unsigned PE
        // binary"), one signed by a key no keyring holds gives ENOKEY.
        Errno::ENODATA => format!(
            "the new kernel carries no Authenticode signature ({errno}), and the running kernel enforces kexec signatures (KEXEC_SIG or lockdown): sign the release's kernel image with sbsign, by a key in the running kernel's keyrings (UEFI db, MOK, or the kernel's builtin keys), before `release create`; the release's own ed25519 kernel signature is the agent's check, not the kernel's"
        ),
        Errno::ENOKEY => format!(
            "the new kernel is signed by a key the running kernel does not trust ({errno}): none of its keyrings (builtin, secondary, platform = UEFI db, MOK) holds the key that signed it; sign the release's kernel with an enrolled key, or enroll the signer (a distribution's own signed kernel reaches the kernel only through shim's MokList)"
        ),
        Errno::EPERM => format!(
            "kexec is not permitted ({errno}): the kernel is in lockdown mode or the agent lacks CAP_SYS_BOOT; run the agent as root without lockdown, or use the reboot path"
        ),
        Errno::ENOSYS | Errno::EOPNOTSUPP => format!(
            "the running kernel has no kexec_file_load ({errno}); it needs CONFIG_KEXEC_FILE, or use the reboot path"
        ),
        Errno::ENOEXEC => format!(
            "the running kernel cannot load this image ({errno}): kexec_file_load needs a kernel it can parse (a bzImage on x86, vmlinuz, not vmlinux)"
        ),
        Errno::EBUSY => format!("a kexec image is already loaded or being used ({errno}); unload it with `kexec -u` first"),
        Errno::ENOMEM => format!("not enough memory to load the new kernel ({errno})"),
        other => format!("kexec_file_load failed: {other}"),
    }
}

/// [`explain`], made precise by what the running kernel says about itself:
/// an EPERM from a kernel with kexec disabled or locked down names that
/// cause instead of listing the candidates.
pub fn explain_with(errno: Errno, kernel: &super::kernel::KernelFacts) -> String {
    use super::kernel::SigEnforcement;
    match errno {
        Errno::EPERM if kernel.kexec_load_disabled == Some(true) => format!(
            "kexec is disabled on the running kernel ({errno}): kernel.kexec_load_disabled = 1, which only a boot clears; use the reboot path (kexec.policy = \"prefer\" falls back to it)"
        ),
        Errno::EPERM | Errno::EKEYREJECTED | Errno::EBADMSG | Errno::ENODATA | Errno::ENOKEY
            if kernel.kexec_sig == SigEnforcement::Enforced =>
        {
            let what = match errno {
                Errno::ENODATA => "the new kernel carries no Authenticode signature",
                Errno::ENOKEY => "the new kernel is signed by a key none of its keyrings holds",
                _ => "its signature check failed",
            };
            format!(
                "the running kernel refused the new kernel ({errno}: {what}) because it enforces kexec signatures: {}; sign the release's kernel with a key in the running kernel's keyrings (sbsign; the key in UEFI db, MOK or the builtin keyring), or use the reboot path",
                kernel.kexec_sig_reason
            )
        }
        _ => explain(errno),
    }
}

/// Why an image with no Authenticode signature is not even loaded when the
/// running kernel enforces kexec signatures (found before the trial is
/// recorded; the load would fail with ENODATA).
pub fn unsigned_image(kernel: &super::kernel::KernelFacts) -> String {
    format!(
        "the new kernel carries no Authenticode signature, and the running kernel would refuse it (ENODATA) because it enforces kexec signatures: {}; sign the release's kernel image with sbsign, by a key in the running kernel's keyrings (UEFI db, MOK or the builtin keys), before `release create`; nothing was changed",
        kernel.kexec_sig_reason
    )
}

/// A kexec refusal as a boot-control error (exit code 6).
pub fn refusal(errno: Errno) -> BootError {
    BootError(explain(errno))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_refusal_has_its_own_message() {
        let cases = [
            (Errno::EKEYREJECTED, "KEXEC_SIG"),
            (Errno::EBADMSG, "KEXEC_SIG"),
            (Errno::EPERM, "lockdown"),
            (Errno::ENOSYS, "CONFIG_KEXEC_FILE"),
            (Errno::EOPNOTSUPP, "CONFIG_KEXEC_FILE"),
            (Errno::ENOEXEC, "bzImage"),
            (Errno::ENODATA, "no Authenticode signature"),
            (Errno::ENOKEY, "does not trust"),
        ];
        for (errno, word) in cases {
            let msg = explain(errno);
            assert!(msg.contains(word), "{errno}: {msg}");
            let err: anyhow::Error = refusal(errno).into();
            assert_eq!(crate::error::classify(&err), crate::error::ExitCode::Boot);
        }
    }

    fn facts(
        disabled: bool,
        sig: super::super::kernel::SigEnforcement,
    ) -> super::super::kernel::KernelFacts {
        super::super::kernel::KernelFacts {
            lockdown: Some("integrity".into()),
            secure_boot: Some(true),
            kexec_load_disabled: Some(disabled),
            kexec_loaded: Some(false),
            kexec_sig: sig,
            kexec_sig_reason: "the kernel is locked down (integrity)".into(),
        }
    }

    #[test]
    fn a_refusal_names_the_cause_the_kernel_reports() {
        use super::super::kernel::SigEnforcement;
        let msg = explain_with(Errno::EPERM, &facts(true, SigEnforcement::Enforced));
        assert!(msg.contains("kexec_load_disabled = 1"), "{msg}");
        let msg = explain_with(Errno::EPERM, &facts(false, SigEnforcement::Enforced));
        assert!(
            msg.contains("locked down (integrity)") && msg.contains("sign"),
            "{msg}"
        );
        let msg = explain_with(Errno::EPERM, &facts(false, SigEnforcement::NotEnforced));
        assert_eq!(msg, explain(Errno::EPERM));
        let msg = explain_with(Errno::ENODATA, &facts(false, SigEnforcement::Enforced));
        assert!(
            msg.contains("no Authenticode signature") && msg.contains("locked down"),
            "{msg}"
        );
        let msg = explain_with(Errno::ENOEXEC, &facts(false, SigEnforcement::Enforced));
        assert_eq!(msg, explain(Errno::ENOEXEC));
    }

    /// The agent loads kernels only with kexec_file_load: never the
    /// kexec_load syscall (no signature check, the caller places the image
    /// and can overwrite the running kernel) and never kexec-tools, whose
    /// `kexec -l` uses kexec_load unless told `-s`.
    #[test]
    fn no_source_file_reaches_kexec_load() {
        fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(&p, out);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    out.push(p);
                }
            }
        }
        let mut files = Vec::new();
        walk(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut files,
        );
        assert!(files.len() > 50, "found only {} source files", files.len());
        // Spelled in pieces so that this file does not match itself.
        let banned = [
            ["SYS_", "kexec_load"].concat(),
            ["Command::new(\"", "kexec\")"].concat(),
            ["\"/usr/sbin/", "kexec\""].concat(),
            ["\"/sbin/", "kexec\""].concat(),
        ];
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            for b in &banned {
                assert!(!text.contains(b.as_str()), "{} contains {b}", f.display());
            }
        }
    }
}
