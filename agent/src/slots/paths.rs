//! The first slot backend: a block device or a file per image class and
//! group, from `[slots.NAME.targets]`.

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::identity;
use super::sink::{FileReader, FileSink, ReplaceSink, SlotReader};
use super::{ImageTargets, Installer, SlotBackend, SlotSink};
use crate::config::SlotGroupConfig;
use crate::error::usage;

/// The image classes whose file targets are replaced whole (temporary file,
/// fsync, rename, fsync of the folder) rather than written in place: the
/// files a bootloader loads by name from the ESP.
pub const REPLACED_WHOLE: [&str; 3] = ["kernel", "initrd", "uki"];

/// The suffix a bootloader backend gives a replaced-whole file to park it
/// where the boot loader does not look: systemd-boot's Type #2 entry is the
/// UKI file itself (`EFI/Linux/updater-B.efi`), so a slot that must not
/// boot has its UKI renamed `updater-B.efi.disabled`.
pub const PARKED: &str = ".disabled";

/// Where a replaced-whole target's file is now: the target, or its parked
/// name when only that exists. Reading a parked file, and installing into
/// it, must not unpark it: only the bootloader backend makes a slot
/// bootable, after the install (invariant: a slot is never bootable with
/// half its release).
pub fn located(target: &Path) -> PathBuf {
    let mut name = target.as_os_str().to_os_string();
    name.push(PARKED);
    let parked = PathBuf::from(name);
    if !target.exists() && parked.exists() {
        parked
    } else {
        target.to_path_buf()
    }
}

/// Slot groups whose members are paths.
pub struct PathSlots<'a> {
    groups: &'a [SlotGroupConfig],
    /// Where the command line was read from, for messages.
    cmdline_path: PathBuf,
    /// The sysfs root (tests point it elsewhere).
    sys_root: PathBuf,
}

impl<'a> PathSlots<'a> {
    /// The backend over the configured groups.
    pub fn new(
        groups: &'a [SlotGroupConfig],
        cmdline_path: &Path,
        sys_root: &Path,
    ) -> PathSlots<'a> {
        PathSlots {
            groups,
            cmdline_path: cmdline_path.to_path_buf(),
            sys_root: sys_root.to_path_buf(),
        }
    }

    fn group(&self, name: &str) -> Option<&SlotGroupConfig> {
        self.groups.iter().find(|g| g.name == name)
    }

    fn target(&self, group: &str, class: &str) -> Option<&PathBuf> {
        self.group(group).and_then(|g| g.targets.get(class))
    }

    /// A boot file's target where it is now (parked or not).
    fn boot_file(&self, group: &str, class: &str) -> Option<PathBuf> {
        self.target(group, class).map(|t| located(t))
    }
}

