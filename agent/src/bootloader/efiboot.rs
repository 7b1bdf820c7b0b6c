//! The `efi` backend: the firmware's own boot manager, one `Boot####` load
//! option per slot group, driven through efivarfs ([`super::efivar`]).
//!
//! | operation | how |
//! |---|---|
//! | primary | the group whose option comes first among the ACTIVE ones in `BootOrder` |
//! | set primary | its option moved to the front of `BootOrder` |
//! | bootable | the option exists, is `LOAD_OPTION_ACTIVE`, and is in `BootOrder` |
//! | not bootable | `LOAD_OPTION_ACTIVE` cleared; the option stays in `BootOrder` |
//! | one-shot trial | the option made ACTIVE (and put in `BootOrder` after the primary if it is not there), then `BootNext` (the firmware deletes it before it starts the option) |
//! | booted | `BootCurrent` cross-checked against `updater.slot=` |
//!
//! The options are provisioned, not created by the agent
//! (`bootloader.entries = { A = "updater A", B = "updater B" }` by label,
//! or `{ A = "0001" }` by number, as `efibootmgr -c` made them when the disk
//! was laid out): a load option's device path names the disk and partition
//! by GUID, which the installer knows and the agent would have to guess.
//! The agent changes only the option's attribute word.
//!
//! Firmware quirks, and what the agent does (docs/boot-control.md):
//! - firmware that deletes an option (rauc#1855; OVMF deletes every option
//!   that is not in `BootOrder` at boot and reuses its number, measured):
//!   "bad" keeps the option in `BootOrder` and clears its ACTIVE bit; a
//!   label finds an option whatever its number; a missing one is named with
//!   what to run, nothing is guessed;
//! - firmware that ignores a `BootNext` outside `BootOrder` (fwupdate#55):
//!   the slots' options stay in `BootOrder`;
//! - firmware that reorders `BootOrder` (rauc#220): "bad" is the cleared
//!   ACTIVE bit, which a reorder keeps, not a position.

use anyhow::Result;

use super::efivar::{EfiVars, GLOBAL_GUID, NV_BS_RT};
use super::vars::boot_err;
use super::Bootloader;
use crate::config::{BootOption, EfiBackend};

/// The ACTIVE bit of a load option's attributes.
const LOAD_OPTION_ACTIVE: u32 = 0x1;

/// Open the EFI boot-manager backend.
pub fn open(cfg: &EfiBackend, groups: &[String]) -> Result<Box<dyn Bootloader>> {
    let mut options = Vec::new();
    for g in groups {
        let o = cfg.entries.get(g).ok_or_else(|| {
            boot_err(format!(
                "bootloader.entries names no boot option for slot {g}; add `{g} = \"updater {g}\"` (its label) or `{g} = \"000N\"` (its number, as efibootmgr lists the options)"
            ))
        })?;
        options.push((g.clone(), o.clone()));
    }
    let b = EfiBoot {
        vars: EfiVars::open(&cfg.efivarfs)?,
        options,
    };
    for (g, _) in &b.options {
        b.load_option(g)?;
    }
    Ok(Box::new(b))
}

/// The EFI boot-manager backend.
pub struct EfiBoot {
    vars: EfiVars,
    /// Each group and how its `Boot####` option is named.
    options: Vec<(String, BootOption)>,
}

/// A load option's description (after the attributes and the device
/// path's length), if it is a well-formed UTF-16 string.
fn description(data: &[u8]) -> Option<String> {
    let rest = data.get(6..)?;
    let units: Vec<u16> = rest
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|&u| u != 0)
        .collect();
    String::from_utf16(&units).ok()
}

fn option_name(n: u16) -> String {
    format!("Boot{n:04X}")
}

