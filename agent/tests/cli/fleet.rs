//! Fleet operation: channels, `check`, `daemon` strategies, never retrying a
//! bad release, status reports through the outbox, sd_notify.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::common::{bin, pattern, vendor, Verify};
use crate::device::{Boot, Builder, Device};
use updater_testkit::Server;

/// A report receiver on loopback: records POSTed bodies; answers 503 while
/// `down` is set.
struct Receiver {
    url: String,
    events: Arc<Mutex<Vec<Value>>>,
    down: Arc<AtomicBool>,
    /// POSTs to /events are redirected to /elsewhere while set.
    redirect: Arc<AtomicBool>,
    /// Requests that arrived at any other path than /events.
    elsewhere: Arc<Mutex<Vec<String>>>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/events", listener.local_addr().unwrap());
        let events = Arc::new(Mutex::new(Vec::new()));
        let down = Arc::new(AtomicBool::new(false));
        let redirect = Arc::new(AtomicBool::new(false));
        let elsewhere = Arc::new(Mutex::new(Vec::new()));
        let (ev, dn, rd, el) = (
            events.clone(),
            down.clone(),
            redirect.clone(),
            elsewhere.clone(),
        );
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { continue };
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut len = 0usize;
                let mut request = String::new();
                let _ = r.read_line(&mut request);
                let mut line = String::new();
                loop {
                    line.clear();
                    if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; len];
                let _ = r.read_exact(&mut body);
                let status = if !request.starts_with("POST /events ") {
                    el.lock().unwrap().push(request.trim().to_string());
                    "200 OK"
                } else if dn.load(Ordering::SeqCst) {
                    "503 Service Unavailable"
                } else if rd.load(Ordering::SeqCst) {
                    "302 Found\r\nLocation: /elsewhere"
                } else {
                    if let Ok(v) = serde_json::from_slice(&body) {
                        ev.lock().unwrap().push(v);
                    }
                    "200 OK"
                };
                let _ = write!(
                    s,
                    "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
            }
        });
        Receiver {
            url,
            events,
            down,
            redirect,
            elsewhere,
        }
    }

    fn kinds(&self) -> Vec<String> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .map(|e| e["event"].as_str().unwrap().to_string())
            .collect()
    }
}

/// A device following a channel served by the in-repo loopback server, with
/// a GRUB env, a recorded reboot command and passing health checks.
fn fleet_device() -> Device {
    fleet().build()
}

/// [`fleet_device`]'s builder, for more options (`[daemon]` lines, more
/// tables).
fn fleet() -> Builder {
    Builder::new().boot(Boot::Grub).trials().channel()
}

/// `updater check --json EXTRA...`, which must succeed.
fn check_json(d: &Device, extra: &[&str]) -> Value {
    let mut args = vec!["check", "--json"];
    args.extend_from_slice(extra);
    let r = d.run(&args);
    r.assert_ok();
    serde_json::from_str(r.stdout.trim()).unwrap()
}

/// Requests the release server logged for the release manifest.
fn manifest_requests(d: &Device) -> usize {
    d.server
        .log()
        .iter()
        .filter(|l| l.path.trim_start_matches('/') == "manifest.json")
        .count()
}

/// Sign the release served in rel/ again, as made at `created` (valid for
/// 90 days from then): for tests that run the device on a fixed clock, so
/// the manifest is valid at that time whatever day the suite runs.
fn release_made_at(d: &Device, created: &str) {
    d.publish_with(
        "rootfs.img",
        "1.2.0",
        &["--created", created, "--now", created],
    );
}

/// A second release, 1.3.0, in rel2/ (different image), served by a second
/// server; returns it.
fn release_v2(d: &Device) -> Server {
    std::fs::write(d.env.p("rootfs2.img"), pattern(700_000, 21)).unwrap();
    d.make_release("rel2", "rootfs2.img", "1.3.0", &[])
        .assert_ok();
    d.serve("rel2")
}

/// Replace the device's keyring: m1 (manifest), k1 (kernel) and, with
/// `channel`, c1 (channel).
fn reinit_ring(env: &crate::common::TestEnv, channel: bool) {
    let mut args = vec![("--manifest-key", "m1"), ("--kernel-key", "k1")];
    if channel {
        args.push(("--channel-key", "c1"));
    }
    env.reinit_ring(&args);
}

