//! What a new user trips over (issue 23): the run of a first-time user —
//! a file-backed device, a release served over loopback, the usual
//! mistakes — one test per item, each asserting the message or the
//! behaviour that user needed. Item 2 (a server that ignores Range) is in
//! delta.rs, item 8 (man pages) in packaging.rs, the vendor's items 4 and
//! 10 in vendor/tests/cli/release.rs.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use crate::device::{Boot, Builder, Device};
use updater_testkit::Fault;

/// Rewrite the device's configuration with `f`.
fn edit_config(dev: &Device, f: impl FnOnce(String) -> String) {
    let cfg = std::fs::read_to_string(dev.env.p("dev/config.toml")).unwrap();
    std::fs::write(dev.env.p("dev/config.toml"), f(cfg)).unwrap();
}

/// Both output streams of a run, for counting what was said.
fn said(r: &Run) -> String {
    format!("{}{}", r.stdout, r.stderr)
}

/// Item 1: a missing keyring is a configuration error (2) whose hint names
/// the command that makes one; so is a keyring without channel keys.
#[test]
fn a_missing_keyring_names_the_vendor_command_and_exits_2() {
    let dev = Builder::new().build();
    std::fs::remove_dir_all(dev.env.p("ring")).unwrap();
    dev.apply_url()
        .assert_fails(2, "`updater-vendor keyring init ");
    // A keyring without channel keys, asked to follow a channel.
    let dev = Builder::new()
        .set("device", "id", "\"device-0001\"")
        .build();
    let r = dev.run(&["check", &dev.server.url("stable.json")]);
    assert_ne!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("`updater-vendor keyring init ... --channel-key KEY`"),
        "{}",
        r.stderr
    );
}

/// Item 3: the daemon at its default level (no -v, no UPDATER_LOG) says
/// what it follows and, per poll, what it decided and why, before acting.
#[test]
fn the_daemon_says_what_it_follows_and_decides_without_v() {
    let d = Builder::new().boot(Boot::Grub).trials().channel().build();
    let r = d.run(&["daemon", "--once"]);
    r.assert_ok();
    let start = r
        .stderr
        .lines()
        .find(|l| l.contains("following channel stable at"))
        .unwrap_or_else(|| panic!("no start-up line:\n{}", r.stderr));
    for want in ["device-0001", "strategy", "polling every"] {
        assert!(start.contains(want), "{want} missing from {start}");
    }
    assert!(
        r.stderr
            .contains("decided: install 1.2.0 into slot B and boot it as a trial (channel stable names 1.2.0 at 100%"),
        "no decision line:\n{}",
        r.stderr
    );
    assert_eq!(d.reboots(), vec!["reboot"]);
    assert_eq!(d.reset(), "B");
    d.run(&["health"]).assert_ok();
    let r = d.run(&["daemon", "--once"]);
    r.assert_ok();
    assert!(r.stderr.contains("nothing to do"), "{}", r.stderr);
    assert!(!r.stderr.contains('\u{1b}'), "escape codes in a pipe");
}

/// Item 5: `updater verify` decides as `apply` would — the device's
/// keyring, compatible string and trusted root — for every SOURCE form
/// `apply` takes, and refuses with 3 what `apply` refuses.
#[test]
fn verify_uses_the_device_and_takes_the_sources_apply_takes() {
    let dev = Builder::new().channel().build();
    for source in [
        dev.url(),
        dev.server.url(""),
        dev.env.s("rel"),
        dev.env.s("rel/manifest.json"),
        dev.server.url("stable.json"),
    ] {
        let r = dev.run(&["verify", &source]);
        r.assert_ok();
        assert!(r.stdout.contains("1.2.0"), "{source}: {}", r.stdout);
    }
    // No --keyring needed on a device; a release for another device is
    // refused with 3, as apply refuses it.
    edit_config(&dev, |c| {
        c.replace("compatible = \"acme-gw\"", "compatible = \"acme-router\"")
    });
    dev.run(&["verify", &dev.url()])
        .assert_fails(3, "acme-router");
    dev.apply_url().assert_fails(3, "acme-router");
    // --keyring alone still checks a release on a build host.
    let ring = dev.env.s("ring");
    updater(&["verify", &dev.env.s("rel"), "--keyring", &ring]).assert_ok();
    updater(&[
        "verify",
        &dev.env.s("rel"),
        "--keyring",
        &ring,
        "--compatible",
        "acme-router",
    ])
    .assert_fails(3, "acme-router");
}

