//! Every bad input is refused with exit code 3 (or 2 for usage) and a
//! one-line reason that names what was wrong.

use crate::common::*;
use base64::Engine;
use serde_json::{json, Value};
use updater_format::envelope::{sign, MANIFEST_PAYLOAD_TYPE};

/// A valid release in `rel/` and its manifest as a JSON value.
fn setup() -> (TestEnv, Value) {
    let env = TestEnv::new();
    env.release_with_kernel("rel");
    env.verify("rel/manifest.json", &[]).assert_ok();
    let (e, _) = env.read("rel/manifest.json");
    let v = serde_json::from_slice(&e.payload_bytes().unwrap()).unwrap();
    (env, v)
}

/// Re-sign an edited manifest with m1 and verify it.
fn edited(env: &TestEnv, v: &Value, extra: &[&str]) -> Run {
    env.write_signed("rel/edited.json", &serde_json::to_vec(v).unwrap(), &["m1"]);
    env.verify("rel/edited.json", extra)
}

fn envelope(env: &TestEnv) -> Value {
    serde_json::from_slice(&std::fs::read(env.p("rel/manifest.json")).unwrap()).unwrap()
}

fn write_env(env: &TestEnv, v: &Value) -> Run {
    write(&env.p("rel/edited.json"), &serde_json::to_vec(v).unwrap());
    env.verify("rel/edited.json", &[])
}

#[test]
fn bad_signature() {
    let (env, _) = setup();
    let mut e = envelope(&env);
    let sig = e["signatures"][0]["sig"].as_str().unwrap().to_string();
    let mut raw = base64::engine::general_purpose::STANDARD
        .decode(sig)
        .unwrap();
    raw[10] ^= 1;
    e["signatures"][0]["sig"] = json!(base64::engine::general_purpose::STANDARD.encode(raw));
    write_env(&env, &e).assert_fails(3, "does not verify");
}

#[test]
fn tampered_payload() {
    let (env, _) = setup();
    let mut e = envelope(&env);
    let p = e["payload"].as_str().unwrap();
    let mut raw = base64::engine::general_purpose::STANDARD.decode(p).unwrap();
    let pos = raw.windows(5).position(|w| w == b"1.2.0").unwrap();
    raw[pos] = b'9';
    e["payload"] = json!(base64::engine::general_purpose::STANDARD.encode(raw));
    write_env(&env, &e).assert_fails(3, "does not verify");
}

#[test]
fn unknown_key() {
    let (env, v) = setup();
    env.write_signed(
        "rel/edited.json",
        &serde_json::to_vec(&v).unwrap(),
        &["rogue"],
    );
    env.verify("rel/edited.json", &[])
        .assert_fails(3, "unknown key");
}

#[test]
fn no_signatures() {
    let (env, _) = setup();
    let mut e = envelope(&env);
    e["signatures"] = json!([]);
    write_env(&env, &e).assert_fails(3, "there are no signatures");
}

#[test]
fn below_threshold() {
    let (env, _) = setup();
    env.keyring("ring2", &["m1", "m2"], 2, &["k1"], 1);
    let m = env.s("rel/manifest.json");
    updater(&["verify", &m, "--keyring", &env.s("ring2")])
        .assert_fails(3, "manifest signatures rejected: 1 valid of threshold 2");
}

#[test]
fn same_key_twice_counts_once() {
    let (env, v) = setup();
    env.keyring("ring2", &["m1", "m2"], 2, &["k1"], 1);
    env.write_signed(
        "rel/twice.json",
        &serde_json::to_vec(&v).unwrap(),
        &["m1", "m1"],
    );
    let m = env.s("rel/twice.json");
    updater(&["verify", &m, "--keyring", &env.s("ring2")]).assert_fails(3, "counted once");
    // With the second, distinct key it passes: the threshold itself works.
    env.write_signed(
        "rel/both.json",
        &serde_json::to_vec(&v).unwrap(),
        &["m1", "m2"],
    );
    updater(&[
        "verify",
        &env.s("rel/both.json"),
        "--keyring",
        &env.s("ring2"),
    ])
    .assert_ok();
}

#[test]
fn wrong_role_manifest_signed_by_kernel_key() {
    let (env, v) = setup();
    env.write_signed("rel/edited.json", &serde_json::to_vec(&v).unwrap(), &["k1"]);
    env.verify("rel/edited.json", &[])
        .assert_fails(3, "is by kernel-role key");
}

