//! `immediate`: install and boot the release as soon as it is found (or
//! from the channel's `not_before`).

use super::Ready;
use crate::fleet::action::Action;

/// Install now; boot now, or from `not_before`.
pub fn decide(r: &Ready) -> (Action, String) {
    let (v, target) = (r.version, r.target);
    match (r.boot_from, r.installed) {
        (Some(t), true) => (
            Action::Wait { until: Some(t) },
            format!(
                "{v} is installed in slot {target}; the channel allows booting it from {}",
                t.to_rfc3339()
            ),
        ),
        (Some(t), false) => (
            Action::Install { activate: false },
            format!(
                "install {v} into slot {target} now, boot it from {}",
                t.to_rfc3339()
            ),
        ),
        (None, true) => (
            Action::Activate,
            format!("boot {v} in slot {target} as a trial"),
        ),
        (None, false) => (
            Action::Install { activate: true },
            format!("install {v} into slot {target} and boot it as a trial"),
        ),
    }
}
