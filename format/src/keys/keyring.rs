//! The keyring: trusted public keys per role, with a threshold per role.
//!
//! On disk it is a directory holding SPKI PEM files and `keyring.toml`, which
//! names, per role, the files to trust and how many distinct keys must sign.
//! The format is documented in keys/README.md.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::{read_public_key, test_key_ids, test_keys_allowed, KeyId, PublicKey};
use crate::error::usage;
use crate::names::check_plain_name;

/// The keyring's index file inside the keyring directory.
pub const KEYRING_FILE: &str = "keyring.toml";
/// The keyring index format this code reads and writes.
pub const FORMAT: u32 = 1;

/// What a key is trusted to sign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Release manifests.
    Manifest,
    /// Kernels (checked again right before kexec).
    Kernel,
    /// Channel documents (which release a fleet should run). Optional: a
    /// keyring without it can install releases but not follow a channel.
    Channel,
}

impl Role {
    /// Every role, in a fixed order.
    pub const ALL: [Role; 3] = [Role::Manifest, Role::Kernel, Role::Channel];

    /// The role's name in files and messages.
    pub fn name(self) -> &'static str {
        match self {
            Role::Manifest => "manifest",
            Role::Kernel => "kernel",
            Role::Channel => "channel",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The keys of one role and its threshold.
#[derive(Debug, Clone)]
pub struct RoleKeys {
    /// Trusted keys by id.
    pub keys: BTreeMap<KeyId, PublicKey>,
    /// Distinct valid signatures required.
    pub threshold: usize,
}

/// Trusted keys per role.
#[derive(Debug, Clone)]
pub struct Keyring {
    manifest: RoleKeys,
    kernel: RoleKeys,
    channel: Option<RoleKeys>,
}

/// What `role()` answers for a role the keyring does not have: no key can
/// meet its threshold.
static NO_KEYS: RoleKeys = RoleKeys {
    keys: BTreeMap::new(),
    threshold: 1,
};

/// `keyring.toml`: per role, the key files to trust and the threshold.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyringIndex {
    /// Always [`FORMAT`].
    pub format: u32,
    /// Manifest keys.
    pub manifest: RoleIndex,
    /// Kernel keys.
    pub kernel: RoleIndex,
    /// Channel keys (optional role).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<RoleIndex>,
    /// Root keys (optional): with them the keyring is root version 1, and
    /// the device follows root rotations (docs/security.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<RoleIndex>,
}

/// One role in `keyring.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleIndex {
    /// Distinct keys that must sign.
    pub threshold: usize,
    /// Key file names in the keyring folder.
    pub keys: Vec<String>,
}

impl Keyring {
    /// Build a keyring from keys already in memory (validates thresholds and
    /// role separation the same way as [`Keyring::load`]).
    pub fn new(
        manifest: Vec<PublicKey>,
        manifest_threshold: usize,
        kernel: Vec<PublicKey>,
        kernel_threshold: usize,
    ) -> Result<Keyring> {
        let manifest = role_keys(Role::Manifest, manifest, manifest_threshold)?;
        let kernel = role_keys(Role::Kernel, kernel, kernel_threshold)?;
        // One key in two roles would let a stolen manifest key also sign
        // kernels, which is exactly what the kernel role exists to prevent.
        if let Some(id) = manifest
            .keys
            .keys()
            .find(|id| kernel.keys.contains_key(*id))
        {
            return Err(usage(format!(
                "key {} is trusted for both the manifest and the kernel role; use separate keys",
                id.short()
            )));
        }
        Ok(Keyring {
            manifest,
            kernel,
            channel: None,
        })
    }

    /// Add the channel role (its keys must not be in any other role: a stolen
    /// channel key may steer the fleet between signed releases, never sign one).
    pub fn with_channel(mut self, keys: Vec<PublicKey>, threshold: usize) -> Result<Keyring> {
        let channel = role_keys(Role::Channel, keys, threshold)?;
        for other in [Role::Manifest, Role::Kernel] {
            if let Some(id) = channel
                .keys
                .keys()
                .find(|id| self.role(other).keys.contains_key(*id))
            {
                return Err(usage(format!(
                    "key {} is trusted for both the channel and the {other} role; use separate keys",
                    id.short()
                )));
            }
        }
        self.channel = Some(channel);
        Ok(self)
    }

    /// Whether the keyring has keys for `role`.
    pub fn has_role(&self, role: Role) -> bool {
        role != Role::Channel || self.channel.is_some()
    }

    /// Load a keyring directory.
    pub fn load(dir: &Path) -> Result<Keyring> {
        Self::load_with_policy(dir, test_keys_allowed())
    }

