//! The hardware watchdog that must keep running across the kexec, so that a
//! trial kernel that hangs is reset (and the firmware and bootloader then
//! bring back the old primary).
//!
//! Opening /dev/watchdogN starts the timer. Across a kexec the kernel's
//! reboot notifier STOPS it unless the driver runs with `nowayout` (or the
//! watchdog core's `stop_on_reboot=0`): without that a hung new kernel is
//! never reset. The agent checks this in sysfs before it relies on it.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::error::BootError;

nix::ioctl_readwrite!(
    /// WDIOC_SETTIMEOUT (linux/watchdog.h): set the timeout in seconds.
    wdioc_settimeout,
    b'W',
    6,
    libc::c_int
);
nix::ioctl_read!(
    /// WDIOC_KEEPALIVE (linux/watchdog.h): ping the watchdog.
    wdioc_keepalive,
    b'W',
    5,
    libc::c_int
);

/// A watchdog the agent arms before the jump.
pub trait Watchdog {
    /// Whether the timer will keep running across a kexec; `Err` says why not.
    fn survives_kexec(&self) -> Result<(), String>;
    /// Start the timer with `timeout` and keep it running (never closed
    /// with the magic character, so it cannot be stopped by this process).
    fn arm(&mut self, timeout: Duration) -> Result<()>;
}

/// A Linux watchdog device.
pub struct DevWatchdog {
    dev: PathBuf,
    sysfs: PathBuf,
    file: Option<File>,
}

impl DevWatchdog {
    /// `/dev/watchdog` or `/dev/watchdogN`; `sys_root` is `/sys` (tests
    /// point it elsewhere).
    pub fn new(dev: &Path, sys_root: &Path) -> DevWatchdog {
        let n = dev
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("watchdog"))
            .map(|n| if n.is_empty() { "0" } else { n })
            .unwrap_or("0")
            .to_string();
        DevWatchdog {
            dev: dev.to_path_buf(),
            sysfs: sys_root
                .to_path_buf()
                .join(format!("class/watchdog/watchdog{n}")),
            file: None,
        }
    }

    fn sys_root(&self) -> PathBuf {
        // .../class/watchdog/watchdogN -> the sysfs root
        self.sysfs
            .ancestors()
            .nth(3)
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("/sys"))
    }
}

fn read_trim(p: &Path) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
}

impl Watchdog for DevWatchdog {
    fn survives_kexec(&self) -> Result<(), String> {
        let nowayout = read_trim(&self.sysfs.join("nowayout"));
        if nowayout.as_deref() == Some("1") {
            return Ok(());
        }
        let stop_on_reboot = read_trim(
            &self
                .sys_root()
                .join("module/watchdog/parameters/stop_on_reboot"),
        );
        if stop_on_reboot.as_deref() == Some("0") {
            return Ok(());
        }
        Err(format!(
            "the watchdog {} stops across a kexec ({}/nowayout is {}, watchdog.stop_on_reboot is {}): load its driver with nowayout=1 or boot with watchdog.stop_on_reboot=0, or a hung trial kernel is never reset",
            self.dev.display(),
            self.sysfs.display(),
            nowayout.as_deref().unwrap_or("missing"),
            stop_on_reboot.as_deref().unwrap_or("missing")
        ))
    }

    fn arm(&mut self, timeout: Duration) -> Result<()> {
        let f = OpenOptions::new()
            .write(true)
            .open(&self.dev)
            .with_context(|| format!("opening watchdog {}", self.dev.display()))?;
        let mut secs = timeout.as_secs().clamp(1, i32::MAX as u64) as libc::c_int;
        // SAFETY: WDIOC_SETTIMEOUT reads and writes one int through the pointer.
        unsafe { wdioc_settimeout(f.as_raw_fd(), &mut secs) }.map_err(|e| {
            BootError(format!(
                "setting the timeout of {}: {e}",
                self.dev.display()
            ))
        })?;
        let mut dummy = 0;
        // SAFETY: WDIOC_KEEPALIVE writes one int through the pointer.
        let _ = unsafe { wdioc_keepalive(f.as_raw_fd(), &mut dummy) };
        tracing::info!(
            "watchdog {} armed with a {secs}s timeout",
            self.dev.display()
        );
        // Keep the fd open until the jump: the process never closes it with
        // the magic 'V', so nothing here can stop the timer.
        self.file = Some(f);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survival_is_read_from_sysfs() {
        let d = tempfile::tempdir().unwrap();
        let sys = d.path();
        std::fs::create_dir_all(sys.join("class/watchdog/watchdog1")).unwrap();
        std::fs::create_dir_all(sys.join("module/watchdog/parameters")).unwrap();
        let w = DevWatchdog::new(Path::new("/dev/watchdog1"), sys);
        std::fs::write(sys.join("class/watchdog/watchdog1/nowayout"), "0\n").unwrap();
        std::fs::write(sys.join("module/watchdog/parameters/stop_on_reboot"), "1\n").unwrap();
        let e = w.survives_kexec().unwrap_err();
        assert!(
            e.contains("nowayout=1") && e.contains("stops across a kexec"),
            "{e}"
        );
        std::fs::write(sys.join("class/watchdog/watchdog1/nowayout"), "1\n").unwrap();
        assert!(w.survives_kexec().is_ok());
        std::fs::write(sys.join("class/watchdog/watchdog1/nowayout"), "0\n").unwrap();
        std::fs::write(sys.join("module/watchdog/parameters/stop_on_reboot"), "0\n").unwrap();
        assert!(w.survives_kexec().is_ok());
        // /dev/watchdog is watchdog0.
        let w0 = DevWatchdog::new(Path::new("/dev/watchdog"), sys);
        std::fs::remove_file(sys.join("module/watchdog/parameters/stop_on_reboot")).unwrap();
        assert!(w0
            .survives_kexec()
            .unwrap_err()
            .contains("watchdog0/nowayout is missing"));
    }
}
