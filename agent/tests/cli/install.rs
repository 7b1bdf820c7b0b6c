//! `updater apply` and `updater status` on a simulated device with file
//! slots, against the in-repo HTTP server on loopback, with injected faults.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use crate::device::{Builder, ROOTFS_LEN};
use serde_json::Value;
use updater_format::Sha256Digest;
use updater_testkit::Fault;

#[test]
fn apply_over_http_then_status() {
    let dev = Builder::new().build();
    let r = dev.apply_url();
    r.assert_ok();
    assert!(
        r.stdout.contains("installed 1.2.0 into slot B"),
        "{}",
        r.stdout
    );
    dev.assert_installed();
    let st = dev.status();
    assert_eq!(st["booted"], "A");
    assert_eq!(st["primary"], "A");
    // The recorded digest is the release's identity: sha256 of the signed payload.
    let (envelope, _) = dev.env.read("rel/manifest.json");
    let digest = Sha256Digest::of(&envelope.payload_bytes().unwrap()).hex();
    assert_eq!(st["groups"]["B"]["digest"], digest.as_str());
    let env_text = std::fs::read_to_string(dev.env.p("dev/boot.env")).unwrap();
    assert!(
        env_text.contains("B_OK=0") && env_text.contains("ORDER=A B"),
        "{env_text}"
    );
    // The manifest was requested before anything else.
    let log = dev.server.log();
    assert_eq!(log[0].path, "manifest.json");
}

#[test]
fn apply_from_a_local_folder() {
    let dev = Builder::new().build();
    let rel = dev.env.s("rel");
    dev.run(&["apply", &rel]).assert_ok();
    dev.assert_installed();
    let url = format!("file://{rel}/manifest.json");
    dev.run(&["apply", &url]).assert_ok();
    dev.assert_installed();
}

#[test]
fn json_progress_events() {
    let dev = Builder::new().build();
    let url = dev.server.url("manifest.json");
    let r = dev.run(&["apply", &url, "--json"]);
    r.assert_ok();
    let events: Vec<Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let names: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(names.first(), Some(&"verified"));
    assert!(names.contains(&"image") && names.contains(&"image-done"));
    assert!(names.contains(&"plan") && names.contains(&"installed"));
    // The last line says what the install cost.
    let last = events.last().unwrap();
    assert_eq!(last["event"], "result");
    let whole = std::fs::metadata(dev.env.p("rel/rootfs.img.zst"))
        .unwrap()
        .len();
    assert!(last["bytes_fetched"].as_u64().unwrap() > whole);
    assert_eq!(last["bytes_reused"], 0);
}

#[test]
fn dropped_connections_are_resumed_with_ranges() {
    let dev = Builder::new().build();
    dev.server
        .fault(Fault::DropAfter(700_000), Some("rootfs.img.zst"), 2);
    let r = dev.apply_url();
    r.assert_ok();
    assert!(r.stdout.contains("retries"), "{}", r.stdout);
    dev.assert_installed();
    let ranged: Vec<_> = dev
        .server
        .log()
        .into_iter()
        .filter(|l| l.range_start.is_some())
        .collect();
    assert!(!ranged.is_empty(), "resume did not use a Range request");
    assert!(ranged.iter().all(|l| l.status == 206));
}

#[test]
fn server_errors_are_retried() {
    let dev = Builder::new().build();
    dev.server
        .fault(Fault::Status(503), Some("rootfs.img.zst"), 2);
    dev.server
        .fault(Fault::Status(500), Some("manifest.json"), 1);
    dev.apply_url().assert_ok();
    dev.assert_installed();
}

#[test]
fn persistent_server_errors_fail_with_exit_4() {
    let dev = Builder::new().build();
    dev.server
        .fault(Fault::Status(503), Some("rootfs.img.zst"), 100);
    dev.apply_url().assert_fails(4, "HTTP 503");
    dev.check_install_invariants();
    let st = dev.status();
    assert_eq!(st["groups"]["B"]["status"], "installing");
    assert!(st["groups"]["B"]["last_error"]
        .as_str()
        .unwrap()
        .contains("503"));
}

#[test]
fn not_found_is_not_retried() {
    let dev = Builder::new().build();
    std::fs::remove_file(dev.env.p("rel/rootfs.img.zst")).unwrap();
    let t = Instant::now();
    dev.apply_url().assert_fails(4, "HTTP 404");
    assert!(dev.server.log().iter().filter(|l| l.status == 404).count() == 1);
    assert!(t.elapsed() < Duration::from_secs(10));
    dev.check_install_invariants();
}

#[test]
fn a_stalled_server_times_out_and_resumes() {
    let dev = Builder::new().build();
    dev.server.fault(
        Fault::StallAfter(400_000, Duration::from_secs(6)),
        Some("rootfs.img.zst"),
        1,
    );
    dev.apply_url().assert_ok();
    dev.assert_installed();
}

