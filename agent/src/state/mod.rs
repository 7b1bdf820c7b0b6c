//! The device's update state: which slot group is installing, installed, on
//! trial, confirmed, good or bad, and why.
//!
//! [`UpdateState`] is a typed value with private fields. Every change is a
//! named transition ([`UpdateState::begin_install`], [`UpdateState::commit`],
//! ...) that checks the phase it starts from and returns a
//! [`TransitionError`] when that is wrong. Like bottlerocket's `signpost`, a
//! transition only changes the value in memory; the caller writes it with
//! one durable save ([`store::StateStore::save`]), in the order of durable
//! steps each flow documents where it happens. The table of transitions is in
//! docs/boot-control.md, and a unit test reads that table and tries every
//! transition from every phase against it.
//!
//! The file format is `state.json` version 1, unchanged since the first
//! release: an agent of an older release runs in the other slot and reads
//! this file after a rollback, and it refuses fields it does not know. New
//! information therefore goes into new files, never into this one.

pub mod floor;
pub mod intent;
pub mod store;
pub mod trialclock;

#[cfg(test)]
mod table;

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use store::{
    kept_index, kept_manifest, last_install, lock_holder, read_state, staged_index, StateStore,
    STATE_FILE,
};

/// The state file's format version.
pub const STATE_VERSION: u32 = 1;

/// How many bad releases the state remembers (the oldest are forgotten; a
/// channel never goes back that far).
pub const BAD_RELEASES_KEPT: usize = 32;

/// What a slot group holds, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum GroupStatus {
    /// Nothing known to be installed.
    #[default]
    Empty,
    /// Being written (or a write was interrupted): never bootable.
    Installing,
    /// Completely written and verified; not yet tried.
    Installed,
    /// Being tried once; not yet committed.
    Trial,
    /// Confirmed healthy.
    Good,
    /// Failed; never booted again until reinstalled.
    Bad,
}

impl GroupStatus {
    /// The status name.
    pub fn name(self) -> &'static str {
        match self {
            GroupStatus::Empty => "empty",
            GroupStatus::Installing => "installing",
            GroupStatus::Installed => "installed",
            GroupStatus::Trial => "trial",
            GroupStatus::Good => "good",
            GroupStatus::Bad => "bad",
        }
    }
}

/// The phase of a group as the transition table sees it: the stored status,
/// with a trial split into unconfirmed and confirmed (the checks passed and
/// the commit has begun).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    /// Nothing installed.
    Empty,
    /// Being written.
    Installing,
    /// Written and verified, not tried.
    Installed,
    /// On trial, not confirmed.
    Trial,
    /// On trial, health confirmed, commit under way.
    Confirmed,
    /// Committed.
    Good,
    /// Failed.
    Bad,
}

impl Phase {
    /// Every phase, in table order.
    pub const ALL: [Phase; 7] = [
        Phase::Empty,
        Phase::Installing,
        Phase::Installed,
        Phase::Trial,
        Phase::Confirmed,
        Phase::Good,
        Phase::Bad,
    ];

    /// The phase's name, as in docs/boot-control.md.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Empty => "empty",
            Phase::Installing => "installing",
            Phase::Installed => "installed",
            Phase::Trial => "trial",
            Phase::Confirmed => "confirmed",
            Phase::Good => "good",
            Phase::Bad => "bad",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The transitions, by name (for errors and the table test).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Transition {
    /// Start (or resume) writing a release into the group.
    BeginInstall,
    /// Record chunks durably written.
    Checkpoint,
    /// Record why an install stopped (the group stays installing).
    InstallFailed,
    /// Every image written and verified.
    FinishInstall,
    /// Record a trial boot of the group.
    StartTrial,
    /// Take back a trial that will not boot (a refused kexec).
    RevertTrial,
    /// The checks passed in a kexec boot; the trial starts again as the
    /// first boot through the bootloader (the cold-boot guard).
    DeferToColdBoot,
    /// The health checks passed; the commit begins.
    Confirm,
    /// The group is the committed default.
    Commit,
    /// Remember the group's release as bad before the bootloader moves away
    /// from it (rollback, mark-bad of the default).
    Condemn,
    /// The group failed or was rejected.
    MarkBad,
}

impl Transition {
    /// Every transition, in table order.
    pub const ALL: [Transition; 11] = [
        Transition::BeginInstall,
        Transition::Checkpoint,
        Transition::InstallFailed,
        Transition::FinishInstall,
        Transition::StartTrial,
        Transition::RevertTrial,
        Transition::DeferToColdBoot,
        Transition::Confirm,
        Transition::Commit,
        Transition::Condemn,
        Transition::MarkBad,
    ];

