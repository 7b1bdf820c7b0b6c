//! Making, signing and verifying releases: the paths that should work.

use crate::common::*;
use updater_format::manifest::verify::check_chunk_table;
use updater_format::Sha256Digest;

#[test]
fn create_then_verify_round_trip() {
    let env = TestEnv::new();
    env.release_with_kernel("rel");
    let run = verify(
        &env,
        "rel/manifest.json",
        &["--compatible", "acme-gw", "--json"],
    );
    run.assert_ok();
    let v: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["version"], "1.2.0");
    assert_eq!(v["security_version"], 5);
    assert_eq!(v["images"].as_array().unwrap().len(), 2);
    assert_eq!(v["kernel_signed_by"].as_array().unwrap().len(), 1);
    assert_eq!(v["cmdline"], "console=ttyS0");
}

#[test]
fn schema_1_image_file_is_chunked_zstd_pinned_by_the_manifest() {
    let env = TestEnv::new();
    env.release("rel", &["--chunk-size", "65536", "--schema", "1"])
        .assert_ok();
    let (_, m) = env.read("rel/manifest.json");
    assert_eq!(m.schema, 1);
    let img = m.image("rootfs").unwrap();
    assert!(img.index.is_none());
    let original = std::fs::read(env.p("rootfs.img")).unwrap();
    assert_eq!(img.size, original.len() as u64);
    assert_eq!(img.sha256, Sha256Digest::of(&original));
    let file = std::fs::read(env.p(&format!("rel/{}", img.file))).unwrap();
    assert_eq!(img.compressed_size, file.len() as u64);
    assert_eq!(img.compressed_sha256, Some(Sha256Digest::of(&file)));
    let tref = img.chunks.as_ref().unwrap();
    let table_bytes = std::fs::read(env.p(&format!("rel/{}", tref.file))).unwrap();
    assert_eq!(tref.sha256, Sha256Digest::of(&table_bytes));
    let table = check_chunk_table(&table_bytes, img).unwrap();
    assert_eq!(table.chunks.len(), 5); // 300000 bytes in 64 KiB chunks
                                       // Each chunk decompresses on its own to exactly its slice of the image.
    for (i, ch) in table.chunks.iter().enumerate() {
        let comp = &file[ch.offset as usize..(ch.offset + ch.csize) as usize];
        assert_eq!(Sha256Digest::of(comp), ch.csha256);
        let raw = zstd::bulk::decompress(comp, ch.size as usize).unwrap();
        let start = i * 65536;
        assert_eq!(&raw[..], &original[start..start + raw.len()]);
        assert_eq!(Sha256Digest::of(&raw), ch.sha256);
    }
    // And the whole file is one valid zstd stream (frames back to back).
    assert_eq!(zstd::stream::decode_all(&file[..]).unwrap(), original);
}

