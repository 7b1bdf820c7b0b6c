//! `updater root refresh`: fetch the root chain again and verify it from
//! the image's root (after the persisted chain was damaged or cut short).

use anyhow::Result;
use clap::{Args, Subcommand};

use crate::clock::Clock;
use crate::config::Settings;
use crate::error::usage;
use crate::session::Session;

/// Arguments of `updater root`.
#[derive(Debug, Args)]
pub struct RootArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: RootCommand,
}

/// `updater root` subcommands.
#[derive(Debug, Subcommand)]
pub enum RootCommand {
    /// Fetch the root chain again from the release server, verify it from
    /// the image's root, and replace the persisted chain with it. It must
    /// reach the newest root version this device accepted.
    Refresh(RefreshArgs),
}

/// Arguments of `updater root refresh`.
#[derive(Debug, Args)]
pub struct RefreshArgs {
    /// A release (manifest URL or folder) or channel URL whose folder holds
    /// the root versions; default: daemon.channel, else `source`.
    pub source: Option<String>,
}

pub(super) fn run(settings: &Settings, clock: Clock, a: RootArgs) -> Result<()> {
    let RootCommand::Refresh(a) = a.command;
    let mut fetcher = match (a.source, &settings.daemon.channel, &settings.source) {
        (Some(s), _, _) => crate::fetch::open_source(&s, &settings.http)?,
        (None, Some(c), _) => crate::fetch::channel_fetcher(c, &settings.http)?,
        (None, None, Some(s)) => crate::fetch::open_source(s, &settings.http)?,
        (None, None, None) => {
            return Err(usage(
                "no SOURCE given, and neither daemon.channel nor source is configured: name the release or channel URL whose folder holds the root versions",
            ))
        }
    };
    let session = Session::open(settings, clock)?;
    let mut budget = crate::fetch::RetryBudget::new(&settings.http);
    let r = crate::trust::rebuild(
        settings,
        session.store(),
        session.now(),
        fetcher.as_mut(),
        &mut budget,
    )?;
    crate::say!(
        "root chain from {}: root version {} (the image's) to {}, verified link by link; {} link(s) written{}",
        fetcher.describe(),
        r.factory,
        r.head.version(),
        r.written.len(),
        if r.kept < r.head.version() {
            format!(" (what verified on the device before ended at version {})", r.kept)
        } else {
            String::new()
        }
    );
    Ok(())
}
