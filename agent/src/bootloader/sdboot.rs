//! The `systemd-boot` backend: one Boot Loader Specification entry per slot
//! group on the ESP (or XBOOTLDR), chosen through systemd's Boot Loader
//! Interface variables, written natively through efivarfs ([`super::efivar`]).
//!
//! | operation | how |
//! |---|---|
//! | primary | `LoaderEntryDefault` = `updater-A.conf` (written only at commit and rollback) |
//! | bootable | `loader/entries/updater-A.conf` exists |
//! | not bootable | the entry renamed `updater-A.conf.disabled`: sd-boot reads only `*.conf`, so it cannot select it, by default, one-shot or menu |
//! | one-shot trial | the entry enabled, then `LoaderEntryOneShot` = `updater-B.conf` (sd-boot deletes it before it starts the entry: a reset during the trial falls back to the default) |
//! | booted | `LoaderEntrySelected` cross-checked against `updater.slot=` |
//!
//! Why not a boot counter of 0 for "bad": an explicit default or one-shot
//! naming a `+0` entry still boots it (measured, UEFI-NOTES). And why the
//! agent's entries carry no counter: in systemd 252 the counter is part of
//! the entry id, so a default naming `updater-B.conf` does not match
//! `updater-B+2.conf`, and every boot renames a counted entry. The agent
//! owns the trial (its health check, the watchdog, the one-shot), so when
//! it makes an entry bootable it drops a counter it finds; docs/boot-control.md
//! says how a device configured with counters behaves.

use std::path::PathBuf;

use anyhow::Result;

use super::efivar::{EfiVars, LOADER_GUID};
use super::vars::boot_err;
use super::Bootloader;
use crate::config::SdBootBackend;
use crate::util::fs::rename_durable;

/// The suffix of an entry the agent made unbootable.
pub const DISABLED: &str = ".disabled";

/// Open the systemd-boot backend.
pub fn open(cfg: &SdBootBackend, groups: &[String]) -> Result<Box<dyn Bootloader>> {
    let entries = cfg.esp.join("loader/entries");
    if !entries.is_dir() {
        return Err(boot_err(format!(
            "{} is not a folder: bootloader.esp must be where systemd-boot reads loader/entries (the ESP or XBOOTLDR); provision the entries as packaging/systemd-boot/README.md says",
            entries.display()
        )));
    }
    let b = SdBoot {
        entries,
        vars: EfiVars::open(&cfg.efivarfs)?,
        prefix: cfg.entry_prefix.clone(),
        groups: groups.to_vec(),
    };
    for g in groups {
        b.find(g)?;
    }
    Ok(Box::new(b))
}

/// The systemd-boot backend.
pub struct SdBoot {
    entries: PathBuf,
    vars: EfiVars,
    prefix: String,
    groups: Vec<String>,
}

/// A group's entry file, as found in `loader/entries`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    /// `updater-A.conf`, or a counted `updater-A+N[-M].conf`.
    Enabled(String),
    /// `updater-A.conf.disabled`.
    Disabled(String),
}

impl SdBoot {
    /// The entry id the agent writes into variables.
    fn id(&self, group: &str) -> String {
        format!("{}{group}.conf", self.prefix)
    }

    /// The group an entry id (as a variable holds it) names: the agent's id,
    /// with or without a boot counter; `None` for an entry that is not the
    /// agent's.
    ///
    /// sd-boot lowercases the ids it reports (`LoaderEntrySelected` is
    /// `updater-b.conf` for `updater-B.conf`, seen in the e2e scenarios) and
    /// matches ids without regard to case, so this does too.
    fn group_of(&self, id: &str) -> Option<String> {
        let lower = id.to_ascii_lowercase();
        let rest = lower
            .strip_prefix(&self.prefix.to_ascii_lowercase())?
            .strip_suffix(".conf")?;
        let name = match rest.split_once('+') {
            Some((name, counter)) if is_counter(counter) => name,
            Some(_) => return None,
            None => rest,
        };
        self.groups
            .iter()
            .find(|g| g.eq_ignore_ascii_case(name))
            .cloned()
    }

    fn check_group(&self, group: &str) -> Result<()> {
        super::vars::check_group(group, &self.groups)
    }

