//! The strategies: when a release the device should run is installed and
//! booted. One file each; [`decide`] picks the configured one.

mod download_only;
mod immediate;
mod window;

use chrono::{DateTime, Utc};

use super::action::Action;
use crate::config::{MaintenanceWindow, Strategy};

/// What a strategy sees once the release is one this device should run.
#[derive(Debug, Clone)]
pub struct Ready<'a> {
    /// The release's version.
    pub version: &'a semver::Version,
    /// The slot group it goes into.
    pub target: &'a str,
    /// Whether it is installed there already (with its kept manifest).
    pub installed: bool,
    /// The channel's `not_before`, when still ahead.
    pub boot_from: Option<DateTime<Utc>>,
    /// The time now.
    pub now: DateTime<Utc>,
}

/// What the configured strategy does with a release that is `ready`.
pub fn decide(
    strategy: Strategy,
    window: Option<&MaintenanceWindow>,
    ready: &Ready,
) -> (Action, String) {
    match (strategy, window) {
        (Strategy::DownloadOnly, _) => download_only::decide(ready),
        (Strategy::Immediate, _) => immediate::decide(ready),
        (Strategy::Window, Some(w)) => window::decide(ready, w),
        // The configuration refuses the window strategy without a window;
        // should one still arrive here, waiting is the safe reading.
        (Strategy::Window, None) => (
            Action::Wait { until: None },
            "the window strategy has no [daemon.window]; boot it with `updater activate`".into(),
        ),
    }
}
