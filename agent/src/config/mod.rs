//! Configuration: TOML fragments, each checked alone, merged in order, then
//! validated once into [`Settings`]. Each concern owns its table: its raw
//! form (every key optional, unknown keys refused), its defaults and its
//! validation live in one file here (`http.rs`, `bootloader.rs`, ...).
//!
//! Search order (later wins, key by key):
//! `/usr/lib/updater/config.toml`, `/usr/lib/updater/config.d/*.toml`,
//! `/etc/updater/config.toml`, `/etc/updater/config.d/*.toml`.
//! `--config PATH` or `UPDATER_CONFIG=PATH` replaces the search with PATH and
//! `PATH`'s sibling `config.d/*.toml`.
//!
//! Each fragment is first parsed alone, from its text, so that an unknown
//! key, a wrong type or a bad value (`kexec.policy = "sometimes"`) is
//! reported with the file and the line it is on; then the fragments are
//! merged as TOML tables and the result is validated.

mod bootloader;
mod daemon;
mod device;
mod http;
mod install;
mod kexec;
mod security;
mod slots;
mod trial;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use serde::Deserialize;

pub use bootloader::{
    BootOption, BootloaderConfig, EfiBackend, FileBackend, GrubBackend, SdBootBackend, UbootBackend,
};
pub use daemon::{
    channel_name_of, DaemonSettings, MaintenanceWindow, Strategy,
    DEFAULT_MAX_CHANNEL_VALIDITY_DAYS, DEFAULT_POLL_INTERVAL_SECS,
};
pub use device::{DeviceSettings, ReportSettings};
pub use http::HttpSettings;
pub use install::InstallSettings;
pub use kexec::{KexecPolicy, KexecSettings, WatchdogUnsafe, DEFAULT_WATCHDOG_TIMEOUT_SECS};
pub use security::SecuritySettings;
pub use slots::SlotGroupConfig;
pub use trial::{HealthSettings, TrialSettings};

use crate::error::usage;

/// Where the agent looks for configuration by default.
pub const DEFAULT_DIRS: [&str; 2] = ["/usr/lib/updater", "/etc/updater"];

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The device's compatible string, matched against a release's list.
    pub compatible: String,
    /// The agent's state directory (on a persistent data partition).
    pub state_dir: PathBuf,
    /// The keyring directory.
    pub keyring: PathBuf,
    /// The default release source (a manifest URL or a release folder).
    pub source: Option<String>,
    /// Where the kernel command line is read (`/proc/cmdline`; tests override).
    pub cmdline_path: PathBuf,
    /// The bootloader backend.
    pub bootloader: BootloaderConfig,
    /// The slot backend (`[slots] backend`, "paths" by default): which
    /// `slots::open` opens.
    pub slot_backend: String,
    /// Slot groups by name, in configuration order.
    pub slots: Vec<SlotGroupConfig>,
    /// HTTP settings.
    pub http: HttpSettings,
    /// Install behaviour.
    pub install: InstallSettings,
    /// Trial boots.
    pub trial: TrialSettings,
    /// Health checks.
    pub health: HealthSettings,
    /// kexec trials.
    pub kexec: KexecSettings,
    /// The device's identity (rollout bucket, reports).
    pub device: DeviceSettings,
    /// `updater daemon`: channel polling and when to apply.
    pub daemon: DaemonSettings,
    /// Status reports to a fleet server.
    pub report: ReportSettings,
    /// What the agent accepts about the files it trusts.
    pub security: SecuritySettings,
    /// Files the settings came from, in the order read.
    pub files: Vec<PathBuf>,
}

impl Settings {
    /// A slot group by name.
    pub fn group(&self, name: &str) -> Option<&SlotGroupConfig> {
        self.slots.iter().find(|g| g.name == name)
    }

    /// The slot group names, in configuration order.
    pub fn group_names(&self) -> Vec<String> {
        self.slots.iter().map(|g| g.name.clone()).collect()
    }
}

/// Where the configuration came from, for error messages: every error names
/// the files and the key.
pub(crate) struct Origin(Vec<PathBuf>);

impl Origin {
    fn new(files: &[PathBuf]) -> Origin {
        Origin(files.to_vec())
    }

    /// `key` is required and missing.
    fn missing(&self, key: &str) -> anyhow::Error {
        usage(format!(
            "configuration ({}): `{key}` is not set",
            list(&self.0)
        ))
    }

