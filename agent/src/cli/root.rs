//! `updater root refresh`: fetch the root chain again and verify it from
//! the image's root (after the persisted chain was damaged or cut short).

use anyhow::Result;
use clap::{Args, Subcommand};

use crate::clock::Clock;
use crate::config::Settings;

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
    #[command(after_help = crate::error::help())]
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
    let r = crate::flow::root::refresh(settings, clock, a.source.as_deref())?;
    crate::say!(
        "root chain from {}: root version {} (the image's) to {}, verified link by link; {} link(s) written{}",
        r.source,
        r.rebuilt.factory,
        r.rebuilt.head.version(),
        r.rebuilt.written.len(),
        if r.rebuilt.kept < r.rebuilt.head.version() {
            format!(
                " (what verified on the device before ended at version {})",
                r.rebuilt.kept
            )
        } else {
            String::new()
        }
    );
    Ok(())
}
