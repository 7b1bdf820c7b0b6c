//! `[bootloader]`: which backend, and its settings. A tagged table: the
//! `backend` key picks the struct, and each backend has only its own keys.

use std::path::PathBuf;

use anyhow::Result;
use serde::Deserialize;

use super::Origin;

/// The validated bootloader configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootloaderConfig {
    /// The agent's own env file (initramfs slot choosers, tests).
    File(FileBackend),
    /// A GRUB environment block (grubenv).
    Grub(GrubBackend),
    /// A U-Boot environment, as fw_env.config describes it.
    Uboot(UbootBackend),
}

impl BootloaderConfig {
    /// The backend's name, as written in `bootloader.backend`.
    pub fn backend(&self) -> &'static str {
        match self {
            BootloaderConfig::File(_) => "file",
            BootloaderConfig::Grub(_) => "grub",
            BootloaderConfig::Uboot(_) => "uboot",
        }
    }

    /// The env file the backend replaces whole (temporary file and rename),
    /// whose folder may hold temporary files a crash left; `None` for
    /// backends that write in place.
    pub fn env_file(&self) -> Option<&std::path::Path> {
        match self {
            BootloaderConfig::File(f) => Some(&f.path),
            BootloaderConfig::Grub(_) | BootloaderConfig::Uboot(_) => None,
        }
    }
}

/// `backend = "file"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileBackend {
    /// The env file.
    pub path: PathBuf,
}

/// `backend = "grub"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrubBackend {
    /// The grubenv file.
    pub path: PathBuf,
}

/// `backend = "uboot"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UbootBackend {
    /// One copy, or two for a redundant environment: (file or device, offset).
    pub copies: Vec<(PathBuf, u64)>,
    /// Size of each copy in bytes, header included.
    pub size: usize,
}

/// A `[bootloader]` table as one fragment writes it: every key optional, so
/// that a fragment may change one key; unknown keys of the chosen backend
/// are refused with the fragment's name.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "backend", rename_all = "lowercase")]
pub(super) enum Fragment {
    /// `backend = "file"`.
    File(PathFragment),
    /// `backend = "grub"`.
    Grub(PathFragment),
    /// `backend = "uboot"`.
    Uboot(UbootFragment),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PathFragment {
    path: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UbootFragment {
    path: Option<PathBuf>,
    offset: Option<u64>,
    size: Option<usize>,
    redundant_path: Option<PathBuf>,
    redundant_offset: Option<u64>,
}

/// The smallest U-Boot environment that holds a header and one variable.
const MIN_UBOOT_ENV: usize = 16;

/// Check one fragment's `[bootloader]` table. A fragment that changes a key
/// without naming the backend is read as the backend of the merged
/// configuration (`backend`).
pub(super) fn check_fragment(table: &toml::Table, backend: Option<&str>) -> Result<(), String> {
    let mut t = table.clone();
    if !t.contains_key("backend") {
        match backend {
            Some(b) => {
                t.insert("backend".into(), toml::Value::String(b.to_string()));
            }
            // No backend anywhere: reported once, for the merged table.
            None => return Ok(()),
        }
    }
    Fragment::deserialize(toml::Value::Table(t))
        .map(|_| ())
        .map_err(|e| super::one_line(&e.to_string()))
}

/// Validate the merged `[bootloader]` table.
pub(super) fn validate(table: Option<toml::Table>, origin: &Origin) -> Result<BootloaderConfig> {
    let table = table.ok_or_else(|| origin.missing("bootloader.backend"))?;
    if !table.contains_key("backend") {
        return Err(origin.missing("bootloader.backend"));
    }
    let fragment = Fragment::deserialize(toml::Value::Table(table)).map_err(|e| {
        origin.invalid(
            "bootloader",
            format!(
                ": {}; the backends are \"grub\", \"uboot\" and \"file\"",
                super::one_line(&e.to_string())
            ),
        )
    })?;
    let path = |p: Option<PathBuf>| p.ok_or_else(|| origin.missing("bootloader.path"));
    Ok(match fragment {
        Fragment::File(f) => BootloaderConfig::File(FileBackend {
            path: path(f.path)?,
        }),
        Fragment::Grub(f) => BootloaderConfig::Grub(GrubBackend {
            path: path(f.path)?,
        }),
        Fragment::Uboot(f) => {
            let p = path(f.path)?;
            let size = f.size.ok_or_else(|| origin.missing("bootloader.size"))?;
            if size < MIN_UBOOT_ENV {
                return Err(origin.invalid(
                    "bootloader.size",
                    format!(" = {size} is too small for a U-Boot env"),
                ));
            }
            let mut copies = vec![(p.clone(), f.offset.unwrap_or(0))];
            match (f.redundant_path, f.redundant_offset) {
                (None, None) => {}
                (rp, ro) => copies.push((rp.unwrap_or(p), ro.unwrap_or(0))),
            }
            if copies.len() == 2 && copies[0] == copies[1] {
                return Err(origin.invalid(
                    "bootloader.redundant_path",
                    ": the two U-Boot env copies are at the same place",
                ));
            }
            BootloaderConfig::Uboot(UbootBackend { copies, size })
        }
    })
}
