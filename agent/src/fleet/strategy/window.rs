//! `window`: install at once (the long, interruptible part happens
//! whenever), boot only inside the maintenance window (the disruptive part
//! only when allowed), and not before the channel's `not_before`.

use super::Ready;
use crate::config::MaintenanceWindow;
use crate::fleet::action::Action;
use crate::fleet::window::window_next_open;

/// Install now; boot when the window is open.
pub fn decide(r: &Ready, w: &MaintenanceWindow) -> (Action, String) {
    let (v, target) = (r.version, r.target);
    let open = window_next_open(w, r.boot_from.unwrap_or(r.now));
    let ready = open <= r.now;
    match (ready, r.installed) {
        (true, true) => (
            Action::Activate,
            format!("inside the maintenance window: boot {v} in slot {target} as a trial"),
        ),
        (true, false) => (
            Action::Install { activate: true },
            format!("inside the maintenance window: install {v} into slot {target} and boot it"),
        ),
        (false, true) => (
            Action::Wait { until: Some(open) },
            format!(
                "{v} is installed in slot {target}; it boots in the maintenance window at {}",
                open.to_rfc3339()
            ),
        ),
        (false, false) => (
            Action::Install { activate: false },
            format!(
                "install {v} into slot {target} now; it boots in the maintenance window at {}",
                open.to_rfc3339()
            ),
        ),
    }
}