    /// The transition's name, as in docs/boot-control.md.
    pub fn name(self) -> &'static str {
        match self {
            Transition::BeginInstall => "begin_install",
            Transition::Checkpoint => "checkpoint",
            Transition::InstallFailed => "install_failed",
            Transition::FinishInstall => "finish_install",
            Transition::StartTrial => "start_trial",
            Transition::RevertTrial => "revert_trial",
            Transition::DeferToColdBoot => "defer_to_cold_boot",
            Transition::Confirm => "confirm",
            Transition::Commit => "commit",
            Transition::Condemn => "condemn",
            Transition::MarkBad => "mark_bad",
        }
    }

    /// What the operator can do about a refusal, in words.
    fn hint(self) -> &'static str {
        match self {
            Transition::BeginInstall => "",
            Transition::Checkpoint | Transition::InstallFailed | Transition::FinishInstall => {
                "; start the install again with `updater apply`"
            }
            Transition::StartTrial => "; install a release into it first (`updater apply`)",
            Transition::RevertTrial | Transition::Confirm => "; there is no trial of it to act on",
            Transition::DeferToColdBoot => {
                "; only a slot on trial whose checks have not yet confirmed it can wait for its first cold boot"
            }
            Transition::Commit => {
                "; only a slot on trial (after its checks passed) or a good slot can be confirmed"
            }
            Transition::Condemn | Transition::MarkBad => "; it holds no release",
        }
    }
}

impl fmt::Display for Transition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a transition was refused. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    /// The group is not in a phase the transition starts from.
    #[error("slot {group} is {phase}: cannot {transition} it{hint}", hint = transition.hint())]
    WrongPhase {
        /// The group.
        group: String,
        /// Its phase.
        phase: Phase,
        /// The transition refused.
        transition: Transition,
    },
    /// A trial is pending, and only its outcome may change what boots next.
    #[error("a trial of slot {trial} is pending; let `updater health` reconcile it at boot (or `updater mark-bad {trial}`) before {doing}; a slot committed by kexec waits for its first boot through the bootloader: reboot once (or confirm it without that proof with `updater mark-good`)")]
    TrialPending {
        /// The group on trial.
        trial: String,
        /// What was refused, in words.
        doing: &'static str,
    },
}

/// The state of one slot group. Read through the getters; changed only by
/// the transitions of [`UpdateState`].
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GroupState {
    status: GroupStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    digest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    security_version: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    updated: Option<DateTime<Utc>>,
}

impl GroupState {
    /// The stored status.
    pub fn status(&self) -> GroupStatus {
        self.status
    }
    /// The version of the release it holds.
    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }
    /// The digest of the release it holds (sha256 of the signed payload).
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }
    /// The security_version of the release it holds (becomes the
    /// anti-rollback floor when the group is committed).
    pub fn security_version(&self) -> Option<u64> {
        self.security_version
    }
    /// The last failure on this group, and its reason.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }
    /// When this entry last changed.
    pub fn updated(&self) -> Option<DateTime<Utc>> {
        self.updated
    }
}

/// An install in progress, checkpointed so that a new `apply` of the same
/// release resumes instead of starting over.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InstallProgress {
    /// Target group.
    pub group: String,
    /// Manifest digest being installed.
    pub digest: String,
    /// Version being installed.
    pub version: String,
    /// Per image class: chunks known to be durably written (fsynced).
    pub chunks_done: BTreeMap<String, u64>,
}

/// A pending trial boot (recorded before the reboot or kexec).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Trial {
    /// Group being tried.
    pub group: String,
    /// When the trial started.
    pub started: DateTime<Utc>,
    /// When it must have confirmed.
    pub deadline: DateTime<Utc>,
    /// The health checks passed and the commit has begun (set durably before
    /// the bootloader is touched, so that a crash mid-commit can be told
    /// from an unconfirmed trial).
    #[serde(default)]
    pub confirmed: bool,
}

/// A release marked bad on this device.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BadRelease {
    /// Its manifest digest.
    pub digest: String,
    /// Its version.
    pub version: Option<String>,
    /// Why it was marked bad.
    pub reason: String,
    /// When.
    pub when: DateTime<Utc>,
}

/// The release a group is given by [`UpdateState::begin_install`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// Manifest digest (sha256 of the signed payload, hex).
    pub digest: String,
    /// Version.
    pub version: String,
    /// security_version.
    pub security_version: u64,
}

