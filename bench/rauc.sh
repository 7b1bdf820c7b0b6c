#!/usr/bin/env bash
# bench/rauc.sh — measure RAUC installing a raw image into a FILE-backed slot.
#
# Usage: bench/rauc.sh IMAGE WORKDIR
#
#   IMAGE    raw image file (e.g. 512 MiB) to install into the inactive slot
#   WORKDIR  scratch folder; everything (CA, config, slots, bundle, bus socket,
#            logs, mount point) is created inside it
#
# What is measured (bundle creation is NOT part of it):
#   wall_s        wall-clock time of the `rauc install` client (GNU time -v),
#                 i.e. request -> bundle verify/mount -> write -> "Completed"
#   cpu_s         CPU the install cost: the `rauc service` process's
#                 utime+stime delta over the install, plus the CPU of the
#                 helpers it spawned and reaped (cutime+cstime, e.g. mount,
#                 the bootloader backend script), plus the client's user+sys
#   peak_rss_kib  VmHWM of the `rauc service` process (read just before it is
#                 stopped); it is the process that does the work.
#                 NOTE: RAUC 1.8 verifies a plain bundle's detached CMS
#                 signature over an mmap of the WHOLE bundle
#                 (g_mapped_file_new_from_fd in cms_verify_fd), so these
#                 file-backed pages count in RSS: expect roughly
#                 bundle size + ~15 MiB (page cache, not heap).
#   bytes         size of IMAGE (= bytes written into the slot)
#
# Final stdout line (everything else goes to stderr):
#   RAUC_RESULT wall_s=<float> cpu_s=<float> peak_rss_kib=<int> bytes=<int>
#
# Nothing here touches real block devices, /boot or bootloader environments:
# the slots are regular files and the "bootloader" is a shell script that
# keeps its state in WORKDIR. It needs root (RAUC loop-mounts the bundle).
set -euo pipefail

log() { printf 'rauc.sh: %s\n' "$*" >&2; }
die() { printf 'rauc.sh: ERROR: %s\n' "$*" >&2; exit 1; }