    /// Load a keyring directory; `allow_test_keys` says whether keys from the
    /// repository's keys/test/ may be trusted.
    pub fn load_with_policy(dir: &Path, allow_test_keys: bool) -> Result<Keyring> {
        let index = dir.join(KEYRING_FILE);
        let text = match std::fs::read_to_string(&index) {
            Ok(t) => t,
            // A keyring that is not there is a configuration to fix (the
            // `keyring` setting, or the image), not an I/O failure.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(usage(format!(
                    "no keyring at {}: check the keyring setting, or make one with `updater-vendor keyring init {}`",
                    index.display(),
                    dir.display()
                )))
            }
            Err(e) => {
                return Err(e).with_context(|| format!("reading keyring {}", index.display()))
            }
        };
        let file: KeyringIndex = toml::from_str(&text)
            .map_err(|e| usage(format!("{}: {}", index.display(), one_line(&e.to_string()))))?;
        if file.format != FORMAT {
            return Err(usage(format!(
                "{}: format {} is not supported (this agent reads format {FORMAT})",
                index.display(),
                file.format
            )));
        }
        let read_role = |role: Role, rf: &RoleIndex| -> Result<Vec<PublicKey>> {
            let mut keys = Vec::new();
            for name in &rf.keys {
                check_plain_name(name, "key file name")
                    .map_err(|e| usage(format!("{}: {role} key {name:?}: {e}", index.display())))?;
                keys.push(read_public_key(&dir.join(name))?);
            }
            Ok(keys)
        };
        let manifest = read_role(Role::Manifest, &file.manifest)?;
        let kernel = read_role(Role::Kernel, &file.kernel)?;
        let channel = match &file.channel {
            Some(rf) => Some(read_role(Role::Channel, rf)?),
            None => None,
        };
        if !allow_test_keys {
            let test_ids = test_key_ids();
            if let Some(k) = manifest
                .iter()
                .chain(&kernel)
                .chain(channel.iter().flatten())
                .find(|k| test_ids.contains(&k.id))
            {
                return Err(usage(format!(
                    "keyring {} trusts key {}, one of the repository's test keys (keys/test/), which a product build never trusts",
                    dir.display(),
                    k.id.short()
                )));
            }
        }
        let ring = Self::new(
            manifest,
            file.manifest.threshold,
            kernel,
            file.kernel.threshold,
        );
        match (channel, &file.channel) {
            (Some(keys), Some(rf)) => ring.and_then(|r| r.with_channel(keys, rf.threshold)),
            _ => ring,
        }
        .with_context(|| format!("loading keyring {}", dir.display()))
    }

    /// The root role of a keyring directory's index, if it has one: its
    /// keys and threshold (the keyring is then root version 1).
    pub fn load_root_role(dir: &Path, allow_test_keys: bool) -> Result<Option<RoleKeys>> {
        let index = dir.join(KEYRING_FILE);
        let text = std::fs::read_to_string(&index)
            .with_context(|| format!("reading keyring {}", index.display()))?;
        let file: KeyringIndex = toml::from_str(&text)
            .map_err(|e| usage(format!("{}: {}", index.display(), one_line(&e.to_string()))))?;
        let Some(rf) = file.root else {
            return Ok(None);
        };
        let mut keys = Vec::new();
        for name in &rf.keys {
            check_plain_name(name, "key file name")
                .map_err(|e| usage(format!("{}: root key {name:?}: {e}", index.display())))?;
            let k = read_public_key(&dir.join(name))?;
            if !allow_test_keys && test_key_ids().contains(&k.id) {
                return Err(usage(format!(
                    "keyring {} trusts root key {}, one of the repository's test keys (keys/test/), which a product build never trusts",
                    dir.display(),
                    k.id.short()
                )));
            }
            keys.push(k);
        }
        let mut map = BTreeMap::new();
        for k in keys {
            map.insert(k.id.clone(), k);
        }
        if map.len() != rf.keys.len() || rf.threshold == 0 || rf.threshold > map.len() {
            return Err(usage(format!(
                "{}: the root role needs distinct keys and a threshold between 1 and their number",
                index.display()
            )));
        }
        Ok(Some(RoleKeys {
            keys: map,
            threshold: rf.threshold,
        }))
    }

    /// The keys of a role.
    pub fn role(&self, role: Role) -> &RoleKeys {
        match role {
            Role::Manifest => &self.manifest,
            Role::Kernel => &self.kernel,
            Role::Channel => self.channel.as_ref().unwrap_or(&NO_KEYS),
        }
    }

    /// The role a key belongs to, if any.
    pub fn role_of(&self, id: &str) -> Option<Role> {
        Role::ALL
            .into_iter()
            .find(|r| self.role(*r).keys.keys().any(|k| k.as_str() == id))
    }
}

fn role_keys(role: Role, keys: Vec<PublicKey>, threshold: usize) -> Result<RoleKeys> {
    let mut map = BTreeMap::new();
    for k in keys {
        if map.insert(k.id.clone(), k.clone()).is_some() {
            return Err(usage(format!(
                "{role} key {} is listed twice; a threshold counts distinct keys",
                k.id.short()
            )));
        }
    }
    if map.is_empty() {
        return Err(usage(format!("the {role} role has no keys")));
    }
    if threshold == 0 || threshold > map.len() {
        return Err(usage(format!(
            "the {role} threshold is {threshold} but the role has {} key(s); it must be between 1 and the number of keys",
            map.len()
        )));
    }
    Ok(RoleKeys {
        keys: map,
        threshold,
    })
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_test_keys() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../keys/test")
    }

    #[test]
    fn product_policy_refuses_the_repository_test_keys() {
        let err = Keyring::load_with_policy(&repo_test_keys(), false).unwrap_err();
        assert!(
            err.to_string()
                .contains("one of the repository's test keys"),
            "{err}"
        );
        Keyring::load_with_policy(&repo_test_keys(), true).unwrap();
    }

    #[test]
    fn keyring_file_errors_name_the_file_and_key() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(KEYRING_FILE), "format = 1\n[manifest]\nthreshold = 1\nkeys = [\"../x.pub\"]\n[kernel]\nthreshold = 1\nkeys = []\n").unwrap();
        let err = format!("{:#}", Keyring::load(dir.path()).unwrap_err());
        assert!(
            err.contains("keyring.toml") && err.contains("\"../x.pub\""),
            "{err}"
        );
        std::fs::write(dir.path().join(KEYRING_FILE), "format = 1\nbogus = 2\n").unwrap();
        let err = format!("{:#}", Keyring::load(dir.path()).unwrap_err());
        assert!(
            err.contains("unknown field") && err.contains("bogus"),
            "{err}"
        );
    }
}