/// `updater daemon` with a real notify socket and a 1 s systemd watchdog;
/// the socket reads time out after `read_timeout`. Keep the folder alive.
fn spawn_notified_daemon(
    d: &Device,
    read_timeout: Duration,
) -> (tempfile::TempDir, UnixDatagram, std::process::Child) {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(read_timeout)).unwrap();
    let child = Command::new(bin())
        .args(["--config", &d.config(), "daemon"])
        .env(updater::trial::reboot::NO_REAL_RESTART_ENV, "1")
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "1000000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    (dir, sock, child)
}

/// The bucket formula of docs/fleet.md, written out independently of the
/// agent's code.
fn expected_bucket(device: &str, version: &str) -> u64 {
    let h = Sha256::digest(format!("updater-rollout-v1\n{device}\n{version}").as_bytes());
    u64::from_be_bytes(h[..8].try_into().unwrap()) % 10_000
}

#[test]
fn check_reports_bucket_and_plan_without_changing_anything() {
    let d = fleet_device();
    let p = check_json(&d, &[]);
    let digest = p["release"]["digest"].as_str().unwrap().to_string();
    let bucket = expected_bucket("device-0001", p["release"]["version"].as_str().unwrap());
    assert_eq!(p["bucket"], bucket, "{p}");
    assert_eq!(p["action"], "install", "{p}");
    assert_eq!(p["activate"], true, "{p}");
    assert_eq!(p["channel"], "stable");
    // The digest pinned is the one `verify` reports for the manifest.
    let v = d.env.verify("rel/manifest.json", &["--json"]);
    v.assert_ok();
    assert!(v.stdout.contains(&digest), "{}", v.stdout);
    // A rollout that excludes the bucket: idle, and says why.
    let pct = format!("acme-gw=manifest.json@{}", bucket as f64 / 100.0);
    d.publish_channel(&["--release", &pct]).assert_ok();
    let p = check_json(&d, &[]);
    assert_eq!(p["action"], "idle", "{p}");
    assert!(
        p["reason"].as_str().unwrap().contains("not in the rollout"),
        "{p}"
    );
    // One bucket more includes it.
    let pct = format!("acme-gw=manifest.json@{}", (bucket + 1) as f64 / 100.0);
    d.publish_channel(&["--release", &pct]).assert_ok();
    assert_eq!(check_json(&d, &[])["action"], "install");
    // check wrote nothing and fetched no manifest.
    assert!(!d.env.p("dev/state/state.json").exists());
    assert_eq!(manifest_requests(&d), 0);
}

#[test]
fn immediate_daemon_updates_end_to_end_and_reports() {
    let rx = Receiver::start();
    let d = fleet()
        .set("report", "url", &format!("\"{}\"", rx.url))
        .build();
    d.run(&["daemon", "--once"]).assert_ok();
    assert!(d.b() == d.expected(), "slot B does not hold the release");
    assert_eq!(d.reboots(), vec!["reboot"]);
    assert_eq!(d.reset(), "B");
    let h = d.run(&["health"]);
    h.assert_ok();
    assert!(h.stdout.contains("committed"), "{}", h.stdout);
    // Back in the daemon (in slot B): nothing to do, reports sent in order.
    let r = d.run(&["daemon", "--once"]);
    r.assert_ok();
    assert!(r.stdout.contains("up to date"), "{}", r.stdout);
    assert_eq!(
        rx.kinds(),
        ["downloading", "installed", "trial-started", "committed"]
    );
    let ev = rx.events.lock().unwrap().clone();
    let ids: std::collections::BTreeSet<_> = ev.iter().map(|e| e["id"].to_string()).collect();
    assert_eq!(ids.len(), ev.len(), "event ids are unique: {ev:?}");
    for e in &ev {
        assert_eq!(e["device"], "device-0001");
        assert_eq!(e["version"], "1.2.0");
    }
    assert_eq!(ev[3]["slot"], "B");
    assert_eq!(d.status()["groups"]["B"]["status"], "good");
}

