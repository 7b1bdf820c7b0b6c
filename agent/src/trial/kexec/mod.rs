//! The kexec boot method: boot the new slot without firmware or bootloader,
//! keeping every safety property of the reboot path.
//!
//! Its part of a trial start (the order is the trial starter's, in
//! `trial/mod.rs`):
//!
//! 1. prepare, before anything is recorded: re-check the manifest's
//!    signatures, copy the installed group's kernel and initrd into sealed
//!    memfds, check the kernel's own signature (kernel-role keys) and the
//!    initrd hash over the sealed bytes, compose and validate the command
//!    line; and check that the watchdog will survive the kexec;
//! 2. (the trial is recorded; the bootloader's primary is NOT changed and no
//!    one-shot is armed, so any reset during the trial goes back through
//!    firmware and bootloader to the old primary);
//! 3. stage: kexec_file_load with exactly the sealed fds, then arm the
//!    hardware watchdog (nowayout: from here on, a hang resets);
//! 4. jump: `systemctl kexec` under systemd, else sync + reboot(RB_KEXEC).
//!
//! The watchdog is armed after the load, not before: arming a nowayout
//! watchdog cannot be undone, and a load the kernel refuses must not commit
//! the machine to a reset (docs/architecture.md).

pub mod kernel;
pub mod loader;
pub mod memfd;
pub mod watchdog;

use std::ffi::CString;

use anyhow::{Context, Result};
use updater_format::keys::Keyring;
use updater_format::manifest::verify::{check_cmdline, verify_kernel_statement};

use super::method::{BootMethod, MethodError, Refusal};
use super::reboot::{Rebooter, Restart};
use crate::config::WatchdogUnsafe;
use crate::error::{usage, BootError, Rejected};
use crate::session::Session;
use crate::slots::SlotBackend;
use loader::KexecLoader;
use memfd::SealedMemfd;
use watchdog::Watchdog;

/// The kernel's command line limit on x86 (COMMAND_LINE_SIZE), NUL included.
pub const MAX_CMDLINE: usize = 2048;

/// A verified kernel, initrd and command line, ready to load.
#[derive(Debug)]
pub struct KexecPlan {
    /// The sealed kernel.
    pub kernel: SealedMemfd,
    /// The sealed initrd.
    pub initrd: Option<SealedMemfd>,
    /// The command line.
    pub cmdline: CString,
}

/// What the kexec step did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum KexecOutcome {
    /// Loaded, then unloaded (`--dry-run`).
    DryRun {
        /// The command line that would be used.
        cmdline: String,
        /// Kernel size.
        kernel_bytes: u64,
        /// Initrd size.
        initrd_bytes: Option<u64>,
    },
    /// Jumped (or the jump was requested).
    Jumped {
        /// The command line.
        cmdline: String,
    },
    /// kexec was not possible; a reboot trial was started instead.
    FellBack {
        /// Why.
        reason: String,
    },
}

/// The word on a kexec trial's command line that tells the new kernel's
/// `updater health` it was started by kexec (so its commit guards the
/// first cold boot). Defined beside the command line's reader.
pub use crate::session::KEXEC_MARK;

/// The command line for a kexec trial of `slot`: the manifest's, what the
/// slot backend says the group's kernel needs to find its root (`root=` for
/// a partition), then `updater.slot=SLOT updater.trial=1 updater.kexec=1
/// updater.deadline=SECS`. The deadline is the trial's
/// (`trial.deadline_secs`): under systemd the package's generator makes it
/// the bound on the trial boot reaching boot-complete.target.
pub fn compose_cmdline(
    base: Option<&str>,
    boot_args: &[String],
    slot: &str,
    deadline: std::time::Duration,
) -> Result<CString> {
    let mut parts: Vec<String> = Vec::new();
    if let Some(b) = base {
        check_cmdline(b)?;
        parts.extend(b.split_whitespace().map(str::to_string));
    }
    for a in boot_args {
        // One word each, and never one of the agent's own parameters (the
        // backend's configuration is not trusted to set those).
        if a.is_empty()
            || a.contains(char::is_whitespace)
            || a.contains('\0')
            || a.starts_with("updater.")
        {
            return Err(usage(format!(
                "the slot's boot argument {a:?} cannot go on a kernel command line"
            )));
        }
        parts.push(a.clone());
    }
    parts.push(format!("updater.slot={slot}"));
    parts.push("updater.trial=1".into());
    parts.push(KEXEC_MARK.into());
    parts.push(format!("updater.deadline={}", deadline.as_secs().max(1)));
    let line = parts.join(" ");
    if parts
        .iter()
        .filter(|p| p.starts_with("updater.slot="))
        .count()
        != 1
    {
        return Err(Rejected::Invalid(format!(
            "the command line would have more than one updater.slot=: {line:?}"
        ))
        .into());
    }
    if line.len() + 1 > MAX_CMDLINE {
        return Err(Rejected::Invalid(format!(
            "the kexec command line is {} bytes, over the kernel's {MAX_CMDLINE}-byte limit",
            line.len() + 1
        ))
        .into());
    }
    CString::new(line)
        .map_err(|_| Rejected::Invalid("the command line contains a NUL byte".into()).into())
}

