//! Delta updates: `updater apply` reuses the chunks the device already has
//! (in place in the target slot, in the booted slot through its kept index,
//! or by cutting the booted slot) and fetches only the rest, against the
//! loopback server, which counts the bytes it sends.

use std::time::{Duration, Instant};

use crate::common::*;
use crate::device::{Builder, Device};
use serde_json::Value;
use updater_format::Sha256Digest;
use updater_testkit::{Fault, Server};

/// Incompressible deterministic bytes.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

const BASE_LEN: usize = 16 << 20;

/// The new release's image: the base with 24 scattered 96 KiB regions
/// rewritten and 5,000 bytes inserted in the middle (every later chunk
/// shifts).
fn changed(base: &[u8]) -> Vec<u8> {
    let mut img = base.to_vec();
    for k in 0..24usize {
        let at = k * (BASE_LEN / 24) + 12_345;
        let len = 96 << 10;
        img[at..at + len].copy_from_slice(&noise(len, 1000 + k as u64));
    }
    let mid = BASE_LEN / 2 + 777;
    img.splice(mid..mid, noise(5000, 7));
    img
}

/// A device whose booted slot A holds release 1 (the base image, made into
/// `rel1/`); release 2 (the base changed) is served. `kept`: whether the
/// index of release 1 is kept for slot A (as after an install by the
/// agent); without it slot A is a factory image.
fn delta_device(kept: bool) -> Device {
    let base = noise(BASE_LEN, 1);
    Builder::new()
        .image(changed(&base))
        .factory(base)
        .release_args(&[])
        .factory_release(kept)
        .set("http", "retries", "6")
        .build()
}

/// The last JSON line of `apply ... --json`.
fn result(r: &Run) -> Value {
    let last = r.stdout.lines().last().expect("a result line");
    let v: Value = serde_json::from_str(last).unwrap();
    assert_eq!(v["event"], "result", "{}", r.stdout);
    v
}

/// `apply --dry-run --json`: the plan, with the bytes the server sent for
/// it reset afterwards.
fn plan_of(dev: &Device) -> Value {
    let r = dev.run(&["apply", &dev.url(), "--dry-run", "--json"]);
    r.assert_ok();
    dev.server.reset_counter();
    result(&r)
}

/// `apply --json`, which must succeed: its result line.
fn apply(dev: &Device) -> Value {
    let r = dev.run(&["apply", &dev.url(), "--json"]);
    r.assert_ok();
    result(&r)
}

/// The size of release 2's image file.
fn image_file_len(dev: &Device) -> u64 {
    std::fs::metadata(dev.env.p("rel/rootfs.img.zst"))
        .unwrap()
        .len()
}

/// The size of release 2's index.
fn index_len(dev: &Device) -> u64 {
    std::fs::metadata(dev.env.p("rel/rootfs.index"))
        .unwrap()
        .len()
}

/// Slot B holds release 2, byte for byte, and slot A is untouched.
fn assert_exact(dev: &Device) {
    assert!(dev.b() == dev.expected(), "slot B is not release 2's image");
    let a = std::fs::read(dev.env.p("dev/slots/A.rootfs")).unwrap();
    assert_eq!(
        Sha256Digest::of(&a),
        dev.a_hash,
        "the booted slot was written"
    );
}

fn image_plan(plan: &Value) -> &Value {
    &plan["images"][0]["plan"]
}