#[test]
fn download_only_installs_and_waits_for_activate() {
    let d = fleet()
        .set("daemon", "strategy", "\"download-only\"")
        .build();
    d.run(&["daemon", "--once"]).assert_ok();
    d.assert_installed();
    assert!(d.reboots().is_empty());
    assert_eq!(
        d.boot_env()["B_OK"],
        "0",
        "an installed slot is not bootable yet"
    );
    let release_requests = || {
        d.server
            .log()
            .iter()
            .filter(|l| !l.path.ends_with("stable.json"))
            .count()
    };
    let served = release_requests();
    let r = d.run(&["daemon", "--once"]);
    r.assert_ok();
    assert!(r.stdout.contains("updater activate"), "{}", r.stdout);
    assert_eq!(release_requests(), served, "release files fetched again");
    d.run(&["activate"]).assert_ok();
    assert_eq!(d.reboots(), vec!["reboot"]);
    assert_eq!(d.reset(), "B");
    d.run(&["health"]).assert_ok();
    assert_eq!(d.status()["groups"]["B"]["status"], "good");
}

#[test]
fn window_strategy_boots_only_inside_the_window() {
    // Weekdays 02:00-04:00 in Berlin; 2026-11-27 is a Friday (UTC+1).
    let d = fleet()
        .set("daemon", "strategy", "\"window\"")
        .lines(
            "daemon.window",
            "days = [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\"]\nstart = \"02:00\"\nend = \"04:00\"\ntimezone = \"Europe/Berlin\"",
        )
        .build();
    // The whole test runs on a fixed clock: the release is made a week
    // before, the channel is issued on the Friday morning and the daemon is
    // run at fixed times after it, so the result is the same whatever day
    // the suite runs.
    release_made_at(&d, "2026-11-20T00:00:00Z");
    d.publish_channel(&[
        "--release",
        "acme-gw=manifest.json",
        "--issued",
        "2026-11-27T11:00:00Z",
        "--expires",
        "2026-12-04T00:00:00Z",
    ])
    .assert_ok();
    // Friday 12:00 UTC: install now, boot on Monday 02:00 Berlin.
    let p = check_json(&d, &["--now", "2026-11-27T12:00:00Z"]);
    assert_eq!(
        (p["action"].as_str(), p["activate"].as_bool()),
        (Some("install"), Some(false)),
        "{p}"
    );
    d.run(&["daemon", "--once", "--now", "2026-11-27T12:00:00Z"])
        .assert_ok();
    d.assert_installed();
    assert!(d.reboots().is_empty());
    let p = check_json(&d, &["--now", "2026-11-28T02:30:00Z"]);
    assert_eq!(p["action"], "wait", "{p}");
    assert_eq!(p["until"], "2026-11-30T01:00:00Z", "{p}");
    // Saturday 01:30 UTC = 02:30 Berlin, but Saturday: still waiting.
    d.run(&["daemon", "--once", "--now", "2026-11-28T01:30:00Z"])
        .assert_ok();
    assert!(d.reboots().is_empty());
    // Monday 01:30 UTC = 02:30 Berlin: boots.
    d.run(&["daemon", "--once", "--now", "2026-11-30T01:30:00Z"])
        .assert_ok();
    assert_eq!(d.reboots(), vec!["reboot"]);
}

#[test]
fn not_before_holds_the_boot_but_not_the_download() {
    let d = fleet_device();
    // Fixed clock: the release made in May, the channel issued on the 1st,
    // boots allowed from the 3rd, the daemon runs on the 2nd.
    release_made_at(&d, "2026-05-01T00:00:00Z");
    d.publish_channel(&[
        "--release",
        "acme-gw=manifest.json",
        "--issued",
        "2026-06-01T00:00:00Z",
        "--expires",
        "2026-06-08T00:00:00Z",
        "--not-before",
        "acme-gw=2026-06-03T00:00:00Z",
    ])
    .assert_ok();
    d.run(&["daemon", "--once", "--now", "2026-06-02T00:00:00Z"])
        .assert_ok();
    d.assert_installed();
    assert!(d.reboots().is_empty());
    let p = check_json(&d, &["--now", "2026-06-02T12:00:00Z"]);
    assert_eq!(
        (p["action"].as_str(), p["until"].as_str()),
        (Some("wait"), Some("2026-06-03T00:00:00Z")),
        "{p}"
    );
    // From the 3rd it boots.
    d.run(&["daemon", "--once", "--now", "2026-06-03T00:00:01Z"])
        .assert_ok();
    assert_eq!(d.reboots(), vec!["reboot"]);
}