#[test]
fn image_is_cut_by_content_and_pinned_through_its_index() {
    let env = TestEnv::new();
    // Half compressible, half random: both kinds of chunk.
    let mut original = vec![7u8; 200_000];
    original.extend(
        updater_testkit::pattern(400_000, 5)
            .iter()
            .map(|b| b ^ 0x5a),
    );
    let mut x = 99u32;
    original.extend((0..300_000).map(|_| {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x as u8
    }));
    std::fs::write(env.p("rootfs.img"), &original).unwrap();
    env.release("rel", &[]).assert_ok();
    let (_, m) = env.read("rel/manifest.json");
    assert_eq!(m.schema, 2);
    let img = m.image("rootfs").unwrap();
    assert!(img.chunks.is_none() && img.compressed_sha256.is_none());
    assert_eq!(img.sha256, Sha256Digest::of(&original));
    let x = img.index.as_ref().unwrap();
    let index_bytes = std::fs::read(env.p(&format!("rel/{}", x.file))).unwrap();
    assert_eq!(x.size, index_bytes.len() as u64);
    let root = updater_format::manifest::verify::check_index_root(
        &index_bytes[..x.root_size as usize],
        img,
    )
    .unwrap();
    // The default chunk sizes for a small image: 8 KiB on average.
    assert_eq!(
        (root.params.min, root.params.avg, root.params.max),
        (2048, 8192, 32768)
    );
    let file = std::fs::read(env.p(&format!("rel/{}", img.file))).unwrap();
    assert_eq!(img.compressed_size, file.len() as u64);
    let chunks = updater_testkit::read_index(&env.p(&format!("rel/{}", x.file)));
    assert_eq!(chunks.len() as u64, x.chunks);
    let (mut stored, mut packed) = (0, 0);
    for c in &chunks {
        let served = &file[c.coffset as usize..(c.coffset + c.csize) as usize];
        let raw = &original[c.offset as usize..(c.offset + c.size) as usize];
        assert_eq!(updater_format::index::ChunkHash::of(served), c.entry.chash);
        assert_eq!(updater_format::index::ChunkHash::of(raw), c.entry.hash);
        if c.csize == c.size {
            // Random data is stored as it is, never "compressed" larger.
            assert_eq!(served, raw);
            stored += 1;
        } else {
            assert!(c.csize < c.size);
            assert_eq!(
                zstd::bulk::decompress(served, c.size as usize).unwrap(),
                raw
            );
            packed += 1;
        }
    }
    assert!(
        stored > 0 && packed > 0,
        "{stored} stored, {packed} compressed"
    );
    assert_eq!(
        chunks.iter().map(|c| c.size).sum::<u64>(),
        original.len() as u64
    );
    // An average chunk size that is not a power of two is refused.
    env.release("rel2", &["--chunk-size", "10000"])
        .assert_fails(2, "a power of two");
}

#[test]
fn sign_adds_a_signature_to_meet_a_threshold() {
    let env = TestEnv::new();
    env.keyring("ring2", &["m1", "m2"], 2, &["k1"], 1);
    env.release("rel", &[]).assert_ok();
    let m = env.s("rel/manifest.json");
    let ring2 = env.s("ring2");
    tool(&["verify", &m, "--keyring", &ring2]).assert_fails(3, "1 valid of threshold 2");
    tool(&["release", "sign", "--key", &env.s("keys/m2.key"), &m]).assert_ok();
    tool(&["verify", &m, "--keyring", &ring2]).assert_ok();
    // Signing twice with one key is refused rather than padding the count.
    tool(&["release", "sign", "--key", &env.s("keys/m2.key"), &m])
        .assert_fails(2, "already signed");
}

