//! `updater apply`, first half: put a verified release into the inactive
//! slot group. The install ends at "installed"; starting a trial is the
//! trial module's (`trial::start`).
//!
//! The order of durable steps (each one fsynced before the next starts):
//!
//! 1. fetch the manifest (size-capped) and verify it completely — nothing
//!    else is requested before this passes;
//! 2. mark the target group unbootable in the bootloader env;
//! 3. record the target `installing` (with the release digest) in the state;
//! 4. stream each image through the pipeline ([`runner`]): chunk source,
//!    verification, slot sink; at each checkpoint, sync the slot, then record
//!    the chunks written in the state;
//! 5. sync, check size and whole-image sha256;
//! 6. keep the verified manifest, then record the group `installed`.
//!
//! A crash anywhere leaves the group unbootable (2 happened before any byte),
//! and a new `apply` of the same release resumes from the checkpoint.

pub mod runner;
pub mod source;
pub mod verify;

use anyhow::{Context, Result};
use serde_json::json;
use updater_format::manifest::verify::{check_chunk_table, verify, MANIFEST_SIZE_CAP};
use updater_format::Sha256Digest;

use crate::error::{usage, OneLine, Rejected};
use crate::fetch::{fetch_small, open_source, RetryBudget};
use crate::progress::Progress;
use crate::session::Session;
use crate::state::{Release, TransitionError};
use source::StreamSource;

/// What an install did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Installed {
    /// The group written.
    pub group: String,
    /// The release version.
    pub version: String,
    /// The release digest.
    pub digest: String,
    /// Bytes received over the network (or read from the folder).
    pub downloaded_bytes: u64,
    /// Whether the install continued an interrupted one.
    pub resumed: bool,
    /// Retries after transient faults.
    pub retries: u32,
    /// The verified manifest (kept in the state folder too).
    #[serde(skip)]
    pub manifest: Vec<u8>,
}

