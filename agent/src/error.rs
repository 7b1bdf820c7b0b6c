//! Failure classes and the exit codes they map to.
//!
//! The classes are defined with the format (`updater_format::error`),
//! because the device agent and the vendor tooling promise the same exit
//! codes; this module re-exports them and adds the agent's own typed errors
//! to the classification.

pub use updater_format::error::{
    usage, BootError, ExitCode, FetchError, OneLine, Rejected, UsageError,
};

/// Decide the exit code of a failed command from the errors in its chain.
pub fn classify(err: &anyhow::Error) -> ExitCode {
    if err.chain().any(|c| c.is::<crate::state::TransitionError>()) {
        return ExitCode::Usage;
    }
    updater_format::error::classify(err)
}
