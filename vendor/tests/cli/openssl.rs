//! Interoperability with OpenSSL: keys made by `openssl genpkey` work, and
//! signatures made by `openssl pkeyutl -rawin` over the PAE bytes verify, and
//! the reverse.

use std::process::Command;

use crate::common::*;
use updater_format::envelope::{pae, MANIFEST_PAYLOAD_TYPE};

fn openssl(args: &[&str]) {
    openssl_in(std::path::Path::new("."), args);
}

fn openssl_out(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("running openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn openssl_keys_sign_releases_and_form_keyrings() {
    let env = TestEnv::new();
    let (k, p) = (env.s("ossl.key"), env.s("ossl.pub"));
    openssl(&["genpkey", "-algorithm", "ed25519", "-out", &k]);
    openssl(&["pkey", "-in", &k, "-pubout", "-out", &p]);
    let rootfs = format!("rootfs={}", env.s("rootfs.img"));
    tool(&[
        "release",
        "create",
        "--out",
        &env.s("rel"),
        "--key",
        &k,
        "--product",
        "gw",
        "--version",
        "1.0.0",
        "--security-version",
        "1",
        "--compatible",
        "acme-gw",
        "--image",
        &rootfs,
    ])
    .assert_ok();
    let ring = env.s("oring");
    tool(&[
        "keyring",
        "init",
        &ring,
        "--manifest-key",
        &p,
        "--kernel-key",
        &env.s("keys/k1.pub"),
    ])
    .assert_ok();
    tool(&["verify", &env.s("rel/manifest.json"), "--keyring", &ring]).assert_ok();
    // The wrong keyring still refuses it.
    verify(&env, "rel/manifest.json", &[]).assert_fails(3, "unknown key");
}

#[test]
fn openssl_signature_over_pae_verifies() {
    let env = TestEnv::new();
    env.release("rel", &[]).assert_ok();
    let (e, _) = env.read("rel/manifest.json");
    let payload = e.payload_bytes().unwrap();
    write(&env.p("pae.bin"), &pae(MANIFEST_PAYLOAD_TYPE, &payload));
    openssl(&[
        "pkeyutl",
        "-sign",
        "-rawin",
        "-inkey",
        &env.s("keys/m1.key"),
        "-in",
        &env.s("pae.bin"),
        "-out",
        &env.s("sig.bin"),
    ]);
    let sig = std::fs::read(env.p("sig.bin")).unwrap();
    let keyid = env.key("m1").id.to_string();
    let doc = serde_json::json!({
        "payloadType": MANIFEST_PAYLOAD_TYPE,
        "payload": e.payload,
        "signatures": [{"keyid": keyid, "sig": base64_std(&sig)}],
    });
    write(&env.p("rel/ossl.json"), &serde_json::to_vec(&doc).unwrap());
    verify(&env, "rel/ossl.json", &[]).assert_ok();
    // A signature by openssl over the payload alone (no PAE) must not verify:
    // the PAE binds the payload type.
    openssl(&[
        "pkeyutl",
        "-sign",
        "-rawin",
        "-inkey",
        &env.s("keys/m1.key"),
        "-in",
        &env.s("rel/manifest.json"),
        "-out",
        &env.s("sig2.bin"),
    ]);
    let doc2 = serde_json::json!({
        "payloadType": MANIFEST_PAYLOAD_TYPE,
        "payload": e.payload,
        "signatures": [{"keyid": keyid, "sig": base64_std(&std::fs::read(env.p("sig2.bin")).unwrap())}],
    });
    write(
        &env.p("rel/ossl2.json"),
        &serde_json::to_vec(&doc2).unwrap(),
    );
    verify(&env, "rel/ossl2.json", &[]).assert_fails(3, "does not verify");
}

#[test]
fn our_signatures_verify_with_openssl() {
    let env = TestEnv::new();
    env.release("rel", &[]).assert_ok();
    let (e, _) = env.read("rel/manifest.json");
    let payload = e.payload_bytes().unwrap();
    write(&env.p("pae.bin"), &pae(MANIFEST_PAYLOAD_TYPE, &payload));
    let sig = updater_format::envelope::decode_b64(&e.signatures[0].sig).unwrap();
    write(&env.p("sig.bin"), &sig);
    let out = Command::new("openssl")
        .args([
            "pkeyutl",
            "-verify",
            "-rawin",
            "-pubin",
            "-inkey",
            &env.s("keys/m1.pub"),
            "-in",
            &env.s("pae.bin"),
            "-sigfile",
            &env.s("sig.bin"),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // And openssl reads our private key.
    openssl(&["pkey", "-in", &env.s("keys/m1.key"), "-noout"]);
}

#[test]
fn keyid_is_sha256_of_spki_der() {
    let env = TestEnv::new();
    let der = openssl_out(&[
        "pkey",
        "-pubin",
        "-in",
        &env.s("keys/m1.pub"),
        "-outform",
        "DER",
    ]);
    let expect = updater_format::Sha256Digest::of(&der).hex();
    assert_eq!(env.key("m1").id.to_string(), expect);
}

fn base64_std(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}
