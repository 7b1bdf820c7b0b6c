//! Command-line interface: argument definitions and dispatch.

mod device;
mod examples;
mod fleet;
pub mod progress;
mod root;
mod verify;

use std::path::PathBuf;

use anyhow::Result;
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};

use crate::clock::Clock;

/// An A/B update agent for immutable Linux systems.
#[derive(Debug, Parser)]
#[command(name = "updater", version, about, after_help = crate::error::help())]
pub struct Cli {
    /// Log more (repeat for more detail); UPDATER_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Configuration file (default: /usr/lib/updater and /etc/updater, config.toml and config.d/*.toml).
    #[arg(long, global = true, env = "UPDATER_CONFIG")]
    pub config: Option<PathBuf>,
    /// Run with the clock fixed at this time (RFC 3339): what expiry, trial
    /// deadlines, windows and records see. For tests, and to ask what would
    /// happen then (`updater check --now ...`).
    #[arg(long, global = true, value_parser = parse_time)]
    pub now: Option<DateTime<Utc>>,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Decide about a release as `apply` would, installing nothing (or
    /// check it against a keyring alone).
    #[command(after_help = crate::error::help())]
    Verify(verify::VerifyArgs),
    /// Install a release into the inactive slot group.
    #[command(after_help = crate::error::help(), after_long_help = crate::error::help_with_examples(examples::APPLY))]
    Apply(device::ApplyArgs),
    /// Boot the release installed in the inactive slot as a trial (after a
    /// download-only install).
    #[command(after_help = crate::error::help())]
    Activate(fleet::ActivateArgs),
    /// Poll the configured channel (or CHANNEL_URL) once and say what the
    /// daemon would do.
    #[command(after_help = crate::error::help())]
    Check(fleet::CheckArgs),
    /// Follow the configured channel: poll, install, boot in the allowed
    /// time, report (systemd Type=notify service).
    #[command(after_help = crate::error::help())]
    Daemon(fleet::DaemonArgs),
    /// Show the slot groups, what they hold, and any failure or pending trial.
    #[command(after_help = crate::error::help(), after_long_help = crate::error::help_with_examples(examples::STATUS))]
    Status(device::StatusArgs),
    /// Reconcile a pending trial at boot: run the health checks and commit, or mark the slot bad.
    #[command(after_help = crate::error::help(), after_long_help = crate::error::help_with_examples(examples::HEALTH))]
    Health(device::HealthArgs),
    /// Confirm the booted slot as good and make it the default.
    #[command(after_help = crate::error::help())]
    MarkGood,
    /// Mark a slot bad (default: the booted one) so it is never booted again.
    #[command(after_help = crate::error::help())]
    MarkBad(device::MarkBadArgs),
    /// Make the other good slot the default again.
    #[command(after_help = crate::error::help())]
    Rollback,
    /// The root of trust: fetch the root chain again and verify it from the
    /// image's root.
    #[command(after_help = crate::error::help())]
    Root(root::RootArgs),
}

/// Set up `tracing`: warnings by default, more with `-v`, or `UPDATER_LOG`
/// (a level such as `debug`, or `target=level` pairs such as
/// `warn,updater::install=debug`). A plain target filter rather than
/// `EnvFilter`: it needs no regex engine, which keeps the device binary
/// small.
pub fn init_logging(cli: &Cli) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let default = match cli.verbose {
        // The daemon runs unattended: what it decides and does is its
        // journal's, at the default level.
        0 if matches!(cli.command, Command::Daemon(_)) => "warn,updater::daemon=info",
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter: tracing_subscriber::filter::Targets = std::env::var("UPDATER_LOG")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| default.parse().expect("a level is a valid filter"));
    // Under systemd (JOURNAL_STREAM set) log to the journal with structured
    // fields; elsewhere to stderr, coloured only on a terminal.
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        if let Ok(journald) = tracing_journald::layer() {
            let _ = tracing_subscriber::registry()
                .with(journald)
                .with(filter)
                .try_init();
            return;
        }
    }
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(colour())
                .with_writer(std::io::stderr),
        )
        .with(filter)
        .try_init();
}

/// Whether log lines may be coloured: only on a terminal, and never when
/// `NO_COLOR` is set to anything (no-color.org): no escape codes in pipes,
/// files or the journal.
pub fn colour() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Run a parsed command.
pub fn run(cli: Cli) -> Result<()> {
    let clock = Clock::from_option(cli.now);
    let verbose = cli.verbose > 0;
    let config = cli.config.clone();
    let settings = || crate::config::load(config.as_deref());
    match cli.command {
        Command::Verify(a) => verify::run(a, clock, settings),
        Command::Apply(a) => device::apply(&settings()?, clock, a),
        Command::Activate(a) => fleet::activate(&settings()?, clock, a),
        Command::Check(a) => fleet::check(&settings()?, clock, a),
        Command::Daemon(a) => fleet::daemon(&settings()?, clock, a),
        Command::Status(a) => device::status(&settings()?, a, verbose),
        Command::Health(a) => device::health(&settings()?, clock, a),
        Command::MarkGood => device::mark_good(&settings()?, clock),
        Command::MarkBad(a) => device::mark_bad(&settings()?, clock, a),
        Command::Rollback => device::rollback(&settings()?, clock),
        Command::Root(a) => root::run(&settings()?, clock, a),
    }
}

/// Parse an RFC 3339 time, with an error that shows the form.
pub fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{s:?} is not an RFC 3339 time such as 2026-11-27T02:30:00Z: {e}"))
}

/// Print a value as one line of JSON.
pub fn print_json(v: &serde_json::Value) {
    crate::say!("{v}");
}