/// The device's whole update state (`state.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UpdateState {
    version: u32,
    groups: BTreeMap<String, GroupState>,
    highest_security_version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    install: Option<InstallProgress>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    trial: Option<Trial>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    bad_releases: Vec<BadRelease>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    channels_issued: BTreeMap<String, DateTime<Utc>>,
}

const EMPTY_GROUP: GroupState = GroupState {
    status: GroupStatus::Empty,
    version: None,
    digest: None,
    security_version: None,
    last_error: None,
    updated: None,
};

impl UpdateState {
    /// A fresh state: the booted group is `good` (it is running and is the
    /// bootloader's default), the others `empty`.
    pub fn fresh(groups: &[String], booted: &str) -> UpdateState {
        UpdateState {
            version: STATE_VERSION,
            groups: groups
                .iter()
                .map(|g| {
                    let status = if g == booted {
                        GroupStatus::Good
                    } else {
                        GroupStatus::Empty
                    };
                    (
                        g.clone(),
                        GroupState {
                            status,
                            ..Default::default()
                        },
                    )
                })
                .collect(),
            highest_security_version: 0,
            install: None,
            trial: None,
            bad_releases: Vec::new(),
            channels_issued: BTreeMap::new(),
        }
    }

    /// The file format version this value was read with.
    pub fn format_version(&self) -> u32 {
        self.version
    }

    /// A group's state (empty if the state does not know the group yet: the
    /// configuration gained it).
    pub fn group(&self, name: &str) -> &GroupState {
        self.groups.get(name).unwrap_or(&EMPTY_GROUP)
    }

    /// A group's phase.
    pub fn phase(&self, name: &str) -> Phase {
        match self.group(name).status {
            GroupStatus::Empty => Phase::Empty,
            GroupStatus::Installing => Phase::Installing,
            GroupStatus::Installed => Phase::Installed,
            GroupStatus::Trial => match &self.trial {
                Some(t) if t.group == name && t.confirmed => Phase::Confirmed,
                _ => Phase::Trial,
            },
            GroupStatus::Good => Phase::Good,
            GroupStatus::Bad => Phase::Bad,
        }
    }

    /// The pending trial.
    pub fn trial(&self) -> Option<&Trial> {
        self.trial.as_ref()
    }

    /// The install in progress.
    pub fn install(&self) -> Option<&InstallProgress> {
        self.install.as_ref()
    }

    /// Highest security_version committed: the anti-rollback floor.
    pub fn highest_security_version(&self) -> u64 {
        self.highest_security_version
    }

    /// Releases that failed on this device, oldest first: the daemon never
    /// installs them again, which is what stops an update loop.
    pub fn bad_releases(&self) -> &[BadRelease] {
        &self.bad_releases
    }

    /// The bad-release entry for a release, if this device marked it bad:
    /// the same digest, or the same version — a release re-signed only to
    /// extend its expiry has a new digest but is the same software, and
    /// must not be tried again (a fix gets a new version).
    pub fn bad_release(&self, digest: &str, version: &str) -> Option<&BadRelease> {
        self.bad_releases
            .iter()
            .find(|b| b.digest == digest || b.version.as_deref() == Some(version))
    }

    /// Per channel name, the `issued` time of the newest channel document
    /// acted on: an older one (a replay of a superseded channel) is refused.
    pub fn channels_issued(&self) -> &BTreeMap<String, DateTime<Utc>> {
        &self.channels_issued
    }

    fn wrong(&self, group: &str, transition: Transition) -> TransitionError {
        TransitionError::WrongPhase {
            group: group.to_string(),
            phase: self.phase(group),
            transition,
        }
    }

    fn entry(&mut self, group: &str) -> &mut GroupState {
        self.groups.entry(group.to_string()).or_default()
    }

    fn no_trial_pending(&self, doing: &'static str) -> Result<(), TransitionError> {
        match &self.trial {
            Some(t) => Err(TransitionError::TrialPending {
                trial: t.group.clone(),
                doing,
            }),
            None => Ok(()),
        }
    }

    /// Remember the release in `group` as bad (no-op when it has no digest
    /// or is already remembered).
    fn remember_bad(&mut self, group: &str, reason: &str, now: DateTime<Utc>) {
        let g = self.group(group).clone();
        let Some(digest) = g.digest else { return };
        if self.bad_releases.iter().any(|b| b.digest == digest) {
            return;
        }
        self.bad_releases.push(BadRelease {
            digest,
            version: g.version,
            reason: reason.to_string(),
            when: now,
        });
        let excess = self.bad_releases.len().saturating_sub(BAD_RELEASES_KEPT);
        self.bad_releases.drain(..excess);
    }

