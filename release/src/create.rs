//! `updater-vendor release create`: chunk, compress and hash images, then write and
//! sign the manifest.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chrono::{DateTime, Duration, SubsecRound as _, Utc};
use sha2::{Digest, Sha256};

use updater_format::chunker::{chunk_stream, ChunkParams};
use updater_format::envelope::{sign_with, Envelope, MANIFEST_PAYLOAD_TYPE};
use updater_format::error::usage;
use updater_format::index::{self, ChunkHash, Entry};
use updater_format::manifest::types::{
    BlobInfo, Chunk, ChunkTable, ChunkTableRef, ClassName, Compression, FileName, Image, IndexRef,
    KernelInfo, Manifest, UkiInfo, CHUNK_TABLE_SCHEMA, MIN_SCHEMA_VERSION, SCHEMA_VERSION,
};
use updater_format::manifest::verify::{
    check_cmdline, check_structure, kernel_statement, KERNEL_PAYLOAD_TYPE,
};
use updater_format::Sha256Digest;

use crate::fs::write_atomic;

/// Default uncompressed chunk size of a schema-1 release: big enough for
/// good zstd ratios and large sequential writes, small enough that a
/// resumed download loses little and that two chunks in flight stay far
/// under the agent's memory budget.
pub const DEFAULT_CHUNK_SIZE: u64 = 4 * 1024 * 1024;
/// Default lifetime of a release.
pub const DEFAULT_EXPIRY_DAYS: i64 = 90;
/// The longest validity devices accept by default (their
/// `install.max_release_validity_days`): a year and a day.
pub const DEFAULT_MAX_VALIDITY_DAYS: u32 = 366;

/// When a release expires.
#[derive(Debug, Clone, Copy)]
pub enum Expiry {
    /// At a fixed time.
    At(DateTime<Utc>),
    /// This many days after `created`.
    Days(i64),
}

impl std::str::FromStr for Expiry {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Ok(days) = s.parse::<i64>() {
            if days <= 0 {
                return Err(format!(
                    "--expires {days}: the number of days must be positive"
                ));
            }
            return Ok(Expiry::Days(days));
        }
        DateTime::parse_from_rfc3339(s)
            .map(|t| Expiry::At(t.with_timezone(&Utc)))
            .map_err(|e| {
                format!("--expires {s:?} is neither a number of days nor an RFC 3339 time ({e})")
            })
    }
}

/// Everything `release create` needs.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    /// Output folder (created; must be empty).
    pub out: PathBuf,
    /// Manifest-role private keys.
    pub keys: Vec<PathBuf>,
    /// Manifest-role external signers (`PUB=COMMAND`, crate::signer).
    pub signers: Vec<String>,
    /// Product name.
    pub product: String,
    /// Release version.
    pub version: semver::Version,
    /// Security version.
    pub security_version: u64,
    /// Compatible strings.
    pub compatible: Vec<String>,
    /// Images by class.
    pub images: Vec<(String, PathBuf)>,
    /// Kernel image (class `kernel`).
    pub kernel: Option<PathBuf>,
    /// Kernel-role private keys.
    pub kernel_keys: Vec<PathBuf>,
    /// Kernel-role external signers (`PUB=COMMAND`, crate::signer).
    pub kernel_signers: Vec<String>,
    /// Initrd image (class `initrd`).
    pub initrd: Option<PathBuf>,
    /// A Unified Kernel Image (class `uki`), instead of a kernel and an
    /// initrd.
    pub uki: Option<PathBuf>,
    /// An OSTree commit instead of images (`--ostree-repo`).
    pub ostree: Option<crate::ostree::OstreeSource>,
    /// Kernel command line.
    pub cmdline: Option<String>,
    /// Expiry.
    pub expires: Expiry,
    /// Creation time: the vendor's clock, or a fixed time for reproducible
    /// builds and tests (`--created`).
    pub created: DateTime<Utc>,
    /// The vendor's clock now: a release already expired then is refused.
    pub now: DateTime<Utc>,
    /// The longest validity devices accept, in days (their
    /// `install.max_release_validity_days`): a longer one is refused.
    pub max_validity_days: u32,
    /// Make the release although it is expired or valid for longer than
    /// devices accept (a test vector), with a warning.
    pub force: bool,
    /// Oldest agent allowed to install.
    pub min_agent_version: Option<semver::Version>,
    /// Schema 2: the average chunk size, a power of two (default: from each
    /// image's size, [`ChunkParams::for_image`]). Schema 1: the fixed chunk
    /// size (default [`DEFAULT_CHUNK_SIZE`]).
    pub chunk_size: Option<u64>,
    /// zstd level.
    pub zstd_level: i32,
    /// The manifest schema to write: 2 (content-defined chunks and an index,
    /// the default), or 1 for agents older than 0.2.
    pub schema: u64,
}

