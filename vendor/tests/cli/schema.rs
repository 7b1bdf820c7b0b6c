//! Generated artefacts stay in step with the code: the JSON Schemas and the
//! test vectors in manifests/. Run with UPDATER_BLESS=1 to regenerate them.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use updater_format::envelope::{Envelope, MANIFEST_PAYLOAD_TYPE};
use updater_format::keys::{read_private_key, Keyring, PrivateKey};
use updater_format::manifest::verify::{verify, Policy};
use updater_release::{create, CreateOptions, Expiry};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn bless() -> bool {
    std::env::var_os("UPDATER_BLESS").is_some()
}

#[test]
fn json_schemas_match_the_rust_types() {
    let dir = repo().join("manifests/schema");
    for (name, text) in updater_release::schema::schemas() {
        let path = dir.join(name);
        if bless() {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &text).unwrap();
        }
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            on_disk == text,
            "{} is out of date with the Rust types; run `UPDATER_BLESS=1 cargo test -p updater-vendor --test cli schema` and commit it",
            path.display()
        );
    }
}

#[test]
fn example_manifests_parse_and_are_valid() {
    let dir = repo().join("manifests/examples");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let m: updater_format::manifest::Manifest =
                serde_json::from_slice(&std::fs::read(&path).unwrap())
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            updater_format::manifest::verify::check_structure(&m).unwrap();
            n += 1;
        }
    }
    assert!(n > 0);
}

fn test_key(name: &str) -> PrivateKey {
    read_private_key(&repo().join(format!("keys/test/{name}.key"))).unwrap()
}

fn regenerate_vectors(dir: &Path) {
    // Everything but `root/`, which format/tests/root.rs writes.
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_name() != "root" {
            let p = e.path();
            let _ = std::fs::remove_dir_all(&p).or_else(|_| std::fs::remove_file(&p));
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let rootfs = tmp.path().join("rootfs.img");
    let kernel = tmp.path().join("vmlinuz");
    std::fs::write(&rootfs, b"rootfs ".repeat(20_000)).unwrap();
    std::fs::write(&kernel, b"kernel ".repeat(3_000)).unwrap();
    let keys = repo().join("keys/test");
    let opts = CreateOptions {
        out: dir.join("valid"),
        keys: vec![keys.join("manifest-1.key")],
        signers: Vec::new(),
        product: "gw".into(),
        version: "1.0.0".parse().unwrap(),
        security_version: 1,
        compatible: vec!["acme-gw-v1".into()],
        images: vec![("rootfs".into(), rootfs)],
        kernel: Some(kernel),
        kernel_keys: vec![keys.join("kernel-1.key")],
        kernel_signers: Vec::new(),
        initrd: None,
        uki: None,
        ostree: None,
        cmdline: Some("console=ttyS0 quiet".into()),
        expires: Expiry::At("2099-01-01T00:00:00Z".parse().unwrap()),
        created: "2026-01-01T00:00:00Z".parse().unwrap(),
        now: "2026-01-01T00:00:00Z".parse().unwrap(),
        max_validity_days: updater_release::DEFAULT_MAX_VALIDITY_DAYS,
        // Test vectors, valid until 2099 on purpose (no test may depend on
        // the day it runs): longer than devices accept by default.
        force: true,
        min_agent_version: Some("0.1.0".parse().unwrap()),
        chunk_size: Some(65536),
        zstd_level: 3,
        // The vectors stay schema 1: agents of every version read them.
        schema: 1,
    };
    create(&opts).unwrap();
    // The same release in schema 2: content-defined chunks and an index.
    create(&CreateOptions {
        out: dir.join("valid-v2"),
        chunk_size: None,
        schema: 2,
        ..opts.clone()
    })
    .unwrap();
    let env: Envelope =
        serde_json::from_slice(&std::fs::read(dir.join("valid/manifest.json")).unwrap()).unwrap();
    let payload = env.payload_bytes().unwrap();
    let manifest: Value = serde_json::from_slice(&payload).unwrap();
    let seal = |name: &str, payload: &[u8], key: &str| {
        let k = test_key(key);
        std::fs::write(
            dir.join(name),
            Envelope::seal(MANIFEST_PAYLOAD_TYPE, payload, &[&k]).to_json(),
        )
        .unwrap();
    };
    let edit = |f: &dyn Fn(&mut Value)| {
        let mut v = manifest.clone();
        f(&mut v);
        serde_json::to_vec_pretty(&v).unwrap()
    };
    let mut bad_sig = env.clone();
    bad_sig.signatures[0].sig =
        env.signatures[0]
            .sig
            .replacen(|c: char| c.is_ascii_alphabetic(), "A", 1);
    if bad_sig.signatures[0].sig == env.signatures[0].sig {
        bad_sig.signatures[0].sig = env.signatures[0].sig.replacen('A', "B", 1);
    }
    std::fs::write(dir.join("bad-signature.json"), bad_sig.to_json()).unwrap();
    seal("unknown-key.json", &payload, "manifest-2");
    seal("wrong-role.json", &payload, "kernel-1");
    seal(
        "expired.json",
        &edit(&|v| {
            v["created"] = json!("2020-01-01T00:00:00Z");
            v["expires"] = json!("2021-01-01T00:00:00Z");
        }),
        "manifest-1",
    );
    seal(
        "unknown-field.json",
        &edit(&|v| v["images"][0]["url"] = json!("http://x/")),
        "manifest-1",
    );
    seal(
        "path-escape.json",
        &edit(&|v| v["images"][0]["file"] = json!("../../etc/shadow")),
        "manifest-1",
    );
    seal(
        "downgrade-security.json",
        &edit(&|v| v["security_version"] = json!(0)),
        "manifest-1",
    );
    seal(
        "newer-schema.json",
        &edit(&|v| v["schema"] = json!(3)),
        "manifest-1",
    );
    let mut wrong_type = env.clone();
    wrong_type.payload_type = "application/vnd.in-toto+json".into();
    std::fs::write(dir.join("wrong-payload-type.json"), wrong_type.to_json()).unwrap();
}

#[test]
fn test_vectors_verify_as_documented() {
    let dir = repo().join("manifests/vectors");
    if bless() {
        regenerate_vectors(&dir);
    }
    let index: Value =
        serde_json::from_slice(&std::fs::read(repo().join("manifests/vectors.json")).unwrap())
            .unwrap();
    let ring = Keyring::load(&repo().join("keys/test")).unwrap();
    let policy = Policy {
        compatible: Some("acme-gw-v1".into()),
        min_security_version: 1,
        // The vectors are valid from 2026-01-01 to 2099-01-01; check them
        // on a fixed clock inside that window.
        ..Policy::at("2026-06-01T00:00:00Z".parse().unwrap())
    };
    let mut n = 0;
    for case in index["vectors"].as_array().unwrap() {
        let file = case["file"].as_str().unwrap();
        let bytes = std::fs::read(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let result = verify(&bytes, &ring, &policy);
        match case["reason"].as_str() {
            None => assert!(result.is_ok(), "{file}: {result:?}"),
            Some(reason) => {
                let err = result.expect_err(file).to_string();
                assert!(
                    err.contains(reason),
                    "{file}: {err:?} does not contain {reason:?}"
                );
            }
        }
        n += 1;
    }
    assert!(n >= 8);
}