#[test]
fn a_lying_content_length_is_survived() {
    let dev = Builder::new().build();
    dev.server
        .fault(Fault::ShortBody(5000), Some("rootfs.img.zst"), 1);
    dev.apply_url().assert_ok();
    dev.assert_installed();
}

#[test]
fn a_server_that_ignores_range_is_handled() {
    let dev = Builder::new().build();
    dev.server
        .fault(Fault::DropAfter(900_000), Some("rootfs.img.zst"), 1);
    dev.server
        .fault(Fault::IgnoreRange, Some("rootfs.img.zst"), 1);
    dev.apply_url().assert_ok();
    dev.assert_installed();
    assert!(dev
        .server
        .log()
        .iter()
        .any(|l| l.path == "rootfs.img.zst" && l.status == 200 && l.range_start.is_none()));
}

#[test]
fn a_flipped_byte_is_refused_before_it_is_written() {
    let dev = Builder::new().build();
    dev.server
        .fault(Fault::FlipByte(1_500_000), Some("rootfs.img.zst"), 100);
    dev.apply_url()
        .assert_fails(3, "do not match the signed index");
    dev.check_install_invariants();
    // Nothing from the corrupt chunk on reached the slot: the slot file
    // ends before that chunk's region.
    let chunks = updater_testkit::read_index(&dev.env.p("rel/rootfs.index"));
    let bad = chunks
        .iter()
        .find(|c| c.coffset <= 1_500_000 && 1_500_000 < c.coffset + c.csize)
        .unwrap();
    assert!(
        bad.offset > 0,
        "the flipped byte should be past the first chunk"
    );
    assert!(
        dev.b().len() as u64 <= bad.offset,
        "bytes of the corrupt chunk reached the slot"
    );
    let st = dev.status();
    assert!(st["groups"]["B"]["last_error"]
        .as_str()
        .unwrap()
        .contains("chunk"));
}

#[test]
fn a_chunk_from_another_release_is_refused() {
    let dev = Builder::new().build();
    // Another release of the same product with different contents.
    std::fs::write(dev.env.p("other.img"), pattern(ROOTFS_LEN, 99)).unwrap();
    dev.env
        .release_of("rel-other", "other.img", &["--chunk-size", "262144"])
        .assert_ok();
    std::fs::copy(
        dev.env.p("rel-other/rootfs.img.zst"),
        dev.env.p("rel/rootfs.img.zst"),
    )
    .unwrap();
    dev.apply_url().assert_fails(3, "");
    dev.check_install_invariants();
}

#[test]
fn a_file_replaced_mid_download_is_not_spliced() {
    let dev = Builder::new().build();
    // The connection breaks mid-image and the file is "re-uploaded" (new
    // ETag) at that moment: the resume's If-Range no longer matches, the
    // server sends the whole file (200), and the agent skips to where it was,
    // still checking every chunk against the signed table.
    dev.server
        .fault(Fault::DropAndReplace(900_000), Some("rootfs.img.zst"), 1);
    dev.apply_url().assert_ok();
    dev.assert_installed();
    let log = dev.server.log();
    let resumed: Vec<_> = log
        .iter()
        .filter(|l| l.path == "rootfs.img.zst")
        .skip(1)
        .collect();
    assert!(!resumed.is_empty(), "no resume request: {log:?}");
    assert_eq!(
        resumed[0].if_range_matched,
        Some(false),
        "the resume did not send the old ETag: {log:?}"
    );
    assert_eq!(
        resumed[0].status, 200,
        "a mismatched If-Range must get the whole file: {log:?}"
    );
}

#[test]
fn an_oversized_manifest_is_refused() {
    let dev = Builder::new().build();
    std::fs::write(dev.env.p("rel/manifest.json"), vec![b' '; 2 << 20]).unwrap();
    dev.apply_url().assert_fails(3, "");
    dev.check_install_invariants();
}

#[test]
fn an_untrusted_release_writes_nothing() {
    let dev = Builder::new().build();
    let (_, m) = dev.env.read("rel/manifest.json");
    dev.env.write_signed(
        "rel/manifest.json",
        &serde_json::to_vec(&m).unwrap(),
        &["rogue"],
    );
    dev.apply_url().assert_fails(3, "unknown key");
    assert!(!dev.env.p("dev/slots/B.rootfs").exists());
    // Only the manifest was requested.
    assert!(dev.server.log().iter().all(|l| l.path == "manifest.json"));
    let st = dev.status();
    assert_eq!(st["groups"]["B"]["status"], "empty");
}