[ $# -eq 2 ] || { echo "usage: $0 IMAGE WORKDIR" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || die "must run as root (RAUC loop-mounts the bundle)"
[ -f "$1" ] || die "IMAGE '$1' is not a regular file"

IMAGE=$(realpath -- "$1")
mkdir -p -- "$2"
W=$(realpath -- "$2")
BYTES=$(stat -c %s -- "$IMAGE")
[ "$BYTES" -gt 0 ] || die "IMAGE is empty"

# ---------------------------------------------------------------------------
# 1. Dependencies (idempotent; apt-get update only when something is missing)
# ---------------------------------------------------------------------------
declare -A PKG_FOR=(
    [rauc]=rauc
    [mksquashfs]=squashfs-tools  # `rauc bundle` shells out to mksquashfs
    [dbus-daemon]=dbus
    [dbus-send]=dbus             # dbus-bin, pulled in by dbus
    [openssl]=openssl
)
missing=()
for cmd in "${!PKG_FOR[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("${PKG_FOR[$cmd]}")
done
[ -x /usr/bin/time ] || missing+=(time)   # GNU time, not the shell keyword
if [ ${#missing[@]} -gt 0 ]; then
    # de-duplicate
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    log "installing: ${missing[*]}"
    apt-get update -qq >&2 || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2 \
        || die "apt-get install ${missing[*]} failed"
fi
RAUC_VERSION=$(rauc --version 2>/dev/null | awk '{print $2}')
log "rauc version: ${RAUC_VERSION:-unknown}"

# ---------------------------------------------------------------------------
# Cleanup: kill exactly the processes we started (by PID), undo our mount.
# ---------------------------------------------------------------------------
SERVICE_PID=""
DBUS_PID=""
SOCKDIR_TMP=""
MNT="$W/mnt"
cleanup() {
    local rc=$?
    if [ -n "$SERVICE_PID" ] && kill -0 "$SERVICE_PID" 2>/dev/null; then
        kill -TERM "$SERVICE_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$SERVICE_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SERVICE_PID" 2>/dev/null || true
    fi
    [ -n "$SERVICE_PID" ] && wait "$SERVICE_PID" 2>/dev/null || true
    if [ -n "$DBUS_PID" ] && kill -0 "$DBUS_PID" 2>/dev/null; then
        kill -TERM "$DBUS_PID" 2>/dev/null || true
    fi
    [ -n "$DBUS_PID" ] && wait "$DBUS_PID" 2>/dev/null || true
    # If RAUC died mid-install its bundle mount may be left behind; it only
    # ever lives under our private mount prefix. (Its loop device has
    # autoclear set, so it goes away with the mount.)
    if mountpoint -q "$MNT/bundle" 2>/dev/null; then
        umount "$MNT/bundle" 2>/dev/null || umount -l "$MNT/bundle" 2>/dev/null || true
    fi
    [ -n "$SOCKDIR_TMP" ] && rm -rf -- "$SOCKDIR_TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------
# 2. Throwaway PKI. RAUC refuses unsigned bundles and verifies the CMS
#    signature against the keyring in system.conf, so build a tiny CA and a
#    signing cert issued by it. The leaf has no extendedKeyUsage, so it passes
#    whatever certificate purpose RAUC checks by default.
# ---------------------------------------------------------------------------
PKI="$W/pki"
mkdir -p "$PKI"
if [ ! -s "$PKI/ca.cert.pem" ] || [ ! -s "$PKI/signing.cert.pem" ] || [ ! -s "$PKI/signing.key.pem" ]; then
    log "creating test CA and signing cert in $PKI"
    # One small config serves both `req` (needs a [req] section) and the
    # extension sections; -subj supplies the names.
    cat > "$PKI/openssl.cnf" <<'EOF'
[req]
distinguished_name = dn
[dn]
[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[leaf_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
    openssl req -x509 -new -newkey rsa:2048 -nodes -days 3650 \
        -config "$PKI/openssl.cnf" -extensions ca_ext \
        -subj "/O=updater-bench/CN=updater-bench test CA" \
        -keyout "$PKI/ca.key.pem" -out "$PKI/ca.cert.pem" >/dev/null 2>&1 \
        || die "openssl: creating CA failed"
    openssl req -new -newkey rsa:2048 -nodes \
        -config "$PKI/openssl.cnf" -subj "/O=updater-bench/CN=updater-bench signing" \
        -keyout "$PKI/signing.key.pem" -out "$PKI/signing.csr.pem" >/dev/null 2>&1 \
        || die "openssl: creating signing CSR failed"
    openssl x509 -req -in "$PKI/signing.csr.pem" -days 3650 \
        -CA "$PKI/ca.cert.pem" -CAkey "$PKI/ca.key.pem" -CAcreateserial \
        -extfile "$PKI/openssl.cnf" -extensions leaf_ext \
        -out "$PKI/signing.cert.pem" >/dev/null 2>&1 \
        || die "openssl: signing the leaf cert failed"
fi
openssl verify -CAfile "$PKI/ca.cert.pem" "$PKI/signing.cert.pem" >/dev/null \
    || die "test signing cert does not verify against test CA"

# ---------------------------------------------------------------------------
# 3. Fake "bootloader": RAUC's custom backend. RAUC runs it as
#      <script> get-primary              -> print bootname of primary slot
#      <script> set-primary <bootname>
#      <script> get-state <bootname>     -> print "good" or "bad"
#      <script> set-state <bootname> good|bad
#      <script> get-current              -> print booted bootname (RAUC >= 1.10)
#    State lives in plain files in WORKDIR/bootstate.
# ---------------------------------------------------------------------------
BOOTSTATE="$W/bootstate"
mkdir -p "$BOOTSTATE"
echo A > "$BOOTSTATE/primary"
echo A > "$BOOTSTATE/current"
echo good > "$BOOTSTATE/state.A"
echo good > "$BOOTSTATE/state.B"
BACKEND="$W/bootloader-backend.sh"
cat > "$BACKEND" <<EOF
#!/bin/sh
# RAUC custom bootloader backend for the benchmark: state in files only.
set -eu
D='$BOOTSTATE'
case "\${1:-}" in
    get-primary) cat "\$D/primary" ;;
    set-primary) echo "\$2" > "\$D/primary" ;;
    get-state)   cat "\$D/state.\$2" ;;
    set-state)   echo "\$3" > "\$D/state.\$2" ;;
    get-current) cat "\$D/current" ;;
    *) echo "unknown command: \$*" >&2; exit 1 ;;
