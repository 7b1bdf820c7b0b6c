//! `updater-vendor root init|rotate|sign|verify`: make and co-sign root
//! versions offline (docs/security.md, "Root rotation").
//!
//! - `root init` writes root version 1 from a keyring folder with a root
//!   role (the device's factory trust), signed by the given root keys;
//! - `root rotate` writes version N+1 from version N, with the roles
//!   changed as asked (keys replaced, thresholds, a floor reset), signed by
//!   whatever keys are given; the holders of the other keys add theirs
//!   with `root sign`, each offline;
//! - `root verify` checks a new version against the trusted one, exactly
//!   as a device will, before it is published beside the releases as
//!   `N.root.json`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use updater_format::envelope::Envelope;
use updater_format::error::usage;
use updater_format::keys::{read_public_key, Keyring, PublicKey};
use updater_format::root::{seal_with, FloorReset, RoleSpec, Root, TrustedRoot, ROOT_PAYLOAD_TYPE};

use super::parse_time;
use crate::fs::write_atomic;

/// `root` subcommands.
#[derive(Debug, Subcommand)]
pub enum RootCommand {
    /// Write root version 1 from a keyring folder with a root role.
    #[command(after_help = super::EXIT_CODES)]
    Init(InitArgs),
    /// Write root version N+1 from version N, with the changes asked for.
    #[command(after_help = super::EXIT_CODES)]
    Rotate(Box<RotateArgs>),
    /// Add a signature to a root document (co-signing, one key at a time).
    #[command(after_help = super::EXIT_CODES)]
    Sign(SignArgs),
    /// Check a root version against the one devices trust now, as they will.
    #[command(after_help = super::EXIT_CODES)]
    Verify(VerifyArgs),
}

/// The signers of a root command: private key files or external signers.
#[derive(Debug, Args)]
pub struct Signers {
    /// A root private key to sign with (repeat for several).
    #[arg(long = "key")]
    pub keys: Vec<PathBuf>,
    /// An external signer, PUBLIC-KEY-FILE=COMMAND: the command gets the
    /// bytes to sign on stdin and writes the raw ed25519 signature on
    /// stdout (an HSM; repeat for several).
    #[arg(long = "signer")]
    pub signers: Vec<String>,
}

/// Arguments of `root init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The keyring folder (made by `keyring init` with --root-key).
    #[arg(long)]
    pub keyring: PathBuf,
    /// The root document to write (publish it as 1.root.json, or put it in
    /// the device's keyring folder as root.json).
    #[arg(long)]
    pub out: PathBuf,
    /// When this root expires (RFC 3339).
    #[arg(long, value_parser = parse_time)]
    pub expires: DateTime<Utc>,
    /// Who signs it.
    #[command(flatten)]
    pub sign: Signers,
}

/// Arguments of `root rotate`.
#[derive(Debug, Args)]
pub struct RotateArgs {
    /// The root version devices trust now.
    #[arg(long)]
    pub from: PathBuf,
    /// The new version to write (publish it as N+1.root.json once signed).
    #[arg(long)]
    pub out: PathBuf,
    /// When the new root expires (RFC 3339).
    #[arg(long, value_parser = parse_time)]
    pub expires: DateTime<Utc>,
    /// Replace the root keys by these public keys (repeat).
    #[arg(long = "root-key")]
    pub root_keys: Vec<PathBuf>,
    /// The root threshold (default: unchanged).
    #[arg(long)]
    pub root_threshold: Option<usize>,
    /// Replace the manifest keys by these public keys (repeat).
    #[arg(long = "manifest-key")]
    pub manifest_keys: Vec<PathBuf>,
    /// The manifest threshold (default: unchanged).
    #[arg(long)]
    pub manifest_threshold: Option<usize>,
    /// Replace the kernel keys by these public keys (repeat).
    #[arg(long = "kernel-key")]
    pub kernel_keys: Vec<PathBuf>,
    /// The kernel threshold (default: unchanged).
    #[arg(long)]
    pub kernel_threshold: Option<usize>,
    /// Replace the channel keys by these public keys (repeat).
    #[arg(long = "channel-key")]
    pub channel_keys: Vec<PathBuf>,
    /// The channel threshold (default: unchanged).
    #[arg(long)]
    pub channel_threshold: Option<usize>,
    /// Reset the security_version floor of every device to this (recovery
    /// from a leaked manifest key; needs --reset-version).
    #[arg(long, requires = "reset_version")]
    pub reset_security_version: Option<u64>,
    /// With the reset: releases from this version on are not downgrades
    /// while the release a device runs at the reset still runs.
    #[arg(long, requires = "reset_security_version")]
    pub reset_version: Option<semver::Version>,
    /// With the reset: forget every channel replay floor.
    #[arg(long, requires = "reset_security_version")]
    pub reset_channels: bool,
    /// The most one release may raise security_version while this root is
    /// trusted (replaces the devices' install.max_security_step).
    #[arg(long)]
    pub max_security_step: Option<u64>,
    /// Who signs it now (the others add theirs with `root sign`).
    #[command(flatten)]
    pub sign: Signers,
}

