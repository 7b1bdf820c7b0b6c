//! Boot control: the `Bootloader` trait and its backends.
//!
//! Every backend does RAUC's four things — read the primary group, set it,
//! read a group's bootable flag, set it — plus arming a one-shot trial for
//! the reboot path. The backends differ only in where the variables live
//! ([`store`]) and what they are called ([`Scheme`]):
//!
//! | backend | primary | bootable | one-shot trial |
//! |---|---|---|---|
//! | `grub`  | `ORDER="A B"` (first is primary) | `A_OK=1` / `0` | `B_TRY=1` |
//! | `uboot` | `BOOT_ORDER="A B"` | `BOOT_A_LEFT` > 0 | `BOOT_TRY=B` |
//! | `file`  | `ORDER=A B` | `A_OK=1` / `0` | `TRY=B` |
//!
//! The bootloader side (packaging/grub, packaging/uboot) boots the one-shot
//! group after clearing the variable and saving the env — so a reset during
//! the trial falls back — else the first group of the order that is
//! bootable, else group A, and puts `updater.slot=X` on the command line.

pub mod reboot;
pub mod store;

use anyhow::Result;

use crate::config::{BootloaderConfig, Settings};
use crate::error::BootError;
use store::{EnvStore, FileStore, GrubStore, UbootStore};

/// A bootloader backend.
pub trait Bootloader {
    /// The backend's name, for messages.
    fn name(&self) -> &'static str;
    /// The group the bootloader boots by default.
    fn primary(&self) -> Result<Option<String>>;
    /// Make `group` the default. Refuses a group that is not bootable: the
    /// primary must always be a group that can boot.
    fn set_primary(&mut self, group: &str) -> Result<()>;
    /// Whether the bootloader may boot `group`.
    fn bootable(&self, group: &str) -> Result<bool>;
    /// Mark `group` bootable or not, durably. Marking it unbootable also
    /// disarms a pending one-shot trial of it.
    fn set_bootable(&mut self, group: &str, bootable: bool) -> Result<()>;
    /// Boot `group` once at the next reset, then fall back to the primary.
    fn arm_trial(&mut self, group: &str) -> Result<()>;
    /// The group whose one-shot trial is armed, if any.
    fn armed_trial(&self) -> Result<Option<String>>;
}

/// The variable names of a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// GRUB: ORDER, X_OK, X_TRY.
    Grub,
    /// U-Boot: BOOT_ORDER, BOOT_X_LEFT, BOOT_TRY.
    Uboot,
    /// The agent's file: ORDER, X_OK, TRY.
    File,
}

impl Scheme {
    fn order(self) -> &'static str {
        match self {
            Scheme::Uboot => "BOOT_ORDER",
            _ => "ORDER",
        }
    }
    fn ok(self, g: &str) -> String {
        match self {
            Scheme::Uboot => format!("BOOT_{g}_LEFT"),
            _ => format!("{g}_OK"),
        }
    }
    fn name(self) -> &'static str {
        match self {
            Scheme::Grub => "grub",
            Scheme::Uboot => "uboot",
            Scheme::File => "file",
        }
    }
}

/// A bootloader driven by variables in an env store.
pub struct VarBootloader {
    store: Box<dyn EnvStore>,
    scheme: Scheme,
    groups: Vec<String>,
}

fn boot_err(msg: String) -> anyhow::Error {
    BootError(msg).into()
}

impl VarBootloader {
    /// Wrap a store; checks that the env names only configured groups and
    /// has every variable the scheme needs.
    pub fn new(
        store: Box<dyn EnvStore>,
        scheme: Scheme,
        groups: &[String],
    ) -> Result<VarBootloader> {
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
                Some(v) if self.parse_ok(&v).is_none() => {
                    return Err(boot_err(format!("{where_}: {var}={v:?} is not a number")))
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn parse_ok(&self, v: &str) -> Option<bool> {
        v.trim().parse::<u32>().ok().map(|n| n > 0)
    }

    fn check_group(&self, group: &str) -> Result<()> {
        if self.groups.iter().any(|g| g == group) {
            Ok(())
        } else {
            Err(boot_err(format!(
                "unknown slot group {group:?} (configured: {})",
                self.groups.join(", ")
            )))
        }
    }

    fn disarm(&mut self) -> Result<()> {
        match self.scheme {
            Scheme::Grub => {
                for g in self.groups.clone() {
                    if self.store.get(&format!("{g}_TRY")).is_some() {
                        self.store.set(&format!("{g}_TRY"), "0")?;
                    }
                }
            }
            Scheme::Uboot => self.store.unset("BOOT_TRY"),
            Scheme::File => self.store.set("TRY", "")?,
        }
        Ok(())
    }
}

impl Bootloader for VarBootloader {
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
        self.parse_ok(&v).ok_or_else(|| {
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
            self.disarm()?;
        }
        self.store.commit()
    }

    fn arm_trial(&mut self, group: &str) -> Result<()> {
        self.check_group(group)?;
        self.disarm()?;
        match self.scheme {
            Scheme::Grub => self.store.set(&format!("{group}_TRY"), "1")?,
            Scheme::Uboot => self.store.set("BOOT_TRY", group)?,
            Scheme::File => self.store.set("TRY", group)?,
        }
        self.store.commit()
    }

    fn armed_trial(&self) -> Result<Option<String>> {
        Ok(match self.scheme {
            Scheme::Grub => self
                .groups
                .iter()
                .find(|g| self.store.get(&format!("{g}_TRY")).as_deref() == Some("1"))
                .cloned(),
            Scheme::Uboot => self.store.get("BOOT_TRY").filter(|v| !v.is_empty()),
            Scheme::File => self.store.get("TRY").filter(|v| !v.is_empty()),
        })
    }
}

/// Open the configured backend.
pub fn open(settings: &Settings) -> Result<Box<dyn Bootloader>> {
    let groups: Vec<String> = settings.slots.iter().map(|g| g.name.clone()).collect();
    let (store, scheme): (Box<dyn EnvStore>, Scheme) = match &settings.bootloader {
        BootloaderConfig::File { path } => {
            (Box::new(FileStore::open(path, &groups)?), Scheme::File)
        }
        BootloaderConfig::Grub { path } => (Box::new(GrubStore::open(path)?), Scheme::Grub),
        BootloaderConfig::Uboot { copies, size } => {
            (Box::new(UbootStore::open(copies, *size)?), Scheme::Uboot)
        }
    };
    Ok(Box::new(VarBootloader::new(store, scheme, &groups)?))
}
