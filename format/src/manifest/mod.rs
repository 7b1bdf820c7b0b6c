//! The release manifest and its chunk tables: types and verification.

pub mod types;
pub mod verify;

pub use types::{ChunkTable, Image, Manifest, OstreeInfo, StaticDelta, UkiInfo};
pub use verify::{verify, Policy, Verified};
