//! Slot backends: where each slot group's images go, which group is booted,
//! and which one an install may write.
//!
//! Invariant 1 of the design: the booted group is never written. The booted
//! group comes from `updater.slot=` on the kernel command line (the
//! bootloader scripts in packaging/ and the kexec path put it there), else
//! from `root=` matched against each group's root device. When neither
//! tells, the agent refuses to run rather than guess.
//!
//! [`SlotBackend`] is the seam: the install pipeline asks it for a sink per
//! image class, the kexec path for a group's kernel, initrd and root device.
//! [`paths::PathSlots`] — a block device or file per image class, from the
//! configuration — is the first backend; an ostree backend (slot =
//! deployment) would be the second, behind the same trait.

pub mod identity;
pub mod paths;
pub mod sink;

use std::path::PathBuf;

use anyhow::Result;

pub use paths::PathSlots;
pub use sink::{FileSink, SlotReader, SlotSink};

/// Where the slot groups' contents live.
pub trait SlotBackend {
    /// The backend's name, for messages.
    fn name(&self) -> &'static str;
    /// The group names, in configuration order.
    fn groups(&self) -> Vec<String>;
    /// The booted group, from the kernel command line.
    fn booted(&self, cmdline: &str) -> Result<String>;
    /// The group an install writes, given the booted one; refuses when the
    /// targets of that group are the booted group's storage.
    fn install_target(&self, booted: &str) -> Result<String>;
    /// Whether `group` has a target for images of `class`.
    fn has_target(&self, group: &str, class: &str) -> bool;
    /// Open the target of `class` in `group` for writing an image of `size`
    /// bytes.
    fn open_sink(&self, group: &str, class: &str, size: u64) -> Result<Box<dyn SlotSink>>;
    /// Open the target of `class` in `group` read-only (a delta reads the
    /// booted slot's chunks; it is never written). None when the group has
    /// no target of that class.
    fn open_reader(&self, group: &str, class: &str) -> Result<Option<SlotReader>>;
    /// The file the group's kernel is in (kexec reads it).
    fn kernel(&self, group: &str) -> Option<PathBuf>;
    /// The file the group's initrd is in.
    fn initrd(&self, group: &str) -> Option<PathBuf>;
    /// The root device the group's kernel mounts (`root=`).
    fn root_device(&self, group: &str) -> Option<String>;
}
