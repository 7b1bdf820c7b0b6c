//! The root of trust's chain rules, one test per case ported from the TUF
//! conformance suite (theupdateframework/tuf-conformance: the root cases of
//! test_updater_key_rotations, test_rollback, test_expiration and
//! test_keys), restated for this format. docs/security.md lists them with
//! their origin. The device-side cases (a root that fails is never
//! persisted, fetching the chain, revocation at install time, fast-forward
//! recovery) are in agent/tests/cli/root.rs.

use chrono::{DateTime, TimeZone, Utc};
use ed25519_dalek::SigningKey;
use updater_format::envelope::{pae, Envelope, Signature};
use updater_format::error::Rejected;
use updater_format::keys::{KeyId, PrivateKey, PublicKey, Role};
use updater_format::root::{RoleSpec, Root, RootRoles, TrustedRoot, ROOT_PAYLOAD_TYPE};

fn key(n: u8) -> PrivateKey {
    let key = SigningKey::from_bytes(&[n; 32]);
    let id = KeyId::of(&key.verifying_key());
    PrivateKey { key, id }
}

fn public(k: &PrivateKey) -> PublicKey {
    PublicKey::new(k.key.verifying_key())
}

fn t(year: i32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(year, 1, 1, 0, 0, 0).unwrap()
}

/// A root of `version` whose root role is `root_keys` (threshold
/// `threshold`); manifest key 101, kernel key 102, channel key 103.
fn doc(version: u64, root_keys: &[u8], threshold: usize) -> Root {
    doc_with(version, root_keys, threshold, 101)
}

fn doc_with(version: u64, root_keys: &[u8], threshold: usize, manifest: u8) -> Root {
    let mut keys = std::collections::BTreeMap::new();
    let mut spec = |ns: &[u8], threshold: usize| {
        let mut keyids = Vec::new();
        for n in ns {
            let k = key(*n);
            keys.insert(
                k.id.to_string(),
                updater_format::keys::public_key_pem(&k.key.verifying_key()),
            );
            keyids.push(k.id.to_string());
        }
        RoleSpec { keyids, threshold }
    };
    let roles = RootRoles {
        root: spec(root_keys, threshold),
        manifest: spec(&[manifest], 1),
        kernel: spec(&[102], 1),
        channel: Some(spec(&[103], 1)),
    };
    Root {
        schema: 1,
        version,
        expires: t(2030),
        keys,
        roles,
        reset: None,
        max_security_step: None,
    }
}

fn signed(root: &Root, signers: &[u8]) -> Vec<u8> {
    let keys: Vec<PrivateKey> = signers.iter().map(|n| key(*n)).collect();
    let refs: Vec<&PrivateKey> = keys.iter().collect();
    Envelope::seal(ROOT_PAYLOAD_TYPE, &root.to_json(), &refs).to_json()
}

fn factory() -> TrustedRoot {
    let r = doc(1, &[1], 1);
    let bytes = signed(&r, &[1]);
    TrustedRoot::provisioned(r, bytes).unwrap()
}

fn threshold_error(e: Rejected) -> (usize, usize) {
    match e {
        Rejected::Threshold {
            valid, threshold, ..
        } => (valid, threshold),
        other => panic!("expected a threshold failure, got {other}"),
    }
}

// --- test_updater_key_rotations: test_root_rotation ------------------------

#[test]
fn root_rotation_1_of_1_key_rotation() {
    // v2 replaces key 1 by key 2: signed by both (old threshold, new
    // threshold).
    let v2 = factory()
        .verify_next(&signed(&doc(2, &[2], 1), &[1, 2]))
        .unwrap();
    assert_eq!(v2.version(), 2);
    // v3 is then signed by key 2 and a new key 3; key 1 no longer counts.
    let v3 = v2.verify_next(&signed(&doc(3, &[3], 1), &[2, 3])).unwrap();
    assert_eq!(v3.version(), 3);
    let e = v3
        .verify_next(&signed(&doc(4, &[4], 1), &[1, 4]))
        .unwrap_err();
    assert_eq!(threshold_error(e), (0, 1));
}