/// Install the release at `source` into the inactive group. With `expect`,
/// the release's digest must be that one (the channel pins it).
pub fn install(
    session: &mut Session,
    source: &str,
    expect: Option<&str>,
    progress: &mut Progress,
) -> Result<Installed> {
    let settings = session.settings();
    let target = session.install_target()?;
    // Refused before anything is fetched (the transition would refuse it
    // too, after the download of the manifest).
    if let Some(t) = session.state().trial() {
        return Err(TransitionError::TrialPending {
            trial: t.group.clone(),
            doing: "installing again",
        }
        .into());
    }
    let keyring = session.keyring()?;
    let mut fetcher = open_source(source, &settings.http)?;
    let mut budget = RetryBudget::new(&settings.http);

    // 1. The manifest, verified before anything else is fetched.
    let bytes = fetch_small(
        fetcher.as_mut(),
        None,
        0,
        MANIFEST_SIZE_CAP,
        "manifest",
        &mut budget,
    )?;
    let verified = verify(&bytes, &keyring, &session.policy())
        .with_context(|| format!("verifying the manifest from {}", fetcher.describe()))?;
    let m = &verified.manifest;
    let digest = verified.digest.hex();
    // A signed time: no time this device uses may be earlier from now on.
    session.raise_floor(m.created, &format!("created of release {}", m.version))?;
    if let Some(want) = expect.filter(|w| *w != digest) {
        return Err(Rejected::Mismatch {
            what: format!("manifest from {}", fetcher.describe()),
            reason: format!(
                "the channel pins release {want}, the server sent release {digest} ({}); the channel and the release folder disagree — re-publish the channel after uploading the release it names",
                m.version
            ),
        }
        .into());
    }
    progress.event(
        "verified",
        json!({"product": m.product, "version": m.version.to_string(), "digest": digest, "group": target}),
    );
    for img in &m.images {
        if !session.slots().has_target(&target, img.class.as_str()) {
            return Err(usage(format!(
                "the release has an image of class {}, but slot group {target} has no target for it; add slots.{target}.targets.{} to the configuration",
                img.class, img.class
            )));
        }
    }
    if session.bootloader().primary()?.as_deref() == Some(target.as_str()) {
        // Booted from one slot while the bootloader's default is the other
        // (after a rollback, before the reboot): writing the default would
        // leave it unbootable.
        return Err(usage(format!(
            "slot {target} is the bootloader's default but slot {} is running; reboot into slot {target} (or `updater rollback`) before installing",
            session.booted()
        )));
    }

    // 2 + 3. Unbootable everywhere, durably, before the first byte.
    session
        .bootloader_mut()
        .set_bootable(&target, false)
        .with_context(|| format!("marking slot {target} unbootable"))?;
    crate::failpoint!("after-mark-unbootable");
    let release = Release {
        digest: digest.clone(),
        version: m.version.to_string(),
        security_version: m.security_version,
    };
    let chunks_done = session.transition(|s, now| s.begin_install(&target, &release, now))?;
    let resumed = chunks_done.values().any(|n| *n > 0);
    crate::failpoint!("after-state-installing");

    // 4 + 5. The images.
    let result = (|| -> Result<()> {
        for img in &m.images {
            let table_bytes = fetch_small(
                fetcher.as_mut(),
                Some(img.chunks.file.as_str()),
                img.chunks.size,
                img.chunks.size,
                "chunk table",
                &mut budget,
            )?;
            let got = Sha256Digest::of(&table_bytes);
            if table_bytes.len() as u64 != img.chunks.size || got != img.chunks.sha256 {
                return Err(Rejected::Mismatch {
                    what: format!("chunk table {}", img.chunks.file),
                    reason: format!(
                        "{} bytes with sha256 {got}, the manifest pins {} bytes with sha256 {}",
                        table_bytes.len(),
                        img.chunks.size,
                        img.chunks.sha256
                    ),
                }
                .into());
            }
            let table = check_chunk_table(&table_bytes, img)?;
            let class = img.class.as_str();
            let start = chunks_done
                .get(class)
                .copied()
                .unwrap_or(0)
                .min(table.chunks.len() as u64);
            let mut sink = session.slots().open_sink(&target, class, img.size)?;
            let what = format!("installing {class} into {}", sink.describe());
            let mut source = StreamSource::new(fetcher.as_mut(), img, &table, &mut budget);
            let mut checkpoint =
                |n: u64| session.transition(|s, _| s.checkpoint(&target, class, n));
            runner::install_image(
                &settings.install,
                &mut source,
                sink.as_mut(),
                img,
                &table,
                start as usize,
                progress,
                &mut checkpoint,
            )
            .context(what)?;
            let n = table.chunks.len() as u64;
            session.transition(|s, _| s.checkpoint(&target, class, n))?;
        }
        Ok(())
    })();

    if let Err(e) = result {
        // The group stays unbootable; record why, keep the checkpoint.
        let reason = OneLine(&e).to_string();
        if let Err(save_err) = session.transition(|s, now| s.install_failed(&target, &reason, now))
        {
            tracing::error!("could not record the failure in the state: {save_err:#}");
        }
        return Err(e);
    }

    // 6. Installed (the manifest kept first, so an installed group always
    // has it).
    let kept = session.kept_manifest(&target);
    std::fs::create_dir_all(crate::util::fs::parent_dir(&kept))
        .with_context(|| format!("creating {}", kept.display()))?;
    crate::util::fs::write_atomic(&kept, &bytes, 0o644)?;
    crate::failpoint!("before-state-installed");
    session.transition(|s, now| s.finish_install(&target, now))?;
    let outcome = Installed {
        group: target,
        version: m.version.to_string(),
        digest,
        downloaded_bytes: fetcher.received(),
        resumed,
        retries: budget.retried,
        manifest: bytes,
    };
    progress.event(
        "installed",
        serde_json::to_value(&outcome).unwrap_or_default(),
    );
    crate::failpoint!("after-state-installed");
    Ok(outcome)
}