    /// `key` is wrong; `why` follows the key name. The error names the file
    /// and line that set it (the last fragment that did), else the files.
    fn invalid(&self, key: &str, why: impl std::fmt::Display) -> anyhow::Error {
        let bare = key.trim_matches('`');
        match locate(&self.0, bare) {
            Some(at) => usage(format!("{at}: {key}{why}")),
            None => usage(format!("configuration ({}): {key}{why}", list(&self.0))),
        }
    }

    /// A duration in seconds that must be positive.
    fn positive_secs(&self, v: Option<u64>, default: u64, key: &str) -> Result<Duration> {
        match v.unwrap_or(default) {
            0 => Err(self.invalid(key, " must be positive")),
            n => Ok(Duration::from_secs(n)),
        }
    }
}

/// The whole file as written: the top-level keys, and one table per concern.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    compatible: Option<String>,
    state_dir: Option<PathBuf>,
    keyring: Option<PathBuf>,
    source: Option<String>,
    cmdline_path: Option<PathBuf>,
    /// Checked by `bootloader.rs`: its keys depend on the backend.
    bootloader: Option<toml::Table>,
    http: Option<http::Raw>,
    install: Option<install::Raw>,
    trial: Option<trial::RawTrial>,
    health: Option<trial::RawHealth>,
    kexec: Option<kexec::Raw>,
    slots: Option<BTreeMap<String, slots::Entry>>,
    device: Option<device::RawDevice>,
    daemon: Option<daemon::Raw>,
    report: Option<device::RawReport>,
    security: Option<security::Raw>,
}

/// The configuration files to read: `explicit` (from `--config` or
/// `UPDATER_CONFIG`) and its `config.d/`, else the default search path.
pub fn config_files(explicit: Option<&Path>) -> Vec<PathBuf> {
    let mut files = Vec::new();
    match explicit {
        Some(p) => {
            files.push(p.to_path_buf());
            files.extend(fragments(&crate::util::fs::parent_dir(p).join("config.d")));
        }
        None => {
            for dir in DEFAULT_DIRS {
                let main = Path::new(dir).join("config.toml");
                if main.exists() {
                    files.push(main);
                }
                files.extend(fragments(&Path::new(dir).join("config.d")));
            }
        }
    }
    files
}

fn fragments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "toml"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Load and validate the configuration.
pub fn load(explicit: Option<&Path>) -> Result<Settings> {
    let files = config_files(explicit);
    if files.is_empty() {
        return Err(usage(
            "no configuration found in /usr/lib/updater or /etc/updater; write /etc/updater/config.toml or pass --config PATH",
        ));
    }
    let mut merged = toml::Table::new();
    let mut bootloader_tables = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f)
            .map_err(|e| usage(format!("reading config {}: {e}", f.display())))?;
        // This fragment alone, from its text: errors carry its line.
        let raw: RawConfig =
            toml::from_str(&text).map_err(|e: toml::de::Error| fragment_error(f, &text, &e))?;
        if let Some(b) = raw.bootloader {
            bootloader_tables.push((f, b));
        }
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            usage(format!("{}: {}", f.display(), one_line(&e.to_string())))
        })?;
        merge(&mut merged, table);
    }
    let backend = merged
        .get("bootloader")
        .and_then(|b| b.get("backend"))
        .and_then(|b| b.as_str())
        .map(str::to_string);
    for (f, table) in &bootloader_tables {
        bootloader::check_fragment(table, backend.as_deref()).map_err(|e| {
            // The line of the key serde names (an unknown field), else of
            // the backend (an unknown variant).
            let key = e
                .strip_prefix("unknown field `")
                .and_then(|r| r.split_once('`'))
                .map_or("backend", |(k, _)| k);
            let at = locate(std::slice::from_ref(*f), &format!("bootloader.{key}"))
                .unwrap_or_else(|| f.display().to_string());
            let hint = did_you_mean(&e)
                .map(|m| format!("; did you mean `{m}`?"))
                .unwrap_or_default();
            usage(format!("{at}: [bootloader] {e}{hint}"))
        })?;
    }
    let raw = RawConfig::deserialize(toml::Value::Table(merged)).map_err(|e| {
        usage(format!(
            "merged configuration: {}",
            one_line(&e.to_string())
        ))
    })?;
    validate(raw, files)
}

