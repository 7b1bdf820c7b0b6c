//! Boot control: the [`Bootloader`] trait and its backends, one file each.
//!
//! Every backend does RAUC's four things — read the primary group, set it,
//! read a group's bootable flag, set it — plus arming a one-shot trial for
//! the reboot path:
//!
//! | backend | primary | bootable | one-shot trial |
//! |---|---|---|---|
//! | [`grub`]  | `ORDER="A B"` (first is primary) | `A_OK=1` / `0` | `B_TRY=1` |
//! | [`uboot`] | `BOOT_ORDER="A B"` | `BOOT_A_LEFT` > 0 | `BOOT_TRY=B` |
//! | [`mod@file`]  | `ORDER=A B` | `A_OK=1` / `0` | `TRY=B` |
//! | [`sdboot`] | `LoaderEntryDefault` | `loader/entries/updater-A.conf` or `EFI/Linux/updater-A.efi` (else `.disabled`) | `LoaderEntryOneShot` |
//! | [`efiboot`] | first in `BootOrder` | `Boot####` ACTIVE and in `BootOrder` | `BootNext` |
//!
//! The bootloader side (packaging/grub, packaging/uboot; systemd-boot and
//! the firmware's boot manager themselves) boots the one-shot
//! group after clearing the variable and saving the env — so a reset during
//! the trial falls back — else the first group of the order that is
//! bootable, else group A, and puts `updater.slot=X` on the command line.
//!
//! A new backend is a file here implementing [`Bootloader`] (directly, or
//! through [`vars`] when it stores variables), a variant of
//! `config::BootloaderConfig`, and an arm of [`open`].

pub mod efiboot;
pub mod efivar;
pub mod file;
pub mod grub;
pub mod sdboot;
pub mod uboot;
pub mod vars;

use anyhow::Result;

use crate::config::{BootloaderConfig, Settings};

/// A bootloader backend.
pub trait Bootloader {
    /// The backend's name, for messages.
    fn name(&self) -> &'static str;
    /// The group the bootloader boots by default.
    fn primary(&self) -> Result<Option<String>>;
    /// Make `group` the default. Refuses a group that is not bootable: the
    /// primary must always be a group that can boot.
    fn set_primary(&mut self, group: &str) -> Result<()>;
    /// Whether the bootloader may boot `group`.
    fn bootable(&self, group: &str) -> Result<bool>;
    /// Mark `group` bootable or not, durably. Marking it unbootable also
    /// disarms a pending one-shot trial of it.
    fn set_bootable(&mut self, group: &str, bootable: bool) -> Result<()>;
    /// Boot `group` once at the next reset, then fall back to the primary.
    fn arm_trial(&mut self, group: &str) -> Result<()>;
    /// The group whose one-shot trial is armed, if any.
    fn armed_trial(&self) -> Result<Option<String>>;
    /// Check `booted` (from the kernel command line) against what the
    /// bootloader says it booted, for backends that record it
    /// (`LoaderEntrySelected`, `BootCurrent`). Not called in a kernel the
    /// agent kexec'd: those variables still name what the firmware booted.
    fn check_booted(&self, booted: &str) -> Result<()> {
        let _ = booted;
        Ok(())
    }
    /// The group the bootloader says it booted this time, for a kernel
    /// command line that does not name one: a Type #2 UKI carries its own
    /// `.cmdline`, which sd-stub uses instead of the loader's options under
    /// Secure Boot, so one UKI serves either slot and cannot say which.
    /// `None` for backends that do not record it.
    fn selected(&self) -> Result<Option<String>> {
        Ok(None)
    }
}

/// Open the configured backend (the only place that does).
pub fn open(settings: &Settings) -> Result<Box<dyn Bootloader>> {
    let groups = settings.group_names();
    match &settings.bootloader {
        BootloaderConfig::File(f) => file::open(&f.path, &groups),
        BootloaderConfig::Grub(g) => grub::open(&g.path, &groups),
        BootloaderConfig::Uboot(u) => uboot::open(u, &groups),
        BootloaderConfig::SdBoot(b) => sdboot::open(b, &settings.slots),
        BootloaderConfig::Efi(b) => efiboot::open(b, &groups),
    }
}
