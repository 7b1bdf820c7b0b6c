//! `updater apply`, first half: put a verified release into the inactive
//! slot group. The install ends at "installed"; starting a trial is the
//! trial module's (`trial::start`), and `flow::apply` runs the two.
//!
//! The steps, each a function below, in this order (every durable one
//! fsynced before the next starts):
//!
//! 1. `verify_release`: the root chain beside the source, then the
//!    manifest (size-capped), verified completely — nothing else is
//!    requested before this passes;
//! 2. `plan_images`: what each image needs (its index or chunk table) and
//!    where each chunk comes from (in place, the booted slot, the network),
//!    checked against the download budget — still nothing written;
//! 3. `mark_installing`: the target group unbootable in the bootloader
//!    env, then `installing` (with the release digest) in the state;
//! 4. `write_images`: each image through the pipeline ([`runner`]): chunk
//!    source, verification, slot sink; at each checkpoint, sync the slot,
//!    then record the chunks written in the state;
//! 5. `finish`: keep the indexes and the verified manifest, then record
//!    the group `installed`.
//!
//! A crash anywhere leaves the group unbootable (3 happened before any
//! byte), and a new `apply` of the same release resumes from the checkpoint
//! (docs/boot-control.md lists every durable write).

pub mod delta;
pub mod index;
pub mod pins;
pub mod plan;
pub mod runner;
pub mod source;
#[cfg(test)]
mod testutil;

use crate::error::BudgetError;
use anyhow::{Context, Result};
use serde_json::json;
use updater_format::index::Entry;
use updater_format::manifest::types::{ChunkTable, Image};
use updater_format::manifest::verify::{check_chunk_table, verify, MANIFEST_SIZE_CAP};
use updater_format::Sha256Digest;

use crate::error::{usage, OneLine, Rejected};
use crate::events::Events;
use crate::fetch::{fetch_small, open_source, Fetcher, RetryBudget};
use crate::session::Session;
use crate::slots::{ImageTargets, Installer, SlotReader};
use crate::state::{Release, TransitionError};
use pins::{IndexPins, TablePins};
use plan::Plan;
use source::StreamSource;

/// How to install.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Plan only: fetch and verify the manifest and the indexes, read the
    /// slots, print what the install would cost, change nothing.
    pub dry_run: bool,
    /// Most bytes the install may download (`--max-download`; else
    /// `install.max_download_bytes`).
    pub max_download: Option<u64>,
    /// Install the release even when it is the one the booted slot runs
    /// (`--reinstall`): by default that is nothing to do.
    pub reinstall: bool,
}

/// The release asked for is the one the booted slot runs: nothing to do.
#[derive(Debug, thiserror::Error)]
#[error("release {version} already runs in slot {group}: nothing to do (`--reinstall` installs it into the other slot anyway)")]
pub struct AlreadyRunning {
    /// The slot that runs it.
    pub group: String,
    /// Its version.
    pub version: String,
}

/// What an install did (or, for a dry run, would do).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Installed {
    /// The group written.
    pub group: String,
    /// The release version.
    pub version: String,
    /// The release digest.
    pub digest: String,
    /// Bytes received over the network (or read from the folder), the
    /// manifest and indexes included.
    pub bytes_fetched: u64,
    /// Bytes of the images not fetched: found in place in the target slot
    /// or read from the booted slot.
    pub bytes_reused: u64,
    /// Of those, bytes already in place in the target slot.
    pub bytes_in_place: u64,
    /// Of those, bytes read from the booted slot.
    pub bytes_from_booted: u64,
    /// Requests made.
    pub requests: u64,
    /// Bytes the plan said it would fetch (the manifest included).
    pub planned_bytes: u64,
    /// Whether the install continued an interrupted one.
    pub resumed: bool,
    /// Retries after transient faults.
    pub retries: u32,
    /// Whether this was a dry run (nothing written).
    pub dry_run: bool,
    /// Per image: what it cost.
    pub images: Vec<ImagePlan>,
    /// The verified manifest (kept in the state folder too).
    #[serde(skip)]
    pub manifest: Vec<u8>,
}

