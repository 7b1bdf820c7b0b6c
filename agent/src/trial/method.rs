//! The seam between starting a trial and how the trial boots: a boot method
//! (reboot through the bootloader's one-shot, or kexec) behind one trait.

use anyhow::Result;

use crate::session::Session;

/// How to restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// Through firmware and bootloader.
    Reboot,
    /// Into the kernel loaded with kexec_file_load.
    Kexec,
}

impl Restart {
    /// The word for it.
    pub fn name(self) -> &'static str {
        match self {
            Restart::Reboot => "reboot",
            Restart::Kexec => "kexec",
        }
    }
}

/// Why a boot method cannot boot the trial on this device. A refusal is a
/// value, not an error: `kexec.policy` decides, in one place
/// ([`super::start`]), whether it falls back to a reboot trial or fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// kexec is switched off for this device (`kexec.policy = "never"`).
    Disabled,
    /// The hardware watchdog would stop across the kexec.
    WatchdogUnsafe(String),
    /// The running kernel refused kexec_file_load (KEXEC_SIG, lockdown, no
    /// kexec_file_load, an image it cannot parse...).
    KernelRefused {
        /// The errno of the syscall.
        errno: nix::errno::Errno,
        /// What it means and what to do, in words.
        why: String,
    },
    /// The watchdog could not be armed before the jump.
    WatchdogArm(String),
}

impl Refusal {
    /// The refusal in words.
    pub fn reason(&self) -> String {
        match self {
            Refusal::Disabled => {
                "kexec is disabled on this device (kexec.policy = \"never\")".into()
            }
            Refusal::WatchdogUnsafe(why) => why.clone(),
            Refusal::KernelRefused { why, .. } => why.clone(),
            Refusal::WatchdogArm(why) => format!("arming the watchdog failed: {why}"),
        }
    }
}

/// A boot method that could not do its part.
#[derive(Debug)]
pub enum MethodError {
    /// It cannot boot the trial here (the policy decides what next).
    Refused(Refusal),
    /// It failed: a security rejection, I/O, a bootloader error.
    Failed(anyhow::Error),
}

impl From<anyhow::Error> for MethodError {
    fn from(e: anyhow::Error) -> MethodError {
        MethodError::Failed(e)
    }
}

/// How a trial boots.
pub trait BootMethod {
    /// The restart the method ends in.
    fn kind(&self) -> Restart;
    /// Before the trial is recorded: check everything that can be checked
    /// (the kexec method verifies the kernel over sealed bytes here).
    fn prepare(
        &mut self,
        session: &Session,
        group: &str,
        manifest: &[u8],
    ) -> Result<(), MethodError>;
    /// After the trial is recorded: make the next restart boot the group
    /// (arm the bootloader's one-shot, or load the kernel and arm the
    /// watchdog).
    fn stage(&mut self, session: &mut Session, group: &str) -> Result<(), MethodError>;
    /// Restart into the group.
    fn jump(&mut self) -> Result<()>;
}