#[test]
fn root_rotation_1_of_1_with_unused_signatures() {
    // Signatures by keys no role names are ignored, not fatal.
    let v2 = factory()
        .verify_next(&signed(&doc(2, &[2], 1), &[9, 1, 8, 2]))
        .unwrap();
    assert_eq!(v2.version(), 2);
}

#[test]
fn root_rotation_3_of_5_any_combination() {
    let v1 = {
        let r = doc(1, &[1, 2, 3, 4, 5], 3);
        TrustedRoot::provisioned(r.clone(), signed(&r, &[1])).unwrap()
    };
    // Same keys, first combination, then another one.
    let v2 = v1
        .verify_next(&signed(&doc(2, &[1, 2, 3, 4, 5], 3), &[1, 2, 3]))
        .unwrap();
    let v3 = v2
        .verify_next(&signed(&doc(3, &[1, 2, 3, 4, 5], 3), &[3, 4, 5]))
        .unwrap();
    // Two of five is not three.
    let e = v3
        .verify_next(&signed(&doc(4, &[1, 2, 3, 4, 5], 3), &[2, 4]))
        .unwrap_err();
    assert_eq!(threshold_error(e), (2, 3));
}

#[test]
fn root_rotation_threshold_increase_and_decrease() {
    let v1 = {
        let r = doc(1, &[1, 2, 3], 1);
        TrustedRoot::provisioned(r.clone(), signed(&r, &[1])).unwrap()
    };
    // Up to 3 of 3: one old signature is enough for the old threshold, but
    // the new one needs all three.
    let e = v1
        .verify_next(&signed(&doc(2, &[1, 2, 3], 3), &[1]))
        .unwrap_err();
    assert_eq!(threshold_error(e), (1, 3));
    let v2 = v1
        .verify_next(&signed(&doc(2, &[1, 2, 3], 3), &[1, 2, 3]))
        .unwrap();
    // Down to 1 of 3: the old threshold (3) still applies to this step.
    let e = v2
        .verify_next(&signed(&doc(3, &[1, 2, 3], 1), &[1]))
        .unwrap_err();
    assert_eq!(threshold_error(e), (1, 3));
    let v3 = v2
        .verify_next(&signed(&doc(3, &[1, 2, 3], 1), &[1, 2, 3]))
        .unwrap();
    assert!(v3
        .verify_next(&signed(&doc(4, &[1, 2, 3], 1), &[2]))
        .is_ok());
}

#[test]
fn root_rotation_with_the_same_key_is_a_plain_version_bump() {
    let v2 = factory()
        .verify_next(&signed(&doc(2, &[1], 1), &[1]))
        .unwrap();
    assert_eq!(v2.version(), 2);
}

#[test]
fn root_rotation_not_signed_by_the_old_threshold_is_refused() {
    // The attacker's root: signed by its own new keys only.
    let e = factory()
        .verify_next(&signed(&doc(2, &[66], 1), &[66]))
        .unwrap_err();
    assert!(e.to_string().contains("root version 1's keys"), "{e}");
}

#[test]
fn root_rotation_not_signed_by_its_own_threshold_is_refused() {
    // Signed by the old key only: the new keys never agreed to serve.
    let e = factory()
        .verify_next(&signed(&doc(2, &[2], 1), &[1]))
        .unwrap_err();
    assert!(e.to_string().contains("the new root's own keys"), "{e}");
}

#[test]
fn root_rotation_with_a_corrupted_signature_is_refused() {
    let mut env: Envelope = serde_json::from_slice(&signed(&doc(2, &[2], 1), &[1, 2])).unwrap();
    // Flip one byte of the old key's signature.
    let mut sig = updater_format::envelope::decode_b64(&env.signatures[0].sig).unwrap();
    sig[10] ^= 1;
    use base64::Engine;
    env.signatures[0].sig = base64::engine::general_purpose::STANDARD.encode(sig);
    let e = factory().verify_next(&env.to_json()).unwrap_err();
    assert!(e.to_string().contains("does not verify"), "{e}");
}

// --- test_rollback -------------------------------------------------------

