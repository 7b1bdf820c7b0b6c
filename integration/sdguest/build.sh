#!/usr/bin/env bash
# Builds the systemd guest (the production path) for the sd-* scenarios,
# without mounts or loop devices:
#   - a minimal Debian root filesystem made with mmdebstrap (cached between
#     runs under $UPDATER_E2E_CACHE, by default ~/.cache/updater-e2e, keyed
#     on everything that goes into it), into which the project's own .deb is
#     installed with dpkg in a chroot, its units enabled by its postinst;
#   - per version (1 = factory system in slot A, 2 = the release) a
#     read-only squashfs slot image with the guest kernel and a small
#     initramfs in /boot, the modules the guest needs, its config, keyring,
#     fstab (data partition on /var/lib/updater, ESP on /efi, /var and /tmp
#     on tmpfs), systemd-networkd, the watchdog settings of
#     packaging/systemd/examples and the e2e units;
#   - the release of version 2 and a channel naming it;
#   - a pristine GPT disk: ESP (GRUB, grub.cfg, grubenv), slot A, slot B,
#     data.
# Usage: integration/sdguest/build.sh WORKDIR   (after integration/build.sh,
# which made the kernel, the keys, GRUB and the ESP's files)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$(dirname "$HERE")")
W=$(cd "${1:?usage: build.sh WORKDIR}" && pwd)
V=$REPO/target/release/updater-vendor
S=$W/sd
log() { echo "build(sd): $*" >&2; }
mkdir -p "$S"

for p in mmdebstrap squashfs-tools; do
    dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ -n "${need[*]:-}" ]; then
    log "installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# --- the project's package ------------------------------------------------
deb=$(ls "$REPO"/target/debian/updater_*.deb 2>/dev/null | head -1 || true)
if [ -z "$deb" ] || [ "$deb" -ot "$REPO/target/release/updater" ]; then
    log "building the Debian package (cargo deb)"
    (cd "$REPO" && rm -rf target/debian && cargo deb -p updater --no-build --output target/debian/ >/dev/null)
    deb=$(ls "$REPO"/target/debian/updater_*.deb | head -1)
fi

# --- the base root filesystem (cached) ------------------------------------
SUITE=bookworm
INCLUDE=systemd-sysv,udev,kmod
MMOPTS=(--variant=minbase "--include=$INCLUDE"
    "--dpkgopt=path-exclude=/usr/share/man/*" "--dpkgopt=path-exclude=/usr/share/doc/*"
    "--dpkgopt=path-include=/usr/share/doc/*/copyright" "--dpkgopt=path-exclude=/usr/share/locale/*"
    "--dpkgopt=path-exclude=/usr/share/info/*")
CACHE=${UPDATER_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/updater-e2e}
key=$(printf '%s\n' "$SUITE" "${MMOPTS[@]}" "$(mmdebstrap --version)" | sha256sum | cut -c1-16)
base=$CACHE/rootfs-$SUITE-$key.tar
if [ ! -f "$base" ]; then
    mkdir -p "$CACHE"
    log "mmdebstrap $SUITE ($INCLUDE) into $base"
    # (The name's .tar says the format to mmdebstrap.)
    mmdebstrap --quiet "${MMOPTS[@]}" "$SUITE" "$CACHE/partial.tar"
    mv "$CACHE/partial.tar" "$base"
else
    log "root filesystem from the cache: $base"
fi

KVER=$(cat "$W/kernel/version")
KROOT=$W/kernel/root

