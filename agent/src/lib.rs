//! `updater`: an A/B update agent for immutable Linux systems.
//!
//! The library holds all the work; `main.rs` only parses arguments, sets up
//! logging and maps errors to exit codes. The release format and its
//! verification are the `updater_format` crate; the vendor tooling
//! (releases, channels, keys, the loopback server and the demo) lives in
//! `updater-release` and `updater-vendor`, which this crate never depends
//! on. The modules, lowest layer first (docs/architecture.md has the
//! table, and which files each kind of extension touches):
//!
//! - [`util`], [`clock`], [`bootenv`]: durable writes and failpoints, the
//!   command's clock, the pure GRUB and U-Boot env codecs;
//! - [`config`], [`state`], [`events`]: settings; the update state machine,
//!   its store and the intent record; the event sink flows report to;
//! - [`error`], [`bootloader`], [`slots`], [`fetch`], [`health`], [`report`]:
//!   exit codes; bootloader backends; slot backends; fetching; health
//!   checks; the report outbox;
//! - [`trust`]: the root of trust and its persisted chain;
//! - [`session`]: one command's hold on the device;
//! - [`install`], [`trial`], [`fleet`]: the install pipeline, starting a
//!   trial (reboot or kexec), the channel decision;
//! - [`flow`]: one function per device operation;
//! - [`cli`], [`daemon`]: the front ends.

pub mod bootenv;
pub mod bootloader;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod error;
pub mod events;
pub mod fetch;
pub mod fleet;
pub mod flow;
pub mod health;
pub mod install;
pub mod report;
pub mod session;
pub mod slots;
pub mod state;
pub mod trial;
pub mod trust;
pub mod util;

/// This agent's version, compared with a manifest's `min_agent_version`.
pub fn agent_version() -> semver::Version {
    semver::Version::parse(env!("CARGO_PKG_VERSION")).expect("the crate version is semver")
}
