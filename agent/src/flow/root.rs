//! `root refresh`: fetch the root chain again from the release server and
//! verify it from the image's root (after the persisted chain was damaged
//! or cut short), under the state lock.

use anyhow::Result;

use crate::clock::Clock;
use crate::config::Settings;
use crate::error::usage;
use crate::session::Session;
use crate::trust::Rebuilt;

/// What `root refresh` did, and where from.
#[derive(Debug)]
pub struct Refreshed {
    /// The source the chain came from.
    pub source: String,
    /// The rebuilt chain.
    pub rebuilt: Rebuilt,
}

/// `updater root refresh [SOURCE]`: from `source`, else the configured
/// channel, else the configured release source.
pub fn refresh(settings: &Settings, clock: Clock, source: Option<&str>) -> Result<Refreshed> {
    let mut fetcher = match (source, &settings.daemon.channel, &settings.source) {
        (Some(s), _, _) => crate::fetch::open_source(s, &settings.http)?,
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
    let rebuilt = crate::trust::rebuild(
        settings,
        session.store(),
        session.now(),
        fetcher.as_mut(),
        &mut budget,
    )?;
    Ok(Refreshed {
        source: fetcher.describe(),
        rebuilt,
    })
}
