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
//! - [`mod@create`], [`mod@sign`]: `release create` and `release sign`;
//! - [`ostree`]: a release of an OSTree commit (`release create --ostree-repo`);
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
pub mod ostree;
pub mod publish;
pub mod schema;
pub mod serve;
pub mod sign;
pub mod signer;

pub use create::{
    chunk_file, create, cut_file, CreateOptions, Expiry, DEFAULT_CHUNK_SIZE, DEFAULT_EXPIRY_DAYS,
    DEFAULT_MAX_VALIDITY_DAYS,
};
pub use sign::add_signature;

/// Write to stdout, ignoring a closed pipe (`updater-vendor verify ... |
/// head`): the output is informational and must not make the tool panic.
pub fn print_out(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_fmt(args).and_then(|()| out.flush());
}

/// `println!` that ignores a closed stdout ([`print_out`]).
#[macro_export]
macro_rules! say {
    () => {
        $crate::print_out(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::print_out(format_args!("{}\n", format_args!($($arg)*)))
    };
}