/// Check one fragment's text alone, as `load` checks each file (for the
/// fuzzer and for tools): the line of the first problem, or nothing.
pub fn check_fragment(text: &str) -> std::result::Result<(), String> {
    let raw: RawConfig = toml::from_str(text).map_err(|e| one_line(&e.to_string()))?;
    if let Some(b) = &raw.bootloader {
        let backend = b
            .get("backend")
            .and_then(|v| v.as_str())
            .map(str::to_string);
        bootloader::check_fragment(b, backend.as_deref())
            .map_err(|e| format!("[bootloader]: {e}"))?;
    }
    Ok(())
}

/// Merge `over` into `base`: tables merge key by key, anything else replaces.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        // A fragment that names another bootloader backend replaces the
        // table whole: the keys of the backend it replaces (a GRUB `path`
        // under systemd-boot) would be refused as unknown.
        if k == "bootloader" && switches_backend(base.get(&k), &v) {
            base.insert(k, v);
            continue;
        }
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// Whether the `[bootloader]` table `over` names a backend other than the
/// one `base` names.
fn switches_backend(base: Option<&toml::Value>, over: &toml::Value) -> bool {
    let backend = |t: Option<&toml::Value>| t.and_then(|t| t.get("backend")).cloned();
    match (backend(base), backend(Some(over))) {
        (Some(b), Some(o)) => b != o,
        _ => false,
    }
}

/// The files, for a message.
fn list(files: &[PathBuf]) -> String {
    files
        .iter()
        .map(|f| f.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where the dotted `key` (`http.absent_status`, `slots.B.targets.rootfs`)
/// is set: `FILE:LINE` of the last fragment that sets it. A plain reading
/// of `[table]` headers and `key =` lines, enough for the configuration's
/// shape (no inline tables).
pub fn locate(files: &[PathBuf], key: &str) -> Option<String> {
    let (table, name) = match key.rsplit_once('.') {
        Some((t, n)) => (t, n),
        None => ("", key),
    };
    let mut found = None;
    for f in files {
        let Ok(text) = std::fs::read_to_string(f) else {
            continue;
        };
        let mut current = String::new();
        for (i, line) in text.lines().enumerate() {
            let l = line.trim();
            if let Some(h) = l.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
                current = h.trim().replace(['"', ' '], "");
                continue;
            }
            let Some((k, _)) = l.split_once('=') else {
                continue;
            };
            let k = k.trim().trim_matches('"');
            // `[slots]` with `B.targets.rootfs = ...` counts too.
            let full = if current.is_empty() {
                k.to_string()
            } else {
                format!("{current}.{k}")
            };
            if full == key || (current == table && k == name) {
                found = Some(format!("{}:{}", f.display(), i + 1));
            }
        }
    }
    found
}

/// A fragment that does not parse: `FILE:LINE:COLUMN: what`, with a guess
/// when a name is close to one that exists.
fn fragment_error(f: &Path, text: &str, e: &toml::de::Error) -> anyhow::Error {
    // FILE:LINE:COL as compilers print it (editors jump there), and the
    // line itself when it is short enough to read in one error line.
    let (at, source) = e
        .span()
        .map(|s| {
            let before = &text[..s.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let col = before.len() - before.rfind('\n').map_or(0, |p| p + 1) + 1;
            let source = text
                .lines()
                .nth(line - 1)
                .map(str::trim)
                .filter(|l| !l.is_empty() && l.len() <= 80)
                .map(|l| format!(" (in `{l}`)"))
                .unwrap_or_default();
            (format!(":{line}:{col}"), source)
        })
        .unwrap_or_default();
    let msg = one_line(e.message());
    let hint = did_you_mean(&msg)
        .map(|m| format!("; did you mean `{m}`?"))
        .unwrap_or_default();
    usage(format!("{}{at}: {msg}{source}{hint}", f.display()))
}

/// In serde's "unknown field `x`, expected one of `a`, `b`" (or variant),
/// the expected name closest to `x`, when one is close.
fn did_you_mean(msg: &str) -> Option<String> {
    let rest = msg
        .strip_prefix("unknown field `")
        .or_else(|| msg.strip_prefix("unknown variant `"))?;
    let (got, rest) = rest.split_once('`')?;
    let expected = rest.split_once("expected")?.1;
    let names: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    closest(got, &names).map(str::to_string)
}

/// The name in `names` closest to the mistyped `got`, when one is close
/// (a third of its letters changed, at least two allowed): "did you mean".
pub fn closest<'a>(got: &str, names: &[&'a str]) -> Option<&'a str> {
    names
        .iter()
        .map(|n| (edit_distance(got, n), *n))
        .filter(|(d, n)| *d <= (n.len() / 3).max(2))
        .min()
        .map(|(_, n)| n)
}

