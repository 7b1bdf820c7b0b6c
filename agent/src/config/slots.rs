//! `[slots.NAME]`: the slot groups and the target of each image class.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;
use serde::Deserialize;

use super::Origin;

/// One slot group (A, B, ...) and the target of each image class.
#[derive(Debug, Clone)]
pub struct SlotGroupConfig {
    /// The group's name, as on the kernel command line (`updater.slot=NAME`).
    pub name: String,
    /// Image class -> target path (a block device or a file).
    pub targets: BTreeMap<String, PathBuf>,
    /// The root device the group's kernel mounts (for `root=`; also used to
    /// recognise the booted group when the command line has no `updater.slot=`).
    pub root_device: Option<String>,
}

/// `[slots.NAME]` as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Raw {
    root_device: Option<String>,
    targets: Option<BTreeMap<String, PathBuf>>,
}

pub(super) fn validate(
    raw: Option<BTreeMap<String, Raw>>,
    origin: &Origin,
) -> Result<Vec<SlotGroupConfig>> {
    let raw = raw.unwrap_or_default();
    if raw.len() < 2 {
        return Err(origin.invalid(
            "slots",
            format!(
                ": at least two slot groups are needed ([slots.A] and [slots.B]), found {}",
                raw.len()
            ),
        ));
    }
    let mut slots = Vec::new();
    let mut seen_targets: BTreeMap<PathBuf, String> = BTreeMap::new();
    for (name, rs) in raw {
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(origin.invalid(
                "slots",
                format!(": slot group name {name:?} must be letters, digits, '_' or '-'"),
            ));
        }
        let targets = rs.targets.unwrap_or_default();
        if targets.is_empty() {
            return Err(origin.invalid(
                &format!("slots.{name}.targets"),
                " is empty; map image classes to targets, e.g. rootfs = \"/dev/mmcblk0p2\"",
            ));
        }
        for (class, path) in &targets {
            updater_format::manifest::types::ClassName::new(class)
                .map_err(|e| origin.invalid(&format!("slots.{name}.targets"), format!(": {e}")))?;
            if !path.is_absolute() {
                return Err(origin.invalid(
                    &format!("slots.{name}.targets.{class}"),
                    format!(" = {} is not an absolute path", path.display()),
                ));
            }
            // Two groups sharing a target would let an install into the
            // inactive group overwrite the booted one.
            if let Some(other) = seen_targets.insert(path.clone(), format!("{name}.{class}")) {
                return Err(origin.invalid(
                    &format!("slots.{name}.targets.{class}"),
                    format!(" and slots.{other} are the same path {}", path.display()),
                ));
            }
        }
        slots.push(SlotGroupConfig {
            name,
            targets,
            root_device: rs.root_device,
        });
    }
    Ok(slots)
}
