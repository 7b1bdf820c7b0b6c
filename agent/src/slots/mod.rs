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

use crate::config::Settings;
pub use paths::PathSlots;
pub use sink::{FileReader, FileSink, SlotReader, SlotSink};

/// The slot backends this agent knows, by the name `[slots] backend` takes.
pub const BACKENDS: &[&str] = &["paths"];

/// Open the configured slot backend: the one place that chooses it, and
/// where a new backend is registered (its name in [`BACKENDS`], its arm).
pub fn open(settings: &Settings) -> Result<Box<dyn SlotBackend + '_>> {
    match settings.slot_backend.as_str() {
        "paths" => Ok(Box::new(PathSlots::new(
            &settings.slots,
            &settings.cmdline_path,
            &settings.kexec.sys_root,
        ))),
        // The configuration accepts only the names in BACKENDS.
        other => Err(crate::error::usage(format!(
            "{}: slots.backend = {other:?} is not a slot backend this agent has; use one of {BACKENDS:?}{}",
            crate::config::locate(&settings.files, "slots.backend").unwrap_or_else(|| {
                settings
                    .files
                    .iter()
                    .map(|f| f.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            }),
            crate::config::closest(other, BACKENDS)
                .map(|m| format!("; did you mean `{m}`?"))
                .unwrap_or_default(),
        ))),
    }
}

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
    /// How a release is installed into this backend's groups.
    fn installer(&self) -> Installer<'_>;
    /// The file the group's kernel is in (kexec reads it).
    fn kernel(&self, group: &str) -> Option<PathBuf>;
    /// The file the group's initrd is in.
    fn initrd(&self, group: &str) -> Option<PathBuf>;
    /// The file the group's Unified Kernel Image is in (a release that
    /// carries one instead of a kernel and an initrd).
    fn uki(&self, group: &str) -> Option<PathBuf> {
        let _ = group;
        None
    }
    /// What the group's kernel needs on its command line to find its root
    /// (`root=DEVICE` for a partition; a deployment backend names its
    /// deployment), beside the agent's own `updater.*` parameters.
    fn boot_args(&self, group: &str) -> Vec<String>;
}

/// How a backend installs a release. Image backends (partitions, files)
/// hand the install pipeline a target per image class and it writes the
/// chunks; a backend that keeps releases its own way (deployments) adds its
/// variant here, with its own installer, and the install flow's match on
/// this enum is where it is called.
pub enum Installer<'a> {
    /// The chunk pipeline writes each image into a target of the group.
    Images(&'a dyn ImageTargets),
}

/// The targets of an image backend: one per image class and group.
pub trait ImageTargets {
    /// Whether `group` has a target for images of `class`.
    fn has_target(&self, group: &str, class: &str) -> bool;
    /// Open the target of `class` in `group` for writing an image of `size`
    /// bytes.
    fn open_sink(&self, group: &str, class: &str, size: u64) -> Result<Box<dyn SlotSink>>;
    /// Open the target of `class` in `group` read-only (a delta reads the
    /// booted slot's chunks; it is never written). None when the group has
    /// no target of that class.
    fn open_reader(&self, group: &str, class: &str) -> Result<Option<Box<dyn SlotReader>>>;
}