fn canonical(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

impl SlotBackend for PathSlots<'_> {
    fn name(&self) -> &'static str {
        "paths"
    }

    fn groups(&self) -> Vec<String> {
        self.groups.iter().map(|g| g.name.clone()).collect()
    }

    fn booted(&self, cmdline: &str) -> Result<String> {
        // Parsed as the kernel parses it (quotes included), so that the
        // agent reads the parameters the kernel saw.
        let params = updater_format::cmdline::parse(cmdline.trim()).map_err(|e| {
            usage(format!(
                "the kernel command line {cmdline:?} does not parse ({e}); refusing to guess the booted slot"
            ))
        })?;
        let mut slot = None;
        let mut root = None;
        for p in &params {
            match (p.key.as_str(), p.value.as_deref()) {
                // The guard records the slot; a second one is refused.
                ("updater.slot", Some(v)) if slot.replace(v).is_some() => {
                    return Err(usage(format!(
                        "the kernel command line has more than one updater.slot= ({cmdline:?}); refusing to guess the booted slot"
                    )));
                }
                ("root", Some(v)) => root = Some(v),
                _ => {}
            }
        }
        if let Some(s) = slot {
            if self.group(s).is_none() {
                return Err(usage(format!(
                    "the kernel command line says updater.slot={s}, but the configuration has no slot group {s:?}"
                )));
            }
            return Ok(s.to_string());
        }
        if let Some(r) = root {
            let canon = canonical(Path::new(r));
            for g in self.groups {
                let matches_root = g.root_device.as_deref() == Some(r);
                let matches_target = g
                    .targets
                    .get("rootfs")
                    .is_some_and(|t| canonical(t) == canon);
                if matches_root || matches_target {
                    return Ok(g.name.clone());
                }
            }
        }
        Err(usage(format!(
            "cannot tell which slot group is booted: {} has no updater.slot= and its root= matches no group's root_device or rootfs target; refusing to write any slot",
            self.cmdline_path.display()
        )))
    }

    fn install_target(&self, booted: &str) -> Result<String> {
        let target = self
            .groups
            .iter()
            .find(|g| g.name != booted)
            .ok_or_else(|| usage("the configuration has no slot group besides the booted one"))?;
        // Every target of the group to write is identified by its storage
        // (not its name) and must share none with any other group's: not
        // with the booted group's (invariant 1), and not with another
        // inactive group's either.
        let ident = |p: &Path| identity::identify(p, &self.sys_root);
        for (class, t) in &target.targets {
            let ti = ident(t);
            for other in self.groups.iter().filter(|g| g.name != target.name) {
                for (oclass, o) in &other.targets {
                    if let Some(why) = ti.overlaps(&ident(o)) {
                        let whose = if other.name == booted {
                            format!("the booted slot {booted}'s")
                        } else {
                            format!("slot {}'s", other.name)
                        };
                        return Err(usage(format!(
                            "slot {}'s {class} target {} is the same storage as {whose} {oclass} target {} ({why}); refusing to write it — point slots.{}.targets.{class} at the slot's own storage",
                            target.name,
                            t.display(),
                            o.display(),
                            target.name
                        )));
                    }
                }
            }
        }
        Ok(target.name.clone())
    }

    fn installer(&self) -> Installer<'_> {
        Installer::Images(self)
    }

    fn kernel(&self, group: &str) -> Option<PathBuf> {
        self.boot_file(group, "kernel")
    }

    fn initrd(&self, group: &str) -> Option<PathBuf> {
        self.boot_file(group, "initrd")
    }

    fn uki(&self, group: &str) -> Option<PathBuf> {
        self.boot_file(group, "uki")
    }

    fn boot_args(&self, group: &str) -> Vec<String> {
        self.group(group)
            .and_then(|g| g.root_device.clone())
            .map(|r| vec![format!("root={r}")])
            .unwrap_or_default()
    }
}

impl ImageTargets for PathSlots<'_> {
    fn has_target(&self, group: &str, class: &str) -> bool {
        self.target(group, class).is_some()
    }

    fn open_sink(&self, group: &str, class: &str, size: u64) -> Result<Box<dyn SlotSink>> {
        let path = self.target(group, class).ok_or_else(|| {
            usage(format!(
                "slot group {group} has no target for images of class {class}; add slots.{group}.targets.{class} to the configuration"
            ))
        })?;
        // Boot files are replaced whole (a bootloader reads them by name);
        // an image of a partition, or a file holding one, is written in place.
        let is_block = std::fs::metadata(path)
            .map(|m| m.file_type().is_block_device())
            .unwrap_or(false);
        let sink: Box<dyn SlotSink> = if REPLACED_WHOLE.contains(&class) && !is_block {
            // A parked file is replaced under its parked name: it stays
            // unbootable until the bootloader backend arms or commits it.
            Box::new(
                ReplaceSink::open(&located(path), size)
                    .with_context(|| format!("slot {group} {class}"))?,
            )
        } else {
            Box::new(FileSink::open(path, size).with_context(|| format!("slot {group} {class}"))?)
        };
        Ok(sink)
    }

    fn open_reader(&self, group: &str, class: &str) -> Result<Option<Box<dyn SlotReader>>> {
        let path = if REPLACED_WHOLE.contains(&class) {
            self.boot_file(group, class)
        } else {
            self.target(group, class).cloned()
        };
        match path {
            None => Ok(None),
            Some(path) => FileReader::open(&path)
                .map(|r| Some(Box::new(r) as Box<dyn SlotReader>))
                .with_context(|| format!("slot {group} {class}")),
        }
    }
}
