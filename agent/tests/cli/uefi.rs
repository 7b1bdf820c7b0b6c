//! The UEFI backends on a device whose efivarfs is a folder: systemd-boot
//! (entries on an ESP folder, `LoaderEntry*` variables) and the firmware's
//! boot manager (`Boot####`, `BootOrder`, `BootNext`). The variables are
//! read back by this file's own decoding (device.rs), and the test device's
//! reset plays sd-boot's and the firmware's selection rules (UEFI-NOTES):
//! a one-shot is deleted before it is started, and one naming an entry that
//! cannot boot falls back to the default.

use std::process::Command;

use crate::common::*;
use crate::device::{
    from_utf16z, load_option, u16s, uki_image, utf16z, Boot, Builder, Device, GLOBAL_GUID,
    LOADER_GUID,
};

fn device(boot: Boot) -> Device {
    Builder::new().boot(boot).trials().build()
}

const UEFI: [Boot; 2] = [Boot::SdLoader, Boot::Efi];

fn entries(d: &Device) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(d.env.p("dev/esp/loader/entries"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn sd_string(d: &Device, name: &str) -> Option<String> {
    d.efi_get(name, LOADER_GUID).map(|b| from_utf16z(&b))
}

fn boot_order(d: &Device) -> Vec<u16> {
    d.efi_get("BootOrder", GLOBAL_GUID)
        .unwrap()
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect()
}

fn active(d: &Device, n: u16) -> bool {
    d.efi_get(&format!("Boot{n:04X}"), GLOBAL_GUID).unwrap()[0] & 1 == 1
}

/// The trial cycle of `reboot_trial_commits_when_healthy` and
/// `failed_check_marks_bad_and_reboots_back`, then `rollback`, on each UEFI
/// backend: the four operations and the one-shot, each read back.
#[test]
fn the_trial_cycle_runs_on_each_uefi_backend() {
    for boot in UEFI {
        let t = device(boot);
        t.apply_reboot().assert_ok();
        assert_eq!(t.reboots(), vec!["reboot"], "{boot:?}");
        assert_eq!(t.armed().as_deref(), Some("B"), "{boot:?}");
        let env = t.boot_env();
        assert_eq!(
            env["ORDER"], "A B",
            "{boot:?}: the primary changed before commit"
        );
        match boot {
            Boot::SdLoader => {
                assert_eq!(
                    t.efi_get("LoaderEntryOneShot", LOADER_GUID).unwrap(),
                    utf16z("updater-B.conf"),
                    "UTF-16LE with its NUL"
                );
                assert_eq!(entries(&t), ["updater-A.conf", "updater-B.conf"]);
                assert_eq!(
                    sd_string(&t, "LoaderEntryDefault").as_deref(),
                    Some("updater-A.conf")
                );
            }
            _ => {
                assert_eq!(t.efi_get("BootNext", GLOBAL_GUID).unwrap(), u16s(&[2]));
                // In BootOrder (some firmware ignores a BootNext outside
                // it), after the primary, the network option kept.
                assert_eq!(boot_order(&t), [1, 2, 3]);
                assert_eq!(
                    t.efi_get("Boot0003", GLOBAL_GUID).unwrap(),
                    load_option(true, "network")
                );
                assert!(active(&t, 2));
            }
        }
        t.check_boot_invariants();

        assert_eq!(t.reset(), "B", "{boot:?}");
        assert_eq!(t.armed(), None, "{boot:?}: the one-shot was not consumed");
        let r = t.run(&["health"]);
        r.assert_ok();
        assert!(r.stdout.contains("committed"), "{boot:?}: {}", r.stdout);
        let env = t.boot_env();
        assert_eq!(env["ORDER"], "B A", "{boot:?}");
        assert_eq!((env["A_OK"].as_str(), env["B_OK"].as_str()), ("1", "1"));
        match boot {
            Boot::SdLoader => assert_eq!(
                sd_string(&t, "LoaderEntryDefault").as_deref(),
                Some("updater-B.conf")
            ),
            _ => assert_eq!(boot_order(&t), [2, 1, 3]),
        }
        assert_eq!(t.status()["groups"]["B"]["status"], "good");
        t.check_boot_invariants();
        assert_eq!(t.reset(), "B", "{boot:?}: the default did not move");
        assert!(t.run(&["health"]).stdout.contains("no trial pending"));

        // A release whose health check fails, installed into A: the trial
        // fails, A is disabled, and B stays the default.
        let mut img = t.expected();
        img[1000] ^= 0xff;
        std::fs::write(t.env.p("rootfs2.img"), img).unwrap();
        t.publish("rootfs2.img", "1.3.0");
        t.check("20-app", "exit 1");
        t.apply_reboot().assert_ok();
        assert_eq!(t.reset(), "A", "{boot:?}");
        assert_eq!(t.run(&["health"]).code, 7, "{boot:?}");
        assert_eq!(t.reset(), "B", "{boot:?}: not back on the default");
        let env = t.boot_env();
        assert_eq!(env["A_OK"], "0", "{boot:?}: the failed slot is bootable");
        match boot {
            Boot::SdLoader => {
                assert_eq!(entries(&t), ["updater-A.conf.disabled", "updater-B.conf"]);
                assert_eq!(sd_string(&t, "LoaderEntryOneShot"), None);
            }
            _ => {
                // Still in BootOrder (OVMF deletes an option that is not),
                // but inactive: the firmware skips it.
                assert_eq!(boot_order(&t), [2, 1, 3], "{boot:?}");
                assert!(!active(&t, 1), "the failed option is still ACTIVE");
                assert_eq!(t.efi_get("BootNext", GLOBAL_GUID), None);
            }
        }
        t.check_boot_invariants();
    }
}

#[test]
fn rollback_and_mark_bad_move_the_default_and_disable_the_entry() {
    for boot in UEFI {
        let t = device(boot);
        t.apply_reboot().assert_ok();
        t.boot();
        assert_eq!(t.status()["groups"]["B"]["status"], "good", "{boot:?}");
        let r = t.run(&["rollback"]);
        r.assert_ok();
        let env = t.boot_env();
        assert_eq!(env["ORDER"], "A B", "{boot:?}: {}", r.stdout);
        assert_eq!(env["B_OK"], "0", "{boot:?}");
        match boot {
            Boot::SdLoader => {
                assert_eq!(
                    sd_string(&t, "LoaderEntryDefault").as_deref(),
                    Some("updater-A.conf")
                );
                assert_eq!(entries(&t), ["updater-A.conf", "updater-B.conf.disabled"]);
            }
            _ => {
                assert_eq!(boot_order(&t), [1, 2, 3]);
                assert!(!active(&t, 2));
            }
        }
        t.check_boot_invariants();
        assert_eq!(t.reset(), "A", "{boot:?}");
        t.check_boot_invariants();
    }
}

/// The variable store full (ENOSPC) or mounted read-only (EROFS): a tmpfs
/// over the efivarfs folder in a private mount namespace. The command
/// fails, says what it means and what to do, and the device is where it
/// was: the primary and its entry untouched, the trial taken back.
#[test]
fn a_full_or_read_only_variable_store_changes_nothing_that_matters() {
    let cases = [
        (
            "full",
            // The variables copied into a 64 KiB tmpfs, the rest filled.
            r#"t=$(mktemp -d) && cp -a "$1/." "$t/" && mount -t tmpfs -o size=64k none "$1" && cp -a "$t/." "$1/" && rm -rf "$t" && { dd if=/dev/zero of="$1/fill" bs=1k count=128 2>/dev/null; true; } && shift && exec "$@""#,
            "variable store is full (ENOSPC)",
        ),
        (
            "read-only",
            r#"mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@""#,
            "mounted read-only (EROFS)",
        ),
    ];
    for boot in UEFI {
        for (what, script, says) in cases {
            let t = device(boot);
            t.run(&["apply", &t.url()]).assert_ok();
            let before = t.boot_env();
            let vars = t.env.p("dev/efivars");
            let out = Command::new("unshare")
                .args(["-m", "--propagation", "private", "sh", "-c", script, "sh"])
                .arg(&vars)
                .arg(bin())
                .args(["--config", &t.config(), "activate", "--reboot"])
                .env_remove("UPDATER_LOG")
                .env(updater::trial::reboot::NO_REAL_RESTART_ENV, "1")
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            if !can_run(
                !err.contains("unshare failed") && !err.contains("mount:"),
                "unshare -m and tmpfs / bind mounts (root) make a full or read-only store",
            ) {
                return;
            }
            assert_ne!(out.status.code(), Some(0), "{boot:?} {what}: {err}");
            assert!(err.contains(says), "{boot:?} {what}: {err}");
            assert!(
                err.contains("run the command again"),
                "{boot:?} {what}: {err}"
            );
            assert!(t.reboots().is_empty(), "{boot:?} {what}: restarted anyway");
            assert!(
                err.contains("the trial was taken back"),
                "{boot:?} {what}: {err}"
            );
            let st = t.status();
            assert_eq!(
                st["groups"]["B"]["status"], "installed",
                "{boot:?} {what}: {st}"
            );
            assert!(st["trial"].is_null(), "{boot:?} {what}: {st}");
            // Outside the namespace the folder holds what it held.
            let after = t.boot_env();
            assert_eq!(after["ORDER"], before["ORDER"], "{boot:?} {what}");
            assert_eq!(after["A_OK"], "1", "{boot:?} {what}");
            assert_eq!(after["B_OK"], "0", "{boot:?} {what}: B left bootable");
            assert_eq!(
                after.get("TRY").map(String::as_str),
                Some(""),
                "{boot:?} {what}"
            );
            t.check_boot_invariants();
            // With the store writable again, the same command works.
            t.run(&["activate", "--reboot"]).assert_ok();
            assert_eq!(t.armed().as_deref(), Some("B"), "{boot:?} {what}");
        }
    }
}

#[test]
fn a_missing_entry_or_boot_option_is_named_with_what_to_do() {
    let t = device(Boot::SdLoader);
    std::fs::remove_file(t.env.p("dev/esp/loader/entries/updater-B.conf.disabled")).unwrap();
    let r = t.run(&["apply", &t.url()]);
    r.assert_fails(6, "slot B has no boot entry");
    assert!(
        r.stderr.contains("loader/entries/updater-B.conf nor")
            && r.stderr.contains("EFI/Linux/updater-B.efi (a Type #2 UKI)")
            && r.stderr.contains("with .disabled"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("provision one"), "{}", r.stderr);

    let t = device(Boot::Efi);
    t.efi_del("Boot0002", GLOBAL_GUID);
    let r = t.run(&["apply", &t.url()]);
    r.assert_fails(6, "boot option \"updater B\" does not exist");
    assert!(r.stderr.contains("deleted it"), "{}", r.stderr);
    assert!(
        t.b().is_empty(),
        "installed although the bootloader is broken"
    );

    // Two entries for one slot (a counted and an uncounted copy).
    let t = device(Boot::SdLoader);
    std::fs::write(t.env.p("dev/esp/loader/entries/updater-A+3.conf"), "").unwrap();
    t.run(&["status"]).assert_ok();
    t.run(&["apply", &t.url()])
        .assert_fails(6, "slot A has 2 boot entries");
}

/// `LoaderEntrySelected` / `BootCurrent` against `updater.slot=`: a
/// mismatch is an error that names both, not a guess; in a kernel the agent
/// kexec'd, the firmware's record is not the running slot and is not used.
#[test]
fn the_entry_the_bootloader_booted_must_be_the_slot_the_command_line_names() {
    for boot in UEFI {
        let t = device(boot);
        match boot {
            // Lowercased, as sd-boot 252 reports it.
            Boot::SdLoader => t.efi_set(
                "LoaderEntrySelected",
                LOADER_GUID,
                &utf16z("updater-b.conf"),
            ),
            _ => t.efi_set("BootCurrent", GLOBAL_GUID, &u16s(&[2])),
        }
        let r = t.run(&["apply", &t.url()]);
        r.assert_fails(6, "updater.slot=A");
        assert!(r.stderr.contains("slot B"), "{boot:?}: {}", r.stderr);
        assert!(r.stderr.contains("nothing was changed"), "{}", r.stderr);
        assert!(t.b().is_empty(), "{boot:?}: wrote a slot");
        std::fs::write(
            t.env.p("dev/cmdline"),
            "console=ttyS0 updater.slot=A updater.kexec=1\n",
        )
        .unwrap();
        t.run(&["apply", &t.url()]).assert_ok();
    }
}

/// A counted entry (`updater-B+3.conf`, made by an image build with boot
/// counting on) is the same slot; the agent drops the counter when it makes
/// the entry bootable, so that its ids match on every systemd version.
#[test]
fn a_counted_entry_is_the_agents_and_loses_its_counter() {
    let t = device(Boot::SdLoader);
    let dir = t.env.p("dev/esp/loader/entries");
    std::fs::rename(dir.join("updater-A.conf"), dir.join("updater-A+0-3.conf")).unwrap();
    t.efi_set(
        "LoaderEntryDefault",
        LOADER_GUID,
        &utf16z("updater-A+0-3.conf"),
    );
    assert_eq!(t.status()["groups"]["A"]["bootable"], true);
    t.apply_reboot().assert_ok();
    assert_eq!(t.reset(), "B");
    t.run(&["health"]).assert_ok();
    t.run(&["rollback"]).assert_ok();
    assert_eq!(entries(&t), ["updater-A.conf", "updater-B.conf.disabled"]);
    assert_eq!(
        sd_string(&t, "LoaderEntryDefault").as_deref(),
        Some("updater-A.conf")
    );
}

#[test]
fn uefi_configuration_mistakes_are_named() {
    let t = device(Boot::Efi);
    let cfg = std::fs::read_to_string(t.config()).unwrap();
    for (from, to, says) in [
        (
            r#"B = "updater B""#,
            r#"B = " ""#,
            "is neither a Boot#### number",
        ),
        (
            r#"B = "updater B""#,
            r#"B = "updater A""#,
            "name the same boot option",
        ),
        (
            r#", B = "updater B""#,
            "",
            "names no boot option for slot B",
        ),
        // By number, the option's number is a fact the firmware may change.
        (
            r#"B = "updater B""#,
            r#"B = "0007""#,
            "Boot0007 does not exist",
        ),
    ] {
        std::fs::write(t.config(), cfg.replace(from, to)).unwrap();
        let r = t.run(&["apply", &t.url()]);
        assert!(r.stderr.contains(says), "{to}: {}", r.stderr);
        assert_ne!(r.code, 0);
    }
    std::fs::write(
        t.config(),
        cfg.replace("backend = \"efi\"", "backend = \"systemd-bot\""),
    )
    .unwrap();
    let r = t.run(&["status"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("systemd-boot"), "{}", r.stderr);
}

/// A load option's other bytes (description, device path, optional data)
/// are never changed: only the ACTIVE bit of its attribute word.
#[test]
fn only_the_active_bit_of_a_boot_option_changes() {
    let t = device(Boot::Efi);
    let mut opt = load_option(false, "updater B");
    opt[0] |= 0x08; // LOAD_OPTION_HIDDEN, the firmware's own bit
    opt.extend_from_slice(b"optional-data");
    t.efi_set("Boot0002", GLOBAL_GUID, &opt);
    t.apply_reboot().assert_ok();
    let got = t.efi_get("Boot0002", GLOBAL_GUID).unwrap();
    assert_eq!(got[0], 0x09);
    assert_eq!(got[1..], opt[1..]);
}

/// The kernel and initrd of a slot on the ESP are replaced whole: written
/// beside the target, synced, renamed over it. A crash before the rename
/// leaves the old kernel whole (and the new one beside it, which the run
/// again resumes); no bootloader ever reads half a kernel.
#[test]
fn kernels_on_the_esp_are_replaced_whole() {
    // Checkpoints by timer would make the count of durable writes vary.
    let t = Builder::new()
        .boot(Boot::SdLoader)
        .trials()
        .checkpoint_ms(3_600_000)
        .release_args(&[])
        .lines(
            "slots.A.targets",
            "kernel = \"{dev}/esp/updater/A/vmlinuz\"\ninitrd = \"{dev}/esp/updater/A/initrd.img\"",
        )
        .lines(
            "slots.B.targets",
            "kernel = \"{dev}/esp/updater/B/vmlinuz\"\ninitrd = \"{dev}/esp/updater/B/initrd.img\"",
        )
        .build();
    let b = t.env.p("dev/esp/updater/B");
    std::fs::create_dir_all(&b).unwrap();
    std::fs::write(b.join("vmlinuz"), b"the old kernel of B").unwrap();
    let kernel = pattern(300_000, 21);
    std::fs::write(t.env.p("vmlinuz"), &kernel).unwrap();
    std::fs::write(t.env.p("initrd.img"), pattern(120_000, 22)).unwrap();
    let (k, i, kk) = (
        t.env.s("vmlinuz"),
        t.env.s("initrd.img"),
        t.env.s("keys/k1.key"),
    );
    t.publish_with(
        "rootfs.img",
        "1.2.0",
        &[
            "--kernel",
            &k,
            "--kernel-key",
            &kk,
            "--initrd",
            &i,
            "--cmdline",
            "console=ttyS0",
        ],
    );
    // Where the kernel's rename comes among the run's durable writes.
    t.snapshot("start");
    let trace = t.env.p("trace");
    t.run_with(
        &[("UPDATER_FAILPOINTS_TRACE", &trace.to_string_lossy())],
        &["apply", &t.url()],
    );
    let lines: Vec<String> = std::fs::read_to_string(&trace)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("durable-write"))
        .map(str::to_string)
        .collect();
    let at = lines
        .iter()
        .position(|l| l.contains("vmlinuz.updater-new to ") && l.ends_with("B/vmlinuz"))
        .unwrap_or_else(|| panic!("no rename of B's kernel: {lines:#?}"));
    assert!(std::fs::read(b.join("vmlinuz")).unwrap() == kernel);
    assert!(!b.join("vmlinuz.updater-new").exists());

    t.restore("start");
    let fp = format!("durable-write@{}", at + 1);
    assert_eq!(t.run_failpoint(&fp, &["apply", &t.url()]), None);
    assert_eq!(
        std::fs::read(b.join("vmlinuz")).unwrap(),
        b"the old kernel of B",
        "the kernel was changed before it was whole"
    );
    let new = std::fs::read(b.join("vmlinuz.updater-new")).unwrap();
    assert!(
        new == kernel,
        "the new kernel beside it: {} bytes",
        new.len()
    );
    t.run(&["apply", &t.url()]).assert_ok();
    assert!(std::fs::read(b.join("vmlinuz")).unwrap() == kernel);
    assert!(!b.join("vmlinuz.updater-new").exists());
}

/// Firmware renumbers options (OVMF deleted a provisioned option that was
/// not in BootOrder and gave its number to one of its own, measured): an
/// option named by its label is found whatever its number; two options with
/// one label are refused.
#[test]
fn an_option_named_by_its_label_is_found_whatever_its_number() {
    let t = device(Boot::Efi);
    let b = t.efi_get("Boot0002", GLOBAL_GUID).unwrap();
    let dvd = load_option(true, "UEFI QEMU DVD-ROM QM00003");
    t.efi_set("Boot0002", GLOBAL_GUID, &dvd);
    t.efi_set("Boot0007", GLOBAL_GUID, &b);
    t.efi_set("BootOrder", GLOBAL_GUID, &u16s(&[1, 2, 3, 7]));
    t.apply_reboot().assert_ok();
    assert_eq!(t.efi_get("BootNext", GLOBAL_GUID).unwrap(), u16s(&[7]));
    assert!(active(&t, 7));
    assert_eq!(
        t.efi_get("Boot0002", GLOBAL_GUID).unwrap(),
        dvd,
        "the firmware's own option was changed"
    );
    t.efi_set("Boot0008", GLOBAL_GUID, &b);
    t.run(&["rollback"])
        .assert_fails(6, "2 boot options are labelled \"updater B\"");
}

/// The command line inside the UKIs below. It names no slot: under Secure
/// Boot sd-stub uses a UKI's own `.cmdline` instead of the loader's
/// options, so one UKI serves either slot and the slot is the entry sd-boot
/// selected.
const UKI_CMDLINE: &str = "console=ttyS0 quiet";

/// A device whose slots boot as systemd-boot Type #2 entries: each slot's
/// UKI is its own entry in `EFI/Linux` and the slot's `uki` target, A's
/// enabled and booted, B's parked (`updater-B.efi.disabled`, empty as the
/// factory leaves it); a UKI release of version 1.2.0 is served.
fn type2_device() -> Device {
    // Checkpoints by timer would make the count of durable writes vary.
    let t = Builder::new()
        .boot(Boot::SdLoader)
        .trials()
        .checkpoint_ms(3_600_000)
        .release_args(&[])
        .set(
            "slots.A.targets",
            "uki",
            "\"{dev}/esp/EFI/Linux/updater-A.efi\"",
        )
        .set(
            "slots.B.targets",
            "uki",
            "\"{dev}/esp/EFI/Linux/updater-B.efi\"",
        )
        .build();
    for n in ["updater-A.conf", "updater-B.conf.disabled"] {
        std::fs::remove_file(t.env.p(&format!("dev/esp/loader/entries/{n}"))).unwrap();
    }
    let linux = t.env.p("dev/esp/EFI/Linux");
    std::fs::create_dir_all(&linux).unwrap();
    std::fs::write(
        linux.join("updater-A.efi"),
        uki_image(
            UKI_CMDLINE.as_bytes(),
            &pattern(200_000, 31),
            &pattern(50_000, 32),
        ),
    )
    .unwrap();
    std::fs::write(linux.join("updater-B.efi.disabled"), b"").unwrap();
    t.efi_set("LoaderEntryDefault", LOADER_GUID, &utf16z("updater-A.efi"));
    sd_boots(&t, "updater-a.efi");
    std::fs::write(t.env.p("uki.efi"), new_uki()).unwrap();
    let (u, kk) = (t.env.s("uki.efi"), t.env.s("keys/k1.key"));
    t.publish_with("rootfs.img", "1.2.0", &["--uki", &u, "--kernel-key", &kk]);
    t
}

/// The UKI of the release `type2_device` serves.
fn new_uki() -> Vec<u8> {
    uki_image(
        UKI_CMDLINE.as_bytes(),
        &pattern(300_000, 21),
        &pattern(120_000, 22),
    )
}

/// What sd-boot leaves when it boots the Type #2 entry `id` (lowercased,
/// as 252 reports it): the one-shot consumed, `LoaderEntrySelected`, and
/// the UKI's own command line.
fn sd_boots(t: &Device, id: &str) {
    t.efi_del("LoaderEntryOneShot", LOADER_GUID);
    t.efi_set("LoaderEntrySelected", LOADER_GUID, &utf16z(id));
    std::fs::write(t.env.p("dev/cmdline"), format!("{UKI_CMDLINE}\n")).unwrap();
}

fn linux_dir(t: &Device) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(t.env.p("dev/esp/EFI/Linux"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A UKI release on Type #2 entries: installed under B's parked name (an
/// install never makes it selectable), enabled and named by the one-shot
/// only when the trial is armed, booted by sd-boot with a command line that
/// names no slot (the slot is `LoaderEntrySelected`), committed as the
/// default; a rollback parks it again.
#[test]
fn a_uki_boots_as_a_type2_entry_through_the_trial_cycle() {
    let t = type2_device();
    let s = t.status();
    assert_eq!(s["booted"], "A", "the slot from LoaderEntrySelected: {s}");
    assert_eq!(s["primary"], "A", "{s}");
    assert_eq!(s["groups"]["B"]["bootable"], false, "{s}");

    t.apply_url().assert_ok();
    assert_eq!(linux_dir(&t), ["updater-A.efi", "updater-B.efi.disabled"]);
    assert!(
        std::fs::read(t.env.p("dev/esp/EFI/Linux/updater-B.efi.disabled")).unwrap() == new_uki(),
        "the release's UKI is not in B's parked entry"
    );
    assert_eq!(sd_string(&t, "LoaderEntryOneShot"), None);

    t.apply_reboot().assert_ok();
    assert_eq!(t.reboots(), vec!["reboot"]);
    assert_eq!(linux_dir(&t), ["updater-A.efi", "updater-B.efi"]);
    assert!(std::fs::read(t.env.p("dev/esp/EFI/Linux/updater-B.efi")).unwrap() == new_uki());
    assert_eq!(
        sd_string(&t, "LoaderEntryOneShot").as_deref(),
        Some("updater-B.efi")
    );
    assert_eq!(
        sd_string(&t, "LoaderEntryDefault").as_deref(),
        Some("updater-A.efi"),
        "the default moved before the trial"
    );

    sd_boots(&t, "updater-b.efi");
    let r = t.run(&["health"]);
    r.assert_ok();
    assert!(r.stdout.contains("committed"), "{}", r.stdout);
    assert_eq!(
        sd_string(&t, "LoaderEntryDefault").as_deref(),
        Some("updater-B.efi")
    );
    let s = t.status();
    assert_eq!(s["booted"], "B", "{s}");
    assert_eq!(s["groups"]["B"]["status"], "good", "{s}");

    t.run(&["rollback"]).assert_ok();
    assert_eq!(linux_dir(&t), ["updater-A.efi", "updater-B.efi.disabled"]);
    assert_eq!(
        sd_string(&t, "LoaderEntryDefault").as_deref(),
        Some("updater-A.efi")
    );
}

/// A Type #2 entry is the UKI itself: a `uki` target elsewhere (which sd-boot
/// would never boot), a slot with entries of both types, and a command line
/// that names no slot while sd-boot's record names none either are each
/// refused, saying what to do.
#[test]
fn type2_mistakes_are_named() {
    let t = type2_device();
    let conf = t.env.p("dev/esp/loader/entries/updater-A.conf");
    std::fs::write(&conf, "title A\nefi /EFI/Linux/updater-A.efi\n").unwrap();
    let r = t.apply_url();
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("slot A has 2 boot entries") && r.stderr.contains("keep one"),
        "{}",
        r.stderr
    );
    std::fs::remove_file(&conf).unwrap();

    t.efi_del("LoaderEntrySelected", LOADER_GUID);
    let r = t.apply_url();
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("cannot tell which slot group is booted"),
        "{}",
        r.stderr
    );
    sd_boots(&t, "updater-a.efi");

    let moved = Builder::new()
        .boot(Boot::SdLoader)
        .set(
            "slots.B.targets",
            "uki",
            "\"{dev}/esp/updater/B/linux.efi\"",
        )
        .build();
    let dir = moved.env.p("dev/esp/EFI/Linux");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::remove_file(
        moved
            .env
            .p("dev/esp/loader/entries/updater-B.conf.disabled"),
    )
    .unwrap();
    std::fs::write(dir.join("updater-B.efi.disabled"), b"").unwrap();
    let r = moved.apply_url();
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("Type #2")
            && r.stderr.contains("slots.B.targets.uki must be")
            && r.stderr.contains("EFI/Linux/updater-B.efi, not"),
        "{}",
        r.stderr
    );
    assert_eq!(
        std::fs::read(dir.join("updater-B.efi.disabled")).unwrap(),
        b"",
        "something was installed"
    );
}

/// systemd's own `bootctl` (252, unpacked by test.sh, never installed)
/// reads the ESP the agent manages: the entries it lists are the ones the
/// agent made bootable, Type #1 and Type #2 (the UKI's `.osrel` and
/// `.cmdline` parsed), never a disabled or parked one.
#[test]
fn bootctl_lists_the_entries_the_agent_made_bootable() {
    let Some(bootctl) = bootctl() else { return };
    let t = device(Boot::SdLoader);
    assert_eq!(
        bootctl_list(&bootctl, &t),
        [("updater-A.conf".into(), None)]
    );
    t.apply_reboot().assert_ok();
    assert_eq!(
        bootctl_list(&bootctl, &t),
        [
            ("updater-A.conf".into(), None),
            ("updater-B.conf".into(), None)
        ]
    );

    let t = type2_device();
    let a = ("updater-A.efi".to_string(), Some(UKI_CMDLINE.to_string()));
    assert_eq!(bootctl_list(&bootctl, &t), std::slice::from_ref(&a));
    t.apply_url().assert_ok();
    assert_eq!(
        bootctl_list(&bootctl, &t),
        std::slice::from_ref(&a),
        "B's parked UKI is offered"
    );
    t.apply_reboot().assert_ok();
    assert_eq!(
        bootctl_list(&bootctl, &t),
        [a, ("updater-B.efi".into(), Some(UKI_CMDLINE.into()))]
    );
}

/// bootctl, or a skip that says where it should be.
fn bootctl() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("UPDATER_BOOTCTL")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
                .join("../interop/systemd-boot/usr/bin/bootctl")
        });
    let ok = path.is_file()
        && Command::new("unshare")
            .args(["-m", "true"])
            .status()
            .is_ok_and(|s| s.success());
    can_run(
        ok,
        &format!(
            "no bootctl at {} (test.sh unpacks systemd-boot there) or no private mount namespace (unshare -m)",
            path.display()
        ),
    )
    .then_some(path)
}

