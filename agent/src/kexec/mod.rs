//! `updater apply --kexec`: boot the new slot without firmware or
//! bootloader, keeping every safety property of the reboot path.
//!
//! Order of steps (each tested):
//!
//! 1. verify: re-check the manifest's signatures, copy the installed
//!    group's kernel and initrd into sealed memfds, check the kernel's own
//!    signature (kernel-role keys) and the initrd hash over the sealed bytes,
//!    compose and validate the command line — before anything is recorded;
//!    and check that the watchdog will survive the kexec;
//! 2. record the trial durably (state `trial`); the bootloader's primary is
//!    NOT changed and no one-shot is armed, so any reset during the trial
//!    goes back through firmware and bootloader to the old primary;
//! 3. load: kexec_file_load with exactly the sealed fds;
//! 4. arm the hardware watchdog (nowayout: from here on, a hang resets);
//! 5. jump: `systemctl kexec` under systemd, else sync + reboot(RB_KEXEC).
//!
//! The watchdog is armed after the load, not before: arming a nowayout
//! watchdog cannot be undone, and a load the kernel refuses must not commit
//! the machine to a reset (docs/architecture.md).

pub mod loader;
pub mod memfd;
pub mod watchdog;

use std::ffi::CString;

use anyhow::{Context, Result};
use chrono::Utc;

use crate::boot::reboot::{Rebooter, Restart};
use crate::boot::Bootloader;
use crate::config::{KexecPolicy, Settings, SlotGroupConfig, WatchdogUnsafe};
use crate::error::{usage, BootError, Rejected};
use crate::state::{GroupStatus, State, StateStore};
use loader::KexecLoader;
use memfd::SealedMemfd;
use updater_format::keys::Keyring;
use updater_format::manifest::verify::{check_cmdline, verify_kernel_statement};
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

/// The parts of a kexec trial that touch the machine.
pub struct KexecDeps<'a> {
    /// Loads the kernel.
    pub loader: &'a dyn KexecLoader,
    /// The watchdog, if one is configured.
    pub watchdog: Option<&'a mut dyn Watchdog>,
    /// Restarts the machine.
    pub rebooter: &'a dyn Rebooter,
}

