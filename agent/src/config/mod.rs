//! Configuration: TOML fragments, merged in order, validated once into
//! [`Settings`].
//!
//! Search order (later wins, key by key):
//! `/usr/lib/updater/config.toml`, `/usr/lib/updater/config.d/*.toml`,
//! `/etc/updater/config.toml`, `/etc/updater/config.d/*.toml`.
//! `--config PATH` or `UPDATER_CONFIG=PATH` replaces the search with PATH and
//! `PATH`'s sibling `config.d/*.toml`.
//!
//! Each fragment is first parsed alone (so an unknown key or a wrong type is
//! reported with the file it is in), then the fragments are merged as TOML
//! tables and the result is validated.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use serde::Deserialize;

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
    /// Files the settings came from, in the order read.
    pub files: Vec<PathBuf>,
}

/// One slot group (A, B, ...) and the target of each image class.
#[derive(Debug, Clone)]
pub struct SlotGroupConfig {
    /// The group's name, as on the kernel command line (`updater.slot=NAME`).
    pub name: String,
    /// Image class -> target path (a block device or a file).
    pub targets: BTreeMap<String, PathBuf>,
    /// The root device the group's kernel mounts (for `root=`; also used to
    /// recognise the booted group when the command line has no `updater.slot=`).
    pub root_device: Option<String>,
}

/// Which bootloader backend, and its settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootloaderConfig {
    /// The agent's own env file.
    File {
        /// The env file.
        path: PathBuf,
    },
    /// A GRUB environment block (grubenv).
    Grub {
        /// The grubenv file.
        path: PathBuf,
    },
    /// A U-Boot environment (as fw_env.config describes it).
    Uboot {
        /// One copy, or two for a redundant environment: (file or device, offset).
        copies: Vec<(PathBuf, u64)>,
        /// Size of each copy in bytes.
        size: usize,
    },
}

/// HTTP behaviour.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// TCP+TLS connect timeout.
    pub connect_timeout: Duration,
    /// Longest wait for any progress (response headers or body bytes).
    pub stall_timeout: Duration,
    /// Retries after a failed attempt (per request, reset by progress).
    pub retries: u32,
    /// Total time an install may spend retrying.
    pub retry_budget: Duration,
    /// First backoff delay; doubles each retry, with jitter.
    pub backoff_initial: Duration,
    /// Largest backoff delay.
    pub backoff_max: Duration,
    /// Extra CA bundle (PEM) trusted besides the built-in roots.
    pub ca_bundle: Option<PathBuf>,
    /// Client certificate and key (PEM, one file) for mutual TLS.
    pub client_identity: Option<PathBuf>,
}

impl HttpSettings {
    /// The defaults (what an empty [http] table gives).
    pub fn defaults() -> HttpSettings {
        HttpSettings {
            connect_timeout: Duration::from_secs(DEFAULT_CONNECT_TIMEOUT_SECS),
            stall_timeout: Duration::from_secs(DEFAULT_STALL_TIMEOUT_SECS),
            retries: DEFAULT_RETRIES,
            retry_budget: Duration::from_secs(DEFAULT_RETRY_BUDGET_SECS),
            backoff_initial: Duration::from_millis(DEFAULT_BACKOFF_INITIAL_MS),
            backoff_max: Duration::from_millis(DEFAULT_BACKOFF_MAX_MS),
            ca_bundle: None,
            client_identity: None,
        }
    }
}

/// Default first retry delay.
pub const DEFAULT_BACKOFF_INITIAL_MS: u64 = 500;
/// Default largest retry delay.
pub const DEFAULT_BACKOFF_MAX_MS: u64 = 30_000;

/// Install behaviour.
#[derive(Debug, Clone)]
pub struct InstallSettings {
    /// Checkpoint (fsync the slot, record progress) at least this often...
    pub checkpoint_interval: Duration,
    /// ...or after this many bytes, whichever comes first. Fewer checkpoints
    /// mean less flash wear; more mean less to redo after a power cut.
    pub checkpoint_bytes: u64,
}