#[test]
fn kernel_signed_by_manifest_key() {
    let (env, mut v) = setup();
    let kernel = &v["kernel"];
    let sha = updater_format::Sha256Digest::parse(kernel["sha256"].as_str().unwrap()).unwrap();
    let size = kernel["size"].as_u64().unwrap();
    let stmt = updater_format::manifest::verify::kernel_statement(&sha, size);
    let s = sign(
        updater_format::manifest::verify::KERNEL_PAYLOAD_TYPE,
        &stmt,
        &env.key("m1"),
    );
    v["kernel"]["signatures"] = json!([{"keyid": s.keyid, "sig": s.sig}]);
    edited(&env, &v, &[]).assert_fails(
        3,
        "kernel signatures rejected: 0 valid of threshold 1 (signature 1 is by manifest-role key",
    );
}

#[test]
fn kernel_signature_over_another_kernel() {
    let (env, mut v) = setup();
    // Swap the kernel's hash (and image hash, so the manifest is consistent):
    // the kernel key's signature no longer covers it.
    let fake = "ab".repeat(32);
    v["kernel"]["sha256"] = json!(fake);
    for img in v["images"].as_array_mut().unwrap() {
        if img["class"] == "kernel" {
            img["sha256"] = json!(fake);
        }
    }
    edited(&env, &v, &[]).assert_fails(3, "kernel signatures rejected");
}

#[test]
fn expired() {
    let env = TestEnv::new();
    env.release(
        "rel",
        &[
            "--created",
            "2020-01-01T00:00:00Z",
            "--expires",
            "2021-01-01T00:00:00Z",
            "--now",
            "2020-01-01T00:00:00Z",
        ],
    )
    .assert_ok();
    // Checked on a fixed clock: the test means the same on any date.
    env.verify("rel/manifest.json", &["--now", "2021-06-01T00:00:00Z"])
        .assert_fails(3, "manifest expired at 2021-01-01");
    env.verify("rel/manifest.json", &["--now", "2020-06-01T00:00:00Z"])
        .assert_ok();
}

#[test]
fn not_valid_yet() {
    let env = TestEnv::new();
    env.release(
        "rel",
        &[
            "--created",
            "2090-01-01T00:00:00Z",
            "--expires",
            "2091-01-01T00:00:00Z",
            "--now",
            "2090-01-01T00:00:00Z",
        ],
    )
    .assert_ok();
    env.verify("rel/manifest.json", &["--now", "2089-06-01T00:00:00Z"])
        .assert_fails(3, "not valid yet");
    env.verify("rel/manifest.json", &["--now", "2090-06-01T00:00:00Z"])
        .assert_ok();
}

#[test]
fn wrong_payload_type() {
    let (env, _) = setup();
    let mut e = envelope(&env);
    e["payloadType"] = json!("application/vnd.in-toto+json");
    write_env(&env, &e).assert_fails(3, "payloadType is \"application/vnd.in-toto+json\"");
}

#[test]
fn malformed_json_and_base64() {
    let (env, _) = setup();
    write(&env.p("rel/edited.json"), b"{\"payloadType\": ");
    env.verify("rel/edited.json", &[])
        .assert_fails(3, "malformed envelope");
    let mut e = envelope(&env);
    e["payload"] = json!("!!!not base64!!!");
    write_env(&env, &e).assert_fails(3, "payload is not base64");
    // A signed payload that is not JSON.
    env.write_signed("rel/edited.json", b"not json", &["m1"]);
    env.verify("rel/edited.json", &[])
        .assert_fails(3, "malformed manifest");
}

#[test]
fn unknown_fields() {
    let (env, mut v) = setup();
    let mut e = envelope(&env);
    e["extra"] = json!(1);
    write_env(&env, &e).assert_fails(3, "unknown field `extra`");
    v["images"][0]["url"] = json!("http://elsewhere/");
    edited(&env, &v, &[]).assert_fails(3, "unknown field `url`");
}

#[test]
fn newer_schema_says_upgrade() {
    let (env, mut v) = setup();
    v["schema"] = json!(3);
    edited(&env, &v, &[]).assert_fails(3, "upgrade the agent");
}

#[test]
fn over_size_cap() {
    let (env, mut v) = setup();
    v["product"] = json!("x".repeat(1_100_000));
    edited(&env, &v, &[]).assert_fails(3, "over the 1048576-byte limit");
}

#[test]
fn incompatible_device() {
    let (env, _) = setup();
    env.verify("rel/manifest.json", &["--compatible", "acme-other"])
        .assert_fails(
            3,
            "release is for [\"acme-gw\"], this device is \"acme-other\"",
        );
}

