//! The root of trust: a signed root document naming, per role (root,
//! manifest, kernel, channel), the keys the device trusts and how many of
//! them must sign. Root versions form a chain: version N+1 is trusted only
//! when a threshold of version N's root keys *and* a threshold of its own
//! root keys signed it, and its version is exactly N+1 (TUF's rule,
//! specification 1.0.34 §5.3). Keys a new root drops are revoked the moment
//! it is accepted.
//!
//! The document is a DSSE envelope with its own payload type
//! ([`ROOT_PAYLOAD_TYPE`]), so that no signature over a manifest or channel
//! can ever count for a root, nor the other way round.
//!
//! This module only verifies: fetching `N+1`, `N+2`… from beside a release,
//! persisting each accepted root and checking the last one's expiry are the
//! device's (docs/security.md, "Root rotation").

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::digest::Sha256Digest;
use crate::envelope::{verify_role, Envelope};
use crate::error::{usage, Rejected};
use crate::keys::{parse_public_key, public_key_pem, KeyId, Keyring, PublicKey, RoleKeys};
pub use crate::limits::{MAX_ROOT_KEYS, MAX_ROOT_ROTATIONS, ROOT_SIZE_CAP};

/// The DSSE payload type of a root document.
pub const ROOT_PAYLOAD_TYPE: &str = "application/vnd.updater.root+json";
/// The root schema this code reads and writes.
pub const ROOT_SCHEMA: u64 = 1;

/// A root document (the DSSE payload).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Root {
    /// Schema version, 1.
    pub schema: u64,
    /// This root's version: 1 for the factory root, then exactly one more
    /// than the root it replaces.
    pub version: u64,
    /// After this the root is refused (checked on the last root of a chain:
    /// intermediate roots may have expired since).
    pub expires: DateTime<Utc>,
    /// Every key the roles name: key id → SPKI PEM.
    pub keys: BTreeMap<String, String>,
    /// Keys and thresholds per role.
    pub roles: RootRoles,
    /// Anti-rollback floors this root sets when the device accepts it
    /// (recovery from a compromised manifest or channel key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset: Option<FloorReset>,
    /// The most one release may raise security_version while this root is
    /// trusted, replacing the device's `install.max_security_step` (a
    /// planned large jump).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_security_step: Option<u64>,
}

/// The roles of a root document.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RootRoles {
    /// Who may sign the next root version.
    pub root: RoleSpec,
    /// Release manifests.
    pub manifest: RoleSpec,
    /// Kernels.
    pub kernel: RoleSpec,
    /// Channel documents (optional, as in the keyring).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<RoleSpec>,
}

/// One role: its key ids and threshold.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RoleSpec {
    /// Key ids (entries of [`Root::keys`]).
    pub keyids: Vec<String>,
    /// Distinct keys that must sign.
    pub threshold: usize,
}

/// Floors a root resets, explicitly and under the root threshold: what a
/// compromised manifest or channel key may have pushed up.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct FloorReset {
    /// The security_version floor becomes this, even when lower.
    pub security_version: u64,
    /// Releases from this version on are not refused as downgrades of the
    /// version the device runs, until the next commit.
    #[cfg_attr(feature = "schema", schemars(with = "String"))]
    pub version: semver::Version,
    /// Forget every channel's replay floor (its newest `issued`).
    #[serde(default)]
    pub channels: bool,
}

/// A root that verified, with its keys parsed.
#[derive(Debug, Clone)]
pub struct TrustedRoot {
    /// The document.
    pub root: Root,
    /// The envelope's bytes as received (what the device persists).
    pub bytes: Vec<u8>,
    /// The sha256 of the signed payload: the root version's identity. A
    /// co-signer adding a signature changes the envelope, not this.
    pub digest: Sha256Digest,
    keys: BTreeMap<KeyId, PublicKey>,
}

