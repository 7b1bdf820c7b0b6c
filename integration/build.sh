#!/usr/bin/env bash
# Builds everything the QEMU scenarios need, without mounts or loop devices:
#   - a Debian guest kernel (apt-get download + dpkg -x, never installed);
#   - per version (1 = factory system in slot A, 2 = the release, 3 = the
#     release after it, for the delta scenario) an initramfs with busybox,
#     the needed modules, the real `updater` binary from this build with its
#     shared libraries, its config, keyring and health check; the archives
#     are reproducible (sorted, fixed times and inode numbers, the version
#     file last), so that versions 2 and 3 differ only where they differ;
#   - a standalone GRUB EFI binary embedding packaging/grub/stub.cfg;
#   - Debian's qemu-x86 U-Boot ROM (apt-get download + dpkg -x) and
#     packaging/uboot/boot.cmd compiled with its mkimage into boot.scr, with
#     the env in uboot.env on the ESP (mkenvimage);
#   - releases of versions 2 and 3 made with `updater-vendor release
#     create`, signed with keys made for the run (the guest keyring trusts
#     only those), and a signed channel naming version 2; versions 2 and 3
#     carry an 8 MiB application file (/opt/app.bin) of which version 3
#     rewrote 2 MiB;
#   - a pristine GPT disk: ESP (GRUB, grub.cfg, grubenv, boot.scr,
#     uboot.env), slot A (ext4 with
#     /boot/vmlinuz and /boot/initrd.img), slot B (empty), data (ext4).
# Usage: integration/build.sh WORKDIR   (needs target/release/updater)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
W=${1:?usage: build.sh WORKDIR}
mkdir -p "$W"
W=$(cd "$W" && pwd)
U=$REPO/target/release/updater
V=$REPO/target/release/updater-vendor
mkdir -p "$W"
log() { echo "build: $*" >&2; }

[ -x "$U" ] && [ -x "$V" ] || { echo "build: $U or $V is missing; run cargo build --release --workspace" >&2; exit 1; }

# --- host packages -----------------------------------------------------
need=()
for p in qemu-system-x86 ovmf grub-efi-amd64-bin grub-common mtools dosfstools e2fsprogs fdisk busybox-static kmod cpio sbsigntool openssl; do
    dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
    # Should anything pull in kexec-tools, it must never set this host up to
    # kexec itself.
    echo "kexec-tools kexec-tools/load_kexec boolean false" | debconf-set-selections 2>/dev/null || true
    log "installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# --- guest kernel --------------------------------------------------------
