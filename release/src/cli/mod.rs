//! The vendor commands: argument definitions and dispatch. The
//! `updater-vendor` binary adds the demo on top of these.

mod channel;
mod keys;
mod release;
mod root;
mod verify;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};

pub use channel::{parse_time, ChannelCommand, PublishArgs};
pub use keys::{KeygenArgs, KeyringCommand, KeyringInitArgs};
pub use release::{CreateArgs, ReleaseCommand, SignArgs};
pub use root::RootCommand;
pub use verify::VerifyArgs;

/// The exit codes of the vendor commands, for `--help`.
pub const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  unexpected internal failure
  2  usage or configuration error
  3  rejected for security (signature, threshold, expiry, compatibility, hash mismatch)
  5  local I/O failure";

/// A command's examples, then [`EXIT_CODES`]: what `--help` and its man
/// page show after the options.
pub fn with_examples(examples: &str) -> String {
    format!("{examples}\n\n{EXIT_CODES}")
}

/// `updater-vendor release create`.
pub const CREATE_EXAMPLES: &str = "\
Examples:
  A release of a root filesystem image, its kernel signed for kexec_file_load:
    updater-vendor release create --out site/gw/1.2.0 --key keys/release.key --product gw --version 1.2.0 --security-version 3 --compatible acme-gw --image rootfs=rootfs.ext4 --kernel vmlinuz --kernel-key keys/kernel.key
  The same, signed by a key in an HSM (see updater-pkcs11-sign):
    updater-vendor release create --out site/gw/1.2.0 --signer \"keys/release.pub=updater-pkcs11-sign --module /usr/lib/softhsm/libsofthsm2.so --token release --id 01\" --product gw --version 1.2.0 --security-version 3 --compatible acme-gw --image rootfs=rootfs.ext4";

/// `updater-vendor channel publish`.
pub const PUBLISH_EXAMPLES: &str = "\
Examples:
  Point the stable channel of acme-gw devices at 1.2.0, for a tenth of the fleet first:
    updater-vendor channel publish --out site/gw/stable.json --key keys/channel.key --release acme-gw=1.2.0/manifest.json@10
  Then for all of them, valid for a week (re-publish before it expires):
    updater-vendor channel publish --out site/gw/stable.json --key keys/channel.key --release acme-gw=1.2.0/manifest.json --expires 7d";

/// The exit status of a failed vendor command: 3 when a document was
/// refused, 2 for bad usage or files, 5 for local I/O, else 1 (the table
/// above).
pub fn exit_code(err: &anyhow::Error) -> i32 {
    use updater_format::error::{Rejected, UsageError};
    for cause in err.chain() {
        if cause.is::<Rejected>() {
            return 3;
        }
        if cause.is::<UsageError>() {
            return 2;
        }
    }
    if err.chain().any(|c| c.is::<std::io::Error>()) {
        return 5;
    }
    1
}

/// The vendor commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Make an ed25519 key pair (PKCS#8 private, SPKI public, as OpenSSL writes them).
    #[command(after_help = EXIT_CODES)]
    Keygen(KeygenArgs),
    /// Make and sign releases.
    #[command(subcommand, after_help = EXIT_CODES)]
    Release(ReleaseCommand),
    /// Make the keyring a device trusts.
    #[command(subcommand, after_help = EXIT_CODES)]
    Keyring(KeyringCommand),
    /// Publish signed channel documents.
    #[command(subcommand, after_help = EXIT_CODES)]
    Channel(ChannelCommand),
    /// Make and co-sign root versions: who devices trust, over the years.
    #[command(subcommand, after_help = EXIT_CODES)]
    Root(RootCommand),
    /// Verify a release manifest against a keyring.
    #[command(after_help = EXIT_CODES)]
    Verify(VerifyArgs),
    /// Serve a release folder over loopback HTTP (demos, tests, benchmarks).
    #[command(after_help = EXIT_CODES)]
    Serve(ServeArgs),
    /// Write the release format's JSON Schemas (generated from the Rust types).
    #[command(after_help = EXIT_CODES)]
    Schema(SchemaArgs),
}

/// Arguments of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The release folder to serve.
    pub dir: PathBuf,
    /// Loopback address and port to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Stop after this many seconds (default: run until killed).
    #[arg(long)]
    pub seconds: Option<u64>,
    /// Limit the body throughput to this many bytes per second (tests).
    #[arg(long)]
    pub rate: Option<u64>,
    /// Append a line per request to this file: path, status, range start
    /// (`-` for the whole file) and the body bytes sent.
    #[arg(long)]
    pub log: Option<PathBuf>,
}

/// Arguments of `schema`.
#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// Folder to write the schemas into (default: print the manifest schema).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Run a vendor command.
pub fn run(command: Command) -> Result<()> {
    match command {
        Command::Keygen(a) => keys::keygen(a),
        Command::Release(c) => release::run(c),
        Command::Keyring(c) => keys::keyring(c),
        Command::Channel(c) => channel::run(c),
        Command::Root(c) => root::run(c),
        Command::Verify(a) => verify::run(a),
        Command::Serve(a) => serve(a),
        Command::Schema(a) => schema(a),
    }
}

/// Parse `args` (without the program name) as a vendor command and run it:
/// for tests that need releases, keys and channels made exactly as the
/// command line makes them, without a process.
pub fn run_args(args: &[&str]) -> Result<()> {
    use clap::Parser;
    #[derive(Parser)]
    #[command(name = "updater-vendor")]
    struct Wrapper {
        #[command(subcommand)]
        command: Command,
    }
    let w = Wrapper::try_parse_from(std::iter::once("updater-vendor").chain(args.iter().copied()))
        .map_err(|e| updater_format::error::usage(e.to_string()))?;
    run(w.command)
}

fn serve(a: ServeArgs) -> Result<()> {
    let server = crate::serve::Server::start(&a.dir, &a.listen)?;
    if let Some(r) = a.rate {
        server.set_rate(r);
    }
    if let Some(l) = &a.log {
        server.log_to(l)?;
    }
    crate::say!("serving {} at http://{}/", a.dir.display(), server.addr());
    match a.seconds {
        Some(s) => std::thread::sleep(std::time::Duration::from_secs(s)),
        None => loop {
            std::thread::park();
        },
    }
    Ok(())
}

fn schema(a: SchemaArgs) -> Result<()> {
    match a.out {
        Some(dir) => {
            std::fs::create_dir_all(&dir)?;
            for (name, text) in crate::schema::schemas() {
                crate::fs::write_atomic(&dir.join(name), text.as_bytes(), 0o644)?;
                crate::say!("wrote {}", dir.join(name).display());
            }
        }
        None => {
            for (name, text) in crate::schema::schemas() {
                if name == "manifest.schema.json" {
                    crate::print_out(format_args!("{text}"));
                }
            }
        }
    }
    Ok(())
}

/// Print a value as one line of JSON.
pub fn print_json(v: &serde_json::Value) {
    crate::say!("{v}");
}