impl Root {
    /// Check the document's own consistency: schema, keys (each id the
    /// sha256 of its key), roles naming known keys without repeats,
    /// thresholds between 1 and the role's key count, and no key in two of
    /// the manifest, kernel and channel roles.
    pub fn validate(&self) -> Result<BTreeMap<KeyId, PublicKey>, Rejected> {
        let bad = |reason: String| Rejected::Malformed {
            what: "root",
            reason,
        };
        if self.schema != ROOT_SCHEMA {
            return Err(bad(format!(
                "schema {} is not supported (this agent reads schema {ROOT_SCHEMA})",
                self.schema
            )));
        }
        if self.version == 0 {
            return Err(bad("version 0: root versions start at 1".into()));
        }
        if self.keys.len() > MAX_ROOT_KEYS {
            return Err(bad(format!(
                "{} keys, more than the {MAX_ROOT_KEYS} allowed",
                self.keys.len()
            )));
        }
        let mut keys = BTreeMap::new();
        for (id, pem) in &self.keys {
            let key = parse_public_key(pem, std::path::Path::new("root document"))
                .map_err(|e| bad(format!("key {id:.16}: {e:#}")))?;
            if key.id.as_str() != id {
                return Err(bad(format!(
                    "key listed as {id:.16} has id {}",
                    key.id.short()
                )));
            }
            keys.insert(key.id.clone(), key);
        }
        let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
        for (name, spec) in self.role_specs() {
            let distinct: BTreeSet<&String> = spec.keyids.iter().collect();
            if distinct.len() != spec.keyids.len() {
                // A repeated id would count one key twice toward the
                // threshold (tough CVE-2020-15093).
                return Err(bad(format!("the {name} role lists a key id twice")));
            }
            if spec.threshold == 0 || spec.threshold > spec.keyids.len() {
                return Err(bad(format!(
                    "the {name} threshold is {} but the role has {} key(s)",
                    spec.threshold,
                    spec.keyids.len()
                )));
            }
            for id in &spec.keyids {
                if !self.keys.contains_key(id) {
                    return Err(bad(format!("the {name} role names unknown key {id:.16}")));
                }
                // Role separation, as in the keyring: a stolen manifest key
                // must not sign kernels, a channel key never a release. A root
                // key may not sign anything else either: it is the one kept
                // offline.
                if let Some(other) = seen.insert(id, name) {
                    return Err(bad(format!(
                        "key {id:.16} is in both the {other} and the {name} role; use separate keys"
                    )));
                }
            }
        }
        Ok(keys)
    }

    fn role_specs(&self) -> Vec<(&'static str, &RoleSpec)> {
        let mut v = vec![
            ("root", &self.roles.root),
            ("manifest", &self.roles.manifest),
            ("kernel", &self.roles.kernel),
        ];
        if let Some(c) = &self.roles.channel {
            v.push(("channel", c));
        }
        v
    }

    /// Serialise as pretty JSON (the DSSE payload).
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("a root always serialises")
    }

    /// A root document for `keyring` with the given root keys (version,
    /// expiry as given): how a factory keyring becomes root version 1.
    pub fn from_keyring(
        keyring: &Keyring,
        root_keys: &[PublicKey],
        root_threshold: usize,
        version: u64,
        expires: DateTime<Utc>,
    ) -> Root {
        let mut keys = BTreeMap::new();
        let mut spec = |ks: &mut dyn Iterator<Item = &PublicKey>, threshold: usize| {
            let mut keyids = Vec::new();
            for k in ks {
                keys.insert(k.id.to_string(), public_key_pem(&k.key));
                keyids.push(k.id.to_string());
            }
            RoleSpec { keyids, threshold }
        };
        let rk = |r: &RoleKeys| (r.keys.values().cloned().collect::<Vec<_>>(), r.threshold);
        let (mk, mt) = rk(keyring.role(crate::keys::Role::Manifest));
        let (kk, kt) = rk(keyring.role(crate::keys::Role::Kernel));
        let root = spec(&mut root_keys.iter(), root_threshold);
        let manifest = spec(&mut mk.iter(), mt);
        let kernel = spec(&mut kk.iter(), kt);
        let channel = keyring.has_role(crate::keys::Role::Channel).then(|| {
            let (ck, ct) = rk(keyring.role(crate::keys::Role::Channel));
            spec(&mut ck.iter(), ct)
        });
        Root {
            schema: ROOT_SCHEMA,
            version,
            expires,
            keys,
            roles: RootRoles {
                root,
                manifest,
                kernel,
                channel,
            },
            reset: None,
            max_security_step: None,
        }
    }
}