/// The command line for a kexec trial of `slot`: the manifest's, the
/// group's root device, then `updater.slot=SLOT updater.trial=1`.
pub fn compose_cmdline(base: Option<&str>, root: Option<&str>, slot: &str) -> Result<CString> {
    let mut parts: Vec<String> = Vec::new();
    if let Some(b) = base {
        check_cmdline(b)?;
        parts.extend(b.split_whitespace().map(str::to_string));
    }
    if let Some(r) = root {
        if r.is_empty() || r.contains(char::is_whitespace) || r.contains('\0') {
            return Err(usage(format!(
                "root device {r:?} cannot go on a kernel command line"
            )));
        }
        parts.push(format!("root={r}"));
    }
    parts.push(format!("updater.slot={slot}"));
    parts.push("updater.trial=1".into());
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

/// Step 1: verify everything over sealed bytes.
pub fn prepare(
    manifest_bytes: &[u8],
    keyring: &Keyring,
    group: &SlotGroupConfig,
) -> Result<KexecPlan> {
    // The manifest again: signatures and structure (verify before use).
    let v = updater_format::manifest::verify::open(manifest_bytes, keyring)?;
    let m = &v.manifest;
    let kinfo = m.kernel.as_ref().ok_or_else(|| {
        usage("the release has no kernel image, so there is nothing to kexec; use --reboot")
    })?;
    let target = |class: &str| {
        group.targets.get(class).ok_or_else(|| {
            usage(format!(
                "slot group {} has no {class} target; add slots.{}.targets.{class} to the configuration",
                group.name, group.name
            ))
        })
    };
    let kernel = seal_pinned(
        target("kernel")?,
        "kernel",
        &group.name,
        kinfo.size,
        &kinfo.sha256,
    )?;
    // The kernel's own signature, over the hash of the sealed bytes.
    verify_kernel_statement(&kernel.digest(), kernel.size(), &kinfo.signatures, keyring)?;
    let initrd = match &m.initrd {
        Some(i) => Some(seal_pinned(
            target("initrd")?,
            "initrd",
            &group.name,
            i.size,
            &i.sha256,
        )?),
        None => None,
    };
    let cmdline = compose_cmdline(
        m.cmdline.as_deref(),
        group.root_device.as_deref(),
        &group.name,
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

fn revert_trial(store: &StateStore, state: &mut State, group: &str) -> Result<()> {
    state.trial = None;
    let g = state.group_mut(group);
    g.status = GroupStatus::Installed;
    g.updated = Some(Utc::now());
    store.save(state)
}

/// Steps 1–5 for an installed group.
#[allow(clippy::too_many_arguments)]
pub fn start_kexec_trial(
    settings: &Settings,
    store: &StateStore,
    state: &mut State,
    boot: &mut dyn Bootloader,
    group: &SlotGroupConfig,
    manifest_bytes: &[u8],
    deps: KexecDeps<'_>,
    dry_run: bool,
) -> Result<KexecOutcome> {
    let policy = settings.kexec.policy;
    let fall_back = |reason: String,
                     state: &mut State,
                     boot: &mut dyn Bootloader|
     -> Result<KexecOutcome> {
        tracing::warn!("{reason}; falling back to a reboot trial");
        crate::trial::start_reboot_trial(settings, store, state, boot, deps.rebooter, &group.name)?;
        Ok(KexecOutcome::FellBack { reason })
    };
    if policy == KexecPolicy::Never && !dry_run {
        return fall_back(
            "kexec is disabled on this device (kexec.policy = \"never\")".into(),
            state,
            boot,
        );
    }
    // 1. Verify.
    let keyring = Keyring::load(&settings.keyring)?;
    let plan =
        prepare(manifest_bytes, &keyring, group).context("verifying the kernel before kexec")?;
    let cmdline = plan.cmdline.to_string_lossy().into_owned();
    let watchdog = deps.watchdog;
    if watchdog.is_none() {
        tracing::warn!(
            "no kexec.watchdog configured: if the trial kernel hangs, nothing resets the machine"
        );
    }
    if let Some(w) = watchdog.as_deref() {
        if let Err(why) = w.survives_kexec() {
            match settings.kexec.watchdog_unsafe {
                WatchdogUnsafe::Warn => {
                    tracing::warn!("{why}; continuing (kexec.watchdog_unsafe = \"warn\")")
                }
                WatchdogUnsafe::Refuse if dry_run => tracing::warn!("{why}"),
                WatchdogUnsafe::Refuse => match policy {
                    KexecPolicy::Require => return Err(BootError(why).into()),
                    _ => return fall_back(why, state, boot),
                },
            }
        }
    }
    let initrd_fd = plan.initrd.as_ref().map(|i| i.fd());
    if dry_run {
        deps.loader
            .load(plan.kernel.fd(), initrd_fd, &plan.cmdline)
            .map_err(loader::refusal)?;
        deps.loader.unload().map_err(loader::refusal)?;
        return Ok(KexecOutcome::DryRun {
            cmdline,
            kernel_bytes: plan.kernel.size(),
            initrd_bytes: plan.initrd.as_ref().map(|i| i.size()),
        });
    }
    // 2. Record the trial.
    crate::trial::record_trial(store, state, &group.name, settings)?;
    // 3. Load exactly the sealed fds.
    if let Err(errno) = deps.loader.load(plan.kernel.fd(), initrd_fd, &plan.cmdline) {
        let why = loader::explain(errno);
        return match policy {
            KexecPolicy::Require => {
                // Leave no trial armed: nothing will boot the new slot.
                revert_trial(store, state, &group.name)?;
                Err(BootError(why).into())
            }
            _ => fall_back(why, state, boot),
        };
    }
    crate::failpoint!("after-kexec-load");
    // 4. Arm the watchdog.
    if let Some(w) = watchdog {
        if let Err(e) = w.arm(settings.kexec.watchdog_timeout) {
            let _ = deps.loader.unload();
            return match policy {
                KexecPolicy::Require => {
                    revert_trial(store, state, &group.name)?;
                    Err(e.context("arming the watchdog before kexec"))
                }
                _ => fall_back(format!("arming the watchdog failed: {e:#}"), state, boot),
            };
        }
    }
    crate::failpoint!("after-watchdog-armed");
    // 5. Jump.
    crate::trial::report_trial_started(settings, state, &group.name);
    tracing::info!("kexec into slot {} with: {cmdline}", group.name);
    deps.rebooter.restart(Restart::Kexec)?;
    Ok(KexecOutcome::Jumped { cmdline })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdline_composition_and_limits() {
        let c = compose_cmdline(Some("console=ttyS0  quiet"), Some("/dev/vda3"), "B").unwrap();
        assert_eq!(
            c.to_str().unwrap(),
            "console=ttyS0 quiet root=/dev/vda3 updater.slot=B updater.trial=1"
        );
        let c = compose_cmdline(None, None, "A").unwrap();
        assert_eq!(c.to_str().unwrap(), "updater.slot=A updater.trial=1");
        assert!(compose_cmdline(Some("quiet updater.slot=A"), None, "B").is_err());
        assert!(compose_cmdline(Some("a\0b"), None, "B").is_err());
        assert!(compose_cmdline(Some("quiet"), Some("/dev/x y"), "B").is_err());
        // 1536 bytes from the manifest fit; a root device that pushes the
        // line past 2048 does not.
        let long = "x".repeat(1536);
        assert!(compose_cmdline(Some(&long), None, "B").is_ok());
        let root = format!("/dev/{}", "r".repeat(600));
        let e = compose_cmdline(Some(&long), Some(&root), "B")
            .unwrap_err()
            .to_string();
        assert!(e.contains("over the kernel's 2048-byte limit"), "{e}");
    }
}