impl EfiBoot {
    fn number(&self, group: &str) -> Result<u16> {
        let option = self
            .options
            .iter()
            .find(|(g, _)| g == group)
            .map(|(_, o)| o)
            .ok_or_else(|| {
                boot_err(format!(
                    "unknown slot group {group:?} (configured: {})",
                    self.options
                        .iter()
                        .map(|(g, _)| g.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
        match option {
            BootOption::Number(n) => Ok(*n),
            BootOption::Label(label) => self.find_label(group, label),
        }
    }

    /// The number of the one `Boot####` option whose description is
    /// `label`.
    fn find_label(&self, group: &str, label: &str) -> Result<u16> {
        let mut found = Vec::new();
        let rd = std::fs::read_dir(self.vars.root())
            .map_err(|e| boot_err(format!("reading {}: {e}", self.vars.root().display())))?;
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(hex) = name
                .strip_prefix("Boot")
                .and_then(|r| r.strip_suffix(&format!("-{GLOBAL_GUID}")))
                .filter(|h| h.len() == 4)
            else {
                continue;
            };
            let Ok(n) = u16::from_str_radix(hex, 16) else {
                continue;
            };
            if let Some(v) = self.vars.get(&option_name(n), GLOBAL_GUID)? {
                if description(&v.data).as_deref() == Some(label) {
                    found.push(n);
                }
            }
        }
        match found.as_slice() {
            [n] => Ok(*n),
            [] => Err(boot_err(format!(
                "slot {group}'s boot option {label:?} does not exist in {}: the firmware or someone deleted it; recreate it as the device was provisioned (efibootmgr -c -L {label:?} ..., packaging/efi/README.md) and run the command again",
                self.vars.root().display()
            ))),
            many => Err(boot_err(format!(
                "{} boot options are labelled {label:?} ({}): which one is slot {group}'s is a guess; delete all but one (efibootmgr -b XXXX -B)",
                many.len(),
                many.iter().map(|n| option_name(*n)).collect::<Vec<_>>().join(", ")
            ))),
        }
    }

    fn group_of(&self, n: u16) -> Option<String> {
        self.options
            .iter()
            .map(|(g, _)| g)
            .find(|g| self.number(g).ok() == Some(n))
            .cloned()
    }

    /// `group`'s load option (its raw data). A missing one is an error that
    /// says the firmware (or someone) deleted it.
    fn load_option(&self, group: &str) -> Result<Vec<u8>> {
        let name = option_name(self.number(group)?);
        let var = self.vars.get(&name, GLOBAL_GUID)?.ok_or_else(|| {
            boot_err(format!(
                "slot {group}'s boot option {name} does not exist in {}: the firmware or someone deleted it; recreate it as the device was provisioned (efibootmgr -c ..., packaging/efi/README.md) and run the command again",
                self.vars.root().display()
            ))
        })?;
        if var.data.len() < 6 {
            return Err(boot_err(format!(
                "slot {group}'s boot option {name} holds {} bytes, too few for a load option",
                var.data.len()
            )));
        }
        Ok(var.data)
    }

    fn active(&self, group: &str) -> Result<bool> {
        let data = self.load_option(group)?;
        Ok(u32::from_le_bytes([data[0], data[1], data[2], data[3]]) & LOAD_OPTION_ACTIVE != 0)
    }

    fn set_active(&mut self, group: &str, active: bool) -> Result<()> {
        let mut data = self.load_option(group)?;
        let attrs = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
        let new = if active {
            attrs | LOAD_OPTION_ACTIVE
        } else {
            attrs & !LOAD_OPTION_ACTIVE
        };
        if new == attrs {
            return Ok(());
        }
        data[..4].copy_from_slice(&new.to_le_bytes());
        let name = option_name(self.number(group)?);
        self.vars.set(&name, GLOBAL_GUID, NV_BS_RT, &data)
    }

    fn u16_var(&self, name: &str) -> Result<Option<u16>> {
        match self.vars.get(name, GLOBAL_GUID)? {
            None => Ok(None),
            Some(v) if v.data.len() == 2 => Ok(Some(u16::from_le_bytes([v.data[0], v.data[1]]))),
            Some(v) => Err(boot_err(format!(
                "EFI variable {name} holds {} bytes, not 2",
                v.data.len()
            ))),
        }
    }

    fn boot_order(&self) -> Result<Vec<u16>> {
        match self.vars.get("BootOrder", GLOBAL_GUID)? {
            None => Ok(Vec::new()),
            Some(v) if v.data.len().is_multiple_of(2) => Ok(v
                .data
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect()),
            Some(v) => Err(boot_err(format!(
                "EFI variable BootOrder holds {} bytes, an odd number",
                v.data.len()
            ))),
        }
    }

    fn set_boot_order(&mut self, order: &[u16]) -> Result<()> {
        let data: Vec<u8> = order.iter().flat_map(|n| n.to_le_bytes()).collect();
        self.vars.set("BootOrder", GLOBAL_GUID, NV_BS_RT, &data)
    }
}

impl Bootloader for EfiBoot {
    fn name(&self) -> &'static str {
        "efi"
    }

    fn primary(&self) -> Result<Option<String>> {
        // What the firmware boots: the first ACTIVE option in BootOrder.
        for n in self.boot_order()? {
            if let Some(g) = self.group_of(n) {
                if self.active(&g)? {
                    return Ok(Some(g));
                }
            }
        }
        Ok(None)
    }

    fn set_primary(&mut self, group: &str) -> Result<()> {
        let n = self.number(group)?;
        if !self.bootable(group)? {
            return Err(boot_err(format!(
                "refusing to make slot {group} the default: its boot option {} is not bootable",
                option_name(n)
            )));
        }
        let mut order = vec![n];
        order.extend(self.boot_order()?.into_iter().filter(|m| *m != n));
        self.set_boot_order(&order)
    }

    fn bootable(&self, group: &str) -> Result<bool> {
        let n = self.number(group)?;
        Ok(self.active(group)? && self.boot_order()?.contains(&n))
    }

    fn set_bootable(&mut self, group: &str, bootable: bool) -> Result<()> {
        let n = self.number(group)?;
        if bootable {
            self.set_active(group, true)?;
            let mut order = self.boot_order()?;
            if !order.contains(&n) {
                // Right after the primary: the firmware's fallback order
                // stays "primary, then the other slot, then the rest".
                let at = order
                    .iter()
                    .position(|m| self.group_of(*m).is_some())
                    .map_or(0, |i| i + 1);
                order.insert(at, n);
                self.set_boot_order(&order)?;
            }
            return Ok(());
        }
        // The one-shot first, then the option itself: at every step the
        // firmware either boots the group as before or not at all. The
        // option stays in BootOrder: OVMF deletes options that are not.
        if self.u16_var("BootNext")? == Some(n) {
            self.vars.delete("BootNext", GLOBAL_GUID)?;
        }
        self.set_active(group, false)
    }

    fn arm_trial(&mut self, group: &str) -> Result<()> {
        let n = self.number(group)?;
        // Active and in BootOrder first (after the primary, which stays
        // first): some firmware ignores a BootNext outside BootOrder, and
        // the boot manager skips an inactive option.
        self.set_bootable(group, true)?;
        self.vars
            .set("BootNext", GLOBAL_GUID, NV_BS_RT, &n.to_le_bytes())
    }

    fn armed_trial(&self) -> Result<Option<String>> {
        Ok(self.u16_var("BootNext")?.and_then(|n| self.group_of(n)))
    }

    fn check_booted(&self, booted: &str) -> Result<()> {
        let Some(n) = self.u16_var("BootCurrent")? else {
            return Ok(());
        };
        match self.group_of(n) {
            Some(g) if g != booted => Err(boot_err(format!(
                "the firmware booted {} (slot {g}), but the kernel command line says updater.slot={booted}: the boot option's command line names the wrong slot. Fix {} so that it carries updater.slot={g}; nothing was changed",
                option_name(n),
                option_name(n)
            ))),
            _ => Ok(()),
        }
    }

    fn selected(&self) -> Result<Option<String>> {
        // Volatile, set by the firmware at every boot.
        Ok(self.u16_var("BootCurrent")?.and_then(|n| self.group_of(n)))
    }
}
