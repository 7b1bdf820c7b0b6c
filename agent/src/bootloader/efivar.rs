//! EFI variables through efivarfs, written natively (no efibootmgr, no
//! libefivar): the `systemd-boot` and `efi` backends' store.
//!
//! efivarfs shows each variable as a file `Name-GUID` whose content is the
//! 32-bit attributes (little-endian) followed by the data. What the kernel
//! asks of a writer, and what this module does:
//!
//! - the attributes and the data in **one** `write()`: a shorter write, or
//!   one split in two, is refused (EINVAL) or sets a truncated value;
//! - no `O_TRUNC` (efivarfs does not truncate; a write replaces the value);
//! - most variables carry the immutable flag, so that `rm -rf` cannot brick
//!   a machine: it is cleared with `FS_IOC_SETFLAGS` before a write or an
//!   unlink and set again after (CAP_LINUX_IMMUTABLE, which root has);
//! - errors say what they mean for a device: ENOSPC is a full variable
//!   store, EROFS an efivarfs mounted read-only, EINVAL a value the kernel
//!   or the firmware refused.
//!
//! The root is configurable (`bootloader.efivarfs`) so that tests use a
//! folder. A folder is not efivarfs (checked with statfs): there, a write
//! also cuts the file to what was written, which is what replacing a
//! variable means, and is synced, which the firmware does itself on
//! efivarfs. Nothing else differs between the two.

use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Result;

use super::vars::boot_err;

/// systemd's Boot Loader Interface vendor GUID (`LoaderEntryDefault`, ...).
pub const LOADER_GUID: &str = "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f";
/// The UEFI global variable GUID (`BootOrder`, `BootNext`, `Boot####`).
pub const GLOBAL_GUID: &str = "8be4df61-93ca-11d2-aa0d-00e098032b8c";
/// NON_VOLATILE | BOOTSERVICE_ACCESS | RUNTIME_ACCESS: what the boot
/// manager and systemd-boot write, and what the agent writes.
pub const NV_BS_RT: u32 = 0x7;

/// `statfs` magic of efivarfs.
const EFIVARFS_MAGIC: i64 = 0xde5e_81e4;
/// The inode flag efivarfs sets on variables that must not be removed by
/// accident.
const FS_IMMUTABLE_FL: libc::c_int = 0x10;

/// One variable: its attributes and its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Var {
    /// The attribute bits (`NV_BS_RT` for the variables the agent writes).
    pub attrs: u32,
    /// The value.
    pub data: Vec<u8>,
}

/// The EFI variables under an efivarfs mount (or a folder in tests).
#[derive(Debug, Clone)]
pub struct EfiVars {
    root: PathBuf,
    efivarfs: bool,
}

impl EfiVars {
    /// Use the variables under `root`; it must exist (a machine booted
    /// without UEFI, or efivarfs not mounted, is said so here).
    pub fn open(root: &Path) -> Result<EfiVars> {
        let md = std::fs::metadata(root).map_err(|e| {
            boot_err(format!(
                "the EFI variables at {} cannot be read ({e}): is this machine booted through UEFI, and is efivarfs mounted there (mount -t efivarfs efivarfs {})? bootloader.efivarfs names the place",
                root.display(),
                root.display()
            ))
        })?;
        if !md.is_dir() {
            return Err(boot_err(format!(
                "bootloader.efivarfs = {} is not a folder",
                root.display()
            )));
        }
        Ok(EfiVars {
            root: root.to_path_buf(),
            efivarfs: is_efivarfs(root),
        })
    }

