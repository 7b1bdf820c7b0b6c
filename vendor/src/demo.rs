//! `updater-vendor demo`: the whole job on a simulated device, narrated step by step.
//!
//! Everything happens in one folder: the vendor's keys, a release built from
//! a generated root filesystem, and the device's keyring. Each step prints
//! what it does and what it proves.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use updater::clock::Clock;
use updater::session::Session;
use updater::trial::kexec::loader::KexecLoader;
use updater::trial::reboot::{Rebooter, Restart};
use updater::trial::{How, Machine};
use updater_format::keys::Keyring;
use updater_format::manifest::verify::{verify, Policy};
use updater_release::keys::{keygen, keyring_init, RoleInit};
use updater_release::{create, CreateOptions, Expiry};

struct Narrator {
    step: u32,
}

impl Narrator {
    fn step(&mut self, title: &str) {
        self.step += 1;
        updater_release::say!("\n[{}] {title}", self.step);
    }
}

fn say(line: impl AsRef<str>) {
    updater_release::say!("    {}", line.as_ref());
}

/// What the vendor's act leaves for the device's: where the release and
/// the device's keyring are.
struct Vendor {
    /// The generated root filesystem of release 1.0.0.
    rootfs: PathBuf,
    /// Release 1.0.0's folder.
    release: PathBuf,
    /// How release 1.0.0 was made (release 1.1.0 reuses it).
    opts: CreateOptions,
    /// The device's keyring folder.
    keyring: PathBuf,
}

/// Run the demo in `dir` (or a new temporary folder, removed afterwards).
pub fn run(dir: Option<PathBuf>) -> Result<()> {
    let tmp;
    let root = match dir {
        Some(d) => {
            std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
            d
        }
        None => {
            tmp = tempfile::tempdir().context("creating a temporary folder")?;
            tmp.path().to_path_buf()
        }
    };
    updater_release::say!("updater demo in {}", root.display());
    // One clock for the whole demo: the vendor signs and the device checks
    // against the same "now".
    let now = chrono::Utc::now();
    let mut n = Narrator { step: 0 };
    let vendor = vendor_act(&mut n, &root, now)?;
    refusals_act(&mut n, &vendor, now)?;
    let dev = root.join("device");
    let settings = first_update_act(&mut n, &vendor, &dev)?;
    failed_update_act(&mut n, &root, &vendor, &settings, &dev)?;
    updater_release::say!("\ndemo finished: every step behaved as expected");
    Ok(())
}

/// The vendor: keys, release 1.0.0, and the keyring a device trusts.
fn vendor_act(n: &mut Narrator, root: &Path, now: chrono::DateTime<chrono::Utc>) -> Result<Vendor> {
    n.step("vendor: make a manifest-signing key and a kernel-signing key");
    let (_, mkey, mpub) = keygen(&root.join("vendor"), "release")?;
    let (_, kkey, kpub) = keygen(&root.join("vendor"), "kernel")?;
    say(format!("{} and {}", mkey.display(), kkey.display()));

    n.step("vendor: build release 1.0.0 (a 24 MiB root filesystem and a kernel)");
    let rootfs = root.join("build/rootfs.img");
    let kernel = root.join("build/vmlinuz");
    write_fake_image(&rootfs, 24 << 20, 1)?;
    write_fake_image(&kernel, 2 << 20, 2)?;
    let rel = root.join("releases/1.0.0");
    let release_opts = CreateOptions {
        out: rel.clone(),
        keys: vec![mkey.clone()],
        signers: Vec::new(),
        product: "demo-gw".into(),
        version: "1.0.0".parse()?,
        security_version: 1,
        compatible: vec!["acme-demo-gw".into()],
        images: vec![("rootfs".into(), rootfs.clone())],
        kernel: Some(kernel.clone()),
        kernel_keys: vec![kkey.clone()],
        kernel_signers: Vec::new(),
        initrd: None,
        uki: None,
        ostree: None,
        cmdline: Some("console=ttyS0 ro".into()),
        expires: Expiry::Days(30),
        created: now,
        now,
        max_validity_days: updater_release::DEFAULT_MAX_VALIDITY_DAYS,
        force: false,
        min_agent_version: None,
        chunk_size: None,
        zstd_level: 3,
        schema: updater_format::manifest::types::SCHEMA_VERSION,
    };
    let m = create(&release_opts)?;
    for i in &m.images {
        say(format!(
            "{:<7} {:>9} bytes in {} zstd chunks, {} bytes served",
            i.class,
            i.size,
            i.chunk_count(),
            i.compressed_size
        ));
    }

    n.step("device: trust the vendor's keys (keyring with thresholds)");
    let ring_dir = root.join("device/keyring");
    keyring_init(
        &ring_dir,
        RoleInit {
            keys: &[mpub],
            threshold: 1,
        },
        RoleInit {
            keys: &[kpub],
            threshold: 1,
        },
        RoleInit {
            keys: &[],
            threshold: 1,
        },
        RoleInit {
            keys: &[],
            threshold: 1,
        },
    )?;
    Keyring::load(&ring_dir)?;
    say(format!(
        "{} written",
        ring_dir.join("keyring.toml").display()
    ));

    Ok(Vendor {
        rootfs,
        release: rel,
        opts: release_opts,
        keyring: ring_dir,
    })
}