# Modules with their dependencies, as modprobe resolves them, into ROOT.
copy_modules() {
    local root=$1; shift
    mkdir -p "$root/lib/modules/$KVER"
    for m in "$@"; do
        modprobe -d "$KROOT" -S "$KVER" --show-depends "$m" 2>/dev/null | awk '/^insmod/ {print $2}' | while read -r ko; do
            rel=${ko#"$KROOT"}
            mkdir -p "$root$(dirname "$rel")"
            cp "$ko" "$root$rel"
        done
    done
    cp "$KROOT/lib/modules/$KVER"/modules.{order,builtin,builtin.modinfo} "$root/lib/modules/$KVER/" 2>/dev/null || true
    depmod -b "$root" "$KVER"
}

# --- the initramfs: mount the slot's squashfs, switch to systemd (ext4 only
# to read sd-hang-early's flag) --------------------------------------------
ir=$(mktemp -d "$S/initrd.XXXX")
mkdir -p "$ir"/{bin,proc,sys,dev,newroot,mnt}
cp /bin/busybox "$ir/bin/busybox"
cp "$HERE/init" "$ir/init"
copy_modules "$ir" virtio_pci virtio_blk squashfs ext4 crc32c_generic
find "$ir" -exec touch -h -d @1700000000 {} +
(cd "$ir" && find . | LC_ALL=C sort | cpio -o -H newc --quiet --reproducible | gzip -1 -n) > "$S/initrd.img"
rm -rf "$ir"

# --- the system: base + the package, once ----------------------------------
sys=$S/system
rm -rf "$sys" && mkdir -p "$sys"
tar -C "$sys" -xf "$base"
cp "$deb" "$sys/tmp/updater.deb"
log "installing $(basename "$deb") in the guest (dpkg -i in a chroot)"
chroot "$sys" dpkg -i /tmp/updater.deb >/dev/null 2>&1
rm -f "$sys/tmp/updater.deb"
copy_modules "$sys" virtio_net i6300esb ext4 vfat nls_cp437 nls_ascii nls_iso8859_1 nls_utf8 crc32c_generic
echo e2e > "$sys/etc/hostname"
# Read-only root: an empty machine-id makes systemd use a transient one.
: > "$sys/etc/machine-id"
cp "$HERE/fstab" "$sys/etc/fstab"
mkdir -p "$sys/efi" "$sys/etc/systemd/network" "$sys/etc/systemd/system.conf.d" "$sys/etc/modprobe.d" \
    "$sys/etc/systemd/system/updater.service.d" "$sys/usr/lib/e2e" "$sys/etc/e2e"
cp "$HERE/10-e2e.network" "$sys/etc/systemd/network/"
# The settings the agent documents for a kexec trial under systemd.
cp "$REPO/packaging/systemd/examples/50-updater-watchdog.conf" "$sys/etc/systemd/system.conf.d/"
echo "options i6300esb nowayout=1" > "$sys/etc/modprobe.d/watchdog.conf"
cp "$HERE/config.toml" "$sys/etc/updater/config.toml"
cp -rL "$W/keyring" "$sys/etc/updater/keyring"
cp "$HERE/e2e.service" "$HERE/e2e-hang.service" "$sys/etc/systemd/system/"
cp "$HERE/updater.service.d/50-e2e.conf" "$sys/etc/systemd/system/updater.service.d/"
cp "$HERE/scenario.sh" "$sys/usr/lib/e2e/scenario.sh"
chroot "$sys" systemctl enable --quiet systemd-networkd.service e2e.service e2e-hang.service
# Nothing to ask at a first boot, nothing to commit to a read-only /etc, no
# login prompt on the console the harness reads.
chroot "$sys" systemctl mask --quiet systemd-firstboot.service systemd-machine-id-commit.service \
    serial-getty@ttyS0.service getty@tty1.service
# The units the package enabled, as a device has them.
for u in updater.service updater-health.service; do
    [ -L "$sys/etc/systemd/system/multi-user.target.wants/$u" ] || { echo "build(sd): the package did not enable $u" >&2; exit 1; }
done
mkdir -p "$sys/boot"
cp "$W/kernel/vmlinuz" "$sys/boot/vmlinuz"
cp "$S/initrd.img" "$sys/boot/initrd.img"

make_slot() {
    local version=$1 dir
    dir=$S/v$version
    rm -rf "$dir" && cp -a "$sys" "$dir"
    echo "$version" > "$dir/etc/e2e/version"
    if [ "$version" -ge 2 ]; then
        cp "$HERE/health-check" "$dir/etc/updater/health.d/50-app"
    fi
    rm -f "$S/slot-v$version.sqfs"
    # Reproducible (fixed times), gzip: GRUB's squash4 reads it.
    mksquashfs "$dir" "$S/slot-v$version.sqfs" -comp gzip -noappend -quiet -no-progress \
        -mkfs-time 1700000000 -all-time 1700000000 >/dev/null
    rm -rf "$dir"
}
log "slot images v1 and v2 (squashfs)"
make_slot 1
make_slot 2
rm -rf "$sys"

# --- the release and its channel --------------------------------------------
rm -rf "$S/release"
"$V" release create --out "$S/release" --key "$W/keys/release.key" --product e2e-sd --version "2.0.0" \
    --security-version 2 --compatible e2e-qemu-x86_64 --image "rootfs=$S/slot-v2.sqfs" \
    --kernel "$W/kernel/vmlinuz" --kernel-key "$W/keys/kernel.key" --initrd "$S/initrd.img" \
    --cmdline "console=ttyS0 panic=5" >/dev/null
"$V" channel publish --out "$S/release/stable.json" --key "$W/keys/channel.key" \
    --release e2e-qemu-x86_64=manifest.json >/dev/null

# --- the disk ---------------------------------------------------------------
# GPT: p1 ESP 16 MiB at 1 MiB (the same ESP as the busybox guest's), p2 slot
# A 96 MiB, p3 slot B 96 MiB, p4 data 64 MiB.
rm -f "$S/disk.img"
truncate -s 274M "$S/disk.img"
sfdisk -q "$S/disk.img" <<'PART'
label: gpt
start=1MiB, size=16MiB, type=uefi, name=esp
start=17MiB, size=96MiB, type=linux, name=slot-a
start=113MiB, size=96MiB, type=linux, name=slot-b
start=209MiB, size=64MiB, type=linux, name=data
PART
dd if="$W/esp.img" of="$S/disk.img" bs=1M seek=1 conv=notrunc status=none
dd if="$S/slot-v1.sqfs" of="$S/disk.img" bs=1M seek=17 conv=notrunc status=none
log "done: $S/disk.img ($(du -h "$S/slot-v2.sqfs" | cut -f1) slot image), release in $S/release"
