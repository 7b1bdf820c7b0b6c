//! The hardware watchdog that must keep running across the kexec, so that a
//! trial kernel that hangs is reset (and the firmware and bootloader then
//! bring back the old primary).
//!
//! Opening /dev/watchdogN starts the timer. Across a kexec the kernel's
//! reboot notifier STOPS it unless the driver runs with `nowayout` (or the
//! watchdog core's `stop_on_reboot=0`): without that a hung new kernel is
//! never reset. The agent checks this in sysfs before it relies on it.
//!
//! Under systemd with `RuntimeWatchdogSec=` set, PID 1 holds the device
//! (it is single-open: the agent's open would fail with EBUSY) and feeds it
//! for the system's whole life. At a kexec PID 1 would try to stop it,
//! unless `KExecWatchdogSec=` tells it to leave it running with that
//! timeout, fed until the jump. The agent then relies on systemd instead of
//! arming the device itself, and refuses when `KExecWatchdogSec=` is off.

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
    /// How systemd's PID 1 uses the device; `None` when systemd is not PID
    /// 1 (asked once, at the first use).
    systemd: std::cell::OnceCell<Option<SystemdWatchdog>>,
}

/// PID 1's hardware watchdog settings, as `systemctl show` reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemdWatchdog {
    /// `RuntimeWatchdogUSec`: "0" when PID 1 does not feed the device.
    pub runtime: String,
    /// `KExecWatchdogUSec`: "0" when PID 1 stops the device at a kexec.
    pub kexec: String,
}

impl SystemdWatchdog {
    /// Parse `systemctl show -p RuntimeWatchdogUSec -p KExecWatchdogUSec`.
    pub fn parse(show: &str) -> Option<SystemdWatchdog> {
        let get = |key: &str| {
            show.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                .map(|v| v.trim().to_string())
        };
        Some(SystemdWatchdog {
            runtime: get("RuntimeWatchdogUSec")?,
            kexec: get("KExecWatchdogUSec")?,
        })
    }

    fn on(v: &str) -> bool {
        !(v.is_empty() || v == "0" || v == "off")
    }

    /// Whether PID 1 holds and feeds the device.
    pub fn holds_device(&self) -> bool {
        Self::on(&self.runtime)
    }

    /// With PID 1 holding the device: whether it stays armed across a
    /// kexec, or why not.
    pub fn carries_kexec(&self, dev: &Path) -> Result<(), String> {
        if Self::on(&self.kexec) {
            return Ok(());
        }
        Err(format!(
            "systemd feeds the watchdog {} (RuntimeWatchdogSec={}) and stops it at a kexec because KExecWatchdogSec= is off: set KExecWatchdogSec=2min (or longer than a shutdown and the new kernel's boot take) in /etc/systemd/system.conf.d/ (example: /usr/share/doc/updater/examples/systemd/50-updater-watchdog.conf), or a hung trial kernel is never reset",
            dev.display(),
            self.runtime
        ))
    }
}

/// Ask PID 1 for its watchdog settings, when systemd runs the system.
fn ask_systemd() -> Option<SystemdWatchdog> {
    if !crate::trial::reboot::systemd_is_pid1() {
        return None;
    }
    let out = std::process::Command::new("systemctl")
        .args([
            "show",
            "-p",
            "RuntimeWatchdogUSec",
            "-p",
            "KExecWatchdogUSec",
        ])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let parsed = SystemdWatchdog::parse(&String::from_utf8_lossy(&out.stdout));
    if parsed.is_none() {
        tracing::warn!("systemctl show did not report PID 1's watchdog settings");
    }
    parsed
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
            systemd: std::cell::OnceCell::new(),
        }
    }

    /// The same, with PID 1's settings given (tests; `None`: not systemd).
    pub fn with_systemd(
        dev: &Path,
        sys_root: &Path,
        systemd: Option<SystemdWatchdog>,
    ) -> DevWatchdog {
        let w = DevWatchdog::new(dev, sys_root);
        let _ = w.systemd.set(systemd);
        w
    }

    /// PID 1's settings when it holds the device.
    fn held_by_systemd(&self) -> Option<&SystemdWatchdog> {
        self.systemd
            .get_or_init(ask_systemd)
            .as_ref()
            .filter(|s| s.holds_device())
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
        if let Some(sd) = self.held_by_systemd() {
            sd.carries_kexec(&self.dev)?;
        }
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
        if let Some(sd) = self.held_by_systemd() {
            // PID 1 holds the device (it is single-open) and leaves it
            // running across the kexec: checked in survives_kexec, asked
            // again here in case the setting changed since.
            sd.carries_kexec(&self.dev).map_err(BootError)?;
            tracing::info!(
                "watchdog {} is fed by systemd (RuntimeWatchdogSec={}), which leaves it armed across the kexec (KExecWatchdogSec={})",
                self.dev.display(),
                sd.runtime,
                sd.kexec
            );
            return Ok(());
        }
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
        let w = DevWatchdog::with_systemd(Path::new("/dev/watchdog1"), sys, None);
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
        let w0 = DevWatchdog::with_systemd(Path::new("/dev/watchdog"), sys, None);
        std::fs::remove_file(sys.join("module/watchdog/parameters/stop_on_reboot")).unwrap();
        assert!(w0
            .survives_kexec()
            .unwrap_err()
            .contains("watchdog0/nowayout is missing"));
    }

    #[test]
    fn a_watchdog_systemd_feeds_needs_kexec_watchdog_sec() {
        let d = tempfile::tempdir().unwrap();
        let sys = d.path();
        std::fs::create_dir_all(sys.join("class/watchdog/watchdog0")).unwrap();
        std::fs::write(sys.join("class/watchdog/watchdog0/nowayout"), "1\n").unwrap();
        let show = |runtime: &str, kexec: &str| {
            SystemdWatchdog::parse(&format!(
                "RuntimeWatchdogUSec={runtime}\nKExecWatchdogUSec={kexec}\n"
            ))
        };
        assert_eq!(SystemdWatchdog::parse("RuntimeWatchdogUSec=30s\n"), None);
        // PID 1 feeds it and stops it at a kexec: refused, naming the setting.
        let mut w = DevWatchdog::with_systemd(Path::new("/dev/watchdog0"), sys, show("30s", "0"));
        let e = w.survives_kexec().unwrap_err();
        assert!(
            e.contains("KExecWatchdogSec=") && e.contains("RuntimeWatchdogSec=30s"),
            "{e}"
        );
        assert!(w.arm(Duration::from_secs(45)).is_err());
        // PID 1 leaves it armed across the kexec: relied on, and not opened
        // (the device does not exist here: an open would fail).
        let mut w =
            DevWatchdog::with_systemd(Path::new("/dev/watchdog0"), sys, show("30s", "2min"));
        assert!(w.survives_kexec().is_ok());
        w.arm(Duration::from_secs(45)).unwrap();
        assert!(w.file.is_none());
        // PID 1 does not feed it: the agent arms it itself, and the driver's
        // nowayout still decides.
        let mut w =
            DevWatchdog::with_systemd(Path::new("/nonexistent/watchdog0"), sys, show("0", "0"));
        assert!(w.survives_kexec().is_ok());
        assert!(w.arm(Duration::from_secs(45)).is_err());
        std::fs::write(sys.join("class/watchdog/watchdog0/nowayout"), "0\n").unwrap();
        let w = DevWatchdog::with_systemd(Path::new("/dev/watchdog0"), sys, show("30s", "2min"));
        assert!(w.survives_kexec().unwrap_err().contains("nowayout=1"));
    }
}