    /// The folder, for messages.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, name: &str, guid: &str) -> PathBuf {
        self.root.join(format!("{name}-{guid}"))
    }

    /// Read a variable; `None` when it does not exist.
    pub fn get(&self, name: &str, guid: &str) -> Result<Option<Var>> {
        let path = self.path(name, guid);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(var_err("reading", &path, &self.root, &e)),
        };
        // A file efivarfs created for a write that then failed holds
        // nothing: no variable of that name exists in the firmware.
        if bytes.is_empty() {
            return Ok(None);
        }
        if bytes.len() < 4 {
            return Err(boot_err(format!(
                "EFI variable {} holds {} bytes, less than its 4 bytes of attributes",
                path.display(),
                bytes.len()
            )));
        }
        let attrs = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        Ok(Some(Var {
            attrs,
            data: bytes[4..].to_vec(),
        }))
    }

    /// Set a variable: attributes and data in one write, the immutable flag
    /// cleared for the write and set again after.
    pub fn set(&mut self, name: &str, guid: &str, attrs: u32, data: &[u8]) -> Result<()> {
        let path = self.path(name, guid);
        crate::failpoint!("durable-write", "write {}", path.display());
        let mut buf = Vec::with_capacity(4 + data.len());
        buf.extend_from_slice(&attrs.to_le_bytes());
        buf.extend_from_slice(data);
        let existed = path.exists();
        let immutable = Immutable::lift(&path, &self.root)?;
        let result = (|| -> std::io::Result<()> {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o644)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&path)?;
            let n = f.write(&buf)?;
            if n != buf.len() {
                return Err(std::io::Error::other(format!(
                    "the kernel took {n} of {} bytes in one write",
                    buf.len()
                )));
            }
            if !self.efivarfs {
                f.set_len(buf.len() as u64)?;
                f.sync_all()?;
            }
            Ok(())
        })();
        let restored = immutable.restore();
        if result.is_err() && !existed {
            // Leave no empty file for a variable that was never set.
            let _ = std::fs::remove_file(&path);
        }
        result.map_err(|e| var_err("writing", &path, &self.root, &e))?;
        restored
    }

    /// Delete a variable (nothing to do when it does not exist).
    pub fn delete(&mut self, name: &str, guid: &str) -> Result<()> {
        let path = self.path(name, guid);
        if !path.exists() {
            return Ok(());
        }
        crate::failpoint!("durable-write", "remove {}", path.display());
        let immutable = Immutable::lift(&path, &self.root)?;
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => {
                let _ = immutable.restore();
                return Err(var_err("deleting", &path, &self.root, &e));
            }
        }
        if !self.efivarfs {
            crate::util::fs::sync_dir(&self.root)?;
        }
        Ok(())
    }

    /// A UTF-16 string variable (systemd's), without its terminating NUL;
    /// `None` when it does not exist.
    pub fn get_string(&self, name: &str, guid: &str) -> Result<Option<String>> {
        match self.get(name, guid)? {
            None => Ok(None),
            Some(v) => from_utf16z(&v.data).map(Some).ok_or_else(|| {
                boot_err(format!(
                    "EFI variable {} is not a UTF-16 string",
                    self.path(name, guid).display()
                ))
            }),
        }
    }

    /// Set a UTF-16 string variable, with the terminating NUL that
    /// systemd-boot needs to match it.
    pub fn set_string(&mut self, name: &str, guid: &str, value: &str) -> Result<()> {
        self.set(name, guid, NV_BS_RT, &utf16z(value))
    }
}

/// `value` as UTF-16LE with a terminating NUL.
pub fn utf16z(value: &str) -> Vec<u8> {
    value
        .encode_utf16()
        .chain(std::iter::once(0))
        .flat_map(u16::to_le_bytes)
        .collect()
}

/// UTF-16LE bytes as a string, up to the first NUL (or the end).
pub fn from_utf16z(data: &[u8]) -> Option<String> {
    if !data.len().is_multiple_of(2) {
        return None;
    }
    let units: Vec<u16> = data
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|&u| u != 0)
        .collect();
    String::from_utf16(&units).ok()
}

