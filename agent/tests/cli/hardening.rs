//! The attacks a careful tester ran against round 1, each refused now:
//! aliases of the booted slot, planted links and loose permissions in the
//! state folder, signed metadata that asks for too much, links that drop
//! every megabyte, servers that trickle or redirect, health checks that
//! fail open, and clocks that move.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::*;
use crate::device::{Boot, Builder, Device};
use updater_testkit::{Fault, Server};

/// A device with a GRUB env, a recorded reboot command and a passing
/// health check.
fn trial() -> Builder {
    Builder::new().boot(Boot::Grub).trials()
}

/// Rewrite the device's config with `f`.
fn edit_config(dev: &Device, f: impl FnOnce(String) -> String) {
    let cfg = std::fs::read_to_string(dev.env.p("dev/config.toml")).unwrap();
    std::fs::write(dev.env.p("dev/config.toml"), f(cfg)).unwrap();
}

/// Point slot B's rootfs target at `path`.
fn b_rootfs_at(dev: &Device, path: &std::path::Path) {
    let d = dev.env.s("dev");
    edit_config(dev, |c| {
        c.replace(
            &format!("rootfs = \"{d}/slots/B.rootfs\""),
            &format!("rootfs = \"{}\"", path.display()),
        )
    });
}

#[test]
fn every_alias_of_the_booted_slot_is_refused_before_a_byte_is_written() {
    // A hard link and a symlink to slot A's image, as slot B's target.
    for how in ["hard link", "symlink"] {
        let dev = Builder::new().build();
        let alias = dev.env.p("dev/alias.img");
        let a = dev.env.p("dev/slots/A.rootfs");
        if how == "hard link" {
            std::fs::hard_link(&a, &alias).unwrap();
        } else {
            std::os::unix::fs::symlink(&a, &alias).unwrap();
        }
        b_rootfs_at(&dev, &alias);
        dev.apply_url().assert_fails(
            2,
            "is the same storage as the booted slot A's rootfs target",
        );
        dev.check_invariants_a_intact();
        assert_eq!(dev.server.body_bytes(), 0, "{how}: something was fetched");
    }
}

