//! Restarting the machine — a full reboot (through firmware and the
//! bootloader) or a kexec jump into an already loaded kernel — and the
//! reboot boot method: arm the bootloader's one-shot trial, then reboot.
//!
//! Behind a trait so that nothing on a build host ever reboots it: tests
//! configure a command that only records the request; the QEMU proof runs
//! the real thing inside the guest.

use std::process::Command;

use anyhow::{Context, Result};

use super::method::{BootMethod, MethodError};
use crate::error::BootError;
use crate::session::Session;

pub use super::method::Restart;

/// Restarts the machine.
pub trait Rebooter {
    /// Restart now. On success this normally does not return (or returns
    /// while the system shuts down).
    fn restart(&self, how: Restart) -> Result<()>;
}

/// The real thing: `systemctl reboot|kexec` when systemd is PID 1 (a clean
/// shutdown that unmounts filesystems), else sync and reboot(2).
pub struct SystemRebooter;

/// Whether systemd runs this system (the test sd_booted() uses).
pub fn systemd_is_pid1() -> bool {
    std::path::Path::new("/run/systemd/system").is_dir()
}

/// Set in the environment, makes [`SystemRebooter`] refuse: the test suite
/// sets it so that no mistake in a test's configuration can restart the
/// build host.
pub const NO_REAL_RESTART_ENV: &str = "UPDATER_NO_REAL_RESTART";

/// Refuse a kexec restart when no image is loaded. `systemctl kexec` with
/// nothing loaded loads the boot loader's default entry itself, through
/// kexec-tools and the kexec_load syscall: no signature check, no trial of
/// the agent's, and not the kernel the agent verified. reboot(RB_KEXEC)
/// would merely fail. Either way the jump must be the image the agent
/// staged with kexec_file_load, or nothing.
pub fn check_kexec_loaded(sys_root: &std::path::Path) -> Result<()> {
    let path = sys_root.join("kernel/kexec_loaded");
    match std::fs::read_to_string(&path).map(|s| s.trim().to_string()) {
        Ok(s) if s == "1" => Ok(()),
        Ok(s) => Err(BootError(format!(
            "no kexec image is loaded ({} reads {s:?}) although the agent staged one: not running the kexec, which would boot the boot loader's default entry loaded with kexec_load instead of the verified kernel; run the update again, or reboot",
            path.display()
        ))
        .into()),
        Err(e) => Err(BootError(format!(
            "cannot tell whether a kexec image is loaded ({}: {e}); not running the kexec; mount sysfs, or use the reboot path",
            path.display()
        ))
        .into()),
    }
}

impl Rebooter for SystemRebooter {
    fn restart(&self, how: Restart) -> Result<()> {
        if std::env::var_os(NO_REAL_RESTART_ENV).is_some() {
            return Err(BootError(format!(
                "refusing to {}: {NO_REAL_RESTART_ENV} is set",
                how.name()
            ))
            .into());
        }
        if how == Restart::Kexec {
            check_kexec_loaded(std::path::Path::new("/sys"))?;
        }
        if systemd_is_pid1() {
            let status = Command::new("systemctl")
                .arg(how.name())
                .status()
                .with_context(|| format!("running systemctl {}", how.name()))?;
            if !status.success() {
                return Err(BootError(format!("systemctl {} failed: {status}", how.name())).into());
            }
            return Ok(());
        }
        nix::unistd::sync();
        let mode = match how {
            Restart::Reboot => nix::sys::reboot::RebootMode::RB_AUTOBOOT,
            Restart::Kexec => nix::sys::reboot::RebootMode::RB_KEXEC,
        };
        let err = nix::sys::reboot::reboot(mode).expect_err("reboot(2) returns only on failure");
        Err(BootError(format!("reboot(2) for {} failed: {err}", how.name())).into())
    }
}

/// Runs a configured command instead (`trial.reboot_command`), with the
/// restart kind as its last argument.
pub struct CommandRebooter(pub Vec<String>);

impl Rebooter for CommandRebooter {
    fn restart(&self, how: Restart) -> Result<()> {
        let (prog, args) = self
            .0
            .split_first()
            .ok_or_else(|| BootError("trial.reboot_command is empty".into()))?;
        let status = Command::new(prog)
            .args(args)
            .arg(how.name())
            .status()
            .with_context(|| format!("running reboot command {prog}"))?;
        if !status.success() {
            return Err(BootError(format!("reboot command {:?} failed: {status}", self.0)).into());
        }
        Ok(())
    }
}

/// The configured rebooter.
pub fn rebooter(command: Option<&Vec<String>>) -> Box<dyn Rebooter> {
    match command {
        Some(c) => Box::new(CommandRebooter(c.clone())),
        None => Box::new(SystemRebooter),
    }
}

/// The reboot boot method: the bootloader boots the group once at the next
/// reset (the one-shot is consumed before it boots), then falls back to the
/// primary, which never changed.
pub struct RebootMethod<'m> {
    rebooter: &'m dyn Rebooter,
}

impl<'m> RebootMethod<'m> {
    /// Reboot with `rebooter`.
    pub fn new(rebooter: &'m dyn Rebooter) -> RebootMethod<'m> {
        RebootMethod { rebooter }
    }
}

impl BootMethod for RebootMethod<'_> {
    fn kind(&self) -> Restart {
        Restart::Reboot
    }

    fn prepare(&mut self, _: &Session, _: &str, _: &[u8]) -> Result<(), MethodError> {
        // Everything a reboot trial needs was verified at install; the
        // bootloader itself boots from the slot.
        Ok(())
    }

    fn stage(&mut self, session: &mut Session, group: &str) -> Result<(), MethodError> {
        session
            .bootloader_mut()
            .arm_trial(group)
            .with_context(|| format!("arming the one-shot trial of slot {group}"))?;
        crate::failpoint!("after-arm-trial");
        Ok(())
    }

    fn jump(&mut self) -> Result<()> {
        tracing::info!("rebooting into the one-shot trial");
        self.rebooter.restart(Restart::Reboot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kexec_needs_the_staged_image_still_loaded() {
        let t = tempfile::tempdir().unwrap();
        let err = check_kexec_loaded(t.path()).unwrap_err();
        assert!(format!("{err:#}").contains("cannot tell"), "{err:#}");
        std::fs::create_dir_all(t.path().join("kernel")).unwrap();
        std::fs::write(t.path().join("kernel/kexec_loaded"), "0\n").unwrap();
        let err = check_kexec_loaded(t.path()).unwrap_err();
        assert!(format!("{err:#}").contains("kexec_load"), "{err:#}");
        assert_eq!(crate::error::classify(&err), crate::error::ExitCode::Boot);
        std::fs::write(t.path().join("kernel/kexec_loaded"), "1\n").unwrap();
        check_kexec_loaded(t.path()).unwrap();
    }
}
