# updater: A/B slot selection for U-Boot (packaging/uboot/README.md).
# Compile: mkimage -A arm64 -T script -C none -d boot.cmd boot.scr
#          (-A x86 on x86; the script itself is the same)
#
#   BOOT_ORDER    "A B": slots in order, the primary first
#   BOOT_A_LEFT   >0 bootable, 0 not (bad, or being installed)
#   BOOT_B_LEFT
#   BOOT_TRY      a slot to boot ONCE (a reboot trial, or the first cold
#                 boot of a slot committed by kexec); cleared and saved
#                 before that slot's kernel starts
#
# Board settings (in the board's default env, or prepended to this file):
#   updater_iface, updater_devnum   where the slots are (e.g. "mmc" and 0).
#                 Separate variables: U-Boot passes "${a}:${b}" with a space
#                 inside a variable as two arguments.
#   A_PART, B_PART                  the slots' partition numbers
#   updater_cmdline                 console and common kernel arguments
#   updater_kernel                  the kernel in a slot (/boot/Image;
#                                   /boot/vmlinuz for an x86 bzImage)
#   updater_envfile                 when set, the variables above live in
#                 this file on partition updater_envpart of the same device
#                 (a FAT boot partition, as Raspberry Pi boards keep
#                 uboot.env), updater_envsize bytes with its CRC (as
#                 fw_env.config says: "FILE 0x0 SIZE"); unset, they live in
#                 U-Boot's own environment (saveenv). The file holds the
#                 updater's four variables only.

test -n "${updater_iface}" || setenv updater_iface mmc
test -n "${updater_devnum}" || setenv updater_devnum 0
test -n "${A_PART}" || setenv A_PART 2
test -n "${B_PART}" || setenv B_PART 3
test -n "${updater_kernel}" || setenv updater_kernel /boot/Image
test -n "${updater_envpart}" || setenv updater_envpart 1
test -n "${updater_envsize}" || setenv updater_envsize 0x4000

if test -n "${updater_envfile}"; then
    if load ${updater_iface} ${updater_devnum}:${updater_envpart} ${kernel_addr_r} ${updater_envfile}; then
        env import -c ${kernel_addr_r} ${filesize} BOOT_ORDER BOOT_A_LEFT BOOT_B_LEFT BOOT_TRY
    else
        echo "updater: cannot read ${updater_envfile}; booting the defaults"
    fi
fi
test -n "${BOOT_ORDER}" || setenv BOOT_ORDER "A B"
test -n "${BOOT_A_LEFT}" || setenv BOOT_A_LEFT 1
test -n "${BOOT_B_LEFT}" || setenv BOOT_B_LEFT 0

# Persist the variables (single quotes: expanded when run).
setenv updater_save 'if test -n "${updater_envfile}"; then env export -c -s ${updater_envsize} ${kernel_addr_r} BOOT_ORDER BOOT_A_LEFT BOOT_B_LEFT && fatwrite ${updater_iface} ${updater_devnum}:${updater_envpart} ${kernel_addr_r} ${updater_envfile} ${updater_envsize}; else saveenv; fi'

setenv slot
setenv trial
if test -n "${BOOT_TRY}"; then
    setenv slot "${BOOT_TRY}"
    setenv BOOT_TRY
    setenv trial " updater.trial=1"
    # Consume the one-shot before booting it: a reset during the trial
    # then comes back to the primary.
    run updater_save
else
    for s in ${BOOT_ORDER}; do
        if test -z "${slot}"; then
            if test "${s}" = "A" && test ${BOOT_A_LEFT} -gt 0; then setenv slot A; fi
            if test "${s}" = "B" && test ${BOOT_B_LEFT} -gt 0; then setenv slot B; fi
        fi
    done
fi
test -n "${slot}" || setenv slot A

# Boot ${slot} (a script, so that it can be tried twice). When U-Boot cannot
# load the slot's kernel or initrd (broken on the disk: a release only ever
# booted by kexec may have bad boot files), fall back to the first other
# bootable slot of BOOT_ORDER, else A. A one-shot was already consumed and
# saved, so the next boot does not retry the broken slot, and `updater
# health` there marks it failed. zboot takes an x86 bzImage, booti an arm64
# Image.
setenv updater_boot 'if test "${slot}" = "B"; then setenv updater_part ${B_PART}; else setenv updater_part ${A_PART}; fi; echo "updater: booting slot ${slot}${trial}"; setenv bootargs "${updater_cmdline} updater.slot=${slot}${trial}"; if load ${updater_iface} ${updater_devnum}:${updater_part} ${kernel_addr_r} ${updater_kernel}; then setenv updater_ksize ${filesize}; if load ${updater_iface} ${updater_devnum}:${updater_part} ${ramdisk_addr_r} /boot/initrd.img; then if test "${arch}" = "x86"; then zboot ${kernel_addr_r} ${updater_ksize} ${ramdisk_addr_r} ${filesize}; else booti ${kernel_addr_r} ${ramdisk_addr_r}:${filesize} ${fdt_addr}; fi; fi; fi; echo "updater: slot ${slot} cannot be loaded"'
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
