#!/usr/bin/env bash
# Builds the Debian package with cargo-deb from the release binary, checks its
# contents with dpkg-deb -c, installs it with dpkg -i, runs the installed
# agent, then removes and purges it. Run by ./test.sh after the release build.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
CARGO_DEB_VERSION=3.8.0
if ! cargo deb --version 2>/dev/null | grep -q "$CARGO_DEB_VERSION"; then
  echo "installing cargo-deb $CARGO_DEB_VERSION"
  cargo install cargo-deb --locked --version "$CARGO_DEB_VERSION"
fi
# "install ok installed" (not "purge ok not-installed", which dpkg keeps
# after a purge).
if dpkg-query -W -f='${Status}' updater 2>/dev/null | grep -q ' installed$'; then
  echo "FAIL: a package named updater is already installed here; not replacing it"
  exit 1
fi
# The device binary alone (-p updater): a workspace build unifies features
# with the vendor tooling's, and the package must carry exactly the
# device's build.
cargo build --locked --release -p updater

rm -rf target/debian
cargo deb -p updater --no-build --output target/debian/
deb=$(ls target/debian/updater_*.deb)
echo "built $deb"

contents=$(dpkg-deb -c "$deb" | awk '{print $6}')
for f in \
  ./usr/bin/updater \
  ./usr/lib/updater/config.d/00-defaults.toml \
  ./usr/lib/systemd/system/updater.service \
  ./usr/lib/systemd/system/updater-health.service \
  ./usr/lib/systemd/system-generators/updater-trial-generator \
  ./usr/share/doc/updater/examples/systemd/50-updater-watchdog.conf \
  ./usr/lib/tmpfiles.d/updater.conf \
  ./usr/share/man/man1/updater.1.gz \
  ./usr/share/man/man1/updater-daemon.1.gz \
  ./usr/share/bash-completion/completions/updater \
  ./usr/share/zsh/vendor-completions/_updater \
  ./usr/share/fish/vendor_completions.d/updater.fish \
  ./usr/share/updater/grub/grub.cfg \
  ./usr/share/updater/uboot/boot.cmd \
  ./usr/share/doc/updater/docs/fleet.md \
  ./usr/share/doc/updater/examples/config.toml; do
  grep -qx "$f" <<<"$contents" || { echo "FAIL: $f is not in the package"; dpkg-deb -c "$deb"; exit 1; }
done
if grep -q '^./boot' <<<"$contents"; then echo "FAIL: the package writes to /boot"; exit 1; fi
if grep -q 'keys/test' <<<"$contents"; then echo "FAIL: the package carries test keys"; exit 1; fi
echo "ok: contents"
dpkg-deb -f "$deb" Depends

cleanup() { $SUDO dpkg --purge updater >/dev/null 2>&1 || true; }
trap cleanup EXIT
$SUDO dpkg -i "$deb"
version=$(/usr/bin/updater --version)
[ "$version" = "updater $(dpkg-deb -f "$deb" Version | sed 's/-.*//')" ] || { echo "FAIL: --version says $version"; exit 1; }
echo "ok: installed, $version"
# What the maintainer scripts did: the state folder, the units enabled.
[ "$(stat -c %a /var/lib/updater)" = 700 ] || { echo "FAIL: /var/lib/updater is not 0700"; exit 1; }
if command -v deb-systemd-helper >/dev/null 2>&1; then
  for link in multi-user.target.wants/updater.service multi-user.target.wants/updater-health.service \
              boot-complete.target.requires/updater-health.service; do
    [ -L "/etc/systemd/system/$link" ] || { echo "FAIL: $link is not enabled"; exit 1; }
  done
  echo "ok: units enabled, state folder 0700"
fi
# The trial generator, as systemd runs it (GENERATOR_DIR as $1): a trial
# boot gets boot-complete.target pulled in with the trial's deadline as its
# job timeout; any other boot gets nothing.
gen=/usr/lib/systemd/system-generators/updater-trial-generator
gdir=$(mktemp -d)
echo "console=ttyS0 updater.slot=B updater.trial=1 updater.kexec=1 updater.deadline=150" > "$gdir/cmdline"
UPDATER_CMDLINE=$gdir/cmdline "$gen" "$gdir/out"
grep -qx "JobTimeoutSec=150s" "$gdir/out/boot-complete.target.d/50-updater-trial.conf" &&
  grep -qx "JobTimeoutAction=reboot-force" "$gdir/out/boot-complete.target.d/50-updater-trial.conf" &&
  [ -L "$gdir/out/multi-user.target.wants/boot-complete.target" ] || { echo "FAIL: the generator did not bound a trial boot"; ls -R "$gdir"; exit 1; }
echo "updater.slot=B updater.trial=1 updater.deadline=x9" > "$gdir/cmdline"
UPDATER_CMDLINE=$gdir/cmdline "$gen" "$gdir/bad"
grep -qx "JobTimeoutSec=900s" "$gdir/bad/boot-complete.target.d/50-updater-trial.conf" || { echo "FAIL: a malformed deadline was not replaced by the default"; exit 1; }
echo "console=ttyS0 updater.slot=A" > "$gdir/cmdline"
UPDATER_CMDLINE=$gdir/cmdline "$gen" "$gdir/none"
[ ! -e "$gdir/none" ] || { echo "FAIL: the generator wrote units for a boot that is not a trial"; exit 1; }
rm -rf "$gdir"
echo "ok: the trial generator bounds trial boots only"
# The installed defaults are read (and the missing device config named).
if [ -e /etc/updater/config.toml ]; then
  echo "FAIL: /etc/updater/config.toml exists on this machine; run this test on a machine without an updater configuration"
  exit 1
fi
if out=$(env -u UPDATER_CONFIG /usr/bin/updater status 2>&1); then echo "FAIL: status ran without a device config"; exit 1; fi
grep -q "compatible" <<<"$out" || { echo "FAIL: unexpected error: $out"; exit 1; }
echo "ok: without /etc/updater/config.toml: $out"
$SUDO dpkg -r updater
test ! -e /usr/bin/updater || { echo "FAIL: /usr/bin/updater left after dpkg -r"; exit 1; }
if ls /etc/systemd/system/*/updater*.service >/dev/null 2>&1; then
  echo "FAIL: enable links left after dpkg -r: $(ls /etc/systemd/system/*/updater*.service)"; exit 1
fi
$SUDO dpkg --purge updater
trap - EXIT
echo "ok: removed and purged"
