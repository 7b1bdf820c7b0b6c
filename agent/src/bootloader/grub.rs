//! The `grub` backend: the 1024-byte GRUB environment block (grubenv),
//! rewritten in place, byte-compatible with grub-editenv. Variables:
//! `ORDER="A B"`, `A_OK`/`B_OK` = 1 or 0, and the one-shot `B_TRY=1`, which
//! packaging/grub/grub.cfg clears and saves before it boots the slot.

use std::path::{Path, PathBuf};

use anyhow::Result;

use super::vars::{boot_err, write_in_place, EnvStore, VarBootloader, VarScheme};
use super::Bootloader;
use crate::bootenv::grub::GrubEnv;

/// Open the GRUB backend.
pub fn open(path: &Path, groups: &[String]) -> Result<Box<dyn Bootloader>> {
    Ok(Box::new(VarBootloader::new(
        Box::new(GrubStore::open(path)?),
        GrubScheme,
        groups,
    )?))
}

/// GRUB's names.
pub struct GrubScheme;

impl VarScheme for GrubScheme {
    fn name(&self) -> &'static str {
        "grub"
    }
    fn order(&self) -> &'static str {
        "ORDER"
    }
    fn ok(&self, group: &str) -> String {
        format!("{group}_OK")
    }
    fn arm(&self, store: &mut dyn EnvStore, group: &str) -> Result<()> {
        store.set(&format!("{group}_TRY"), "1")
    }
    fn disarm(&self, store: &mut dyn EnvStore, groups: &[String]) -> Result<()> {
        for g in groups {
            if store.get(&format!("{g}_TRY")).is_some() {
                store.set(&format!("{g}_TRY"), "0")?;
            }
        }
        Ok(())
    }
    fn armed(&self, store: &dyn EnvStore, groups: &[String]) -> Option<String> {
        groups
            .iter()
            .find(|g| store.get(&format!("{g}_TRY")).as_deref() == Some("1"))
            .cloned()
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
