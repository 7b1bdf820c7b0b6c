//! `updater-release`: the vendor side of updater.
//!
//! Everything a vendor's build host does and a device never does: make keys
//! and keyrings, cut images into chunks and compress them, sign releases and
//! channels, generate the JSON Schemas of the format, and serve a release
//! folder over loopback HTTP with injected faults (for the demo, the tests
//! and the benchmarks). The device agent does not depend on this crate; both
//! build on `updater-format`, so what is signed here is verified there by the
//! same code.
//!
//! - [`create`], [`sign`]: `release create` and `release sign`;
//! - [`keys`]: `keygen` and `keyring init`;
//! - [`publish`]: `channel publish`;
//! - [`schema`]: the JSON Schemas of the format;
//! - [`serve`]: the loopback HTTP server with fault injection;
//! - [`cli`]: the vendor commands' arguments and dispatch;
//! - [`fs`]: durable writes of output files.

pub mod cli;
pub mod create;
pub mod fs;
pub mod keys;
pub mod publish;
pub mod schema;
pub mod serve;
pub mod sign;

pub use create::{
    chunk_file, create, CreateOptions, Expiry, DEFAULT_CHUNK_SIZE, DEFAULT_EXPIRY_DAYS,
};
pub use sign::add_signature;
