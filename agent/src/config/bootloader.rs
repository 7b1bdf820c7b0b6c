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
    /// systemd-boot: Boot Loader Specification entries and its EFI variables.
    SdBoot(SdBootBackend),
    /// The firmware's boot manager: `Boot####`, `BootOrder`, `BootNext`.
    Efi(EfiBackend),
}

impl BootloaderConfig {
    /// The backend's name, as written in `bootloader.backend`.
    pub fn backend(&self) -> &'static str {
        match self {
            BootloaderConfig::File(_) => "file",
            BootloaderConfig::Grub(_) => "grub",
            BootloaderConfig::Uboot(_) => "uboot",
            BootloaderConfig::SdBoot(_) => "systemd-boot",
            BootloaderConfig::Efi(_) => "efi",
        }
    }

    /// The env file the backend replaces whole (temporary file and rename),
    /// whose folder may hold temporary files a crash left; `None` for
    /// backends that write in place.
    pub fn env_file(&self) -> Option<&std::path::Path> {
        match self {
            BootloaderConfig::File(f) => Some(&f.path),
            BootloaderConfig::Grub(_)
            | BootloaderConfig::Uboot(_)
            | BootloaderConfig::SdBoot(_)
            | BootloaderConfig::Efi(_) => None,
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

/// Where efivarfs is mounted on every Linux machine booted through UEFI.
pub const EFIVARFS: &str = "/sys/firmware/efi/efivars";

/// `backend = "systemd-boot"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdBootBackend {
    /// The partition systemd-boot reads `loader/entries` from (the ESP or
    /// XBOOTLDR), mounted.
    pub esp: PathBuf,
    /// The efivarfs mount (a folder in tests).
    pub efivarfs: PathBuf,
    /// The agent's entries are `PREFIX` + group + `.conf` (Type #1), or `.efi` in `EFI/Linux` (Type #2).
    pub entry_prefix: String,
}

/// `backend = "efi"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EfiBackend {
    /// The efivarfs mount (a folder in tests).
    pub efivarfs: PathBuf,
    /// Each group's boot option.
    pub entries: std::collections::BTreeMap<String, BootOption>,
}

/// How the configuration names a slot's `Boot####` option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootOption {
    /// By number (`"0001"` or `"Boot0001"`).
    Number(u16),
    /// By its description (`"updater A"`), looked up at every command:
    /// firmware renumbers options (OVMF reused a deleted option's number
    /// for one of its own, measured in the e2e scenarios).
    Label(String),
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
    /// `backend = "systemd-boot"`.
    #[serde(rename = "systemd-boot")]
    SdBoot(SdBootFragment),
    /// `backend = "efi"`.
    Efi(EfiFragment),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SdBootFragment {
    esp: Option<PathBuf>,
    efivarfs: Option<PathBuf>,
    entry_prefix: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EfiFragment {
    efivarfs: Option<PathBuf>,
    entries: Option<std::collections::BTreeMap<String, String>>,
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
                ": {}; the backends are \"grub\", \"uboot\", \"systemd-boot\", \"efi\" and \"file\"",
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
        Fragment::SdBoot(f) => {
            let esp = f.esp.ok_or_else(|| origin.missing("bootloader.esp"))?;
            let entry_prefix = f.entry_prefix.unwrap_or_else(|| "updater-".into());
            if entry_prefix.contains('/') || entry_prefix.contains('+') {
                return Err(origin.invalid(
                    "bootloader.entry_prefix",
                    format!(" = {entry_prefix:?}: an entry id has no '/' and no '+' (the boot counter's mark)"),
                ));
            }
            BootloaderConfig::SdBoot(SdBootBackend {
                esp,
                efivarfs: f.efivarfs.unwrap_or_else(|| EFIVARFS.into()),
                entry_prefix,
            })
        }
        Fragment::Efi(f) => {
            let raw = f
                .entries
                .ok_or_else(|| origin.missing("bootloader.entries"))?;
            let mut entries = std::collections::BTreeMap::new();
            for (group, n) in raw {
                let hex = n.strip_prefix("Boot").unwrap_or(&n);
                let option = match u16::from_str_radix(hex, 16) {
                    Ok(num) if hex.len() == 4 => BootOption::Number(num),
                    _ if n.trim().is_empty() || n.chars().any(char::is_control) => {
                        return Err(origin.invalid(
                            "bootloader.entries",
                            format!(".{group} = {n:?} is neither a Boot#### number (four hex digits, as efibootmgr shows them: \"0001\") nor a boot option's label (\"updater {group}\")"),
                        ))
                    }
                    _ => BootOption::Label(n.clone()),
                };
                if let Some((other, _)) = entries.iter().find(|(_, m)| **m == option) {
                    return Err(origin.invalid(
                        "bootloader.entries",
                        format!(": slots {other} and {group} name the same boot option {n:?}"),
                    ));
                }
                entries.insert(group, option);
            }
            BootloaderConfig::Efi(EfiBackend {
                efivarfs: f.efivarfs.unwrap_or_else(|| EFIVARFS.into()),
                entries,
            })
        }
    })
}