/// The version of this tool, the default `min_agent_version` (the agent and
/// the tooling are released together).
pub fn tool_version() -> semver::Version {
    semver::Version::parse(env!("CARGO_PKG_VERSION")).expect("the crate version is semver")
}

/// Create a signed release folder. Returns the manifest written. Every
/// input is checked before anything is written; the manifest is written
/// last, so that a folder without one is visibly unfinished.
pub fn create(opts: &CreateOptions) -> Result<Manifest> {
    let signers = check_signers(opts)?;
    let layout = layout(opts)?;
    if let Some(c) = &opts.cmdline {
        check_cmdline(c).map_err(|e| usage(format!("--cmdline: {e}")))?;
    }
    let uki_parts = match &opts.uki {
        Some(p) => Some(read_uki(p, opts.cmdline.as_deref())?),
        None => None,
    };
    // An OSTree release's commit and boot files are read before anything
    // is written, as images are checked.
    let ostree = opts
        .ostree
        .as_ref()
        .map(crate::ostree::resolve)
        .transpose()?;
    let sources = if ostree.is_some() {
        if !opts.images.is_empty() || opts.initrd.is_some() {
            return Err(usage(
                "an OSTree release carries its content in the commit: give --ostree-repo, or --image/--kernel/--initrd/--uki, not both",
            ));
        }
        Vec::new()
    } else {
        image_sources(opts)?
    };
    let (created, expires) = validity(opts)?;
    prepare_out_dir(&opts.out)?;
    let images = pack_images(opts, &sources, layout)?;
    let kernel = sign_kernel(&images, &signers.kernel)?;
    let (uki, uki_cmdline) = match uki_parts {
        Some(parts) => {
            let (info, cmdline) = sign_uki(&images, parts, &signers.kernel)?;
            (Some(info), cmdline)
        }
        None => (None, None),
    };
    let ostree = match (ostree, &opts.ostree) {
        (Some(r), Some(src)) => {
            let k = r.kernel();
            let kernel = sign_kernel_blob(
                &BlobInfo {
                    size: k.len() as u64,
                    sha256: Sha256Digest::of(k),
                },
                &signers.kernel,
            )?;
            Some(crate::ostree::write(src, r, kernel, &opts.out)?)
        }
        _ => None,
    };
    let manifest = Manifest {
        schema: opts.schema,
        product: opts.product.clone(),
        compatible: opts.compatible.clone(),
        version: opts.version.clone(),
        security_version: opts.security_version,
        created,
        expires,
        min_agent_version: opts.min_agent_version.clone().unwrap_or_else(tool_version),
        initrd: blob(&images, "initrd"),
        kernel,
        images,
        cmdline: uki_cmdline.or_else(|| opts.cmdline.clone()),
        uki,
        ostree,
    };
    check_structure(&manifest).map_err(|e| usage(format!("the release would be invalid: {e}")))?;
    let payload = serde_json::to_vec_pretty(&manifest).context("encoding the manifest")?;
    let env = Envelope::seal_with(
        MANIFEST_PAYLOAD_TYPE,
        &payload,
        &crate::signer::refs(&signers.manifest),
    )?;
    write_atomic(&opts.out.join("manifest.json"), &env.to_json(), 0o644)?;
    Ok(manifest)
}

/// The manifest's and the kernel's signers, loaded and checked apart.
struct Signers {
    manifest: Vec<Box<dyn updater_format::envelope::Signer>>,
    kernel: Vec<Box<dyn updater_format::envelope::Signer>>,
}