/// The device refuses what it must: a tampered release, another device's.
fn refusals_act(n: &mut Narrator, v: &Vendor, now: chrono::DateTime<chrono::Utc>) -> Result<()> {
    let ring = Keyring::load(&v.keyring)?;
    let rel = &v.release;
    n.step("device: verify the release before anything else happens");
    let policy = Policy {
        compatible: Some("acme-demo-gw".into()),
        ..Policy::at(now)
    };
    let bytes = std::fs::read(rel.join("manifest.json"))?;
    let v = verify(&bytes, &ring, &policy)?;
    say(format!(
        "OK: {} {} signed by {} manifest key, kernel signed by {} kernel key; release sha256:{}",
        v.manifest.product,
        v.manifest.version,
        v.signed_by.len(),
        v.kernel_signed_by.len(),
        &v.digest.hex()[..16]
    ));

    n.step("attacker: raise the version inside the signed manifest to 9.0.0");
    let tampered = tamper_version(&bytes)?;
    match verify(&tampered, &ring, &policy) {
        Ok(_) => bail!("a tampered manifest was accepted"),
        Err(e) => say(format!("refused (exit code 3): {e}")),
    }

    n.step("device of another kind: the same release is refused");
    let other = Policy {
        compatible: Some("acme-other".into()),
        ..policy.clone()
    };
    match verify(&bytes, &ring, &other) {
        Ok(_) => bail!("an incompatible release was accepted"),
        Err(e) => say(format!("refused (exit code 3): {e}")),
    }

    Ok(())
}

/// The first update: installed through a dropped connection, tried by a
/// one-shot reboot, committed when its checks pass.
fn first_update_act(n: &mut Narrator, v: &Vendor, dev: &Path) -> Result<updater::config::Settings> {
    let (rootfs, rel, ring_dir) = (&v.rootfs, &v.release, &v.keyring);
    n.step("device: a simulated device with file-backed slots A (booted) and B");
    let settings = write_device(dev, ring_dir)?;
    say(format!("config {}", dev.join("config.toml").display()));
    say("slot A runs (updater.slot=A on the simulated kernel command line); B is the install target");

    n.step("vendor: serve the release over loopback HTTP; the network drops the first download");
    let server = updater_release::serve::Server::start(rel, "127.0.0.1:0")?;
    server.fault(
        updater_release::serve::Fault::DropAfter(5 << 20),
        Some("rootfs.img.zst"),
        1,
    );
    let url = server.url("manifest.json");
    say(format!(
        "{url} (the connection will break after 5 MiB of the rootfs)"
    ));

    n.step("device: updater apply URL --reboot — verify, mark B unbootable, stream verified chunks into B, start a trial");
    let a_before = updater_format::Sha256Digest::of(&std::fs::read(dev.join("slots/A.rootfs"))?);
    let reboots = DemoRebooter;
    let mut progress = updater::cli::progress::Progress::new(false);
    let out = apply_reboot(&settings, &url, &reboots, &mut progress)?;
    say(format!(
        "installed {} into slot {}: {} bytes fetched, {} retry after the dropped connection (resumed with a Range request)",
        out.version, out.group, out.bytes_fetched, out.retries
    ));
    if std::fs::read(dev.join("slots/B.rootfs"))? != std::fs::read(rootfs)? {
        bail!("slot B does not hold the release image");
    }
    let a_after = updater_format::Sha256Digest::of(&std::fs::read(dev.join("slots/A.rootfs"))?);
    if a_after != a_before {
        bail!("the booted slot A was written");
    }
    say("slot B holds exactly the signed image; slot A (booted) is byte-for-byte unchanged");
    say(format!("boot env now: {}", env_line(dev)?));
    show_status(&settings)?;

    n.step("bootloader: the one-shot trial is consumed, then slot B boots");
    say(format!("booted slot {}", simulate_bootloader(dev)?));

    n.step("device (slot B): updater health — the health checks pass, so B is committed");
    report_health(health(&settings, &reboots)?);
    say(format!("boot env now: {}", env_line(dev)?));
    show_status(&settings)?;

    Ok(settings)
}

