//! `updater daemon` and `updater check`: follow a signed channel.
//!
//! One poll: fetch and verify the channel, refuse a replay of an older one,
//! find this device's entry, and decide ([`decide::decide`], a pure function
//! of the state, the channel, the strategy and the time):
//!
//! - nothing, when the device runs the release, the release failed here
//!   before (never retried: that is the update loop fleets report), it is
//!   not newer, the device's bucket is not in the rollout yet, or a trial is
//!   pending;
//! - install it into the inactive slot (resuming an interrupted install);
//! - boot the installed release as a trial (kexec per `kexec.policy`), at
//!   once, inside the maintenance window, or never by itself
//!   (`download-only`: the operator runs `updater activate`) — one file per
//!   strategy in [`strategy`].
//!
//! The daemon ([`run`]) polls at an interval plus random jitter; a failed
//! poll is retried after a delay that doubles up to `retry_max`. Under
//! systemd it is `Type=notify`: READY=1 once configured, WATCHDOG=1 while
//! its loop makes progress, STATUS= with what it is doing.

pub mod action;
pub mod decide;
pub mod poll;
pub mod run;
pub mod strategy;
pub mod window;

pub use decide::{decide, Action, Decision, Inputs};
pub use poll::{channel_name, plan, poll, Plan, PollOutcome};
pub use run::{retry_delay, run, DaemonOptions};
pub use window::{window_contains, window_next_open};
