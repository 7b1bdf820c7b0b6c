//! The root of trust on a device (docs/security.md, "Root rotation"): the
//! chain fetched from beside the release before anything else is verified,
//! each root persisted only once it verified, revocation at once, expiry of
//! the last root, and devices without a root role left as they were. The
//! chain rules themselves are tested in format/tests/root.rs.

use crate::common::*;
use crate::device::{Boot, Builder, Device};
use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;
use updater_format::keys::{Keyring, PrivateKey, PublicKey};
use updater_format::root::{seal, Root};

/// A device whose keyring is root version 1: manifest m1, kernel k1, root
/// r1 (threshold 1); r2 is another root key, trusted by nobody yet.
fn device() -> Device {
    let dev = Builder::new().root_key().build();
    dev.env.keygen("r2");
    dev
}

fn public(k: &PrivateKey) -> PublicKey {
    PublicKey::new(k.key.verifying_key())
}

fn year(y: i32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, 1, 1, 0, 0, 0).unwrap()
}

/// Root `version`: manifest key `manifest`, kernel k1, root key `root`.
fn root_doc(
    dev: &Device,
    version: u64,
    manifest: &str,
    root: &str,
    expires: DateTime<Utc>,
) -> Root {
    let env = &dev.env;
    let ring = Keyring::new(
        vec![public(&env.key(manifest))],
        1,
        vec![public(&env.key("k1"))],
        1,
    )
    .unwrap();
    Root::from_keyring(&ring, &[public(&env.key(root))], 1, version, expires)
}

/// Publish `root` signed by `signers` beside the release.
fn publish(dev: &Device, root: &Root, signers: &[&str]) {
    let keys: Vec<PrivateKey> = signers.iter().map(|k| dev.env.key(k)).collect();
    let refs: Vec<&PrivateKey> = keys.iter().collect();
    let env = seal(root, &refs).unwrap();
    write(
        &dev.env.p(&format!("rel/{}.root.json", root.version)),
        &env.to_json(),
    );
}

/// The release again, signed by `key` (the published roots kept).
fn resign(dev: &Device, key: &str) {
    let keep = dev.env.p("roots.keep");
    std::fs::create_dir_all(&keep).unwrap();
    for e in std::fs::read_dir(dev.env.p("rel")).unwrap().flatten() {
        let name = e.file_name().into_string().unwrap();
        if name.ends_with(".root.json") {
            std::fs::rename(e.path(), keep.join(&name)).unwrap();
        }
    }
    std::fs::remove_dir_all(dev.env.p("rel")).unwrap();
    dev.env
        .release_signed("rel", "rootfs.img", key, &["--chunk-size", "262144"])
        .assert_ok();
    for e in std::fs::read_dir(&keep).unwrap().flatten() {
        std::fs::rename(e.path(), dev.env.p("rel").join(e.file_name())).unwrap();
    }
}

fn root_version(dev: &Device) -> Option<u64> {
    dev.status()["root"]["version"].as_u64()
}

#[test]
fn the_factory_keyring_is_root_version_1_and_status_says_so() {
    let dev = device();
    let st = dev.status();
    assert_eq!(st["root"]["version"], 1, "{st}");
    assert_eq!(st["root"]["from"], "keyring");
    let human = dev.run(&["status"]);
    human.assert_ok();
    assert!(
        human.stdout.contains("trusted root: version 1"),
        "{}",
        human.stdout
    );
}

#[test]
fn a_rotation_revokes_the_manifest_key_at_once() {
    // The ported case test_updater_key_rotations::test_non_root_rotations:
    // root 2 replaces manifest key m1 by m2.
    let dev = device();
    publish(&dev, &root_doc(&dev, 2, "m2", "r1", year(2099)), &["r1"]);
    // The release is still signed by m1: refused, exit 3, and root 2 is
    // trusted from now on.
    dev.apply_url().assert_fails(3, "unknown key");
    assert_eq!(root_version(&dev), Some(2));
    assert!(dev.env.p("dev/state/root.json").is_file());
    // Signed by m2, it installs.
    resign(&dev, "m2");
    dev.apply_url().assert_ok();
    dev.assert_installed();
}

