//! A device session: what one command holds while it changes the device.
//!
//! Opened once per command (the daemon opens one per poll) and handed down:
//! the exclusive lock on the state folder, the booted group, the update
//! state, the bootloader backend and the slot backend, and the command's
//! clock. Flows take the session, so a test can hand them any bootloader
//! or slot backend ([`Session::open_with`]). The state changes only through
//! [`Session::transition`], which applies one checked transition and writes
//! the state durably.

use std::path::PathBuf;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use updater_format::keys::Keyring;
use updater_format::limits::Limit;
use updater_format::manifest::Policy;

use crate::bootloader::Bootloader;
use crate::clock::Clock;
use crate::config::Settings;
use crate::slots::SlotBackend;
use crate::state::intent::{self, Intent};
use crate::state::{Phase, StateStore, TransitionError, UpdateState};

/// One command's hold on the device.
pub struct Session<'a> {
    settings: &'a Settings,
    clock: Clock,
    store: StateStore,
    booted: String,
    state: UpdateState,
    boot: Box<dyn Bootloader + 'a>,
    slots: Box<dyn SlotBackend + 'a>,
    finished: Option<Intent>,
}

/// The word on a kexec trial's command line (only the agent's kexec puts
/// it there): the running kernel was started by the agent's kexec.
pub const KEXEC_MARK: &str = "updater.kexec=1";

/// Whether the kernel command line `cmdline` carries [`KEXEC_MARK`].
pub fn kexec_marked(cmdline: &str) -> bool {
    cmdline.split_whitespace().any(|w| w == KEXEC_MARK)
}

/// The kernel command line, as the slot backend reads it.
pub fn read_cmdline(settings: &Settings) -> Result<String> {
    std::fs::read_to_string(&settings.cmdline_path).with_context(|| {
        format!(
            "reading the kernel command line {}",
            settings.cmdline_path.display()
        )
    })
}

/// The booted group, without a session (`status`, `check`).
pub fn booted_group(settings: &Settings) -> Result<String> {
    booted_of(settings, &*crate::slots::open(settings)?, None)
}

/// The booted group: what the command line says (`updater.slot=`, else a
/// `root=` the slot backend knows); failing that, in a kernel the boot
/// loader started, the entry the boot loader says it selected (a Type #2
/// UKI's own `.cmdline` cannot name the slot: one UKI serves either). The
/// command line wins: after a kexec the boot loader's record still names
/// what the firmware started. `boot` is opened here when not given.
pub fn booted_of(
    settings: &Settings,
    slots: &dyn SlotBackend,
    boot: Option<&dyn Bootloader>,
) -> Result<String> {
    let cmdline = read_cmdline(settings)?;
    let err = match slots.booted(&cmdline) {
        Ok(g) => return Ok(g),
        Err(e) => e,
    };
    let names_slot = cmdline
        .split_whitespace()
        .any(|w| w.starts_with("updater.slot="));
    if names_slot || kexec_marked(&cmdline) {
        return Err(err);
    }
    let selected = match boot {
        Some(b) => b.selected(),
        None => crate::bootloader::open(settings).and_then(|b| b.selected()),
    };
    match selected {
        Ok(Some(g)) => Ok(g),
        _ => Err(err),
    }
}

/// Lock the state folder, after checking that nobody else can change it.
fn open_store(settings: &Settings) -> Result<StateStore> {
    let store = StateStore::open(&settings.state_dir)?;
    crate::util::perm::check_trusted(
        &settings.state_dir,
        "the state folder",
        settings.security.allow_insecure_permissions,
    )?;
    Ok(store)
}