/// Verify everything over sealed bytes: the manifest again, the kernel's
/// own signature over the sealed kernel, the initrd's pinned hash, the
/// command line.
pub fn prepare(
    manifest_bytes: &[u8],
    keyring: &Keyring,
    slots: &dyn SlotBackend,
    group: &str,
    deadline: std::time::Duration,
) -> Result<KexecPlan> {
    // The manifest again: signatures and structure (verify before use).
    let v = updater_format::manifest::verify::open(manifest_bytes, keyring)?;
    let m = &v.manifest;
    if let Some(u) = &m.uki {
        return prepare_uki(m, u, keyring, slots, group, deadline);
    }
    let kinfo = m.kernel.as_ref().ok_or_else(|| {
        usage("the release has no kernel image, so there is nothing to kexec; use --reboot")
    })?;
    let missing = |class: &str| {
        usage(format!(
            "slot group {group} has no {class} target; add slots.{group}.targets.{class} to the configuration"
        ))
    };
    let kernel_path = slots.kernel(group).ok_or_else(|| missing("kernel"))?;
    let kernel = seal_pinned(&kernel_path, "kernel", group, kinfo.size, &kinfo.sha256)?;
    // The kernel's own signature, over the hash of the sealed bytes.
    verify_kernel_statement(&kernel.digest(), kernel.size(), &kinfo.signatures, keyring)?;
    let initrd = match &m.initrd {
        Some(i) => {
            let path = slots.initrd(group).ok_or_else(|| missing("initrd"))?;
            Some(seal_pinned(&path, "initrd", group, i.size, &i.sha256)?)
        }
        None => None,
    };
    plan(m, slots, group, deadline, kernel, initrd)
}

/// A UKI release: seal the whole UKI (checked against its pin), unpack its
/// `.linux`, `.initrd` and `.cmdline` from the sealed bytes into sealed
/// memfds of their own, and check each against the manifest before the
/// kernel gets it: the `.linux` section's kernel-role signature, the
/// `.initrd`'s pin, the `.cmdline` against the signed command line.
/// Mainline Linux cannot kexec a UKI itself (UEFI-NOTES).
fn prepare_uki(
    m: &updater_format::manifest::Manifest,
    u: &updater_format::manifest::UkiInfo,
    keyring: &Keyring,
    slots: &dyn SlotBackend,
    group: &str,
    deadline: std::time::Duration,
) -> Result<KexecPlan> {
    let path = slots.uki(group).ok_or_else(|| {
        usage(format!(
            "slot group {group} has no uki target; add slots.{group}.targets.uki to the configuration"
        ))
    })?;
    let uki = seal_pinned(&path, "uki", group, u.size, &u.sha256)?;
    let bytes = uki.read_all()?;
    let bad = |e: String| -> anyhow::Error {
        Rejected::Invalid(format!("the UKI of slot {group}: {e}")).into()
    };
    let section = |name: &str| -> Result<Option<&[u8]>> {
        updater_format::pe::section(&bytes, name).map_err(|e| bad(e.to_string()))
    };
    let linux = section(".linux")?.ok_or_else(|| bad("it has no .linux section".into()))?;
    let kernel = SealedMemfd::from_bytes(linux, "updater-uki-linux")?;
    if kernel.digest() != u.linux.sha256 || kernel.size() != u.linux.size {
        return Err(bad(format!(
            "its .linux section is {} bytes with sha256 {}, the manifest pins {} bytes with {}",
            kernel.size(),
            kernel.digest(),
            u.linux.size,
            u.linux.sha256
        )));
    }
    verify_kernel_statement(
        &kernel.digest(),
        kernel.size(),
        &u.linux.signatures,
        keyring,
    )?;
    let initrd = match (section(".initrd")?, &u.initrd) {
        (Some(b), Some(pin)) => {
            let sealed = SealedMemfd::from_bytes(b, "updater-uki-initrd")?;
            if sealed.digest() != pin.sha256 || sealed.size() != pin.size {
                return Err(bad(format!(
                    "its .initrd section is {} bytes with sha256 {}, the manifest pins {} bytes with {}",
                    sealed.size(),
                    sealed.digest(),
                    pin.size,
                    pin.sha256
                )));
            }
            Some(sealed)
        }
        (None, None) => None,
        (Some(_), None) => {
            return Err(bad(
                "it has an .initrd section the manifest does not pin".into()
            ))
        }
        (None, Some(_)) => {
            return Err(bad(
                "the manifest pins an .initrd section it does not have".into()
            ))
        }
    };
    let text = section(".cmdline")?.map(|c| {
        String::from_utf8_lossy(c)
            .trim_end_matches(['\0', '\n', ' '])
            .to_string()
    });
    if text.is_some() && text != m.cmdline {
        return Err(bad(format!(
            "its .cmdline section {text:?} is not the release's signed command line {:?}",
            m.cmdline
        )));
    }
    plan(m, slots, group, deadline, kernel, initrd)
}

