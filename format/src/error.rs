//! Failure classes and the exit codes they map to.
//!
//! Errors travel as `anyhow::Error` with context; the class is decided once,
//! in each binary's `main`, by looking for one of the typed errors below in
//! the chain. Callers that need to branch (is this a security rejection or a
//! network problem?) match on the typed errors directly. The classes live
//! here, with the format, because the device agent and the vendor tooling
//! promise the same exit codes.

use std::fmt;

/// Exit codes, documented in the README and in `updater --help`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// Success.
    Ok = 0,
    /// An unexpected internal failure that fits no class below.
    Internal = 1,
    /// Bad command-line usage or configuration.
    Usage = 2,
    /// Rejected for security: signature, threshold, expiry, compatibility,
    /// downgrade, hash or size mismatch.
    Security = 3,
    /// A fetch failed after its retries.
    Fetch = 4,
    /// Local I/O or slot write failure.
    Io = 5,
    /// Boot-control failure (bootloader environment, trial, kexec).
    Boot = 6,
    /// `updater health`: the booted slot failed its trial (a check failed,
    /// the deadline passed) and was marked bad.
    TrialFailed = 7,
    /// Another updater is running (it holds the state lock).
    Busy = 8,
    /// A trial is pending: only its outcome (`updater health`, or
    /// `updater mark-bad`) may change what boots next.
    TrialPending = 9,
    /// The state file is corrupt, or of a version this agent does not read.
    StateCorrupt = 10,
    /// The install would download more than `install.max_download_bytes`
    /// (or `--max-download`) allows.
    OverBudget = 11,
}

impl ExitCode {
    /// The process exit status.
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// A usage or configuration error (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// A boot-control error (exit code 6).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BootError(pub String);

/// Another updater holds the state lock (exit code 8).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BusyError(pub String);

/// The state file cannot be used as it is (exit code 10).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StateCorruptError(pub String);

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

/// Why a release was refused (exit code 3). Every variant renders as one line
/// that names what was wrong.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Rejected {
    /// The envelope or manifest is not well formed.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// Which document.
        what: &'static str,
        /// The parser's reason.
        reason: String,
    },
    /// The manifest is larger than the hard cap.
    #[error("{what} is {size} bytes, over the {cap}-byte limit")]
    TooLarge {
        /// Which document.
        what: &'static str,
        /// Its size, or the size read so far.
        size: u64,
        /// The cap.
        cap: u64,
    },
    /// The DSSE payload type is not ours.
    #[error("payloadType is {found:?}, expected {expected:?}")]
    PayloadType {
        /// The type found.
        found: String,
        /// The type this agent accepts.
        expected: &'static str,
    },
    /// Too few valid signatures from keys of the role.
    #[error("{role} signatures rejected: {valid} valid of threshold {threshold}{}", fmt_problems(.problems))]
    Threshold {
        /// The role whose threshold was not met.
        role: &'static str,
        /// Distinct keys with a valid signature.
        valid: usize,
        /// Required number.
        threshold: usize,
        /// What was wrong with each signature that did not count.
        problems: Vec<String>,
    },
    /// The manifest's schema version is one this agent cannot read.
    #[error("manifest schema {found} is not supported (this agent reads schemas 1 to {supported}); upgrade the agent")]
    Schema {
        /// The version found.
        found: u64,
        /// The newest version supported.
        supported: u64,
    },
    /// The manifest's expiry is in the past (freeze attack or stale release).
    #[error(
        "manifest expired at {expires} (now {now}); ask the vendor for a freshly signed release"
    )]
    Expired {
        /// When it expired.
        expires: String,
        /// The device's clock.
        now: String,
    },
    /// The manifest was created in the future.
    #[error("manifest is not valid yet: created {created}, now {now}; check the device clock")]
    NotYetValid {
        /// Creation time.
        created: String,
        /// The device's clock.
        now: String,
    },
    /// The release is not for this hardware.
    #[error("release is for {release:?}, this device is {device:?}")]
    Incompatible {
        /// The manifest's compatible list.
        release: Vec<String>,
        /// The device's compatible string.
        device: String,
    },
    /// Anti-rollback: older than what is installed.
    #[error("downgrade refused: {what} {offered} is lower than installed {installed}")]
    Downgrade {
        /// `version` or `security_version`.
        what: &'static str,
        /// The release's value.
        offered: String,
        /// The device's value.
        installed: String,
    },
    /// The manifest requires a newer agent.
    #[error(
        "release needs agent {required} or newer, this agent is {running}; update the agent first"
    )]
    AgentTooOld {
        /// min_agent_version.
        required: String,
        /// This build's version.
        running: String,
    },
    /// A semantic rule of the manifest is broken.
    #[error("invalid manifest: {0}")]
    Invalid(String),
    /// A root document was refused (its version, its expiry); the device
    /// says which root version and where it came from around it.
    #[error("{0}")]
    Root(String),
    /// A channel document was refused (expired, replayed, malformed).
    #[error("channel refused: {0}")]
    Channel(String),
    /// Bytes did not match what the signed manifest pins.
    #[error("{what}: {reason}")]
    Mismatch {
        /// What was checked (file, chunk, kernel).
        what: String,
        /// Expected vs found.
        reason: String,
    },
}

fn fmt_problems(problems: &[String]) -> String {
    if problems.is_empty() {
        String::new()
    } else {
        format!(" ({})", problems.join("; "))
    }
}

/// Decide the exit code of a failed command from the errors in its chain.
pub fn classify(err: &anyhow::Error) -> ExitCode {
    for cause in err.chain() {
        if cause.is::<Rejected>() {
            return ExitCode::Security;
        }
        if cause.is::<UsageError>() {
            return ExitCode::Usage;
        }
        if cause.is::<FetchError>() {
            return ExitCode::Fetch;
        }
        if cause.is::<BootError>() {
            return ExitCode::Boot;
        }
        if cause.is::<BusyError>() {
            return ExitCode::Busy;
        }
        if cause.is::<StateCorruptError>() {
            return ExitCode::StateCorrupt;
        }
        if cause.is::<TrialFailedError>() {
            return ExitCode::TrialFailed;
        }
        if cause.is::<BudgetError>() {
            return ExitCode::OverBudget;
        }
    }
    if err.chain().any(|c| c.is::<std::io::Error>()) {
        return ExitCode::Io;
    }
    ExitCode::Internal
}

/// Render an error chain on one line, outermost context first.
pub struct OneLine<'a>(pub &'a anyhow::Error);

impl fmt::Display for OneLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for cause in self.0.chain() {
            if !first {
                f.write_str(": ")?;
            }
            first = false;
            write!(f, "{cause}")?;
        }
        Ok(())
    }
}

/// Shorthand for a usage error.
pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    UsageError(msg.into()).into()
}