#[test]
fn the_booted_slot_and_its_kept_index_leave_only_the_changes_to_fetch() {
    let dev = delta_device(true);
    let plan = plan_of(&dev);
    // A dry run changes nothing.
    assert!(!dev.env.p("dev/slots/B.rootfs").exists());
    assert_eq!(dev.status()["groups"]["B"]["status"], "empty");
    let p = image_plan(&plan);
    assert_eq!(p["seed"]["kind"], "kept-index", "{plan}");
    assert_eq!(p["seed"]["group"], "A");
    let fetch = p["fetch_bytes"].as_u64().unwrap();
    let whole = image_file_len(&dev);
    // 2.25 MiB of 16 MiB changed (14%), plus at most the largest chunk
    // (32 KiB) around each of the 25 changes.
    let changed = ((24 * 96) << 10) + 5000;
    assert!(
        fetch > changed && fetch < changed + 25 * (32 << 10),
        "{fetch} of {whole}"
    );
    // The index, fetched by difference against the kept one (a change every
    // 680 KiB touches most 320 KiB pages; see the test below for one).
    let index = p["index_bytes"].as_u64().unwrap();
    assert!(index < index_len(&dev), "{index} of {}", index_len(&dev));
    assert!(p["index_pages_local"].as_u64().unwrap() > 0, "{p}");

    let out = apply(&dev);
    assert_exact(&dev);
    // What the server sent is what the plan said, to the byte.
    assert_eq!(dev.server.bytes_of("rootfs.img.zst"), fetch);
    assert_eq!(dev.server.bytes_of("rootfs.index"), index);
    assert_eq!(out["bytes_fetched"], plan["planned_bytes"]);
    let requests = dev
        .server
        .log()
        .iter()
        .filter(|l| l.path == "rootfs.img.zst")
        .count() as u64;
    assert_eq!(requests, p["fetch_requests"].as_u64().unwrap());
    assert!(
        requests <= 26,
        "{requests} requests for 24 changed regions and an insertion"
    );
    assert_eq!(
        out["requests"].as_u64().unwrap(),
        plan["requests"].as_u64().unwrap() + requests
    );
    let reused = out["bytes_reused"].as_u64().unwrap();
    assert_eq!(reused, out["bytes_from_booted"].as_u64().unwrap());
    assert!(reused > dev.expected().len() as u64 * 80 / 100, "{out}");
    // The new release's index is kept for the next update, and the figures
    // for `status`.
    assert_eq!(
        std::fs::read(dev.env.p("dev/state/releases/B.rootfs.index")).unwrap(),
        std::fs::read(dev.env.p("rel/rootfs.index")).unwrap()
    );
    let st = dev.status();
    assert_eq!(st["last_install"]["bytes_fetched"], out["bytes_fetched"]);
    assert_eq!(st["last_install"]["bytes_reused"], out["bytes_reused"]);
    let text = dev.run(&["status"]);
    assert!(text.stdout.contains("bytes fetched"), "{}", text.stdout);
}

#[test]
fn a_factory_image_without_an_index_is_cut_to_find_the_same_chunks() {
    let kept = plan_of(&delta_device(true));
    let dev = delta_device(false);
    let plan = plan_of(&dev);
    let p = image_plan(&plan);
    assert_eq!(p["seed"]["kind"], "cut", "{plan}");
    // The same chunks are found either way; only the index costs more
    // (all of it is fetched).
    assert_eq!(p["fetch_bytes"], image_plan(&kept)["fetch_bytes"]);
    assert_eq!(p["index_bytes"].as_u64().unwrap(), index_len(&dev));
    let out = apply(&dev);
    assert_exact(&dev);
    assert_eq!(out["bytes_fetched"], plan["planned_bytes"]);
    assert_eq!(
        dev.server.bytes_of("rootfs.img.zst"),
        p["fetch_bytes"].as_u64().unwrap()
    );
}

#[test]
fn a_modified_seed_lowers_the_reuse_and_never_puts_a_wrong_byte_in_the_slot() {
    let mut dev = delta_device(true);
    // The booted slot changed after its index was kept (fstrim, a repair):
    // three regions of it are zeros now.
    let mut a = dev.factory();
    for at in [1 << 20, 7 << 20, 13 << 20] {
        a[at..at + (40 << 10)].fill(0);
    }
    std::fs::write(dev.env.p("dev/slots/A.rootfs"), &a).unwrap();
    dev.a_hash = Sha256Digest::of(&a);
    let plan = plan_of(&dev);
    let r = dev.run(&["apply", &dev.url(), "--json"]);
    r.assert_ok();
    let out = result(&r);
    assert_exact(&dev);
    assert!(
        r.stderr.contains("does not match the index kept"),
        "{}",
        r.stderr
    );
    let (planned, fetched) = (
        plan["planned_bytes"].as_u64().unwrap(),
        out["bytes_fetched"].as_u64().unwrap(),
    );
    // About 120 KiB more than planned: the chunks that changed in the seed.
    assert!(
        fetched > planned + (100 << 10) && fetched < planned + (400 << 10),
        "planned {planned}, fetched {fetched}"
    );
    assert!(
        out["bytes_from_booted"].as_u64().unwrap() < plan["bytes_from_booted"].as_u64().unwrap()
    );
}