/// The plan of one image, as reported.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ImagePlan {
    /// The image class.
    pub class: String,
    /// The manifest schema of the release (1: full download).
    pub schema: u64,
    /// The image's size.
    pub size: u64,
    /// Bytes to fetch for it (index or chunk table included).
    pub fetch_bytes: u64,
    /// Requests for it.
    pub requests: u64,
    /// Bytes found in place in the target slot.
    pub in_place_bytes: u64,
    /// Bytes to read from the booted slot.
    pub seed_bytes: u64,
    /// The plan's details (schema 2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<Plan>,
}

/// One image, ready to install.
enum Prepared {
    /// Schema 1: the checked chunk table.
    Table(ChunkTable),
    /// Schema 2: the checked index and the plan.
    Index {
        entries: Vec<Entry>,
        params: updater_format::chunker::ChunkParams,
        bytes: Vec<u8>,
        plan: Box<Plan>,
        seed: Option<Box<dyn SlotReader>>,
    },
}

/// The session's slot backend's image targets: how this backend installs.
fn targets<'s>(session: &'s Session) -> &'s dyn ImageTargets {
    match session.slots().installer() {
        Installer::Images(t) => t,
    }
}

/// Open a slot read-only for a plan; a slot that cannot be read is no seed
/// (said in the log), never a failure of the install.
fn reader(session: &Session, group: &str, class: &str) -> Option<Box<dyn SlotReader>> {
    match targets(session).open_reader(group, class) {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!("slot {group} {class} is not read for reuse: {e:#}");
            None
        }
    }
}

/// Fetch and check what an image needs before any byte of it is written:
/// the chunk table (schema 1), or the index and the plan (schema 2).
fn prepare(
    session: &Session,
    fetcher: &mut dyn Fetcher,
    budget: &mut RetryBudget,
    img: &Image,
    target: &str,
) -> Result<Prepared> {
    let class = img.class.as_str();
    if let Some(tref) = &img.chunks {
        let table_bytes = fetch_small(
            fetcher,
            Some(tref.file.as_str()),
            tref.size,
            tref.size,
            "chunk table",
            budget,
        )?;
        let got = Sha256Digest::of(&table_bytes);
        if table_bytes.len() as u64 != tref.size || got != tref.sha256 {
            return Err(Rejected::Mismatch {
                what: format!("chunk table {}", tref.file),
                reason: format!(
                    "{} bytes with sha256 {got}, the manifest pins {} bytes with sha256 {}",
                    table_bytes.len(),
                    tref.size,
                    tref.sha256
                ),
            }
            .into());
        }
        return Ok(Prepared::Table(check_chunk_table(&table_bytes, img)?));
    }
    let dir = &session.settings().state_dir;
    let booted = session.booted().to_string();
    let staged = crate::state::staged_index(dir, target, class);
    let booted_index = crate::state::kept_index(dir, &booted, class);
    let target_index = crate::state::kept_index(dir, target, class);
    let loaded = index::load(
        fetcher,
        budget,
        img,
        &[staged, booted_index.clone(), target_index.clone()],
    )?;
    let params = loaded.root.params;
    let pins = IndexPins::new(img, params, &loaded.entries);
    let target_reader = reader(session, target, class);
    let seed = reader(session, &booted, class);
    let booted_kept = index::read_kept(&booted_index).filter(|(r, _)| r.params == params);
    let target_kept = index::read_kept(&target_index);
    let mut p = plan::plan(
        &pins,
        &plan::Inputs {
            target: target_reader.as_deref(),
            target_kept: target_kept.as_ref().map(|(_, e)| e.as_slice()),
            booted: seed.as_deref().map(|r| (r, booted.as_str())),
            booted_kept: booted_kept.as_ref().map(|(_, e)| e.as_slice()),
        },
    )?;
    p.index_bytes = loaded.fetched;
    p.index_requests = loaded.requests;
    p.index_pages_local = loaded.pages_local;
    p.index_pages = loaded.root.pages.len();
    Ok(Prepared::Index {
        entries: loaded.entries,
        params,
        bytes: loaded.bytes,
        plan: Box::new(p),
        seed,
    })
}