/// Arguments of `root sign`.
#[derive(Debug, Args)]
pub struct SignArgs {
    /// The root document to add signatures to (rewritten in place).
    pub file: PathBuf,
    /// Who signs.
    #[command(flatten)]
    pub sign: Signers,
}

/// Arguments of `root verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The root version devices trust now.
    #[arg(long)]
    pub trusted: PathBuf,
    /// The next version.
    pub next: PathBuf,
    /// The time to check the new root's expiry at (RFC 3339; default now).
    #[arg(long, value_parser = parse_time)]
    pub now: Option<DateTime<Utc>>,
}

pub(super) fn run(c: RootCommand) -> Result<()> {
    match c {
        RootCommand::Init(a) => init(a),
        RootCommand::Rotate(a) => rotate(*a),
        RootCommand::Sign(a) => sign(a),
        RootCommand::Verify(a) => verify(a),
    }
}

fn init(a: InitArgs) -> Result<()> {
    let ring = Keyring::load(&a.keyring)?;
    let roles = Keyring::load_root_role(&a.keyring, updater_format::keys::test_keys_allowed())?
        .ok_or_else(|| {
            usage(format!(
                "keyring {} has no root role: make it with `keyring init ... --root-key PUB`",
                a.keyring.display()
            ))
        })?;
    let keys: Vec<PublicKey> = roles.keys.into_values().collect();
    let root = Root::from_keyring(&ring, &keys, roles.threshold, 1, a.expires);
    write_signed(&root, Vec::new(), &a.sign, &a.out)?;
    crate::say!("root version 1 written to {}", a.out.display());
    Ok(())
}

fn read_root(path: &Path) -> Result<(Envelope, Root)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let env: Envelope = serde_json::from_slice(&bytes)
        .map_err(|e| usage(format!("{} is not a root document: {e}", path.display())))?;
    if env.payload_type != ROOT_PAYLOAD_TYPE {
        return Err(usage(format!(
            "{} has payloadType {:?}, not a root document",
            path.display(),
            env.payload_type
        )));
    }
    let root: Root = serde_json::from_slice(&env.payload_bytes()?)
        .map_err(|e| usage(format!("{}: {e}", path.display())))?;
    Ok((env, root))
}

fn replace(
    root: &mut Root,
    spec: impl Fn(&mut Root) -> Option<&mut RoleSpec>,
    keys: &[PathBuf],
    threshold: Option<usize>,
    role: &str,
) -> Result<()> {
    let mut new_keys = Vec::new();
    for p in keys {
        new_keys.push(read_public_key(p)?);
    }
    if !new_keys.is_empty() {
        for k in &new_keys {
            root.keys.insert(
                k.id.to_string(),
                updater_format::keys::public_key_pem(&k.key),
            );
        }
    }
    let Some(s) = spec(root) else {
        if new_keys.is_empty() && threshold.is_none() {
            return Ok(());
        }
        return Err(usage(format!(
            "the trusted root has no {role} role to change"
        )));
    };
    if !new_keys.is_empty() {
        s.keyids = new_keys.iter().map(|k| k.id.to_string()).collect();
    }
    if let Some(t) = threshold {
        s.threshold = t;
    }
    Ok(())
}