#[test]
fn without_a_seed_the_whole_image_costs_at_most_its_index_more() {
    let dev = delta_device(false);
    std::fs::write(dev.env.p("dev/slots/A.rootfs"), noise(BASE_LEN, 99)).unwrap();
    let mut dev = dev;
    dev.a_hash = Sha256Digest::of(&noise(BASE_LEN, 99));
    let plan = plan_of(&dev);
    assert_eq!(image_plan(&plan)["seed_bytes"], 0);
    let out = apply(&dev);
    assert_exact(&dev);
    let whole = image_file_len(&dev);
    assert_eq!(dev.server.bytes_of("rootfs.img.zst"), whole);
    let fetched = out["bytes_fetched"].as_u64().unwrap();
    let manifest = std::fs::metadata(dev.env.p("rel/manifest.json"))
        .unwrap()
        .len();
    assert_eq!(fetched, whole + index_len(&dev) + manifest);
    // Incompressible data: the index is 40 bytes per 8 KiB chunk.
    assert!(
        (fetched as f64) < whole as f64 * 1.01,
        "{fetched} for a {whole}-byte image file"
    );
}

#[test]
fn a_truncated_target_keeps_what_it_has() {
    let mut dev = delta_device(false);
    let unrelated = noise(BASE_LEN, 42);
    std::fs::write(dev.env.p("dev/slots/A.rootfs"), &unrelated).unwrap();
    dev.a_hash = Sha256Digest::of(&unrelated);
    // Slot B holds the first 40% of release 2 (an earlier attempt, copied
    // by hand, cut short).
    let cut = dev.expected().len() * 40 / 100;
    std::fs::write(dev.env.p("dev/slots/B.rootfs"), &dev.expected()[..cut]).unwrap();
    let plan = plan_of(&dev);
    let in_place = image_plan(&plan)["in_place_bytes"].as_u64().unwrap();
    assert!(
        in_place > cut as u64 - (64 << 10) && in_place <= cut as u64,
        "{in_place} of {cut}"
    );
    let out = apply(&dev);
    assert_exact(&dev);
    assert_eq!(out["bytes_in_place"].as_u64().unwrap(), in_place);
    assert!(dev.server.bytes_of("rootfs.img.zst") < image_file_len(&dev) * 62 / 100);
}

#[test]
fn a_server_that_ignores_range_still_works_at_the_cost_of_more_bytes() {
    let dev = delta_device(true);
    let plan = plan_of(&dev);
    dev.server.fault(Fault::IgnoreRange, None, u32::MAX);
    let out = apply(&dev);
    assert_exact(&dev);
    let fetched = out["bytes_fetched"].as_u64().unwrap();
    assert!(fetched > plan["planned_bytes"].as_u64().unwrap());
    // One pass over each file, not one per range.
    assert!(
        fetched <= image_file_len(&dev) + 2 * index_len(&dev) + 10_000,
        "{fetched}"
    );
}