impl TrustedRoot {
    /// Trust `root` as it is, with no signature check: only for the factory
    /// root, which the read-only image carries as it carries the keyring.
    /// Its consistency is checked. Its digest is that of its JSON.
    pub fn provisioned(root: Root, bytes: Vec<u8>) -> Result<TrustedRoot, Rejected> {
        let keys = root.validate()?;
        let digest = Sha256Digest::of(&root.to_json());
        Ok(TrustedRoot {
            root,
            bytes,
            digest,
            keys,
        })
    }

    /// Parse a root envelope that is trusted as provisioned (the factory
    /// root in an image's keyring folder, or a root the vendor names as
    /// trusted): structure and consistency only, no signature check. Never
    /// for anything read from the writable state folder: the device
    /// verifies those from its factory root (`verify_next`, link by link).
    pub fn open_provisioned(bytes: &[u8]) -> Result<TrustedRoot, Rejected> {
        let (root, body, _) = parse(bytes)?;
        let keys = root.validate()?;
        Ok(TrustedRoot {
            root,
            bytes: bytes.to_vec(),
            digest: Sha256Digest::of(&body),
            keys,
        })
    }

    /// This root's version.
    pub fn version(&self) -> u64 {
        self.root.version
    }

    fn role_keys(&self, spec: &RoleSpec) -> RoleKeys {
        RoleKeys {
            keys: spec
                .keyids
                .iter()
                .filter_map(|id| self.keys.iter().find(|(k, _)| k.as_str() == id))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            threshold: spec.threshold,
        }
    }

    /// The keyring this root trusts for manifests, kernels and channels.
    pub fn keyring(&self) -> Result<Keyring> {
        let keys = |spec: &RoleSpec| self.role_keys(spec).keys.into_values().collect::<Vec<_>>();
        let r = &self.root.roles;
        let ring = Keyring::new(
            keys(&r.manifest),
            r.manifest.threshold,
            keys(&r.kernel),
            r.kernel.threshold,
        )?;
        match &r.channel {
            Some(c) => ring.with_channel(keys(c), c.threshold),
            None => Ok(ring),
        }
    }

    /// Verify `bytes` as the next root: version exactly this one's plus
    /// one, signed by a threshold of this root's root keys and by a
    /// threshold of its own root keys, within the size cap. Expiry is not
    /// checked here (a chain may pass through roots that have expired since;
    /// the caller checks the last one with [`TrustedRoot::check_expiry`]).
    pub fn verify_next(&self, bytes: &[u8]) -> Result<TrustedRoot, Rejected> {
        let (root, body, env) = parse(bytes)?;
        let keys = root.validate()?;
        let next = TrustedRoot {
            root,
            bytes: bytes.to_vec(),
            digest: Sha256Digest::of(&body),
            keys,
        };
        // Signatures first, then the version: a document nobody trusted
        // signed says nothing, not even which version it claims to be.
        let old = self.role_keys(&self.root.roles.root);
        verify_role(
            ROOT_PAYLOAD_TYPE,
            &body,
            &env.signatures,
            &old,
            "root",
            &|_| None,
        )
        .map_err(|e| prefix(e, &format!("root version {}'s keys", self.version())))?;
        let new = next.role_keys(&next.root.roles.root);
        verify_role(
            ROOT_PAYLOAD_TYPE,
            &body,
            &env.signatures,
            &new,
            "root",
            &|_| None,
        )
        .map_err(|e| prefix(e, &format!("the new root's own keys ({})", next.version())))?;
        if next.version() != self.version() + 1 {
            return Err(Rejected::Root(format!(
                "the document says it is root version {}, which cannot follow root version {}: each root must be exactly one more than the last",
                next.version(),
                self.version()
            )));
        }
        Ok(next)
    }

    /// Refuse an expired root.
    pub fn check_expiry(&self, now: DateTime<Utc>) -> Result<(), Rejected> {
        if now >= self.root.expires {
            return Err(Rejected::Root(format!(
                "root version {} expired at {} (now {now}): the vendor publishes a new root version before the last one expires; ask for it, or check the device clock",
                self.version(),
                self.root.expires
            )));
        }
        Ok(())
    }