impl Prepared {
    fn report(&self, img: &Image, schema: u64) -> ImagePlan {
        match self {
            Prepared::Table(_) => ImagePlan {
                class: img.class.to_string(),
                schema,
                size: img.size,
                fetch_bytes: img.compressed_size + img.chunks.as_ref().map(|c| c.size).unwrap_or(0),
                requests: 2,
                in_place_bytes: 0,
                seed_bytes: 0,
                plan: None,
            },
            Prepared::Index { plan, .. } => ImagePlan {
                class: img.class.to_string(),
                schema,
                size: img.size,
                fetch_bytes: plan.total_fetch(),
                requests: plan.total_requests(),
                in_place_bytes: plan.in_place_bytes,
                seed_bytes: plan.seed_bytes,
                plan: Some((**plan).clone()),
            },
        }
    }
}

/// The plan in words, for `apply --dry-run` and the log.
pub fn describe_plan(out: &Installed) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    for i in &out.images {
        match &i.plan {
            Some(p) => s.push_str(&p.describe()),
            None => {
                let _ = writeln!(
                    s,
                    "  {}: schema-1 release, a full download of {} bytes in {}",
                    i.class,
                    i.fetch_bytes,
                    crate::util::plural(i.requests, "request")
                );
            }
        }
    }
    let size: u64 = out.images.iter().map(|i| i.size).sum();
    let reqs: u64 = out.images.iter().map(|i| i.requests).sum();
    let _ = write!(
        s,
        "total: fetch {} bytes ({:.2}% of {} bytes of images) in {}, reuse {} bytes",
        out.planned_bytes,
        100.0 * out.planned_bytes as f64 / size.max(1) as f64,
        size,
        crate::util::plural(reqs + 1, "request"),
        out.images
            .iter()
            .map(|i| i.in_place_bytes + i.seed_bytes)
            .sum::<u64>()
    );
    s
}

/// A release verified for this device (step 1).
struct Verified {
    /// The manifest's bytes as received (kept in the state folder).
    bytes: Vec<u8>,
    /// The manifest.
    manifest: updater_format::manifest::types::Manifest,
    /// Its digest (hex).
    digest: String,
}

/// What the plan found (step 2).
struct Planned {
    /// Per image, in the manifest's order.
    prepared: Vec<Prepared>,
    /// What the install will cost, as reported.
    outcome: Installed,
}

/// Install the release at `source` into the inactive group: the steps of
/// the module's documentation, in order. With `expect`, the release's
/// digest must be that one (the channel pins it).
pub fn install(
    session: &mut Session,
    source: &str,
    expect: Option<&str>,
    events: &mut dyn Events,
    opts: &Options,
) -> Result<Installed> {
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
    let settings = session.settings();
    let mut fetcher = open_source(source, &settings.http)?;
    let mut budget = RetryBudget::new(&settings.http);
    let release = verify_release(
        session,
        fetcher.as_mut(),
        &mut budget,
        &target,
        expect,
        opts,
        events,
    )?;
    let planned = plan_images(
        session,
        fetcher.as_mut(),
        &mut budget,
        &release,
        &target,
        opts,
        events,
    )?;
    if opts.dry_run {
        return Ok(planned.outcome);
    }
    let chunks_done = mark_installing(session, &release, &target)?;
    let misses = write_images(
        session,
        fetcher.as_mut(),
        &mut budget,
        &release,
        &planned.prepared,
        &target,
        &chunks_done,
        opts,
        events,
    )?;
    let mut outcome = planned.outcome;
    finish(session, &release, &planned.prepared, &target)?;
    outcome.bytes_fetched = fetcher.received();
    outcome.requests = fetcher.requests();
    outcome.bytes_reused -= misses.min(outcome.bytes_reused);
    outcome.bytes_from_booted -= misses.min(outcome.bytes_from_booted);
    outcome.resumed = chunks_done.values().any(|n| *n > 0);
    outcome.retries = budget.retried;
    save_last(&session.settings().state_dir, &outcome, session.now());
    events.step(
        "installed",
        &serde_json::to_value(&outcome).unwrap_or_default(),
    );
    crate::failpoint!("after-state-installed");
    Ok(outcome)
}