/// The verification policy of this device at `now`, with its state and
/// booted group: what `apply` refuses, `verify` refuses too.
pub fn device_policy(
    settings: &Settings,
    state: &UpdateState,
    booted: &str,
    now: DateTime<Utc>,
) -> Policy {
    let g = state.group(booted);
    let mut installed = g.version().and_then(|v| semver::Version::parse(v).ok());
    let trust = crate::trust::read_trust_state(&settings.state_dir).unwrap_or_default();
    // A root's reset lowered the version floor while the release it found
    // running (a compromised key's) still runs.
    if let Some(f) = trust
        .version_floor
        .as_ref()
        .filter(|f| f.while_booted.as_deref() == g.digest())
    {
        if let Ok(v) = semver::Version::parse(&f.version) {
            installed = installed.map(|i| i.min(v));
        }
    }
    let root_step = crate::trust::current(settings)
        .ok()
        .flatten()
        .and_then(|(r, _)| r.root.max_security_step);
    Policy {
        now,
        compatible: Some(settings.compatible.clone()),
        installed_version: installed,
        min_security_version: state.highest_security_version(),
        agent_version: Some(crate::agent_version()),
        max_validity: Some(Limit {
            value: settings.install.max_release_validity,
            setting: "install.max_release_validity_days",
        }),
        max_security_step: match root_step {
            Some(step) => Some(Limit {
                value: step,
                setting: "the trusted root's max_security_step",
            }),
            None => settings.install.max_security_step.map(|value| Limit {
                value,
                setting: "install.max_security_step",
            }),
        },
    }
}

impl<'a> Session<'a> {
    /// Lock the state folder, find the booted group, read the state (a fresh
    /// one is written when there is none) and open the configured
    /// bootloader and slot backend.
    pub fn open(settings: &'a Settings, clock: Clock) -> Result<Session<'a>> {
        // The lock first: a backend's env may be rewritten in place by the
        // command that holds it.
        let store = open_store(settings)?;
        let boot = crate::bootloader::open(settings)?;
        let slots = crate::slots::open(settings)?;
        Self::with_parts(settings, clock, store, boot, slots)
    }

    /// The same with a given bootloader backend (tests, other backends).
    pub fn open_with(
        settings: &'a Settings,
        clock: Clock,
        boot: Box<dyn Bootloader + 'a>,
    ) -> Result<Session<'a>> {
        let store = open_store(settings)?;
        let slots = crate::slots::open(settings)?;
        Self::with_parts(settings, clock, store, boot, slots)
    }