#[test]
fn root_version_must_be_exactly_one_more() {
    let f = factory();
    for v in [1, 3, 10] {
        let e = f.verify_next(&signed(&doc(v, &[1], 1), &[1])).unwrap_err();
        assert!(e.to_string().contains("exactly one more"), "{v}: {e}");
    }
    // A version-0 root is malformed, whoever signed it.
    let e = f.verify_next(&signed(&doc(0, &[1], 1), &[1])).unwrap_err();
    assert!(e.to_string().contains("version 0"), "{e}");
}

#[test]
fn an_unsigned_document_says_nothing_about_its_version() {
    // Signatures are checked before the version: a forged root of a wrong
    // version fails on its signatures, which is what the device reports.
    let e = factory()
        .verify_next(&signed(&doc(7, &[66], 1), &[66]))
        .unwrap_err();
    assert!(matches!(e, Rejected::Threshold { .. }), "{e}");
}

// --- test_expiration -------------------------------------------------------

#[test]
fn an_expired_final_root_is_refused_an_expired_intermediate_is_not() {
    let mut r2 = doc(2, &[1], 1);
    r2.expires = t(2020);
    let v2 = factory().verify_next(&signed(&r2, &[1])).unwrap();
    let v3 = v2.verify_next(&signed(&doc(3, &[1], 1), &[1])).unwrap();
    let now = t(2025);
    assert!(v2
        .check_expiry(now)
        .unwrap_err()
        .to_string()
        .contains("expired"));
    v3.check_expiry(now).unwrap();
    // Expiry is the instant itself.
    assert!(v3.check_expiry(t(2030)).is_err());
}

// --- test_keys -------------------------------------------------------------

#[test]
fn duplicate_key_ids_in_a_role_are_refused() {
    let mut r = doc(2, &[1, 2], 2);
    let dup = r.roles.root.keyids[0].clone();
    r.roles.root.keyids[1] = dup;
    let e = factory().verify_next(&signed(&r, &[1, 2])).unwrap_err();
    assert!(e.to_string().contains("lists a key id twice"), "{e}");
}

#[test]
fn one_key_signing_twice_counts_once() {
    let v1 = {
        let r = doc(1, &[1, 2], 2);
        TrustedRoot::provisioned(r.clone(), signed(&r, &[1])).unwrap()
    };
    let e = v1
        .verify_next(&signed(&doc(2, &[1, 2], 2), &[1, 1]))
        .unwrap_err();
    assert_eq!(threshold_error(e), (1, 2));
}

#[test]
fn thresholds_out_of_range_are_refused() {
    for (keys, threshold) in [(&[1u8, 2][..], 0usize), (&[1, 2][..], 3)] {
        let r = doc(2, keys, threshold);
        let e = factory().verify_next(&signed(&r, &[1, 2])).unwrap_err();
        assert!(e.to_string().contains("threshold"), "{e}");
    }
}

#[test]
fn a_key_whose_id_does_not_match_is_refused() {
    let mut r = doc(2, &[2], 1);
    let id = r.roles.root.keyids[0].clone();
    let pem = r.keys.remove(&id).unwrap();
    // Key 3's PEM listed under key 2's id.
    let other = updater_format::keys::public_key_pem(&key(3).key.verifying_key());
    r.keys.insert(id, other);
    let _ = pem;
    let e = factory().verify_next(&signed(&r, &[1, 2])).unwrap_err();
    assert!(e.to_string().contains("has id"), "{e}");
}

#[test]
fn a_role_naming_an_unknown_key_or_a_key_of_another_role_is_refused() {
    let mut r = doc(2, &[2], 1);
    r.roles.kernel.keyids = vec!["00".repeat(32)];
    let e = factory().verify_next(&signed(&r, &[1, 2])).unwrap_err();
    assert!(e.to_string().contains("unknown key"), "{e}");
    // The root key reused as the manifest key.
    let mut r = doc(2, &[2], 1);
    r.roles.manifest.keyids = r.roles.root.keyids.clone();
    let e = factory().verify_next(&signed(&r, &[1, 2])).unwrap_err();
    assert!(e.to_string().contains("use separate keys"), "{e}");
}

