//! Boot control: the `Bootloader` trait and its backends.
//!
//! Every backend does RAUC's four things — read the primary group, set it,
//! read a group's bootable flag, set it — plus arming a one-shot trial for
//! the reboot path. Which backend runs is chosen from the configuration.

mod file;

pub use file::FileEnv;

use anyhow::Result;

use crate::config::{BootloaderConfig, Settings};

/// A bootloader backend.
pub trait Bootloader {
    /// The backend's name, for messages.
    fn name(&self) -> &'static str;
    /// The group the bootloader boots by default.
    fn primary(&self) -> Result<Option<String>>;
    /// Make `group` the default. Callers only do this at commit.
    fn set_primary(&mut self, group: &str) -> Result<()>;
    /// Whether the bootloader may boot `group`.
    fn bootable(&self, group: &str) -> Result<bool>;
    /// Mark `group` bootable or not, durably.
    fn set_bootable(&mut self, group: &str, bootable: bool) -> Result<()>;
    /// Boot `group` once at the next reset, then fall back to the primary.
    fn arm_trial(&mut self, group: &str) -> Result<()>;
}

/// Open the configured backend.
pub fn open(settings: &Settings) -> Result<Box<dyn Bootloader>> {
    let groups: Vec<String> = settings.slots.iter().map(|g| g.name.clone()).collect();
    match &settings.bootloader {
        BootloaderConfig::File { path } => Ok(Box::new(FileEnv::open(path, &groups)?)),
    }
}