#[test]
fn a_release_that_failed_here_is_never_retried_until_a_newer_one() {
    let rx = Receiver::start();
    let d = fleet()
        .set("report", "url", &format!("\"{}\"", rx.url))
        .build();
    d.check("20-fail", "echo app did not start; exit 1");
    d.run(&["daemon", "--once"]).assert_ok();
    assert_eq!(d.reset(), "B");
    let h = d.run(&["health"]);
    // Exit 7: the booted slot failed its trial (docs: exit codes).
    assert_eq!(h.code, 7, "{} {}", h.stdout, h.stderr);
    assert!(h.stdout.contains("marked bad"), "{}", h.stdout);
    assert_eq!(d.reboots(), vec!["reboot", "reboot"]);
    assert_eq!(d.reset(), "A");
    d.run(&["health"]).assert_ok();
    let before = manifest_requests(&d);
    assert_eq!(before, 1, "the release was fetched once");
    for _ in 0..3 {
        let r = d.run(&["daemon", "--once"]);
        r.assert_ok();
        assert!(r.stdout.contains("failed on this device"), "{}", r.stdout);
    }
    assert_eq!(
        manifest_requests(&d),
        before,
        "the bad release was fetched again"
    );
    assert_eq!(d.reboots().len(), 2);
    let kinds = rx.kinds();
    assert_eq!(
        kinds,
        ["downloading", "installed", "trial-started", "rolled-back"]
    );
    let reason = rx.events.lock().unwrap()[3]["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(reason.contains("app did not start"), "{reason}");
    // A newer release is installed.
    d.check("20-fail", "exit 0");
    let v2 = release_v2(&d);
    // An absolute manifest URL, on another server.
    let rel = format!("acme-gw={}", v2.url("manifest.json"));
    d.publish_channel(&["--release", &rel]).assert_ok();
    d.run(&["daemon", "--once"]).assert_ok();
    assert_eq!(d.status()["groups"]["B"]["version"], "1.3.0");
    assert_eq!(d.reboots().len(), 3);
}

#[test]
fn refused_channels() {
    let d = fleet_device();
    // Expired: issued and checked on a fixed clock, a day after expiry.
    d.publish_channel(&[
        "--release",
        "acme-gw=manifest.json",
        "--issued",
        "2026-01-01T00:00:00Z",
        "--expires",
        "2026-01-08T00:00:00Z",
    ])
    .assert_ok();
    d.run(&["check", "--now", "2026-01-09T00:00:00Z"])
        .assert_fails(3, "expired");
    d.run(&["daemon", "--once", "--now", "2026-01-09T00:00:00Z"])
        .assert_fails(3, "expired");
    // Issued in the future of the device's clock.
    d.run(&["check", "--now", "2025-12-31T00:00:00Z"])
        .assert_fails(3, "in the future");
    // Signed by a manifest key instead of a channel key.
    let out = d.env.s("rel/stable.json");
    vendor(&[
        "channel",
        "publish",
        "--out",
        &out,
        "--key",
        &d.env.s("keys/m1.key"),
        "--release",
        "acme-gw=manifest.json",
    ])
    .assert_ok();
    d.run(&["check"]).assert_fails(3, "manifest-role key");
    // Replay: the device follows a newer channel, then is served an older one.
    d.publish_channel(&["--release", "acme-gw=manifest.json@0"])
        .assert_ok();
    let old = std::fs::read(d.env.p("rel/stable.json")).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    d.publish_channel(&["--release", "acme-gw=manifest.json@0"])
        .assert_ok();
    d.run(&["daemon", "--once"]).assert_ok();
    std::fs::write(d.env.p("rel/stable.json"), old).unwrap();
    d.run(&["daemon", "--once"]).assert_fails(3, "replayed");
    // The same old copy given to `apply` by hand is refused as well.
    let channel = d.server.url("stable.json");
    d.run(&["apply", &channel]).assert_fails(3, "replayed");
    // A channel pinning another digest than the served manifest: refused
    // before anything is written.
    d.publish_channel(&["--release", "acme-gw=manifest.json"])
        .assert_ok();
    let _v2 = release_v2(&d);
    for f in std::fs::read_dir(d.env.p("rel2")).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, d.env.p("rel").join(f.file_name().unwrap())).unwrap();
    }
    d.run(&["daemon", "--once"])
        .assert_fails(3, "the channel pins release");
    assert!(d.b().is_empty(), "slot B was written");
    // A keyring without channel keys: a configuration error.
    reinit_ring(&d.env, false);
    d.run(&["check"]).assert_fails(2, "no channel keys");
}