    /// Start, or resume, writing `release` into `group`: empty, installing,
    /// installed, good or bad → installing. Refused while a trial is pending.
    /// Returns the chunks per image class already durably written by an
    /// interrupted install of the very same release into the very same
    /// group (empty otherwise).
    pub fn begin_install(
        &mut self,
        group: &str,
        release: &Release,
        now: DateTime<Utc>,
    ) -> Result<BTreeMap<String, u64>, TransitionError> {
        self.no_trial_pending("installing again")?;
        match self.phase(group) {
            Phase::Empty | Phase::Installing | Phase::Installed | Phase::Good | Phase::Bad => {}
            Phase::Trial | Phase::Confirmed => {
                return Err(self.wrong(group, Transition::BeginInstall))
            }
        }
        let resume = self
            .install
            .as_ref()
            .filter(|p| p.group == group && p.digest == release.digest)
            .map(|p| p.chunks_done.clone())
            .unwrap_or_default();
        self.install = Some(InstallProgress {
            group: group.to_string(),
            digest: release.digest.clone(),
            version: release.version.clone(),
            chunks_done: resume.clone(),
        });
        *self.entry(group) = GroupState {
            status: GroupStatus::Installing,
            version: Some(release.version.clone()),
            digest: Some(release.digest.clone()),
            security_version: Some(release.security_version),
            last_error: None,
            updated: Some(now),
        };
        Ok(resume)
    }

    fn installing_into(&self, group: &str, t: Transition) -> Result<(), TransitionError> {
        let ok = self.phase(group) == Phase::Installing
            && self.install.as_ref().is_some_and(|p| p.group == group);
        if ok {
            Ok(())
        } else {
            Err(self.wrong(group, t))
        }
    }

    /// Record that the first `chunks` chunks of image `class` are durably
    /// written: installing → installing.
    pub fn checkpoint(
        &mut self,
        group: &str,
        class: &str,
        chunks: u64,
    ) -> Result<(), TransitionError> {
        self.installing_into(group, Transition::Checkpoint)?;
        if let Some(p) = self.install.as_mut() {
            p.chunks_done.insert(class.to_string(), chunks);
        }
        Ok(())
    }

    /// Record why an install stopped: installing → installing (the group
    /// stays unbootable, the checkpoint is kept for a resume).
    pub fn install_failed(
        &mut self,
        group: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), TransitionError> {
        self.installing_into(group, Transition::InstallFailed)?;
        let g = self.entry(group);
        g.last_error = Some(reason.to_string());
        g.updated = Some(now);
        Ok(())
    }

    /// Every image is written and verified: installing → installed.
    pub fn finish_install(
        &mut self,
        group: &str,
        now: DateTime<Utc>,
    ) -> Result<(), TransitionError> {
        self.installing_into(group, Transition::FinishInstall)?;
        self.install = None;
        let g = self.entry(group);
        g.status = GroupStatus::Installed;
        g.updated = Some(now);
        Ok(())
    }

    /// Record a trial of `group` that must confirm by `deadline`: installed
    /// → trial. Refused while another trial is pending.
    pub fn start_trial(
        &mut self,
        group: &str,
        now: DateTime<Utc>,
        deadline: DateTime<Utc>,
    ) -> Result<(), TransitionError> {
        if self.phase(group) != Phase::Installed {
            return Err(self.wrong(group, Transition::StartTrial));
        }
        self.no_trial_pending("starting another")?;
        self.trial = Some(Trial {
            group: group.to_string(),
            started: now,
            deadline,
            confirmed: false,
        });
        let g = self.entry(group);
        g.status = GroupStatus::Trial;
        g.last_error = None;
        g.updated = Some(now);
        Ok(())
    }

    /// Take back a trial nothing will boot (the kernel refused the kexec and
    /// the policy allows no reboot): trial → installed.
    pub fn revert_trial(&mut self, group: &str, now: DateTime<Utc>) -> Result<(), TransitionError> {
        if self.phase(group) != Phase::Trial {
            return Err(self.wrong(group, Transition::RevertTrial));
        }
        self.trial = None;
        let g = self.entry(group);
        g.status = GroupStatus::Installed;
        g.updated = Some(now);
        Ok(())
    }

