//! The `systemd-boot` backend: one Boot Loader Specification entry per slot
//! group on the ESP (or XBOOTLDR), chosen through systemd's Boot Loader
//! Interface variables, written natively through efivarfs ([`super::efivar`]).
//!
//! | operation | how |
//! |---|---|
//! | primary | `LoaderEntryDefault` = `updater-A.conf` (written only at commit and rollback) |
//! | bootable | `loader/entries/updater-A.conf` exists (Type #1), or `EFI/Linux/updater-A.efi` (Type #2: the slot's UKI is its own entry) |
//! | not bootable | the entry renamed `updater-A.conf.disabled` (or `updater-A.efi.disabled`): sd-boot reads only `*.conf` and `EFI/Linux/*.efi`, so it cannot select it, by default, one-shot or menu |
//! | one-shot trial | the entry enabled, then `LoaderEntryOneShot` = `updater-B.conf` (sd-boot deletes it before it starts the entry: a reset during the trial falls back to the default) |
//! | booted | `LoaderEntrySelected` cross-checked against `updater.slot=`; for a UKI whose own `.cmdline` does not name the slot, it names the slot |
//!
//! A Type #2 entry's UKI is the slot's `uki` target; while the slot is not
//! bootable it is installed under its parked name
//! ([`crate::slots::paths::located`]), so an install never makes it
//! selectable: only `arm_trial` and commit do.
//!
//! Why not a boot counter of 0 for "bad": an explicit default or one-shot
//! naming a `+0` entry still boots it (measured, UEFI-NOTES). And why the
//! agent's entries carry no counter: in systemd 252 the counter is part of
//! the entry id, so a default naming `updater-B.conf` does not match
//! `updater-B+2.conf`, and every boot renames a counted entry. The agent
//! owns the trial (its health check, the watchdog, the one-shot), so when
//! it makes an entry bootable it drops a counter it finds; docs/boot-control.md
//! says how a device configured with counters behaves.

use std::path::{Path, PathBuf};

use anyhow::Result;

use super::efivar::{EfiVars, LOADER_GUID};
use super::vars::boot_err;
use super::Bootloader;
use crate::config::{SdBootBackend, SlotGroupConfig};
use crate::util::fs::rename_durable;

/// The suffix of an entry the agent made unbootable (the slot layer's
/// parked name, so that a Type #2 entry's UKI is installed under it).
pub const DISABLED: &str = crate::slots::paths::PARKED;

/// Open the systemd-boot backend.
pub fn open(cfg: &SdBootBackend, slots: &[SlotGroupConfig]) -> Result<Box<dyn Bootloader>> {
    let entries = cfg.esp.join("loader/entries");
    if !entries.is_dir() {
        return Err(boot_err(format!(
            "{} is not a folder: bootloader.esp must be where systemd-boot reads loader/entries (the ESP or XBOOTLDR); provision the entries as packaging/systemd-boot/README.md says",
            entries.display()
        )));
    }
    let b = SdBoot {
        entries,
        linux: cfg.esp.join("EFI/Linux"),
        vars: EfiVars::open(&cfg.efivarfs)?,
        prefix: cfg.entry_prefix.clone(),
        groups: slots.iter().map(|g| g.name.clone()).collect(),
    };
    for g in slots {
        let entry = b.find(&g.name)?;
        if entry.kind == Kind::Uki {
            b.check_uki_target(g)?;
        }
    }
    Ok(Box::new(b))
}

/// The systemd-boot backend.
pub struct SdBoot {
    /// `loader/entries`: Type #1 entries.
    entries: PathBuf,
    /// `EFI/Linux`: Type #2 entries (UKIs).
    linux: PathBuf,
    vars: EfiVars,
    prefix: String,
    groups: Vec<String>,
}

/// The two kinds of entry the Boot Loader Specification defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Type #1: `loader/entries/updater-A.conf`, naming a kernel and an
    /// initrd (or a UKI by its `efi` key).
    Conf,
    /// Type #2: `EFI/Linux/updater-A.efi`, a UKI that is its own entry.
    Uki,
}

impl Kind {
    fn suffix(self) -> &'static str {
        match self {
            Kind::Conf => ".conf",
            Kind::Uki => ".efi",
        }
    }
}

