//! `download-only`: install the release, then wait for the operator's
//! `updater activate`.

use super::Ready;
use crate::fleet::action::Action;

/// Install; never boot by itself.
pub fn decide(r: &Ready) -> (Action, String) {
    let (v, target) = (r.version, r.target);
    if r.installed {
        (
            Action::Wait { until: None },
            format!(
                "{v} is installed in slot {target}; download-only: boot it with `updater activate`"
            ),
        )
    } else {
        (
            Action::Install { activate: false },
            format!("download-only: install {v} into slot {target}"),
        )
    }
}
