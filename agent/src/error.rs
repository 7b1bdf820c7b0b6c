//! Failure classes and the exit codes they map to: one table,
//! [`EXIT_CODES`], from which `--help` and the man pages are generated and
//! against which the README is checked (`tests/cli/packaging.rs`).
//!
//! Errors travel as `anyhow::Error` with context; the class is decided once,
//! in `main`, by looking for one of the typed errors below (or the format's
//! [`Rejected`] and [`UsageError`]) in the chain. Callers that need to
//! branch match on the typed errors directly.

pub use crate::state::store::{BusyError, StateCorruptError};
pub use updater_format::error::{usage, OneLine, Rejected, UsageError};

/// Exit codes of the `updater` binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// Success.
    Ok = 0,
    /// An unexpected internal failure that fits no class below.
    Internal = 1,
    /// Bad command-line usage or configuration.
    Usage = 2,
    /// Rejected for security.
    Security = 3,
    /// A fetch failed after its retries.
    Fetch = 4,
    /// Local I/O or slot write failure.
    Io = 5,
    /// Boot-control failure (bootloader environment, trial, kexec).
    Boot = 6,
    /// `updater health`: the booted slot failed its trial.
    TrialFailed = 7,
    /// Another updater is running (it holds the state lock).
    Busy = 8,
    /// A trial is pending.
    TrialPending = 9,
    /// The state is corrupt, or of a version this agent does not read.
    StateCorrupt = 10,
    /// The install would download more than allowed.
    OverBudget = 11,
}

/// Every exit code and what it means, in the words `--help`, the man pages
/// and the README use.
pub const EXIT_CODES: [(ExitCode, &str); 12] = [
    (ExitCode::Ok, "success"),
    (ExitCode::Internal, "unexpected internal failure"),
    (ExitCode::Usage, "usage or configuration error"),
    (ExitCode::Security, "rejected for security: signature, threshold, expiry, compatibility, downgrade, hash or size mismatch"),
    (ExitCode::Fetch, "fetch failed after retries"),
    (ExitCode::Io, "local I/O or slot write failure"),
    (ExitCode::Boot, "boot-control failure"),
    (ExitCode::TrialFailed, "`updater health`: the booted slot failed its trial (a check failed, the deadline passed) and was marked bad"),
    (ExitCode::Busy, "another updater is running (it holds the state lock): wait and run again"),
    (ExitCode::TrialPending, "a trial is pending: `updater health` decides it at boot (or `updater mark-bad SLOT`)"),
    (ExitCode::StateCorrupt, "the state (state.json, the clock floor clock.json, the root chain) is corrupt or of another version: inspect it"),
    (ExitCode::OverBudget, "the install would download more than `install.max_download_bytes` or `--max-download` allows; nothing was changed"),
];

impl ExitCode {
    /// The process exit status.
    pub fn code(self) -> i32 {
        self as i32
    }

    /// What it means, from [`EXIT_CODES`].
    pub fn meaning(self) -> &'static str {
        EXIT_CODES
            .iter()
            .find(|(c, _)| *c == self)
            .map(|(_, m)| *m)
            .unwrap_or("")
    }
}

/// The exit codes as `--help` shows them (after each command's help).
pub fn help() -> String {
    let mut s = String::from("Exit codes:");
    for (c, m) in EXIT_CODES {
        s.push_str(&format!("\n {:>2}  {m}", c.code()));
    }
    s
}

/// A command's examples, then [`help`]: what `--help` and its man page
/// show after the options.
pub fn help_with_examples(examples: &str) -> String {
    format!("{examples}\n\n{}", help())
}

/// A boot-control error (exit code 6).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BootError(pub String);

/// The download would exceed the configured budget (exit code 11).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BudgetError(pub String);

/// The booted slot failed its trial and was marked bad (exit code 7).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TrialFailedError(pub String);

/// A fetch that failed for good (exit code 4).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FetchError(pub String);

/// Decide the exit code of a failed command from the errors in its chain:
/// the first typed error found, outermost first.
pub fn classify(err: &anyhow::Error) -> ExitCode {
    use crate::state::TransitionError;
    for cause in err.chain() {
        match cause.downcast_ref::<TransitionError>() {
            Some(TransitionError::TrialPending { .. }) => return ExitCode::TrialPending,
            Some(TransitionError::WrongPhase { .. }) => return ExitCode::Usage,
            None => {}
        }
        let class = if cause.is::<Rejected>() {
            ExitCode::Security
        } else if cause.is::<UsageError>() {
            ExitCode::Usage
        } else if cause.is::<FetchError>() {
            ExitCode::Fetch
        } else if cause.is::<BootError>() {
            ExitCode::Boot
        } else if cause.is::<BusyError>() {
            ExitCode::Busy
        } else if cause.is::<StateCorruptError>() {
            ExitCode::StateCorrupt
        } else if cause.is::<TrialFailedError>() {
            ExitCode::TrialFailed
        } else if cause.is::<BudgetError>() {
            ExitCode::OverBudget
        } else {
            continue;
        };
        return class;
    }
    if err.chain().any(|c| c.is::<std::io::Error>()) {
        return ExitCode::Io;
    }
    ExitCode::Internal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_one_meaning_in_order() {
        for (i, (c, m)) in EXIT_CODES.iter().enumerate() {
            assert_eq!(c.code(), i as i32);
            assert!(!m.is_empty());
            assert_eq!(c.meaning(), *m);
        }
        assert!(help().contains("\n 11  the install would download more"));
    }
}