/// A group's entry, as found on the ESP.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    kind: Kind,
    /// The file name: `updater-A.conf`, a counted `updater-A+N[-M].conf`,
    /// or `updater-A.conf.disabled` (likewise `.efi`).
    name: String,
    /// Whether sd-boot can select it (the name is not `.disabled`).
    enabled: bool,
}

impl SdBoot {
    /// The entry id of `group`'s entry of `kind` (what the variables hold).
    fn id_of(&self, group: &str, kind: Kind) -> String {
        format!("{}{group}{}", self.prefix, kind.suffix())
    }

    /// The entry id the agent writes into variables for `group`: of the
    /// kind its entry is (Type #1 when it cannot be read).
    fn id(&self, group: &str) -> String {
        let kind = self.find(group).map(|e| e.kind).unwrap_or(Kind::Conf);
        self.id_of(group, kind)
    }

    /// The folder entries of `kind` live in.
    fn dir(&self, kind: Kind) -> &Path {
        match kind {
            Kind::Conf => &self.entries,
            Kind::Uki => &self.linux,
        }
    }

    /// The group an entry id (as a variable holds it) names: the agent's id,
    /// Type #1 or #2, with or without a boot counter; `None` for an entry
    /// that is not the agent's.
    ///
    /// sd-boot lowercases the ids it reports (`LoaderEntrySelected` is
    /// `updater-b.conf` for `updater-B.conf`, seen in the e2e scenarios) and
    /// matches ids without regard to case, so this does too.
    fn group_of(&self, id: &str) -> Option<String> {
        self.kind_and_group(id).map(|(_, g)| g)
    }

    fn kind_and_group(&self, id: &str) -> Option<(Kind, String)> {
        let lower = id.to_ascii_lowercase();
        let stem = lower.strip_prefix(&self.prefix.to_ascii_lowercase())?;
        let (kind, rest) = [Kind::Conf, Kind::Uki]
            .into_iter()
            .find_map(|k| stem.strip_suffix(k.suffix()).map(|r| (k, r)))?;
        let name = match rest.split_once('+') {
            Some((name, counter)) if is_counter(counter) => name,
            Some(_) => return None,
            None => rest,
        };
        self.groups
            .iter()
            .find(|g| g.eq_ignore_ascii_case(name))
            .map(|g| (kind, g.clone()))
    }

    fn check_group(&self, group: &str) -> Result<()> {
        super::vars::check_group(group, &self.groups)
    }

    /// A Type #2 entry is the UKI itself, so the group's `uki` target must
    /// be that file: else an install would write a UKI sd-boot never boots.
    fn check_uki_target(&self, g: &SlotGroupConfig) -> Result<()> {
        let want = self.linux.join(self.id_of(&g.name, Kind::Uki));
        match g.targets.get("uki") {
            Some(t) if t == &want => Ok(()),
            got => Err(boot_err(format!(
                "slot {name}'s systemd-boot entry is a Type #2 entry (a UKI in {linux}), so slots.{name}.targets.uki must be {want}{but}; set it so, or give the slot a Type #1 entry in {entries}",
                name = g.name,
                linux = self.linux.display(),
                want = want.display(),
                but = got.map(|t| format!(", not {}", t.display())).unwrap_or_default(),
                entries = self.entries.display(),
            ))),
        }
    }