/// The plan of verified parts: the command line composed from the signed
/// one and the slot's arguments.
fn plan(
    m: &updater_format::manifest::Manifest,
    slots: &dyn SlotBackend,
    group: &str,
    deadline: std::time::Duration,
    kernel: SealedMemfd,
    initrd: Option<SealedMemfd>,
) -> Result<KexecPlan> {
    let cmdline = compose_cmdline(
        m.cmdline.as_deref(),
        &slots.boot_args(group),
        group,
        deadline,
    )?;
    Ok(KexecPlan {
        kernel,
        initrd,
        cmdline,
    })
}

/// Copy `path` into a sealed memfd and check the sealed bytes against the
/// size and sha256 the manifest pins.
fn seal_pinned(
    path: &std::path::Path,
    what: &str,
    group: &str,
    size: u64,
    sha256: &updater_format::Sha256Digest,
) -> Result<SealedMemfd> {
    let sealed = SealedMemfd::from_file(path, &format!("updater-{what}"), size)?;
    if sealed.digest() != *sha256 {
        return Err(Rejected::Mismatch {
            what: format!("{what} of slot {group}"),
            reason: format!(
                "sha256 of the sealed bytes is {}, the manifest says {sha256}",
                sealed.digest()
            ),
        }
        .into());
    }
    Ok(sealed)
}

/// The kexec boot method.
pub struct KexecMethod<'m> {
    loader: &'m dyn KexecLoader,
    watchdog: Option<&'m mut dyn Watchdog>,
    rebooter: &'m dyn Rebooter,
    dry_run: bool,
    plan: Option<KexecPlan>,
}

impl<'m> KexecMethod<'m> {
    /// The method over the machine's loader, watchdog and rebooter; a dry
    /// run only warns about a watchdog that would not survive.
    pub fn new(
        loader: &'m dyn KexecLoader,
        watchdog: Option<&'m mut dyn Watchdog>,
        rebooter: &'m dyn Rebooter,
        dry_run: bool,
    ) -> KexecMethod<'m> {
        KexecMethod {
            loader,
            watchdog,
            rebooter,
            dry_run,
            plan: None,
        }
    }

    fn plan(&self) -> Result<&KexecPlan> {
        self.plan
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("kexec: stage before prepare"))
    }

    /// The command line of the prepared plan.
    pub fn cmdline(&self) -> Result<String> {
        Ok(self.plan()?.cmdline.to_string_lossy().into_owned())
    }

    /// `--dry-run`: load the prepared kernel and unload it again.
    pub fn dry_run(&self) -> Result<KexecOutcome> {
        let plan = self.plan()?;
        let initrd_fd = plan.initrd.as_ref().map(|i| i.fd());
        self.loader
            .load(plan.kernel.fd(), initrd_fd, &plan.cmdline)
            .map_err(loader::refusal)?;
        self.loader.unload().map_err(loader::refusal)?;
        Ok(KexecOutcome::DryRun {
            cmdline: self.cmdline()?,
            kernel_bytes: plan.kernel.size(),
            initrd_bytes: plan.initrd.as_ref().map(|i| i.size()),
        })
    }
}

