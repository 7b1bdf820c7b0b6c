//! What the daemon does about the channel's release: the decision's
//! answer, shared by the decision and the strategies.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// What the daemon does about the channel's release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    /// Nothing to do.
    Idle,
    /// Install the release into the inactive slot, then boot it as a trial
    /// when `activate`.
    Install {
        /// Boot it right after installing.
        activate: bool,
    },
    /// Boot the already installed release as a trial.
    Activate,
    /// The release is installed; it boots later.
    Wait {
        /// When it may boot (none: only by `updater activate`).
        until: Option<DateTime<Utc>>,
    },
}