/// Step 1: the root chain beside the source (the keyring everything else
/// is verified with), then the manifest, verified before anything else is
/// fetched; the clock floor raised to its signed time; the release checked
/// against what the channel pins and what the target group can hold.
fn verify_release(
    session: &mut Session,
    fetcher: &mut dyn Fetcher,
    budget: &mut RetryBudget,
    target: &str,
    expect: Option<&str>,
    opts: &Options,
    events: &mut dyn Events,
) -> Result<Verified> {
    let settings = session.settings();
    let persist = if opts.dry_run {
        crate::trust::Persist::Not
    } else {
        crate::trust::Persist::Held(session.store())
    };
    let keyring = crate::trust::refresh(settings, session.now(), fetcher, budget, persist)?.keyring;
    if !opts.dry_run {
        session.apply_root_reset()?;
    }
    let bytes = fetch_small(fetcher, None, 0, MANIFEST_SIZE_CAP, "manifest", budget)?;
    let verified = verify(&bytes, &keyring, &session.policy())
        .with_context(|| format!("verifying the manifest from {}", fetcher.describe()))?;
    let m = verified.manifest;
    let digest = verified.digest.hex();
    if !opts.dry_run {
        // A signed time: no time this device uses may be earlier from now on.
        session.raise_floor(m.created, &format!("created of release {}", m.version))?;
    }
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
    events.step(
        "verified",
        &json!({"product": m.product, "version": m.version.to_string(), "digest": digest, "group": target, "schema": m.schema}),
    );
    // What the release carries must be what the slot backend installs: an
    // OSTree commit has no images, and an image backend given one would
    // "install" nothing and boot a slot it never wrote.
    if let (Some(o), Installer::Images(_)) = (&m.ostree, session.slots().installer()) {
        return Err(usage(format!(
            "release {} carries an OSTree commit ({}), but this device's slot backend {:?} installs images (partitions or files); install it on a device whose slots are OSTree deployments (slots.backend = \"ostree\"), or publish an image release for this one",
            m.version,
            o.commit,
            session.slots().name()
        )));
    }
    for img in &m.images {
        if !targets(session).has_target(target, img.class.as_str()) {
            return Err(usage(format!(
                "the release has an image of class {}, but slot group {target} has no target for it; add slots.{target}.targets.{} to the configuration",
                img.class, img.class
            )));
        }
    }
    if session.bootloader().primary()?.as_deref() == Some(target) {
        // Booted from one slot while the bootloader's default is the other
        // (after a rollback, before the reboot): writing the default would
        // leave it unbootable.
        return Err(usage(format!(
            "slot {target} is the bootloader's default but slot {} is running; reboot into slot {target} (or `updater rollback`) before installing",
            session.booted()
        )));
    }
    // The release the booted slot runs (and that has not failed there):
    // installing it into the other slot only costs the download and the
    // fallback it holds.
    let booted = session.booted();
    if !opts.reinstall
        && session.state().group(booted).digest() == Some(digest.as_str())
        && session.state().phase(booted) != crate::state::Phase::Bad
    {
        return Err(AlreadyRunning {
            group: booted.to_string(),
            version: m.version.to_string(),
        }
        .into());
    }
    Ok(Verified {
        bytes,
        manifest: m,
        digest,
    })
}