#[test]
fn reports_wait_in_the_outbox_through_network_loss() {
    let rx = Receiver::start();
    rx.down.store(true, Ordering::SeqCst);
    let d = fleet()
        .set("daemon", "strategy", "\"download-only\"")
        .set("report", "url", &format!("\"{}\"", rx.url))
        .build();
    d.run(&["daemon", "--once"]).assert_ok();
    let outbox = d.env.p("dev/state/outbox");
    let pending = |dir: &std::path::Path| {
        std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "json")
            })
            .count()
    };
    assert_eq!(pending(&outbox), 2, "downloading + installed kept");
    assert!(rx.kinds().is_empty());
    // The operator activates; the device reboots into B and commits while
    // the server is still down.
    d.run(&["activate"]).assert_ok();
    d.reset();
    d.run(&["health"]).assert_ok();
    assert_eq!(pending(&outbox), 4);
    // A redirect is not followed (a redirected POST would arrive as a GET
    // without the event): the events stay.
    rx.redirect.store(true, Ordering::SeqCst);
    rx.down.store(false, Ordering::SeqCst);
    d.run(&["daemon", "--once"]).assert_ok();
    assert!(rx.kinds().is_empty());
    assert_eq!(pending(&outbox), 4);
    assert!(
        rx.elsewhere.lock().unwrap().is_empty(),
        "the redirect was followed: {:?}",
        rx.elsewhere.lock().unwrap()
    );
    rx.redirect.store(false, Ordering::SeqCst);
    d.run(&["daemon", "--once"]).assert_ok();
    assert_eq!(
        rx.kinds(),
        ["downloading", "installed", "trial-started", "committed"]
    );
    assert_eq!(pending(&outbox), 0);
    let seqs: Vec<u64> = rx
        .events
        .lock()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [1, 2, 3, 4]);
}

#[test]
fn daemon_speaks_sd_notify_and_feeds_the_watchdog() {
    let d = fleet()
        .lines(
            "daemon",
            "strategy = \"download-only\"\ninterval_secs = 3600\njitter_secs = 1",
        )
        .build();
    let (_dir, sock, mut child) = spawn_notified_daemon(&d, Duration::from_secs(1));
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut buf = [0u8; 512];
    while Instant::now() < deadline {
        if let Ok(n) = sock.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        let watchdogs = got.iter().filter(|m| *m == "WATCHDOG=1").count();
        if got.iter().any(|m| m == "READY=1")
            && got.iter().any(|m| m.starts_with("STATUS=installed"))
            && watchdogs >= 3
        {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(got.iter().any(|m| m == "READY=1"), "{got:?}");
    assert!(
        got.iter().any(|m| m.starts_with("STATUS=installed")),
        "{got:?}"
    );
    assert!(
        got.iter().filter(|m| *m == "WATCHDOG=1").count() >= 3,
        "{got:?}"
    );
}

#[test]
fn publish_refuses_bad_input() {
    let d = fleet_device();
    d.publish_channel(&["--release", "other-board=manifest.json"])
        .assert_fails(2, "not for \"other-board\"");
    d.publish_channel(&["--release", "acme-gw=missing.json"])
        .assert_fails(5, "missing.json");
    d.publish_channel(&["--release", "acme-gw=manifest.json@150"])
        .assert_fails(2, "between 0 and 100");
    d.publish_channel(&[
        "--release",
        "acme-gw=manifest.json",
        "--issued",
        "2001-01-01T00:00:00Z",
        "--expires",
        "2000-01-01T00:00:00Z",
    ])
    .assert_fails(2, "is not after now");
}

#[test]
fn an_operator_rollback_is_not_undone_by_the_daemon() {
    let d = fleet_device();
    d.run(&["daemon", "--once"]).assert_ok();
    assert_eq!(d.reset(), "B");
    d.run(&["health"]).assert_ok();
    assert_eq!(d.status()["groups"]["B"]["status"], "good");
    // Slot A holds the factory release, which the state knows as good.
    d.run(&["rollback"]).assert_ok();
    assert_eq!(d.reset(), "A");
    d.run(&["health"]).assert_ok();
    let reboots = d.reboots().len();
    let r = d.run(&["daemon", "--once"]);
    r.assert_ok();
    assert!(r.stdout.contains("failed on this device"), "{}", r.stdout);
    assert_eq!(d.reboots().len(), reboots);
    assert_eq!(d.status()["booted"], "A");
}

#[test]
fn a_bad_release_re_signed_with_a_new_expiry_is_still_not_retried() {
    let d = fleet_device();
    d.check("20-fail", "exit 1");
    d.run(&["daemon", "--once"]).assert_ok();
    d.reset();
    assert_eq!(d.run(&["health"]).code, 7, "B fails its check");
    d.reset();
    d.run(&["health"]).assert_ok();
    let old = d.status()["bad_releases"][0]["digest"].clone();
    // The vendor re-signs the same 1.2.0 (new created/expires: a new digest).
    std::thread::sleep(Duration::from_millis(1100));
    d.env
        .release("resigned", &["--chunk-size", "262144"])
        .assert_ok();
    for f in std::fs::read_dir(d.env.p("resigned")).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, d.env.p("rel").join(f.file_name().unwrap())).unwrap();
    }
    d.publish_channel(&["--release", "acme-gw=manifest.json"])
        .assert_ok();
    let p = check_json(&d, &[]);
    assert_ne!(
        p["release"]["digest"], old,
        "the re-signed release has a new digest"
    );
    assert_eq!(p["action"], "idle", "{p}");
    assert!(
        p["reason"]
            .as_str()
            .unwrap()
            .contains("failed on this device"),
        "{p}"
    );
}

