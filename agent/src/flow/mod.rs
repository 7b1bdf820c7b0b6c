//! The flows: one library function per device operation. Every front end —
//! the CLI, the daemon, and the D-Bus service and the hawkBit client that
//! come next — parses its input, calls a flow, and renders what the flow
//! returns; none of them sequences device steps itself.
//!
//! | operation | flow | takes |
//! |---|---|---|
//! | apply (install, then optionally a trial) | [`apply::apply`] | a session, a [`apply::Request`], the machine, an event sink |
//! | activate (boot the installed release as a trial) | [`activate::activate`] | a session, how, the machine, an event sink |
//! | check (one poll of the channel, read-only) | [`check::check`] | the settings and the clock |
//! | status | [`status::status`] | the settings |
//! | health (the reconciliation at boot) | [`health::health`] | a session, the machine's rebooter |
//! | mark-good, mark-bad, rollback | [`mark::mark_good`], [`mark::mark_bad`], [`mark::rollback`] | a session |
//! | root refresh | [`root::refresh`] | the settings, the clock, a source |
//! | verify (what apply would decide, installing nothing) | [`verify::verify`] | the settings, the clock, a source |
//! | verify against a keyring alone (a build host) | [`verify::with_keyring`] | a source, a keyring, a policy |
//!
//! A flow never prints: progress, steps and warnings go to the caller's
//! [`crate::events::Events`]; reports go to the durable outbox. The boot
//! actions (reboot, kexec, the watchdog) reach a flow through the machine
//! seam ([`crate::trial::Machine`]): the device hands in the real parts,
//! tests hand in doubles. The durable step sequences the flows share are in
//! `steps`.

pub mod activate;
pub mod apply;
pub mod check;
pub mod health;
pub mod mark;
pub mod root;
pub mod source;
pub mod status;
mod steps;
pub mod verify;

pub use activate::{activate, Activated};
pub use apply::{apply, Applied, Request};
pub use check::{check, Plan};
pub use health::{health, HealthOutcome};
pub use mark::{mark_bad, mark_good, rollback};
pub use status::{status, Status};
pub use steps::booted_by_kexec;