/// Trial boots.
#[derive(Debug, Clone)]
pub struct TrialSettings {
    /// How long a trial may take to confirm (recorded as its deadline).
    pub deadline: Duration,
    /// Command run to restart instead of the built-in reboot (the restart
    /// kind, `reboot` or `kexec`, is appended). For tests and special boards.
    pub reboot_command: Option<Vec<String>>,
}

/// Health checks run by `updater health` during a trial.
#[derive(Debug, Clone)]
pub struct HealthSettings {
    /// Folder of executable checks, run in name order.
    pub dir: PathBuf,
    /// Time limit of each check.
    pub check_timeout: Duration,
    /// Time limit of all checks together.
    pub deadline: Duration,
    /// systemd units that must be active.
    pub required_units: Vec<String>,
    /// Reboot back to the fallback when a check fails.
    pub reboot_on_failure: bool,
}

/// Whether a device boots trials by kexec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KexecPolicy {
    /// kexec when asked; when the kernel refuses, fall back to a reboot trial.
    Prefer,
    /// kexec or nothing: a refusal fails the command (exit 6).
    Require,
    /// Never kexec (hardware that does not survive it): always reboot.
    Never,
}

/// What to do when the watchdog will not survive a kexec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchdogUnsafe {
    /// Do not kexec (prefer: reboot trial instead; require: fail).
    Refuse,
    /// kexec anyway, with a warning.
    Warn,
}

/// kexec trials.
#[derive(Debug, Clone)]
pub struct KexecSettings {
    /// The policy.
    pub policy: KexecPolicy,
    /// The hardware watchdog to arm before the jump.
    pub watchdog: Option<PathBuf>,
    /// Its timeout.
    pub watchdog_timeout: Duration,
    /// What to do when it will not survive the kexec.
    pub watchdog_unsafe: WatchdogUnsafe,
    /// The sysfs root (tests point it elsewhere).
    pub sys_root: PathBuf,
}

/// The device's identity.
#[derive(Debug, Clone)]
pub struct DeviceSettings {
    /// A fixed id (overrides `id_file`).
    pub id: Option<String>,
    /// The file holding the id (first line; default `/etc/machine-id`).
    pub id_file: PathBuf,
}

impl DeviceSettings {
    /// The device id: `id` as written, else derived from the first line of
    /// `id_file` as the first 32 hex digits of
    /// sha256("updater-device-id-v1\n" followed by the line). The machine id
    /// itself is confidential (systemd's rule: it must not leave the
    /// machine); the derived id is stable, specific to this agent, and is
    /// what the rollout hashes and the reports carry.
    pub fn id(&self) -> Result<String> {
        if let Some(id) = &self.id {
            return Ok(id.clone());
        }
        let text = std::fs::read_to_string(&self.id_file).map_err(|e| {
            usage(format!(
                "reading the device id from {}: {e}; set device.id or device.id_file in the configuration",
                self.id_file.display()
            ))
        })?;
        let id = text.lines().next().unwrap_or("").trim().to_string();
        if id.is_empty() || id == "uninitialized" {
            return Err(usage(format!(
                "{} is empty; it must hold the device id (systemd writes /etc/machine-id at first boot)",
                self.id_file.display()
            )));
        }
        use sha2::Digest;
        let h = sha2::Sha256::digest(format!("updater-device-id-v1\n{id}").as_bytes());
        Ok(hex::encode(&h[..16]))
    }
}

/// When the daemon applies a release it has found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Install into the inactive slot and wait for `updater activate`.
    DownloadOnly,
    /// Install and boot it as a trial at once.
    Immediate,
    /// Install at once; boot it only inside the maintenance window.
    Window,
}

/// A weekly maintenance window in a time zone.
#[derive(Debug, Clone, PartialEq)]
pub struct MaintenanceWindow {
    /// Allowed days (Monday first); the day the window opens.
    pub days: [bool; 7],
    /// Opening time of day (local).
    pub start: chrono::NaiveTime,
    /// Closing time of day (local); at or before `start` means the next day.
    pub end: chrono::NaiveTime,
    /// The time zone the times are in.
    pub timezone: chrono_tz::Tz,
}