esac
EOF
chmod 0755 "$BACKEND"

# ---------------------------------------------------------------------------
# 4. Slots: two regular files the size of the image. fallocate (not a sparse
#    truncate) so the install writes into already-allocated blocks, like a
#    partition. rootfs.0 is the booted slot, so RAUC must write rootfs.1.
#    Recreated on every run so a previous run cannot fake a pass.
# ---------------------------------------------------------------------------
SLOT0="$W/slot-rootfs.0.img"
SLOT1="$W/slot-rootfs.1.img"
for s in "$SLOT0" "$SLOT1"; do
    rm -f -- "$s"
    fallocate -l "$BYTES" -- "$s" 2>/dev/null || truncate -s "$BYTES" -- "$s"
done

DATADIR="$W/data"
rm -rf -- "$DATADIR"       # central slot status lives here; start clean
mkdir -p "$DATADIR" "$MNT"

# RAUC 1.8 cannot be told where its data lives except via system.conf.
# Quirks handled here:
#  * bootname=A/B: RAUC identifies the booted slot by comparing a *bootname*
#    (from rauc.slot= on /proc/cmdline, or --override-boot-slot) with each
#    slot's bootname. This machine's cmdline has neither rauc.slot= nor root=,
#    so we pass `--override-boot-slot=A` to the service (see below). Without a
#    booted slot RAUC refuses to pick a target.
#  * mountprefix: plain bundles are loop-mounted (squashfs) under
#    <mountprefix>/bundle; default is /mnt/rauc, keep it inside WORKDIR.
#  * data-directory: 1.8 stores the central slot status there (raw slots
#    have no filesystem to hold a per-slot status file).
CONF="$W/system.conf"
cat > "$CONF" <<EOF
[system]
compatible=bench
bootloader=custom
mountprefix=$MNT
data-directory=$DATADIR

[handlers]
bootloader-custom-backend=$BACKEND

[keyring]
path=$PKI/ca.cert.pem

[slot.rootfs.0]
device=$SLOT0
type=raw
bootname=A

[slot.rootfs.1]
device=$SLOT1
type=raw
bootname=B
EOF

# ---------------------------------------------------------------------------
# 5. Plain bundle (not timed). format=plain = signed squashfs, no dm-verity.
#    The image goes in as rootfs.img; a hardlink avoids copying 512 MiB when
#    WORKDIR shares a filesystem with IMAGE (mksquashfs would store a symlink
#    as a symlink, so a symlink is not an option).
# ---------------------------------------------------------------------------
CONTENT="$W/bundle-content"
BUNDLE="$W/bench.raucb"
rm -rf -- "$CONTENT" "$BUNDLE"   # `rauc bundle` refuses an existing output
mkdir -p "$CONTENT"
ln -- "$IMAGE" "$CONTENT/rootfs.img" 2>/dev/null \
    || cp --reflink=auto -- "$IMAGE" "$CONTENT/rootfs.img"
cat > "$CONTENT/manifest.raucm" <<EOF
[update]
compatible=bench
version=bench-$(date +%s)

