//! `updater-vendor`: the vendor's tool. Keys and keyrings, releases,
//! channels, JSON Schemas, a loopback server, and the built-in demo, which
//! plays both the vendor and a simulated device. The command line is a
//! library item so its man pages and completions are generated from it.

mod demo;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use updater_format::error::OneLine;

/// The vendor side of updater: make keys, keyrings, releases and channels.
#[derive(Debug, Parser)]
#[command(name = "updater-vendor", version, about, after_help = updater_release::cli::EXIT_CODES)]
pub struct Cli {
    /// Log more (repeat for more detail).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands of `updater-vendor`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// The vendor commands.
    #[command(flatten)]
    Vendor(updater_release::cli::Command),
    /// Run the built-in demonstration: a vendor makes and signs releases, a
    /// simulated device in a temporary folder installs, tries, commits and
    /// rolls back.
    #[command(after_help = updater_release::cli::EXIT_CODES)]
    Demo(DemoArgs),
}

/// Arguments of `demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Work in this folder instead of a new temporary one (kept afterwards).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// Parse the command line, run the command and exit with its status.
pub fn main() {
    let cli = Cli::parse();
    let level = match cli.verbose {
        0 => tracing::Level::WARN,
        1 => tracing::Level::INFO,
        2 => tracing::Level::DEBUG,
        _ => tracing::Level::TRACE,
    };
    // Colour only on a terminal, and never under NO_COLOR (no-color.org).
    let colour = {
        use std::io::IsTerminal;
        std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
    };
    let _ = tracing_subscriber::fmt()
        .with_ansi(colour)
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .try_init();
    let result = match cli.command {
        Command::Vendor(c) => updater_release::cli::run(c),
        Command::Demo(a) => demo::run(a.dir),
    };
    let code = match result {
        Ok(()) => 0,
        Err(err) => {
            eprintln!("error: {}", OneLine(&err));
            updater_release::cli::exit_code(&err)
        }
    };
    std::process::exit(code);
}
