//! `updater verify`.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use serde_json::json;

use super::print_json;
use crate::error::Rejected;
use crate::keys::Keyring;
use crate::manifest::verify::{verify, Policy, Verified, MANIFEST_SIZE_CAP};

/// Arguments of `updater verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The release's manifest.json.
    pub manifest: PathBuf,
    /// The keyring folder to trust.
    #[arg(long)]
    pub keyring: PathBuf,
    /// The device's compatible string (checked when given).
    #[arg(long)]
    pub compatible: Option<String>,
    /// The installed version: a lower release version is refused.
    #[arg(long)]
    pub installed_version: Option<semver::Version>,
    /// The highest security_version seen: a lower one is refused.
    #[arg(long, default_value_t = 0)]
    pub installed_security_version: u64,
    /// Check expiry as of this time (RFC 3339) instead of the clock: would
    /// the release be valid then?
    #[arg(long)]
    pub now: Option<chrono::DateTime<chrono::Utc>>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Read a manifest file with the size cap applied while reading, so that a
/// huge file is refused without being read whole.
pub fn read_capped(path: &std::path::Path) -> Result<Vec<u8>> {
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut bytes = Vec::new();
    f.take(MANIFEST_SIZE_CAP + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", path.display()))?;
    if bytes.len() as u64 > MANIFEST_SIZE_CAP {
        return Err(Rejected::TooLarge {
            what: "manifest",
            size: bytes.len() as u64,
            cap: MANIFEST_SIZE_CAP,
        }
        .into());
    }
    Ok(bytes)
}

pub(super) fn run(a: VerifyArgs) -> Result<()> {
    let keyring = Keyring::load(&a.keyring)?;
    let bytes = read_capped(&a.manifest)?;
    let policy = Policy {
        compatible: a.compatible.clone(),
        installed_version: a.installed_version.clone(),
        min_security_version: a.installed_security_version,
        now: a.now.unwrap_or_else(chrono::Utc::now),
    };
    let result = verify(&bytes, &keyring, &policy);
    match (&result, a.json) {
        (Ok(v), true) => print_json(&summary(v)),
        (Ok(v), false) => print_text(v),
        (Err(e), true) => print_json(&json!({"ok": false, "reason": e.to_string()})),
        (Err(_), false) => {}
    }
    result
        .map(|_| ())
        .with_context(|| format!("verifying {}", a.manifest.display()))
}

/// A JSON summary of a verified release.
pub fn summary(v: &Verified) -> serde_json::Value {
    let m = &v.manifest;
    json!({
        "ok": true,
        "digest": v.digest.hex(),
        "product": m.product,
        "version": m.version.to_string(),
        "security_version": m.security_version,
        "compatible": m.compatible,
        "created": m.created.to_rfc3339(),
        "expires": m.expires.to_rfc3339(),
        "min_agent_version": m.min_agent_version.to_string(),
        "signed_by": v.signed_by,
        "kernel_signed_by": v.kernel_signed_by,
        "images": m.images.iter().map(|i| json!({
            "class": i.class.as_str(),
            "file": i.file.as_str(),
            "size": i.size,
            "sha256": i.sha256.hex(),
            "compressed_size": i.compressed_size,
            "chunks": i.chunks.count,
        })).collect::<Vec<_>>(),
        "cmdline": m.cmdline,
    })
}

fn print_text(v: &Verified) {
    let m = &v.manifest;
    println!(
        "OK: {} {} (security version {})",
        m.product, m.version, m.security_version
    );
    println!("  digest    sha256:{}", v.digest);
    println!("  for       {}", m.compatible.join(", "));
    println!(
        "  valid     {} .. {}",
        m.created.to_rfc3339(),
        m.expires.to_rfc3339()
    );
    println!("  signed by {} manifest key(s)", v.signed_by.len());
    if !v.kernel_signed_by.is_empty() {
        println!(
            "  kernel    signed by {} kernel key(s)",
            v.kernel_signed_by.len()
        );
    }
    for i in &m.images {
        println!(
            "  image     {:<8} {:>12} bytes  sha256:{}",
            i.class, i.size, i.sha256
        );
    }
}
