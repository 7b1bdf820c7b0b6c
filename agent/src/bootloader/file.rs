//! The `file` backend: the agent's own env file, for initramfs slot
//! choosers and tests.
//!
//! Format: UTF-8 text, one `KEY=VALUE` per line (no spaces around `=`, the
//! value runs to the end of the line), `#` starts a comment line, blank
//! lines are ignored; the agent rewrites the whole file atomically
//! (temporary file, fsync, rename) with a comment line and the keys sorted.
//! Variables: `ORDER=A B` (the boot order, first is primary), `A_OK`/`B_OK`
//! = 1 or 0 (bootable), `TRY=B` (the one-shot trial, which the chooser
//! clears and saves before it boots the slot; empty when none). The file
//! must exist: the agent never invents one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;

use super::vars::{boot_err, EnvStore, VarBootloader, VarScheme};
use super::Bootloader;
use crate::util::fs::write_atomic;

/// Open the file backend.
pub fn open(path: &Path, groups: &[String]) -> Result<Box<dyn Bootloader>> {
    Ok(Box::new(VarBootloader::new(
        Box::new(FileStore::open(path, groups)?),
        FileScheme,
        groups,
    )?))
}

/// The file backend's names.
pub struct FileScheme;

impl VarScheme for FileScheme {
    fn name(&self) -> &'static str {
        "file"
    }
    fn order(&self) -> &'static str {
        "ORDER"
    }
    fn ok(&self, group: &str) -> String {
        format!("{group}_OK")
    }
    fn arm(&self, store: &mut dyn EnvStore, group: &str) -> Result<()> {
        store.set("TRY", group)
    }
    fn disarm(&self, store: &mut dyn EnvStore, _groups: &[String]) -> Result<()> {
        store.set("TRY", "")
    }
    fn armed(&self, store: &dyn EnvStore, _groups: &[String]) -> Option<String> {
        store.get("TRY").filter(|v| !v.is_empty())
    }
}

/// The agent's own env file: `key=value` lines, replaced atomically.
pub struct FileStore {
    path: PathBuf,
    vars: BTreeMap<String, String>,
}

impl FileStore {
    /// Open the file. A missing file is an error: inventing one would have
    /// to guess which slots can boot (round 1 guessed "all of them", which
    /// could make an empty slot bootable).
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
                let first = groups.first().map(String::as_str).unwrap_or("A");
                let mut example = format!("ORDER={}\\n", groups.join(" "));
                for g in groups {
                    example.push_str(&format!("{g}_OK={}\\n", u8::from(g == first)));
                }
                example.push_str("TRY=\\n");
                return Err(boot_err(format!(
                    "boot env {} does not exist; the file backend never invents one (it would have to guess which slots can boot): write the slots' real state, e.g. printf '{example}' > {} (format in docs/boot-control.md)",
                    path.display(),
                    path.display()
                )));
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