#[test]
fn downgrades() {
    let (env, _) = setup();
    env.verify("rel/manifest.json", &["--installed-version", "1.3.0"])
        .assert_fails(
            3,
            "downgrade refused: version 1.2.0 is lower than installed 1.3.0",
        );
    env.verify("rel/manifest.json", &["--installed-security-version", "6"])
        .assert_fails(
            3,
            "downgrade refused: security_version 5 is lower than installed 6",
        );
    // Same version and security version: a reinstall, allowed.
    env.verify(
        "rel/manifest.json",
        &[
            "--installed-version",
            "1.2.0",
            "--installed-security-version",
            "5",
        ],
    )
    .assert_ok();
}

#[test]
fn path_escapes() {
    for bad in ["../../etc/shadow", "/etc/shadow", "sub/dir.img", ".."] {
        let (env, mut v) = setup();
        v["images"][0]["file"] = json!(bad);
        edited(&env, &v, &[]).assert_fails(3, "file name");
        let (env, mut v) = setup();
        v["images"][0]["chunks"]["file"] = json!(bad);
        edited(&env, &v, &[]).assert_fails(3, "plain file name");
    }
}

#[test]
fn agent_too_old() {
    let env = TestEnv::new();
    env.release("rel", &["--min-agent-version", "99.0.0"])
        .assert_ok();
    env.verify("rel/manifest.json", &[])
        .assert_fails(3, "needs agent 99.0.0 or newer");
}

#[test]
fn inconsistent_kernel_section() {
    let (env, mut v) = setup();
    v["kernel"]["size"] = json!(1);
    edited(&env, &v, &[]).assert_fails(3, "does not match the kernel image");
}

#[test]
fn json_output_on_rejection() {
    let (env, _) = setup();
    let r = env.verify("rel/manifest.json", &["--compatible", "x", "--json"]);
    assert_eq!(r.code, 3);
    let v: Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(v["ok"], false);
    assert!(v["reason"]
        .as_str()
        .unwrap()
        .contains("this device is \"x\""));
}

#[test]
fn payload_type_constant_is_the_documented_one() {
    assert_eq!(
        MANIFEST_PAYLOAD_TYPE,
        "application/vnd.updater.manifest+json"
    );
}

/// An OSTree release (made by `release create --ostree-repo` from a real
/// ostree repository) given to a device whose slots are partitions or
/// files is refused before anything is written: the image backend would
/// otherwise install nothing and boot a slot it never wrote.
#[test]
fn an_ostree_release_is_refused_by_an_image_slot_backend() {
    let t = crate::device::Builder::new().build();
    let repo = t.env.p("build-repo");
    ostree_commit(
        &repo,
        "gw/x86_64/stable",
        &[("/usr/lib/modules/6.1.0-test/vmlinuz", b"the tree's kernel")],
    );
    let (out, key, kkey, repo) = (
        t.env.s("rel-os"),
        t.env.s("keys/m1.key"),
        t.env.s("keys/k1.key"),
        repo.to_string_lossy().into_owned(),
    );
    vendor(&[
        "release",
        "create",
        "--out",
        &out,
        "--key",
        &key,
        "--kernel-key",
        &kkey,
        "--product",
        "gw",
        "--version",
        "1.2.0",
        "--security-version",
        "5",
        "--compatible",
        "acme-gw",
        "--ostree-repo",
        &repo,
        "--ref",
        "gw/x86_64/stable",
    ])
    .assert_ok();
    // Served in place of the image release (the roots stay).
    for e in std::fs::read_dir(t.env.p("rel-os")).unwrap().flatten() {
        let to = t.env.p("rel").join(e.file_name());
        if e.path().is_dir() {
            std::fs::rename(e.path(), to).unwrap();
        } else {
            std::fs::copy(e.path(), to).unwrap();
        }
    }
    let before = t.status();
    let r = t.apply_url();
    r.assert_fails(2, "carries an OSTree commit");
    assert!(
        r.stderr.contains("slot backend \"paths\" installs images")
            && r.stderr.contains("slots.backend = \"ostree\""),
        "{}",
        r.stderr
    );
    let after = t.status();
    assert_eq!(
        before["groups"]["B"], after["groups"]["B"],
        "slot B changed"
    );
    assert_eq!(after["primary"], "A");
    assert!(
        after["install"].is_null(),
        "an install was recorded: {after}"
    );
}
