//! The event sink: how a flow tells its front end what is happening, without
//! printing. The CLI renders events as a progress bar or JSON lines
//! (`cli::progress`), the daemon logs them, a D-Bus service would signal
//! them. Every method has a default that ignores the event, so a sink
//! implements only what it shows.

/// Where a flow's events go.
pub trait Events {
    /// An image starts: `done` of `total` bytes already in place.
    fn image_begin(&mut self, _class: &str, _done: u64, _total: u64) {}
    /// Bytes of the current image written so far.
    fn image_progress(&mut self, _class: &str, _written: u64, _total: u64) {}
    /// The current image is done.
    fn image_done(&mut self, _class: &str, _total: u64) {}
    /// A step of the flow, with its facts (`apply --json` prints each as a
    /// line `{"event": NAME, ...fields}`).
    fn step(&mut self, _name: &str, _fields: &serde_json::Value) {}
    /// Something the user should know that does not stop the flow.
    fn warn(&mut self, _message: &str) {}
}

/// A sink that drops every event.
pub struct Silent;

impl Events for Silent {}

/// A sink that logs steps and warnings (the daemon's: it runs unattended,
/// and the journal is where its operator looks).
pub struct Logged;

impl Events for Logged {
    fn step(&mut self, name: &str, fields: &serde_json::Value) {
        tracing::info!("{name}: {fields}");
    }
    fn warn(&mut self, message: &str) {
        tracing::warn!("{message}");
    }
}

/// A sink that keeps every step and warning (tests, and front ends that
/// report them at the end).
#[derive(Debug, Default)]
pub struct Recorded {
    /// The steps, in order: name and fields.
    pub steps: Vec<(String, serde_json::Value)>,
    /// The warnings, in order.
    pub warnings: Vec<String>,
}

impl Events for Recorded {
    fn step(&mut self, name: &str, fields: &serde_json::Value) {
        self.steps.push((name.to_string(), fields.clone()));
    }
    fn warn(&mut self, message: &str) {
        self.warnings.push(message.to_string());
    }
}
