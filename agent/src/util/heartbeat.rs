//! A process-wide heartbeat: long work (install progress, retry waits) calls
//! [`beat`] to say it is moving; the daemon installs the handler that feeds
//! the systemd watchdog from it. It lives in `util` so that the fetch and
//! install layers can beat without knowing about the daemon.

use std::sync::OnceLock;

type Beat = Box<dyn Fn() + Send + Sync>;
static HEARTBEAT: OnceLock<Beat> = OnceLock::new();

/// Have every [`beat`] call `handler`. Set once per process.
pub fn set_heartbeat(handler: Beat) {
    let _ = HEARTBEAT.set(handler);
}

/// Signal that work is moving.
pub fn beat() {
    if let Some(handler) = HEARTBEAT.get() {
        handler();
    }
}