#[test]
fn booted_slot_detection_refuses_to_guess() {
    let dev = Builder::new().build();
    std::fs::write(dev.env.p("dev/cmdline"), "console=ttyS0 root=/dev/sda9\n").unwrap();
    dev.apply_url()
        .assert_fails(2, "cannot tell which slot group is booted");
    std::fs::write(dev.env.p("dev/cmdline"), "updater.slot=A updater.slot=B\n").unwrap();
    dev.apply_url()
        .assert_fails(2, "more than one updater.slot=");
    // root= naming slot A's rootfs target identifies A.
    let a = dev.env.s("dev/slots/A.rootfs");
    std::fs::write(dev.env.p("dev/cmdline"), format!("root={a}\n")).unwrap();
    dev.apply_url().assert_ok();
    dev.assert_installed();
}

#[test]
fn booted_b_installs_into_a() {
    let dev = Builder::new().build();
    // Booted from B: the install must go to A, never B.
    std::fs::write(dev.env.p("dev/slots/B.rootfs"), b"running system B").unwrap();
    std::fs::write(dev.env.p("dev/cmdline"), "updater.slot=B\n").unwrap();
    std::fs::write(
        dev.env.p("dev/boot.env"),
        "ORDER=B A\nA_OK=1\nB_OK=1\nTRY=\n",
    )
    .unwrap();
    dev.apply_url().assert_ok();
    assert_eq!(dev.b(), b"running system B");
    assert!(std::fs::read(dev.env.p("dev/slots/A.rootfs")).unwrap() == dev.expected());
}

#[test]
fn corrupt_state_is_reported_and_kept() {
    let dev = Builder::new().build();
    std::fs::create_dir_all(dev.env.p("dev/state")).unwrap();
    std::fs::write(dev.env.p("dev/state/state.json"), b"{\"version\":1,").unwrap();
    dev.apply_url().assert_fails(10, "is corrupt");
    assert_eq!(
        std::fs::read(dev.env.p("dev/state/state.json")).unwrap(),
        b"{\"version\":1,"
    );
    assert!(!dev.env.p("dev/slots/B.rootfs").exists());
}

#[test]
fn two_agents_never_run_at_once() {
    let dev = Builder::new().build();
    dev.server.set_rate(1_000_000);
    let mut first = dev.spawn_apply();
    std::thread::sleep(Duration::from_millis(500));
    dev.apply_url()
        .assert_fails(8, "another updater is running");
    assert!(first.wait().unwrap().success());
    dev.assert_installed();
}

/// Kill -9 the agent at random points of an install, 20+ times, then let it
/// finish: it converges on a correct install and resumes instead of
/// restarting.
#[test]
fn crash_anywhere_then_converge() {
    let dev = Builder::new().build();
    dev.server.set_rate(1_000_000); // about 2.3 s per install
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut kills = 0;
    for _ in 0..26 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = Duration::from_millis(20 + seed % 1500);
        let mut child = dev.spawn_apply();
        std::thread::sleep(delay);
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        child.wait().unwrap();
        // After every crash: A intact, state parses, B unbootable.
        dev.check_install_invariants();
        let st = dev.status();
        if st["groups"]["B"]["status"] == "installed" {
            // A finished run before the kill: start over from scratch so the
            // next rounds crash mid-install again.
            std::fs::remove_file(dev.env.p("dev/state/state.json")).unwrap();
            std::fs::remove_file(dev.env.p("dev/slots/B.rootfs")).unwrap();
        }
    }
    assert!(kills >= 20, "only {kills} runs were killed mid-install");
    // One more crash at a known point late in the install (a failpoint, not
    // a timer: a loaded machine must not let the install finish first), then
    // the final run must resume, fetching less than the whole image. At the
    // server's 1 MB/s the eighth chunk comes after the first checkpoint.
    let status = Command::new(bin())
        .env(updater::trial::reboot::NO_REAL_RESTART_ENV, "1")
        .env("UPDATER_FAILPOINTS", "chunk-written@8")
        .args([
            "--config",
            &dev.config(),
            "apply",
            &dev.server.url("manifest.json"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(
        status.code(),
        None,
        "the failpoint did not stop the install"
    );
    let st = dev.status();
    assert!(
        st["install"]["chunks_done"]["rootfs"].as_u64().unwrap_or(0) > 0,
        "no checkpoint before the crash: {st}"
    );
    dev.server.set_rate(0);
    dev.server.reset_counter();
    let r = dev.apply_url();
    r.assert_ok();
    assert!(r.stdout.contains("resumed"), "{}", r.stdout);
    let whole = std::fs::metadata(dev.env.p("rel/rootfs.img.zst"))
        .unwrap()
        .len();
    let fetched = dev.server.body_bytes();
    assert!(
        fetched < whole,
        "the rerun fetched {fetched} bytes of {whole}: it restarted instead of resuming"
    );
    dev.assert_installed();
}