#[test]
fn daemon_configuration_errors_stop_it() {
    // A keyring without channel keys: exit 2 before the first poll.
    let d = fleet_device();
    reinit_ring(&d.env, false);
    d.run(&["daemon"]).assert_fails(2, "no channel keys");
    // No channel configured: nothing to follow, not a failure.
    let cfg = std::fs::read_to_string(d.config()).unwrap();
    let cfg: String = cfg
        .lines()
        .filter(|l| !l.starts_with("channel ="))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(d.config(), cfg).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let out = Command::new(bin())
        .args(["--config", &d.config(), "daemon"])
        .env("NOTIFY_SOCKET", &sock_path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing to follow"));
    // systemd counts a Type=notify service that exits before READY=1 as failed.
    let mut buf = [0u8; 512];
    let n = sock.recv(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("READY=1"));
    // No keyring at all: a configuration error too (exit 2), not an I/O one.
    std::fs::remove_dir_all(d.env.p("ring")).unwrap();
    let cfg = std::fs::read_to_string(d.config()).unwrap();
    std::fs::write(
        d.config(),
        cfg.replace(
            "[daemon]\n",
            &format!("[daemon]\nchannel = \"{}\"\n", d.server.url("stable.json")),
        ),
    )
    .unwrap();
    d.run(&["daemon"]).assert_fails(2, "keyring");
}

#[test]
fn channel_name_and_validity_are_enforced() {
    let d = fleet_device();
    // A validly signed channel of another name, served at this URL.
    d.publish_channel(&["--release", "acme-gw=manifest.json", "--name", "beta"])
        .assert_ok();
    d.run(&["check"])
        .assert_fails(3, "this device follows \"stable\"");
    // A channel valid for a year: freeze detection switched off.
    d.publish_channel(&["--release", "acme-gw=manifest.json", "--expires", "365d"])
        .assert_ok();
    d.run(&["check"]).assert_fails(3, "longer than the 31 days");
}

#[test]
fn watchdog_pings_stop_while_the_daemon_is_stuck() {
    // The channel server accepts and never answers; the HTTP stall timeout
    // is far longer than the watchdog interval, so the daemon is stuck in
    // one read and systemd must stop hearing from it.
    let d = fleet().set("daemon", "jitter_secs", "1").build();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let held = Arc::new(Mutex::new(Vec::new()));
    let h = held.clone();
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            h.lock().unwrap().push(s);
        }
    });
    let frag = d.env.p("dev/config.d/90-stuck.toml");
    crate::common::write(
        &frag,
        format!(
            "[http]\nstall_timeout_secs = 60\n[daemon]\nchannel = \"http://{addr}/stable.json\"\n"
        )
        .as_bytes(),
    );
    let (_dir, sock, mut child) = spawn_notified_daemon(&d, Duration::from_millis(200));
    let start = Instant::now();
    let mut pings = Vec::new();
    let mut buf = [0u8; 512];
    while start.elapsed() < Duration::from_secs(8) {
        if let Ok(n) = sock.recv(&mut buf) {
            if &buf[..n] == b"WATCHDOG=1" {
                pings.push(start.elapsed());
            }
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !held.lock().unwrap().is_empty(),
        "the daemon never connected"
    );
    assert!(!pings.is_empty(), "no pings at all while it was alive");
    let late = pings
        .iter()
        .filter(|t| **t > Duration::from_secs(5))
        .count();
    assert_eq!(
        late, 0,
        "pings went on while the daemon was stuck: {pings:?}"
    );
}