[bundle]
format=plain

[image.rootfs]
filename=rootfs.img
EOF
log "building plain bundle ($BYTES byte image)"
rauc bundle --conf="$CONF" \
    --cert="$PKI/signing.cert.pem" --key="$PKI/signing.key.pem" \
    --keyring="$PKI/ca.cert.pem" \
    "$CONTENT" "$BUNDLE" > "$W/bundle.log" 2>&1 \
    || { cat "$W/bundle.log" >&2; die "rauc bundle failed"; }
rm -rf -- "$CONTENT"   # drop the hardlink/copy; the bundle has the data now

# ---------------------------------------------------------------------------
# 6. Private D-Bus "system" bus. `rauc install` is only a D-Bus client of
#    `rauc service` (Debian builds RAUC with the service enabled), and both
#    use the *system* bus, whose address GLib takes from
#    DBUS_SYSTEM_BUS_ADDRESS. Our bus allows everything (Debian's real policy
#    for de.pengutronix.rauc ships in the separate rauc-service package,
#    which we deliberately don't install: it also brings a systemd unit).
# ---------------------------------------------------------------------------
SOCKDIR="$W/dbus"
# sun_path is 108 bytes: fall back to a short private tmp dir for deep WORKDIRs
if [ ${#SOCKDIR} -gt 90 ]; then
    SOCKDIR_TMP=$(mktemp -d /tmp/rauc-bench-dbus.XXXXXX)
    SOCKDIR="$SOCKDIR_TMP"
fi
mkdir -p "$SOCKDIR"
rm -f -- "$SOCKDIR/system_bus_socket"
cat > "$W/dbus-system.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=$SOCKDIR/system_bus_socket</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
  </policy>
</busconfig>
EOF
# --nofork + & so that $! is exactly the daemon's PID (nothing to parse).
: > "$W/dbus.addr"
dbus-daemon --config-file="$W/dbus-system.conf" --nofork --nopidfile \
    --print-address=3 3>"$W/dbus.addr" 2>"$W/dbus.log" &
DBUS_PID=$!
for _ in $(seq 100); do
    [ -s "$W/dbus.addr" ] && break
    kill -0 "$DBUS_PID" 2>/dev/null || { cat "$W/dbus.log" >&2; die "dbus-daemon exited"; }
    sleep 0.05
done
[ -s "$W/dbus.addr" ] || die "dbus-daemon did not print its address"
DBUS_SYSTEM_BUS_ADDRESS=$(head -n1 "$W/dbus.addr")
export DBUS_SYSTEM_BUS_ADDRESS
log "private system bus: $DBUS_SYSTEM_BUS_ADDRESS (pid $DBUS_PID)"

# ---------------------------------------------------------------------------
# 7. rauc service. --override-boot-slot takes a BOOTNAME (not a slot name):
#    "A" = rootfs.0. It only exists on `rauc service`, which is why the
#    install is done through the service rather than a standalone process.
# ---------------------------------------------------------------------------
rauc service --conf="$CONF" --override-boot-slot=A > "$W/service.log" 2>&1 &
SERVICE_PID=$!
owned=""
for _ in $(seq 200); do
    kill -0 "$SERVICE_PID" 2>/dev/null || { cat "$W/service.log" >&2; die "rauc service exited early"; }
    if dbus-send --system --print-reply --dest=org.freedesktop.DBus / \
            org.freedesktop.DBus.NameHasOwner string:de.pengutronix.rauc 2>/dev/null \
            | grep -q 'boolean true'; then
        owned=1; break
    fi
    sleep 0.05
done
[ -n "$owned" ] || { cat "$W/service.log" >&2; die "rauc service never appeared on the bus"; }
log "rauc service up (pid $SERVICE_PID)"

# Sanity: RAUC must consider rootfs.0 booted, else the target is ambiguous.
rauc status --conf="$CONF" > "$W/status-before.txt" 2>&1 \
    || { cat "$W/status-before.txt" "$W/service.log" >&2; die "rauc status failed"; }
grep -q 'Booted from: rootfs.0' "$W/status-before.txt" \
    || { cat "$W/status-before.txt" >&2; die "RAUC does not see rootfs.0 as booted"; }

CLK_TCK=$(getconf CLK_TCK)
# utime+stime+cutime+cstime in ticks. comm (field 2) may contain spaces, so
# strip up to ") " first; then utime..cstime are fields 12..15.
proc_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12+$13+$14+$15}'; }

# ---------------------------------------------------------------------------
# 8. The measured part: the install, end to end, through the client.
# ---------------------------------------------------------------------------
BUNDLE_ABS=$(realpath -- "$BUNDLE")   # the service resolves paths itself
ticks0=$(proc_ticks "$SERVICE_PID")
log "installing bundle (timed)"
set +e
/usr/bin/time -v -o "$W/install.time" \
    rauc install --conf="$CONF" "$BUNDLE_ABS" > "$W/install.log" 2>&1
install_rc=$?
set -e
kill -0 "$SERVICE_PID" 2>/dev/null || { cat "$W/install.log" "$W/service.log" >&2; die "rauc service died during install"; }
ticks1=$(proc_ticks "$SERVICE_PID")
PEAK_RSS=$(awk '/^VmHWM:/ {print $2}' "/proc/$SERVICE_PID/status")
log "service after install: $(grep -E '^(VmHWM|VmRSS|RssAnon|RssFile):' "/proc/$SERVICE_PID/status" | tr -s ' \t' ' ' | paste -sd ' ')"
if [ "$install_rc" -ne 0 ]; then
    cat "$W/install.log" "$W/service.log" >&2
    die "rauc install exited $install_rc"
fi
grep -q 'Installing .* succeeded' "$W/install.log" \
    || { cat "$W/install.log" >&2; die "rauc install did not report success"; }

# Stop the service now (SIGTERM), as the measurement is complete.
kill -TERM "$SERVICE_PID" 2>/dev/null || true
wait "$SERVICE_PID" 2>/dev/null || true
SERVICE_PID=""

# GNU time: "Elapsed (wall clock) time (h:mm:ss or m:ss): 0:02.34"
WALL=$(awk -F': ' '/Elapsed \(wall clock\)/ {
        n = split($2, p, ":"); s = 0
        for (i = 1; i <= n; i++) s = s * 60 + p[i]
        printf "%.2f", s }' "$W/install.time")
CLIENT_CPU=$(awk -F': ' '/User time \(seconds\)/ {u=$2} /System time \(seconds\)/ {s=$2}
        END {printf "%.2f", u + s}' "$W/install.time")
CPU=$(awk -v a="$ticks0" -v b="$ticks1" -v hz="$CLK_TCK" -v c="$CLIENT_CPU" \
        'BEGIN {printf "%.2f", (b - a) / hz + c}')
[ -n "$WALL" ] && [ -n "$PEAK_RSS" ] || die "could not parse measurements"

# ---------------------------------------------------------------------------
# 9. Verify: the inactive slot holds the image; the booted one was untouched.
# ---------------------------------------------------------------------------
cmp -s -- "$IMAGE" "$SLOT1" \
    || die "VERIFY FAILED: $SLOT1 (rootfs.1) differs from $IMAGE"
cmp -s -n "$BYTES" -- "$SLOT0" /dev/zero \
    || die "VERIFY FAILED: booted slot $SLOT0 (rootfs.0) was modified"
log "verified: rootfs.1 == image, rootfs.0 untouched; primary now $(cat "$BOOTSTATE/primary")"

echo "RAUC_RESULT wall_s=$WALL cpu_s=$CPU peak_rss_kib=$PEAK_RSS bytes=$BYTES"
