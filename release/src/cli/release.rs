//! `updater-vendor release create` and `updater-vendor release sign`.

use std::path::PathBuf;

use anyhow::Result;
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};

use crate::{CreateOptions, Expiry, DEFAULT_EXPIRY_DAYS};

/// `updater-vendor release` subcommands.
#[derive(Debug, Subcommand)]
pub enum ReleaseCommand {
    /// Make a signed release folder, ready to be served by any static HTTP server.
    #[command(after_help = super::EXIT_CODES, after_long_help = super::with_examples(super::CREATE_EXAMPLES))]
    Create(Box<CreateArgs>),
    /// Add a signature to a release manifest (to meet a threshold).
    #[command(after_help = super::EXIT_CODES)]
    Sign(SignArgs),
}

/// Arguments of `updater-vendor release create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Output folder (created; must be empty).
    #[arg(long)]
    pub out: PathBuf,
    /// Manifest-role private key (repeat to sign with several).
    #[arg(long = "key", required_unless_present = "signers")]
    pub keys: Vec<PathBuf>,
    /// A manifest-role external signer, PUBLIC-KEY-FILE=COMMAND: the
    /// command gets the bytes to sign on stdin and writes the raw ed25519
    /// signature on stdout (an HSM, a KMS; repeat for several).
    #[arg(long = "signer")]
    pub signers: Vec<String>,
    /// Product name.
    #[arg(long)]
    pub product: String,
    /// Release version (semver).
    #[arg(long)]
    pub version: semver::Version,
    /// Security version (monotonic; devices refuse lower ones).
    #[arg(long)]
    pub security_version: u64,
    /// Device compatible string (repeat for several).
    #[arg(long, required = true)]
    pub compatible: Vec<String>,
    /// An image: CLASS=PATH (e.g. rootfs=rootfs.ext4); repeat for several.
    #[arg(long = "image", value_parser = parse_image)]
    pub images: Vec<(String, PathBuf)>,
    /// The kernel image (bzImage), class `kernel`; needs --kernel-key.
    #[arg(long)]
    pub kernel: Option<PathBuf>,
    /// Kernel-role private key (repeat for several).
    #[arg(long = "kernel-key")]
    pub kernel_keys: Vec<PathBuf>,
    /// A kernel-role external signer, PUBLIC-KEY-FILE=COMMAND (as --signer).
    #[arg(long = "kernel-signer")]
    pub kernel_signers: Vec<String>,
    /// The initrd, class `initrd`.
    #[arg(long)]
    pub initrd: Option<PathBuf>,
    /// A Unified Kernel Image, class `uki`, instead of --kernel and
    /// --initrd: its .linux section is signed with --kernel-key, its
    /// .initrd section pinned, its .cmdline section is the release's
    /// command line. Needs --kernel-key.
    #[arg(long, conflicts_with_all = ["kernel", "initrd"])]
    pub uki: Option<PathBuf>,
    /// An OSTree release, for devices whose slots are OSTree deployments:
    /// the vendor build's repository, whose commit of --ref devices deploy,
    /// instead of images. Read with the `ostree` command; the commit is
    /// exported into OUT/repo by an untrusted pull (every object checked)
    /// unless --ostree-url names where it is served. Needs --kernel-key:
    /// the tree's kernel is signed like any release's.
    #[arg(long, requires = "refname", conflicts_with_all = ["images", "kernel", "initrd", "uki"])]
    pub ostree_repo: Option<PathBuf>,
    /// The ref to release, with --ostree-repo (`os/x86_64/stable`).
    #[arg(long = "ref", requires = "ostree_repo")]
    pub refname: Option<String>,
    /// The OS name (ostree's stateroot) on the devices [default: the product].
    #[arg(long, requires = "ostree_repo")]
    pub osname: Option<String>,
    /// Where devices fetch the commit's objects, relative to the manifest
    /// (a repository shared by releases, `../repo`) [default: the commit is
    /// exported into OUT/repo].
    #[arg(long, requires = "ostree_repo")]
    pub ostree_url: Option<String>,
    /// The kernel's path in the tree [default: /usr/lib/modules/KVER/vmlinuz].
    #[arg(long, requires = "ostree_repo")]
    pub ostree_kernel: Option<String>,
    /// The initrd's path in the tree [default: initramfs.img beside the
    /// kernel, when there is one].
    #[arg(long, requires = "ostree_repo")]
    pub ostree_initrd: Option<String>,
    /// Also make a static delta of the commit beside the manifest
    /// (`ostree.delta`, pinned): from nothing, or from --static-delta-from.
    #[arg(long, requires = "ostree_repo")]
    pub static_delta: bool,
    /// The commit (or ref) devices run now, that the static delta applies to.
    #[arg(long, requires = "static_delta")]
    pub static_delta_from: Option<String>,
    /// Kernel command line (the agent appends root and updater.slot=).
    #[arg(long)]
    pub cmdline: Option<String>,
    /// Expiry: an RFC 3339 time or a number of days after creation [default: 90].
    #[arg(long)]
    pub expires: Option<Expiry>,
    /// Creation time, RFC 3339 (default now; set it for reproducible builds).
    /// A relative --expires counts from it.
    #[arg(long)]
    pub created: Option<DateTime<Utc>>,
    /// The time the release is checked against (default now): with
    /// --created in the past, for a build or test on a fixed clock.
    #[arg(long)]
    pub now: Option<DateTime<Utc>>,
    /// The longest validity (days from creation to expiry) the devices
    /// accept: their install.max_release_validity_days. A release valid for
    /// longer is refused.
    #[arg(long, default_value_t = crate::DEFAULT_MAX_VALIDITY_DAYS)]
    pub max_validity_days: u32,
    /// Make the release even when devices would refuse it (already expired,
    /// or valid for longer than --max-validity-days), with a warning: test
    /// vectors.
    #[arg(long)]
    pub force: bool,
    /// Oldest agent version allowed to install the release (default this one).
    #[arg(long)]
    pub min_agent_version: Option<semver::Version>,
    /// Chunk size in bytes: with schema 2 the average of the content-defined
    /// chunks, a power of two from 1024 to 1048576 [default: from the image
    /// size, 8 KiB to 64 KiB]; with schema 1 the fixed size [default: 4 MiB].
    #[arg(long)]
    pub chunk_size: Option<u64>,
    /// Manifest schema: 2 (content-defined chunks with a paged index, which
    /// devices update by difference) or 1 (fixed chunks, for agents older
    /// than 0.2).
    #[arg(long, default_value_t = updater_format::manifest::types::SCHEMA_VERSION)]
    pub schema: u64,
    /// zstd compression level (1-19).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=19))]
    pub zstd_level: i32,
}