fn is_efivarfs(root: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(root.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: statfs writes into the zeroed struct it is given; the path is
    // a NUL-terminated string that outlives the call.
    unsafe {
        let mut s: libc::statfs = std::mem::zeroed();
        libc::statfs(c.as_ptr(), &mut s) == 0 && s.f_type as i64 == EFIVARFS_MAGIC
    }
}

/// A variable's immutable flag, cleared for a write and set again after.
struct Immutable {
    path: PathBuf,
    flags: Option<libc::c_int>,
}

impl Immutable {
    /// Clear the flag of `path` if it is set (a file that does not exist
    /// yet, or a filesystem without inode flags, has none to clear).
    fn lift(path: &Path, root: &Path) -> Result<Immutable> {
        let none = Immutable {
            path: path.to_path_buf(),
            flags: None,
        };
        let Ok(f) = std::fs::File::open(path) else {
            return Ok(none);
        };
        let Some(flags) = get_flags(&f) else {
            return Ok(none);
        };
        if flags & FS_IMMUTABLE_FL == 0 {
            return Ok(none);
        }
        set_flags(&f, flags & !FS_IMMUTABLE_FL)
            .map_err(|e| var_err("clearing the immutable flag of", path, root, &e))?;
        Ok(Immutable {
            path: path.to_path_buf(),
            flags: Some(flags),
        })
    }

    /// Set the flag again, when it was cleared and the variable is still
    /// there.
    fn restore(self) -> Result<()> {
        let Some(flags) = self.flags else {
            return Ok(());
        };
        let Ok(f) = std::fs::File::open(&self.path) else {
            return Ok(());
        };
        set_flags(&f, flags).map_err(|e| {
            boot_err(format!(
                "setting the immutable flag of {} again: {e}",
                self.path.display()
            ))
        })
    }
}

fn get_flags(f: &std::fs::File) -> Option<libc::c_int> {
    let mut flags: libc::c_int = 0;
    // SAFETY: FS_IOC_GETFLAGS writes one int into `flags`, which lives for
    // the call; the descriptor is open.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), libc::FS_IOC_GETFLAGS as _, &mut flags) };
    (r == 0).then_some(flags)
}

fn set_flags(f: &std::fs::File, flags: libc::c_int) -> std::io::Result<()> {
    // SAFETY: FS_IOC_SETFLAGS reads one int from `flags`, which lives for
    // the call; the descriptor is open.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), libc::FS_IOC_SETFLAGS as _, &flags) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// An efivarfs error, said as what it means for the device.
fn var_err(doing: &str, path: &Path, root: &Path, e: &std::io::Error) -> anyhow::Error {
    let what = match e.raw_os_error() {
        Some(libc::ENOSPC) => "the firmware's variable store is full (ENOSPC); the variable was not changed. Free space by deleting variables no one needs (stale Boot#### entries: efibootmgr -b XXXX -B), then run the command again".to_string(),
        Some(libc::EROFS) => format!(
            "{} is mounted read-only (EROFS); the variable was not changed. Remount it read-write (mount -o remount,rw {}) and run the command again",
            root.display(),
            root.display()
        ),
        Some(libc::EINVAL) => format!(
            "the kernel or the firmware refused the value (EINVAL: {e}); the variable was not changed"
        ),
        Some(libc::EACCES | libc::EPERM) => format!(
            "permission denied ({e}): writing EFI variables needs root (CAP_SYS_ADMIN and CAP_LINUX_IMMUTABLE)"
        ),
        Some(libc::EIO) => format!("the firmware failed (EIO: {e}); run the command again"),
        _ => e.to_string(),
    };
    boot_err(format!("{doing} EFI variable {}: {what}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_utf16le_with_a_terminating_nul() {
        assert_eq!(utf16z("b.conf"), b"b\0.\0c\0o\0n\0f\0\0\0");
        assert_eq!(
            from_utf16z(&utf16z("updater-B.conf")).unwrap(),
            "updater-B.conf"
        );
        assert_eq!(from_utf16z(b"a\0b\0").unwrap(), "ab", "no NUL: to the end");
        assert_eq!(from_utf16z(b"a\0b"), None, "odd length");
    }

    #[test]
    fn a_write_replaces_the_value_and_keeps_the_attributes_first() {
        let d = tempfile::tempdir().unwrap();
        let mut v = EfiVars::open(d.path()).unwrap();
        v.set_string("LoaderEntryDefault", LOADER_GUID, "updater-A.conf")
            .unwrap();
        v.set_string("LoaderEntryDefault", LOADER_GUID, "x")
            .unwrap();
        let raw =
            std::fs::read(d.path().join(format!("LoaderEntryDefault-{LOADER_GUID}"))).unwrap();
        assert_eq!(raw, [&[7u8, 0, 0, 0][..], &utf16z("x")].concat());
        assert_eq!(
            v.get_string("LoaderEntryDefault", LOADER_GUID)
                .unwrap()
                .as_deref(),
            Some("x")
        );
        v.delete("LoaderEntryDefault", LOADER_GUID).unwrap();
        assert_eq!(v.get("LoaderEntryDefault", LOADER_GUID).unwrap(), None);
        v.delete("LoaderEntryDefault", LOADER_GUID).unwrap();
    }

    #[test]
    fn a_variable_shorter_than_its_attributes_is_refused() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(format!("BootNext-{GLOBAL_GUID}")), []).unwrap();
        let v = EfiVars::open(d.path()).unwrap();
        assert_eq!(
            v.get("BootNext", GLOBAL_GUID).unwrap(),
            None,
            "empty: absent"
        );
        std::fs::write(d.path().join(format!("BootNext-{GLOBAL_GUID}")), [7, 0]).unwrap();
        let v = EfiVars::open(d.path()).unwrap();
        let e = v.get("BootNext", GLOBAL_GUID).unwrap_err().to_string();
        assert!(e.contains("less than its 4 bytes"), "{e}");
    }

    #[test]
    fn the_immutable_flag_is_lifted_for_a_write_and_set_again() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join(format!("LoaderEntryOneShot-{LOADER_GUID}"));
        std::fs::write(&path, [&[7u8, 0, 0, 0][..], &utf16z("a")].concat()).unwrap();
        let f = std::fs::File::open(&path).unwrap();
        let Some(flags) = get_flags(&f) else {
            eprintln!("SKIPPED: this filesystem has no inode flags");
            return;
        };
        if set_flags(&f, flags | FS_IMMUTABLE_FL).is_err() {
            eprintln!("SKIPPED: cannot set the immutable flag (CAP_LINUX_IMMUTABLE)");
            return;
        }
        assert!(std::fs::OpenOptions::new().write(true).open(&path).is_err());
        let mut v = EfiVars::open(d.path()).unwrap();
        v.set_string("LoaderEntryOneShot", LOADER_GUID, "updater-B.conf")
            .unwrap();
        assert_eq!(
            v.get_string("LoaderEntryOneShot", LOADER_GUID)
                .unwrap()
                .as_deref(),
            Some("updater-B.conf")
        );
        let f = std::fs::File::open(&path).unwrap();
        assert_ne!(
            get_flags(&f).unwrap() & FS_IMMUTABLE_FL,
            0,
            "flag not restored"
        );
        v.delete("LoaderEntryOneShot", LOADER_GUID).unwrap();
        assert!(!path.exists());
    }
}