#[test]
fn a_root_that_fails_verification_is_never_persisted() {
    // python-tuf CVE-2020-15163: a root that failed must not be trusted.
    let dev = device();
    // Signed by the new root key only, not by root 1's r1.
    publish(&dev, &root_doc(&dev, 2, "m2", "r2", year(2099)), &["r2"]);
    dev.apply_url().assert_fails(3, "root signatures rejected");
    assert_eq!(root_version(&dev), Some(1));
    assert!(!dev.env.p("dev/state/root.json").exists());
    // Nothing was installed either.
    assert!(dev.b().is_empty());
}

#[test]
fn a_chain_is_followed_version_by_version_and_a_gap_ends_it() {
    let dev = device();
    // 2 rotates the root key to r2 (signed by both), 3 is signed by r2; 5
    // after a gap is never asked for.
    publish(
        &dev,
        &root_doc(&dev, 2, "m1", "r2", year(2099)),
        &["r1", "r2"],
    );
    publish(&dev, &root_doc(&dev, 3, "m1", "r2", year(2099)), &["r2"]);
    publish(&dev, &root_doc(&dev, 5, "m2", "r2", year(2099)), &["r2"]);
    dev.apply_url().assert_ok();
    assert_eq!(root_version(&dev), Some(3));
    dev.assert_installed();
}

#[test]
fn an_expired_last_root_is_refused() {
    // test_expiration: the last root of the chain must not have expired.
    let dev = device();
    publish(&dev, &root_doc(&dev, 2, "m1", "r1", year(2020)), &["r1"]);
    let r = dev.run(&[
        "--now",
        "2026-06-01T00:00:00Z",
        "apply",
        &dev.server.url("manifest.json"),
    ]);
    r.assert_fails(3, "root version 2 expired");
    // It verified, so it is trusted (a later root can replace it), but
    // nothing is installed under it.
    assert_eq!(root_version(&dev), Some(2));
    assert!(dev.b().is_empty());
}

#[test]
fn a_dry_run_follows_the_chain_without_persisting_it() {
    let dev = device();
    publish(&dev, &root_doc(&dev, 2, "m2", "r1", year(2099)), &["r1"]);
    dev.run(&["apply", &dev.server.url("manifest.json"), "--dry-run"])
        .assert_fails(3, "unknown key");
    assert_eq!(root_version(&dev), Some(1));
}

#[test]
fn a_device_without_a_root_role_fetches_no_roots() {
    // Provisioned before roots: keyring.toml as it was, whatever a server
    // puts in root/.
    let dev = Builder::new().build();
    write(&dev.env.p("rel/2.root.json"), b"not a root");
    dev.apply_url().assert_ok();
    assert!(dev.status()["root"].is_null());
}

/// `release create` into `rel` (what the server serves): gw VERSION with
/// SECURITY, signed by KEY, the published roots kept.
fn publish_release(dev: &Device, key: &str, version: &str, security: &str) {
    let keep = dev.env.p("roots.keep");
    std::fs::create_dir_all(&keep).unwrap();
    for e in std::fs::read_dir(dev.env.p("rel")).unwrap().flatten() {
        if e.file_name().to_string_lossy().ends_with(".root.json") {
            std::fs::rename(e.path(), keep.join(e.file_name())).unwrap();
        }
    }
    std::fs::remove_dir_all(dev.env.p("rel")).unwrap();
    let key = dev.env.s(&format!("keys/{key}.key"));
    dev.env
        .release_by(
            "rel",
            "rootfs.img",
            ["--key", &key],
            version,
            security,
            &["--chunk-size", "262144"],
        )
        .assert_ok();
    for e in std::fs::read_dir(&keep).unwrap().flatten() {
        std::fs::rename(e.path(), dev.env.p("rel").join(e.file_name())).unwrap();
    }
}

/// A device with a GRUB env and recorded reboots whose keyring is root 1.
fn trial_device() -> Device {
    Builder::new().boot(Boot::Grub).trials().root_key().build()
}

