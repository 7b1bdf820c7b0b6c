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
use updater_format::manifest::Policy;

use crate::bootloader::Bootloader;
use crate::clock::Clock;
use crate::config::Settings;
use crate::slots::{PathSlots, SlotBackend};
use crate::state::{StateStore, TransitionError, UpdateState};

/// One command's hold on the device.
pub struct Session<'a> {
    settings: &'a Settings,
    clock: Clock,
    store: StateStore,
    booted: String,
    state: UpdateState,
    boot: Box<dyn Bootloader + 'a>,
    slots: Box<dyn SlotBackend + 'a>,
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

/// The configured slot backend.
pub fn slot_backend(settings: &Settings) -> PathSlots<'_> {
    PathSlots::new(
        &settings.slots,
        &settings.cmdline_path,
        &settings.kexec.sys_root,
    )
}

/// The booted group, without a session (`status`, `check`).
pub fn booted_group(settings: &Settings) -> Result<String> {
    slot_backend(settings).booted(&read_cmdline(settings)?)
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

impl<'a> Session<'a> {
    /// Lock the state folder, find the booted group, read the state (a fresh
    /// one is written when there is none) and open the configured
    /// bootloader.
    pub fn open(settings: &'a Settings, clock: Clock) -> Result<Session<'a>> {
        let store = open_store(settings)?;
        let boot = crate::bootloader::open(settings)?;
        Self::with_parts(
            settings,
            clock,
            store,
            boot,
            Box::new(slot_backend(settings)),
        )
    }

    /// The same with a given bootloader backend (tests, other backends).
    pub fn open_with(
        settings: &'a Settings,
        clock: Clock,
        boot: Box<dyn Bootloader + 'a>,
    ) -> Result<Session<'a>> {
        let store = open_store(settings)?;
        Self::with_parts(
            settings,
            clock,
            store,
            boot,
            Box::new(slot_backend(settings)),
        )
    }

    fn with_parts(
        settings: &'a Settings,
        clock: Clock,
        store: StateStore,
        boot: Box<dyn Bootloader + 'a>,
        slots: Box<dyn SlotBackend + 'a>,
    ) -> Result<Session<'a>> {
        let booted = slots.booted(&read_cmdline(settings)?)?;
        let clock = clock.with_floor(crate::state::floor::floor(&settings.state_dir)?);
        let state = match store.load()? {
            Some(s) => s,
            None => {
                let s = UpdateState::fresh(&slots.groups(), &booted);
                store.save(&s)?;
                s
            }
        };
        Ok(Session {
            settings,
            clock,
            store,
            booted,
            state,
            boot,
            slots,
        })
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

    /// The keyring the device trusts (refused when others can change it).
    pub fn keyring(&self) -> Result<Keyring> {
        crate::util::perm::load_keyring(
            &self.settings.keyring,
            self.settings.security.allow_insecure_permissions,
        )
    }

    /// Where the verified manifest of `group`'s release is kept.
    pub fn kept_manifest(&self, group: &str) -> PathBuf {
        crate::state::kept_manifest(&self.settings.state_dir, group)
    }

    /// The verification policy for this device now: its compatible string,
    /// the version it runs, the anti-rollback floor and this agent's version.
    pub fn policy(&self) -> Policy {
        Policy {
            now: self.now(),
            compatible: Some(self.settings.compatible.clone()),
            installed_version: self
                .state
                .group(&self.booted)
                .version()
                .and_then(|v| semver::Version::parse(v).ok()),
            min_security_version: self.state.highest_security_version(),
            agent_version: Some(crate::agent_version()),
            max_validity: Some(self.settings.install.max_release_validity),
        }
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