/// Item 6: `apply` and `check` take a channel document's URL: `apply`
/// follows it to this device's release, pinned by the channel's digest;
/// `check URL` polls that channel instead of `daemon.channel`.
#[test]
fn apply_and_check_follow_a_channel_document() {
    let dev = Builder::new().channel().build();
    // A second channel, beta, beside stable.
    let out = dev.env.s("rel/beta.json");
    let key = dev.env.s("keys/c1.key");
    vendor(&[
        "channel",
        "publish",
        "--out",
        &out,
        "--key",
        &key,
        "--release",
        "acme-gw=manifest.json@100",
    ])
    .assert_ok();
    let beta = dev.server.url("beta.json");
    let r = dev.run(&["check", &beta, "--json"]);
    r.assert_ok();
    let plan: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(plan["channel"], "beta", "{plan}");
    assert_eq!(plan["channel_url"], beta.as_str());
    let r = dev.run(&["apply", &beta]);
    r.assert_ok();
    dev.assert_installed();
    // A channel that names no release for this device says so.
    edit_config(&dev, |c| {
        c.replace("compatible = \"acme-gw\"", "compatible = \"acme-router\"")
    });
    dev.run(&["apply", &beta])
        .assert_fails(2, "names no release for this device (acme-router)");
}

/// Item 7: `status` tells an install that is running (another process
/// holds the state lock) from one a crash interrupted.
#[test]
fn status_tells_a_running_install_from_an_interrupted_one() {
    let dev = Builder::new().build();
    // The image's requests wait until released: the install is running.
    dev.server
        .fault(Fault::Hold, Some("rootfs.img.zst"), u32::MAX);
    let mut child = dev.spawn_apply();
    let t = Instant::now();
    while dev.server.held() == 0 {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the install never fetched"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let r = dev.run(&["status"]);
    r.assert_ok();
    assert!(
        r.stdout.contains(&format!(
            "install of 1.2.0 into slot B running now (process {} holds the state lock)",
            child.id()
        )),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("interrupted"), "{}", r.stdout);
    child.kill().unwrap();
    child.wait().unwrap();
    dev.server.release_holds();
    let r = dev.run(&["status"]);
    assert!(
        r.stdout
            .contains("interrupted install of 1.2.0 into slot B (run apply again to resume)"),
        "{}",
        r.stdout
    );
}

/// Item 9: a server that is down: each retry is one short line, and the
/// last error says what was tried (host, attempts, time), what to check,
/// and — mid-install — that the next `apply` resumes.
#[test]
fn a_server_that_is_down_says_what_was_tried_and_what_to_check() {
    let dev = Builder::new().build();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{closed}/gw/manifest.json");
    let r = dev.run(&["apply", &url, "--dry-run"]);
    r.assert_fails(4, "127.0.0.1");
    let last = r.stderr.lines().last().unwrap();
    for want in [
        "attempts over",
        "check that the server is up",
        "the URL is right",
    ] {
        assert!(last.contains(want), "{want:?} missing from {last}");
    }
    for line in r.stderr.lines() {
        assert!(line.matches(&url).count() <= 1, "the URL repeated: {line}");
    }
    // The server fails mid-install: the error says the next run resumes.
    dev.server
        .fault(Fault::DropAfter(100_000), Some("rootfs.img.zst"), 1);
    dev.server
        .fault(Fault::DropAfter(0), Some("rootfs.img.zst"), u32::MAX);
    let r = dev.apply_url();
    r.assert_fails(
        4,
        "`updater apply` of the same release resumes where it stopped",
    );
    let last = r.stderr.lines().last().unwrap();
    assert!(
        last.contains("attempts over") && last.contains("check that the server is up"),
        "{last}"
    );
}

/// Item 10: `NO_COLOR` is honoured on a terminal, and a pipe never gets
/// escape codes (run under `script`, which gives the command a terminal).
#[test]
fn no_color_is_honoured_on_a_terminal() {
    if !can_run(
        Command::new("script").arg("--version").output().is_ok(),
        "script(1) (util-linux) gives a command a terminal",
    ) {
        return;
    }
    let dev = Builder::new().build();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let on_terminal = |no_color: bool| {
        let cmd = format!(
            "{} --config {} apply http://127.0.0.1:{closed}/m.json --dry-run",
            bin(),
            dev.config()
        );
        let mut c = Command::new("script");
        c.args(["-qec", &cmd, "/dev/null"])
            .env_remove("UPDATER_LOG")
            .env_remove("NO_COLOR")
            .stdin(Stdio::null());
        if no_color {
            c.env("NO_COLOR", "1");
        }
        let out = c.output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let coloured = on_terminal(false);
    assert!(
        coloured.contains('\u{1b}'),
        "a terminal gets colour (else this test proves nothing): {coloured}"
    );
    let plain = on_terminal(true);
    assert!(plain.contains("WARN"), "{plain}");
    assert!(!plain.contains('\u{1b}'), "NO_COLOR ignored: {plain:?}");
    let r = dev.run(&[
        "apply",
        &format!("http://127.0.0.1:{closed}/m.json"),
        "--dry-run",
    ]);
    assert!(!r.stderr.contains('\u{1b}'), "escapes in a pipe");
}

/// Item 11: `status` during a trial shows its deadline and what happens
/// next; the kernel line only when a kexec may happen or with -v.
#[test]
fn status_during_a_trial_shows_the_deadline_and_the_next_step() {
    let dev = Builder::new().trials().build();
    dev.apply_reboot().assert_ok();
    let deadline = dev.status()["trial"]["deadline"]
        .as_str()
        .unwrap()
        .to_string();
    let r = dev.run(&["status"]);
    r.assert_ok();
    let trial = r
        .stdout
        .lines()
        .find(|l| l.starts_with("trial: slot B (1.2.0)"))
        .unwrap_or_else(|| panic!("no trial line:\n{}", r.stdout));
    let deadline_rfc3339 = chrono::DateTime::parse_from_rfc3339(&deadline)
        .unwrap()
        .to_rfc3339();
    assert!(
        trial.contains("it boots at the next restart") && trial.contains(&deadline_rfc3339),
        "{trial}"
    );
    assert!(
        !r.stdout.contains("kernel:"),
        "kexec.policy = never: {}",
        r.stdout
    );
    assert!(dev.run(&["-v", "status"]).stdout.contains("kernel:"));
    // Booted into it: this boot's `updater health` decides.
    assert_eq!(dev.reset(), "B");
    let r = dev.run(&["status"]);
    assert!(
        r.stdout
            .contains("`updater health` in this boot decides it"),
        "{}",
        r.stdout
    );
}

/// Item 12: configuration errors carry FILE:LINE:COL and the line, a "did
/// you mean" for a mistyped key or backend, and size keys take `50M`.
#[test]
fn configuration_errors_point_at_the_line_and_suggest_the_name() {
    let dev = Builder::new().build();
    let file = dev.config();
    let cfg = std::fs::read_to_string(&file).unwrap();
    // Each mistake in turn, from the good configuration: the error names
    // FILE:LINE of the mistyped line, and the name meant.
    let mistake = |edit: &dyn Fn(String) -> String, typo: &str, meant: &str| {
        std::fs::write(&file, edit(cfg.clone())).unwrap();
        let broken = std::fs::read_to_string(&file).unwrap();
        let line = broken.lines().position(|l| l.contains(typo)).unwrap() + 1;
        let r = dev.run(&["status"]);
        r.assert_fails(2, &format!("did you mean `{meant}`?"));
        assert!(r.stderr.contains(&format!("{file}:{line}")), "{}", r.stderr);
        assert!(
            !r.stderr.contains(" | "),
            "a flattened snippet: {}",
            r.stderr
        );
    };
    mistake(
        &|c| c.replace("cmdline_path =", "cmdline_pth ="),
        "cmdline_pth",
        "cmdline_path",
    );
    mistake(
        &|c| c.replace("backend = \"file\"", "backend = \"fiel\""),
        "\"fiel\"",
        "file",
    );
    mistake(
        &|c| format!("{c}\n[slots]\nbackend = \"pahts\"\n"),
        "\"pahts\"",
        "paths",
    );
    // Sizes as on the command line.
    std::fs::write(&file, &cfg).unwrap();
    edit_config(&dev, |c| {
        c.replace("[install]\n", "[install]\nmax_download_bytes = \"50M\"\n")
    });
    dev.run(&["apply", &dev.url(), "--dry-run"]).assert_ok();
    edit_config(&dev, |c| c.replace("\"50M\"", "\"2K\""));
    dev.run(&["apply", &dev.url(), "--dry-run"])
        .assert_fails(11, "more than the 2048 bytes allowed");
    edit_config(&dev, |c| c.replace("\"2K\"", "\"50Q\""));
    dev.run(&["status"])
        .assert_fails(2, "install.max_download_bytes");
}

/// Item 13: a failed health check is said once (the error line), not as a
/// log line, a stdout line and an error line.
#[test]
fn a_failed_health_check_is_said_once() {
    let dev = Builder::new().trials().build();
    dev.apply_reboot().assert_ok();
    assert_eq!(dev.reset(), "B");
    dev.check("20-app", "echo 'the app did not start' >&2; exit 1");
    let r = dev.run(&["health"]);
    r.assert_fails(7, "the app did not start");
    let all = said(&r);
    assert_eq!(
        all.matches("20-app").count(),
        1,
        "said more than once:\n{all}"
    );
    assert!(r.stdout.contains("slot B marked bad"), "{}", r.stdout);
}

/// Item 14, the smaller ones: a full state disk names the file meant and
/// what to do; Ctrl-C finishes the line and says how to resume; "1
/// request"; the release the booted slot runs is not installed again
/// without `--reinstall`.
#[test]
fn a_full_state_disk_names_the_file_and_what_to_do() {
    let dev = Builder::new().build();
    let state = dev.env.p("dev/state");
    std::fs::create_dir_all(&state).unwrap();
    // A 64 KiB tmpfs over the state folder, filled, in a private mount
    // namespace: nothing outside this command sees it.
    let script = r#"mount -t tmpfs -o size=64k,mode=0755 none "$1" && dd if=/dev/zero of="$1/fill" bs=4k count=64 2>/dev/null; shift; exec "$@""#;
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", script, "sh"])
        .arg(&state)
        .arg(bin())
        .args(["--config", &dev.config(), "apply", &dev.url()])
        .env_remove("UPDATER_LOG")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    if !can_run(
        !err.contains("unshare failed") && !err.contains("mount:"),
        "unshare -m and a tmpfs mount (root) make a full disk",
    ) {
        return;
    }
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(err.contains("no space left for"), "{err}");
    assert!(
        err.contains("free some space there and run the command again"),
        "{err}"
    );
    assert!(!err.contains(".tmp."), "names a temporary file: {err}");
}

#[test]
fn ctrl_c_says_how_to_resume() {
    let dev = Builder::new().build();
    dev.server
        .fault(Fault::Hold, Some("rootfs.img.zst"), u32::MAX);
    let mut child = dev
        .command()
        .args(["apply", &dev.url()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while dev.server.held() == 0 {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the install never fetched"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    dev.server.release_holds();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(
        err.contains("\ninterrupted: nothing is lost; `updater apply` again resumes"),
        "{err:?}"
    );
    dev.apply_url().assert_ok();
    dev.assert_installed();
}

#[test]
fn one_request_is_one_request_and_the_running_release_is_not_reinstalled() {
    let dev = Builder::new().trials().build();
    let r = dev.run(&["apply", &dev.url(), "--dry-run"]);
    r.assert_ok();
    assert!(r.stdout.contains(" 1 request"), "{}", r.stdout);
    assert!(!r.stdout.contains(" 1 requests"), "{}", r.stdout);
    // Boot B, which then runs 1.2.0: applying 1.2.0 again is nothing to do.
    dev.apply_reboot().assert_ok();
    assert_eq!(dev.reset(), "B");
    dev.run(&["health"]).assert_ok();
    let before = std::fs::read(dev.env.p("dev/slots/A.rootfs")).unwrap();
    let r = dev.apply_url();
    r.assert_ok();
    assert!(
        r.stdout
            .contains("release 1.2.0 already runs in slot B: nothing to do"),
        "{}",
        r.stdout
    );
    assert_eq!(
        std::fs::read(dev.env.p("dev/slots/A.rootfs")).unwrap(),
        before
    );
    // --reinstall does it anyway.
    dev.run(&["apply", &dev.url(), "--reinstall"]).assert_ok();
    assert_eq!(
        std::fs::read(dev.env.p("dev/slots/A.rootfs")).unwrap(),
        dev.expected()
    );
}