/// Install what the server serves by a one-shot trial and commit it.
fn install_and_commit(t: &Device) -> String {
    t.apply_reboot().assert_ok();
    let slot = t.reset();
    t.run(&["health"]).assert_ok();
    slot
}

#[test]
fn a_leaked_manifest_key_bricks_updates_until_a_root_rotation_recovers_them() {
    let t = trial_device();
    let dev = &t;
    // 1. The attacker holds m1, the manifest key: a validly signed release
    //    with the highest security_version and an absurd version installs
    //    and commits.
    publish_release(dev, "m1", "999999.0.0", "18446744073709551615");
    assert_eq!(install_and_commit(&t), "B");
    let st = dev.status();
    assert_eq!(st["highest_security_version"], u64::MAX);
    // 2. From then on every genuine release is a downgrade: bricked.
    publish_release(dev, "m1", "1.3.0", "6");
    t.apply_reboot().assert_fails(
        3,
        "downgrade refused: version 1.3.0 is lower than installed 999999.0.0",
    );
    // 3. The vendor rotates: root 2 (signed by the offline root key r1)
    //    revokes m1 for m2 and resets the floors the leaked key pushed up.
    let mut root = root_doc(dev, 2, "m2", "r1", year(2099));
    root.reset = Some(updater_format::root::FloorReset {
        security_version: 5,
        version: semver::Version::new(1, 0, 0),
        channels: true,
    });
    publish(dev, &root, &["r1"]);
    // The attacker's key is refused from the first document after it.
    t.apply_reboot().assert_fails(3, "unknown key");
    let st = dev.status();
    assert_eq!(st["root"]["version"], 2);
    assert_eq!(st["highest_security_version"], 5, "{st}");
    // 4. A genuine release, signed by m2, installs and commits.
    publish_release(dev, "m2", "1.3.0", "6");
    assert_eq!(install_and_commit(&t), "A");
    let st = dev.status();
    assert_eq!(st["groups"]["A"]["status"], "good");
    assert_eq!(st["groups"]["A"]["version"], "1.3.0");
    assert_eq!(st["highest_security_version"], 6);
    // 5. The reset's version floor held only while the attacker's release
    //    ran: an older genuine release is a downgrade again.
    publish_release(dev, "m2", "1.2.0", "6");
    t.apply_reboot().assert_fails(
        3,
        "downgrade refused: version 1.2.0 is lower than installed 1.3.0",
    );
}

#[test]
fn a_security_version_jump_over_the_step_is_refused_unless_the_root_allows_it() {
    let t = Builder::new()
        .boot(Boot::Grub)
        .trials()
        .root_key()
        .set("install", "max_security_step", "100")
        .build();
    let dev = &t;
    let text = std::fs::read_to_string(dev.config()).unwrap();
    assert!(text.contains("max_security_step = 100\n"));
    publish_release(dev, "m1", "999999.0.0", "18446744073709551615");
    t.apply_reboot()
        .assert_fails(3, "is more than 100 above this device's floor 0");
    publish_release(dev, "m1", "2.0.0", "150");
    t.apply_reboot().assert_fails(3, "more than 100 above");
    // Root 2 allows a step of 1000 (a planned jump).
    let mut root = root_doc(dev, 2, "m1", "r1", year(2099));
    root.max_security_step = Some(1000);
    publish(dev, &root, &["r1"]);
    assert_eq!(install_and_commit(&t), "B");
    assert_eq!(dev.status()["highest_security_version"], 150);
}