/// The signers of both roles: at least one for the manifest, kernel signers
/// exactly when there is a kernel, no key in both roles, none twice.
fn check_signers(opts: &CreateOptions) -> Result<Signers> {
    if opts.keys.is_empty() && opts.signers.is_empty() {
        return Err(usage(
            "release create needs at least one --key or --signer (manifest role)",
        ));
    }
    let keys = crate::signer::load(&opts.keys, &opts.signers)?;
    crate::signer::distinct(&keys, "manifest")?;
    let kernel_keys = crate::signer::load(&opts.kernel_keys, &opts.kernel_signers)?;
    crate::signer::distinct(&kernel_keys, "kernel")?;
    let boots = opts.kernel.is_some() || opts.uki.is_some() || opts.ostree.is_some();
    match (boots, kernel_keys.is_empty()) {
        (true, true) => {
            return Err(usage(
                "--kernel, --uki and --ostree-repo need --kernel-key or --kernel-signer: a kernel is always signed by a kernel-role key",
            ))
        }
        (false, false) => {
            return Err(usage(
                "--kernel-key given without --kernel, --uki or --ostree-repo",
            ))
        }
        _ => {}
    }
    if opts.ostree.is_some() && (opts.kernel.is_some() || opts.uki.is_some()) {
        return Err(usage(
            "an OSTree release boots the kernel inside its commit: give --ostree-repo, or --kernel/--uki, not both",
        ));
    }
    if opts.uki.is_some() && (opts.kernel.is_some() || opts.initrd.is_some()) {
        return Err(usage(
            "--uki carries its own kernel and initrd: give --uki, or --kernel and --initrd, not both",
        ));
    }
    if let Some(k) = kernel_keys
        .iter()
        .find(|k| keys.iter().any(|m| m.key_id() == k.key_id()))
    {
        return Err(usage(format!(
            "key {} is given for both the manifest and the kernel role; the manifest and kernel roles need separate keys",
            k.key_id().short()
        )));
    }
    Ok(Signers {
        manifest: keys,
        kernel: kernel_keys,
    })
}

/// How the images are cut, from the schema and `--chunk-size`.
fn layout(opts: &CreateOptions) -> Result<Layout> {
    if !(MIN_SCHEMA_VERSION..=SCHEMA_VERSION).contains(&opts.schema) {
        return Err(usage(format!(
            "--schema {}: this tool writes schemas {MIN_SCHEMA_VERSION} to {SCHEMA_VERSION}",
            opts.schema
        )));
    }
    Ok(match (opts.schema, opts.chunk_size) {
        (1, size) => {
            let size = size.unwrap_or(DEFAULT_CHUNK_SIZE);
            if !(1..=1 << 30).contains(&size) {
                return Err(usage("--chunk-size must be between 1 byte and 1 GiB"));
            }
            Layout::Fixed(size)
        }
        (_, None) => Layout::Cdc(None),
        (_, Some(avg)) => {
            let p = ChunkParams {
                min: (avg / 4) as u32,
                avg: avg as u32,
                max: avg.saturating_mul(4).min(u32::MAX as u64) as u32,
            };
            p.validate()
                .ok()
                .filter(|_| avg <= 1 << 20)
                .ok_or_else(|| {
                    usage(format!(
                        "--chunk-size {avg}: with schema 2 it is the average chunk size, a power of two from 1024 to 1048576"
                    ))
                })?;
            Layout::Cdc(Some(p))
        }
    })
}

/// Each image to pack, by class: `--image`s, then the kernel and initrd;
/// each a non-empty regular file.
fn image_sources(opts: &CreateOptions) -> Result<Vec<(ClassName, PathBuf)>> {
    let mut sources: Vec<(ClassName, PathBuf)> = Vec::new();
    for (class, path) in &opts.images {
        let c = ClassName::new(class).map_err(usage)?;
        if matches!(c.as_str(), "kernel" | "initrd" | "uki") {
            return Err(usage(format!(
                "use --{c} PATH for the {c} image, not --image {c}=PATH"
            )));
        }
        sources.push((c, path.clone()));
    }
    for (class, path) in [
        ("kernel", &opts.kernel),
        ("initrd", &opts.initrd),
        ("uki", &opts.uki),
    ] {
        if let Some(p) = path {
            sources.push((ClassName::new(class).expect("a valid class"), p.clone()));
        }
    }
    if sources.is_empty() {
        return Err(usage(
            "a release needs at least one --image, --kernel, --initrd or --uki, or --ostree-repo",
        ));
    }
    for (c, p) in &sources {
        let md = std::fs::metadata(p)
            .with_context(|| format!("reading image {c} from {}", p.display()))?;
        if !md.is_file() || md.len() == 0 {
            return Err(usage(format!(
                "image {c} ({}) is not a non-empty regular file",
                p.display()
            )));
        }
    }
    Ok(sources)
}

