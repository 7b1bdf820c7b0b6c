//! What a device following a channel should do, as pure functions of the
//! state, the channel, the strategy and the time: the decision
//! ([`decide::decide`]), one file per strategy ([`strategy`]), and the
//! maintenance window ([`window`]). `flow::check` and the daemon use them;
//! nothing here reads or writes the device.
//!
//! The decision: nothing, when the device runs the release, the release
//! failed here before (never retried: that is the update loop fleets
//! report), it is not newer, the device's bucket is not in the rollout yet,
//! or a trial is pending; install it into the inactive slot (resuming an
//! interrupted install); boot the installed release as a trial (kexec per
//! `kexec.policy`), at once, inside the maintenance window, or never by
//! itself (`download-only`: the operator runs `updater activate`).

pub mod action;
pub mod decide;
pub mod strategy;
pub mod window;

pub use action::Action;
pub use decide::{decide, Decision, Inputs};