#[test]
fn a_signature_for_another_payload_type_does_not_count() {
    // The same bytes signed as a manifest: DSSE's PAE binds the type.
    let r = doc(2, &[2], 1);
    let body = r.to_json();
    let sig = |n: u8| {
        use base64::Engine;
        use ed25519_dalek::Signer;
        let k = key(n);
        let s = k
            .key
            .sign(&pae(updater_format::envelope::MANIFEST_PAYLOAD_TYPE, &body));
        Signature {
            keyid: k.id.to_string(),
            sig: base64::engine::general_purpose::STANDARD.encode(s.to_bytes()),
        }
    };
    let env = Envelope {
        payload_type: ROOT_PAYLOAD_TYPE.into(),
        payload: {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(&body)
        },
        signatures: vec![sig(1), sig(2)],
    };
    let e = factory().verify_next(&env.to_json()).unwrap_err();
    assert_eq!(threshold_error(e), (0, 1));
    // And a root envelope must say it is one.
    let mut env: Envelope = serde_json::from_slice(&signed(&r, &[1, 2])).unwrap();
    env.payload_type = updater_format::envelope::MANIFEST_PAYLOAD_TYPE.into();
    assert!(matches!(
        factory().verify_next(&env.to_json()).unwrap_err(),
        Rejected::PayloadType { .. }
    ));
}

#[test]
fn unknown_fields_and_oversized_documents_are_refused() {
    let r = doc(2, &[2], 1);
    let mut v: serde_json::Value = serde_json::from_slice(&r.to_json()).unwrap();
    v["consistent_snapshot"] = true.into();
    let body = serde_json::to_vec(&v).unwrap();
    let env = Envelope::seal(ROOT_PAYLOAD_TYPE, &body, &[&key(1), &key(2)]);
    let e = factory().verify_next(&env.to_json()).unwrap_err();
    assert!(e.to_string().contains("unknown field"), "{e}");
    let big = vec![b' '; 600 * 1024];
    assert!(matches!(
        factory().verify_next(&big).unwrap_err(),
        Rejected::TooLarge { .. }
    ));
}

// --- test_non_root_rotations: revocation -----------------------------------

#[test]
fn keys_a_new_root_drops_are_revoked_in_its_keyring() {
    let f = factory();
    let v2 = f
        .verify_next(&signed(&doc_with(2, &[1], 1, 111), &[1]))
        .unwrap();
    let old = key(101).id.to_string();
    assert_eq!(f.dropped(&v2, "manifest"), vec![old.clone()]);
    assert!(f.dropped(&v2, "kernel").is_empty());
    let ring = v2.keyring().unwrap();
    assert!(
        ring.role_of(&old).is_none(),
        "the dropped key is still trusted"
    );
    assert_eq!(ring.role_of(key(111).id.as_str()), Some(Role::Manifest));
    // The factory keyring as root 1, and back.
    let one = Root::from_keyring(&ring, &[public(&key(1))], 1, 1, t(2030));
    let again = TrustedRoot::provisioned(one.clone(), Vec::new()).unwrap();
    assert_eq!(again.keyring().unwrap().role(Role::Manifest).keys.len(), 1);
    assert_eq!(one.roles.root.keyids, vec![key(1).id.to_string()]);
}

/// The committed vector (manifests/vectors/root/): root 2 after the test
/// factory root (root key 1, manifest key 101), rotating the root key to 2.
/// It seeds the `root` fuzz target. `UPDATE_VECTORS=1` rewrites it.
#[test]
fn the_committed_root_vector_verifies() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/vectors/root");
    let path = dir.join("2.root.json");
    if std::env::var_os("UPDATE_VECTORS").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("1.root.json"), signed(&doc(1, &[1], 1), &[1])).unwrap();
        std::fs::write(&path, signed(&doc(2, &[2], 1), &[1, 2])).unwrap();
    }
    let v1 =
        TrustedRoot::open_provisioned(&std::fs::read(dir.join("1.root.json")).unwrap()).unwrap();
    let v2 = v1.verify_next(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(v2.version(), 2);
    assert_eq!(v2.root.roles.root.keyids, vec![key(2).id.to_string()]);
}