    /// The same with given bootloader and slot backends: a backend that is
    /// not one of the configuration's (a test double) is registered here.
    pub fn open_with_backends(
        settings: &'a Settings,
        clock: Clock,
        boot: Box<dyn Bootloader + 'a>,
        slots: Box<dyn SlotBackend + 'a>,
    ) -> Result<Session<'a>> {
        let store = open_store(settings)?;
        Self::with_parts(settings, clock, store, boot, slots)
    }

    fn with_parts(
        settings: &'a Settings,
        clock: Clock,
        store: StateStore,
        boot: Box<dyn Bootloader + 'a>,
        slots: Box<dyn SlotBackend + 'a>,
    ) -> Result<Session<'a>> {
        let cmdline = read_cmdline(settings)?;
        let booted = booted_of(settings, &*slots, Some(&*boot))?;
        // What the bootloader booted must be the slot the command line
        // names; in a kernel the agent kexec'd, the bootloader's record
        // still names the slot the firmware started.
        if !kexec_marked(&cmdline) {
            boot.check_booted(&booted)?;
        }
        let clock = clock.with_floor(crate::state::floor::floor(&settings.state_dir)?);
        let state = match store.load()? {
            Some(s) => s,
            None => {
                let s = UpdateState::fresh(&slots.groups(), &booted);
                store.save(&s)?;
                s
            }
        };
        let mut session = Session {
            settings,
            clock,
            store,
            booted,
            state,
            boot,
            slots,
            finished: None,
        };
        session.remove_stale_temps();
        session.finished = session.finish_intent()?;
        Ok(session)
    }

    /// Remove what writes that a crash stopped left behind: the agent's own
    /// temporary files in its folders (the state folder, its releases and
    /// roots, the report outbox) and beside a boot env file it replaces.
    /// Under the state lock, and only files no live process owns.
    fn remove_stale_temps(&self) {
        let dir = &self.settings.state_dir;
        let mut places: Vec<(PathBuf, Option<String>)> = [
            dir.clone(),
            dir.join("releases"),
            dir.join(crate::trust::chain::CHAIN_DIR),
            dir.join(crate::report::OUTBOX_DIR),
        ]
        .into_iter()
        .map(|d| (d, None))
        .collect();
        if let Some(env) = self.settings.bootloader.env_file() {
            if let Some(name) = env.file_name().and_then(|n| n.to_str()) {
                places.push((
                    crate::util::fs::parent_dir(env).to_path_buf(),
                    Some(name.to_string()),
                ));
            }
        }
        let (mut files, mut bytes) = (0, 0);
        for (d, target) in &places {
            let (f, b) = crate::util::fs::remove_stale_temps(d, target.as_deref());
            files += f;
            bytes += b;
        }
        if files > 0 {
            tracing::warn!(
                "removed {files} temporary file(s), {bytes} bytes, left by writes a crash stopped"
            );
        }
    }

    /// Finish the intent a command recorded and did not finish (a crash, a
    /// power cut), before this session does anything else. Returns it.
    fn finish_intent(&mut self) -> Result<Option<Intent>> {
        let Some(i) = intent::read(&self.settings.state_dir)? else {
            return Ok(None);
        };
        tracing::warn!(
            "finishing what `updater {}` started at {} and did not finish: slot {} marked bad{}",
            i.by,
            i.started.to_rfc3339(),
            i.group,
            i.default_to
                .as_ref()
                .map(|d| format!(", slot {d} the default"))
                .unwrap_or_default()
        );
        self.run_intent(&i)?;
        Ok(Some(i))
    }

    /// The intent an earlier command left and this session finished, if any:
    /// run again, that command reports it instead of starting anew.
    pub fn finished_intent(&self) -> Option<&Intent> {
        self.finished.as_ref()
    }

    /// Mark `group` bad with `reason` for the command `by`, moving the
    /// bootloader's default to `default_to` first when given. The intent is
    /// recorded before the first step and removed after the last, so that
    /// whatever stops this, the next session finishes it the same way:
    ///   I0 intent recorded (which slot, why, where the default goes)
    ///   D0 state: the slot's release remembered as bad (with a default move)
    ///   D1 bootloader: `default_to` primary (with a default move)
    ///   B1 bootloader: the slot not bootable (also disarms its one-shot)
    ///   B2 state: the slot `bad` with the reason, its trial or install ended
    ///   I1 intent removed
    pub fn mark_bad(
        &mut self,
        by: &str,
        group: &str,
        reason: &str,
        default_to: Option<&str>,
    ) -> Result<()> {
        let i = Intent {
            version: 1,
            by: by.to_string(),
            group: group.to_string(),
            digest: self.state.group(group).digest().map(str::to_string),
            reason: reason.to_string(),
            default_to: default_to.map(str::to_string),
            started: self.now(),
        };
        intent::write(&self.settings.state_dir, &i)?;
        self.run_intent(&i)
    }

    /// The steps of an intent after I0, each one a no-op when a crash
    /// stopped the last run after it (the times recorded are the intent's,
    /// so a finished intent leaves the same state whenever it finishes).
    fn run_intent(&mut self, i: &Intent) -> Result<()> {
        let (g, reason, at) = (i.group.as_str(), i.reason.as_str(), i.started);
        let known = self.state.phase(g) != Phase::Empty;
        if let Some(to) = &i.default_to {
            if known {
                self.transition(|s, _| s.condemn(g, reason, at))?;
            }
            crate::failpoint!("default-bad-after-condemn");
            if self.boot.primary()?.as_deref() != Some(to.as_str()) {
                self.boot.set_primary(to)?;
            }
            crate::failpoint!("default-bad-after-primary");
        }
        self.boot.set_bootable(g, false)?;
        crate::failpoint!("bad-after-unbootable");
        if known {
            self.transition(|s, _| s.mark_bad(g, reason, at))?;
        }
        // Reported here, once the slot is bad whoever finishes the intent (a
        // crash before the intent is removed may report it twice: reports
        // are at least once, each with its own id).
        let mut d = crate::report::Details::of_group(&self.state, g);
        d.reason = Some(match &i.default_to {
            Some(to) => format!("{reason}; slot {to} is the default"),
            None => reason.to_string(),
        });
        crate::report::record(
            self.settings,
            crate::report::EventKind::RolledBack,
            d,
            self.now(),
        );
        intent::clear(&self.settings.state_dir)
    }

    /// The locked state folder (proof that this session holds the lock).
    pub fn store(&self) -> &StateStore {
        &self.store
    }

    /// The configuration.
    pub fn settings(&self) -> &'a Settings {
        self.settings
    }

    /// The command's clock.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// The time now, by the command's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The booted group.
    pub fn booted(&self) -> &str {
        &self.booted
    }

    /// The update state.
    pub fn state(&self) -> &UpdateState {
        &self.state
    }

    /// The bootloader backend.
    pub fn bootloader(&self) -> &dyn Bootloader {
        self.boot.as_ref()
    }

    /// The bootloader backend, to change it.
    pub fn bootloader_mut(&mut self) -> &mut dyn Bootloader {
        self.boot.as_mut()
    }

    /// The slot backend.
    pub fn slots(&self) -> &dyn SlotBackend {
        self.slots.as_ref()
    }

    /// The group an install would write.
    pub fn install_target(&self) -> Result<String> {
        self.slots.install_target(&self.booted)
    }

    /// The keyring the device trusts: its trusted root's, else the keyring
    /// folder's (refused when others can change it).
    pub fn keyring(&self) -> Result<Keyring> {
        crate::trust::keyring(self.settings)
    }

    /// Where the verified manifest of `group`'s release is kept.
    pub fn kept_manifest(&self, group: &str) -> PathBuf {
        crate::state::kept_manifest(&self.settings.state_dir, group)
    }

    /// The verification policy for this device now: its compatible string,
    /// the version it runs, the anti-rollback floor and this agent's version.
    pub fn policy(&self) -> Policy {
        device_policy(self.settings, &self.state, &self.booted, self.now())
    }

    /// Apply a trusted root's floor reset that is still pending (under the
    /// state lock this session holds): the security floor and the channel
    /// replay floors in the state, the version floor in `trust.json`.
    /// Returns the root version whose reset was applied.
    pub fn apply_root_reset(&mut self) -> Result<Option<u64>> {
        let dir = self.settings.state_dir.clone();
        let mut t = crate::trust::read_trust_state(&dir)?;
        let Some(p) = t.pending.clone() else {
            return Ok(None);
        };
        if p.root > t.applied {
            let floor = self.state.highest_security_version();
            let security = p.reset.as_ref().map_or(floor, |r| r.security_version);
            let channels = p.channels;
            self.transition(|s, _| {
                s.reset_floors(security, channels);
                Ok(())
            })?;
            if let Some(r) = &p.reset {
                t.version_floor = Some(crate::trust::VersionFloor {
                    version: r.version.to_string(),
                    while_booted: self.state.group(&self.booted).digest().map(str::to_string),
                });
            }
            t.applied = p.root;
            tracing::warn!(
                "root version {} reset{}{}",
                p.root,
                p.reset.as_ref().map_or(String::new(), |r| format!(
                    " the anti-rollback floors (security_version {}, version {})",
                    r.security_version, r.version
                )),
                if channels {
                    " the channel replay floors"
                } else {
                    ""
                }
            );
        }
        t.pending = None;
        crate::trust::write_trust_state(&dir, &t)?;
        Ok(Some(p.root))
    }

    /// Raise the clock floor to `t`, a signed time just accepted (`source`
    /// says which): from now on no time this device uses is earlier.
    pub fn raise_floor(&mut self, t: DateTime<Utc>, source: &str) -> Result<()> {
        crate::state::floor::raise(&self.settings.state_dir, t, source)?;
        self.clock = self.clock.with_floor(Some(t));
        Ok(())
    }

    /// Apply one transition to the state (in memory; nothing changes when
    /// it is refused) and write the state durably.
    pub fn transition<T>(
        &mut self,
        f: impl FnOnce(&mut UpdateState, DateTime<Utc>) -> Result<T, TransitionError>,
    ) -> Result<T> {
        let now = self.now();
        let out = f(&mut self.state, now)?;
        self.store.save(&self.state)?;
        Ok(out)
    }
}