/// `updater daemon` settings.
#[derive(Debug, Clone)]
pub struct DaemonSettings {
    /// The channel document's URL (http, https, file URL or path).
    pub channel: Option<String>,
    /// The channel name the document must carry (default: the URL's file
    /// name without extension).
    pub channel_name: Option<String>,
    /// The longest channel validity accepted.
    pub max_channel_validity: chrono::Duration,
    /// Poll interval.
    pub interval: Duration,
    /// Up to this much random delay is added to every poll.
    pub jitter: Duration,
    /// When to apply.
    pub strategy: Strategy,
    /// The maintenance window (required by the `window` strategy).
    pub window: Option<MaintenanceWindow>,
    /// First delay after a failed poll; doubles each failure.
    pub retry_initial: Duration,
    /// Longest delay after failures.
    pub retry_max: Duration,
}

/// Status reports.
#[derive(Debug, Clone)]
pub struct ReportSettings {
    /// Where events are POSTed; none: reporting is off.
    pub url: Option<String>,
    /// Events kept in the outbox at most (the oldest are dropped beyond).
    pub max_events: usize,
}

/// Default poll interval of the daemon.
pub const DEFAULT_POLL_INTERVAL_SECS: u64 = 3600;

/// Default watchdog timeout for a kexec trial.
pub const DEFAULT_WATCHDOG_TIMEOUT_SECS: u64 = 60;

/// Default trial deadline.
pub const DEFAULT_TRIAL_DEADLINE_SECS: u64 = 600;
/// Default time limit of one health check.
pub const DEFAULT_CHECK_TIMEOUT_SECS: u64 = 60;
/// Default time limit of all health checks.
pub const DEFAULT_HEALTH_DEADLINE_SECS: u64 = 300;

/// Default checkpoint interval.
pub const DEFAULT_CHECKPOINT_INTERVAL_MS: u64 = 1000;
/// Default checkpoint byte interval.
pub const DEFAULT_CHECKPOINT_BYTES: u64 = 64 * 1024 * 1024;