    /// The checks of a kexec trial passed; the first boot of `group`
    /// through firmware and bootloader becomes its trial, which must
    /// confirm by `deadline` (counted from that boot): trial → trial, with
    /// the trial restarted at `now`. The old primary stays the default
    /// until that boot confirms (`updater health` there commits).
    pub fn defer_to_cold_boot(
        &mut self,
        group: &str,
        now: DateTime<Utc>,
        deadline: DateTime<Utc>,
    ) -> Result<(), TransitionError> {
        if self.phase(group) != Phase::Trial {
            return Err(self.wrong(group, Transition::DeferToColdBoot));
        }
        match self.trial.as_mut() {
            Some(t) if t.group == group && !t.confirmed => {
                t.started = now;
                t.deadline = deadline;
            }
            _ => return Err(self.wrong(group, Transition::DeferToColdBoot)),
        }
        let g = self.entry(group);
        g.updated = Some(now);
        Ok(())
    }

    /// The health checks passed and the commit begins: trial → confirmed
    /// (confirmed → confirmed again, after a crash mid-commit).
    pub fn confirm(&mut self, group: &str) -> Result<(), TransitionError> {
        match self.phase(group) {
            Phase::Trial | Phase::Confirmed => {}
            _ => return Err(self.wrong(group, Transition::Confirm)),
        }
        match self.trial.as_mut() {
            Some(t) if t.group == group => t.confirmed = true,
            _ => return Err(self.wrong(group, Transition::Confirm)),
        }
        Ok(())
    }

    /// The group is the bootloader's committed default: confirmed → good
    /// (good → good when an operator confirms a good slot again). The
    /// anti-rollback floor rises to the group's security_version: only a
    /// release that proved itself raises it, so a failed trial never locks
    /// the device out of the release it runs. Its release leaves the list
    /// of failed releases.
    pub fn commit(&mut self, group: &str, now: DateTime<Utc>) -> Result<(), TransitionError> {
        match self.phase(group) {
            Phase::Confirmed => self.trial = None,
            Phase::Good => {}
            _ => return Err(self.wrong(group, Transition::Commit)),
        }
        let g = self.entry(group);
        g.status = GroupStatus::Good;
        g.last_error = None;
        g.updated = Some(now);
        let committed = g.security_version.unwrap_or(0);
        let (digest, version) = (g.digest.clone(), g.version.clone());
        self.highest_security_version = self.highest_security_version.max(committed);
        // A release that proved itself here is no longer a failed one (an
        // operator installed it again after a rollback, and it passed):
        // the default never runs a release `status` lists as failed.
        self.bad_releases.retain(|b| {
            Some(&b.digest) != digest.as_ref() && (b.version.is_none() || b.version != version)
        });
        Ok(())
    }

    /// Remember the release of `group` as bad, before the bootloader moves
    /// away from it: any phase but empty, unchanged. Written first, so that a
    /// crash before the group is marked bad cannot leave the daemon free to
    /// install the release again.
    pub fn condemn(
        &mut self,
        group: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), TransitionError> {
        if self.phase(group) == Phase::Empty {
            return Err(self.wrong(group, Transition::Condemn));
        }
        self.remember_bad(group, reason, now);
        Ok(())
    }

    /// The group failed (a check, the trial deadline, a hang) or was
    /// rejected by the operator: any phase but empty → bad, with `reason`.
    /// Its release is remembered as bad, and a trial or install of it ends.
    pub fn mark_bad(
        &mut self,
        group: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), TransitionError> {
        if self.phase(group) == Phase::Empty {
            return Err(self.wrong(group, Transition::MarkBad));
        }
        if self.trial.as_ref().is_some_and(|t| t.group == group) {
            self.trial = None;
        }
        if self.install.as_ref().is_some_and(|p| p.group == group) {
            self.install = None;
        }
        self.remember_bad(group, reason, now);
        let g = self.entry(group);
        g.status = GroupStatus::Bad;
        g.last_error = Some(reason.to_string());
        g.updated = Some(now);
        Ok(())
    }

    /// Reset the anti-rollback floors a compromised manifest or channel key
    /// could have pushed up, as a trusted root's signed `reset` says: the
    /// security_version floor becomes `security_version` (even when lower),
    /// and with `clear_channels` every channel's replay floor is forgotten.
    /// The only way a floor ever goes down.
    pub fn reset_floors(&mut self, security_version: u64, clear_channels: bool) {
        self.highest_security_version = security_version;
        if clear_channels {
            self.channels_issued.clear();
        }
    }

    /// Record that the device acted on channel `name` issued at `issued`
    /// (the replay floor only rises). Returns whether it changed.
    pub fn follow_channel(&mut self, name: &str, issued: DateTime<Utc>) -> bool {
        if self.channels_issued.get(name).is_none_or(|t| *t < issued) {
            self.channels_issued.insert(name.to_string(), issued);
            true
        } else {
            false
        }
    }
}
