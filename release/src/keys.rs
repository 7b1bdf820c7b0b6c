//! `keygen` and `keyring init`: the files a vendor makes once.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use ed25519_dalek::pkcs8::EncodePrivateKey;
use ed25519_dalek::SigningKey;
use updater_format::error::usage;
use updater_format::keys::{
    public_key_pem, read_public_key, KeyId, Keyring, KeyringIndex, PrivateKey, PublicKey, Role,
    RoleIndex, KEYRING_FILE, KEYRING_FORMAT,
};
use updater_format::names::check_plain_name;

use crate::fs::write_atomic;

/// Make a new key pair: `DIR/NAME.key` (PKCS#8 PEM, mode 0600) and
/// `DIR/NAME.pub` (SPKI PEM). Refuses to overwrite either file.
pub fn keygen(
    dir: &Path,
    name: &str,
) -> Result<(PrivateKey, std::path::PathBuf, std::path::PathBuf)> {
    check_plain_name(name, "key name").map_err(usage)?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let priv_path = dir.join(format!("{name}.key"));
    let pub_path = dir.join(format!("{name}.pub"));
    for p in [&priv_path, &pub_path] {
        if p.exists() {
            return Err(usage(format!(
                "{} already exists; pick another --name or move it away (keys are never overwritten)",
                p.display()
            )));
        }
    }
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("reading the system's random number generator")?;
    let key = SigningKey::from_bytes(&seed);
    // PKCS#8 v1 (no embedded public key): OpenSSL 3.0 refuses the v2 form
    // that ed25519-dalek writes by default, and v1 is what `openssl genpkey`
    // itself writes.
    let v1 = ed25519_dalek::pkcs8::KeypairBytes {
        secret_key: key.to_bytes(),
        public_key: None,
    };
    let pem = v1
        .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
        .context("encoding the private key")?;
    write_atomic(&priv_path, pem.as_bytes(), 0o600)?;
    let vk = key.verifying_key();
    write_atomic(&pub_path, public_key_pem(&vk).as_bytes(), 0o644)?;
    let id = KeyId::of(&vk);
    Ok((PrivateKey { key, id }, priv_path, pub_path))
}

/// Public key files and the threshold of one role, for [`keyring_init`].
pub struct RoleInit<'a> {
    /// The public key files.
    pub keys: &'a [PathBuf],
    /// Distinct keys that must sign.
    pub threshold: usize,
}

/// Create a keyring directory from public key files: copies them in as
/// `manifest-N.pub` / `kernel-N.pub` / `channel-N.pub` / `root-N.pub` and
/// writes `keyring.toml`. The channel role is left out when it has no keys;
/// with root keys the keyring is root version 1 (docs/security.md, "Root
/// rotation").
pub fn keyring_init(
    dir: &Path,
    manifest_init: RoleInit,
    kernel_init: RoleInit,
    channel_init: RoleInit,
    root_init: RoleInit,
) -> Result<Keyring> {
    let load = |paths: &[PathBuf]| -> Result<Vec<PublicKey>> {
        paths.iter().map(|p| read_public_key(p)).collect()
    };
    let manifest = load(manifest_init.keys)?;
    let kernel = load(kernel_init.keys)?;
    let channel = load(channel_init.keys)?;
    // Validate everything before writing anything.
    let mut ring = Keyring::new(
        manifest.clone(),
        manifest_init.threshold,
        kernel.clone(),
        kernel_init.threshold,
    )?;
    if !channel.is_empty() {
        ring = ring.with_channel(channel.clone(), channel_init.threshold)?;
    }
    let root = load(root_init.keys)?;
    if !root.is_empty() {
        // The same checks a device makes of root version 1 (distinct keys,
        // threshold, no root key in another role).
        updater_format::root::Root::from_keyring(
            &ring,
            &root,
            root_init.threshold,
            1,
            // Not signed here: the expiry is unused by the check.
            chrono::DateTime::UNIX_EPOCH,
        )
        .validate()
        .map_err(|e| usage(format!("the root role: {e}")))?;
    }
    if dir.join(KEYRING_FILE).exists() {
        return Err(usage(format!(
            "{} already holds a keyring; remove it first or choose another directory",
            dir.display()
        )));
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut file = KeyringIndex {
        format: KEYRING_FORMAT,
        manifest: RoleIndex {
            threshold: manifest_init.threshold,
            keys: vec![],
        },
        kernel: RoleIndex {
            threshold: kernel_init.threshold,
            keys: vec![],
        },
        channel: None,
        root: None,
    };
    let mut root_file = RoleIndex {
        threshold: root_init.threshold,
        keys: vec![],
    };
    let mut channel_file = RoleIndex {
        threshold: channel_init.threshold,
        keys: vec![],
    };
    for (role, keys, rf) in [
        (Role::Manifest, &manifest, &mut file.manifest),
        (Role::Kernel, &kernel, &mut file.kernel),
        (Role::Channel, &channel, &mut channel_file),
    ]
    .into_iter()
    .map(|(r, k, f)| (r.name(), k, f))
    .chain([("root", &root, &mut root_file)])
    {
        for (i, k) in keys.iter().enumerate() {
            let name = format!("{}-{}.pub", role, i + 1);
            write_atomic(&dir.join(&name), public_key_pem(&k.key).as_bytes(), 0o644)?;
            rf.keys.push(name);
        }
    }
    if !channel.is_empty() {
        file.channel = Some(channel_file);
    }
    if !root.is_empty() {
        file.root = Some(root_file);
    }
    let text = format!(
        "# updater keyring (format documented in keys/README.md)\n{}",
        toml::to_string(&file).context("encoding keyring.toml")?
    );
    write_atomic(&dir.join(KEYRING_FILE), text.as_bytes(), 0o644)?;
    Ok(ring)
}
