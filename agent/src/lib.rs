//! `updater`: an A/B update agent for immutable Linux systems.
//!
//! The library holds all the work; `main.rs` only parses arguments, sets up
//! logging and maps errors to exit codes. One module per concern:
//!
//! The release format and its verification are the `updater_format` crate;
//! the vendor tooling (releases, channels, keys, the loopback server and the
//! demo) lives in `updater-release` and `updater-vendor`, which this crate
//! never depends on.
//!
//! - [`cli`]: the command-line interface;
//! - [`config`]: configuration fragments merged into validated settings;
//! - [`slots`]: booted-group detection and the install target;
//! - [`state`]: the agent's durable, locked state file;
//! - [`boot`]: bootloader backends;
//! - [`trial`]: trial boots, health reconciliation, commit, rollback;
//! - [`kexec`]: sealed kernels, kexec_file_load, the watchdog, the jump;
//! - [`health`]: the health checks;
//! - [`fetch`]: HTTP and local-folder fetching with bounded retries;
//! - [`install`]: `apply`, the verified streaming install pipeline;
//! - [`trust`]: the root of trust, its rotations and the keyring they give;
//! - [`error`]: failure classes and exit codes.

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