/// A new user's `python3 -m http.server` (issue 23, item 2): the first
/// range request finds it out; `--dry-run` names the server and what it
/// costs, and the download limit counts what will really be fetched.
#[test]
fn a_server_that_ignores_range_is_named_with_its_cost() {
    let dev = delta_device(true);
    let honest = plan_of(&dev);
    let needed = honest["planned_bytes"].as_u64().unwrap();
    // A server that honours Range: no warning.
    let r = dev.run(&["apply", &dev.url(), "--dry-run"]);
    r.assert_ok();
    assert!(!r.stderr.contains("Range"), "{}", r.stderr);
    dev.server.fault(Fault::IgnoreRange, None, u32::MAX);
    let host = dev.url().split('/').nth(2).unwrap().to_string();
    let r = dev.run(&["apply", &dev.url(), "--dry-run", "--json"]);
    r.assert_ok();
    let warnings: Vec<Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["event"] == "warning")
        .collect();
    assert_eq!(warnings.len(), 1, "warned once: {}", r.stdout);
    let msg = warnings[0]["message"].as_str().unwrap();
    let real = result(&r)["planned_bytes"].as_u64().unwrap();
    assert!(
        msg.contains(&host) && msg.contains("ignores Range") && msg.contains(&real.to_string()),
        "{msg}"
    );
    // The real cost: the image file to the end of its last range.
    assert!(
        real > needed * 2,
        "the plan counts the real cost: {real} vs {needed}"
    );
    assert!(
        real <= image_file_len(&dev) + 2 * index_len(&dev) + 10_000,
        "{real}"
    );
    // A limit the honest plan fits in, the real cost does not: refused
    // before anything is written, saying why.
    let limit = needed + (real - needed) / 2;
    dev.run(&["apply", &dev.url(), "--max-download", &limit.to_string()])
        .assert_fails(11, "ignores Range requests");
    assert!(!dev.env.p("dev/slots/B.rootfs").exists() || dev.b() != dev.expected());
    // On the terminal too, without --json.
    let r = dev.run(&["apply", &dev.url(), "--dry-run"]);
    assert!(
        r.stderr.contains("warning: the server at") && r.stderr.contains(&host),
        "{}",
        r.stderr
    );
}

#[test]
fn dropped_connections_in_a_delta_resume_where_they_broke() {
    let dev = delta_device(true);
    let plan = plan_of(&dev);
    let fetch = image_plan(&plan)["fetch_bytes"].as_u64().unwrap();
    // Three requests for the image file break after 10 KB each (the first
    // region's range, then the rest of it twice).
    dev.server
        .fault(Fault::DropAfter(10_000), Some("rootfs.img.zst"), 3);
    let out = apply(&dev);
    assert_exact(&dev);
    // Each break costs nothing but the reconnection: the bytes already
    // received are not fetched again.
    assert_eq!(dev.server.bytes_of("rootfs.img.zst"), fetch);
    // One more request per break: the rest of the range from where it broke.
    assert_eq!(
        out["requests"].as_u64().unwrap(),
        plan["requests"].as_u64().unwrap()
            + image_plan(&plan)["fetch_requests"].as_u64().unwrap()
            + 3
    );
}

#[test]
fn a_killed_delta_resumes_and_fetches_less_than_what_was_left() {
    let dev = delta_device(true);
    let plan = plan_of(&dev);
    let fetch = image_plan(&plan)["fetch_bytes"].as_u64().unwrap();
    dev.server.set_rate(400_000);
    let mut child = dev.spawn_apply();
    let t = Instant::now();
    while dev.server.bytes_of("rootfs.img.zst") < fetch / 2 && t.elapsed() < Duration::from_secs(30)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let first = dev.server.bytes_of("rootfs.img.zst");
    assert!(first < fetch, "the first run finished before it was killed");
    dev.server.set_rate(0);
    dev.server.reset_counter();
    let out = apply(&dev);
    assert_exact(&dev);
    let second = dev.server.bytes_of("rootfs.img.zst");
    // What the first run wrote is found in place; the rest is fetched.
    assert!(out["bytes_in_place"].as_u64().unwrap() > 0, "{out}");
    assert!(
        second < fetch - first / 2,
        "the rerun fetched {second} bytes of the plan's {fetch}, after {first} before the kill"
    );
}

#[test]
fn a_plan_over_the_budget_is_refused_before_anything_changes() {
    let dev = delta_device(true);
    let plan = plan_of(&dev);
    let planned = plan["planned_bytes"].as_u64().unwrap();
    let small = (planned - 1).to_string();
    let r = dev.run(&["apply", &dev.url(), "--max-download", &small]);
    r.assert_fails(11, &format!("needs {planned} bytes"));
    assert!(
        r.stderr.contains(&format!("the {small} bytes allowed")),
        "{}",
        r.stderr
    );
    assert!(!dev.env.p("dev/slots/B.rootfs").exists());
    let st = dev.status();
    assert_eq!(st["groups"]["B"]["status"], "empty", "{st}");
    assert!(st["install"].is_null(), "{st}");
    // The same from the configuration; a suffix on the command line.
    let cfg = dev.env.p("dev/config.toml");
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "[install]\n",
        &format!("[install]\nmax_download_bytes = {}\n", planned - 1),
    );
    std::fs::write(&cfg, text).unwrap();
    dev.run(&["apply", &dev.url()])
        .assert_fails(11, "install.max_download_bytes");
    dev.run(&["apply", &dev.url(), "--max-download", "64M"])
        .assert_ok();
    assert_exact(&dev);
    dev.run(&["apply", &dev.url(), "--max-download", "12X"])
        .assert_fails(2, "K, M or G");
}

