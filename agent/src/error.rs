//! Failure classes and the exit codes they map to.
//!
//! The classes are defined with the format (`updater_format::error`),
//! because the device agent and the vendor tooling promise the same exit
//! codes; this module re-exports them and adds the agent's own typed errors
//! to the classification.

pub use updater_format::error::{
    usage, BootError, BusyError, ExitCode, FetchError, OneLine, Rejected, StateCorruptError,
    TrialFailedError, UsageError,
};

/// Decide the exit code of a failed command from the errors in its chain.
pub fn classify(err: &anyhow::Error) -> ExitCode {
    use crate::state::TransitionError;
    for cause in err.chain() {
        match cause.downcast_ref::<TransitionError>() {
            Some(TransitionError::TrialPending { .. }) => return ExitCode::TrialPending,
            Some(TransitionError::WrongPhase { .. }) => return ExitCode::Usage,
            None => {}
        }
    }
    updater_format::error::classify(err)
}