impl BootMethod for KexecMethod<'_> {
    fn kind(&self) -> Restart {
        Restart::Kexec
    }

    fn prepare(
        &mut self,
        session: &Session,
        group: &str,
        manifest: &[u8],
    ) -> Result<(), MethodError> {
        let settings = session.settings();
        let keyring = session.keyring()?;
        let plan = prepare(
            manifest,
            &keyring,
            session.slots(),
            group,
            settings.trial.deadline,
        )
        .context("verifying the kernel before kexec")?;
        // Said before anything is recorded, so that a refusal to come is
        // explained by what the kernel reported about itself.
        let facts = kernel::facts(&settings.kexec.sys_root);
        tracing::info!("running kernel: {}", facts.summary());
        // A kernel that enforces kexec signatures refuses an image with no
        // Authenticode signature at all (ENODATA): said now, before the
        // trial is recorded, instead of by the load after it. Whether the
        // key that signed it is one the kernel trusts only the load can
        // tell (ENOKEY).
        if facts.kexec_sig == kernel::SigEnforcement::Enforced {
            let bytes = plan.kernel.read_all()?;
            if updater_format::pe::has_authenticode_signature(&bytes) == Ok(false) {
                return Err(MethodError::Refused(Refusal::KernelRefused {
                    errno: nix::errno::Errno::ENODATA,
                    why: loader::unsigned_image(&facts),
                }));
            }
        }
        self.plan = Some(plan);
        match self.watchdog.as_deref() {
            None => tracing::warn!(
                "no kexec.watchdog configured: if the trial kernel hangs, nothing resets the machine"
            ),
            Some(w) => {
                if let Err(why) = w.survives_kexec() {
                    match settings.kexec.watchdog_unsafe {
                        WatchdogUnsafe::Warn => {
                            tracing::warn!("{why}; continuing (kexec.watchdog_unsafe = \"warn\")")
                        }
                        WatchdogUnsafe::Refuse if self.dry_run => tracing::warn!("{why}"),
                        WatchdogUnsafe::Refuse => {
                            return Err(MethodError::Refused(Refusal::WatchdogUnsafe(why)))
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn stage(&mut self, session: &mut Session, _group: &str) -> Result<(), MethodError> {
        let timeout = session.settings().kexec.watchdog_timeout;
        let plan = self.plan()?;
        let initrd_fd = plan.initrd.as_ref().map(|i| i.fd());
        // Exactly the sealed fds: the running kernel can also enforce
        // KEXEC_SIG on them.
        if let Err(errno) = self.loader.load(plan.kernel.fd(), initrd_fd, &plan.cmdline) {
            let facts = kernel::facts(&session.settings().kexec.sys_root);
            return Err(MethodError::Refused(Refusal::KernelRefused {
                errno,
                why: loader::explain_with(errno, &facts),
            }));
        }
        crate::failpoint!("after-kexec-load");
        if let Some(w) = self.watchdog.as_deref_mut() {
            if let Err(e) = w.arm(timeout) {
                let _ = self.loader.unload();
                return Err(MethodError::Refused(Refusal::WatchdogArm(format!("{e:#}"))));
            }
        }
        crate::failpoint!("after-watchdog-armed");
        Ok(())
    }

    fn jump(&mut self) -> Result<()> {
        tracing::info!("kexec with: {}", self.cmdline()?);
        self.rebooter.restart(Restart::Kexec)
    }
}

/// A kexec refusal under `kexec.policy = "require"`: a boot-control error
/// (exit code 6).
pub fn required(r: &Refusal) -> anyhow::Error {
    BootError(r.reason()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdline_composition_and_limits() {
        let t = std::time::Duration::from_secs(600);
        let root = |r: &str| vec![format!("root={r}")];
        let c = compose_cmdline(Some("console=ttyS0  quiet"), &root("/dev/vda3"), "B", t).unwrap();
        assert_eq!(
            c.to_str().unwrap(),
            "console=ttyS0 quiet root=/dev/vda3 updater.slot=B updater.trial=1 updater.kexec=1 updater.deadline=600"
        );
        let c = compose_cmdline(None, &[], "A", std::time::Duration::from_millis(10)).unwrap();
        assert_eq!(
            c.to_str().unwrap(),
            "updater.slot=A updater.trial=1 updater.kexec=1 updater.deadline=1"
        );
        assert!(compose_cmdline(Some("quiet updater.slot=A"), &[], "B", t).is_err());
        assert!(compose_cmdline(Some("a\0b"), &[], "B", t).is_err());
        assert!(compose_cmdline(Some("quiet"), &root("/dev/x y"), "B", t).is_err());
        assert!(compose_cmdline(Some("quiet"), &["updater.slot=A".into()], "B", t).is_err());
        // A deployment backend's own argument goes on as it is.
        let c = compose_cmdline(None, &["ostree=/ostree/boot.1/os/0".into()], "B", t).unwrap();
        assert!(c
            .to_str()
            .unwrap()
            .starts_with("ostree=/ostree/boot.1/os/0 updater.slot=B"));
        // 1536 bytes from the manifest fit; a root device that pushes the
        // line past 2048 does not.
        let long = "x".repeat(1536);
        assert!(compose_cmdline(Some(&long), &[], "B", t).is_ok());
        let dev = format!("/dev/{}", "r".repeat(600));
        let e = compose_cmdline(Some(&long), &root(&dev), "B", t)
            .unwrap_err()
            .to_string();
        assert!(e.contains("over the kernel's 2048-byte limit"), "{e}");
    }
}