/// The entries `bootctl list` offers on the device's ESP: id and, for a
/// Type #2 entry, the command line it read from the UKI. bootctl wants the
/// ESP at the root of a file system, so it reads a copy on a tmpfs mounted
/// in a private mount namespace.
fn bootctl_list(bootctl: &std::path::Path, t: &Device) -> Vec<(String, Option<String>)> {
    let mnt = t.env.p("esp-mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let script = r#"mount -t tmpfs esp "$2" && cp -r "$1"/. "$2"/ && SYSTEMD_RELAX_ESP_CHECKS=1 "$3" --esp-path="$2" --no-pager --json=short list"#;
    let out = Command::new("unshare")
        .args(["-m", "sh", "-c", script, "sh"])
        .arg(t.env.p("dev/esp"))
        .arg(&mnt)
        .arg(bootctl)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bootctl list: {}{}",
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    let mut v = Vec::new();
    for item in serde_json::Deserializer::from_str(&stdout).into_iter::<serde_json::Value>() {
        let item = item.unwrap();
        let items = match item {
            serde_json::Value::Array(a) => a,
            one => vec![one],
        };
        for e in items {
            let is_uki = e["path"]
                .as_str()
                .is_some_and(|p| p.contains("/EFI/Linux/"));
            v.push((
                e["id"].as_str().unwrap().to_string(),
                is_uki.then(|| e["options"].as_str().unwrap_or("").to_string()),
            ));
        }
    }
    v.sort();
    v
}

/// A command line that names no slot (a UKI's own) takes the slot from what
/// the boot loader says it booted, on each UEFI backend; one that names a
/// slot wins over it (after a kexec the variables name what the firmware
/// started).
#[test]
fn a_command_line_without_the_slot_takes_it_from_the_boot_loader() {
    for boot in UEFI {
        let t = device(boot);
        std::fs::write(t.env.p("dev/cmdline"), "console=ttyS0 quiet\n").unwrap();
        let s = t.status();
        assert_eq!(s["booted"], "A", "{boot:?}: {s}");
        match boot {
            Boot::SdLoader => t.efi_set(
                "LoaderEntrySelected",
                LOADER_GUID,
                &utf16z("updater-b.conf"),
            ),
            _ => t.efi_set("BootCurrent", GLOBAL_GUID, &u16s(&[2])),
        }
        assert_eq!(t.status()["booted"], "B", "{boot:?}");
        std::fs::write(
            t.env.p("dev/cmdline"),
            "console=ttyS0 updater.slot=A updater.kexec=1\n",
        )
        .unwrap();
        assert_eq!(t.status()["booted"], "A", "{boot:?}: the command line lost");
    }
}

/// `apply --reboot` on Type #2 entries stopped at each of its durable
/// writes: B's UKI is always one whole file under one name (beside, at
/// most, the new one being written); it is selectable (`updater-B.efi`)
/// only once it is the release's; the one-shot names it only then; the
/// default never moves. Run again, the command ends where an uninterrupted
/// run ends.
#[test]
fn a_crash_at_each_durable_write_of_a_type2_trial_leaves_a_bootable_default() {
    let t = type2_device();
    t.snapshot("start");
    let trace = t.env.p("trace");
    let url = t.url();
    let args = ["apply", url.as_str(), "--reboot"];
    assert_eq!(
        t.run_with(
            &[("UPDATER_FAILPOINTS_TRACE", &trace.to_string_lossy())],
            &args
        ),
        Some(0)
    );
    let writes = std::fs::read_to_string(&trace)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("durable-write"))
        .count();
    assert!(writes >= 4, "only {writes} durable writes");
    let enabled = t.env.p("dev/esp/EFI/Linux/updater-B.efi");
    for n in 1..=writes {
        t.restore("start");
        assert_eq!(
            t.run_failpoint(&format!("durable-write@{n}"), &args),
            None,
            "write {n}"
        );
        let names = linux_dir(&t);
        let b: Vec<&String> = names
            .iter()
            .filter(|n| n.starts_with("updater-B") && !n.ends_with(".updater-new"))
            .collect();
        assert_eq!(
            b.len(),
            1,
            "write {n}: B's entry is not one file: {names:?}"
        );
        if enabled.exists() {
            assert!(
                std::fs::read(&enabled).unwrap() == new_uki(),
                "write {n}: B is selectable with a UKI that is not the release's"
            );
        }
        if sd_string(&t, "LoaderEntryOneShot").is_some() {
            assert!(
                enabled.exists(),
                "write {n}: a one-shot names a parked entry"
            );
        }
        assert_eq!(
            sd_string(&t, "LoaderEntryDefault").as_deref(),
            Some("updater-A.efi"),
            "write {n}: the default moved"
        );
        t.run(&args).assert_ok();
        assert_eq!(
            linux_dir(&t),
            ["updater-A.efi", "updater-B.efi"],
            "write {n}"
        );
        assert!(std::fs::read(&enabled).unwrap() == new_uki(), "write {n}");
        assert_eq!(
            sd_string(&t, "LoaderEntryOneShot").as_deref(),
            Some("updater-B.efi"),
            "write {n}"
        );
    }
}