/// Default connect timeout.
pub const DEFAULT_CONNECT_TIMEOUT_SECS: u64 = 15;
/// Default stall timeout.
pub const DEFAULT_STALL_TIMEOUT_SECS: u64 = 30;
/// Default retries per request.
pub const DEFAULT_RETRIES: u32 = 8;
/// Default retry budget for one install.
pub const DEFAULT_RETRY_BUDGET_SECS: u64 = 900;

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    compatible: Option<String>,
    state_dir: Option<PathBuf>,
    keyring: Option<PathBuf>,
    source: Option<String>,
    cmdline_path: Option<PathBuf>,
    bootloader: Option<RawBootloader>,
    http: Option<RawHttp>,
    install: Option<RawInstall>,
    trial: Option<RawTrial>,
    health: Option<RawHealth>,
    kexec: Option<RawKexec>,
    slots: Option<BTreeMap<String, RawSlot>>,
    device: Option<RawDevice>,
    daemon: Option<RawDaemon>,
    report: Option<RawReport>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDevice {
    id: Option<String>,
    id_file: Option<PathBuf>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDaemon {
    channel: Option<String>,
    channel_name: Option<String>,
    max_channel_validity_days: Option<u32>,
    interval_secs: Option<u64>,
    jitter_secs: Option<u64>,
    strategy: Option<String>,
    retry_initial_secs: Option<u64>,
    retry_max_secs: Option<u64>,
    window: Option<RawWindow>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWindow {
    days: Option<Vec<String>>,
    start: Option<String>,
    end: Option<String>,
    timezone: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReport {
    url: Option<String>,
    max_events: Option<usize>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBootloader {
    backend: Option<String>,
    path: Option<PathBuf>,
    offset: Option<u64>,
    size: Option<usize>,
    redundant_path: Option<PathBuf>,
    redundant_offset: Option<u64>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    connect_timeout_secs: Option<u64>,
    stall_timeout_secs: Option<u64>,
    retries: Option<u32>,
    retry_budget_secs: Option<u64>,
    backoff_initial_ms: Option<u64>,
    backoff_max_ms: Option<u64>,
    ca_bundle: Option<PathBuf>,
    client_identity: Option<PathBuf>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKexec {
    policy: Option<String>,
    watchdog: Option<PathBuf>,
    watchdog_timeout_secs: Option<u64>,
    watchdog_unsafe: Option<String>,
    sys_root: Option<PathBuf>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrial {
    deadline_secs: Option<u64>,
    reboot_command: Option<Vec<String>>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealth {
    dir: Option<PathBuf>,
    check_timeout_secs: Option<u64>,
    deadline_secs: Option<u64>,
    required_units: Option<Vec<String>>,
    reboot_on_failure: Option<bool>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInstall {
    checkpoint_interval_ms: Option<u64>,
    checkpoint_bytes: Option<u64>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSlot {
    root_device: Option<String>,
    targets: Option<BTreeMap<String, PathBuf>>,
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
    for f in &files {
        let text = std::fs::read_to_string(f)
            .map_err(|e| usage(format!("reading config {}: {e}", f.display())))?;
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            usage(format!("{}: {}", f.display(), one_line(&e.to_string())))
        })?;
        // Check this fragment alone, so errors name the file they are in.
        RawConfig::deserialize(toml::Value::Table(table.clone()))
            .map_err(|e| usage(format!("{}: {}", f.display(), one_line(&e.to_string()))))?;
        merge(&mut merged, table);
    }
    let raw = RawConfig::deserialize(toml::Value::Table(merged)).map_err(|e| {
        usage(format!(
            "merged configuration: {}",
            one_line(&e.to_string())
        ))
    })?;
    validate(raw, files)
}

/// Merge `over` into `base`: tables merge key by key, anything else replaces.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn validate(raw: RawConfig, files: Vec<PathBuf>) -> Result<Settings> {
    let origin = files
        .iter()
        .map(|f| f.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let missing = |key: &str| usage(format!("configuration ({origin}): `{key}` is not set"));
    let compatible = raw.compatible.ok_or_else(|| missing("compatible"))?;
    if compatible.trim().is_empty() {
        return Err(usage(format!(
            "configuration ({origin}): `compatible` is empty"
        )));
    }
    let state_dir = raw.state_dir.ok_or_else(|| missing("state_dir"))?;
    let keyring = raw.keyring.ok_or_else(|| missing("keyring"))?;
    let bl = raw
        .bootloader
        .ok_or_else(|| missing("bootloader.backend"))?;
    let bootloader = match bl.backend.as_deref() {
        Some("file") => BootloaderConfig::File {
            path: bl.path.ok_or_else(|| missing("bootloader.path"))?,
        },
        Some("grub") => BootloaderConfig::Grub {
            path: bl.path.ok_or_else(|| missing("bootloader.path"))?,
        },
        Some("uboot") => {
            let path = bl.path.ok_or_else(|| missing("bootloader.path"))?;
            let size = bl.size.ok_or_else(|| missing("bootloader.size"))?;
            if size < 16 {
                return Err(usage(format!("configuration ({origin}): bootloader.size = {size} is too small for a U-Boot env")));
            }
            let mut copies = vec![(path.clone(), bl.offset.unwrap_or(0))];
            match (bl.redundant_path, bl.redundant_offset) {
                (None, None) => {}
                (p, o) => copies.push((p.unwrap_or(path), o.unwrap_or(0))),
            }
            if copies.len() == 2 && copies[0] == copies[1] {
                return Err(usage(format!("configuration ({origin}): the two U-Boot env copies are at the same place")));
            }
            BootloaderConfig::Uboot { copies, size }
        }
        Some(other) => {
            return Err(usage(format!(
                "configuration ({origin}): bootloader.backend = {other:?} is not one of \"grub\", \"uboot\", \"file\""
            )))
        }
        None => return Err(missing("bootloader.backend")),
    };
    let raw_slots = raw.slots.unwrap_or_default();
    if raw_slots.len() < 2 {
        return Err(usage(format!(
            "configuration ({origin}): at least two slot groups are needed ([slots.A] and [slots.B]), found {}",
            raw_slots.len()
        )));
    }
    let mut slots = Vec::new();
    let mut seen_targets: BTreeMap<PathBuf, String> = BTreeMap::new();
    for (name, rs) in raw_slots {
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(usage(format!(
                "configuration ({origin}): slot group name {name:?} must be letters, digits, '_' or '-'"
            )));
        }
        let targets = rs.targets.unwrap_or_default();
        if targets.is_empty() {
            return Err(usage(format!(
                "configuration ({origin}): slots.{name}.targets is empty; map image classes to targets, e.g. rootfs = \"/dev/mmcblk0p2\""
            )));
        }
        for (class, path) in &targets {
            updater_format::manifest::types::ClassName::new(class).map_err(|e| {
                usage(format!(
                    "configuration ({origin}): slots.{name}.targets: {e}"
                ))
            })?;
            if !path.is_absolute() {
                return Err(usage(format!(
                    "configuration ({origin}): slots.{name}.targets.{class} = {} is not an absolute path",
                    path.display()
                )));
            }
            // Two groups sharing a target would let an install into the
            // inactive group overwrite the booted one.
            if let Some(other) = seen_targets.insert(path.clone(), format!("{name}.{class}")) {
                return Err(usage(format!(
                    "configuration ({origin}): slots.{name}.targets.{class} and slots.{other} are the same path {}",
                    path.display()
                )));
            }
        }
        slots.push(SlotGroupConfig {
            name,
            targets,
            root_device: rs.root_device,
        });
    }
    let h = raw.http.unwrap_or_default();
    let secs = |v: Option<u64>, d: u64, key: &str| -> Result<Duration> {
        let v = v.unwrap_or(d);
        if v == 0 {
            return Err(usage(format!(
                "configuration ({origin}): http.{key} must be positive"
            )));
        }
        Ok(Duration::from_secs(v))
    };
    let http = HttpSettings {
        connect_timeout: secs(
            h.connect_timeout_secs,
            DEFAULT_CONNECT_TIMEOUT_SECS,
            "connect_timeout_secs",
        )?,
        stall_timeout: secs(
            h.stall_timeout_secs,
            DEFAULT_STALL_TIMEOUT_SECS,
            "stall_timeout_secs",
        )?,
        retries: h.retries.unwrap_or(DEFAULT_RETRIES),
        retry_budget: secs(
            h.retry_budget_secs,
            DEFAULT_RETRY_BUDGET_SECS,
            "retry_budget_secs",
        )?,
        backoff_initial: Duration::from_millis(
            h.backoff_initial_ms.unwrap_or(DEFAULT_BACKOFF_INITIAL_MS),
        ),
        backoff_max: Duration::from_millis(h.backoff_max_ms.unwrap_or(DEFAULT_BACKOFF_MAX_MS)),
        ca_bundle: h.ca_bundle,
        client_identity: h.client_identity,
    };
    let i = raw.install.unwrap_or_default();
    let install = InstallSettings {
        checkpoint_interval: Duration::from_millis(
            i.checkpoint_interval_ms
                .unwrap_or(DEFAULT_CHECKPOINT_INTERVAL_MS)
                .max(1),
        ),
        checkpoint_bytes: i
            .checkpoint_bytes
            .unwrap_or(DEFAULT_CHECKPOINT_BYTES)
            .max(1),
    };
    let t = raw.trial.unwrap_or_default();
    if t.reboot_command.as_ref().is_some_and(|c| c.is_empty()) {
        return Err(usage(format!(
            "configuration ({origin}): trial.reboot_command is empty"
        )));
    }
    let trial = TrialSettings {
        deadline: secs(
            t.deadline_secs,
            DEFAULT_TRIAL_DEADLINE_SECS,
            "trial.deadline_secs",
        )?,
        reboot_command: t.reboot_command,
    };
    let hc = raw.health.unwrap_or_default();
    let health = HealthSettings {
        dir: hc
            .dir
            .unwrap_or_else(|| PathBuf::from("/etc/updater/health.d")),
        check_timeout: secs(
            hc.check_timeout_secs,
            DEFAULT_CHECK_TIMEOUT_SECS,
            "health.check_timeout_secs",
        )?,
        deadline: secs(
            hc.deadline_secs,
            DEFAULT_HEALTH_DEADLINE_SECS,
            "health.deadline_secs",
        )?,
        required_units: hc.required_units.unwrap_or_default(),
        reboot_on_failure: hc.reboot_on_failure.unwrap_or(true),
    };
    let k = raw.kexec.unwrap_or_default();
    let kexec = KexecSettings {
        policy: match k.policy.as_deref() {
            None | Some("prefer") => KexecPolicy::Prefer,
            Some("require") => KexecPolicy::Require,
            Some("never") => KexecPolicy::Never,
            Some(o) => {
                return Err(usage(format!(
                    "configuration ({origin}): kexec.policy = {o:?} is not one of \"prefer\", \"require\", \"never\""
                )))
            }
        },
        watchdog: k.watchdog,
        watchdog_timeout: secs(k.watchdog_timeout_secs, DEFAULT_WATCHDOG_TIMEOUT_SECS, "kexec.watchdog_timeout_secs")?,
        watchdog_unsafe: match k.watchdog_unsafe.as_deref() {
            None | Some("refuse") => WatchdogUnsafe::Refuse,
            Some("warn") => WatchdogUnsafe::Warn,
            Some(o) => {
                return Err(usage(format!(
                    "configuration ({origin}): kexec.watchdog_unsafe = {o:?} is not \"refuse\" or \"warn\""
                )))
            }
        },
        sys_root: k.sys_root.unwrap_or_else(|| PathBuf::from("/sys")),
    };
    let dv = raw.device.unwrap_or_default();
    if dv.id.as_ref().is_some_and(|i| i.trim().is_empty()) {
        return Err(usage(format!(
            "configuration ({origin}): device.id is empty"
        )));
    }
    let device = DeviceSettings {
        id: dv.id,
        id_file: dv
            .id_file
            .unwrap_or_else(|| PathBuf::from("/etc/machine-id")),
    };
    let daemon = daemon_settings(raw.daemon.unwrap_or_default(), &origin)?;
    let rp = raw.report.unwrap_or_default();
    if let Some(u) = &rp.url {
        if !(u.starts_with("http://") || u.starts_with("https://")) {
            return Err(usage(format!(
                "configuration ({origin}): report.url = {u:?} is not an http or https URL"
            )));
        }
    }
    let report = ReportSettings {
        url: rp.url,
        max_events: rp.max_events.unwrap_or(10_000).max(1),
    };
    Ok(Settings {
        compatible,
        device,
        daemon,
        report,
        kexec,
        install,
        trial,
        health,
        state_dir,
        keyring,
        source: raw.source,
        cmdline_path: raw
            .cmdline_path
            .unwrap_or_else(|| PathBuf::from("/proc/cmdline")),
        bootloader,
        slots,
        http,
        files,
    })
}

fn daemon_settings(d: RawDaemon, origin: &str) -> Result<DaemonSettings> {
    let bad =
        |key: &str, why: String| usage(format!("configuration ({origin}): daemon.{key}: {why}"));
    let strategy = match d.strategy.as_deref() {
        None | Some("immediate") => Strategy::Immediate,
        Some("download-only") => Strategy::DownloadOnly,
        Some("window") => Strategy::Window,
        Some(o) => {
            return Err(bad(
                "strategy",
                format!("{o:?} is not one of \"immediate\", \"download-only\", \"window\""),
            ))
        }
    };
    let window = match d.window {
        None => None,
        Some(w) => {
            let time = |key: &str, v: Option<String>| -> Result<chrono::NaiveTime> {
                let v =
                    v.ok_or_else(|| bad(&format!("window.{key}"), "is not set (HH:MM)".into()))?;
                chrono::NaiveTime::parse_from_str(&v, "%H:%M")
                    .map_err(|_| bad(&format!("window.{key}"), format!("{v:?} is not HH:MM")))
            };
            let start = time("start", w.start)?;
            let end = time("end", w.end)?;
            let tzname = w.timezone.unwrap_or_else(|| "UTC".into());
            let timezone: chrono_tz::Tz = tzname.parse().map_err(|_| {
                bad(
                    "window.timezone",
                    format!("{tzname:?} is not an IANA time zone name such as \"Europe/Berlin\""),
                )
            })?;
            let mut days = [w.days.is_none(); 7];
            for day in w.days.unwrap_or_default() {
                const NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
                const LONG: [&str; 7] = [
                    "monday",
                    "tuesday",
                    "wednesday",
                    "thursday",
                    "friday",
                    "saturday",
                    "sunday",
                ];
                // Any prefix of at least three letters: mon, tues, thurs, friday.
                let lower = day.to_ascii_lowercase();
                let i = NAMES
                    .iter()
                    .zip(LONG)
                    .position(|(n, l)| lower.starts_with(n) && l.starts_with(&lower))
                    .ok_or_else(|| {
                        bad("window.days", format!("{day:?} is not a day: use mon, tue, wed, thu, fri, sat, sun (or the full names)"))
                    })?;
                days[i] = true;
            }
            if !days.contains(&true) {
                return Err(bad(
                    "window.days",
                    "is empty: the window would never open".into(),
                ));
            }
            Some(MaintenanceWindow {
                days,
                start,
                end,
                timezone,
            })
        }
    };
    if strategy == Strategy::Window && window.is_none() {
        return Err(bad(
            "strategy",
            "\"window\" needs a [daemon.window] table (days, start, end, timezone)".into(),
        ));
    }
    let secs = |v: Option<u64>, default: u64, key: &str| -> Result<Duration> {
        match v.unwrap_or(default) {
            0 => Err(bad(key, "must be positive".into())),
            n => Ok(Duration::from_secs(n)),
        }
    };
    let interval = secs(d.interval_secs, DEFAULT_POLL_INTERVAL_SECS, "interval_secs")?;
    let channel_name = match d.channel_name {
        Some(n) => Some(n),
        None => d.channel.as_deref().and_then(|u| {
            let path = u.split(['?', '#']).next().unwrap_or(u);
            let last = path.trim_end_matches('/').rsplit('/').next()?;
            let stem = last.strip_suffix(".json").unwrap_or(last);
            (!stem.is_empty()).then(|| stem.to_string())
        }),
    };
    let validity_days = d.max_channel_validity_days.unwrap_or(31);
    if validity_days == 0 {
        return Err(bad("max_channel_validity_days", "must be positive".into()));
    }
    Ok(DaemonSettings {
        channel: d.channel,
        channel_name,
        max_channel_validity: chrono::Duration::days(validity_days.into()),
        interval,
        // By default up to a tenth of the interval, so a fleet that booted
        // together does not poll together.
        jitter: Duration::from_secs(d.jitter_secs.unwrap_or(interval.as_secs() / 10)),
        strategy,
        window,
        retry_initial: secs(d.retry_initial_secs, 60, "retry_initial_secs")?,
        retry_max: secs(
            d.retry_max_secs,
            interval.as_secs().max(60),
            "retry_max_secs",
        )?,
    })
}

impl Settings {
    /// A slot group by name.
    pub fn group(&self, name: &str) -> Option<&SlotGroupConfig> {
        self.slots.iter().find(|g| g.name == name)
    }
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
        assert!(matches!(s.bootloader, BootloaderConfig::Grub { .. }));
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
            Duration::from_secs(DEFAULT_STALL_TIMEOUT_SECS)
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
        assert!(e.contains("\"lilo\""), "{e}");
    }
}