/// Levenshtein distance between `a` and `b`.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn validate(raw: RawConfig, files: Vec<PathBuf>) -> Result<Settings> {
    let origin = Origin::new(&files);
    let compatible = raw.compatible.ok_or_else(|| origin.missing("compatible"))?;
    if compatible.trim().is_empty() {
        return Err(origin.invalid("`compatible`", " is empty"));
    }
    Ok(Settings {
        compatible,
        state_dir: raw.state_dir.ok_or_else(|| origin.missing("state_dir"))?,
        keyring: raw.keyring.ok_or_else(|| origin.missing("keyring"))?,
        source: raw.source,
        cmdline_path: raw
            .cmdline_path
            .unwrap_or_else(|| PathBuf::from("/proc/cmdline")),
        bootloader: bootloader::validate(raw.bootloader, &origin)?,
        slot_backend: slots::validate_backend(raw.slots.as_ref(), &origin)?,
        slots: slots::validate(raw.slots, &origin)?,
        http: http::validate(raw.http.unwrap_or_default(), &origin)?,
        install: install::validate(raw.install.unwrap_or_default(), &origin)?,
        trial: trial::validate_trial(raw.trial.unwrap_or_default(), &origin)?,
        health: trial::validate_health(raw.health.unwrap_or_default(), &origin)?,
        kexec: kexec::validate(raw.kexec.unwrap_or_default(), &origin)?,
        device: device::validate_device(raw.device.unwrap_or_default(), &origin)?,
        daemon: daemon::validate(raw.daemon.unwrap_or_default(), &origin)?,
        report: device::validate_report(raw.report.unwrap_or_default(), &origin)?,
        security: security::validate(raw.security.unwrap_or_default()),
        files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, rel: &str, text: &str) -> PathBuf {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    const BASE: &str = r#"
compatible = "acme-gw"
state_dir = "/var/lib/updater"
keyring = "/etc/updater/keyring"
[bootloader]
backend = "file"
path = "/boot/updater.env"
[slots.A.targets]
rootfs = "/dev/vda2"
[slots.B.targets]
rootfs = "/dev/vda3"
"#;

    #[test]
    fn the_packaged_example_config_is_valid() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/config/config.toml");
        let s = load(Some(&p)).unwrap();
        assert_eq!(s.slots.len(), 2);
        assert!(matches!(s.bootloader, BootloaderConfig::Grub(_)));
    }

    #[test]
    fn the_slot_backend_is_chosen_by_name_and_paths_by_default() {
        let d = tempfile::tempdir().unwrap();
        let with = |extra: &str| {
            let main = write(d.path(), "config.toml", &format!("{BASE}{extra}"));
            load(Some(&main))
        };
        // Every configuration from before the key means the paths backend.
        let s = with("").unwrap();
        assert_eq!(s.slot_backend, "paths");
        assert_eq!(crate::slots::open(&s).unwrap().name(), "paths");
        let s = with("[slots]\nbackend = \"paths\"\n").unwrap();
        assert_eq!(s.slot_backend, "paths");
        assert_eq!(s.slots.len(), 2);
        // A name no backend has: refused where backends are opened, naming
        // the key and the names there are.
        let s = with("[slots]\nbackend = \"ostree\"\n").unwrap();
        let e = crate::slots::open(&s).err().unwrap().to_string();
        assert!(
            e.contains("slots.backend = \"ostree\"") && e.contains("[\"paths\"]"),
            "{e}"
        );
        // Not a name, or a group called `backend`.
        let e = with("[slots]\nbackend = 3\n").unwrap_err().to_string();
        assert!(
            e.contains("backend = 3") && e.contains("a slot group's table"),
            "{e}"
        );
        let e = with("[slots.backend.targets]\nrootfs = \"/dev/vda4\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("may not be called \"backend\""), "{e}");
        // A group given as a string.
        let e = with("[slots]\nC = \"/dev/vda5\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("slots.C"), "{e}");
    }

    #[test]
    fn daemon_days_and_channel_name() {
        let d = tempfile::tempdir().unwrap();
        let with = |extra: &str| {
            let main = write(d.path(), "config.toml", &format!("{BASE}{extra}"));
            load(Some(&main))
        };
        let s = with("[daemon]\nchannel = \"https://u.example/gw/stable.json?token=x\"\nstrategy = \"window\"\n[daemon.window]\ndays = [\"tues\", \"Thursday\", \"fri\"]\nstart = \"02:00\"\nend = \"03:00\"\n").unwrap();
        assert_eq!(s.daemon.channel_name.as_deref(), Some("stable"));
        let w = s.daemon.window.unwrap();
        assert_eq!(w.days, [false, true, false, true, true, false, false]);
        for bad in ["mon-fri", "monkey", "mo"] {
            let err = with(&format!("[daemon]\nstrategy = \"window\"\n[daemon.window]\ndays = [\"{bad}\"]\nstart = \"02:00\"\nend = \"03:00\"\n")).unwrap_err();
            assert!(err.to_string().contains("is not a day"), "{bad}: {err}");
        }
        let err = with("[daemon]\nstrategy = \"window\"\n").unwrap_err();
        assert!(err.to_string().contains("[daemon.window]"), "{err}");
    }

    #[test]
    fn fragments_override_key_by_key() {
        let d = tempfile::tempdir().unwrap();
        let main = write(d.path(), "config.toml", BASE);
        write(d.path(), "config.d/10-http.toml", "[http]\nretries = 2\n");
        write(
            d.path(),
            "config.d/20-slot.toml",
            "[slots.B.targets]\nkernel = \"/boot/B/vmlinuz\"\n",
        );
        let s = load(Some(&main)).unwrap();
        assert_eq!(s.http.retries, 2);
        assert_eq!(
            s.http.stall_timeout,
            Duration::from_secs(http::DEFAULT_STALL_TIMEOUT_SECS)
        );
        let b = s.group("B").unwrap();
        assert_eq!(b.targets.len(), 2, "fragment adds, does not replace: {b:?}");
        assert_eq!(s.files.len(), 3);
    }

    #[test]
    fn errors_name_file_and_key() {
        let d = tempfile::tempdir().unwrap();
        let main = write(d.path(), "config.toml", BASE);
        let frag = write(d.path(), "config.d/bad.toml", "[http]\nretrys = 2\n");
        let e = load(Some(&main)).unwrap_err().to_string();
        assert!(
            e.contains(&frag.display().to_string()) && e.contains("retrys"),
            "{e}"
        );
        std::fs::remove_file(&frag).unwrap();
        write(d.path(), "config.d/bad.toml", "[http]\nretries = \"two\"\n");
        let e = load(Some(&main)).unwrap_err().to_string();
        assert!(e.contains("bad.toml") && e.contains("invalid type"), "{e}");
    }

    #[test]
    fn refuses_shared_targets_and_missing_keys() {
        let d = tempfile::tempdir().unwrap();
        let main = write(
            d.path(),
            "config.toml",
            &BASE.replace("/dev/vda3", "/dev/vda2"),
        );
        let e = load(Some(&main)).unwrap_err().to_string();
        assert!(e.contains("are the same path /dev/vda2"), "{e}");
        let main = write(
            d.path(),
            "config.toml",
            &BASE.replace("compatible = \"acme-gw\"", ""),
        );
        let e = load(Some(&main)).unwrap_err().to_string();
        assert!(e.contains("`compatible` is not set"), "{e}");
        let main = write(
            d.path(),
            "config.toml",
            &BASE.replace("\"file\"", "\"lilo\""),
        );
        let e = load(Some(&main)).unwrap_err().to_string();
        assert!(
            e.contains("lilo") && e.contains("grub") && e.contains("config.toml"),
            "{e}"
        );
    }

    #[test]
    fn enums_are_parsed_with_the_file_and_line() {
        let d = tempfile::tempdir().unwrap();
        let main = write(d.path(), "config.toml", BASE);
        let frag = write(
            d.path(),
            "config.d/20-kexec.toml",
            "# a comment\n[kexec]\npolicy = \"sometimes\"\n",
        );
        let e = load(Some(&main)).unwrap_err().to_string();
        assert!(
            e.contains(&format!("{}:3:", frag.display()))
                && e.contains("sometimes")
                && e.contains("prefer"),
            "{e}"
        );
        std::fs::write(&frag, "[daemon]\nstrategy = \"eventually\"\n").unwrap();
        let e = load(Some(&main)).unwrap_err().to_string();
        assert!(
            e.contains("eventually") && e.contains("download-only"),
            "{e}"
        );
        std::fs::write(
            &frag,
            "[kexec]\npolicy = \"never\"\nwatchdog_unsafe = \"warn\"\n",
        )
        .unwrap();
        let s = load(Some(&main)).unwrap();
        assert_eq!(s.kexec.policy, KexecPolicy::Never);
        assert_eq!(s.kexec.watchdog_unsafe, WatchdogUnsafe::Warn);
    }

    /// The per-class fragments the package ships as examples load as
    /// written and mean what their comments say.
    #[test]
    fn the_shipped_kexec_class_fragments_load() {
        let d = tempfile::tempdir().unwrap();
        let main = write(d.path(), "config.toml", BASE);
        for (name, text, policy) in [
            (
                "50-kexec-never.toml",
                include_str!("../../../packaging/config/examples/50-kexec-never.toml"),
                KexecPolicy::Never,
            ),
            (
                "50-kexec-require.toml",
                include_str!("../../../packaging/config/examples/50-kexec-require.toml"),
                KexecPolicy::Require,
            ),
        ] {
            let frag = write(d.path(), &format!("config.d/{name}"), text);
            let s = load(Some(&main)).unwrap();
            assert_eq!(s.kexec.policy, policy, "{name}");
            if policy == KexecPolicy::Require {
                assert_eq!(
                    s.kexec.watchdog.as_deref(),
                    Some(Path::new("/dev/watchdog"))
                );
                assert_eq!(s.kexec.watchdog_unsafe, WatchdogUnsafe::Refuse);
            }
            std::fs::remove_file(frag).unwrap();
        }
    }

    #[test]
    fn bootloader_tables_take_only_their_backends_keys() {
        let d = tempfile::tempdir().unwrap();
        let main = write(d.path(), "config.toml", BASE);
        // A fragment that changes the path only keeps the backend.
        let frag = write(
            d.path(),
            "config.d/30-boot.toml",
            "[bootloader]\npath = \"/boot/other.env\"\n",
        );
        let s = load(Some(&main)).unwrap();
        assert_eq!(
            s.bootloader,
            BootloaderConfig::File(FileBackend {
                path: "/boot/other.env".into()
            })
        );
        // A U-Boot key on the file backend is refused, naming the fragment.
        std::fs::write(&frag, "[bootloader]\nredundant_offset = 8192\n").unwrap();
        let e = load(Some(&main)).unwrap_err().to_string();
        assert!(
            e.contains("30-boot.toml") && e.contains("redundant_offset"),
            "{e}"
        );
        // The U-Boot backend with a redundant copy.
        std::fs::write(
            &frag,
            "[bootloader]\nbackend = \"uboot\"\npath = \"/dev/mmcblk0\"\noffset = 0x3f8000\nredundant_offset = 0x3fc000\nsize = 0x4000\n",
        )
        .unwrap();
        let s = load(Some(&main)).unwrap();
        assert_eq!(
            s.bootloader,
            BootloaderConfig::Uboot(UbootBackend {
                copies: vec![
                    ("/dev/mmcblk0".into(), 0x3f8000),
                    ("/dev/mmcblk0".into(), 0x3fc000)
                ],
                size: 0x4000,
            })
        );
        std::fs::write(
            &frag,
            "[bootloader]\nbackend = \"uboot\"\npath = \"/dev/mmcblk0\"\n",
        )
        .unwrap();
        let e = load(Some(&main)).unwrap_err().to_string();
        assert!(e.contains("`bootloader.size` is not set"), "{e}");
        // Another backend replaces the table: the file backend's `path` is
        // not carried into systemd-boot's keys.
        std::fs::write(
            &frag,
            "[bootloader]\nbackend = \"systemd-boot\"\nesp = \"/efi\"\n",
        )
        .unwrap();
        let s = load(Some(&main)).unwrap();
        assert_eq!(
            s.bootloader,
            BootloaderConfig::SdBoot(SdBootBackend {
                esp: "/efi".into(),
                efivarfs: bootloader::EFIVARFS.into(),
                entry_prefix: "updater-".into(),
            })
        );
    }

    #[test]
    fn range_errors_name_their_own_key() {
        let d = tempfile::tempdir().unwrap();
        let main = write(d.path(), "config.toml", BASE);
        for (table, key) in [
            ("health", "deadline_secs"),
            ("trial", "deadline_secs"),
            ("http", "stall_timeout_secs"),
            ("kexec", "watchdog_timeout_secs"),
            ("daemon", "interval_secs"),
        ] {
            let frag = write(
                d.path(),
                "config.d/40-zero.toml",
                &format!("[{table}]\n{key} = 0\n"),
            );
            let e = load(Some(&main)).unwrap_err().to_string();
            assert!(
                e.contains(&format!(" {table}.{key} must be positive")),
                "{table}.{key}: {e}"
            );
            std::fs::remove_file(frag).unwrap();
        }
    }
}
