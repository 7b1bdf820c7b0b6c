//! `release create --ostree-repo`: a release whose content is an OSTree
//! commit, made from a repository the real `ostree` command built (test.sh
//! installs it; ostree-boot, which touches the boot loader, never).

use crate::common::*;
use updater_format::Sha256Digest;

const REF: &str = "gw/x86_64/stable";
const KDIR: &str = "/usr/lib/modules/6.1.0-test";

/// `len` bytes that do not compress (a content object's size shows it).
fn noise(seed: u8, len: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(seed);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn kernel(v: u8) -> Vec<u8> {
    noise(v, 70_000)
}

/// A build repository with two commits of [`REF`]: version 1, then
/// version 2 with a new kernel and application. Returns both checksums.
fn build_repo(env: &TestEnv) -> (String, String) {
    let repo = env.p("build-repo");
    let tree = |v: u8| -> Vec<(String, Vec<u8>)> {
        vec![
            (format!("{KDIR}/vmlinuz"), kernel(v)),
            (format!("{KDIR}/initramfs.img"), vec![v + 100; 30_000]),
            ("/usr/bin/app".into(), noise(v + 50, 5_000)),
            (
                "/usr/share/doc/unchanged".into(),
                b"the same in both".to_vec(),
            ),
        ]
    };
    let commit = |v: u8| {
        let files = tree(v);
        let refs: Vec<(&str, &[u8])> = files
            .iter()
            .map(|(p, b)| (p.as_str(), b.as_slice()))
            .collect();
        ostree_commit(&repo, REF, &refs)
    };
    (commit(1), commit(2))
}

fn create(env: &TestEnv, out: &str, extra: &[&str]) -> Run {
    let (out, key, kkey, repo) = (
        env.s(out),
        env.s("keys/m1.key"),
        env.s("keys/k1.key"),
        env.s("build-repo"),
    );
    let mut args = vec![
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
        REF,
        "--cmdline",
        "console=ttyS0",
    ];
    args.extend_from_slice(extra);
    tool(&args)
}

/// The manifest pins the ref's newest commit, the kernel inside it (signed
/// by the kernel key, verified like any release's), the initrd beside it,
/// and a static delta from the commit devices run; the release folder holds
/// an archive repository with exactly that commit, whose every object
/// `ostree fsck` checks.
#[test]
fn an_ostree_release_pins_the_commit_its_boot_files_and_a_static_delta() {
    let env = TestEnv::new();
    let (old, new) = build_repo(&env);
    let r = create(
        &env,
        "rel",
        &["--static-delta", "--static-delta-from", &old],
    );
    r.assert_ok();
    assert!(
        r.stdout.contains(&format!("ostree commit {new}")),
        "{}",
        r.stdout
    );
    let (_, m) = env.read("rel/manifest.json");
    assert!(m.images.is_empty() && m.kernel.is_none() && m.uki.is_none());
    let o = m.ostree.expect("an ostree section");
    assert_eq!(o.commit, new);
    assert_eq!(o.refname, REF);
    assert_eq!(o.osname, "gw", "the product by default");
    assert_eq!(o.repo, "repo");
    assert_eq!(o.kernel_path, format!("{KDIR}/vmlinuz"));
    assert_eq!(o.kernel.sha256, Sha256Digest::of(&kernel(2)));
    assert_eq!(o.kernel.size, 70_000);
    assert_eq!(
        o.initrd_path.as_deref(),
        Some(format!("{KDIR}/initramfs.img").as_str())
    );
    assert_eq!(
        o.initrd.as_ref().unwrap().sha256,
        Sha256Digest::of(&[102; 30_000])
    );
    let d = o.static_delta.expect("a static delta");
    assert_eq!(d.from.as_deref(), Some(old.as_str()));
    let delta = std::fs::read(env.p("rel").join(&d.file)).unwrap();
    assert_eq!(
        (d.size, d.sha256),
        (delta.len() as u64, Sha256Digest::of(&delta))
    );

    let exported = env.p("rel/repo");
    assert_eq!(ostree(&exported, &["rev-parse", REF]), new);
    assert_eq!(
        ostree(&exported, &["config", "get", "core.mode"]),
        "archive-z2"
    );
    ostree(&exported, &["fsck"]);
    assert!(
        !std::process::Command::new("ostree")
            .arg(format!("--repo={}", exported.display()))
            .args(["ls", &old, "/usr/bin/app"])
            .output()
            .unwrap()
            .status
            .success(),
        "the exported repository holds the commit before the released one"
    );

    let v = verify(
        &env,
        "rel/manifest.json",
        &["--compatible", "acme-gw", "--json"],
    );
    v.assert_ok();
    let v: serde_json::Value = serde_json::from_str(v.stdout.trim()).unwrap();
    assert_eq!(v["kernel_signed_by"].as_array().unwrap().len(), 1, "{v}");
}

/// The export is an untrusted pull: an object altered in the build
/// repository is found, and no manifest is written.
#[test]
fn a_tampered_build_repository_makes_no_release() {
    let env = TestEnv::new();
    build_repo(&env);
    // The released commit's application object (archive mode:
    // zlib-compressed, `.filez`): one byte of it changed, its name (its
    // checksum) kept.
    let listing = ostree(&env.p("build-repo"), &["ls", "-C", REF, "/usr/bin/app"]);
    let sum = listing
        .split_whitespace()
        .find(|w| w.len() == 64)
        .unwrap_or_else(|| panic!("no checksum in {listing:?}"));
    let victim = env.p(&format!(
        "build-repo/objects/{}/{}.filez",
        &sum[..2],
        &sum[2..]
    ));
    let mut b = std::fs::read(&victim).unwrap();
    let at = b.len() - 20;
    b[at] ^= 0xff;
    std::fs::write(&victim, b).unwrap();
    let r = create(&env, "rel", &[]);
    assert_ne!(r.code, 0, "{}", r.stdout);
    assert!(
        r.stderr.contains("exporting the commit") || r.stderr.contains("reading the"),
        "{}",
        r.stderr
    );
    assert!(
        !env.p("rel/manifest.json").exists(),
        "a manifest was written"
    );
}

/// Mistakes are named with what to do.
#[test]
fn ostree_release_mistakes_are_named() {
    let env = TestEnv::new();
    build_repo(&env);
    let rootfs = format!("rootfs={}", env.s("rootfs.img"));
    let r = create(&env, "rel", &["--image", &rootfs]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("cannot be used with"), "{}", r.stderr);

    let r = create(&env, "rel", &["--static-delta", "--static-delta-from", REF]);
    r.assert_fails(2, "is the released commit itself");

    let r = create(&env, "rel", &["--ostree-kernel", "/boot/vmlinuz"]);
    r.assert_fails(2, "reading the kernel /boot/vmlinuz from commit");

    let files: Vec<(&str, &[u8])> = vec![
        ("/usr/lib/modules/6.1.0-a/vmlinuz", b"a"),
        ("/usr/lib/modules/6.1.0-b/vmlinuz", b"b"),
    ];
    ostree_commit(&env.p("build-repo"), REF, &files);
    let r = create(&env, "rel", &[]);
    r.assert_fails(
        2,
        "has 2 kernel folders in /usr/lib/modules (6.1.0-a, 6.1.0-b)",
    );
    assert!(r.stderr.contains("--ostree-kernel"), "{}", r.stderr);

    std::fs::remove_file(env.p("build-repo/config")).unwrap();
    create(&env, "rel", &[]).assert_fails(2, "not an OSTree repository");
}
