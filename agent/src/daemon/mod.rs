//! `updater daemon`: a front end that follows a signed channel. One poll
//! is `flow::check` (fetch and verify the channel, decide with
//! `fleet::decide`), then, in one session, the flow the decision names
//! (`flow::apply`, `flow::activate`), its events logged.
//!
//! The daemon ([`mod@run`]) polls at an interval plus random jitter; a failed
//! poll is retried after a delay that doubles up to `retry_max`. Under
//! systemd it is `Type=notify`: READY=1 once configured, WATCHDOG=1 while
//! its loop makes progress, STATUS= with what it is doing.

pub mod poll;
pub mod run;

pub use poll::{poll, PollOutcome};
pub use run::{retry_delay, run, DaemonOptions};
