//! Failure classes and the exit codes they map to: the classes are defined
//! with the format (`updater_format::error`), because the device agent and
//! the vendor tooling promise the same exit codes; this module re-exports
//! them for the agent's code.

pub use updater_format::error::*;
