# Sourced by /init at every boot: what this slot does in each scenario.
# Variables: SCENARIO, SLOT, VERSION (1 = the factory system in A, 2 = the
# release, 3 = the release after it), TRIAL, BOOTS (boots so far, kept on
# the data partition), URL (release 2), URL3 (release 3, the delta).

apply_kexec() {
    modprobe i6300esb nowayout=1 && mark "watchdog nowayout=$(cat /sys/class/watchdog/watchdog0/nowayout 2>/dev/null)"
    mark "apply-start kexec"
    updater apply "$URL" --kexec > /tmp/apply.out 2>&1
    rc=$?
    keep "apply rc=$rc $(tail -2 /tmp/apply.out | tr '\n' ' ')"
}

# A slot committed by kexec waits for its first boot through GRUB (the
# cold-boot guard): health said so above; reset, and GRUB boots it once.
cold_boot_if_pending() {
    if grep -q '"outcome":"cold-boot-pending"' /tmp/health.json; then
        keep "cold-boot-reset"; reboot -f
    fi
}

# A U-Boot scenario runs the steps of its GRUB twin (uboot-commit as
# commit...); uboot-oneshot-cut is reboot, with the harness cutting the power
# right after U-Boot consumed the one-shot.
STEPS=${SCENARIO#uboot-}
[ "$STEPS" = oneshot-cut ] && STEPS=reboot

# What this boot's kernel reads back through efivarfs of systemd-boot's
# variables (the volatile LoaderEntrySelected is not in OVMF's NV store,
# which the harness reads after the run), and the ESP's entries.
keep_efivars() {
    keep "efivars $(cd /sys/firmware/efi/efivars && for v in LoaderEntryDefault LoaderEntryOneShot LoaderEntrySelected; do [ -e $v-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f ] && printf '%s=%s ' $v "$(tail -c +5 $v-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f | tr -d '\000')"; done)"
    keep "entries $(ls /esp/loader/entries | tr '\n' ' ')"
    keep "linux $(ls /esp/EFI/Linux 2>/dev/null | tr '\n' ' ')"
}

# systemd's bootctl (252, unpacked into RAM from the data partition) lists
# the entries it finds and marks the default and the selected one, from the
# ESP and the firmware's variables: it reads back what the agent wrote.
keep_bootctl() {
    mkdir -p /tmp/bootctl && tar -xzf /data/tools/bootctl.tar.gz -C /tmp || { keep "bootctl: not unpacked"; return; }
    keep "bootctl $(SYSTEMD_RELAX_ESP_CHECKS=1 LD_LIBRARY_PATH=/tmp/bootctl/lib /tmp/bootctl/bootctl --esp-path=/esp --no-pager list 2>&1 \
        | grep -E '^ *(title|id|error|Failed)' | sed 's/^ *//' | tr '\n' ';')"
}

# The EFI boot manager's variables as this boot's kernel reads them
# (hex words, little-endian u16s).
keep_efiboot() {
    # efibootmgr (efivar's library) reads back what the agent wrote.
    keep "efibootmgr $(efibootmgr -v 2>&1 | grep -E '^(BootCurrent|BootNext|BootOrder|Boot000[12])' | cut -c1-60 | tr '\n' ';')"
    g=8be4df61-93ca-11d2-aa0d-00e098032b8c
    keep "efiboot $(cd /sys/firmware/efi/efivars && for v in BootOrder BootNext BootCurrent; do [ -e $v-$g ] && printf '%s=%s ' $v "$(tail -c +5 $v-$g | od -An -tx2 | tr -s ' \n' ' ' | sed 's/^ //; s/ $//; s/ /,/g')"; done; for n in 0001 0002; do [ -e Boot$n-$g ] && printf 'Boot%s.attrs=%s ' $n "$(tail -c +5 Boot$n-$g | head -c 4 | od -An -tx4 | tr -d ' ')"; done)"
}

# The systemd-boot scenarios (sdboot-*): their own steps. The Secure Boot
# commit and the UKI scenario (Type #2 entries) run sdboot-commit's.
SDSTEPS=$SCENARIO
case "$SCENARIO" in sdboot-sb-commit|sdboot-uki) SDSTEPS=sdboot-commit ;; esac
case "$SDSTEPS:$VERSION" in
efi-health-fail:1)
    if [ "$BOOTS" = 1 ]; then
        keep_efiboot
        mark "apply-start reboot"
        updater apply "$URL" --reboot > /tmp/apply.out 2>&1
        keep "error: apply --reboot returned: rc=$? $(tail -2 /tmp/apply.out | tr '\n' ' ')"
        sleep 30
    fi
    keep_efiboot
    finish ;;
efi-health-fail:2)
    # Health failed above, marked B bad and rebooted; nothing more here.
    keep "error: still running after a failed health check"
    finish ;;
sdboot-sb-unsigned:1)
    # The release's kernel has no Authenticode signature: the locked-down
    # kernel refuses it, and kexec.policy = "require" fails the apply.
    keep "lockdown $(cat /sys/kernel/security/lockdown 2>&1)"
    apply_kexec
    keep_efivars
    finish ;;
sdboot-commit:1)
    if [ "$BOOTS" = 1 ]; then apply_kexec; fi
    finish ;;