/// Step 2: what each image needs, and the plan, before anything is written,
/// so that a plan over the budget changes nothing.
fn plan_images(
    session: &Session,
    fetcher: &mut dyn Fetcher,
    budget: &mut RetryBudget,
    release: &Verified,
    target: &str,
    opts: &Options,
    events: &mut dyn Events,
) -> Result<Planned> {
    let m = &release.manifest;
    let mut prepared = Vec::with_capacity(m.images.len());
    for img in &m.images {
        prepared.push(
            prepare(session, fetcher, budget, img, target)
                .with_context(|| format!("planning image {}", img.class))?,
        );
    }
    let images: Vec<ImagePlan> = prepared
        .iter()
        .zip(&m.images)
        .map(|(p, img)| p.report(img, m.schema))
        .collect();
    let ignored = range_ignored(fetcher, budget, m, &prepared)?;
    // What was fetched to plan (manifest, indexes, chunk tables) plus what
    // the plan still fetches. A server that ignores Range sends the file
    // from its start; the fetch reads that one answer through to the last
    // range it needs, so the file costs the end of its last range.
    let cost = |p: &Prepared, img: &Image| match p {
        Prepared::Table(_) => img.compressed_size,
        Prepared::Index { plan, .. } if ignored => {
            plan.requests.iter().map(|r| r.end).max().unwrap_or(0)
        }
        Prepared::Index { plan, .. } => plan.fetch_bytes,
    };
    let chunk_bytes: u64 = prepared
        .iter()
        .zip(&m.images)
        .map(|(p, i)| cost(p, i))
        .sum();
    let planned_bytes = fetcher.received() + chunk_bytes;
    if ignored {
        let needed: u64 = prepared
            .iter()
            .zip(&m.images)
            .map(|(p, img)| match p {
                Prepared::Table(_) => img.compressed_size,
                Prepared::Index { plan, .. } => plan.fetch_bytes,
            })
            .sum::<u64>()
            + fetcher.received();
        events.warn(&format!(
            "the server at {} ignores Range requests (it answers a range with the whole file): this install fetches {planned_bytes} bytes where the plan needs {needed}; a server that honours Range (nginx, Apache, caddy, S3, GCS, `updater-vendor serve`; not `python3 -m http.server`) fetches only those",
            fetcher.host()
        ));
    }
    let outcome = Installed {
        group: target.to_string(),
        version: m.version.to_string(),
        digest: release.digest.clone(),
        bytes_fetched: fetcher.received(),
        bytes_reused: images.iter().map(|i| i.in_place_bytes + i.seed_bytes).sum(),
        bytes_in_place: images.iter().map(|i| i.in_place_bytes).sum(),
        bytes_from_booted: images.iter().map(|i| i.seed_bytes).sum(),
        requests: fetcher.requests(),
        planned_bytes,
        resumed: false,
        retries: budget.retried,
        dry_run: opts.dry_run,
        images,
        manifest: release.bytes.clone(),
    };
    events.step(
        "plan",
        &json!({
            "planned_bytes": planned_bytes,
            "bytes_reused": outcome.bytes_reused,
            "images": outcome.images,
        }),
    );
    tracing::info!("plan:\n{}", describe_plan(&outcome));
    let max_download = opts
        .max_download
        .or(session.settings().install.max_download_bytes);
    if let Some(max) = max_download.filter(|max| planned_bytes > *max) {
        return Err(BudgetError(format!(
            "the install needs {planned_bytes} bytes of downloads, more than the {max} bytes allowed (install.max_download_bytes or --max-download){}; nothing was changed. Raise the limit, or see `updater apply --dry-run` for the plan",
            if ignored {
                format!(
                    ", because the server at {} ignores Range requests and sends whole files",
                    fetcher.host()
                )
            } else {
                String::new()
            }
        ))
        .into());
    }
    Ok(Planned { prepared, outcome })
}