/// When the release was made (whole seconds: RFC 3339 with fractions is
/// legal but noisy in manifests) and when it expires, after that.
fn validity(opts: &CreateOptions) -> Result<(DateTime<Utc>, DateTime<Utc>)> {
    let created = opts.created.trunc_subsecs(0);
    let expires = match opts.expires {
        Expiry::At(t) => t,
        Expiry::Days(d) => created + Duration::days(d),
    };
    if expires <= created {
        return Err(usage(format!(
            "--expires {expires} is not after the creation time {created}"
        )));
    }
    let days = (expires - created).num_days();
    let max = Duration::days(i64::from(opts.max_validity_days));
    let mut problems = Vec::new();
    if expires - created > max {
        problems.push(format!(
            "it would be valid for {days} days, and devices refuse a release valid for more than {} (their install.max_release_validity_days, 366 by default): sign it with a shorter --expires, or give --max-validity-days if your devices accept more",
            opts.max_validity_days
        ));
    }
    if expires <= opts.now {
        problems.push(format!(
            "it would be expired already (created {}, expires {}, now {}): every device refuses it; give a later --expires or --created",
            created.to_rfc3339(),
            expires.to_rfc3339(),
            opts.now.to_rfc3339()
        ));
    }
    for p in &problems {
        if opts.force {
            tracing::warn!("making the release anyway (--force): {p}");
        } else {
            return Err(usage(format!("{p} (--force makes it anyway)")));
        }
    }
    Ok((created, expires))
}

/// Cut, compress and hash every image into the output folder.
fn pack_images(
    opts: &CreateOptions,
    sources: &[(ClassName, PathBuf)],
    layout: Layout,
) -> Result<Vec<Image>> {
    let mut images = Vec::new();
    for (class, path) in sources {
        images.push(
            match layout {
                Layout::Fixed(size) => write_image(class, path, &opts.out, size, opts.zstd_level),
                Layout::Cdc(params) => {
                    write_image_cdc(class, path, &opts.out, params, opts.zstd_level)
                }
            }
            .with_context(|| format!("packing image {class} from {}", path.display()))?,
        );
    }
    Ok(images)
}

/// The size and sha256 of the image of `class`, if the release has one.
fn blob(images: &[Image], class: &str) -> Option<BlobInfo> {
    images
        .iter()
        .find(|i| i.class.as_str() == class)
        .map(|i| BlobInfo {
            size: i.size,
            sha256: i.sha256,
        })
}

/// The kernel's entry: its size and hash, signed by every kernel signer
/// (over the hash and size, docs/architecture.md "Departures").
fn sign_kernel(
    images: &[Image],
    signers: &[Box<dyn updater_format::envelope::Signer>],
) -> Result<Option<KernelInfo>> {
    match blob(images, "kernel") {
        Some(b) => sign_kernel_blob(&b, signers).map(Some),
        None => Ok(None),
    }
}

/// A kernel's entry: its size and hash, and every kernel signer's
/// signature over them.
fn sign_kernel_blob(
    b: &BlobInfo,
    signers: &[Box<dyn updater_format::envelope::Signer>],
) -> Result<KernelInfo> {
    let statement = kernel_statement(&b.sha256, b.size);
    let mut signatures = Vec::new();
    for s in signers {
        signatures.push(sign_with(KERNEL_PAYLOAD_TYPE, &statement, s.as_ref())?);
    }
    Ok(KernelInfo {
        size: b.size,
        sha256: b.sha256,
        signatures,
    })
}

/// What a UKI carries that the manifest pins: its `.linux` section (the
/// kernel a kexec loads), its `.initrd`, and its `.cmdline` as text.
struct UkiParts {
    linux: BlobInfo,
    initrd: Option<BlobInfo>,
    cmdline: Option<String>,
}

