//! The errors the format produces: a document refused ([`Rejected`]) and a
//! bad argument or file ([`UsageError`]). Which exit code each means is the
//! binaries' to say (the device agent's `updater::error`, the vendor tool's
//! `updater_release::cli`), by looking for these types in an error's chain;
//! the failure classes only the device has (boot control, a busy state
//! lock, a pending trial...) are the agent's own.

use std::fmt;

/// A usage or configuration error: a bad argument, a bad file.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Why a document was refused (a security rejection). Every variant renders as one line
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