/// Whether the server ignores Range, asked once (a request for one byte)
/// when the plan has a range that does not start at the beginning of a
/// file: only then does it cost anything.
fn range_ignored(
    fetcher: &mut dyn Fetcher,
    budget: &mut RetryBudget,
    m: &updater_format::manifest::types::Manifest,
    prepared: &[Prepared],
) -> Result<bool> {
    let ranged = prepared.iter().zip(&m.images).find_map(|(p, img)| match p {
        Prepared::Index { plan, .. } if plan.requests.iter().any(|r| r.start > 0) => Some(img),
        _ => None,
    });
    let Some(img) = ranged else {
        return Ok(false);
    };
    let honoured = budget.run("asking whether the server honours Range requests", |_| {
        fetcher.honours_range(img.file.as_str(), img.compressed_size)
    })?;
    Ok(!honoured)
}

/// Step 3: unbootable everywhere, durably, before the first byte: the env
/// first, then the state. Returns the chunks per image class an interrupted
/// install of the same release already wrote.
fn mark_installing(
    session: &mut Session,
    release: &Verified,
    target: &str,
) -> Result<std::collections::BTreeMap<String, u64>> {
    session
        .bootloader_mut()
        .set_bootable(target, false)
        .with_context(|| format!("marking slot {target} unbootable"))?;
    crate::failpoint!("after-mark-unbootable");
    let r = Release {
        digest: release.digest.clone(),
        version: release.manifest.version.to_string(),
        security_version: release.manifest.security_version,
    };
    let chunks_done = session.transition(|s, now| s.begin_install(target, &r, now))?;
    crate::failpoint!("after-state-installing");
    Ok(chunks_done)
}

/// Step 4: each image through the pipeline into its target, checkpointed.
/// On a failure the group stays unbootable and the state records why (the
/// checkpoint is kept for a resume). Returns the bytes the plan meant to
/// read from the booted slot that had to be fetched instead.
#[allow(clippy::too_many_arguments)]
fn write_images(
    session: &mut Session,
    fetcher: &mut dyn Fetcher,
    budget: &mut RetryBudget,
    release: &Verified,
    prepared: &[Prepared],
    target: &str,
    chunks_done: &std::collections::BTreeMap<String, u64>,
    opts: &Options,
    events: &mut dyn Events,
) -> Result<u64> {
    let mut misses = 0u64;
    let result = (|| -> Result<()> {
        for (img, prep) in release.manifest.images.iter().zip(prepared) {
            let class = img.class.as_str();
            let start = chunks_done.get(class).copied().unwrap_or(0);
            let n = write_image(
                session,
                fetcher,
                budget,
                img,
                prep,
                target,
                start,
                opts,
                events,
                &mut misses,
            )?;
            session.transition(|s, _| s.checkpoint(target, class, n))?;
        }
        Ok(())
    })();
    if let Err(e) = result {
        let reason = OneLine(&e).to_string();
        if let Err(save_err) = session.transition(|s, now| s.install_failed(target, &reason, now)) {
            tracing::error!("could not record the failure in the state: {save_err:#}");
        }
        // What is written stays: the same release resumes where this
        // stopped (a fetch that failed is the common case).
        let resumes = e.chain().any(|c| c.is::<crate::error::FetchError>());
        return Err(if resumes {
            e.context(format!(
                "the install into slot {target} stopped; slot {target} stays unbootable, and `updater apply` of the same release resumes where it stopped"
            ))
        } else {
            e
        });
    }
    Ok(misses)
}

