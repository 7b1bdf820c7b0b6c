# updater: A/B slot selection for U-Boot (packaging/uboot/README.md).
# Compile: mkimage -A arm64 -T script -C none -d boot.cmd boot.scr
#
#   BOOT_ORDER    "A B": slots in order, the primary first
#   BOOT_A_LEFT   >0 bootable, 0 not (bad, or being installed)
#   BOOT_B_LEFT
#   BOOT_TRY      a slot to boot ONCE (a reboot trial, or the first cold
#                 boot of a slot committed by kexec); cleared and saved
#                 before that slot's kernel starts
# Board settings: updater_iface (e.g. "mmc"), updater_devnum (e.g. 0),
# A_PART, B_PART (partition numbers), updater_cmdline (console and common
# arguments). Interface and device number are separate variables: U-Boot
# passes "${a}:${b}" with a space inside a variable as two arguments.

test -n "${BOOT_ORDER}" || setenv BOOT_ORDER "A B"
test -n "${BOOT_A_LEFT}" || setenv BOOT_A_LEFT 1
test -n "${BOOT_B_LEFT}" || setenv BOOT_B_LEFT 0
test -n "${updater_iface}" || setenv updater_iface mmc
test -n "${updater_devnum}" || setenv updater_devnum 0
test -n "${A_PART}" || setenv A_PART 2
test -n "${B_PART}" || setenv B_PART 3

setenv slot
setenv trial
if test -n "${BOOT_TRY}"; then
    setenv slot "${BOOT_TRY}"
    setenv BOOT_TRY
    setenv trial " updater.trial=1"
    # Consume the one-shot before booting it: a reset during the trial
    # then comes back to the primary.
    saveenv
else
    for s in ${BOOT_ORDER}; do
        if test -z "${slot}"; then
            if test "${s}" = "A" && test ${BOOT_A_LEFT} -gt 0; then setenv slot A; fi
            if test "${s}" = "B" && test ${BOOT_B_LEFT} -gt 0; then setenv slot B; fi
        fi
    done
fi
test -n "${slot}" || setenv slot A

# Boot ${slot} (run as a script so that it can be tried twice; single quotes
# keep the variables for run time). When U-Boot cannot load the slot's kernel
# or initrd (broken on the disk: a release only ever booted by kexec may have
# bad boot files), fall back to the first other bootable slot of BOOT_ORDER,
# else A. A one-shot was already consumed and saved, so the next boot does
# not retry the broken slot, and `updater health` there marks it failed.
setenv updater_boot 'if test "${slot}" = "B"; then setenv updater_part ${B_PART}; else setenv updater_part ${A_PART}; fi; echo "updater: booting slot ${slot}${trial}"; setenv bootargs "${updater_cmdline} updater.slot=${slot}${trial}"; if load ${updater_iface} ${updater_devnum}:${updater_part} ${kernel_addr_r} /boot/Image && load ${updater_iface} ${updater_devnum}:${updater_part} ${ramdisk_addr_r} /boot/initrd.img; then booti ${kernel_addr_r} ${ramdisk_addr_r}:${filesize} ${fdt_addr}; fi; echo "updater: slot ${slot} cannot be loaded"'
run updater_boot
setenv failed "${slot}"
setenv slot
setenv trial
for s in ${BOOT_ORDER}; do
    if test -z "${slot}" && test "${s}" != "${failed}"; then
        if test "${s}" = "A" && test ${BOOT_A_LEFT} -gt 0; then setenv slot A; fi
        if test "${s}" = "B" && test ${BOOT_B_LEFT} -gt 0; then setenv slot B; fi
    fi
done
if test -z "${slot}" && test "${failed}" != "A"; then setenv slot A; fi
if test -n "${slot}"; then run updater_boot; fi