/// Read a UKI's sections, as the agent will unpack them before a kexec.
fn read_uki(path: &std::path::Path, cmdline: Option<&str>) -> Result<UkiParts> {
    let bytes =
        std::fs::read(path).with_context(|| format!("reading the UKI {}", path.display()))?;
    let bad = |e: String| usage(format!("--uki {}: {e}", path.display()));
    let pin = |b: &[u8]| BlobInfo {
        size: b.len() as u64,
        sha256: updater_format::Sha256Digest::of(b),
    };
    let linux = updater_format::pe::section(&bytes, ".linux")
        .map_err(|e| bad(e.to_string()))?
        .ok_or_else(|| bad("it has no .linux section: not a Unified Kernel Image".into()))?;
    let initrd = updater_format::pe::section(&bytes, ".initrd").map_err(|e| bad(e.to_string()))?;
    let text = updater_format::pe::section(&bytes, ".cmdline")
        .map_err(|e| bad(e.to_string()))?
        .map(|c| {
            String::from_utf8(c.to_vec())
                .map(|t| t.trim_end_matches(['\0', '\n', ' ']).to_string())
                .map_err(|_| bad("its .cmdline section is not UTF-8".into()))
        })
        .transpose()?;
    if let Some(t) = &text {
        check_cmdline(t).map_err(|e| bad(format!("its .cmdline section: {e}")))?;
        if cmdline.is_some_and(|c| c != t) {
            return Err(bad(format!(
                "--cmdline differs from the UKI's own .cmdline section {t:?}; under Secure Boot sd-stub boots the UKI's, so the release carries that one: drop --cmdline"
            )));
        }
    }
    Ok(UkiParts {
        linux: pin(linux),
        initrd: initrd.map(pin),
        cmdline: text.or_else(|| cmdline.map(str::to_string)),
    })
}

/// The UKI's entry: the whole image's pin, its `.linux` signed by every
/// kernel signer as a kernel is, its `.initrd` pinned; and the command
/// line the release carries.
fn sign_uki(
    images: &[Image],
    parts: UkiParts,
    signers: &[Box<dyn updater_format::envelope::Signer>],
) -> Result<(UkiInfo, Option<String>)> {
    let whole = blob(images, "uki").context("the UKI image was not packed")?;
    Ok((
        UkiInfo {
            size: whole.size,
            sha256: whole.sha256,
            linux: sign_kernel_blob(&parts.linux, signers)?,
            initrd: parts.initrd,
        },
        parts.cmdline,
    ))
}

/// How images are cut.
#[derive(Debug, Clone, Copy)]
enum Layout {
    /// Schema 1: fixed-size chunks.
    Fixed(u64),
    /// Schema 2: content-defined chunks (parameters from the image's size
    /// unless given).
    Cdc(Option<ChunkParams>),
}

fn prepare_out_dir(out: &Path) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut entries =
        std::fs::read_dir(out).with_context(|| format!("reading {}", out.display()))?;
    if entries.next().is_some() {
        return Err(usage(format!(
            "output folder {} is not empty; releases are never written over other files",
            out.display()
        )));
    }
    Ok(())
}