/// One image of step 4: its source (one stream for schema 1, the plan's
/// seeds and ranges for schema 2), run into the target's sink. Returns the
/// image's chunk count.
#[allow(clippy::too_many_arguments)]
fn write_image(
    session: &mut Session,
    fetcher: &mut dyn Fetcher,
    budget: &mut RetryBudget,
    img: &Image,
    prep: &Prepared,
    target: &str,
    start: u64,
    opts: &Options,
    events: &mut dyn Events,
    misses: &mut u64,
) -> Result<u64> {
    let class = img.class.as_str();
    let settings = session.settings();
    let install = settings.install.clone();
    let dir = settings.state_dir.clone();
    let max_download = opts.max_download.or(install.max_download_bytes);
    let mut sink = targets(session).open_sink(target, class, img.size)?;
    let what = format!("installing {class} into {}", sink.describe());
    let mut checkpoint = |n: u64| session.transition(|s, _| s.checkpoint(target, class, n));
    match prep {
        Prepared::Table(table) => {
            let pins = TablePins::new(img, table);
            let start = start.min(table.chunks.len() as u64);
            let mut source = StreamSource::new(fetcher, &pins, img.compressed_size, budget);
            runner::install_image(
                &install,
                &mut source,
                sink.as_mut(),
                &pins,
                start as usize,
                events,
                &mut checkpoint,
            )
            .context(what)?;
            Ok(table.chunks.len() as u64)
        }
        Prepared::Index {
            entries,
            params,
            bytes,
            plan,
            seed,
        } => {
            // Kept first: a resumed install reads its pages here.
            let staged = crate::state::staged_index(&dir, target, class);
            std::fs::create_dir_all(crate::util::fs::parent_dir(&staged))
                .with_context(|| format!("creating {}", staged.display()))?;
            crate::util::fs::write_atomic(&staged, bytes, 0o644)?;
            let pins = IndexPins::new(img, *params, entries);
            let mut source = delta::DeltaSource::new(
                fetcher,
                &pins,
                plan,
                seed.as_deref(),
                budget,
                max_download,
            );
            let r = runner::install_image(
                &install,
                &mut source,
                sink.as_mut(),
                &pins,
                0,
                events,
                &mut checkpoint,
            );
            *misses += source.seed_miss_bytes;
            r.context(what)?;
            Ok(entries.len() as u64)
        }
    }
}

/// Step 5: installed. The indexes and the manifest are kept first, so that
/// an installed group always has them; then the state says `installed`.
fn finish(
    session: &mut Session,
    release: &Verified,
    prepared: &[Prepared],
    target: &str,
) -> Result<()> {
    let dir = session.settings().state_dir.clone();
    for (img, prep) in release.manifest.images.iter().zip(prepared) {
        let class = img.class.as_str();
        let kept = crate::state::kept_index(&dir, target, class);
        match prep {
            Prepared::Index { .. } => {
                let staged = crate::state::staged_index(&dir, target, class);
                crate::util::fs::rename_durable(&staged, &kept)
                    .context("keeping the index of the release installed")?;
            }
            Prepared::Table(_) => crate::util::fs::remove_durable(&kept)?,
        }
    }
    let kept = session.kept_manifest(target);
    std::fs::create_dir_all(crate::util::fs::parent_dir(&kept))
        .with_context(|| format!("creating {}", kept.display()))?;
    crate::util::fs::write_atomic(&kept, &release.bytes, 0o644)?;
    crate::util::fs::sync_dir(crate::util::fs::parent_dir(&kept))?;
    crate::failpoint!("before-state-installed");
    session.transition(|s, now| s.finish_install(target, now))?;
    Ok(())
}

/// Keep what the last install cost, for `status`. Best effort: the install
/// itself is complete and recorded in the state.
fn save_last(dir: &std::path::Path, out: &Installed, now: chrono::DateTime<chrono::Utc>) {
    let v = json!({
        "group": out.group,
        "version": out.version,
        "digest": out.digest,
        "finished": now.to_rfc3339(),
        "bytes_fetched": out.bytes_fetched,
        "bytes_reused": out.bytes_reused,
        "bytes_in_place": out.bytes_in_place,
        "bytes_from_booted": out.bytes_from_booted,
        "planned_bytes": out.planned_bytes,
        "requests": out.requests,
        "resumed": out.resumed,
    });
    let path = crate::state::last_install(dir);
    let mut text = serde_json::to_vec_pretty(&v).unwrap_or_default();
    text.push(b'\n');
    if let Err(e) = crate::util::fs::write_atomic(&path, &text, 0o644) {
        tracing::warn!(
            "could not record the install's figures in {}: {e:#}",
            path.display()
        );
    }
}
