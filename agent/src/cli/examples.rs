//! Examples shown by `--help` and in the man pages, after the options: the
//! commands a new user reaches for first. Each is a description line, then
//! the command indented by four spaces (the man page renders it verbatim).

/// `updater apply`.
pub const APPLY: &str = "\
Examples:
  Install the release a channel names for this device, then boot it by kexec for a trial:
    updater apply https://updates.example.com/gw/stable.json --kexec
  Show what an install would fetch and reuse from the slots, changing nothing:
    updater apply https://updates.example.com/gw/1.2.0/ --dry-run
  Install a release from a USB stick and boot it by a one-shot reboot trial:
    updater apply /media/usb/gw-1.2.0 --reboot
  Refuse to fetch more than 50 MB (a metered link):
    updater apply https://updates.example.com/gw/stable.json --max-download 50M";

/// `updater status`.
pub const STATUS: &str = "\
Examples:
  The slot groups, what each runs, and any install, trial or failure:
    updater status
  The same as one JSON object, for scripts and device UIs:
    updater status --json
  With the kernel's lockdown and kexec signature enforcement:
    updater -v status";

/// `updater health`.
pub const HEALTH: &str = "\
Examples:
  At boot (updater-health.service runs it): run the checks of a pending trial, then commit it or mark it bad:
    updater health
  The outcome as JSON, for a report:
    updater health --json";
