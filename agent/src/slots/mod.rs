//! Slot groups: which one is booted, which one an install may write.
//!
//! Invariant 1 of the design: the booted group is never written. The booted
//! group comes from `updater.slot=` on the kernel command line (the
//! bootloader scripts in packaging/ and the kexec path put it there), else
//! from `root=` matched against each group's root device. When neither
//! tells, the agent refuses to run rather than guess.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::config::{Settings, SlotGroupConfig};
use crate::error::usage;

/// The booted group's name.
pub fn booted_group(settings: &Settings) -> Result<String> {
    let cmdline = std::fs::read_to_string(&settings.cmdline_path).with_context(|| {
        format!(
            "reading the kernel command line {}",
            settings.cmdline_path.display()
        )
    })?;
    booted_from_cmdline(&cmdline, settings)
}

/// Decide the booted group from a command line.
pub fn booted_from_cmdline(cmdline: &str, settings: &Settings) -> Result<String> {
    let mut slot = None;
    let mut root = None;
    for word in cmdline.split_whitespace() {
        if let Some(v) = word.strip_prefix("updater.slot=") {
            if slot.replace(v).is_some() {
                return Err(usage(format!(
                    "the kernel command line has more than one updater.slot= ({cmdline:?}); refusing to guess the booted slot"
                )));
            }
        } else if let Some(v) = word.strip_prefix("root=") {
            root = Some(v);
        }
    }
    if let Some(s) = slot {
        if settings.group(s).is_none() {
            return Err(usage(format!(
                "the kernel command line says updater.slot={s}, but the configuration has no slot group {s:?}"
            )));
        }
        return Ok(s.to_string());
    }
    if let Some(r) = root {
        let canon = canonical(Path::new(r));
        for g in &settings.slots {
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
        settings.cmdline_path.display()
    )))
}

fn canonical(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

/// The group an install writes: the first group in configuration order that
/// is not the booted one.
pub fn install_target<'a>(settings: &'a Settings, booted: &str) -> Result<&'a SlotGroupConfig> {
    let target = settings
        .slots
        .iter()
        .find(|g| g.name != booted)
        .ok_or_else(|| usage("the configuration has no slot group besides the booted one"))?;
    let booted_cfg = settings
        .group(booted)
        .ok_or_else(|| usage(format!("no slot group {booted:?} in the configuration")))?;
    // Belt and braces: even if the config check missed it (symlinks), never
    // write a path that resolves to one of the booted group's targets.
    for (class, t) in &target.targets {
        let ct = canonical(t);
        for (bclass, b) in &booted_cfg.targets {
            if canonical(b) == ct {
                return Err(usage(format!(
                    "slot {}'s {class} target {} is the booted slot {booted}'s {bclass} target; refusing to write the booted slot",
                    target.name,
                    t.display()
                )));
            }
        }
    }
    Ok(target)
}