#[test]
fn a_channel_key_rotation_voids_the_replay_floor_it_pushed_up() {
    // TUF's fast-forward recovery (tuf-conformance test_rollback): a
    // stolen channel key (c1) signs a channel issued ahead of the genuine
    // ones; once a root replaces every channel key, the replay floor it
    // pushed up is void.
    let d = fleet_device();
    let env = &d.env;
    env.keygen("r1");
    env.keygen("c2");
    env.reinit_ring(&[
        ("--manifest-key", "m1"),
        ("--kernel-key", "k1"),
        ("--channel-key", "c1"),
        ("--root-key", "r1"),
    ]);
    let channel = |key: &str, issued: &str| {
        vendor(&[
            "channel",
            "publish",
            "--out",
            &env.s("rel/stable.json"),
            "--key",
            &env.s(&format!("keys/{key}.key")),
            "--release",
            "acme-gw=manifest.json@0",
            "--issued",
            issued,
            "--expires",
            "2026-03-20T00:00:00Z",
        ])
        .assert_ok();
    };
    let now = ["daemon", "--once", "--now", "2026-03-10T02:00:00Z"];
    // The attacker's channel, issued ahead: followed.
    channel("c1", "2026-03-10T01:00:00Z");
    d.run(&now).assert_ok();
    // The genuine channel, issued earlier: refused as a replay.
    channel("c1", "2026-03-05T00:00:00Z");
    d.run(&now).assert_fails(3, "replayed");
    // Root 2 replaces c1 by c2 (signed by the root key r1).
    let ring = updater_format::keys::Keyring::new(
        vec![updater_format::keys::PublicKey::new(
            env.key("m1").key.verifying_key(),
        )],
        1,
        vec![updater_format::keys::PublicKey::new(
            env.key("k1").key.verifying_key(),
        )],
        1,
    )
    .unwrap()
    .with_channel(
        vec![updater_format::keys::PublicKey::new(
            env.key("c2").key.verifying_key(),
        )],
        1,
    )
    .unwrap();
    let root = updater_format::root::Root::from_keyring(
        &ring,
        &[updater_format::keys::PublicKey::new(
            env.key("r1").key.verifying_key(),
        )],
        1,
        2,
        chrono::DateTime::parse_from_rfc3339("2099-01-01T00:00:00Z")
            .unwrap()
            .into(),
    );
    let r1 = env.key("r1");
    std::fs::write(
        env.p("rel/2.root.json"),
        updater_format::root::seal(&root, &[&r1]).unwrap().to_json(),
    )
    .unwrap();
    // The genuine channel signed by c2: followed, the old floor void.
    channel("c2", "2026-03-05T00:00:00Z");
    d.run(&now).assert_ok();
    let st = d.status();
    assert_eq!(st["root"]["version"], 2);
    assert_eq!(
        st["channels_issued"]["stable"], "2026-03-05T00:00:00Z",
        "{st}"
    );
    // And the attacker's key is refused from now on.
    channel("c1", "2026-03-10T03:00:00Z");
    d.run(&now).assert_fails(3, "unknown key");
}