    /// The entries of `kind` in its folder that are `group`'s.
    fn scan(&self, kind: Kind, group: &str, found: &mut Vec<Entry>) -> Result<()> {
        let dir = self.dir(kind);
        let rd = match std::fs::read_dir(dir) {
            Ok(rd) => rd,
            // An ESP without EFI/Linux simply has no Type #2 entries.
            Err(e) if kind == Kind::Uki && e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(())
            }
            Err(e) => return Err(boot_err(format!("reading {}: {e}", dir.display()))),
        };
        let id = self.id_of(group, kind);
        for e in rd.flatten() {
            let Some(name) = e.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if let Some(base) = name.strip_suffix(DISABLED) {
                if base == id {
                    found.push(Entry {
                        kind,
                        name,
                        enabled: false,
                    });
                }
            } else if self.kind_and_group(&name) == Some((kind, group.to_string())) {
                found.push(Entry {
                    kind,
                    name,
                    enabled: true,
                });
            }
        }
        Ok(())
    }

    /// Find `group`'s entry: in `loader/entries` (Type #1) or `EFI/Linux`
    /// (Type #2). Two of them (a counted and an uncounted copy, an enabled
    /// and a disabled one, or one of each type) are refused: which one
    /// sd-boot boots would be a guess (systemd #33504).
    fn find(&self, group: &str) -> Result<Entry> {
        let mut found = Vec::new();
        self.scan(Kind::Conf, group, &mut found)?;
        self.scan(Kind::Uki, group, &mut found)?;
        match found.len() {
            1 => Ok(found.remove(0)),
            0 => Err(boot_err(format!(
                "slot {group} has no boot entry: neither {entries}/{conf} nor {linux}/{uki} (a Type #2 UKI) exists, enabled or with {DISABLED}; provision one (packaging/systemd-boot/README.md) or restore it from the image",
                entries = self.entries.display(),
                conf = self.id_of(group, Kind::Conf),
                linux = self.linux.display(),
                uki = self.id_of(group, Kind::Uki),
            ))),
            _ => {
                let names: Vec<String> = found
                    .iter()
                    .map(|e| self.dir(e.kind).join(&e.name).display().to_string())
                    .collect();
                Err(boot_err(format!(
                    "slot {group} has {} boot entries ({}): which one systemd-boot would boot is a guess; keep one",
                    names.len(),
                    names.join(", "),
                )))
            }
        }
    }

    /// Make `group`'s entry `updater-G.conf` or `.efi` (from a disabled or
    /// a counted one), durably; its id, for the variables.
    fn enable(&mut self, group: &str) -> Result<String> {
        let e = self.find(group)?;
        let id = self.id_of(group, e.kind);
        if !(e.enabled && e.name == id) {
            let dir = self.dir(e.kind);
            rename_durable(&dir.join(&e.name), &dir.join(&id))?;
        }
        Ok(id)
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
        let id = self.enable(group)?;
        self.vars.set_string("LoaderEntryDefault", LOADER_GUID, &id)
    }

    fn bootable(&self, group: &str) -> Result<bool> {
        self.check_group(group)?;
        Ok(self.find(group)?.enabled)
    }

    fn set_bootable(&mut self, group: &str, bootable: bool) -> Result<()> {
        self.check_group(group)?;
        if bootable {
            return self.enable(group).map(drop);
        }
        let e = self.find(group)?;
        if e.enabled {
            // The entry first: once it is gone sd-boot cannot boot it, even
            // through a one-shot that still names it.
            let to = format!("{}{DISABLED}", self.id_of(group, e.kind));
            let dir = self.dir(e.kind);
            rename_durable(&dir.join(&e.name), &dir.join(to))?;
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
        let id = self.enable(group)?;
        self.vars.set_string("LoaderEntryOneShot", LOADER_GUID, &id)
    }

    fn armed_trial(&self) -> Result<Option<String>> {
        self.var_group("LoaderEntryOneShot")
    }

    fn check_booted(&self, booted: &str) -> Result<()> {
        let Some(v) = self.vars.get_string("LoaderEntrySelected", LOADER_GUID)? else {
            return Ok(());
        };
        match self.kind_and_group(&v) {
            Some((kind, g)) if g != booted => Err(boot_err(format!(
                "systemd-boot booted entry {v} (slot {g}), but the kernel command line says updater.slot={booted}: the entry names the wrong slot. Fix {} so that its command line carries updater.slot={g} (or none: a Type #2 UKI's slot is the entry sd-boot selected); nothing was changed",
                self.dir(kind).join(&v).display()
            ))),
            _ => Ok(()),
        }
    }

    fn selected(&self) -> Result<Option<String>> {
        // Volatile, set by sd-boot at every boot through it. A value that
        // is not the agent's is no answer (the caller says what is missing).
        Ok(self
            .vars
            .get_string("LoaderEntrySelected", LOADER_GUID)?
            .and_then(|v| self.group_of(&v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn sd(dir: &Path) -> SdBoot {
        SdBoot {
            entries: dir.to_path_buf(),
            linux: dir.join("EFI/Linux"),
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
        assert_eq!(
            b.kind_and_group("updater-b.efi"),
            Some((Kind::Uki, "B".into())),
            "a Type #2 entry, as sd-boot reports it"
        );
        assert_eq!(b.group_of("updater-B+2-1.efi").as_deref(), Some("B"));
        assert_eq!(b.group_of("updater-B.efi.disabled"), None);
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
            linux: root.path().join("EFI/Linux"),
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
