//! `updater-vendor release sign`: add a signature to an existing manifest, so that
//! several key holders can meet a threshold without sharing keys.

use std::path::Path;

use anyhow::{Context, Result};

use updater_format::envelope::{sign_with, Envelope, Signer, MANIFEST_PAYLOAD_TYPE};
use updater_format::error::usage;
use updater_format::manifest::verify::{parse_manifest, MANIFEST_SIZE_CAP};

use crate::fs::write_atomic;

/// Add `key`'s signature to the envelope at `manifest_path`. Returns the
/// number of signatures now present.
pub fn add_signature(manifest_path: &Path, key: &dyn Signer) -> Result<usize> {
    let bytes = std::fs::read(manifest_path)
        .with_context(|| format!("reading {}", manifest_path.display()))?;
    if bytes.len() as u64 > MANIFEST_SIZE_CAP {
        return Err(usage(format!(
            "{} is larger than a manifest can be",
            manifest_path.display()
        )));
    }
    let mut env: Envelope = serde_json::from_slice(&bytes).map_err(|e| {
        usage(format!(
            "{} is not a release envelope: {e}",
            manifest_path.display()
        ))
    })?;
    if env.payload_type != MANIFEST_PAYLOAD_TYPE {
        return Err(usage(format!(
            "{} has payloadType {:?}, not a release manifest",
            manifest_path.display(),
            env.payload_type
        )));
    }
    let payload = env.payload_bytes()?;
    // Refuse to sign something that is not a manifest this tool understands:
    // a signature is an endorsement of the content.
    parse_manifest(&payload)?;
    if env
        .signatures
        .iter()
        .any(|s| s.keyid == key.key_id().as_str())
    {
        return Err(usage(format!(
            "{} is already signed by key {}",
            manifest_path.display(),
            key.key_id().short()
        )));
    }
    env.signatures
        .push(sign_with(MANIFEST_PAYLOAD_TYPE, &payload, key)?);
    write_atomic(manifest_path, &env.to_json(), 0o644)?;
    Ok(env.signatures.len())
}