#[test]
fn the_dry_run_says_what_it_would_cost_in_words() {
    let dev = delta_device(true);
    let r = dev.run(&["apply", &dev.url(), "--dry-run"]);
    r.assert_ok();
    for line in [
        "would cost",
        "reuse",
        "from slot A",
        "through its kept index",
        "fetch",
        "requests",
        "index",
    ] {
        assert!(r.stdout.contains(line), "{line:?} in {}", r.stdout);
    }
    assert!(!dev.env.p("dev/slots/B.rootfs").exists());
}

#[test]
fn one_change_costs_a_few_index_pages_not_the_whole_index() {
    let dev = delta_device(true);
    let mut one = dev.factory();
    one[5 << 20..(5 << 20) + 4096].copy_from_slice(&noise(4096, 5));
    std::fs::write(dev.env.p("v3.img"), &one).unwrap();
    dev.env.release_of("rel3", "v3.img", &[]).assert_ok();
    let server = Server::start(&dev.env.p("rel3"), "127.0.0.1:0").unwrap();
    let url = server.url("manifest.json");
    let r = dev.run(&["apply", &url, "--json"]);
    r.assert_ok();
    let b = std::fs::read(dev.env.p("dev/slots/B.rootfs")).unwrap();
    assert!(b == one);
    let index = server.bytes_of("rootfs.index");
    let root = updater_testkit::read_index(&dev.env.p("rel3/rootfs.index")).len() as u64;
    // The root (18 bytes a page, a 64-byte header) and one or two pages of
    // at most 128 entries of 40 bytes.
    let whole = std::fs::metadata(dev.env.p("rel3/rootfs.index"))
        .unwrap()
        .len();
    assert!(
        index < whole - root * 40 + 2 * 128 * 40,
        "{index} of {whole}"
    );
    assert!(index < whole / 4, "{index} of {whole}");
    // And one or two chunks of the image.
    assert!(server.bytes_of("rootfs.img.zst") <= 2 * (32 << 10) + 4096);
}

#[test]
fn a_damaged_or_foreign_kept_index_costs_fetches_never_a_wrong_byte() {
    // A flipped byte in a page of the kept index: that index is not used
    // (its own root no longer pins it), the slot is cut instead.
    let dev = delta_device(true);
    let kept = dev.env.p("dev/state/releases/A.rootfs.index");
    let mut bytes = std::fs::read(&kept).unwrap();
    let at = bytes.len() - 1000;
    bytes[at] ^= 0x40;
    std::fs::write(&kept, &bytes).unwrap();
    let plan = plan_of(&dev);
    assert_eq!(image_plan(&plan)["seed"]["kind"], "cut", "{plan}");
    apply(&dev);
    assert_exact(&dev);

    // An index that is consistent in itself (so trusted for the plan) but
    // not of what slot A holds: every chunk read through it fails its hash
    // and is fetched instead; the slot is still exact.
    let mut dev = delta_device(true);
    let mut a = dev.factory();
    a.rotate_left(4096);
    std::fs::write(dev.env.p("dev/slots/A.rootfs"), &a).unwrap();
    dev.a_hash = Sha256Digest::of(&a);
    let plan = plan_of(&dev);
    assert!(
        image_plan(&plan)["seed_bytes"].as_u64().unwrap() > 0,
        "{plan}"
    );
    let out = apply(&dev);
    assert_exact(&dev);
    assert_eq!(out["bytes_from_booted"], 0, "{out}");
    assert!(out["bytes_fetched"].as_u64().unwrap() >= image_file_len(&dev));
}
