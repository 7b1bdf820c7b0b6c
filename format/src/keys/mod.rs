//! Ed25519 keys in the PEM forms OpenSSL uses (PKCS#8 private, SPKI public),
//! key ids, and the keyring the agent trusts.

mod keyring;

pub use keyring::{
    Keyring, KeyringIndex, Role, RoleIndex, RoleKeys, FORMAT as KEYRING_FORMAT, KEYRING_FILE,
};

use std::fmt;
use std::path::Path;

use anyhow::{Context, Result};
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePublicKey};
use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::error::usage;

/// A key's id: lowercase hex sha256 of its SPKI DER encoding, so that
/// `openssl pkey -pubin -in K.pub -outform DER | sha256sum` prints the same.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(String);

impl KeyId {
    /// The id of a public key.
    pub fn of(key: &VerifyingKey) -> KeyId {
        let der = key
            .to_public_key_der()
            .expect("an ed25519 public key always encodes");
        KeyId(hex::encode(Sha256::digest(der.as_bytes())))
    }

    /// The id as written in envelopes and keyrings.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 16 hex digits, for messages.
    pub fn short(&self) -> &str {
        &self.0[..16.min(self.0.len())]
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", self.short())
    }
}

/// A private signing key with its id.
pub struct PrivateKey {
    /// The key itself.
    pub key: SigningKey,
    /// Its public key's id.
    pub id: KeyId,
}

/// A trusted public key with its id and the file it came from.
#[derive(Clone, Debug)]
pub struct PublicKey {
    /// The key itself.
    pub key: VerifyingKey,
    /// Its id.
    pub id: KeyId,
}

impl PublicKey {
    /// Wrap a verifying key.
    pub fn new(key: VerifyingKey) -> Self {
        let id = KeyId::of(&key);
        PublicKey { key, id }
    }
}

/// Read a PKCS#8 PEM ed25519 private key (as `updater-vendor keygen` or
/// `openssl genpkey -algorithm ed25519` writes it).
pub fn read_private_key(path: &Path) -> Result<PrivateKey> {
    let pem = std::fs::read_to_string(path)
        .with_context(|| format!("reading private key {}", path.display()))?;
    let key = SigningKey::from_pkcs8_pem(&pem).map_err(|e| {
        usage(format!(
            "{} is not a PKCS#8 PEM ed25519 private key ({e}); make one with `updater-vendor keygen` or `openssl genpkey -algorithm ed25519`",
            path.display()
        ))
    })?;
    let id = KeyId::of(&key.verifying_key());
    Ok(PrivateKey { key, id })
}

/// Parse an SPKI PEM ed25519 public key.
pub fn parse_public_key(pem: &str, origin: &Path) -> Result<PublicKey> {
    let key = VerifyingKey::from_public_key_pem(pem).map_err(|e| {
        usage(format!(
            "{} is not an SPKI PEM ed25519 public key ({e}); export one with `openssl pkey -pubout`",
            origin.display()
        ))
    })?;
    Ok(PublicKey::new(key))
}

/// Read an SPKI PEM ed25519 public key.
pub fn read_public_key(path: &Path) -> Result<PublicKey> {
    let pem = std::fs::read_to_string(path)
        .with_context(|| format!("reading public key {}", path.display()))?;
    parse_public_key(&pem, path)
}

/// Encode a public key as SPKI PEM.
pub fn public_key_pem(key: &VerifyingKey) -> String {
    key.to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
        .expect("an ed25519 public key always encodes")
}

/// Ids of the keys in the repository's keys/test/, which no product build may
/// trust (see keys/README.md).
pub fn test_key_ids() -> Vec<KeyId> {
    const TEST_KEYS: &[&str] = &[
        include_str!("../../../keys/test/manifest-1.pub"),
        include_str!("../../../keys/test/manifest-2.pub"),
        include_str!("../../../keys/test/kernel-1.pub"),
    ];
    TEST_KEYS
        .iter()
        .map(|pem| {
            parse_public_key(pem, Path::new("keys/test"))
                .expect("keys/test holds valid public keys")
                .id
        })
        .collect()
}

/// Whether this build may trust the keys in keys/test/: debug builds (tests)
/// and builds with the `test-keys` feature (the QEMU proof) may; a product
/// build (release profile, no feature) refuses them. `debug_assertions`
/// follows the profile of the whole build, so a release build of the agent
/// compiles this crate without it too.
pub fn test_keys_allowed() -> bool {
    cfg!(debug_assertions) || cfg!(feature = "test-keys")
}
