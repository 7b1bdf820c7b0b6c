//! `[slots]`: the slot backend (`backend = "paths"`, the default: block
//! devices or files) and, `[slots.NAME]`, the slot groups and the target of
//! each image class.

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

/// A key of `[slots]`: `backend = "NAME"`, or a group's table.
#[derive(Debug, Clone, Deserialize)]
#[serde(
    untagged,
    expecting = "`backend = \"NAME\"` or a slot group's table ([slots.NAME] with targets)"
)]
pub(super) enum Entry {
    /// `backend = "paths"`.
    Backend(String),
    /// `[slots.NAME]`.
    Group(Raw),
}

/// The default slot backend: what every configuration before `[slots]
/// backend` existed means.
pub const DEFAULT_BACKEND: &str = "paths";

/// The backend `[slots] backend` names (the default when it names none).
/// Which names exist is `slots::open`'s to say: the one place that opens a
/// backend refuses a name it does not know (exit 2, naming the key), so a
/// new backend is registered there alone.
pub(super) fn validate_backend(
    raw: Option<&BTreeMap<String, Entry>>,
    origin: &Origin,
) -> Result<String> {
    match raw.and_then(|r| r.get("backend")) {
        None => Ok(DEFAULT_BACKEND.to_string()),
        Some(Entry::Backend(b)) if !b.is_empty() => Ok(b.clone()),
        Some(Entry::Backend(_)) => Err(origin.invalid("slots.backend", " is empty")),
        Some(Entry::Group(_)) => Err(origin.invalid(
            "slots.backend",
            " must be a backend's name (a string), such as \"paths\"; a slot group may not be called \"backend\"",
        )),
    }
}

pub(super) fn validate(
    raw: Option<BTreeMap<String, Entry>>,
    origin: &Origin,
) -> Result<Vec<SlotGroupConfig>> {
    let mut groups = BTreeMap::new();
    for (name, e) in raw.unwrap_or_default() {
        match e {
            Entry::Group(g) => {
                groups.insert(name, g);
            }
            Entry::Backend(_) if name == "backend" => {}
            Entry::Backend(v) => {
                return Err(origin.invalid(
                    &format!("slots.{name}"),
                    format!(" = {v:?}: a slot group is a table ([slots.{name}] with targets)"),
                ))
            }
        }
    }
    let raw = groups;
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