    /// Find `group`'s entry file. Two of them (a counted and an uncounted
    /// copy, or an enabled and a disabled one) are refused: which one
    /// sd-boot boots would be a guess (systemd #33504).
    fn find(&self, group: &str) -> Result<Entry> {
        let rd = std::fs::read_dir(&self.entries)
            .map_err(|e| boot_err(format!("reading {}: {e}", self.entries.display())))?;
        let mut found = Vec::new();
        for e in rd.flatten() {
            let Some(name) = e.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if let Some(base) = name.strip_suffix(DISABLED) {
                if base == self.id(group) {
                    found.push(Entry::Disabled(name));
                }
            } else if self.group_of(&name).as_deref() == Some(group) {
                found.push(Entry::Enabled(name));
            }
        }
        match found.len() {
            1 => Ok(found.remove(0)),
            0 => Err(boot_err(format!(
                "slot {group} has no boot entry: neither {dir}/{id} nor {dir}/{id}{DISABLED} exists; provision it (packaging/systemd-boot/README.md) or restore it from the image",
                dir = self.entries.display(),
                id = self.id(group)
            ))),
            _ => {
                let names: Vec<String> = found
                    .iter()
                    .map(|e| match e {
                        Entry::Enabled(n) | Entry::Disabled(n) => n.clone(),
                    })
                    .collect();
                Err(boot_err(format!(
                    "slot {group} has {} boot entries in {} ({}): which one systemd-boot would boot is a guess; remove all but {}",
                    names.len(),
                    self.entries.display(),
                    names.join(", "),
                    self.id(group)
                )))
            }
        }
    }

    /// Make `group`'s entry `updater-G.conf` (from a disabled or a counted
    /// one), durably.
    fn enable(&mut self, group: &str) -> Result<()> {
        let id = self.id(group);
        match self.find(group)? {
            Entry::Enabled(name) if name == id => Ok(()),
            Entry::Enabled(name) | Entry::Disabled(name) => {
                rename_durable(&self.entries.join(&name), &self.entries.join(&id))
            }
        }
    }

    /// The group a string variable names (`None` when the variable is
    /// absent); a value that names no entry of the agent's is an error that
    /// says what it holds.
    fn var_group(&self, name: &str) -> Result<Option<String>> {
        let Some(v) = self.vars.get_string(name, LOADER_GUID)? else {
            return Ok(None);
        };
        match self.group_of(&v) {
            Some(g) => Ok(Some(g)),
            None => Err(boot_err(format!(
                "EFI variable {name} = {v:?} names no entry of the agent's ({}); set it back with `bootctl set-default {}` or run `updater rollback`/`updater mark-good` on the slot to use",
                self.groups
                    .iter()
                    .map(|g| self.id(g))
                    .collect::<Vec<_>>()
                    .join(", "),
                self.id(&self.groups[0])
            ))),
        }
    }
}

impl SdBoot {
    /// The group `loader/loader.conf`'s `default` line names, if any.
    fn loader_conf_default(&self) -> Result<Option<String>> {
        let conf = self
            .entries
            .parent()
            .map(|l| l.join("loader.conf"))
            .unwrap_or_default();
        let Ok(text) = std::fs::read_to_string(&conf) else {
            return Ok(None);
        };
        let Some(value) = text.lines().find_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("default")).then(|| w.next().unwrap_or("").to_string())
        }) else {
            return Ok(None);
        };
        self.group_of(&value).map(Some).ok_or_else(|| {
            boot_err(format!(
                "{}: `default {value}` names no entry of the agent's; write `default {}` there, or set the default with `bootctl set-default {}`",
                conf.display(),
                self.id(&self.groups[0]),
                self.id(&self.groups[0])
            ))
        })
    }
}

/// A boot counter's text after `+`: `LEFT` or `LEFT-DONE`.
fn is_counter(s: &str) -> bool {
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    match s.split_once('-') {
        Some((l, d)) => digits(l) && digits(d),
        None => digits(s),
    }
}

