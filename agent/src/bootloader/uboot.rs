//! The `uboot` backend: a U-Boot environment (CRC32, flag byte when
//! redundant), byte-compatible with fw_printenv/fw_setenv. Variables:
//! `BOOT_ORDER="A B"`, `BOOT_A_LEFT`/`BOOT_B_LEFT` > 0 for bootable (a flag,
//! not a counter: the agent owns trials), and the one-shot `BOOT_TRY=B`,
//! which packaging/uboot/boot.cmd clears and saves before it boots the slot.

use std::path::PathBuf;

use anyhow::Result;

use super::vars::{boot_err, read_at, write_in_place, EnvStore, VarBootloader, VarScheme};
use super::Bootloader;
use crate::bootenv::uboot::{next_flag, UbootEnv};
use crate::config::UbootBackend;

/// Open the U-Boot backend.
pub fn open(cfg: &UbootBackend, groups: &[String]) -> Result<Box<dyn Bootloader>> {
    Ok(Box::new(VarBootloader::new(
        Box::new(UbootStore::open(&cfg.copies, cfg.size)?),
        UbootScheme,
        groups,
    )?))
}

/// U-Boot's names.
pub struct UbootScheme;

impl VarScheme for UbootScheme {
    fn name(&self) -> &'static str {
        "uboot"
    }
    fn order(&self) -> &'static str {
        "BOOT_ORDER"
    }
    fn ok(&self, group: &str) -> String {
        format!("BOOT_{group}_LEFT")
    }
    fn arm(&self, store: &mut dyn EnvStore, group: &str) -> Result<()> {
        store.set("BOOT_TRY", group)
    }
    fn disarm(&self, store: &mut dyn EnvStore, _groups: &[String]) -> Result<()> {
        store.unset("BOOT_TRY");
        Ok(())
    }
    fn armed(&self, store: &dyn EnvStore, _groups: &[String]) -> Option<String> {
        store.get("BOOT_TRY").filter(|v| !v.is_empty())
    }
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
