//! Where bootloader variables live: the agent's own file, a GRUB environment
//! block, or a U-Boot environment (single or redundant).
//!
//! A store is read once when opened; `set`/`unset` change the copy in
//! memory and `commit` writes it back durably.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::bootenv::grub::GrubEnv;
use crate::bootenv::uboot::{next_flag, UbootEnv};
use crate::error::BootError;
use crate::util::fs::write_atomic;

/// Variables that persist across reboots.
pub trait EnvStore {
    /// Where the variables are, for messages.
    fn describe(&self) -> String;
    /// A variable.
    fn get(&self, key: &str) -> Option<String>;
    /// Set a variable (in memory until `commit`).
    fn set(&mut self, key: &str, value: &str) -> Result<()>;
    /// Remove a variable (in memory until `commit`).
    fn unset(&mut self, key: &str);
    /// Write the variables back durably.
    fn commit(&mut self) -> Result<()>;
}

fn boot_err(msg: String) -> anyhow::Error {
    BootError(msg).into()
}

/// The agent's own env file: `key=value` lines, replaced atomically.
pub struct FileStore {
    path: PathBuf,
    vars: BTreeMap<String, String>,
}

impl FileStore {
    /// Open the file. A missing file reads as every group bootable in
    /// configuration order; it is written at the first change (so that
    /// `status` never writes).
    pub fn open(path: &Path, groups: &[String]) -> Result<FileStore> {
        let mut s = FileStore {
            path: path.to_path_buf(),
            vars: BTreeMap::new(),
        };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                for (n, line) in text.lines().enumerate() {
                    let line = line.trim();
                    if line.is_empty() || line.starts_with('#') {
                        continue;
                    }
                    let (k, v) = line.split_once('=').ok_or_else(|| {
                        boot_err(format!(
                            "boot env {} line {}: {line:?} is not key=value",
                            path.display(),
                            n + 1
                        ))
                    })?;
                    s.vars.insert(k.to_string(), v.to_string());
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::info!(path = %path.display(), "no boot env file yet; it is created at the first change");
                s.vars.insert("ORDER".into(), groups.join(" "));
                for g in groups {
                    s.vars.insert(format!("{g}_OK"), "1".into());
                }
                s.vars.insert("TRY".into(), String::new());
            }
            Err(e) => {
                return Err(boot_err(format!(
                    "reading boot env {}: {e}",
                    path.display()
                )))
            }
        }
        Ok(s)
    }
}

impl EnvStore for FileStore {
    fn describe(&self) -> String {
        format!("boot env {}", self.path.display())
    }
    fn get(&self, key: &str) -> Option<String> {
        self.vars.get(key).cloned()
    }
    fn set(&mut self, key: &str, value: &str) -> Result<()> {
        if key.contains(['=', '\n']) || value.contains('\n') {
            return Err(boot_err(format!(
                "cannot store {key:?}={value:?} in a line-based env"
            )));
        }
        self.vars.insert(key.to_string(), value.to_string());
        Ok(())
    }
    fn unset(&mut self, key: &str) {
        self.vars.remove(key);
    }
    fn commit(&mut self) -> Result<()> {
        let mut text = String::from("# updater boot env (file backend)\n");
        for (k, v) in &self.vars {
            text.push_str(&format!("{k}={v}\n"));
        }
        write_atomic(&self.path, text.as_bytes(), 0o644)
            .map_err(|e| boot_err(format!("writing boot env {}: {e:#}", self.path.display())))
    }
}

/// A GRUB environment block, rewritten in place at its own size (GRUB's
/// `save_env` writes the file's existing sectors, and the block never grows).
pub struct GrubStore {
    path: PathBuf,
    env: GrubEnv,
}

impl GrubStore {
    /// Read and parse the block.
    pub fn open(path: &Path) -> Result<GrubStore> {
        let bytes = std::fs::read(path)
            .map_err(|e| boot_err(format!("reading GRUB env {}: {e}", path.display())))?;
        let env = GrubEnv::parse(&bytes)
            .map_err(|e| boot_err(format!("GRUB env {}: {e}; recreate it with grub-editenv {} create and the variables in packaging/grub/README.md", path.display(), path.display())))?;
        Ok(GrubStore {
            path: path.to_path_buf(),
            env,
        })
    }
}