impl Bootloader for SdBoot {
    fn name(&self) -> &'static str {
        "systemd-boot"
    }

    fn primary(&self) -> Result<Option<String>> {
        // sd-boot's order: the variable, then loader.conf's `default` (a
        // device provisioned with files only, before its first commit).
        match self.var_group("LoaderEntryDefault")? {
            Some(g) => Ok(Some(g)),
            None => self.loader_conf_default(),
        }
    }

    fn set_primary(&mut self, group: &str) -> Result<()> {
        self.check_group(group)?;
        if !self.bootable(group)? {
            return Err(boot_err(format!(
                "refusing to make slot {group} the default: its entry is disabled"
            )));
        }
        self.enable(group)?;
        let id = self.id(group);
        self.vars.set_string("LoaderEntryDefault", LOADER_GUID, &id)
    }

    fn bootable(&self, group: &str) -> Result<bool> {
        self.check_group(group)?;
        Ok(matches!(self.find(group)?, Entry::Enabled(_)))
    }

    fn set_bootable(&mut self, group: &str, bootable: bool) -> Result<()> {
        self.check_group(group)?;
        if bootable {
            return self.enable(group);
        }
        if let Entry::Enabled(name) = self.find(group)? {
            // The entry first: once it is gone sd-boot cannot boot it, even
            // through a one-shot that still names it.
            let to = format!("{}{DISABLED}", self.id(group));
            rename_durable(&self.entries.join(&name), &self.entries.join(to))?;
        }
        if self.armed_trial()?.as_deref() == Some(group) {
            self.vars.delete("LoaderEntryOneShot", LOADER_GUID)?;
        }
        Ok(())
    }

    fn arm_trial(&mut self, group: &str) -> Result<()> {
        self.check_group(group)?;
        // sd-boot cannot select a disabled entry, not even through the
        // one-shot: the entry is enabled first. The default still names
        // the primary, so a reset during the trial falls back to it.
        self.enable(group)?;
        let id = self.id(group);
        self.vars.set_string("LoaderEntryOneShot", LOADER_GUID, &id)
    }

    fn armed_trial(&self) -> Result<Option<String>> {
        self.var_group("LoaderEntryOneShot")
    }

    fn check_booted(&self, booted: &str) -> Result<()> {
        let Some(v) = self.vars.get_string("LoaderEntrySelected", LOADER_GUID)? else {
            return Ok(());
        };
        match self.group_of(&v) {
            Some(g) if g != booted => Err(boot_err(format!(
                "systemd-boot booted entry {v} (slot {g}), but the kernel command line says updater.slot={booted}: the entry's options name the wrong slot. Fix {} so that its options carry updater.slot={g}; nothing was changed",
                self.entries.join(&v).display()
            ))),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn sd(dir: &Path) -> SdBoot {
        SdBoot {
            entries: dir.to_path_buf(),
            vars: EfiVars::open(dir).unwrap(),
            prefix: "updater-".into(),
            groups: vec!["A".into(), "B".into()],
        }
    }

    #[test]
    fn ids_with_and_without_counters_name_the_group() {
        let d = tempfile::tempdir().unwrap();
        let b = sd(d.path());
        assert_eq!(b.group_of("updater-B.conf").as_deref(), Some("B"));
        assert_eq!(b.group_of("updater-B+3.conf").as_deref(), Some("B"));
        assert_eq!(b.group_of("updater-B+0-3.conf").as_deref(), Some("B"));
        assert_eq!(
            b.group_of("updater-b.conf").as_deref(),
            Some("B"),
            "as sd-boot reports it"
        );
        assert_eq!(b.group_of("updater-B+x.conf"), None);
        assert_eq!(b.group_of("updater-C.conf"), None);
        assert_eq!(b.group_of("debian.conf"), None);
        assert_eq!(b.group_of("updater-B"), None);
    }

    #[test]
    fn a_counted_entry_loses_its_counter_when_it_is_made_bootable() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("updater-A.conf"), "").unwrap();
        std::fs::write(d.path().join("updater-B+0-3.conf"), "").unwrap();
        let mut b = sd(d.path());
        assert!(b.bootable("B").unwrap());
        b.set_bootable("B", true).unwrap();
        assert!(d.path().join("updater-B.conf").exists());
        assert!(!d.path().join("updater-B+0-3.conf").exists());
    }

    #[test]
    fn without_the_variable_the_primary_is_loader_confs_default() {
        let root = tempfile::tempdir().unwrap();
        let entries = root.path().join("loader/entries");
        std::fs::create_dir_all(&entries).unwrap();
        let vars = root.path().join("vars");
        std::fs::create_dir_all(&vars).unwrap();
        let b = SdBoot {
            entries: entries.clone(),
            vars: EfiVars::open(&vars).unwrap(),
            prefix: "updater-".into(),
            groups: vec!["A".into(), "B".into()],
        };
        assert_eq!(b.primary().unwrap(), None);
        let conf = root.path().join("loader/loader.conf");
        std::fs::write(&conf, "timeout 0\ndefault updater-A.conf\n").unwrap();
        assert_eq!(b.primary().unwrap().as_deref(), Some("A"));
        std::fs::write(&conf, "default debian-*\n").unwrap();
        let e = b.primary().unwrap_err().to_string();
        assert!(e.contains("names no entry of the agent's"), "{e}");
    }

    #[test]
    fn two_entries_for_one_slot_are_refused() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("updater-B.conf"), "").unwrap();
        std::fs::write(d.path().join("updater-B+2.conf"), "").unwrap();
        let e = sd(d.path()).bootable("B").unwrap_err().to_string();
        assert!(e.contains("has 2 boot entries"), "{e}");
    }
}