fn rotate(a: RotateArgs) -> Result<()> {
    let (_, mut root) = read_root(&a.from)?;
    root.version += 1;
    root.expires = a.expires;
    replace(
        &mut root,
        |r| Some(&mut r.roles.root),
        &a.root_keys,
        a.root_threshold,
        "root",
    )?;
    replace(
        &mut root,
        |r| Some(&mut r.roles.manifest),
        &a.manifest_keys,
        a.manifest_threshold,
        "manifest",
    )?;
    replace(
        &mut root,
        |r| Some(&mut r.roles.kernel),
        &a.kernel_keys,
        a.kernel_threshold,
        "kernel",
    )?;
    if root.roles.channel.is_none() && !a.channel_keys.is_empty() {
        root.roles.channel = Some(RoleSpec {
            keyids: Vec::new(),
            threshold: 1,
        });
    }
    replace(
        &mut root,
        |r| r.roles.channel.as_mut(),
        &a.channel_keys,
        a.channel_threshold,
        "channel",
    )?;
    // Keys no role names any more are dropped: they are revoked.
    let named: std::collections::BTreeSet<String> =
        [&root.roles.root, &root.roles.manifest, &root.roles.kernel]
            .into_iter()
            .chain(root.roles.channel.as_ref())
            .flat_map(|s| s.keyids.clone())
            .collect();
    root.keys.retain(|id, _| named.contains(id));
    root.reset = match (a.reset_security_version, a.reset_version) {
        (Some(security_version), Some(version)) => Some(FloorReset {
            security_version,
            version,
            channels: a.reset_channels,
        }),
        _ => None,
    };
    root.max_security_step = a.max_security_step;
    write_signed(&root, Vec::new(), &a.sign, &a.out)?;
    crate::say!(
        "root version {} written to {} ({} signature(s)); it needs a threshold of version {}'s root keys and of its own before devices accept it",
        root.version,
        a.out.display(),
        a.sign.keys.len() + a.sign.signers.len(),
        root.version - 1
    );
    Ok(())
}

fn sign(a: SignArgs) -> Result<()> {
    let (env, root) = read_root(&a.file)?;
    if a.sign.keys.is_empty() && a.sign.signers.is_empty() {
        return Err(usage("root sign needs a --key or a --signer"));
    }
    write_signed(&root, env.signatures, &a.sign, &a.file)?;
    crate::say!("{}: signed", a.file.display());
    Ok(())
}

/// Sign `root` with `sign`'s signers, after the signatures it already has
/// (a key that already signed is refused), and write it.
fn write_signed(
    root: &Root,
    existing: Vec<updater_format::envelope::Signature>,
    sign: &Signers,
    out: &Path,
) -> Result<()> {
    let signers = crate::signer::load(&sign.keys, &sign.signers)?;
    crate::signer::distinct(&signers, "root")?;
    let mut env = seal_with(root, &crate::signer::refs(&signers))?;
    for s in &env.signatures {
        if existing.iter().any(|e| e.keyid == s.keyid) {
            return Err(usage(format!(
                "{} is already signed by key {:.16}",
                out.display(),
                s.keyid
            )));
        }
    }
    let mut all = existing;
    all.append(&mut env.signatures);
    env.signatures = all;
    write_atomic(out, &env.to_json(), 0o644)
}

fn verify(a: VerifyArgs) -> Result<()> {
    let trusted_bytes =
        std::fs::read(&a.trusted).with_context(|| format!("reading {}", a.trusted.display()))?;
    let trusted = TrustedRoot::open_provisioned(&trusted_bytes)
        .map_err(|e| usage(format!("{}: {e}", a.trusted.display())))?;
    let next_bytes =
        std::fs::read(&a.next).with_context(|| format!("reading {}", a.next.display()))?;
    let next = trusted.verify_next(&next_bytes)?;
    next.check_expiry(a.now.unwrap_or_else(Utc::now))?;
    for role in ["root", "manifest", "kernel", "channel"] {
        for id in trusted.dropped(&next, role) {
            crate::say!("revokes {role} key {:.16}", id);
        }
    }
    crate::say!(
        "root version {} follows version {}: devices will accept it (publish it as {}.root.json beside the releases and channels)",
        next.version(),
        trusted.version(),
        next.version()
    );
    Ok(())
}
