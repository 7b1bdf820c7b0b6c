#!/usr/bin/env bash
# Seed the fuzz corpora (fuzz/corpus/TARGET/) from the repository's test
# vectors, keys and configurations, and from the real tools the formats
# come from (grub-editenv, fw_setenv). Run by fuzz/run.sh; safe to run again.
set -euo pipefail
cd "$(dirname "$0")"
R=..
C=corpus
mkdir -p $C/{envelope,manifest,chunk_table,channel,keyring,config,grub_env,uboot_env_single,uboot_env_redundant,cmdline,content_range,range_request,index,root,pe}
# Envelopes: every manifest test vector (valid and refused).
cp $R/manifests/vectors/*.json $R/manifests/vectors/valid/manifest.json $C/envelope/
# Manifests: the payloads of the vectors, and the example.
python3 - "$R" "$C" <<'PY'
import base64, json, pathlib, sys
r, c = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
for p in list((r / "manifests/vectors").glob("*.json")) + [r / "manifests/vectors/valid/manifest.json"]:
    try:
        env = json.loads(p.read_text())
        (c / "manifest" / p.name).write_bytes(base64.b64decode(env["payload"]))
    except Exception:
        pass
(c / "manifest/example.json").write_bytes((r / "manifests/examples/gw-1.0.0.json").read_bytes())
PY
cp $R/manifests/vectors/valid/*.chunks.json $C/chunk_table/
# Root documents: the committed chain (root 1, and root 2 rotating its key).
cp $R/manifests/vectors/root/*.root.json $C/root/
# Channels: one the vendor tool would write (its payload).
cat > $C/channel/stable.json <<'JSON'
{"schema":1,"name":"stable","issued":"2026-01-01T00:00:00Z","expires":"2026-01-08T00:00:00Z","releases":[{"compatible":"acme-gw","version":"1.2.0","manifest":"1.2.0/manifest.json","digest":"0000000000000000000000000000000000000000000000000000000000000000","rollout_percent":25.5,"not_before":"2026-01-02T00:00:00Z"}]}
JSON
# Keyrings: the test keyring's index and its public keys.
cp $R/keys/test/keyring.toml $R/keys/test/*.pub $C/keyring/
# Configuration fragments: the packaged ones and the e2e guest's.
cp $R/packaging/config/config.toml $C/config/example.toml
cp $R/packaging/config/defaults.toml $C/config/defaults.toml
cp $R/integration/guest/config.toml $C/config/guest.toml
printf '[bootloader]\nbackend = "uboot"\npath = "/dev/mmcblk0"\noffset = 0x3f8000\nredundant_offset = 0x3fc000\nsize = 0x4000\n[daemon]\nstrategy = "window"\n[daemon.window]\ndays = ["mon", "fri"]\nstart = "02:00"\nend = "04:00"\ntimezone = "Europe/Berlin"\n' > $C/config/uboot-window.toml
# GRUB environment blocks, made by grub-editenv itself.
if command -v grub-editenv >/dev/null; then
  g=$C/grub_env/grubenv
  rm -f $g; grub-editenv $g create; grub-editenv $g set ORDER="A B" A_OK=1 B_OK=0 A_TRY=0 B_TRY=1
  cp $g $C/grub_env/grubenv-set
  rm -f $g; grub-editenv $g create
fi
# U-Boot environments, made by fw_setenv: a single copy and a redundant pair.
if command -v fw_setenv >/dev/null; then
  t=$(mktemp -d)
  printf '' > $t/defenv
  head -c 4096 /dev/zero > $t/single
  printf '%s 0x0 0x1000\n' $t/single > $t/single.cfg
  fw_setenv -c $t/single.cfg -f $t/defenv BOOT_ORDER "A B" >/dev/null 2>&1 || true
  fw_setenv -c $t/single.cfg BOOT_A_LEFT 1 >/dev/null 2>&1 || true
  cp $t/single $C/uboot_env_single/env
  head -c 4096 /dev/zero > $t/r0; head -c 4096 /dev/zero > $t/r1
  printf '%s 0x0 0x1000\n%s 0x0 0x1000\n' $t/r0 $t/r1 > $t/red.cfg
  fw_setenv -c $t/red.cfg -f $t/defenv BOOT_ORDER "A B" >/dev/null 2>&1 || true
  fw_setenv -c $t/red.cfg BOOT_TRY B >/dev/null 2>&1 || true
  cat $t/r0 $t/r1 > $C/uboot_env_redundant/pair
  rm -rf "$t"
fi
# Chunk indexes: the schema-2 test vector's.
cp $R/manifests/vectors/valid-v2/*.index $C/index/ 2>/dev/null || true
# Kernel command lines, range headers.
printf 'console=ttyS0 quiet' > $C/cmdline/plain
printf 'console=ttyS0 dyndbg="file foo.c +p" "updater.slot=A" -- single' > $C/cmdline/quoted
printf 'root=/dev/vda2 updater.slot=B updater.trial=1' > $C/cmdline/agent
printf 'bytes 1000-4999/5000' > $C/content_range/ok
printf 'bytes 0-99/*' > $C/content_range/star
printf 'bytes=1000-' > $C/range_request/open
printf 'bytes=10-20' > $C/range_request/closed
# PE images: a UKI-shaped image (stub header and three sections), made by
# the format crate's own builder so that the seed needs no toolchain.
python3 - "$C/pe/uki" <<'PY'
import struct, sys
sections = [(b".osrel", b"ID=updater\n"), (b".cmdline", b"console=ttyS0"), (b".linux", b"\x4d\x5a" + bytes(600))]
pe, opt = 0x40, 0xf0
table = pe + 24 + opt
at = (table + 40 * len(sections) + 0x1ff) // 0x200 * 0x200
img = bytearray(at)
img[0:2] = b"MZ"; img[0x3c:0x40] = struct.pack("<I", pe); img[pe:pe + 4] = b"PE\0\0"
struct.pack_into("<HH", img, pe + 4, 0x8664, len(sections)); struct.pack_into("<H", img, pe + 20, opt)
for i, (name, data) in enumerate(sections):
    raw = (len(data) + 0x1ff) // 0x200 * 0x200
    struct.pack_into("<8sIIII", img, table + 40 * i, name, len(data), at, raw, at)
    img += data + bytes(raw - len(data)); at += raw
open(sys.argv[1], "wb").write(img)
PY
echo "seeded: $(ls $C | wc -l) corpora"
