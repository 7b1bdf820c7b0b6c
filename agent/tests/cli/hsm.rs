//! Signing keys that never leave a token: a SoftHSM2 token (Debian
//! packages softhsm2 and opensc, which ./test.sh installs) holds an ed25519
//! manifest key and an ed25519 root key, made with `pkcs11-tool`;
//! `updater-pkcs11-sign` (the vendor package's PKCS#11 signer, one C_Sign
//! with CKM_EDDSA) is the vendor tool's `--signer`. A release and a root
//! version signed that way are accepted by a device. The token lives in the
//! test's own temporary folder (SOFTHSM2_CONF), never in a system path.

use std::path::Path;
use std::process::Command;

use crate::common::*;
use crate::device::Builder;

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

fn run(conf: &Path, cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .env("SOFTHSM2_CONF", conf)
        .output()
        .unwrap_or_else(|e| {
            panic!("{cmd}: {e} (Debian packages softhsm2 and opensc; ./test.sh installs them)")
        });
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The token's public key with id `id`, as SPKI PEM: `--list-objects`
/// prints the EC point (`0420` + 32 bytes, a DER OCTET STRING); behind the
/// ed25519 SPKI header it is the DER public key (../shared/HSM-NOTES.md).
fn public_pem(conf: &Path, id: &str) -> String {
    let list = run(
        conf,
        "pkcs11-tool",
        &[
            "--module",
            MODULE,
            "--token-label",
            "t1",
            "--list-objects",
            "--type",
            "pubkey",
            "--id",
            id,
        ],
    );
    // One block per object (its first line unindented); the one whose ID
    // is `id` (the order objects are listed in is the token's, not ours).
    let mut blocks: Vec<Vec<&str>> = Vec::new();
    for l in list.lines() {
        if !l.starts_with(' ') {
            blocks.push(Vec::new());
        }
        if let Some(b) = blocks.last_mut() {
            b.push(l.trim());
        }
    }
    let block = blocks
        .iter()
        .find(|b| {
            b.iter()
                .any(|l| l.strip_prefix("ID:").map(str::trim) == Some(id))
        })
        .unwrap_or_else(|| panic!("no public key with ID {id} in {list}"));
    let point = block
        .iter()
        .find_map(|l| l.strip_prefix("EC_POINT:"))
        .unwrap_or_else(|| panic!("no EC_POINT in {block:?}"))
        .trim()
        .to_string();
    let raw = hex::decode(
        point
            .strip_prefix("0420")
            .expect("an OCTET STRING of 32 bytes"),
    )
    .unwrap();
    assert_eq!(raw.len(), 32);
    let mut der = hex::decode("302a300506032b6570032100").unwrap();
    der.extend_from_slice(&raw);
    use base64::Engine;
    format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(der)
    )
}

/// The `--signer` command for the token key `id`.
fn signer(conf: &Path, id: &str) -> String {
    // Built beside the device binary by the workspace's test build.
    let bin = Path::new(bin()).with_file_name("updater-pkcs11-sign");
    assert!(
        bin.is_file(),
        "{} is missing: run the workspace's tests (cargo test --workspace builds it)",
        bin.display()
    );
    format!(
        "SOFTHSM2_CONF={} PKCS11_PIN=1234 {} --module {MODULE} --token t1 --id {id}",
        conf.display(),
        bin.display()
    )
}

#[test]
fn a_token_key_signs_a_release_and_a_root_that_a_device_accepts() {
    let dev = Builder::new().build();
    let env = &dev.env;
    let hsm = env.p("hsm");
    std::fs::create_dir_all(hsm.join("tokens")).unwrap();
    let conf = hsm.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            hsm.join("tokens").display()
        ),
    )
    .unwrap();
    run(
        &conf,
        "softhsm2-util",
        &[
            "--init-token",
            "--free",
            "--label",
            "t1",
            "--pin",
            "1234",
            "--so-pin",
            "5678",
        ],
    );
    for (id, label) in [("01", "manifest"), ("02", "root")] {
        run(
            &conf,
            "pkcs11-tool",
            &[
                "--module",
                MODULE,
                "--token-label",
                "t1",
                "--login",
                "--pin",
                "1234",
                "--keypairgen",
                "--key-type",
                "EC:edwards25519",
                "--label",
                label,
                "--id",
                id,
            ],
        );
        write(
            &env.p(&format!("keys/hsm-{label}.pub")),
            public_pem(&conf, id).as_bytes(),
        );
    }
    // The device trusts the token's manifest key and root key (root 1).
    env.reinit_ring(&[
        ("--manifest-key", "hsm-manifest"),
        ("--kernel-key", "k1"),
        ("--root-key", "hsm-root"),
    ]);
    let manifest_signer = format!("{}={}", env.s("keys/hsm-manifest.pub"), signer(&conf, "01"));
    let root_signer = format!("{}={}", env.s("keys/hsm-root.pub"), signer(&conf, "02"));
    // A signer that signs with the other token key is caught before
    // anything is written.
    let wrong = format!("{}={}", env.s("keys/hsm-manifest.pub"), signer(&conf, "02"));
    std::fs::remove_dir_all(env.p("rel")).unwrap();
    let create = |signer: &str| {
        env.release_by(
            "rel",
            "rootfs.img",
            ["--signer", signer],
            "1.2.0",
            "5",
            &["--chunk-size", "262144"],
        )
    };
    create(&wrong).assert_fails(2, "does not verify against");
    let _ = std::fs::remove_dir_all(env.p("rel"));
    create(&manifest_signer).assert_ok();
    // Root 1 and root 2, signed on the token; 2 is published.
    let (one, two) = (env.s("root-1.json"), env.s("rel/2.root.json"));
    vendor(&[
        "root",
        "init",
        "--keyring",
        &env.s("ring"),
        "--out",
        &one,
        "--expires",
        "2099-01-01T00:00:00Z",
        "--signer",
        &root_signer,
    ])
    .assert_ok();
    vendor(&[
        "root",
        "rotate",
        "--from",
        &one,
        "--out",
        &two,
        "--expires",
        "2099-01-01T00:00:00Z",
        "--signer",
        &root_signer,
    ])
    .assert_ok();
    // The device accepts both: the root chain, then the release.
    dev.apply_url().assert_ok();
    dev.assert_installed();
    assert_eq!(dev.status()["root"]["version"], 2);
}