    /// The key ids of `role` in this root and not in `next` (revoked by it).
    pub fn dropped(&self, next: &TrustedRoot, role: &str) -> Vec<String> {
        let ids = |t: &TrustedRoot| -> BTreeSet<String> {
            t.root
                .role_specs()
                .into_iter()
                .filter(|(n, _)| *n == role)
                .flat_map(|(_, s)| s.keyids.clone())
                .collect()
        };
        ids(self).difference(&ids(next)).cloned().collect()
    }
}

/// The file in a keyring folder holding a provisioned root envelope (made
/// by `updater-vendor root init`), the other way to give a device its
/// factory root besides a `root` role in `keyring.toml`.
pub const FACTORY_ROOT_FILE: &str = "root.json";

/// The factory root of the keyring folder `dir`: its `root.json`, or its
/// `keyring.toml` when that has a `root` role (root version 1, which does
/// not expire: it is provisioned, like the keyring always was). `None` for
/// a keyring without a root role: the device then trusts `keyring.toml` as
/// it is and follows no rotations.
pub fn factory_root(
    dir: &std::path::Path,
    keyring: &Keyring,
    allow_test_keys: bool,
) -> Result<Option<TrustedRoot>> {
    let file = dir.join(FACTORY_ROOT_FILE);
    if file.exists() {
        let bytes =
            std::fs::read(&file).map_err(|e| usage(format!("reading {}: {e}", file.display())))?;
        return TrustedRoot::open_provisioned(&bytes)
            .map(Some)
            .map_err(|e| usage(format!("{}: {e}", file.display())));
    }
    let Some(root_keys) = Keyring::load_root_role(dir, allow_test_keys)? else {
        return Ok(None);
    };
    let keys: Vec<PublicKey> = root_keys.keys.into_values().collect();
    let never = DateTime::<Utc>::from_naive_utc_and_offset(
        chrono::NaiveDate::from_ymd_opt(9999, 12, 31)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .expect("a valid date"),
        Utc,
    );
    let root = Root::from_keyring(keyring, &keys, root_keys.threshold, 1, never);
    TrustedRoot::provisioned(root, Vec::new())
        .map(Some)
        .map_err(|e| usage(format!("keyring {}: {e}", dir.display())))
}

/// Check the size cap, the envelope and its payload type, and parse the
/// payload (unknown fields refused).
fn parse(bytes: &[u8]) -> Result<(Root, Vec<u8>, Envelope), Rejected> {
    if bytes.len() as u64 > ROOT_SIZE_CAP {
        return Err(Rejected::TooLarge {
            what: "root document",
            size: bytes.len() as u64,
            cap: ROOT_SIZE_CAP,
        });
    }
    let env: Envelope = serde_json::from_slice(bytes).map_err(|e| Rejected::Malformed {
        what: "root envelope",
        reason: e.to_string(),
    })?;
    if env.payload_type != ROOT_PAYLOAD_TYPE {
        return Err(Rejected::PayloadType {
            found: env.payload_type,
            expected: ROOT_PAYLOAD_TYPE,
        });
    }
    let body = env.payload_bytes()?;
    let root: Root = serde_json::from_slice(&body).map_err(|e| Rejected::Malformed {
        what: "root",
        reason: e.to_string(),
    })?;
    Ok((root, body, env))
}

fn prefix(e: Rejected, whose: &str) -> Rejected {
    match e {
        Rejected::Threshold {
            role,
            valid,
            threshold,
            mut problems,
        } => {
            problems.insert(0, format!("counted against {whose}"));
            Rejected::Threshold {
                role,
                valid,
                threshold,
                problems,
            }
        }
        other => other,
    }
}

/// Sign a root document with `keys` (after checking its consistency).
pub fn seal(root: &Root, keys: &[&crate::keys::PrivateKey]) -> Result<Envelope> {
    let signers: Vec<&dyn crate::envelope::Signer> = keys
        .iter()
        .map(|k| *k as &dyn crate::envelope::Signer)
        .collect();
    seal_with(root, &signers)
}

/// Sign a root document with any signers (after checking its consistency).
pub fn seal_with(root: &Root, signers: &[&dyn crate::envelope::Signer]) -> Result<Envelope> {
    root.validate()
        .map_err(|e| usage(format!("the root document is not consistent: {e}")))?;
    Envelope::seal_with(ROOT_PAYLOAD_TYPE, &root.to_json(), signers)
}