#[test]
fn the_vendor_commands_make_and_co_sign_a_chain_devices_follow() {
    // Two root key holders, threshold 2: root 2 (m1 → m2) is written and
    // signed by one, refused by `root verify` until the other co-signs.
    let dev = Builder::new().build();
    let env = &dev.env;
    env.keygen("r1");
    env.keygen("r2");
    env.reinit_ring(&[
        ("--manifest-key", "m1"),
        ("--kernel-key", "k1"),
        ("--root-key", "r1"),
        ("--root-key", "r2"),
        ("--root-threshold", "2"),
    ]);
    let (one, two) = (env.s("rel/1.root.json"), env.s("rel/2.root.json"));
    vendor(&[
        "root",
        "init",
        "--keyring",
        &env.s("ring"),
        "--out",
        &one,
        "--expires",
        "2099-01-01T00:00:00Z",
        "--key",
        &env.s("keys/r1.key"),
        "--key",
        &env.s("keys/r2.key"),
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
        "--manifest-key",
        &env.s("keys/m2.pub"),
        "--key",
        &env.s("keys/r1.key"),
    ])
    .assert_ok();
    vendor(&[
        "root",
        "verify",
        "--trusted",
        &one,
        &two,
        "--now",
        "2030-01-01T00:00:00Z",
    ])
    .assert_fails(3, "root signatures rejected: 1 valid of threshold 2");
    // The same key again is refused; the second holder's key completes it.
    vendor(&["root", "sign", &two, "--key", &env.s("keys/r1.key")])
        .assert_fails(2, "already signed");
    vendor(&["root", "sign", &two, "--key", &env.s("keys/r2.key")]).assert_ok();
    let ok = vendor(&[
        "root",
        "verify",
        "--trusted",
        &one,
        &two,
        "--now",
        "2030-01-01T00:00:00Z",
    ]);
    ok.assert_ok();
    // Published beside the release (1.root.json is the device's own root 1
    // and is not asked for), devices follow it: m1 is revoked.
    dev.apply_url().assert_fails(3, "unknown key");
    assert_eq!(root_version(&dev), Some(2));
}

// --- The persisted chain (issue 20): re-verified from the image's root on
// every load, never rolled back, never raced. ------------------------------

/// Every file the device keeps a persisted root in: the chain's links and
/// the copy written for earlier agents (on main before the chain, the one
/// file it trusted).
fn persisted_roots(dev: &Device) -> Vec<std::path::PathBuf> {
    let mut v = vec![dev.env.p("dev/state/root.json")];
    if let Ok(rd) = std::fs::read_dir(dev.env.p("dev/state/roots")) {
        v.extend(rd.flatten().map(|e| e.path()));
    }
    v.retain(|p| p.is_file());
    v.sort();
    v
}

/// Swap the manifest key in a root envelope's payload for `key`'s, leaving
/// its signatures as they were.
fn swap_manifest_key(dev: &Device, path: &std::path::Path, key: &str) {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut env: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let mut root: Value =
        serde_json::from_slice(&b64.decode(env["payload"].as_str().unwrap()).unwrap()).unwrap();
    let k = public(&dev.env.key(key));
    let id = k.id.to_string();
    root["keys"][&id] = Value::String(updater_format::keys::public_key_pem(&k.key));
    root["roles"]["manifest"]["keyids"] = serde_json::json!([id]);
    env["payload"] = Value::String(b64.encode(serde_json::to_vec(&root).unwrap()));
    write(path, &serde_json::to_vec(&env).unwrap());
}

#[test]
fn a_tampered_persisted_root_is_refused_not_trusted() {
    // Issue 20, case 1: the payload of the persisted root edited to trust
    // the attacker's manifest key, the signatures left as they were.
    let dev = device();
    dev.env.keygen("evil");
    publish(&dev, &root_doc(&dev, 2, "m1", "r1", year(2099)), &["r1"]);
    dev.apply_url().assert_ok();
    assert_eq!(root_version(&dev), Some(2));
    let genuine = dev.status()["groups"]["B"]["digest"].clone();
    let files = persisted_roots(&dev);
    assert!(!files.is_empty());
    for f in &files {
        swap_manifest_key(&dev, f, "evil");
    }
    // The attacker's release, served with the genuine root 2.
    resign(&dev, "evil");
    let r = dev.apply_url();
    r.assert_fails(10, "root version 2 does not verify from root version 1");
    assert!(r.stderr.contains("roots/2.root.json"), "{}", r.stderr);
    assert!(r.stderr.contains("updater root refresh"), "{}", r.stderr);
    assert!(!r.stderr.contains("remove the file"), "{}", r.stderr);
    // Nothing was installed, and status says why without failing.
    let st = dev.status();
    assert_eq!(st["groups"]["B"]["digest"], genuine, "{st}");
    assert!(
        st["root"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("does not verify")),
        "{st}"
    );
    // The operator fetches the chain again: verified from the image's root,
    // and the attacker's key is unknown again.
    let url = dev.server.url("manifest.json");
    let fixed = dev.run(&["root", "refresh", &url]);
    fixed.assert_ok();
    assert!(fixed.stdout.contains("to 2"), "{}", fixed.stdout);
    assert_eq!(root_version(&dev), Some(2));
    dev.apply_url().assert_fails(3, "unknown key");
}