/// Arguments of `updater-vendor release sign`.
#[derive(Debug, Args)]
pub struct SignArgs {
    /// Manifest-role private key.
    #[arg(long, required_unless_present = "signer", conflicts_with = "signer")]
    pub key: Option<PathBuf>,
    /// A manifest-role external signer, PUBLIC-KEY-FILE=COMMAND (as in
    /// `release create --signer`).
    #[arg(long)]
    pub signer: Option<String>,
    /// The release's manifest.json.
    pub manifest: PathBuf,
}

fn parse_image(s: &str) -> Result<(String, PathBuf), String> {
    match s.split_once('=') {
        Some((c, p)) if !c.is_empty() && !p.is_empty() => Ok((c.to_string(), PathBuf::from(p))),
        _ => Err(format!("{s:?} is not CLASS=PATH")),
    }
}

pub(super) fn run(c: ReleaseCommand) -> Result<()> {
    match c {
        ReleaseCommand::Create(a) => {
            let a = *a;
            let osname = a.osname.clone().unwrap_or_else(|| a.product.clone());
            let opts = CreateOptions {
                out: a.out,
                keys: a.keys,
                signers: a.signers,
                product: a.product,
                version: a.version,
                security_version: a.security_version,
                compatible: a.compatible,
                images: a.images,
                kernel: a.kernel,
                kernel_keys: a.kernel_keys,
                kernel_signers: a.kernel_signers,
                initrd: a.initrd,
                uki: a.uki,
                ostree: a.ostree_repo.map(|repo| crate::ostree::OstreeSource {
                    repo,
                    refname: a.refname.unwrap_or_default(),
                    osname,
                    url: a.ostree_url,
                    kernel_path: a.ostree_kernel,
                    initrd_path: a.ostree_initrd,
                    static_delta: a.static_delta.then_some(a.static_delta_from),
                }),
                cmdline: a.cmdline,
                expires: a.expires.unwrap_or(Expiry::Days(DEFAULT_EXPIRY_DAYS)),
                created: a.created.unwrap_or_else(Utc::now),
                now: a.now.unwrap_or_else(Utc::now),
                max_validity_days: a.max_validity_days,
                force: a.force,
                min_agent_version: a.min_agent_version,
                chunk_size: a.chunk_size,
                zstd_level: a.zstd_level,
                schema: a.schema,
            };
            let m = crate::create(&opts)?;
            crate::say!(
                "release {} {} in {}: {} image(s), expires {}",
                m.product,
                m.version,
                opts.out.display(),
                m.images.len(),
                m.expires.to_rfc3339()
            );
            if let Some(o) = &m.ostree {
                crate::say!(
                    "  ostree commit {} ({}), objects at {}{}",
                    o.commit,
                    o.refname,
                    o.repo,
                    o.static_delta
                        .as_ref()
                        .map(|d| format!(", static delta {} ({} bytes)", d.file, d.size))
                        .unwrap_or_default()
                );
            }
            for i in &m.images {
                crate::say!(
                    "  {:<8} {:>12} bytes -> {} ({} bytes, {} chunks)",
                    i.class,
                    i.size,
                    i.file,
                    i.compressed_size,
                    i.chunk_count()
                );
            }
            Ok(())
        }
        ReleaseCommand::Sign(a) => {
            let signer = crate::signer::load(a.key.as_slice(), a.signer.as_slice())?
                .pop()
                .expect("clap requires --key or --signer");
            let n = crate::add_signature(&a.manifest, signer.as_ref())?;
            crate::say!("{}: now {n} signature(s)", a.manifest.display());
            Ok(())
        }
    }
}