/// Release 1.1.0, whose application does not start: installed by delta,
/// tried, marked bad, and the device back on 1.0.0.
fn failed_update_act(
    n: &mut Narrator,
    root: &Path,
    v: &Vendor,
    settings: &updater::config::Settings,
    dev: &Path,
) -> Result<()> {
    let reboots = DemoRebooter;
    let mut progress = updater::cli::progress::Progress::new(false);
    let (rootfs, release_opts) = (&v.rootfs, &v.opts);
    n.step("vendor: release 1.1.0, whose application does not start (six bytes changed)");
    let broken = root.join("build/rootfs-1.1.0.img");
    let mut img = std::fs::read(rootfs)?;
    img[..6].copy_from_slice(b"BROKEN");
    std::fs::write(&broken, img)?;
    let rel2 = root.join("releases/1.1.0");
    create(&CreateOptions {
        out: rel2.clone(),
        version: "1.1.0".parse()?,
        images: vec![("rootfs".into(), broken)],
        expires: Expiry::Days(30),
        ..release_opts.clone()
    })?;
    let server2 = updater_release::serve::Server::start(&rel2, "127.0.0.1:0")?;
    say(format!("served at {}", server2.url("manifest.json")));

    n.step(
        "device (slot B): updater apply URL --reboot — installs into slot A by delta, the slot not booted",
    );
    let out = apply_reboot(
        settings,
        &server2.url("manifest.json"),
        &reboots,
        &mut progress,
    )?;
    let served = std::fs::metadata(rel2.join("rootfs.img.zst"))?.len()
        + std::fs::metadata(rel2.join("kernel.img.zst"))?.len();
    say(format!(
        "installed {} into slot {}: {} bytes fetched (the full release is {} bytes); {} bytes read from slot B, whose chunks the index kept of release 1.0.0 lists, and each hashed as it was read",
        out.version, out.group, out.bytes_fetched, served, out.bytes_from_booted
    ));
    if out.bytes_fetched * 10 > served {
        bail!("the delta fetched {} of {served} bytes", out.bytes_fetched);
    }

    n.step("bootloader: the one-shot trial boots slot A");
    say(format!("booted slot {}", simulate_bootloader(dev)?));

    n.step("device (slot A): updater health — the application check fails");
    report_health(health(settings, &reboots)?);

    n.step("bootloader: slot A is not bootable, B is still the default: B boots");
    say(format!("booted slot {}", simulate_bootloader(dev)?));
    report_health(health(settings, &reboots)?);
    show_status(settings)?;
    let st = updater::flow::status(settings)?;
    if st.booted.as_deref() != Some("B")
        || st.groups["A"].status != "bad"
        || st.groups["B"].status != "good"
    {
        bail!(
            "the failed release did not roll back as expected: {}",
            serde_json::to_string(&st)?
        );
    }

    Ok(())
}