#[test]
fn a_restored_older_root_is_refused_until_the_chain_is_fetched_again() {
    // Issue 20, case 3: root 3 revoked m1; putting root 2 back (an older
    // genuine root) while the server withholds root 3 must not re-trust m1.
    let dev = device();
    publish(&dev, &root_doc(&dev, 2, "m1", "r1", year(2099)), &["r1"]);
    dev.apply_url().assert_ok();
    // A copy of every persisted root file as they were with root 2.
    let backup: Vec<(std::path::PathBuf, Vec<u8>)> = persisted_roots(&dev)
        .into_iter()
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect();
    publish(&dev, &root_doc(&dev, 3, "m2", "r1", year(2099)), &["r1"]);
    resign(&dev, "m2");
    dev.apply_url().assert_ok();
    assert_eq!(root_version(&dev), Some(3));
    // Restore the copy: the root files as they were, nothing newer.
    for p in persisted_roots(&dev) {
        std::fs::remove_file(p).unwrap();
    }
    for (p, b) in &backup {
        write(p, b);
    }
    // The server withholds root 3 and serves a release signed by m1.
    let three = std::fs::read(dev.env.p("rel/3.root.json")).unwrap();
    std::fs::remove_file(dev.env.p("rel/3.root.json")).unwrap();
    resign(&dev, "m1");
    let r = dev.apply_url();
    r.assert_fails(
        10,
        "ends at root version 2, but this device accepted root version 3",
    );
    assert!(r.stderr.contains("updater root refresh"), "{}", r.stderr);
    assert!(!r.stderr.contains("remove the file"), "{}", r.stderr);
    // Fetching the chain again while root 3 is still withheld cannot pass
    // either: it must reach the version the device accepted.
    let url = dev.server.url("manifest.json");
    dev.run(&["root", "refresh", &url])
        .assert_fails(10, "accepted root version 3");
    // Once the server has root 3 again, the chain is fetched and verified,
    // and m1 stays revoked.
    write(&dev.env.p("rel/3.root.json"), &three);
    dev.run(&["root", "refresh", &url]).assert_ok();
    assert_eq!(root_version(&dev), Some(3));
    dev.apply_url().assert_fails(3, "unknown key");
}

#[test]
fn a_device_an_earlier_agent_left_fetches_its_chain_again() {
    // An agent of round 2 kept only state/root.json. This agent never trusts
    // it, but takes its version as the floor, and the next refresh fetches
    // the chain from the source.
    let dev = device();
    publish(&dev, &root_doc(&dev, 2, "m2", "r1", year(2099)), &["r1"]);
    dev.apply_url().assert_fails(3, "unknown key");
    std::fs::remove_dir_all(dev.env.p("dev/state/roots")).unwrap();
    std::fs::remove_file(dev.env.p("dev/state/root-floor.json")).unwrap();
    assert!(dev.env.p("dev/state/root.json").is_file());
    // Without the chain, what this agent trusts is refused, not guessed.
    let st = dev.status();
    assert!(
        st["root"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("accepted root version 2")),
        "{st}"
    );
    resign(&dev, "m2");
    dev.apply_url().assert_ok();
    assert_eq!(root_version(&dev), Some(2));
    assert!(dev.env.p("dev/state/roots/2.root.json").is_file());
    assert!(dev.env.p("dev/state/root-floor.json").is_file());
}

