//! Small helpers shared by every concern.

pub mod fs;
pub mod names;