/// Read up to `buf.len()` bytes, fewer only at end of file.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Split `src` into chunks, compress each independently (on every core) and
/// append the frames to `dst`. Returns the chunk table and the totals.
pub fn chunk_file(
    src: &mut impl Read,
    dst: &mut impl Write,
    chunk_size: u64,
    level: i32,
) -> Result<(ChunkTable, u64, Sha256Digest, u64, Sha256Digest)> {
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mut chunks = Vec::new();
    let (mut size, mut csize) = (0u64, 0u64);
    let (mut whole, mut cwhole) = (Sha256::new(), Sha256::new());
    loop {
        let mut batch = Vec::new();
        for _ in 0..workers {
            let mut buf = vec![0u8; chunk_size as usize];
            let n = read_full(src, &mut buf).context("reading the image")?;
            if n == 0 {
                break;
            }
            buf.truncate(n);
            batch.push(buf);
            if (n as u64) < chunk_size {
                break;
            }
        }
        if batch.is_empty() {
            break;
        }
        let last = batch.last().map(|b| b.len() as u64) != Some(chunk_size);
        let compressed: Vec<std::io::Result<Vec<u8>>> = std::thread::scope(|s| {
            let handles: Vec<_> = batch
                .iter()
                .map(|raw| s.spawn(move || zstd::bulk::compress(raw, level)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("compression thread"))
                .collect()
        });
        for (raw, comp) in batch.iter().zip(compressed) {
            let comp = comp.context("compressing a chunk")?;
            dst.write_all(&comp).context("writing the image file")?;
            whole.update(raw);
            cwhole.update(&comp);
            chunks.push(Chunk {
                offset: csize,
                csize: comp.len() as u64,
                csha256: Sha256Digest::of(&comp),
                size: raw.len() as u64,
                sha256: Sha256Digest::of(raw),
            });
            size += raw.len() as u64;
            csize += comp.len() as u64;
        }
        if last {
            break;
        }
    }
    let table = ChunkTable {
        schema: CHUNK_TABLE_SCHEMA,
        chunk_size,
        chunks,
    };
    Ok((
        table,
        size,
        Sha256Digest::from_hasher(whole),
        csize,
        Sha256Digest::from_hasher(cwhole),
    ))
}

fn write_image(
    class: &ClassName,
    src: &Path,
    out: &Path,
    chunk_size: u64,
    level: i32,
) -> Result<Image> {
    let file = FileName::new(&format!("{class}.img.zst")).map_err(usage)?;
    let table_file = FileName::new(&format!("{class}.chunks.json")).map_err(usage)?;
    let mut input = File::open(src).with_context(|| format!("opening {}", src.display()))?;
    let dst_path = out.join(file.as_str());
    let dst =
        File::create(&dst_path).with_context(|| format!("creating {}", dst_path.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, dst);
    let (table, size, sha256, compressed_size, compressed_sha256) =
        chunk_file(&mut input, &mut w, chunk_size, level)?;
    let dst = w
        .into_inner()
        .map_err(|e| e.into_error())
        .context("flushing the image file")?;
    dst.sync_all()
        .with_context(|| format!("syncing {}", dst_path.display()))?;
    let mut table_json = serde_json::to_vec(&table).context("encoding the chunk table")?;
    table_json.push(b'\n');
    write_atomic(&out.join(table_file.as_str()), &table_json, 0o644)?;
    Ok(Image {
        class: class.clone(),
        file,
        size,
        sha256,
        compression: Compression::ZstdChunked,
        compressed_size,
        compressed_sha256: Some(compressed_sha256),
        chunks: Some(ChunkTableRef {
            file: table_file,
            size: table_json.len() as u64,
            sha256: Sha256Digest::of(&table_json),
            count: table.chunks.len() as u64,
        }),
        index: None,
    })
}

/// Chunks compressed per batch, spread over every core.
const BATCH_BYTES: usize = 16 << 20;

/// Compress one chunk, or keep it as it is where zstd would not make it
/// smaller (random data): the device then needs no decompression for it,
/// and the index marks it with `csize == size`.
fn pack(z: &mut zstd::bulk::Compressor<'_>, raw: &[u8], out: &mut Vec<u8>) -> Result<()> {
    out.clear();
    let comp = z.compress(raw).context("compressing a chunk")?;
    if comp.len() < raw.len() {
        out.extend_from_slice(&comp);
    } else {
        out.extend_from_slice(raw);
    }
    Ok(())
}

/// Compress a batch of chunks (spans of `data`) on every core, in order.
fn pack_batch(data: &[u8], spans: &[(usize, usize)], level: i32) -> Result<Vec<Vec<u8>>> {
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(spans.len().max(1));
    let per = spans.len().div_ceil(workers.max(1)).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = spans
            .chunks(per)
            .map(|part| {
                s.spawn(move || -> Result<Vec<Vec<u8>>> {
                    let mut z = zstd::bulk::Compressor::new(level).context("setting up zstd")?;
                    part.iter()
                        .map(|&(at, len)| {
                            let mut out = Vec::new();
                            pack(&mut z, &data[at..at + len], &mut out)?;
                            Ok(out)
                        })
                        .collect()
                })
            })
            .collect();
        let mut all = Vec::with_capacity(spans.len());
        for h in handles {
            all.extend(h.join().expect("compression thread")?);
        }
        Ok(all)
    })
}