#[test]
fn root_refusals_name_the_root_version_and_its_url() {
    // Issue 20, case 4: not "invalid manifest", and the root's URL rather
    // than the manifest's.
    let dev = device();
    let mut doc = root_doc(&dev, 2, "m1", "r1", year(2099));
    doc.version = u64::MAX;
    let keys = [dev.env.key("r1")];
    let env = seal(&doc, &[&keys[0]]).unwrap();
    write(&dev.env.p("rel/2.root.json"), &env.to_json());
    let r = dev.apply_url();
    let root_url = dev.server.url("2.root.json");
    r.assert_fails(3, &format!("root version 2 from {root_url} refused"));
    assert!(
        r.stderr
            .contains("says it is root version 18446744073709551615"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("invalid manifest"), "{}", r.stderr);
    // A root signed by a key nobody trusted: the same label.
    publish(&dev, &root_doc(&dev, 2, "m2", "r2", year(2099)), &["r2"]);
    let r = dev.apply_url();
    r.assert_fails(3, &format!("root version 2 from {root_url} refused"));
    assert!(
        r.stderr.contains("root signatures rejected"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_private_bucket_that_answers_403_for_a_missing_root_ends_the_chain_when_configured() {
    // S3 answers 403 for a missing object to a reader without ListBucket.
    let dev = Builder::new()
        .http("absent_status = [403, 404, 410]")
        .root_key()
        .build();
    dev.server
        .fault(updater_testkit::Fault::Status(403), Some("2.root.json"), 50);
    dev.apply_url().assert_ok();
    dev.assert_installed();
    // Without the setting, 403 is a failed fetch (exit 4), never "no more
    // roots": a server that refuses must not silently end the chain.
    let plain = device();
    plain
        .server
        .fault(updater_testkit::Fault::Status(403), Some("2.root.json"), 50);
    plain.apply_url().assert_fails(4, "403");
    // Only client errors can mean "missing".
    let bad = Builder::new().http("absent_status = [500]").build();
    bad.run(&["status"]).assert_fails(2, "http.absent_status");
}

/// A device following a channel (c1) whose keyring is root 1 (m1, k1, c1,
/// r1).
fn channel_device() -> Device {
    Builder::new().channel().root_key().build()
}

/// Root `version` of a channel device: manifest key `manifest`, k1, c1, r1.
fn channel_root(dev: &Device, version: u64, manifest: &str) -> Root {
    let env = &dev.env;
    let ring = Keyring::new(
        vec![public(&env.key(manifest))],
        1,
        vec![public(&env.key("k1"))],
        1,
    )
    .unwrap()
    .with_channel(vec![public(&env.key("c1"))], 1)
    .unwrap();
    Root::from_keyring(&ring, &[public(&env.key("r1"))], 1, version, year(2099))
}

#[test]
fn a_slow_check_cannot_roll_back_the_root_an_apply_accepted_meanwhile() {
    // Issue 20, case 2: `check` starts from root 1 and is slow to receive
    // 2.root.json; meanwhile `apply` accepts roots 2 and 3, where 3
    // revokes the leaked manifest key m1. Then the attacker withholds root
    // 3 and serves a release signed by m1.
    let dev = channel_device();
    publish(&dev, &channel_root(&dev, 2, "m1"), &["r1"]);
    publish(&dev, &channel_root(&dev, 3, "m2"), &["r1"]);
    resign(&dev, "m2");
    dev.server
        .fault(updater_testkit::Fault::Hold, Some("2.root.json"), 1);
    let check = std::process::Command::new(bin())
        .env(updater::trial::reboot::NO_REAL_RESTART_ENV, "1")
        .args(["--config", &dev.config(), "check", "--json"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while dev.server.held() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "check never asked for 2.root.json"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // While check waits: apply accepts 2 and 3 and installs.
    dev.apply_url().assert_ok();
    assert_eq!(root_version(&dev), Some(3));
    std::fs::remove_file(dev.env.p("rel/3.root.json")).unwrap();
    resign(&dev, "m1");
    dev.server.release_holds();
    let mut check = check;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if check.try_wait().unwrap().is_some() {
            break;
        }
        if std::time::Instant::now() > deadline {
            let _ = check.kill();
            panic!("check did not finish");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // The root on disk did not go back, and m1 stays revoked.
    assert_eq!(root_version(&dev), Some(3));
    dev.apply_url().assert_fails(3, "unknown key");
}