impl EnvStore for GrubStore {
    fn describe(&self) -> String {
        format!("GRUB env {}", self.path.display())
    }
    fn get(&self, key: &str) -> Option<String> {
        self.env.get(key).map(str::to_string)
    }
    fn set(&mut self, key: &str, value: &str) -> Result<()> {
        self.env
            .set(key, value)
            .map_err(|e| boot_err(format!("GRUB env {}: {e}", self.path.display())))
    }
    fn unset(&mut self, key: &str) {
        self.env.unset(key);
    }
    fn commit(&mut self) -> Result<()> {
        let bytes = self
            .env
            .to_bytes(self.env.block_size())
            .map_err(|e| boot_err(format!("GRUB env {}: {e}", self.path.display())))?;
        write_in_place(&self.path, 0, &bytes)
    }
}

fn write_in_place(path: &Path, offset: u64, bytes: &[u8]) -> Result<()> {
    let f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| boot_err(format!("opening {} for writing: {e}", path.display())))?;
    f.write_all_at(bytes, offset)
        .and_then(|_| f.sync_all())
        .map_err(|e| {
            boot_err(format!(
                "writing {} at offset {offset}: {e}",
                path.display()
            ))
        })
}

fn read_at(path: &Path, offset: u64, size: usize) -> Result<Vec<u8>> {
    let f = File::open(path)
        .map_err(|e| boot_err(format!("opening U-Boot env {}: {e}", path.display())))?;
    let mut buf = vec![0u8; size];
    f.read_exact_at(&mut buf, offset).map_err(|e| {
        boot_err(format!(
            "reading {size} bytes of U-Boot env at offset {offset} of {}: {e} (truncated?)",
            path.display()
        ))
    })?;
    Ok(buf)
}

/// A U-Boot environment: one copy, or a redundant pair in which the agent
/// always writes the inactive copy with the next flag, so that a torn write
/// leaves the other copy valid.
pub struct UbootStore {
    copies: Vec<(PathBuf, u64)>,
    size: usize,
    env: UbootEnv,
    active: usize,
    flag: u8,
}

impl UbootStore {
    /// Read one copy or two.
    pub fn open(copies: &[(PathBuf, u64)], size: usize) -> Result<UbootStore> {
        let what = || {
            copies
                .iter()
                .map(|(p, o)| format!("{}@{o:#x}", p.display()))
                .collect::<Vec<_>>()
                .join(" + ")
        };
        let (env, active, flag) = match copies {
            [(p, o)] => {
                let env = UbootEnv::parse_single(&read_at(p, *o, size)?)
                    .map_err(|e| boot_err(format!("U-Boot env {}: {e}", what())))?;
                (env, 0, 0)
            }
            [(p0, o0), (p1, o1)] => {
                let (a, b) = (read_at(p0, *o0, size)?, read_at(p1, *o1, size)?);
                let (env, active, flag) = UbootEnv::parse_redundant(&a, &b)
                    .map_err(|e| boot_err(format!("U-Boot env {}: {e}", what())))?;
                (env, active, flag)
            }
            _ => return Err(boot_err("a U-Boot env has one or two copies".into())),
        };
        Ok(UbootStore {
            copies: copies.to_vec(),
            size,
            env,
            active,
            flag,
        })
    }
}

impl EnvStore for UbootStore {
    fn describe(&self) -> String {
        format!("U-Boot env {}", self.copies[0].0.display())
    }
    fn get(&self, key: &str) -> Option<String> {
        self.env.get(key).map(str::to_string)
    }
    fn set(&mut self, key: &str, value: &str) -> Result<()> {
        if value.is_empty() {
            self.env.unset(key);
            return Ok(());
        }
        self.env
            .set(key, value)
            .map_err(|e| boot_err(format!("{}: {e}", self.describe())))
    }
    fn unset(&mut self, key: &str) {
        self.env.unset(key);
    }
    fn commit(&mut self) -> Result<()> {
        if self.copies.len() == 1 {
            let bytes = self
                .env
                .to_single(self.size)
                .map_err(|e| boot_err(format!("{}: {e}", self.describe())))?;
            let (p, o) = &self.copies[0];
            return write_in_place(p, *o, &bytes);
        }
        let flag = next_flag(self.flag);
        let bytes = self
            .env
            .to_redundant(self.size, flag)
            .map_err(|e| boot_err(format!("{}: {e}", self.describe())))?;
        let target = 1 - self.active;
        let (p, o) = &self.copies[target];
        write_in_place(p, *o, &bytes)?;
        // Only now is the new copy the active one; until the write above
        // finished, the old copy was intact and still won.
        self.active = target;
        self.flag = flag;
        Ok(())
    }
}