/// Cut `src` into content-defined chunks, compress each on its own (on
/// every core), write them back to back into `dst` and return the index
/// entries with the totals: (entries, size, sha256, compressed size).
pub fn cut_file(
    src: &mut impl Read,
    dst: &mut impl Write,
    params: ChunkParams,
    level: i32,
) -> Result<(Vec<Entry>, u64, Sha256Digest, u64)> {
    let mut entries = Vec::new();
    let mut whole = Sha256::new();
    let (mut size, mut csize) = (0u64, 0u64);
    let mut batch: Vec<u8> = Vec::with_capacity(BATCH_BYTES + params.max as usize);
    let mut spans: Vec<(usize, usize)> = Vec::new();
    let mut flush = |batch: &mut Vec<u8>, spans: &mut Vec<(usize, usize)>| -> Result<()> {
        let packed = pack_batch(batch, spans, level)?;
        for (&(at, len), p) in spans.iter().zip(&packed) {
            let raw = &batch[at..at + len];
            dst.write_all(p).context("writing the image file")?;
            let hash = ChunkHash::of(raw);
            entries.push(Entry {
                size: len as u32,
                csize: p.len() as u32,
                hash,
                // A chunk kept as it is has its compressed hash equal to its
                // hash: nothing to hash twice.
                chash: if p.len() == len {
                    hash
                } else {
                    ChunkHash::of(p)
                },
            });
            size += len as u64;
            csize += p.len() as u64;
        }
        whole.update(&batch[..]);
        batch.clear();
        spans.clear();
        Ok(())
    };
    chunk_stream::<_, anyhow::Error>(src, params, |_, chunk| {
        spans.push((batch.len(), chunk.len()));
        batch.extend_from_slice(chunk);
        if batch.len() >= BATCH_BYTES {
            flush(&mut batch, &mut spans)?;
        }
        Ok(())
    })
    .context("reading the image")?;
    if !spans.is_empty() {
        flush(&mut batch, &mut spans)?;
    }
    Ok((entries, size, Sha256Digest::from_hasher(whole), csize))
}

fn write_image_cdc(
    class: &ClassName,
    src: &Path,
    out: &Path,
    params: Option<ChunkParams>,
    level: i32,
) -> Result<Image> {
    let file = FileName::new(&format!("{class}.img.zst")).map_err(usage)?;
    let index_file = FileName::new(&format!("{class}.index")).map_err(usage)?;
    let mut input = File::open(src).with_context(|| format!("opening {}", src.display()))?;
    let len = input
        .metadata()
        .with_context(|| format!("reading {}", src.display()))?
        .len();
    let params = params.unwrap_or_else(|| ChunkParams::for_image(len));
    let dst_path = out.join(file.as_str());
    let dst =
        File::create(&dst_path).with_context(|| format!("creating {}", dst_path.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, dst);
    let (entries, size, sha256, compressed_size) = cut_file(&mut input, &mut w, params, level)?;
    let dst = w
        .into_inner()
        .map_err(|e| e.into_error())
        .context("flushing the image file")?;
    dst.sync_all()
        .with_context(|| format!("syncing {}", dst_path.display()))?;
    if entries.len() as u64 > updater_format::limits::MAX_CHUNKS {
        return Err(usage(format!(
            "image {class} cuts into {} chunks, more than the {} a release may have; pass a larger --chunk-size",
            entries.len(),
            updater_format::limits::MAX_CHUNKS
        )));
    }
    let bytes = index::encode(params, &entries);
    let root_size = index::root_len(&bytes).map_err(anyhow::Error::from)?;
    write_atomic(&out.join(index_file.as_str()), &bytes, 0o644)?;
    Ok(Image {
        class: class.clone(),
        file,
        size,
        sha256,
        compression: Compression::ZstdCdc,
        compressed_size,
        compressed_sha256: None,
        chunks: None,
        index: Some(IndexRef {
            file: index_file,
            size: bytes.len() as u64,
            root_size: root_size as u64,
            root_sha256: Sha256Digest::of(&bytes[..root_size]),
            chunks: entries.len() as u64,
        }),
    })
}