/// Write a simulated device: config, slot files, kernel command line.
fn write_device(dev: &Path, keyring: &Path) -> Result<updater::config::Settings> {
    std::fs::create_dir_all(dev.join("slots"))?;
    write_fake_image(&dev.join("slots/A.rootfs"), 8 << 20, 7)?;
    std::fs::write(dev.join("cmdline"), "console=ttyS0 ro updater.slot=A\n")?;
    // The slot chooser's env (the file backend): A boots, B is empty.
    std::fs::write(dev.join("boot.env"), "ORDER=A B\nA_OK=1\nB_OK=0\nTRY=\n")?;
    let d = dev.display();
    let config = format!(
        r#"# updater configuration of the demo device
compatible = "acme-demo-gw"
state_dir = "{d}/state"
keyring = "{k}"
cmdline_path = "{d}/cmdline"

[bootloader]
backend = "file"
path = "{d}/boot.env"

[http]
backoff_initial_ms = 200

[health]
dir = "{d}/health.d"
check_timeout_secs = 10

[slots.A.targets]
rootfs = "{d}/slots/A.rootfs"
kernel = "{d}/slots/A.vmlinuz"

[slots.B.targets]
rootfs = "{d}/slots/B.rootfs"
kernel = "{d}/slots/B.vmlinuz"
"#,
        k = keyring.display()
    );
    std::fs::write(dev.join("config.toml"), config)?;
    // The device's health check: the application "starts" unless the booted
    // slot's image is marked BROKEN.
    std::fs::create_dir_all(dev.join("health.d"))?;
    let check = dev.join("health.d/10-app");
    std::fs::write(
        &check,
        format!(
            "#!/bin/sh\nslot=$(sed -n 's/.*updater.slot=\\([A-Za-z0-9_-]*\\).*/\\1/p' {d}/cmdline)\nif [ \"$(head -c 6 {d}/slots/$slot.rootfs)\" = BROKEN ]; then\n  echo \"app.service failed to start on slot $slot\"\n  exit 1\nfi\n"
        ),
    )?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&check, std::fs::Permissions::from_mode(0o755))?;
    updater::config::load(Some(&dev.join("config.toml")))
}

/// `updater apply URL --reboot` on the simulated device: the apply flow,
/// with the demo's machine (a rebooter that only says what it would do, a
/// kexec loader that refuses).
fn apply_reboot(
    settings: &updater::config::Settings,
    url: &str,
    reboots: &DemoRebooter,
    progress: &mut updater::cli::progress::Progress,
) -> Result<updater::install::Installed> {
    let mut session = Session::open(settings, Clock::system())?;
    let machine = Machine {
        rebooter: reboots,
        loader: &NoKexec,
        watchdog: None,
    };
    let applied = updater::flow::apply(
        &mut session,
        &updater::flow::Request {
            source: url,
            trial: Some(How::Reboot),
            ..Default::default()
        },
        machine,
        progress,
    )?;
    match applied {
        updater::flow::Applied::Installed { installed, .. } => Ok(installed),
        updater::flow::Applied::FinishedStart(_) => {
            bail!("the demo's device had no trial to finish")
        }
        updater::flow::Applied::AlreadyRunning { group, version } => {
            bail!("the demo's device already runs {version} in slot {group}")
        }
    }
}

/// `updater health` on the simulated device.
fn health(
    settings: &updater::config::Settings,
    reboots: &DemoRebooter,
) -> Result<updater::flow::HealthOutcome> {
    updater::flow::health(Session::open(settings, Clock::system())?, reboots)
}

/// Stands in for the machine's restart: the demo runs on a developer's
/// machine, which must never reboot. It only says what would happen.
struct DemoRebooter;

/// The demo never kexecs: a loader that refuses, so that nothing can ever
/// stage a kernel on the machine the demo runs on.
struct NoKexec;

impl KexecLoader for NoKexec {
    fn load(
        &self,
        _: std::os::fd::BorrowedFd<'_>,
        _: Option<std::os::fd::BorrowedFd<'_>>,
        _: &std::ffi::CString,
    ) -> Result<(), nix::errno::Errno> {
        Err(nix::errno::Errno::EPERM)
    }
    fn unload(&self) -> Result<(), nix::errno::Errno> {
        Ok(())
    }
}