sdboot-commit:2)
    # Boot 2: the kexec trial, whose health armed B's first cold boot
    # (LoaderEntryOneShot). Boot 3: that cold boot through OVMF and
    # systemd-boot; health commits (LoaderEntryDefault). Boot 4: a plain
    # reset, which sd-boot boots B by default.
    if [ "$TRIAL" = yes ]; then keep "reset-after-kexec-trial"; reboot -f; fi
    if grep -q '"outcome":"committed"' /tmp/health.json; then keep "reset-after-commit"; reboot -f; fi
    keep_efivars
    keep "cmdline $(cat /proc/cmdline)"
    keep_bootctl
    finish ;;
sdboot-hang:1)
    if [ "$BOOTS" = 1 ]; then
        mark "apply-start reboot"
        updater apply "$URL" --reboot > /tmp/apply.out 2>&1
        keep "error: apply --reboot returned: rc=$? $(tail -2 /tmp/apply.out | tr '\n' ' ')"
        sleep 30
    fi
    keep_efivars
    finish ;;
esac

case "$STEPS:$VERSION" in
commit:1)
    if [ "$BOOTS" = 1 ]; then apply_kexec; fi
    finish ;;
commit:2)
    # Boot 2 is the kexec trial: health passed and armed the first cold
    # boot. Boot 3 is that cold boot, through firmware and GRUB's one-shot:
    # health commits. Boot 4 is a plain reset: GRUB boots B by default.
    if [ "$TRIAL" = yes ]; then keep "reset-after-commit"; reboot -f; fi
    finish ;;
coldboot:1)
    if [ "$BOOTS" = 1 ]; then apply_kexec; fi
    # Boot 3: GRUB could not load B and fell back here; health (above)
    # marked B bad with the reason.
    finish ;;
coldboot:2)
    # The kexec trial passed its checks (health above) and B's first cold
    # boot is armed. Break B's kernel as the bootloader sees it on the disk
    # (the kexec'd kernel was fine), then reset.
    mount -t ext4 /dev/vda3 /mnt && : > /mnt/boot/vmlinuz && umount /mnt && keep "broke-b-kernel"
    sync
    reboot -f ;;
health-fail:1)
    if [ "$BOOTS" = 1 ]; then apply_kexec; fi
    finish ;;
health-fail:2)
    # Health failed above and rebooted; nothing more to do here.
    keep "error: still running after a failed health check"
    finish ;;
hang:1)
    if [ "$BOOTS" = 1 ]; then apply_kexec; fi
    finish ;;
powercut:1)
    if [ "$BOOTS" = 1 ]; then
        mark "apply-start install"
        updater apply "$URL" > /tmp/apply.out 2>&1
        keep "error: the first install was not cut: rc=$? $(tail -1 /tmp/apply.out)"
    else
        mark "after-cut $(updater status --json)"
        updater apply "$URL" > /tmp/apply.out 2>&1
        mark "apply rc=$? $(tail -1 /tmp/apply.out)"
    fi
    finish ;;
tampered:1)
    apply_kexec
    finish ;;
reboot:1)
    if [ "$BOOTS" = 1 ]; then
        mark "apply-start reboot"
        updater apply "$URL" --reboot > /tmp/apply.out 2>&1
        mark "apply rc=$? $(tail -2 /tmp/apply.out | tr '\n' ' ')"
        sleep 30
    fi
    finish ;;
reboot:2)
    finish ;;
daemon:1)
    # The fleet path: the daemon polls the channel, installs what it names
    # and boots it by kexec (kexec.policy = require).
    if [ "$BOOTS" = 1 ]; then
        modprobe i6300esb nowayout=1 && mark "watchdog nowayout=$(cat /sys/class/watchdog/watchdog0/nowayout 2>/dev/null)"
        mark "apply-start kexec"
        updater daemon --once > /tmp/daemon.out 2>&1
        keep "apply rc=$? $(tail -2 /tmp/daemon.out | tr '\n' ' ')"
    fi
    finish ;;
daemon:2)
    # Committed by health above (after the first cold boot); the next poll
    # has nothing to do.
    cold_boot_if_pending
    updater daemon --once > /tmp/daemon.out 2>&1
    mark "daemon-again rc=$? $(tail -1 /tmp/daemon.out)"
    finish ;;
delta:1)
    if [ "$BOOTS" = 1 ]; then apply_kexec; fi
    finish ;;
delta:2)
    # B runs release 2, committed by health above. Release 3 goes into A by
    # delta: B's chunks are read through the index kept when release 2 was
    # installed; only the rest is fetched. The harness cuts the power during
    # the first attempt; the second resumes. (First B's cold boot confirms.)
    cold_boot_if_pending
    if [ ! -e /data/delta-started ]; then
        touch /data/delta-started; sync
        mark "plan-start"
        updater apply "$URL3" --dry-run --json > /tmp/plan.out 2>&1
        mark "delta-plan rc=$? $(tail -1 /tmp/plan.out)"
        mark "apply-start delta"
        updater apply "$URL3" --json > /tmp/delta.out 2>&1
        keep "error: the delta was not cut: rc=$? $(tail -1 /tmp/delta.out)"
    else
        mark "after-cut $(updater status --json)"
        updater apply "$URL3" --json > /tmp/delta.out 2>&1
        mark "delta rc=$? $(tail -1 /tmp/delta.out)"
    fi
    finish ;;
esac