if [ ! -f "$W/kernel/ok" ]; then
    rm -rf "$W/kernel" && mkdir -p "$W/kernel/deb"
    pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
    log "downloading $pkg"
    (cd "$W/kernel/deb" && apt-get download "$pkg" >/dev/null)
    dpkg -x "$W"/kernel/deb/*.deb "$W/kernel/root"
    kver=${pkg#linux-image-}
    echo "$kver" > "$W/kernel/version"
    cp "$W/kernel/root/boot/vmlinuz-$kver" "$W/kernel/vmlinuz"
    depmod -b "$W/kernel/root" "$kver"
    touch "$W/kernel/ok"
fi
KVER=$(cat "$W/kernel/version")

# --- keys and keyring (made for this run; the guest trusts only these) ---
if [ ! -f "$W/keys/ok" ] || [ ! -f "$W/keys/channel.pub" ]; then
    rm -rf "$W/keys" "$W/keyring"
    "$V" keygen --out "$W/keys" --name release >/dev/null
    "$V" keygen --out "$W/keys" --name kernel >/dev/null
    "$V" keygen --out "$W/keys" --name channel >/dev/null
    "$V" keyring init "$W/keyring" --manifest-key "$W/keys/release.pub" --kernel-key "$W/keys/kernel.pub" \
        --channel-key "$W/keys/channel.pub" >/dev/null
    touch "$W/keys/ok"
fi

# --- efibootmgr for the guest (reads back what the agent wrote) -------------
# Unpacked, never installed; the initramfs gets the binary and its
# libraries (the EFI scenarios run `efibootmgr -v` in the guest).
if [ ! -f "$W/efibootmgr/ok" ]; then
    rm -rf "$W/efibootmgr" && mkdir -p "$W/efibootmgr/deb"
    log "downloading efibootmgr"
    (cd "$W/efibootmgr/deb" && apt-get download efibootmgr libefiboot1 libefivar1 libpopt0 >/dev/null 2>&1)
    for d in "$W"/efibootmgr/deb/*.deb; do dpkg -x "$d" "$W/efibootmgr/root"; done
    touch "$W/efibootmgr/ok"
fi

# --- initramfs per version -------------------------------------------------
MODS="virtio_pci virtio_blk virtio_net ext4 vfat nls_cp437 nls_ascii nls_iso8859_1 nls_utf8 crc32c_generic i6300esb efivarfs"
make_initrd() {
    local version=$1 out=$2 root
    root=$(mktemp -d "$W/initrd.XXXX")
    mkdir -p "$root"/{bin,sbin,usr/bin,etc/updater/health.d,etc/e2e,lib/modules/$KVER,proc,sys,dev,tmp,data,esp}
    cp /bin/busybox "$root/bin/busybox"
    cp "$HERE/guest/init" "$root/init"
    cp "$HERE/guest/scenario.sh" "$root/etc/e2e/scenario.sh"
    echo "$version" > "$root/etc/e2e/version"
    cp "$HERE/guest/config.toml" "$root/etc/updater/config.toml"
    cp "$HERE/guest/uboot.toml" "$root/etc/e2e/uboot.toml"
    cp "$HERE/guest/sdboot.toml" "$root/etc/e2e/sdboot.toml"
    cp "$HERE/guest/efi.toml" "$root/etc/e2e/efi.toml"
    cp "$HERE/guest/sdboot-uki.toml" "$root/etc/e2e/sdboot-uki.toml"
    cp -r "$W/keyring" "$root/etc/updater/keyring"
    if [ "$version" -ge 2 ]; then cp "$HERE/guest/health-check" "$root/etc/updater/health.d/50-app"; fi
    # The agent and the shared libraries it links.
    cp "$U" "$root/usr/bin/updater"
    for lib in $(ldd "$U" | awk '/=> \// {print $3} /^\t\/lib/ {print $1}'); do
        mkdir -p "$root$(dirname "$lib")"
        cp -L "$lib" "$root$lib"
    done
    # efibootmgr and the libraries it links (from the unpacked packages).
    cp "$W/efibootmgr/root/bin/efibootmgr" "$root/usr/bin/efibootmgr"
    for lib in $(LD_LIBRARY_PATH="$W/efibootmgr/root/usr/lib/x86_64-linux-gnu" ldd "$W/efibootmgr/root/bin/efibootmgr" \
            | awk '/=> \// {print $3}'); do
        dest=${lib#"$W/efibootmgr/root"}
        mkdir -p "$root$(dirname "$dest")"
        cp -L "$lib" "$root$dest"
    done
    # Modules with their dependencies, as modprobe resolves them.
    for m in $MODS; do
        modprobe -d "$W/kernel/root" -S "$KVER" --show-depends "$m" 2>/dev/null | awk '/^insmod/ {print $2}' | while read -r ko; do
            rel=${ko#"$W/kernel/root"}
            mkdir -p "$root$(dirname "$rel")"
            cp "$ko" "$root$rel"
        done
    done
    cp "$W/kernel/root/lib/modules/$KVER"/modules.{order,builtin,builtin.modinfo} "$root/lib/modules/$KVER/" 2>/dev/null || true
    depmod -b "$root" "$KVER"
    # Reproducible: fixed times, renumbered inodes, sorted, the version file
    # last; gzip without a name or time stamp.
    find "$root" -exec touch -h -d @1700000000 {} +
    (cd "$root" && { find . ! -path ./etc/e2e/version | LC_ALL=C sort; echo ./etc/e2e/version; } \
        | cpio -o -H newc --quiet --reproducible | gzip -1 -n) > "$out"
    rm -rf "$root"
}
log "initramfs v1, v2 and v3"
make_initrd 1 "$W/initrd-1.img"
make_initrd 2 "$W/initrd-2.img"
make_initrd 3 "$W/initrd-3.img"

# The application file of versions 2 and 3 (deterministic; version 3
# rewrote two 1 MiB regions of it).
python3 - "$W" <<'PY'
import random, sys
w = sys.argv[1]
rng = random.Random(2)
app = bytearray(b"".join(rng.randbytes(1 << 20) for _ in range(8)))
open(f"{w}/app-2.bin", "wb").write(app)
for at in (1 << 20, 5 << 20):
    app[at:at + (1 << 20)] = rng.randbytes(1 << 20)
open(f"{w}/app-3.bin", "wb").write(app)
PY

# --- slot filesystems ------------------------------------------------------
make_slotfs() {
    local version=$1 out=$2 dir
    dir=$(mktemp -d "$W/slot.XXXX")
    mkdir -p "$dir/boot" "$dir/opt"
    cp "$W/kernel/vmlinuz" "$dir/boot/vmlinuz"
    cp "$W/initrd-$version.img" "$dir/boot/initrd.img"
    if [ "$version" -ge 2 ]; then cp "$W/app-$version.bin" "$dir/opt/app.bin"; fi
    echo "$version" > "$dir/version"
    find "$dir" -exec touch -h -d @1700000000 {} +
    rm -f "$out"
    # Reproducible too (fixed time, UUID and hash seed), so that a new
    # version's image differs from the last one's only where its files do.
    E2FSPROGS_FAKE_TIME=1700000000 mkfs.ext4 -q -F -L "slot-v$version" \
        -U "00000000-0000-4000-8000-00000000000$version" \
        -E hash_seed=6e2f5a3c-1b4d-4e8f-9a7b-0c1d2e3f4a5b,root_owner=0:0 -d "$dir" "$out" 48M
    rm -rf "$dir"
}
make_slotfs 1 "$W/slot-v1.ext4"
make_slotfs 2 "$W/slot-v2.ext4"
make_slotfs 3 "$W/slot-v3.ext4"

# --- the releases (versions 2 and 3) -------------------------------------
for v in 2 3; do
    out=$W/release; [ "$v" = 3 ] && out=$W/release3
    rm -rf "$out"
    "$V" release create --out "$out" --key "$W/keys/release.key" --product e2e --version "$v.0.0" \
        --security-version "$v" --compatible e2e-qemu-x86_64 --image "rootfs=$W/slot-v$v.ext4" \
        --kernel "$W/kernel/vmlinuz" --kernel-key "$W/keys/kernel.key" --initrd "$W/initrd-$v.img" \
        --cmdline "console=ttyS0 panic=5" >/dev/null
done
# The channel the guest's daemon follows (the daemon scenario), served with
# the release.
"$V" channel publish --out "$W/release/stable.json" --key "$W/keys/channel.key" \
    --release e2e-qemu-x86_64=manifest.json >/dev/null

# --- GRUB ------------------------------------------------------------------
grub-mkstandalone -O x86_64-efi -o "$W/BOOTX64.EFI" \
    --modules="part_gpt fat ext2 linux loadenv test echo search search_fs_file configfile normal gzio squash4" \
    --locales= --themes= --fonts= "boot/grub/grub.cfg=$REPO/packaging/grub/stub.cfg"
# The board's settings go in front of the packaged grub.cfg.
{
    echo 'set updater_cmdline="console=ttyS0 panic=5"'
    echo 'set timeout=0'
    cat "$REPO/packaging/grub/grub.cfg"
} > "$W/grub.cfg"
rm -f "$W/grubenv"
grub-editenv "$W/grubenv" create
grub-editenv "$W/grubenv" set ORDER="A B" A_OK=1 B_OK=0 A_TRY=0 B_TRY=0

# --- U-Boot (the U-Boot scenarios boot the same disk with -bios) -----------
# Debian's qemu-x86 (32-bit) U-Boot ROM runs boot.scr from the first FAT
# partition and boots the 64-bit bzImage with zboot (docs/e2e.md). Unpacked,
# never installed, like the kernel.
if [ ! -f "$W/uboot/ok" ]; then
    rm -rf "$W/uboot" && mkdir -p "$W/uboot/deb"
    log "downloading u-boot-qemu and u-boot-tools"
    (cd "$W/uboot/deb" && apt-get download u-boot-qemu u-boot-tools >/dev/null 2>&1)
    for d in "$W"/uboot/deb/*.deb; do dpkg -x "$d" "$W/uboot/root"; done
    touch "$W/uboot/ok"
fi
# The board's settings go in front of the packaged boot.cmd; the env lives in
# uboot.env on the ESP (this ROM has no env storage of its own).
{
    echo 'setenv updater_iface virtio'
    echo 'setenv updater_devnum 0'
    echo 'setenv updater_cmdline "console=ttyS0 panic=5"'
    echo 'setenv updater_kernel /boot/vmlinuz'
    echo 'setenv updater_envfile uboot.env'
    cat "$REPO/packaging/uboot/boot.cmd"
} > "$W/boot.cmd"
"$W/uboot/root/usr/bin/mkimage" -A x86 -T script -C none -d "$W/boot.cmd" "$W/boot.scr" >/dev/null
printf 'BOOT_ORDER=A B\nBOOT_A_LEFT=1\nBOOT_B_LEFT=0\n' > "$W/uboot-env.txt"
"$W/uboot/root/usr/bin/mkenvimage" -s 0x4000 -o "$W/uboot.env" "$W/uboot-env.txt"

# --- the disk ------------------------------------------------------------
# GPT: p1 ESP 16 MiB at 1 MiB, p2 slot A 64 MiB, p3 slot B 64 MiB, p4 data
# 48 MiB (the state, and both slots' kernel and initrd files).
rm -f "$W/esp.img" "$W/data.img" "$W/disk.img"
mkfs.vfat -C "$W/esp.img" 16384 >/dev/null
mmd -i "$W/esp.img" ::/EFI ::/EFI/BOOT ::/grub
mcopy -i "$W/esp.img" "$W/BOOTX64.EFI" ::/EFI/BOOT/BOOTX64.EFI
mcopy -i "$W/esp.img" "$W/grub.cfg" ::/grub/grub.cfg
mcopy -i "$W/esp.img" "$W/grubenv" ::/grub/grubenv
mcopy -i "$W/esp.img" "$W/boot.scr" ::/boot.scr
mcopy -i "$W/esp.img" "$W/uboot.env" ::/uboot.env
ddir=$(mktemp -d "$W/data.XXXX")
mkdir -p "$ddir/state" "$ddir/slots/A" "$ddir/slots/B"
mkfs.ext4 -q -F -d "$ddir" "$W/data.img" 48M
rm -rf "$ddir"
truncate -s 196M "$W/disk.img"
sfdisk -q "$W/disk.img" <<'PART'
label: gpt
start=1MiB, size=16MiB, type=uefi, name=esp
start=17MiB, size=64MiB, type=linux, name=slot-a
start=81MiB, size=64MiB, type=linux, name=slot-b
start=145MiB, size=48MiB, type=linux, name=data
PART
dd if="$W/esp.img" of="$W/disk.img" bs=1M seek=1 conv=notrunc status=none
dd if="$W/slot-v1.ext4" of="$W/disk.img" bs=1M seek=17 conv=notrunc status=none
dd if="$W/data.img" of="$W/disk.img" bs=1M seek=145 conv=notrunc status=none
log "done: $W/disk.img, releases in $W/release and $W/release3"

# --- the systemd-boot disk (the sdboot-* scenarios) -------------------------
# The same system and releases, booted by systemd-boot 252 (Debian's
# systemd-boot-efi, unpacked, never installed) from a larger ESP that holds
# each slot's kernel and initrd (sd-boot cannot read ext4), under OVMF with a
# writable VARS copy per scenario (integration/e2e.py). Entries:
# updater-A.conf (the factory slot, loader.conf's default until the first
# commit writes LoaderEntryDefault) and updater-B.conf.disabled.
# GPT: p1 ESP 64 MiB at 1 MiB, p2 slot A, p3 slot B (64 MiB each), p4 data.
S=$W/sdboot
if [ ! -f "$S/sd-boot/ok" ] || [ ! -x "$S/sd-boot/root/usr/bin/bootctl" ]; then
    rm -rf "$S/sd-boot" && mkdir -p "$S/sd-boot/deb"
    log "downloading systemd-boot-efi and systemd-boot (bootctl)"
    (cd "$S/sd-boot/deb" && apt-get download systemd-boot-efi systemd-boot >/dev/null 2>&1)
    for d in "$S"/sd-boot/deb/*.deb; do dpkg -x "$d" "$S/sd-boot/root"; done
    touch "$S/sd-boot/ok"
fi
# bootctl for the guests, with the host's libraries it links (bookworm's,
# as the agent's), packed in data-tools/: the harness puts it on each
# scenario's data partition, and the guest unpacks it into RAM to read back
# what the agent wrote (bootctl list). 16 MiB of libraries would double
# every initramfs.
bt=$(mktemp -d "$S/bootctl.XXXX")
mkdir -p "$bt/bootctl/lib"
cp "$S/sd-boot/root/usr/bin/bootctl" "$bt/bootctl/bootctl"
for lib in $(ldd "$S/sd-boot/root/usr/bin/bootctl" | awk '/=> \// {print $3}'); do cp -L "$lib" "$bt/bootctl/lib/"; done
rm -rf "$S/data-tools" && mkdir -p "$S/data-tools"
tar -C "$bt" -czf "$S/data-tools/bootctl.tar.gz" bootctl
rm -rf "$bt"
esp=$S/esp.img
rm -f "$esp" "$S/disk.img"
mkfs.vfat -C "$esp" 65536 >/dev/null
mmd -i "$esp" ::/EFI ::/EFI/BOOT ::/loader ::/loader/entries ::/updater ::/updater/A ::/updater/B
mcopy -i "$esp" "$S/sd-boot/root/usr/lib/systemd/boot/efi/systemd-bootx64.efi" ::/EFI/BOOT/BOOTX64.EFI
printf 'timeout 0\ndefault updater-A.conf\n' > "$S/loader.conf"
mcopy -i "$esp" "$S/loader.conf" ::/loader/loader.conf
for g in A B; do
    printf 'title Slot %s\nlinux /updater/%s/vmlinuz\ninitrd /updater/%s/initrd.img\noptions console=ttyS0 panic=5 updater.slot=%s\n' \
        "$g" "$g" "$g" "$g" > "$S/entry-$g.conf"
done
mcopy -i "$esp" "$S/entry-A.conf" ::/loader/entries/updater-A.conf
mcopy -i "$esp" "$S/entry-B.conf" ::/loader/entries/updater-B.conf.disabled
mcopy -i "$esp" "$W/kernel/vmlinuz" ::/updater/A/vmlinuz
mcopy -i "$esp" "$W/initrd-1.img" ::/updater/A/initrd.img
truncate -s 244M "$S/disk.img"
sfdisk -q "$S/disk.img" <<'PART'
label: gpt
start=1MiB, size=64MiB, type=uefi, name=esp
start=65MiB, size=64MiB, type=linux, name=slot-a
start=129MiB, size=64MiB, type=linux, name=slot-b
start=193MiB, size=48MiB, type=linux, name=data
PART
dd if="$esp" of="$S/disk.img" bs=1M seek=1 conv=notrunc status=none
dd if="$W/slot-v1.ext4" of="$S/disk.img" bs=1M seek=65 conv=notrunc status=none
dd if="$W/data.img" of="$S/disk.img" bs=1M seek=193 conv=notrunc status=none
rm -f "$esp"
rm -rf "$S/release" && cp -r "$W/release" "$S/release"
# Unified Kernel Images of versions 1 and 2 (the sdboot-uki scenario), made
# as ukify would with objcopy and the 252 stub (UEFI-NOTES: the stub ends at
# 0x19300). Their command line names no slot: one UKI serves either slot
# (under Secure Boot sd-stub ignores the loader's options), and the slot is
# the Type #2 entry sd-boot selected. A release carries version 2 instead
# of a kernel and an initrd.
printf 'console=ttyS0 panic=5' > "$S/cmdline"
for v in 1 2; do
    printf 'ID=e2e\nVERSION_ID=%s\n' "$v" > "$S/osrel"
    objcopy \
        --add-section .osrel="$S/osrel" --change-section-vma .osrel=0x20000 \
        --add-section .cmdline="$S/cmdline" --change-section-vma .cmdline=0x30000 \
        --add-section .linux="$W/kernel/vmlinuz" --change-section-vma .linux=0x2000000 \
        --add-section .initrd="$W/initrd-$v.img" --change-section-vma .initrd=0x3000000 \
        "$S/sd-boot/root/usr/lib/systemd/boot/efi/linuxx64.efi.stub" "$S/uki-$v.efi"
done
rm -rf "$S/release-uki"
"$V" release create --out "$S/release-uki" --key "$W/keys/release.key" --product e2e --version 2.0.0 \
    --security-version 2 --compatible e2e-qemu-x86_64 --image "rootfs=$W/slot-v2.ext4" \
    --uki "$S/uki-2.efi" --kernel-key "$W/keys/kernel.key" >/dev/null
log "done: $S/disk.img (systemd-boot), a UKI release in $S/release-uki"

# --- the Type #2 disk (the sdboot-uki scenario) -------------------------------
# The systemd-boot disk whose slots boot as Type #2 entries: each slot's UKI
# is its own entry, EFI/Linux/updater-A.efi (version 1, loader.conf's default
# until the first commit) and updater-B.efi.disabled (parked: empty, as a
# factory leaves the slot), and no Type #1 entry.
K=$W/uki
rm -rf "$K" && mkdir -p "$K"
esp=$K/esp.img
mkfs.vfat -C "$esp" 65536 >/dev/null
mmd -i "$esp" ::/EFI ::/EFI/BOOT ::/EFI/Linux ::/loader ::/loader/entries
mcopy -i "$esp" "$S/sd-boot/root/usr/lib/systemd/boot/efi/systemd-bootx64.efi" ::/EFI/BOOT/BOOTX64.EFI
printf 'timeout 0\ndefault updater-A.efi\n' > "$K/loader.conf"
mcopy -i "$esp" "$K/loader.conf" ::/loader/loader.conf
mcopy -i "$esp" "$S/uki-1.efi" ::/EFI/Linux/updater-A.efi
: > "$K/parked"
mcopy -i "$esp" "$K/parked" ::/EFI/Linux/updater-B.efi.disabled
cp "$S/disk.img" "$K/disk.img"
dd if="$esp" of="$K/disk.img" bs=1M seek=1 conv=notrunc status=none
rm -f "$esp"
cp -r "$S/release-uki" "$K/release-uki"
cp -r "$S/release" "$K/release"
cp -r "$S/data-tools" "$K/data-tools"
log "done: $K/disk.img (systemd-boot, Type #2 entries)"

# --- the Secure Boot disk (the sdboot-sb-* scenarios) -------------------------
# The systemd-boot disk again, for OVMF's Secure Boot firmware with Debian's
# snakeoil keys enrolled (OVMF_VARS_4M.snakeoil.fd: PK, KEK and db from
# PkKek-1-snakeoil.pem): systemd-boot and slot A's kernel signed with sbsign
# by the snakeoil key (the kernel's Debian signature removed first). The
# guest kernel comes up locked down and loads the snakeoil certificate from
# db into its platform keyring, so kexec_file_load accepts exactly the
# kernels that key signed. Two releases of version 2: one whose kernel the
# snakeoil key signed (sb/release), one whose kernel carries no Authenticode
# signature but the vendor's valid ed25519 kernel signature
# (sb/release-unsigned).
B=$W/sb
rm -rf "$B" && mkdir -p "$B"
openssl rsa -in /usr/share/ovmf/PkKek-1-snakeoil.key -passin pass:snakeoil -out "$B/snakeoil.key" 2>/dev/null
cp /usr/share/ovmf/PkKek-1-snakeoil.pem "$B/snakeoil.pem"
cp "$W/kernel/vmlinuz" "$B/vmlinuz.unsigned"
sbattach --remove "$B/vmlinuz.unsigned" >/dev/null 2>&1 || true
sbsign --key "$B/snakeoil.key" --cert "$B/snakeoil.pem" --output "$B/vmlinuz.signed" "$B/vmlinuz.unsigned" >/dev/null 2>&1
sbsign --key "$B/snakeoil.key" --cert "$B/snakeoil.pem" --output "$B/BOOTX64.EFI" \
    "$S/sd-boot/root/usr/lib/systemd/boot/efi/systemd-bootx64.efi" >/dev/null 2>&1
esp=$B/esp.img
mkfs.vfat -C "$esp" 65536 >/dev/null
mmd -i "$esp" ::/EFI ::/EFI/BOOT ::/loader ::/loader/entries ::/updater ::/updater/A ::/updater/B
mcopy -i "$esp" "$B/BOOTX64.EFI" ::/EFI/BOOT/BOOTX64.EFI
mcopy -i "$esp" "$S/loader.conf" ::/loader/loader.conf
mcopy -i "$esp" "$S/entry-A.conf" ::/loader/entries/updater-A.conf
mcopy -i "$esp" "$S/entry-B.conf" ::/loader/entries/updater-B.conf.disabled
mcopy -i "$esp" "$B/vmlinuz.signed" ::/updater/A/vmlinuz
mcopy -i "$esp" "$W/initrd-1.img" ::/updater/A/initrd.img
cp "$S/disk.img" "$B/disk.img"
cp -r "$S/data-tools" "$B/data-tools"
dd if="$esp" of="$B/disk.img" bs=1M seek=1 conv=notrunc status=none
rm -f "$esp"
for kind in signed unsigned; do
    out=$B/release; [ "$kind" = unsigned ] && out=$B/release-unsigned
    "$V" release create --out "$out" --key "$W/keys/release.key" --product e2e --version 2.0.0 \
        --security-version 2 --compatible e2e-qemu-x86_64 --image "rootfs=$W/slot-v2.ext4" \
        --kernel "$B/vmlinuz.$kind" --kernel-key "$W/keys/kernel.key" --initrd "$W/initrd-2.img" \
        --cmdline "console=ttyS0 panic=5" >/dev/null
done
log "done: $B/disk.img (Secure Boot)"

# --- the systemd guest (the sd-* scenarios) ----------------------------------
"$HERE/sdguest/build.sh" "$W"
