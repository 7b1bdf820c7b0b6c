//! Small helpers shared by every concern.

pub mod failpoint;
pub mod fs;
pub mod heartbeat;
pub mod notify;