/// Two block device nodes of one device as slots A and B are refused.
///
/// Needs mknod of block device nodes (root, or CAP_MKNOD). Where that is not
/// permitted the test is SKIPPED, and says so and why where the run shows
/// it (`common::can_run`: a `SKIPPED` line on stderr and in
/// `target/test-skips/`; a failure instead with `UPDATER_NO_SKIP=1`).
#[test]
fn a_second_device_node_of_the_booted_partition_is_refused() {
    // Two nodes with the same device number in a test folder. Neither is
    // ever opened: the refusal comes from stat alone. (The numbers are a
    // loop device minor no test machine uses; nothing could be written to
    // it even if the check were missing, as opening it fails.)
    let dev = Builder::new().build();
    let (a, b) = (dev.env.p("dev/nodeA"), dev.env.p("dev/nodeB"));
    let mknod = |p: &std::path::Path| match Command::new("mknod")
        .arg(p)
        .args(["b", "7", "243"])
        .output()
    {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!(
            "`mknod PATH b 7 243` failed ({}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Err(format!("mknod could not be run: {e}")),
    };
    let why = mknod(&a).and_then(|()| mknod(&b)).err();
    if !can_run(
        why.is_none(),
        &format!(
            "block device nodes cannot be made here: {}",
            why.unwrap_or_default()
        ),
    ) {
        return;
    }
    let d = dev.env.s("dev");
    edit_config(&dev, |c| {
        c.replace(
            &format!("rootfs = \"{d}/slots/A.rootfs\""),
            &format!("rootfs = \"{}\"", a.display()),
        )
        .replace(
            &format!("rootfs = \"{d}/slots/B.rootfs\""),
            &format!("rootfs = \"{}\"", b.display()),
        )
    });
    dev.apply_url()
        .assert_fails(2, "both are block device 7:243");
    assert_eq!(dev.server.body_bytes(), 0);
}

/// A loop device over slot A's image, as slot B, is refused.
///
/// Needs a loop device (losetup, root, /dev/loop-control). Where none can
/// be set up the test is SKIPPED, and says so and why where the run shows
/// it (`common::can_run`: a `SKIPPED` line on stderr and in
/// `target/test-skips/`; a failure instead with `UPDATER_NO_SKIP=1`).
#[test]
fn a_loop_device_over_the_booted_image_is_refused() {
    let dev = Builder::new().build();
    let a = dev.env.p("dev/slots/A.rootfs");
    let out = Command::new("losetup")
        .args(["--find", "--show", "--read-only"])
        .arg(&a)
        .output();
    let loopdev = match out {
        Ok(o) if o.status.success() => {
            let name = String::from_utf8_lossy(&o.stdout).trim().to_string();
            if name.is_empty() {
                Err("`losetup --find --show` named no loop device".to_string())
            } else {
                Ok(name)
            }
        }
        Ok(o) => Err(format!(
            "`losetup --find --show --read-only` failed ({}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Err(format!("losetup could not be run: {e}")),
    };
    let why = loopdev.as_ref().err().cloned().unwrap_or_default();
    if !can_run(
        loopdev.is_ok(),
        &format!("no loop device can be set up here: {why}"),
    ) {
        return;
    }
    let loopdev = loopdev.unwrap();
    // A read-only loop device over slot A's image, named as slot B.
    b_rootfs_at(&dev, std::path::Path::new(&loopdev));
    let r = dev.apply_url();
    let _ = Command::new("losetup").args(["-d", &loopdev]).status();
    r.assert_fails(2, "the same storage as the booted slot A's rootfs target");
    dev.check_invariants_a_intact();
}

#[test]
fn two_inactive_groups_never_share_storage() {
    let dev = Builder::new().build();
    let d = dev.env.s("dev");
    std::fs::write(dev.env.p("dev/slots/B.rootfs"), b"").unwrap();
    std::fs::hard_link(
        dev.env.p("dev/slots/B.rootfs"),
        dev.env.p("dev/slots/C.rootfs"),
    )
    .unwrap();
    edit_config(&dev, |c| {
        format!("{c}\n[slots.C.targets]\nrootfs = \"{d}/slots/C.rootfs\"\n")
    });
    std::fs::write(
        dev.env.p("dev/boot.env"),
        "ORDER=A B C\nA_OK=1\nB_OK=0\nC_OK=0\nTRY=\n",
    )
    .unwrap();
    dev.apply_url()
        .assert_fails(2, "is the same storage as slot C's rootfs target");
}

#[test]
fn a_state_folder_or_keyring_others_can_change_is_refused() {
    let dev = Builder::new().build();
    let state = dev.env.p("dev/state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).unwrap();
    dev.apply_url().assert_fails(2, "the state folder");
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    let key = dev.env.p("ring/keyring.toml");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o666)).unwrap();
    let r = dev.apply_url();
    r.assert_fails(2, "keyring.toml can be changed by other users");
    assert!(r.stderr.contains("chmod go-w"), "{}", r.stderr);
    // The configuration may say otherwise; the agent then warns.
    edit_config(&dev, |c| {
        format!("{c}\n[security]\nallow_insecure_permissions = true\n")
    });
    let r = dev.run(&["-v", "apply", &dev.server.url("manifest.json")]);
    r.assert_ok();
    assert!(r.stderr.contains("used anyway"), "{}", r.stderr);
}

#[test]
fn a_planted_lock_link_is_refused() {
    let dev = Builder::new().build();
    let state = dev.env.p("dev/state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    let victim = dev.env.p("victim");
    std::fs::write(&victim, b"precious").unwrap();
    std::os::unix::fs::symlink(&victim, state.join("lock")).unwrap();
    dev.apply_url().assert_fails(5, "a link there is refused");
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
}

/// Re-sign `rel/manifest.json` after `edit` changed its payload (and, if it
/// touched them, fix the chunk table's pin).
fn forge(env: &TestEnv, edit: impl FnOnce(&mut Value, &TestEnv)) {
    let (e, _) = env.read("rel/manifest.json");
    let mut v: Value = serde_json::from_slice(&e.payload_bytes().unwrap()).unwrap();
    edit(&mut v, env);
    env.write_signed(
        "rel/manifest.json",
        &serde_json::to_vec_pretty(&v).unwrap(),
        &["m1"],
    );
}

#[test]
fn signed_metadata_that_asks_too_much_is_refused_with_a_line() {
    // A validly signed chunk table (schema 1) that declares 1 TiB chunks.
    let dev = Builder::new().build();
    std::fs::remove_dir_all(dev.env.p("rel")).unwrap();
    dev.env
        .release("rel", &["--chunk-size", "262144", "--schema", "1"])
        .assert_ok();
    forge(&dev.env, |v, env| {
        let file = v["images"][0]["chunks"]["file"]
            .as_str()
            .unwrap()
            .to_string();
        let p = env.p(&format!("rel/{file}"));
        let mut t: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        t["chunk_size"] = json!(1u64 << 40);
        let mut table = serde_json::to_vec(&t).unwrap();
        table.push(b'\n');
        std::fs::write(&p, &table).unwrap();
        v["images"][0]["chunks"]["size"] = json!(table.len());
        v["images"][0]["chunks"]["sha256"] = json!(updater_format::Sha256Digest::of(&table).hex());
    });
    let r = dev.apply_url();
    r.assert_fails(
        3,
        "chunk_size is 1099511627776 bytes, over the 67108864-byte limit",
    );
    // Refused while planning, before slot B was touched: B is as it was.
    let st = dev.status();
    assert!(
        st["groups"]["B"]["last_error"].is_null() && st["install"].is_null(),
        "nothing was changed: {st}"
    );
    assert!(!dev.env.p("dev/slots/B.rootfs").exists());
    // Too many images, a huge image, too many signatures: refused before
    // anything is fetched.
    for (what, line) in [
        ("images", "more than the 16 allowed"),
        ("size", "over the 1099511627776-byte limit"),
        ("cmdline", "never closed"),
    ] {
        let dev = Builder::new().build();
        forge(&dev.env, |v, _| match what {
            "images" => {
                let img = v["images"][0].clone();
                let mut many = Vec::new();
                for i in 0..17 {
                    let mut x = img.clone();
                    x["class"] = json!(format!("c{i}"));
                    x["file"] = json!(format!("f{i}"));
                    x["index"]["file"] = json!(format!("t{i}"));
                    many.push(x);
                }
                v["images"] = json!(many);
            }
            "size" => v["images"][0]["size"] = json!(1u64 << 41),
            _ => v["cmdline"] = json!("console=ttyS0 init=\"/bin/sh"),
        });
        dev.apply_url().assert_fails(3, line);
        assert!(
            dev.server.log().iter().all(|l| l.path == "manifest.json"),
            "{what}: more than the manifest was fetched"
        );
    }
    let dev = Builder::new().build();
    let mut env: Value =
        serde_json::from_slice(&std::fs::read(dev.env.p("rel/manifest.json")).unwrap()).unwrap();
    let sig = env["signatures"][0].clone();
    env["signatures"] = json!(vec![sig; 17]);
    write(
        &dev.env.p("rel/manifest.json"),
        &serde_json::to_vec(&env).unwrap(),
    );
    dev.apply_url()
        .assert_fails(3, "17 signatures, more than the 16 allowed");
}

#[test]
fn a_quoted_slot_on_the_manifest_command_line_is_refused() {
    let env = TestEnv::new();
    let k = env.s("vmlinuz");
    let kk = env.s("keys/k1.key");
    env.release("rel", &["--kernel", &k, "--kernel-key", &kk])
        .assert_ok();
    for (cmdline, why) in [
        ("console=ttyS0 \"updater.slot=A\"", "only the agent may set"),
        ("console=ttyS0 init=\"/bin/sh", "never closed"),
        ("console=ttyS0 -- single", "passes everything to init"),
    ] {
        forge(&env, |v, _| v["cmdline"] = json!(cmdline));
        env.verify("rel/manifest.json", &[]).assert_fails(3, why);
    }
}

#[test]
fn a_link_that_drops_every_megabyte_or_quarter_still_completes_fetching_each_byte_once() {
    for every in [1u64 << 20, 256 << 10] {
        let dev = Builder::new().build();
        dev.server
            .fault(Fault::DropAfter(every), Some("rootfs.img.zst"), u32::MAX);
        let r = dev.run(&["apply", &dev.server.url("manifest.json"), "--json"]);
        r.assert_ok();
        dev.assert_installed();
        let (_, m) = dev.env.read("rel/manifest.json");
        let image = m.images[0].compressed_size;
        let served: u64 = dev.server.body_bytes();
        assert!(
            served as f64 <= image as f64 * 1.1,
            "every {every}: {served} bytes served for a {image}-byte image"
        );
        let requests = dev
            .server
            .log()
            .iter()
            .filter(|l| l.path == "rootfs.img.zst")
            .count() as u64;
        assert!(requests >= image / every, "{requests} requests");
    }
}

#[test]
fn a_server_that_trickles_is_given_up_on_within_the_bound() {
    let dev = Builder::new()
        .http("min_speed_bytes_per_sec = 2000\nmin_speed_window_secs = 2\nretry_budget_secs = 4")
        .build();
    dev.server.set_rate(1);
    let t = Instant::now();
    let r = dev.apply_url();
    let took = t.elapsed();
    r.assert_fails(4, "fell below 2000 bytes/s");
    assert!(took < Duration::from_secs(20), "took {took:?}");
}

/// A server on loopback that answers every request with a redirect to
/// `to` + the path asked for.
fn redirector(to: String) -> (String, std::sync::Arc<std::sync::atomic::AtomicBool>) {
    use std::io::{BufRead, BufReader, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s2 = stop.clone();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            if s2.load(std::sync::atomic::Ordering::SeqCst) {
                break;
            }
            let mut r = BufReader::new(c.try_clone().unwrap());
            let mut line = String::new();
            let _ = r.read_line(&mut line);
            let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
            }
            let mut c = c;
            let _ = write!(
                c,
                "HTTP/1.1 302 Found\r\nLocation: {to}{path}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    (url, stop)
}

#[test]
fn redirects_go_only_where_they_may() {
    let dev = Builder::new().build();
    let (url, _stop) = redirector(format!("http://{}", dev.server.addr()));
    let to = format!("{url}/manifest.json");
    dev.run(&["apply", &to]).assert_fails(4, "another host");
    assert_eq!(dev.server.body_bytes(), 0, "the redirect was followed");
    // Listed in http.allow_redirect_hosts, it is followed.
    let addr = dev.server.addr().to_string();
    edit_config(&dev, |c| {
        c.replace(
            "[http]\n",
            &format!("[http]\nallow_redirect_hosts = [\"{addr}\"]\n"),
        )
    });
    dev.run(&["apply", &to]).assert_ok();
    dev.assert_installed();
}

#[test]
fn health_fails_closed_and_says_so_with_exit_7() {
    for (case, setup) in [
        ("missing folder", 0),
        ("not executable", 1),
        ("writable by others", 2),
    ] {
        let t = trial().build();
        let dir = t.env.p("dev/health.d");
        match setup {
            0 => std::fs::remove_dir_all(&dir).unwrap(),
            1 => {
                std::fs::set_permissions(dir.join("10-ok"), std::fs::Permissions::from_mode(0o644))
                    .unwrap()
            }
            _ => {
                std::fs::set_permissions(dir.join("10-ok"), std::fs::Permissions::from_mode(0o777))
                    .unwrap()
            }
        }
        t.apply_reboot().assert_ok();
        assert_eq!(t.reset(), "B");
        let r = t.run(&["health"]);
        assert_eq!(r.code, 7, "{case}: {} {}", r.stdout, r.stderr);
        let st = t.status();
        assert_eq!(st["groups"]["B"]["status"], "bad", "{case}: {st}");
        let why = st["groups"]["B"]["last_error"].as_str().unwrap();
        let expect = ["never a pass", "not executable", "writable by every user"][setup];
        assert!(why.contains(expect), "{case}: {why}");
        t.check_boot_invariants();
    }
}

#[test]
fn a_clock_set_back_cannot_revive_an_expired_release() {
    // Release 1.2.0 was valid in January only; a release made on 10
    // February is installed on 15 February. Set back to 20 January, the
    // clock would make 1.2.0 valid again: the floor (the latest signed time
    // seen) says no.
    let dev = Builder::new().build();
    let env = &dev.env;
    std::fs::write(env.p("rootfs2.img"), pattern(200_000, 5)).unwrap();
    let (out, key, img) = (
        env.s("feb"),
        env.s("keys/m1.key"),
        format!("rootfs={}", env.s("rootfs2.img")),
    );
    vendor(&[
        "release",
        "create",
        "--out",
        &out,
        "--key",
        &key,
        "--product",
        "gw",
        "--version",
        "1.1.0",
        "--security-version",
        "5",
        "--compatible",
        "acme-gw",
        "--image",
        &img,
        "--created",
        "2026-02-10T00:00:00Z",
        "--now",
        "2026-02-10T00:00:00Z",
    ])
    .assert_ok();
    let feb = Server::start(&env.p("feb"), "127.0.0.1:0").unwrap();
    let rel = env.p("rel");
    std::fs::remove_dir_all(&rel).unwrap();
    env.release(
        "rel",
        &[
            "--chunk-size",
            "262144",
            "--created",
            "2026-01-01T00:00:00Z",
            "--expires",
            "2026-01-31T00:00:00Z",
            "--now",
            "2026-01-01T00:00:00Z",
        ],
    )
    .assert_ok();
    dev.run(&[
        "--now",
        "2026-02-15T00:00:00Z",
        "apply",
        &feb.url("manifest.json"),
    ])
    .assert_ok();
    let r = dev.run(&[
        "--now",
        "2026-01-20T00:00:00Z",
        "apply",
        &dev.server.url("manifest.json"),
    ]);
    r.assert_fails(3, "manifest expired at 2026-01-31");
    // The floor is the February release's signature time.
    assert!(r.stderr.contains("now 2026-02-10"), "{}", r.stderr);
}

#[test]
fn a_clock_set_ahead_after_boot_does_not_fail_a_healthy_trial() {
    let t = trial().build();
    t.apply_reboot().assert_ok();
    assert_eq!(t.reset(), "B");
    // Ten years ahead: by the wall clock the trial's deadline (ten minutes)
    // is long past; by the boot's clock it is seconds old.
    let r = t.run(&["--now", "2036-06-01T00:00:00Z", "health"]);
    r.assert_ok();
    assert!(r.stdout.contains("committed"), "{}", r.stdout);
    // An overdue trial (by the boot's clock) still fails.
    let t = trial().set("trial", "deadline_secs", "1").build();
    t.apply_reboot().assert_ok();
    assert_eq!(t.reset(), "B");
    std::thread::sleep(Duration::from_millis(2100));
    let r = t.run(&["health"]);
    assert_eq!(r.code, 7, "{} {}", r.stdout, r.stderr);
    assert!(
        t.status()["groups"]["B"]["last_error"]
            .as_str()
            .unwrap()
            .contains("by the boot's clock"),
        "{}",
        t.status()
    );
}

#[test]
fn distinct_exit_codes_for_busy_trial_pending_and_corrupt_state() {
    let t = trial().build();
    t.apply_reboot().assert_ok();
    let url = t.server.url("manifest.json");
    t.run(&["apply", &url])
        .assert_fails(9, "a trial of slot B is pending");
    let dev = Builder::new().build();
    std::fs::create_dir_all(dev.env.p("dev/state")).unwrap();
    std::fs::set_permissions(
        dev.env.p("dev/state"),
        std::fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    std::fs::write(dev.env.p("dev/state/state.json"), "{\"version\": 1, ").unwrap();
    dev.apply_url().assert_fails(10, "is corrupt");
}

#[test]
fn output_into_a_closed_pipe_is_not_a_crash() {
    let env = TestEnv::new();
    env.release_with_kernel("rel");
    for args in [
        vec![
            "verify".to_string(),
            env.s("rel/manifest.json"),
            "--keyring".into(),
            env.s("ring"),
        ],
        vec!["--help".to_string()],
    ] {
        let mut child = Command::new(bin())
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // `| head -0`: the reader is gone before anything is read.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.code().is_some(),
            "{args:?}: killed by a signal: {:?} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !String::from_utf8_lossy(&out.stderr).contains("panicked"),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn a_failing_reboot_command_disarms_the_one_shot_and_says_how_to_retry() {
    // A reboot command that fails.
    let t = trial()
        .set("trial", "reboot_command", "[\"false\"]")
        .build();
    let r = t.apply_reboot();
    r.assert_fails(6, "the one-shot trial was disarmed");
    assert!(r.stderr.contains("updater activate"), "{}", r.stderr);
    assert_eq!(t.boot_env()["B_TRY"], "0");
    let st = t.status();
    assert_eq!(st["groups"]["B"]["status"], "installed", "{st}");
    assert!(st["trial"].is_null());
    t.check_boot_invariants();
}

#[test]
fn a_missing_file_env_is_an_error_not_a_guess() {
    let dev = Builder::new().build();
    std::fs::remove_file(dev.env.p("dev/boot.env")).unwrap();
    let r = dev.apply_url();
    r.assert_fails(6, "never invents one");
    assert!(r.stderr.contains("ORDER=A B"), "{}", r.stderr);
    assert!(!dev.env.p("dev/slots/B.rootfs").exists());
}

#[test]
fn a_release_valid_for_years_is_refused() {
    let dev = Builder::new().build();
    std::fs::remove_dir_all(dev.env.p("rel")).unwrap();
    dev.env
        .release(
            "rel",
            &["--chunk-size", "262144", "--expires", "800", "--force"],
        )
        .assert_ok();
    dev.apply_url().assert_fails(3, "valid for 800 days");
    assert_eq!(dev.server.log().len(), 1, "only the manifest was fetched");
    // A device that accepts longer validity says so in its configuration.
    edit_config(&dev, |c| {
        c.replace(
            "[install]\n",
            "[install]\nmax_release_validity_days = 1000\n",
        )
    });
    dev.apply_url().assert_ok();
}
