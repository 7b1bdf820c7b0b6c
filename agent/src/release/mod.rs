//! Vendor-side tooling: make and sign releases.

mod create;
mod sign;

pub use create::{
    chunk_file, create, CreateOptions, Expiry, DEFAULT_CHUNK_SIZE, DEFAULT_EXPIRY_DAYS,
};
pub use sign::add_signature;