impl Rebooter for DemoRebooter {
    fn restart(&self, how: Restart) -> Result<()> {
        say(format!("(the device would {} now; simulated)", how.name()));
        Ok(())
    }
}

/// What the bootloader side (packaging/grub/grub.cfg, for the file env) does
/// at a reset: boot a one-shot trial after clearing it, else the first
/// bootable slot of ORDER, else A. Writes the simulated command line.
fn simulate_bootloader(dev: &Path) -> Result<String> {
    let path = dev.join("boot.env");
    let text = std::fs::read_to_string(&path)?;
    let var = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or("")
            .to_string()
    };
    let (slot, trial) = match var("TRY") {
        t if !t.is_empty() => {
            std::fs::write(&path, text.replace(&format!("TRY={t}"), "TRY="))?;
            (t, " updater.trial=1")
        }
        _ => {
            let order = var("ORDER");
            let slot = order
                .split_whitespace()
                .find(|g| var(&format!("{g}_OK")) == "1")
                .unwrap_or("A")
                .to_string();
            (slot, "")
        }
    };
    std::fs::write(
        dev.join("cmdline"),
        format!("console=ttyS0 ro updater.slot={slot}{trial}\n"),
    )?;
    Ok(format!(
        "{slot}{}",
        if trial.is_empty() {
            ""
        } else {
            " (one-shot trial)"
        }
    ))
}

fn env_line(dev: &Path) -> Result<String> {
    Ok(std::fs::read_to_string(dev.join("boot.env"))?
        .lines()
        .filter(|l| !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join(" "))
}

fn show_status(settings: &updater::config::Settings) -> Result<()> {
    let st = updater::flow::status(settings)?;
    for (g, e) in &st.groups {
        say(format!(
            "status: slot {g}: {:<10} version {:<6} bootable {:<5}{}{}",
            e.status,
            e.version.as_deref().unwrap_or("-"),
            e.bootable.map_or("?".to_string(), |b| b.to_string()),
            if e.booted { " (booted)" } else { "" },
            e.last_error
                .as_deref()
                .map(|r| format!(" — {r}"))
                .unwrap_or_default()
        ));
    }
    Ok(())
}

fn report_health(outcome: updater::flow::HealthOutcome) {
    use updater::flow::HealthOutcome as H;
    match outcome {
        H::NothingPending { .. } => say("health: no trial pending"),
        H::Committed { group, checks } => say(format!(
            "health: {} check(s) passed; slot {group} committed as the default",
            checks.len()
        )),
        H::Failed { group, reason, .. } => {
            say(format!("health: slot {group} marked bad: {reason}"))
        }
        H::TrialLost { group, reason, .. } => {
            say(format!("health: slot {group} marked bad: {reason}"))
        }
        H::ColdBootPending { group, .. } => say(format!(
            "health: slot {group} passed after a kexec; its first boot through the bootloader decides"
        )),
    }
}

/// Rewrite the payload's version without re-signing, as an attacker would.
fn tamper_version(envelope: &[u8]) -> Result<Vec<u8>> {
    let mut env: updater_format::envelope::Envelope = serde_json::from_slice(envelope)?;
    let payload = String::from_utf8(env.payload_bytes()?)?;
    let forged = payload.replacen("\"version\": \"1.0.0\"", "\"version\": \"9.0.0\"", 1);
    if forged == payload {
        bail!("the demo could not find the version to tamper with");
    }
    use base64::Engine;
    env.payload = base64::engine::general_purpose::STANDARD.encode(forged);
    Ok(env.to_json())
}

/// A compressible, deterministic image of `size` bytes.
fn write_fake_image(path: &Path, size: usize, seed: u8) -> Result<()> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    let mut data = Vec::with_capacity(size);
    let mut x: u32 = 0x9e37_79b9 ^ u32::from(seed);
    while data.len() < size {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        // Half text-like runs, half noise: compresses roughly 2:1 like a root fs.
        if (data.len() / 4096) % 2 == 0 {
            data.extend_from_slice(b"usr/lib/demo ");
        } else {
            data.extend_from_slice(&x.to_le_bytes());
        }
    }
    data.truncate(size);
    std::fs::write(path, data).with_context(|| format!("writing {}", path.display()))
}
