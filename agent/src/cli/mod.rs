//! Command-line interface: argument definitions and dispatch.

mod device;
mod fleet;
mod verify;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  unexpected internal failure
  2  usage or configuration error
  3  rejected for security (signature, threshold, expiry, compatibility, downgrade, hash mismatch)
  4  fetch failed after retries
  5  local I/O or slot write failure
  6  boot-control failure";

/// An A/B update agent for immutable Linux systems.
#[derive(Debug, Parser)]
#[command(name = "updater", version, about, after_help = EXIT_CODES)]
pub struct Cli {
    /// Log more (repeat for more detail); UPDATER_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Configuration file (default: /usr/lib/updater and /etc/updater, config.toml and config.d/*.toml).
    #[arg(long, global = true, env = "UPDATER_CONFIG")]
    pub config: Option<PathBuf>,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Verify a release manifest against a keyring and the device's policy.
    #[command(after_help = EXIT_CODES)]
    Verify(verify::VerifyArgs),
    /// Install a release into the inactive slot group.
    #[command(after_help = EXIT_CODES)]
    Apply(device::ApplyArgs),
    /// Boot the release installed in the inactive slot as a trial (after a
    /// download-only install).
    #[command(after_help = EXIT_CODES)]
    Activate(fleet::ActivateArgs),
    /// Poll the configured channel once and say what the daemon would do.
    #[command(after_help = EXIT_CODES)]
    Check(fleet::CheckArgs),
    /// Follow the configured channel: poll, install, boot in the allowed
    /// time, report (systemd Type=notify service).
    #[command(after_help = EXIT_CODES)]
    Daemon(fleet::DaemonArgs),
    /// Show the slot groups, what they hold, and any failure or pending trial.
    #[command(after_help = EXIT_CODES)]
    Status(device::StatusArgs),
    /// Reconcile a pending trial at boot: run the health checks and commit, or mark the slot bad.
    #[command(after_help = EXIT_CODES)]
    Health(device::HealthArgs),
    /// Confirm the booted slot as good and make it the default.
    #[command(after_help = EXIT_CODES)]
    MarkGood,
    /// Mark a slot bad (default: the booted one) so it is never booted again.
    #[command(after_help = EXIT_CODES)]
    MarkBad(device::MarkBadArgs),
    /// Make the other good slot the default again.
    #[command(after_help = EXIT_CODES)]
    Rollback,
}

/// Set up `tracing`: warnings by default, more with `-v`, or `UPDATER_LOG`.
pub fn init_logging(cli: &Cli) {
    let default = match cli.verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("UPDATER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Under systemd (JOURNAL_STREAM set) log to the journal with structured
    // fields; elsewhere to stderr, coloured only on a terminal.
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        if let Ok(journald) = tracing_journald::layer() {
            use tracing_subscriber::layer::SubscriberExt;
            use tracing_subscriber::util::SubscriberInitExt;
            let _ = tracing_subscriber::registry()
                .with(filter)
                .with(journald)
                .try_init();
            return;
        }
    }
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

/// Run a parsed command.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Verify(a) => verify::run(a),
        Command::Apply(a) => device::apply(&settings(&cli.config)?, a),
        Command::Activate(a) => fleet::activate(&settings(&cli.config)?, a),
        Command::Check(a) => fleet::check(&settings(&cli.config)?, a),
        Command::Daemon(a) => fleet::daemon(&settings(&cli.config)?, a),
        Command::Status(a) => device::status(&settings(&cli.config)?, a),
        Command::Health(a) => device::health(&settings(&cli.config)?, a),
        Command::MarkGood => device::mark_good(&settings(&cli.config)?),
        Command::MarkBad(a) => device::mark_bad(&settings(&cli.config)?, a),
        Command::Rollback => device::rollback(&settings(&cli.config)?),
    }
}

fn settings(config: &Option<PathBuf>) -> Result<crate::config::Settings> {
    crate::config::load(config.as_deref())
}

/// Print a value as one line of JSON.
pub fn print_json(v: &serde_json::Value) {
    println!("{v}");
}
