//! Bootloaders driven by variables in an environment: the logic the GRUB,
//! U-Boot and file backends share. Each backend file provides where the
//! variables live (an [`EnvStore`]) and what they are called (a
//! [`VarScheme`]); [`VarBootloader`] turns the two into RAUC's four
//! operations plus the one-shot trial.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

use anyhow::Result;

use super::Bootloader;
use crate::error::BootError;

/// Variables that persist across reboots. A store is read once when
/// opened; `set`/`unset` change the copy in memory and `commit` writes it
/// back durably.
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

/// The variable names of a backend, and how it arms a one-shot trial.
pub trait VarScheme {
    /// The backend's name.
    fn name(&self) -> &'static str;
    /// The variable holding the boot order (first is primary).
    fn order(&self) -> &'static str;
    /// The variable holding a group's bootable flag.
    fn ok(&self, group: &str) -> String;
    /// Arm the one-shot trial of `group` (after any other was disarmed).
    fn arm(&self, store: &mut dyn EnvStore, group: &str) -> Result<()>;
    /// Disarm any one-shot trial.
    fn disarm(&self, store: &mut dyn EnvStore, groups: &[String]) -> Result<()>;
    /// The group whose one-shot trial is armed.
    fn armed(&self, store: &dyn EnvStore, groups: &[String]) -> Option<String>;
}

/// Build a boot-control error.
pub(super) fn boot_err(msg: String) -> anyhow::Error {
    BootError(msg).into()
}

/// A bootloader driven by variables in an env store.
pub struct VarBootloader<S: VarScheme> {
    store: Box<dyn EnvStore>,
    scheme: S,
    groups: Vec<String>,
}

impl<S: VarScheme> VarBootloader<S> {
    /// Wrap a store; checks that the env names only configured groups and
    /// has every variable the scheme needs.
    pub fn new(store: Box<dyn EnvStore>, scheme: S, groups: &[String]) -> Result<Self> {
        let b = VarBootloader {
            store,
            scheme,
            groups: groups.to_vec(),
        };
        b.validate()?;
        Ok(b)
    }

    fn validate(&self) -> Result<()> {
        let where_ = self.store.describe();
        let order = self.store.get(self.scheme.order()).ok_or_else(|| {
            boot_err(format!(
                "{where_} has no {} variable; initialise the boot env (see packaging/)",
                self.scheme.order()
            ))
        })?;
        for g in order.split_whitespace() {
            if !self.groups.iter().any(|x| x == g) {
                return Err(boot_err(format!(
                    "{where_}: {}={order:?} names slot {g:?}, which the configuration does not have ({})",
                    self.scheme.order(),
                    self.groups.join(", ")
                )));
            }
        }
        for g in &self.groups {
            let var = self.scheme.ok(g);
            match self.store.get(&var) {
                None => return Err(boot_err(format!("{where_} has no {var} variable"))),
                Some(v) if parse_ok(&v).is_none() => {
                    return Err(boot_err(format!("{where_}: {var}={v:?} is not a number")))
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn check_group(&self, group: &str) -> Result<()> {
        check_group(group, &self.groups)
    }
}

/// `group` must be one of the configured `groups`.
pub(super) fn check_group(group: &str, groups: &[String]) -> Result<()> {
    if groups.iter().any(|g| g == group) {
        Ok(())
    } else {
        Err(boot_err(format!(
            "unknown slot group {group:?} (configured: {})",
            groups.join(", ")
        )))
    }
}

fn parse_ok(v: &str) -> Option<bool> {
    v.trim().parse::<u32>().ok().map(|n| n > 0)
}

impl<S: VarScheme> Bootloader for VarBootloader<S> {
    fn name(&self) -> &'static str {
        self.scheme.name()
    }

    fn primary(&self) -> Result<Option<String>> {
        Ok(self
            .store
            .get(self.scheme.order())
            .and_then(|o| o.split_whitespace().next().map(str::to_string)))
    }

    fn set_primary(&mut self, group: &str) -> Result<()> {
        self.check_group(group)?;
        if !self.bootable(group)? {
            return Err(boot_err(format!(
                "refusing to make slot {group} the default: it is not marked bootable"
            )));
        }
        let mut order = vec![group.to_string()];
        order.extend(self.groups.iter().filter(|g| *g != group).cloned());
        self.store.set(self.scheme.order(), &order.join(" "))?;
        self.store.commit()
    }

    fn bootable(&self, group: &str) -> Result<bool> {
        self.check_group(group)?;
        let var = self.scheme.ok(group);
        let v = self
            .store
            .get(&var)
            .ok_or_else(|| boot_err(format!("{} has no {var} variable", self.store.describe())))?;
        parse_ok(&v).ok_or_else(|| {
            boot_err(format!(
                "{}: {var}={v:?} is not a number",
                self.store.describe()
            ))
        })
    }

    fn set_bootable(&mut self, group: &str, bootable: bool) -> Result<()> {
        self.check_group(group)?;
        self.store
            .set(&self.scheme.ok(group), if bootable { "1" } else { "0" })?;
        if !bootable && self.armed_trial()?.as_deref() == Some(group) {
            self.scheme.disarm(self.store.as_mut(), &self.groups)?;
        }
        self.store.commit()
    }

    fn arm_trial(&mut self, group: &str) -> Result<()> {
        self.check_group(group)?;
        self.scheme.disarm(self.store.as_mut(), &self.groups)?;
        self.scheme.arm(self.store.as_mut(), group)?;
        self.store.commit()
    }

    fn armed_trial(&self) -> Result<Option<String>> {
        Ok(self.scheme.armed(self.store.as_ref(), &self.groups))
    }
}

/// Write `bytes` at `offset` of `path` and fsync (envs are rewritten in
/// place at their own size: the bootloader reads a fixed size).
pub(super) fn write_in_place(path: &Path, offset: u64, bytes: &[u8]) -> Result<()> {
    crate::failpoint!("durable-write", "write {}", path.display());
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

/// Read `size` bytes at `offset` of `path`.
pub(super) fn read_at(path: &Path, offset: u64, size: usize) -> Result<Vec<u8>> {
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
