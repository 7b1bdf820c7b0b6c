//! The `file` backend: the agent's own small env file, for initramfs slot
//! choosers and the demo.
//!
//! Format: `key=value` lines, `#` comments. Variables:
//! - `ORDER`: groups separated by spaces, the primary first;
//! - `<GROUP>_OK`: `1` bootable, `0` not;
//! - `TRY`: a group to boot once; the chooser clears it before booting it.
//!
//! Every change rewrites the file atomically (temp, fsync, rename, fsync dir).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;

use super::Bootloader;
use crate::error::BootError;
use crate::util::fs::write_atomic;

/// The file env.
#[derive(Debug)]
pub struct FileEnv {
    path: PathBuf,
    groups: Vec<String>,
    vars: BTreeMap<String, String>,
}

fn boot_err(msg: String) -> anyhow::Error {
    BootError(msg).into()
}

impl FileEnv {
    /// Open (or create, with every group bootable in configuration order)
    /// the env file.
    pub fn open(path: &Path, groups: &[String]) -> Result<FileEnv> {
        let mut env = FileEnv {
            path: path.to_path_buf(),
            groups: groups.to_vec(),
            vars: BTreeMap::new(),
        };
        match std::fs::read_to_string(path) {
            Ok(text) => env.parse(&text)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::info!(path = %path.display(), "creating the boot env file");
                env.vars.insert("ORDER".into(), groups.join(" "));
                for g in groups {
                    env.vars.insert(format!("{g}_OK"), "1".into());
                }
                env.save()?;
            }
            Err(e) => {
                return Err(boot_err(format!(
                    "reading boot env {}: {e}",
                    path.display()
                )))
            }
        }
        Ok(env)
    }

    fn parse(&mut self, text: &str) -> Result<()> {
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (k, v) = line.split_once('=').ok_or_else(|| {
                boot_err(format!(
                    "boot env {} line {}: {line:?} is not key=value",
                    self.path.display(),
                    n + 1
                ))
            })?;
            self.vars.insert(k.to_string(), v.to_string());
        }
        let order = self
            .vars
            .get("ORDER")
            .ok_or_else(|| boot_err(format!("boot env {} has no ORDER", self.path.display())))?;
        for g in order.split_whitespace() {
            if !self.groups.iter().any(|x| x == g) {
                return Err(boot_err(format!(
                    "boot env {}: ORDER names slot {g:?}, which the configuration does not have",
                    self.path.display()
                )));
            }
        }
        Ok(())
    }

    fn save(&self) -> Result<()> {
        let mut text = String::from("# updater boot env (file backend)\n");
        for (k, v) in &self.vars {
            text.push_str(&format!("{k}={v}\n"));
        }
        write_atomic(&self.path, text.as_bytes(), 0o644)
            .map_err(|e| boot_err(format!("writing boot env {}: {e:#}", self.path.display())))
    }

    fn check_group(&self, group: &str) -> Result<()> {
        if self.groups.iter().any(|g| g == group) {
            Ok(())
        } else {
            Err(boot_err(format!("unknown slot group {group:?}")))
        }
    }

    /// A variable, for tests and status.
    pub fn var(&self, key: &str) -> Option<&str> {
        self.vars.get(key).map(String::as_str)
    }
}

impl Bootloader for FileEnv {
    fn name(&self) -> &'static str {
        "file"
    }

    fn primary(&self) -> Result<Option<String>> {
        Ok(self
            .vars
            .get("ORDER")
            .and_then(|o| o.split_whitespace().next())
            .map(str::to_string))
    }

    fn set_primary(&mut self, group: &str) -> Result<()> {
        self.check_group(group)?;
        let mut order = vec![group.to_string()];
        order.extend(self.groups.iter().filter(|g| *g != group).cloned());
        self.vars.insert("ORDER".into(), order.join(" "));
        self.save()
    }

    fn bootable(&self, group: &str) -> Result<bool> {
        self.check_group(group)?;
        Ok(self.vars.get(&format!("{group}_OK")).map(String::as_str) == Some("1"))
    }

    fn set_bootable(&mut self, group: &str, bootable: bool) -> Result<()> {
        self.check_group(group)?;
        self.vars.insert(
            format!("{group}_OK"),
            if bootable { "1" } else { "0" }.into(),
        );
        if !bootable && self.vars.get("TRY").map(String::as_str) == Some(group) {
            self.vars.insert("TRY".into(), String::new());
        }
        self.save()
    }

    fn arm_trial(&mut self, group: &str) -> Result<()> {
        self.check_group(group)?;
        self.vars.insert("TRY".into(), group.to_string());
        self.save()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_then_changed_durably() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("env");
        let groups = vec!["A".to_string(), "B".to_string()];
        let mut env = FileEnv::open(&p, &groups).unwrap();
        assert_eq!(env.primary().unwrap().as_deref(), Some("A"));
        env.set_bootable("B", false).unwrap();
        let env2 = FileEnv::open(&p, &groups).unwrap();
        assert!(!env2.bootable("B").unwrap());
        assert!(env2.bootable("A").unwrap());
        std::fs::write(&p, "ORDER=A C\n").unwrap();
        let e = FileEnv::open(&p, &groups).unwrap_err().to_string();
        assert!(e.contains("\"C\""), "{e}");
    }
}
