#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this). On a fresh Debian
# machine it first installs what the tests need.
set -euo pipefail
cd "$(dirname "$0")"

log() { printf '\n== %s\n' "$*"; }

# Debian packages the tests run for interop: openssl (keys and signatures),
# grub-editenv (grub-common) and fw_printenv/fw_setenv (libubootenv-tool)
# for the bootloader environments; dpkg-shlibdeps (dpkg-dev) for cargo-deb;
# softhsm2 and opensc for signing with a PKCS#11 token.
# nginx for the fleet simulation is unpacked by integration/fleet.py itself
# (apt-get download + dpkg -x), so no nginx service is ever installed here.
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
need_pkgs=()
command -v openssl >/dev/null || need_pkgs+=(openssl)
command -v zstd >/dev/null || need_pkgs+=(zstd)
# ostree (the command, never ostree-boot): OSTree releases are made from
# repositories it builds, and the tests build them.
command -v ostree >/dev/null || need_pkgs+=(ostree)
command -v grub-editenv >/dev/null || need_pkgs+=(grub-common)
command -v fw_printenv >/dev/null || need_pkgs+=(libubootenv-tool)
command -v dpkg-shlibdeps >/dev/null || need_pkgs+=(dpkg-dev)
command -v faketime >/dev/null || need_pkgs+=(faketime)
command -v losetup >/dev/null || need_pkgs+=(mount)
# SoftHSM2 and pkcs11-tool: a PKCS#11 token for the external-signer test.
command -v softhsm2-util >/dev/null || need_pkgs+=(softhsm2)
command -v pkcs11-tool >/dev/null || need_pkgs+=(opensc)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  log "installing Debian packages: ${need_pkgs[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_pkgs[@]}"
fi

# bootctl (bookworm ships it in systemd-boot, a boot loader package that
# must never be installed here): downloaded and unpacked into target/interop
# for the interop test that has it read the ESPs the agent manages. It runs
# against the host's own libsystemd-shared-252.
if [ ! -x target/interop/systemd-boot/usr/bin/bootctl ]; then
  log "unpacking bootctl (apt-get download systemd-boot + dpkg -x; never installed)"
  rm -rf target/interop/deb target/interop/systemd-boot && mkdir -p target/interop/deb
  (cd target/interop/deb && { apt-get download -q systemd-boot >/dev/null 2>&1 ||
    { $SUDO apt-get update -qq && apt-get download -q systemd-boot >/dev/null; }; })
  dpkg -x target/interop/deb/systemd-boot_*.deb target/interop/systemd-boot
fi

log "no import cycles between the modules of any crate, at two levels (tools/cycles.py)"
python3 tools/cycles.py .

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy (warnings are errors)"
cargo clippy --locked --workspace --all-targets -- -D warnings

log "cargo doc (warnings are errors: every link in the documentation resolves)"
RUSTDOCFLAGS="-D warnings" cargo doc --locked --no-deps --workspace

log "cargo test"
# A test that cannot run here says so (SKIPPED, with why) and leaves a line
# in target/test-skips/; they are listed at the end of this step.
rm -rf target/test-skips
cargo test --locked --workspace
if compgen -G 'target/test-skips/*.txt' >/dev/null; then
  log "skipped tests (each says why; UPDATER_NO_SKIP=1 makes a skip fail)"
  cat target/test-skips/*.txt
fi

# The time-sensitive tests again, two years ahead (libfaketime), to prove
# that no test depends on the day it runs. The prebuilt test binaries run
# under faketime, not cargo: cargo under a moved clock would leave build
# outputs with future timestamps, and later builds would miss changes.
log "time-sensitive tests two years ahead (faketime +730d)"
bash tools/faketime-tests.sh +730d

log "fuzz targets: build, seed, a few seconds each (fuzz/run.sh; docs/security.md)"
bash fuzz/run.sh 3

log "release builds: the vendor tool updater-vendor, then the device binary updater alone; it refuses the repository's test keys"
# The device binary is built on its own (-p updater) and last: a workspace
# build would unify its features with the vendor tooling's, and the e2e
# guests and the package must run exactly the device's build.
cargo build --locked --release -p updater-vendor
cargo build --locked --release -p updater
ls -l target/release/updater | awk '{printf "device binary: %d bytes (stripped; docs/benchmarks.md)\n", $5}' 
if out=$(./target/release/updater verify manifests/vectors/valid/manifest.json --keyring keys/test 2>&1); then
  echo "FAIL: a release build trusted keys/test: $out"; exit 1
fi
case "$out" in
  *"one of the repository's test keys"*) echo "ok: $out" ;;
  *) echo "FAIL: unexpected refusal: $out"; exit 1 ;;
esac

log "Debian package: build (cargo-deb), contents, install, run, remove (packaging/test-deb.sh)"
bash packaging/test-deb.sh

log "fleet simulation: 200 devices, a channel on nginx (integration/fleet.py, docs/fleet.md)"
python3 integration/fleet.py --work target/fleet

log "end-to-end scenarios in QEMU (integration/e2e.py, docs/e2e.md)"
python3 integration/e2e.py --work target/e2e

log "all tests passed"