#[test]
fn keygen_writes_private_key_0600_and_never_overwrites() {
    use std::os::unix::fs::PermissionsExt;
    let env = TestEnv::new();
    let mode = std::fs::metadata(env.p("keys/m1.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let pem = std::fs::read_to_string(env.p("keys/m1.key")).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    let pubpem = std::fs::read_to_string(env.p("keys/m1.pub")).unwrap();
    assert!(pubpem.starts_with("-----BEGIN PUBLIC KEY-----"));
    tool(&["keygen", "--out", &env.s("keys"), "--name", "m1"]).assert_fails(2, "already exists");
    assert_eq!(std::fs::read_to_string(env.p("keys/m1.key")).unwrap(), pem);
}

#[test]
fn release_create_refuses_bad_arguments_without_writing() {
    let env = TestEnv::new();
    let k = env.s("vmlinuz");
    env.release("r1", &["--kernel", &k])
        .assert_fails(2, "--kernel, --uki and --ostree-repo need --kernel-key");
    env.release(
        "r2",
        &[
            "--created",
            "2002-01-01T00:00:00Z",
            "--expires",
            "2001-01-01T00:00:00Z",
        ],
    )
    .assert_fails(2, "is not after the creation time");
    env.release("r3", &["--cmdline", "quiet updater.slot=B"])
        .assert_fails(2, "only the agent may set");
    env.release("r4", &["--image", "../x=/etc/hostname"])
        .assert_fails(2, "is not a class name");
    let mkey = env.s("keys/m1.key");
    env.release("r5", &["--kernel", &k, "--kernel-key", &mkey])
        .assert_fails(2, "need separate keys");
    // A UKI: not with --kernel; a file that is not a PE image, or one
    // without a .linux section, is refused; so is a --cmdline that is not
    // the UKI's own.
    let kk = env.s("keys/k1.key");
    std::fs::write(env.p("uki.efi"), b"not a PE image").unwrap();
    let u = env.s("uki.efi");
    env.release("r6", &["--uki", &u, "--kernel", &k, "--kernel-key", &kk])
        .assert_fails(2, "cannot be used with");
    env.release("r7", &["--uki", &u, "--kernel-key", &kk])
        .assert_fails(2, "not a PE image");
    std::fs::write(
        env.p("uki.efi"),
        updater_format::pe::build(&[(".cmdline", b"quiet")]),
    )
    .unwrap();
    env.release("r8", &["--uki", &u, "--kernel-key", &kk])
        .assert_fails(2, "no .linux section");
    std::fs::write(
        env.p("uki.efi"),
        updater_format::pe::build(&[(".cmdline", b"quiet"), (".linux", b"MZkernel")]),
    )
    .unwrap();
    env.release(
        "r9",
        &["--uki", &u, "--kernel-key", &kk, "--cmdline", "loud"],
    )
    .assert_fails(2, "differs from the UKI's own .cmdline");
    env.release("r10", &["--uki", &u, "--kernel-key", &kk])
        .assert_ok();
    let (_, m) = env.read("r10/manifest.json");
    assert_eq!(m.cmdline.as_deref(), Some("quiet"));
    assert_eq!(m.uki.unwrap().linux.size, 8);
    for d in ["r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8", "r9"] {
        assert!(
            !env.p(&format!("{d}/manifest.json")).exists(),
            "{d} has a manifest"
        );
    }
    // An existing release is never written over.
    env.release("rel", &[]).assert_ok();
    env.release("rel", &[]).assert_fails(2, "is not empty");
}

#[test]
fn keyring_init_validates_thresholds_and_roles() {
    let env = TestEnv::new();
    let m1 = env.s("keys/m1.pub");
    let k1 = env.s("keys/k1.pub");
    let bad = env.s("bad");
    tool(&[
        "keyring",
        "init",
        &bad,
        "--manifest-key",
        &m1,
        "--kernel-key",
        &k1,
        "--manifest-threshold",
        "2",
    ])
    .assert_fails(2, "threshold is 2 but the role has 1 key");
    tool(&[
        "keyring",
        "init",
        &bad,
        "--manifest-key",
        &m1,
        "--kernel-key",
        &m1,
    ])
    .assert_fails(2, "both the manifest and the kernel role");
    tool(&[
        "keyring",
        "init",
        &bad,
        "--manifest-key",
        &m1,
        "--manifest-key",
        &m1,
        "--kernel-key",
        &k1,
    ])
    .assert_fails(2, "listed twice");
    assert!(!env.p("bad/keyring.toml").exists());
}

#[test]
fn help_is_on_every_command_and_lists_exit_codes() {
    for cmd in [
        vec!["--help"],
        vec!["keygen", "--help"],
        vec!["release", "create", "--help"],
        vec!["release", "sign", "--help"],
        vec!["keyring", "init", "--help"],
        vec!["verify", "--help"],
        vec!["channel", "publish", "--help"],
        vec!["serve", "--help"],
        vec!["schema", "--help"],
        vec!["demo", "--help"],
    ] {
        let r = tool(&cmd);
        r.assert_ok();
        assert!(r.stdout.contains("Usage:"), "{cmd:?}");
    }
    assert!(tool(&["--help"])
        .stdout
        .contains("3  rejected for security"));
    assert_eq!(tool(&["no-such-command"]).code, 2);
}

/// `release create ARGS` through the binary (its log lines and exit code as
/// a vendor sees them), for acme-gw, signed by m1.
fn create(env: &TestEnv, out: &str, extra: &[&str]) -> Run {
    let (out, key, img) = (env.s(out), env.s("keys/m1.key"), env.s("rootfs.img"));
    let image = format!("rootfs={img}");
    let mut args = vec![
        "release",
        "create",
        "--out",
        &out,
        "--key",
        &key,
        "--product",
        "gw",
        "--version",
        "1.2.0",
        "--security-version",
        "5",
        "--compatible",
        "acme-gw",
        "--image",
        &image,
    ];
    args.extend_from_slice(extra);
    tool(&args)
}

/// Issue 23, item 4: the vendor tool refuses to sign what every device
/// refuses — valid for longer than the devices accept, or expired at
/// creation — unless `--force`, with a warning; `verify` checks both.
#[test]
fn release_create_refuses_what_devices_refuse_unless_forced() {
    let env = TestEnv::new();
    // All on a fixed clock: the test means the same on any date.
    let now = [
        "--created",
        "2026-03-01T00:00:00Z",
        "--now",
        "2026-03-01T00:00:00Z",
    ];
    fn with<'a>(now: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
        [now, extra].concat()
    }
    create(&env, "long", &with(&now, &["--expires", "400"])).assert_fails(
        2,
        "valid for 400 days, and devices refuse a release valid for more than 366",
    );
    assert!(!env.p("long").exists(), "nothing is written");
    let forced = create(&env, "long", &with(&now, &["--expires", "400", "--force"]));
    forced.assert_ok();
    assert!(
        forced
            .stderr
            .contains("making the release anyway (--force)"),
        "{}",
        forced.stderr
    );
    verify(
        &env,
        "long/manifest.json",
        &["--now", "2026-03-02T00:00:00Z"],
    )
    .assert_fails(3, "valid for 400 days");
    verify(
        &env,
        "long/manifest.json",
        &[
            "--now",
            "2026-03-02T00:00:00Z",
            "--max-validity-days",
            "400",
        ],
    )
    .assert_ok();
    create(&env, "short", &with(&now, &["--expires", "366"])).assert_ok();
    // Made in 2025 with the default 90 days: expired at creation.
    create(
        &env,
        "old",
        &[
            "--created",
            "2025-01-01T00:00:00Z",
            "--now",
            "2026-03-01T00:00:00Z",
        ],
    )
    .assert_fails(2, "it would be expired already");
    create(
        &env,
        "old",
        &[
            "--created",
            "2025-01-01T00:00:00Z",
            "--now",
            "2026-03-01T00:00:00Z",
            "--force",
        ],
    )
    .assert_ok();
    verify(
        &env,
        "old/manifest.json",
        &["--now", "2026-03-01T00:00:00Z"],
    )
    .assert_fails(3, "expired");
}

/// Issue 23, item 10: log lines carry no escape codes in a pipe or a file,
/// and none on a terminal under `NO_COLOR` (`script` gives a terminal).
#[test]
fn no_escape_codes_in_pipes_or_under_no_color() {
    let env = TestEnv::new();
    let args = |out: &str| {
        let (out, key, img) = (env.s(out), env.s("keys/m1.key"), env.s("rootfs.img"));
        format!(
            "{} release create --out {out} --key {key} --product gw --version 1.2.0 --security-version 5 --compatible acme-gw --image rootfs={img} --expires 400 --force",
            env!("CARGO_BIN_EXE_updater-vendor")
        )
    };
    // A pipe.
    let piped = create(&env, "p", &["--expires", "400", "--force"]);
    piped.assert_ok();
    assert!(piped.stderr.contains("WARN"), "{}", piped.stderr);
    assert!(
        !piped.stderr.contains('\u{1b}'),
        "escapes in a pipe: {:?}",
        piped.stderr
    );
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED: script(1) gives a command a terminal");
        return;
    }
    let on_terminal = |out: &str, no_color: bool| {
        let mut c = std::process::Command::new("script");
        c.args(["-qec", &args(out), "/dev/null"])
            .env_remove("NO_COLOR");
        if no_color {
            c.env("NO_COLOR", "1");
        }
        String::from_utf8_lossy(&c.output().unwrap().stdout).into_owned()
    };
    let coloured = on_terminal("t1", false);
    assert!(
        coloured.contains('\u{1b}'),
        "a terminal gets colour (else this proves nothing): {coloured:?}"
    );
    let plain = on_terminal("t2", true);
    assert!(plain.contains("WARN"), "{plain}");
    assert!(!plain.contains('\u{1b}'), "NO_COLOR ignored: {plain:?}");
}
