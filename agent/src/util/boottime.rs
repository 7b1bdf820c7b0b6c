//! Time measured by this boot, immune to changes of the wall clock.
//!
//! `CLOCK_BOOTTIME` counts from the kernel's start (suspend included) and
//! is never set; the boot id (`/proc/sys/kernel/random/boot_id`) changes
//! with every boot, a kexec included. A trial's deadline is measured with
//! them, so an NTP step or a hand-set clock after boot cannot make a
//! healthy trial miss its deadline.

use std::time::Duration;

/// Time since this kernel started.
pub fn since_boot() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer;
    // CLOCK_BOOTTIME exists on every Linux this agent supports (2.6.39+).
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        ts.tv_sec.max(0) as u64,
        ts.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

/// This boot's id, when the kernel tells.
pub fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_time_moves_forward() {
        let a = since_boot();
        std::thread::sleep(Duration::from_millis(20));
        assert!(since_boot() >= a + Duration::from_millis(20));
        assert_eq!(boot_id(), boot_id());
    }
}
