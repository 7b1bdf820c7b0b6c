#!/usr/bin/env python3
"""End-to-end proof on real boots: QEMU (TCG), OVMF + GRUB or U-Boot, an
i6300esb watchdog and kexec, running the real `updater` in three guests: the
busybox guest booted by GRUB (integration/guest), the same guest booted by
U-Boot, and the systemd guest (integration/sdguest).

Usage: integration/e2e.py [--work DIR] [--jobs N] [--no-build]
                          [--only NAME [NAME ...]] [--list] [NAME ...]

The scenarios are data: each is one entry of SCENARIOS below (its guest,
its setup, the cut it makes on a console line, how the new slot is booted,
its checks), run by one generic runner (run_scenario). `--list` prints the
registry (name, guest, expected seconds, how B boots, what the scenario
proves), and so does the end of `--help`; this docstring does not repeat
the list, so that it cannot go stale. Default: every scenario, the longest
first, --jobs (2) guests at a time.

What is asserted persists after the boots: the disk (the bootloader's env,
the agent's state, the slots' bytes), the marks a guest keeps on its data
partition before a reset, a jump or its poweroff (`keep` in the guests'
scripts, read back from the disk), the systemd guest's journal kept there,
and console lines of a system that went on running. A check never reads a
console line that races a shutdown or a jump.

Every scenario prints its result and timings as JSON when it ends;
`downtime_s` is the same measure in every scenario that boots a new slot:
from the jump (`downtime_via`: the kexec, or the restart of a reboot, as the
old kernel prints it) to the new slot's first mark (its /init's "E2E-MARK
boot slot=B"). At the end a table: scenario, result, wall seconds,
downtime, and the totals; target/e2e/results.json has it all.

Every QEMU and server process is started here, ended here by PID, and has a
time limit. The guest reaches only the release server: QEMU user networking
with restrict=on and one guestfwd rule (a host-side `busybox nc` per
connection to the server's loopback port).
"""
import argparse
import base64
import concurrent.futures
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
UPDATER = os.path.join(REPO, "target", "release", "updater")
VENDOR = os.path.join(REPO, "target", "release", "updater-vendor")
SCENARIO_TIMEOUT = 420
# The systemd guest boots three or four times, and sd-hang waits out the
# trial's 150 s deadline: about 300 s here, so more room.
SD_SCENARIO_TIMEOUT = 600
MIB = 1024 * 1024
OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd"
OVMF_VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd"
# The systemd-boot disk (build.sh): a 64 MiB ESP with the slots' kernels.
SDB_P2_START, SDB_P3_START, SDB_P4_START = 65 * MIB, 129 * MIB, 193 * MIB
P2_START, P3_START, P4_START = 17 * MIB, 81 * MIB, 145 * MIB
DATA_SIZE = 48 * MIB
# The systemd guest's disk (integration/sdguest/build.sh): larger slots for
# its squashfs images, the state at the data partition's root (it is
# /var/lib/updater there).
SD_P2_START, SD_P3_START, SD_P4_START = 17 * MIB, 113 * MIB, 209 * MIB
SD_DATA_SIZE = 64 * MIB

# Console lines the checks and the timings look for.
KEXEC_BOOT = r"E2E-MARK boot slot=B version=2 trial=yes"
BOOTLOADER = r"updater: booting slot"  # GRUB's grub.cfg and U-Boot's boot.cmd
# The old kernel's last words before the new slot, by how it is reached.
JUMP_LINE = {"kexec": r"kexec_core: Starting new kernel", "reboot": r"reboot: Restarting system"}
# The new slot's first userspace line: its /init (both guests' initramfs).
NEW_SLOT = r"E2E-MARK boot slot=B\b"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Guest:
    """One QEMU guest with its console log, markers and monitor."""

    def __init__(self, name, workdir, disk, port, port3=None, bios="/usr/share/ovmf/OVMF.fd", vars_fd=None,
                 code_fd=None, machine=()):
        self.name = name
        self.bios = bios
        # OVMF keeps the variables a guest writes only in a writable pflash
        # VARS copy beside its CODE (UEFI-NOTES); -bios does not.
        self.vars_fd = vars_fd
        self.code_fd = code_fd or OVMF_CODE
        self.machine = list(machine)
        self.dir = workdir
        self.disk = disk
        self.port = port
        self.port3 = port3
        self.lines = []  # (seconds since start, line)
        self.lock = threading.Lock()
        self.start = None
        self.proc = None
        self.monitor = os.path.join(workdir, "monitor.sock")
        self.log_path = os.path.join(workdir, "console.log")

    def run(self, on_line=None, timeout=SCENARIO_TIMEOUT):
        """Boot, and read the console until QEMU exits (the guest's last
        boot powers off after its FINAL mark; 30 s after that mark it is
        killed) or TIMEOUT."""
        fwd = f"guestfwd=tcp:10.0.2.100:8080-cmd:/bin/busybox nc 127.0.0.1 {self.port}"
        if self.port3:
            # Release 3 (the delta scenario) from a second server.
            fwd += f",guestfwd=tcp:10.0.2.100:8081-cmd:/bin/busybox nc 127.0.0.1 {self.port3}"
        cmd = [
            "qemu-system-x86_64", "-accel", "tcg", "-m", "512", "-smp", "1",
            *self.machine,
            *(["-drive", f"if=pflash,format=raw,readonly=on,file={self.code_fd}",
                "-drive", f"if=pflash,format=raw,file={self.vars_fd}"] if self.vars_fd else ["-bios", self.bios]),
            "-drive", f"file={self.disk},format=raw,if=virtio",
            "-device", "i6300esb", "-action", "watchdog=reset",
            "-netdev", f"user,id=n0,restrict=on,{fwd}",
            "-device", "virtio-net-pci,netdev=n0",
            "-display", "none", "-vga", "none", "-no-user-config",
            "-serial", "stdio", "-monitor", f"unix:{self.monitor},server,nowait",
        ]
        self.start = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = self.start + timeout
        timer = threading.Timer(timeout, self.kill)
        timer.start()
        try:
            with open(self.log_path, "w", encoding="utf-8", errors="replace") as log:
                for raw in self.proc.stdout:
                    t = time.monotonic() - self.start
                    # OVMF and GRUB write escape sequences: strip them.
                    line = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\r", "", raw.decode("utf-8", "replace")).rstrip("\n")
                    with self.lock:
                        self.lines.append((t, line))
                    log.write(f"[{t:8.2f}] {line}\n")
                    log.flush()
                    if on_line:
                        on_line(self, t, line)
                    if "E2E-MARK FINAL" in line:
                        threading.Timer(30, self.kill).start()
                    if time.monotonic() > deadline:
                        break
            self.proc.wait(timeout=30)
        finally:
            timer.cancel()
            self.kill()
        return self.proc.returncode

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass

    def monitor_cmd(self, cmd):
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(self.monitor)
            s.sendall(cmd.encode() + b"\n")
            time.sleep(0.5)

    def marks(self, pattern):
        rx = re.compile(pattern)
        with self.lock:
            return [(t, l) for t, l in self.lines if rx.search(l)]

    def first(self, pattern, after=0.0):
        for t, l in self.marks(pattern):
            if t >= after:
                return t, l
        return None


# --- reading the disk after the boots --------------------------------------

def read_grubenv(disk, workdir=None):
    out = subprocess.run(["mcopy", "-n", "-i", f"{disk}@@1M", "::/grub/grubenv", "-"], capture_output=True, check=True)
    env = {}
    for line in out.stdout.decode().splitlines():
        if "=" in line and not line.startswith("#"):
            k, v = line.split("=", 1)
            env[k] = v
    return env


def read_ubootenv(disk, workdir):
    """The U-Boot env file on the ESP, as fw_printenv (libubootenv) reads it:
    the agent's and U-Boot's writes must both stay readable by it."""
    path = os.path.join(workdir, "uboot.env")
    subprocess.run(["mcopy", "-n", "-o", "-i", f"{disk}@@1M", "::/uboot.env", path], check=True)
    cfg = os.path.join(workdir, "fw_env.config")
    with open(cfg, "w") as f:
        f.write(f"{path} 0x0 0x4000\n")
    out = subprocess.run(["fw_printenv", "-c", cfg], capture_output=True, text=True)
    if out.returncode != 0:
        return {"fw_printenv_error": out.stderr.strip()}
    return dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)


def read_ovmf_vars(path):
    """The live variables of an OVMF VARS file, read by this harness's own
    parser (not the agent's, not OVMF's): {(name, guid): (attributes, data)}.
    Layout (EDK II): a firmware volume header (its length at 0x30), the
    authenticated variable store header (28 bytes), then variables, each
    4-byte aligned: StartId 0x55AA, State, attributes, counters, a
    timestamp, NameSize, DataSize, the vendor GUID (60 bytes), the UTF-16
    name, the data. A variable is live in state VAR_ADDED (0x3f), or in
    VAR_IN_DELETED_TRANSITION (0x3e) when no added copy follows; a later
    copy replaces an earlier one."""
    import uuid
    raw = open(path, "rb").read()
    off = struct.unpack_from("<H", raw, 0x30)[0] + 28
    live, transition = {}, {}
    while off + 60 <= len(raw):
        start_id, state, _, attrs = struct.unpack_from("<HBBI", raw, off)
        if start_id != 0x55AA:
            break
        name_size, data_size = struct.unpack_from("<II", raw, off + 36)
        guid = str(uuid.UUID(bytes_le=raw[off + 44:off + 60]))
        name = raw[off + 60:off + 60 + name_size].decode("utf-16-le").rstrip("\0")
        data = raw[off + 60 + name_size:off + 60 + name_size + data_size]
        if state == 0x3F:
            live[(name, guid)] = (attrs, data)
        elif state == 0x3E:
            transition[(name, guid)] = (attrs, data)
        off += (60 + name_size + data_size + 3) & ~3
    return {**transition, **live}


LOADER_GUID = "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"
GLOBAL_GUID = "8be4df61-93ca-11d2-aa0d-00e098032b8c"


def add_ovmf_vars(path, variables):
    """Append VARIABLES [(name, guid, attributes, data)] to the OVMF VARS
    file PATH, after its last variable, as the firmware's own store writes
    them (state VAR_ADDED, no time stamp): what a factory provisions before
    the first boot, without running anything in the guest."""
    import uuid
    raw = bytearray(open(path, "rb").read())
    off = struct.unpack_from("<H", raw, 0x30)[0] + 28
    while struct.unpack_from("<H", raw, off)[0] == 0x55AA:
        name_size, data_size = struct.unpack_from("<II", raw, off + 36)
        off += (60 + name_size + data_size + 3) & ~3
    for name, guid, attrs, data in variables:
        n = (name + "\0").encode("utf-16-le")
        header = struct.pack("<HBBIQ16sIII", 0x55AA, 0x3F, 0, attrs, 0, bytes(16), 0, len(n), len(data))
        record = header + uuid.UUID(guid).bytes_le + n + data
        assert all(b == 0xFF for b in raw[off:off + len(record)]), "no free space in the VARS store"
        raw[off:off + len(record)] = record
        off += (len(record) + 3) & ~3
    open(path, "wb").write(raw)


def load_option(active, description, partition, path, options):
    """An EFI_LOAD_OPTION: attributes, the device path (a short-form
    HD(partition) node, then File(path), then the end node), the
    description and the optional data (the kernel's command line, UCS-2)."""
    num, start, size, part_uuid = partition
    import uuid
    hd = struct.pack("<BBHIQQ16sBB", 4, 1, 42, num, start, size, uuid.UUID(part_uuid).bytes_le, 2, 2)
    f = (path + "\0").encode("utf-16-le")
    fnode = struct.pack("<BBH", 4, 4, 4 + len(f)) + f
    dp = hd + fnode + bytes([0x7F, 0xFF, 4, 0])
    return (struct.pack("<IH", 1 if active else 0, len(dp)) + (description + "\0").encode("utf-16-le") + dp
            + options.encode("utf-16-le"))


def provision_efi_boot(r):
    """The efi-* scenarios' factory state: Boot0001 starts slot A's kernel
    from the ESP (its EFI stub) with updater.slot=A, Boot0002 the same for B
    (inactive, its kernel not yet installed), BootOrder = 0001,0002."""
    pt = json.loads(subprocess.run(["sfdisk", "-J", r.disk], capture_output=True, text=True, check=True).stdout)
    esp = pt["partitiontable"]["partitions"][0]
    part = (1, esp["start"], esp["size"], esp["uuid"])
    opt = lambda g, active: load_option(  # noqa: E731 - one line each below
        active, f"updater {g}", part, f"\\updater\\{g}\\vmlinuz",
        f"console=ttyS0 panic=5 updater.slot={g} initrd=\\updater\\{g}\\initrd.img")
    add_ovmf_vars(os.path.join(r.dir, "vars.fd"), [
        ("Boot0001", GLOBAL_GUID, 7, opt("A", True)),
        ("Boot0002", GLOBAL_GUID, 7, opt("B", False)),
        # B's option in BootOrder too, inactive: OVMF deletes options
        # that are not in BootOrder at boot.
        ("BootOrder", GLOBAL_GUID, 7, struct.pack("<HH", 1, 2)),
    ])


def read_efiboot(disk, workdir):
    """The firmware boot manager's variables in the scenario's VARS file:
    BootOrder and BootNext as lists of numbers, each slot option's
    attributes."""
    v = read_ovmf_vars(os.path.join(workdir, "vars.fd"))
    env = {}
    for name in ("BootOrder", "BootNext"):
        if (name, GLOBAL_GUID) in v:
            data = v[(name, GLOBAL_GUID)][1]
            env[name] = list(struct.unpack(f"<{len(data) // 2}H", data))
    for n in (1, 2):
        key = (f"Boot{n:04X}", GLOBAL_GUID)
        if key in v:
            env[f"Boot{n:04X}.active"] = bool(struct.unpack_from("<I", v[key][1])[0] & 1)
    return env


def read_sdboot(disk, workdir):
    """systemd-boot's state after the boots: its variables in the scenario's
    VARS file (UTF-16 strings, NUL dropped) and the entries on the ESP
    (mtools), keyed `entries`."""
    env = {}
    for (name, guid), (attrs, data) in read_ovmf_vars(os.path.join(workdir, "vars.fd")).items():
        if guid == LOADER_GUID and name.startswith("LoaderEntry"):
            env[name] = data.decode("utf-16-le").rstrip("\0")
            env[name + ".attrs"] = attrs
    out = subprocess.run(["mdir", "-b", "-i", f"{disk}@@1M", "::/loader/entries"], capture_output=True, text=True, check=True)
    env["entries"] = sorted(os.path.basename(l.strip()) for l in out.stdout.splitlines() if l.strip())
    out = subprocess.run(["mdir", "-b", "-i", f"{disk}@@1M", "::/updater/B"], capture_output=True, text=True)
    env["B_files"] = sorted(os.path.basename(l.strip()) for l in out.stdout.splitlines() if l.strip())
    # Type #2 entries (the UKI disk).
    out = subprocess.run(["mdir", "-b", "-i", f"{disk}@@1M", "::/EFI/Linux"], capture_output=True, text=True)
    env["linux"] = sorted(os.path.basename(l.strip()) for l in out.stdout.splitlines() if l.strip())
    return env


def esp_file(disk, path):
    return subprocess.run(["mcopy", "-n", "-i", f"{disk}@@1M", f"::{path}", "-"], capture_output=True, check=True).stdout


def data_part(disk, workdir, start=P4_START, size=DATA_SIZE):
    part = os.path.join(workdir, "data.part")
    with open(disk, "rb") as src, open(part, "wb") as dst:
        src.seek(start)
        dst.write(src.read(size))
    return part


def data_file(disk, workdir, start, size, path):
    """A file of the data partition's ext4, read with debugfs (b"" when it
    is not there)."""
    out = subprocess.run(["debugfs", "-R", f"cat {path}", data_part(disk, workdir, start, size)],
                         capture_output=True)
    return out.stdout


def read_state(disk, workdir, start=P4_START, size=DATA_SIZE, path="/state/state.json"):
    return json.loads(data_file(disk, workdir, start, size, path).decode())


def parse_kept(text):
    """The marks a guest kept (`keep` in guest/init and sdguest/scenario.sh):
    [(boot, text)], from one "boot=N TEXT" a line (a line without the prefix
    continues the one before)."""
    out = []
    for line in text.splitlines():
        m = re.match(r"boot=(\d+) (.*)", line)
        if m:
            out.append((int(m.group(1)), m.group(2)))
        elif out:
            out[-1] = (out[-1][0], out[-1][1] + "\n" + line)
    return out


def data_clean(disk, workdir, start, size):
    """Whether the data partition's ext4 was cleanly unmounted (its
    superblock state, as dumpe2fs reads it after QEMU exited), and the
    superblock's mount count."""
    out = subprocess.run(["dumpe2fs", "-h", data_part(disk, workdir, start, size)], capture_output=True, text=True)
    fields = dict(line.split(":", 1) for line in out.stdout.splitlines() if ":" in line)
    return fields.get("Filesystem state", "").strip(), fields.get("Mount count", "").strip()


def sha_of_region(disk, start, size):
    h = hashlib.sha256()
    with open(disk, "rb") as f:
        f.seek(start)
        h.update(f.read(size))
    return h.hexdigest()


def index_chunks(path):
    """(offset, size, coffset, csize) of each chunk of a schema-2 index
    (docs/release-format.md), read independently of the agent's parser."""
    b = open(path, "rb").read()
    assert b[:8] == b"UPDIDX\0\x01", "not a chunk index"
    pages = struct.unpack_from("<I", b, 48)[0]
    at = 64 + 18 * pages
    out, off, coff = [], 0, 0
    while at < len(b):
        size, csize = struct.unpack_from("<II", b, at)
        out.append((off, size, coff, csize))
        off, coff, at = off + size, coff + csize, at + 40
    return out


def open_requests(log_path):
    """Request ids in the server's log (`serve --log`) that have no DONE line
    yet."""
    if not os.path.exists(log_path):
        return set()
    started, done = set(), set()
    for line in open(log_path):
        parts = line.split()
        if len(parts) == 5 and parts[0] == "REQ":
            started.add(parts[1])
        elif len(parts) == 3 and parts[0] == "DONE":
            done.add(parts[1])
    return started - done


def served_runs(log_path):
    """The server's request log (`serve --log`) split into runs of the
    agent, each starting with the manifest, in the order the requests came
    (a body cut by a reset may end after the next run began): [(bytes,
    requests, largest request's bytes)]."""
    runs, run_of = [], {}
    if not os.path.exists(log_path):
        return runs
    for line in open(log_path):
        parts = line.split()
        if len(parts) == 5 and parts[0] == "REQ":
            if parts[2] == "manifest.json":
                runs.append([0, 0, 0])
            if runs:
                run_of[parts[1]] = len(runs) - 1
                runs[-1][1] += 1
        elif len(parts) == 3 and parts[0] == "DONE" and parts[1] in run_of:
            r = runs[run_of[parts[1]]]
            r[0] += int(parts[2])
            r[2] = max(r[2], int(parts[2]))
    return [tuple(r) for r in runs]


def mark_json(g, pattern):
    m = g.first(pattern)
    if not m:
        return None
    try:
        return json.loads(m[1][m[1].index("{"):])
    except ValueError:
        return None


def bootloader_between(g, a, b):
    """The bootloader's or the firmware's boot manager's lines between
    console lines A and B (systemd-boot prints nothing with timeout 0; OVMF's
    BdsDxe does)."""
    return [x for x in g.marks(BOOTLOADER + r"|BdsDxe: (loading|starting)") if a[0] < x[0] < b[0]]


# --- the registry's types ----------------------------------------------------

@dataclass(frozen=True)
class GuestKind:
    """A guest: its disk (built by build.sh under --work/BASE), its layout,
    where the harness and the guest keep their files on the data partition,
    its bootloader's env, its time limit, and the checks every one of its
    scenarios runs."""
    name: str
    about: str
    base: str                # folder under --work with disk.img and release ("" : --work itself)
    slot_a: int              # partition offsets, and the data partition's size
    slot_b: int
    data: int
    data_size: int
    data_dirs: tuple         # folders made on each scenario's fresh data partition
    e2e_dir: str             # the harness's folder there: the scenario's name and flags
    state_path: str          # the agent's state file on the data partition
    kept_path: str           # the guest's kept marks there
    read_env: object         # (disk, workdir) -> dict
    timeout: int
    checks: tuple            # run before each scenario's own
    bios: str = None         # -bios under --work (None: OVMF)
    pflash: bool = False     # OVMF_CODE_4M + a fresh VARS copy per scenario (vars.fd), instead of -bios
    code_fd: str = None      # the pflash CODE (None: OVMF_CODE)
    vars_template: str = None  # what each scenario's vars.fd is a copy of (None: OVMF_VARS)
    machine: tuple = ()      # QEMU's machine options (Secure Boot needs q35 with SMM)
    slot_a_image: str = None  # slot A's image under BASE, to size the hash (None: 48 MiB)

    def slot_a_bytes(self, work):
        if self.slot_a_image:
            return os.path.getsize(os.path.join(work, self.base, self.slot_a_image))
        return 48 * MIB


@dataclass(frozen=True)
class Jump:
    """How a scenario boots the new slot, for its downtime: VIA "kexec" or
    "reboot", the first such jump at or after the console line AFTER (None:
    from the start)."""
    via: str
    after: str = None


KEXEC = Jump("kexec")
REBOOT = Jump("reboot", r"E2E-MARK apply-start reboot")


@dataclass(frozen=True)
class Cut:
    """A power cut (QEMU monitor's system_reset) the harness makes in a
    scenario: when a console line contains ON, at once, or, with LOG (the
    run's attribute naming a server's request log), SECONDS after the agent
    asked that server for the rootfs image from byte FROM_BYTE(run) on."""
    on: str
    log: str = None
    seconds: float = 0
    from_byte: object = None


@dataclass(frozen=True)
class Scenario:
    """One registry entry.

    guest:    the GuestKind (its disk, env, limit and common checks);
    about:    one line, for --list;
    expect_s: the wall time it usually takes (two at a time, TCG): the
              queue starts the longest first;
    checks:   functions of the Run, after the guest's own, each asserting one
              group of facts (`Run.that`);
    jump:     how the new slot is booted (its downtime), None if none is;
    flags:    files made in the harness's folder of the data partition (the
              systemd guest's units test them);
    rate:     the release server's rate limit (bytes/s);
    setup:    a function of the Run before the boot (alter the release,
              start a second server...);
    cut:      a power cut made on a console line (Cut);
    timeout:  seconds (None: the guest's).
    The guest runs its scenario's steps (guest/scenario.sh,
    sdguest/scenario.sh, chosen by the scenario's name on the data
    partition) until it powers off after its FINAL mark."""
    name: str
    guest: GuestKind
    about: str
    expect_s: int
    checks: tuple
    jump: Jump = None
    flags: tuple = ()
    rate: int = None
    setup: object = None
    cut: Cut = None
    timeout: int = None


# --- one scenario's run ------------------------------------------------------

class Run:
    """One scenario's run: its folder, disk, release and servers, the
    guest's console, and, after the boots, what the disk holds. The checks
    read it and record failures with `that`."""

    def __init__(self, sc, work):
        self.sc, self.name, self.kind, self.work = sc, sc.name, sc.guest, work
        self.dir = os.path.join(work, "scenarios", sc.name)
        self.base = os.path.join(work, self.kind.base) if self.kind.base else work
        self.disk = os.path.join(self.dir, "disk.img")
        self.rel = os.path.join(self.dir, "release")
        self.requests = os.path.join(self.dir, "release-requests.log")
        self.requests3 = os.path.join(self.dir, "release3-requests.log")
        self.limit = sc.timeout or self.kind.timeout
        self.port3 = None  # release 3's server (serve_release3)
        self.second_region = None  # where the delta is cut (serve_release3)
        self.servers = []
        self.resets = []  # the times of the harness's cuts
        self.failures = []
        self.timings = {}
        self.g = None
        self.a_bytes = self.kind.slot_a_bytes(work)
        self.a_before = None
        # After the boots.
        self.env, self.state, self.groups, self.st, self.kept_marks = {}, {}, {}, None, []

    # Before the boot.
    def prepare(self):
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        shutil.copyfile(os.path.join(self.base, "disk.img"), self.disk)
        # A fresh data partition with the scenario's name and flags.
        ddir = tempfile.mkdtemp(dir=self.dir)
        for d in self.kind.data_dirs:
            os.makedirs(os.path.join(ddir, d))
        e2e = os.path.join(ddir, self.kind.e2e_dir)
        # Tools the guest runs from there (build.sh's data-tools: bootctl).
        tools = os.path.join(self.base, "data-tools")
        if os.path.isdir(tools):
            shutil.copytree(tools, os.path.join(e2e, "tools"))
        with open(os.path.join(e2e, "scenario"), "w") as f:
            f.write(self.name + "\n")
        for flag in self.sc.flags:
            open(os.path.join(e2e, flag), "w").close()
        data = os.path.join(self.dir, "data.img")
        subprocess.run(["mkfs.ext4", "-q", "-F", "-d", ddir, data, f"{self.kind.data_size // MIB}M"], check=True)
        with open(data, "rb") as src, open(self.disk, "r+b") as dst:
            dst.seek(self.kind.data)
            dst.write(src.read())
        shutil.rmtree(ddir)
        # The release as served.
        shutil.copytree(os.path.join(self.base, "release"), self.rel)
        if self.kind.pflash:
            shutil.copyfile(self.kind.vars_template or OVMF_VARS, os.path.join(self.dir, "vars.fd"))

    def serve(self, rel, log, rate=None, stderr="server.log"):
        """Serve REL on a free loopback port, logging every request to LOG."""
        port = free_port()
        cmd = [VENDOR, "serve", rel, "--listen", f"127.0.0.1:{port}", "--seconds", str(self.limit + 60), "--log", log]
        if rate:
            cmd += ["--rate", str(rate)]
        self.servers.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                             stderr=open(os.path.join(self.dir, stderr), "w")))
        return port

    def stop_servers(self):
        # A body the server is still pacing out (its rate limit) when the
        # guest has already powered off gets its DONE line a moment later:
        # wait for it (5 s at most) before the kill, so that the checks read
        # every request's size, not a log the kill cut short.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(open_requests(p) for p in (self.requests, self.requests3)):
            time.sleep(0.1)
        for srv in self.servers:
            srv.send_signal(signal.SIGKILL)
            srv.wait(timeout=10)

    # During the boot.
    def on_line(self, g, t, line):
        cut = self.sc.cut
        if cut and cut.on in line and not self.resets:
            self.resets.append(t)
            if cut.log:
                self.cut_after_request(g, getattr(self, cut.log), cut.seconds,
                                       cut.from_byte(self) if cut.from_byte else 0)
            else:
                g.monitor_cmd("system_reset")

    def cut_after_request(self, g, log_path, seconds, from_byte=0):
        """Reset the guest SECONDS after the agent asked LOG_PATH's server for
        the rootfs image file from FROM_BYTE or later (planning comes first,
        and reads the slots slowly under TCG): in the middle of a download."""
        def asked():
            for line in open(log_path):
                p = line.split()
                if len(p) == 5 and p[0] == "REQ" and p[2] == "rootfs.img.zst" and p[4] != "-" and int(p[4]) >= from_byte:
                    return True
                if len(p) == 5 and p[0] == "REQ" and p[2] == "rootfs.img.zst" and from_byte == 0:
                    return True
            return False

        def watch():
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                if os.path.exists(log_path) and asked():
                    time.sleep(seconds)
                    g.monitor_cmd("system_reset")
                    return
                time.sleep(0.2)
        threading.Thread(target=watch, daemon=True).start()

    # After the boots.
    def read_disk(self):
        k = self.kind
        self.env = k.read_env(self.disk, self.dir)
        try:
            self.state = read_state(self.disk, self.dir, k.data, k.data_size, k.state_path)
        except Exception as e:  # noqa: BLE001 - reported as a failure
            self.state = {}
            self.that(False, f"state file unreadable: {e}")
        self.groups = self.state.get("groups", {})
        self.kept_marks = parse_kept(data_file(self.disk, self.dir, k.data, k.data_size, k.kept_path)
                                     .decode("utf-8", "replace"))
        # The agent's status in the last boot (`finish`), as the guest kept it.
        status = self.kept_all(r"status ")[-1:]
        m = re.match(r"status (\{.*\})", status[0][1], re.S) if status else None
        if m:
            try:
                self.st = json.loads(m.group(1))
            except ValueError:
                self.that(False, f"the guest's last status is not JSON: {status[0][1][:200]}")

    def that(self, cond, what):
        if not cond:
            self.failures.append(what)
        return cond

    def timing(self, key, a, b):
        """KEY: seconds from console line A to B (when both were seen)."""
        if a and b:
            self.timings[key] = round(b[0] - a[0], 1)

    def kept(self, pattern):
        """The first mark the guest kept (before a reset, a jump or its
        poweroff) whose text starts with PATTERN: (boot, text), or None."""
        found = self.kept_all(pattern)
        return found[0] if found else None

    def kept_all(self, pattern):
        rx = re.compile(pattern)
        return [(b, t) for b, t in self.kept_marks if rx.match(t)]

    @property
    def b(self):
        return self.groups.get("B", {})


def measure_downtime(r):
    """downtime_s: from the jump into the new slot (the old kernel's "Starting
    new kernel" for a kexec, "Restarting system" for a reboot) to the new
    slot's first userspace line (its /init's "E2E-MARK boot slot=B"), the
    same in every guest; None if B never came up. cold_boot_downtime_s: the
    same from the next restart to B's next boot, its first through the
    firmware and the bootloader, where there is one. Reported, not asserted."""
    j = r.sc.jump
    if not j:
        return
    g = r.g
    after = g.first(j.after) if j.after else (0.0, "")
    jump = g.first(JUMP_LINE[j.via], after=after[0]) if after else None
    up = g.first(NEW_SLOT, after=jump[0]) if jump else None
    r.timings["downtime_via"] = j.via
    r.timings["downtime_s"] = round(up[0] - jump[0], 1) if jump and up else None
    restart = g.first(JUMP_LINE["reboot"], after=up[0]) if up else None
    r.timing("cold_boot_downtime_s", restart, g.first(NEW_SLOT, after=restart[0]) if restart else None)


def run_scenario(sc, work):
    """Run SC: its disk and setup, its servers and guest, then its checks."""
    r = Run(sc, work)
    r.prepare()
    try:
        if sc.setup:
            sc.setup(r)
        port = r.serve(r.rel, r.requests, rate=sc.rate)
        r.a_before = sha_of_region(r.disk, r.kind.slot_a, r.a_bytes)
        bios = {"bios": os.path.join(work, r.kind.bios)} if r.kind.bios else {}
        if r.kind.pflash:
            bios = {"vars_fd": os.path.join(r.dir, "vars.fd"), "code_fd": r.kind.code_fd, "machine": r.kind.machine}
        r.g = Guest(sc.name, r.dir, r.disk, port, r.port3, **bios)
        t0 = time.monotonic()
        r.g.run(r.on_line, timeout=r.limit)
        r.timings["wall_s"] = round(time.monotonic() - t0, 1)
    finally:
        r.stop_servers()
    r.read_disk()
    measure_downtime(r)
    for check in r.kind.checks + sc.checks:
        try:
            check(r)
        except Exception:  # noqa: BLE001 - a check that cannot run fails
            r.that(False, f"{check.__name__} raised: {traceback.format_exc(limit=3)}")
    return result(sc, r.failures, r.timings, r.g.log_path)


def result(sc, failures, timings, log):
    return {"scenario": sc.name, "guest": sc.guest.name, "ok": not failures, "failures": failures,
            "timings": timings, "log": os.path.relpath(log, REPO)}


# --- check groups shared by several scenarios --------------------------------

def guest_finished(r):
    """The guest reached the end of its steps (FINAL, kept before its
    poweroff), and no step reported an error (on the console, or kept)."""
    r.that(r.kept("FINAL") is not None, "the guest never reached FINAL")
    errors = [l for _, l in r.g.marks(r"E2E-MARK error")] + [f"boot {b}: {t}" for b, t in r.kept_all(r"error")]
    r.that(not errors, f"errors: {errors}")


def slot_a_untouched(r):
    """The factory slot A is only ever booted, never written."""
    r.that(sha_of_region(r.disk, r.kind.slot_a, r.a_bytes) == r.a_before, "slot A was written")


def uboot_ran(r):
    """U-Boot booted the disk, and its env is readable by fw_printenv."""
    r.that(r.g.first(r"U-Boot 20\d\d") is not None, "U-Boot did not run")
    r.that("fw_printenv_error" not in r.env, f"fw_printenv cannot read the env U-Boot and the agent wrote: {r.env}")
    r.that(not r.g.marks(r"GRUB|BdsDxe"), "GRUB or OVMF ran in a U-Boot scenario")


def kexec_trial(r):
    """Busybox guests: A applied release 2 and B came up as a trial by
    kexec, with no bootloader in between."""
    g = r.g
    boots = g.marks(r"E2E-MARK boot slot=")
    r.that(len(boots) >= 2 and "slot=A version=1" in boots[0][1], "first boot is not A v1")
    # The apply's return is kept: it cannot be lost to a poweroff after it.
    r.that(g.first(r"E2E-MARK apply rc=") is None and r.kept(r"apply rc=") is None,
           "apply returned instead of jumping by kexec")
    kexec_boot = g.first(KEXEC_BOOT)
    r.that(kexec_boot is not None, "B never booted as a trial")
    # B arrived by kexec: no GRUB in between.
    start = g.first(r"E2E-MARK apply-start kexec")
    r.that(start and kexec_boot and not bootloader_between(g, start, kexec_boot),
           "GRUB ran between the apply and B's boot: that was not a kexec")
    r.timing("apply_s", start, g.first(JUMP_LINE["kexec"]))
    grub = g.first(BOOTLOADER)
    r.timing("reset_to_grub_s", (0.0, ""), grub)


def health_deferred(r):
    """Health in the kexec boot passed and armed B's first cold boot,
    instead of committing."""
    r.that(r.g.first(r'E2E-MARK health rc=0 .*"outcome":"cold-boot-pending"') is not None,
           "health in the kexec boot did not guard the first cold boot")


def cold_boot_one_shot(r, reset_mark):
    """B's first cold boot: the kexec boot kept RESET_MARK before its reset;
    the bootloader's one-shot line after the kexec boot (no bootloader runs
    within it), or None."""
    kexec_boot = r.g.first(KEXEC_BOOT)
    if not (r.kept(reset_mark) and kexec_boot):
        return None
    return r.g.first(r"updater: booting slot B updater.trial=1", after=kexec_boot[0])


def cold_boot_failed(r):
    """coldboot and uboot-coldboot: B, committed by kexec, cannot be loaded
    by the bootloader at its first cold boot; A comes back and says why."""
    g = r.g
    health_deferred(r)
    broke = r.kept("broke-b-kernel")
    r.that(broke is not None, "the scenario did not break B's kernel on the disk")
    # After the kexec boot, which broke the kernel before its reset (no
    # bootloader, no A, no lost trial within it).
    kexec_boot = g.first(KEXEC_BOOT)
    after = kexec_boot[0] if broke and kexec_boot else 1e9
    r.that(g.first(r"updater: booting slot B updater.trial=1", after=after) is not None,
           "GRUB did not try B's first cold boot")
    r.that(g.first(r"updater: slot B cannot be loaded", after=after) is not None,
           "GRUB did not report B's kernel unloadable")
    back = g.first(r"E2E-MARK boot slot=A version=1", after=after)
    r.that(back is not None, "A did not come back after B's failed cold boot")
    r.that(g.first(r"E2E-MARK health rc=0 .*trial-lost", after=after) is not None, "A did not mark B's lost cold boot")
    why = r.b.get("last_error") or ""
    r.that(r.b.get("status") == "bad" and "committed by kexec, failed its first cold boot" in why,
           f"state: {r.groups}")
    if r.kind is UBOOT:
        r.that(r.env.get("BOOT_ORDER") == "A B" and r.env.get("BOOT_B_LEFT") == "0" and not r.env.get("BOOT_TRY"),
               f"uboot.env: {r.env}")
    else:
        r.that(r.env.get("ORDER") == "A B" and r.env.get("B_OK") == "0" and r.env.get("B_TRY") == "0",
               f"grubenv: {r.env}")
    r.that(r.st and r.st["booted"] == "A" and "failed its first cold boot" in (r.st["groups"]["B"].get("last_error") or ""),
           f"status on A: {r.st}")


def b_good(r):
    r.that(r.b.get("status") == "good" and r.b.get("version") == "2.0.0", f"state: {r.groups}")


def b_lost_trial(r):
    r.that(r.b.get("status") == "bad" and "trial did not confirm" in (r.b.get("last_error") or ""), f"state: {r.groups}")


def grubenv_back_on_a(r):
    r.that(r.env.get("ORDER") == "A B" and r.env.get("B_OK") == "0", f"grubenv: {r.env}")


# --- the busybox guest's scenarios (GRUB and U-Boot) -------------------------

def check_commit(r):
    """The kexec boot's health passes and arms B's first cold boot; the
    reset boots B through GRUB's one-shot, where health commits."""
    g = r.g
    health_deferred(r)
    cold = cold_boot_one_shot(r, "reset-after-commit")
    r.that(cold is not None, "GRUB did not boot B's first cold boot as a one-shot after the reset")
    commit = g.first(r"E2E-MARK health rc=0 .*committed", after=cold[0] if cold else 1e9)
    r.that(commit is not None, "health did not commit B in its first cold boot")
    r.timing("health_to_commit_s", g.first(KEXEC_BOOT), commit)
    k = (r.st or {}).get("kernel") or {}
    r.that(k.get("lockdown") == "none" and k.get("kexec_sig") == "not-enforced" and k.get("kexec_loaded") is False,
           f"status does not report the guest kernel's lockdown and kexec state: {k}")
    r.that(g.first(r"E2E-MARK boot slot=B version=2 trial=no") is not None, "B did not boot by default")
    r.that(r.env.get("ORDER") == "B A" and r.env.get("B_OK") == "1", f"grubenv after commit: {r.env}")
    b_good(r)
    r.that(r.st and r.st["groups"]["B"]["status"] == "good" and r.st["booted"] == "B", f"status on B: {r.st}")


def check_daemon(r):
    g = r.g
    r.that(r.kept("cold-boot-reset") is not None, "B's first cold boot was not guarded")
    r.that(g.first(r"E2E-MARK health rc=0 .*committed") is not None, "health did not commit B")
    again = g.first(r"E2E-MARK daemon-again rc=0 .*up to date")
    r.that(again is not None, "the daemon in B did not find itself up to date")
    r.that(r.env.get("ORDER") == "B A" and r.env.get("B_OK") == "1", f"grubenv after commit: {r.env}")
    b_good(r)
    r.that("stable" in r.state.get("channels_issued", {}), f"the channel was not recorded: {r.state}")


def check_health_fail(r):
    """B's health fails and reboots at once (health.reboot_on_failure), so
    the evidence is GRUB booting A after B's trial boot, and the state."""
    g = r.g
    kexec_boot = g.first(KEXEC_BOOT)
    back = g.first(r"updater: booting slot A", after=kexec_boot[0] if kexec_boot else 1e9)
    r.that(back is not None, "GRUB did not boot A after B's failed health check")
    r.timing("trial_boot_to_grub_s", kexec_boot, back)
    r.that(g.first(r"E2E-MARK boot slot=A version=1", after=back[0] if back else 1e9) is not None, "A did not come back")
    grubenv_back_on_a(r)
    r.that(r.b.get("status") == "bad" and "50-app" in (r.b.get("last_error") or ""), f"state: {r.groups}")
    r.that(r.st and r.st["booted"] == "A" and r.st["groups"]["B"]["status"] == "bad", f"status on A: {r.st}")


def check_hang(r):
    g = r.g
    hang = g.first(r"E2E-MARK hanging")
    r.that(hang is not None, "B did not reach the hang")
    back = g.first(r"updater: booting slot A", after=hang[0] if hang else 0)
    r.that(back is not None, "the watchdog did not bring the machine back to A")
    r.timing("hang_to_grub_s", hang, back)
    r.that(g.first(r"E2E-MARK health rc=0 .*trial-lost") is not None, "A did not mark the lost trial")
    b_lost_trial(r)
    grubenv_back_on_a(r)


def check_powercut(r):
    g = r.g
    r.that(len(r.resets) == 1, "the harness never cut the power")
    after = g.first(r"E2E-MARK after-cut")
    r.that(after is not None and '"B":{' in after[1], "A did not come back after the cut")
    if after:
        s = json.loads(after[1].split("after-cut ", 1)[1])
        r.that(s["groups"]["B"]["status"] == "installing" and s["groups"]["B"]["bootable"] is False,
               f"B after the cut: {s['groups']['B']}")
        r.that(s["booted"] == "A", "not on A after the cut")
    applied = g.first(r"E2E-MARK apply rc=0 .*resumed")
    r.that(applied is not None, "the second apply did not resume and complete")
    r.timing("resumed_apply_s", after, applied)
    if applied:
        fetched = int(re.search(r"\((\d+) bytes fetched", applied[1]).group(1))
        whole = sum(os.path.getsize(os.path.join(r.rel, f)) for f in os.listdir(r.rel))
        r.timings["resumed_fetch_bytes"] = fetched
        r.timings["release_bytes"] = whole
        r.that(fetched < whole, f"the second apply fetched {fetched} of {whole} bytes: it started over")
    r.that(r.b.get("status") == "installed", f"state: {r.groups}")
    r.that(r.env.get("B_OK") == "0" and r.env.get("ORDER") == "A B", f"grubenv: {r.env}")
    r.that(sha_of_region(r.disk, r.kind.slot_b, 48 * MIB) == sha_of_region(os.path.join(r.work, "slot-v2.ext4"), 0, 48 * MIB),
           "slot B does not hold the release")


def check_tampered(r):
    # The apply's exit is kept (and printed) before the guest powers off.
    r.that(r.g.first(r"E2E-MARK apply rc=3 ") is not None or r.kept(r"apply rc=3 ") is not None,
           "apply did not fail with exit code 3")
    r.that(len(r.g.marks(r"E2E-MARK boot slot=")) == 1, "the guest booted again: something jumped or rebooted")
    r.that(r.env.get("B_OK") == "0" and r.env.get("ORDER") == "A B", f"grubenv: {r.env}")
    r.that(r.b.get("status") == "installing" and "chunk" in (r.b.get("last_error") or ""), f"state: {r.groups}")


def check_reboot(r):
    g = r.g
    applied = g.first(r"E2E-MARK apply-start reboot")
    trial_grub = g.first(r"updater: booting slot B updater.trial=1", after=applied[0] if applied else 0)
    r.that(trial_grub is not None, "GRUB did not boot B's one-shot trial")
    r.that(g.first(r"E2E-MARK health rc=0 .*committed") is not None, "health did not commit B")
    r.that(r.env.get("ORDER") == "B A" and r.env.get("B_OK") == "1" and r.env.get("B_TRY") == "0", f"grubenv: {r.env}")
    r.that(r.b.get("status") == "good", f"state: {r.groups}")
    restart = g.first(JUMP_LINE["reboot"], after=applied[0] if applied else 0)
    r.timing("apply_s", applied, restart)
    r.timing("restart_to_grub_s", restart, trial_grub)


def check_delta(r):
    g = r.g
    plan = mark_json(g, r"E2E-MARK delta-plan rc=0 ")
    r.that(plan is not None, "the dry run did not print a plan")
    rootfs = next((i for i in (plan or {}).get("images", []) if i["class"] == "rootfs"), {})
    seed = (rootfs.get("plan") or {}).get("seed") or {}
    r.that(seed.get("group") == "B" and seed.get("kind") == "kept-index",
           f"the plan does not read the booted slot B through its kept index: {seed}")
    r.that(len(r.resets) == 1, "the harness never cut the power")
    after = mark_json(g, r"E2E-MARK after-cut ")
    r.that(after is not None and after["booted"] == "B" and after["groups"]["A"]["status"] == "installing"
           and after["groups"]["A"]["bootable"] is False, f"after the cut: {after}")
    done = mark_json(g, r"E2E-MARK delta rc=0 ")
    r.that(done is not None and done.get("version") == "3.0.0", "the resumed delta did not complete")
    runs = served_runs(r.requests3)
    rel3 = os.path.join(r.work, "release3")
    rel3_bytes = sum(os.path.getsize(os.path.join(rel3, f)) for f in os.listdir(rel3))
    planned = (plan or {}).get("planned_bytes", 0)
    r.timings["release3_bytes"] = rel3_bytes
    r.timings["planned_bytes"] = planned
    r.timings["served_runs"] = runs
    r.that(len(runs) == 3, f"release 3 was asked for {len(runs)} times, expected 3 (plan, cut, resumed): {runs}")
    if plan and done and len(runs) == 3:
        _, (cut_bytes, _, in_flight), (resumed_bytes, _, _) = runs
        r.timings["delta_fetched_before_cut"] = cut_bytes
        r.timings["delta_fetched_resumed"] = resumed_bytes
        r.that(planned < rel3_bytes * 0.35, f"the plan fetches {planned} of the release's {rel3_bytes} bytes: no delta")
        # What the server sent is what the agent counted.
        r.that(resumed_bytes == done["bytes_fetched"], f"served {resumed_bytes}, the agent counted {done['bytes_fetched']}")
        r.that(done["bytes_in_place"] > 0, f"the resumed delta found nothing in place: {done}")
        # The first changed region (1 MiB) was written before the cut:
        # the resumed delta does not fetch it again.
        r.that(cut_bytes > MIB and resumed_bytes < planned - MIB * 3 // 4,
               f"the resumed delta fetched {resumed_bytes} of the plan's {planned} after {cut_bytes} before the cut")
        # Fetched twice: the request in flight at the cut (the server goes
        # on sending it into the socket buffers after the reset, so it
        # counts it whole) and what was written after the last checkpoint
        # (one second's worth at 128 KiB/s).
        r.that(cut_bytes + resumed_bytes <= planned + in_flight + 128 * 1024,
               f"fetched {cut_bytes} + {resumed_bytes} in all, the plan said {planned} (+ {in_flight} in flight)")
    r.timing("resumed_delta_s", g.first(r"E2E-MARK after-cut"), g.first(r"E2E-MARK delta rc="))


def delta_slots(r):
    """The delta wrote release 3 into A; B, booted during the delta, was
    only read."""
    r.that(sha_of_region(r.disk, r.kind.slot_a, 48 * MIB) == sha_of_region(os.path.join(r.work, "slot-v3.ext4"), 0, 48 * MIB),
           "slot A does not hold release 3")
    r.that(sha_of_region(r.disk, r.kind.slot_b, 48 * MIB) == sha_of_region(os.path.join(r.work, "slot-v2.ext4"), 0, 48 * MIB),
           "slot B, booted during the delta, was written")


def check_uboot_commit(r):
    g = r.g
    health_deferred(r)
    cold = cold_boot_one_shot(r, "reset-after-commit")
    r.that(cold is not None, "U-Boot did not boot B's first cold boot as a one-shot")
    commit = g.first(r"E2E-MARK health rc=0 .*committed", after=cold[0] if cold else 1e9)
    r.that(commit is not None, "health did not commit B in its first boot through U-Boot")
    r.that(g.first(r"E2E-MARK boot slot=B version=2 trial=no") is not None, "U-Boot did not boot B by default")
    r.that(r.env.get("BOOT_ORDER") == "B A" and r.env.get("BOOT_B_LEFT", "0") != "0" and not r.env.get("BOOT_TRY"),
           f"uboot.env after commit: {r.env}")
    r.that(r.b.get("status") == "good", f"state: {r.groups}")


def check_uboot_reboot(r):
    g = r.g
    applied = g.first(r"E2E-MARK apply-start reboot")
    one = g.first(r"updater: booting slot B updater.trial=1", after=applied[0] if applied else 1e9)
    r.that(one is not None, "U-Boot did not boot B's one-shot trial")
    r.that(g.first(r"E2E-MARK health rc=0 .*committed") is not None, "health did not commit B")
    r.that(r.env.get("BOOT_ORDER") == "B A" and r.env.get("BOOT_B_LEFT", "0") != "0" and not r.env.get("BOOT_TRY"),
           f"uboot.env: {r.env}")
    r.that(r.b.get("status") == "good", f"state: {r.groups}")


def check_uboot_hang(r):
    g = r.g
    hang = g.first(r"E2E-MARK hanging")
    r.that(hang is not None, "B did not reach the hang")
    back = g.first(r"updater: booting slot A", after=hang[0] if hang else 0)
    r.that(back is not None, "the watchdog did not bring the machine back to U-Boot and A")
    r.timing("hang_to_uboot_s", hang, back)
    b_lost_trial(r)
    r.that(r.env.get("BOOT_ORDER") == "A B" and r.env.get("BOOT_B_LEFT") == "0", f"uboot.env: {r.env}")


def check_uboot_oneshot_cut(r):
    g = r.g
    r.that(len(r.resets) == 1, "the harness never cut the power after the one-shot")
    after = r.resets[0] if r.resets else 1e9
    r.that(g.first(r"E2E-MARK boot slot=B", after=0) is None, "B's system came up: the cut was too late")
    back = g.first(r"updater: booting slot A", after=after)
    r.that(back is not None and g.first(r"updater.trial=1", after=back[0]) is None,
           "U-Boot did not boot A (without a trial) after the cut: the consumed one-shot was not saved")
    r.that(g.first(r"E2E-MARK health rc=0 .*trial-lost", after=after) is not None, "A did not mark the lost trial")
    b_lost_trial(r)
    r.that(r.env.get("BOOT_ORDER") == "A B" and r.env.get("BOOT_B_LEFT") == "0" and not r.env.get("BOOT_TRY"),
           f"uboot.env: {r.env}")


# --- the systemd guest's scenarios -------------------------------------------

def systemd_guest(r):
    """Every systemd-guest scenario: systemd is PID 1 on a read-only
    squashfs root, the jump is `systemctl kexec`, the state is on a data
    partition that must come through each jump cleanly unmounted."""
    g = r.g
    boots = g.marks(r"E2E-MARK boot slot=")
    r.that(boots and "slot=A version=1" in boots[0][1], "first boot is not A v1")
    r.that(g.first(r"Welcome to .*Debian") is not None, "systemd did not start")
    roots = g.marks(r"E2E-MARK watchdog ")
    r.that(roots and all("root=squashfs ro" in l for _, l in roots), f"the root filesystem was not read-only squashfs: {roots}")
    # Every boot that mounted the data partition found it clean: each jump
    # (systemctl kexec, systemctl reboot) unmounted it first.
    mounts = g.marks(r"E2E-MARK data-mount ")
    r.that(mounts and all("mounted filesystem" in l for _, l in mounts), f"the data partition was not mounted: {mounts}")
    r.that(not [l for _, l in mounts if "recovery" in l], f"a mount of the data partition replayed its journal: {mounts}")
    state, count = data_clean(r.disk, r.dir, r.kind.data, r.kind.data_size)
    r.that(state == "clean", f"the data partition is {state!r} after the last poweroff")
    r.timings["data_mounts"] = count
    # PID 1 feeds the watchdog; it leaves it armed across a kexec.
    wd = g.first(r"E2E-MARK watchdog ")
    r.that(wd and "runtime=30s" in wd[1] and "kexec=2min" in wd[1] and "nowayout=1" in wd[1],
           f"systemd's watchdog settings: {wd}")
    # The agent found PID 1 holding the watchdog and relied on it to carry
    # the watchdog across the kexec, instead of failing to open the device.
    # Read from the journal kept on the data partition, dumped by the next
    # boot: what the agent logs just before the jump races the shutdown on
    # the console, never in the journal.
    r.that(g.first(r"E2E-JOURNAL .*fed by systemd \(RuntimeWatchdogSec=30s\).*KExecWatchdogSec=2min") is not None,
           "the agent did not rely on systemd's watchdog settings")
    r.that(g.first(r"E2E-JOURNAL .*kexec with: .*updater.deadline=150") is not None,
           "the kexec command line does not carry the trial's deadline")
    # The daemon (sd-daemon) applies on its own once A is up.
    start = g.first(r"E2E-MARK ready .*boots=1") if "daemon" in r.sc.flags else g.first(r"E2E-MARK apply-start kexec")
    kexec_boot = g.first(KEXEC_BOOT)
    r.that(kexec_boot is not None, "B never booted as a trial")
    # (`systemctl kexec` returns once the shutdown is queued: the apply may
    # return before the system stops, unlike reboot(2)'s jump.)
    if start and kexec_boot:
        r.that(not bootloader_between(g, start, kexec_boot), "GRUB ran between the apply and B's boot: that was not a kexec")
        # systemctl kexec: a clean shutdown, the data partition unmounted
        # before the jump.
        jump = g.first(JUMP_LINE["kexec"], after=start[0])
        r.that(jump is not None and jump[0] < kexec_boot[0], "no kexec")
        unmounted = g.first(r"Unmounted var-lib-updater.mount", after=start[0])
        r.that(unmounted and jump and unmounted[0] < jump[0], "systemd did not unmount the data partition before the kexec")
        r.timing("apply_to_kexec_s", start, jump)


def sd_health_after(g, pattern, after):
    return g.first(r"E2E-MARK health result=success .*" + pattern, after=after[0] if after else 1e9)


def sd_ordered(g, after):
    """updater-health.service became active before boot-complete.target in
    the boot after AFTER."""
    m = g.first(r"E2E-MARK order health=(\d+) boot-complete=(\d+)", after=after[0] if after else 1e9)
    if not m:
        return False
    h, bc = map(int, re.search(r"health=(\d+) boot-complete=(\d+)", m[1]).groups())
    return 0 < h <= bc


def sd_committed(r):
    """sd-kexec and sd-daemon: B, kexec'd, fed by its PID 1 past the
    watchdog's timeout, committed in its first cold boot."""
    g = r.g
    kexec_boot = g.first(KEXEC_BOOT)
    pending = sd_health_after(g, "after a kexec", kexec_boot)
    r.that(pending is not None, "health in the kexec boot did not guard the first cold boot")
    r.that(sd_ordered(g, kexec_boot), "updater-health.service was not done before boot-complete.target (kexec boot)")
    # PID 1 of the new slot took the watchdog over (it holds the device,
    # with its own 30 s timeout) and the healthy slot outlived that timeout
    # twice over: it is fed.
    wdk = g.first(r"E2E-MARK watchdog ", after=kexec_boot[0] if kexec_boot else 1e9)
    r.that(wdk and "pid1-holds=yes" in wdk[1] and "timeout=30 " in wdk[1] and "state=active" in wdk[1],
           f"PID 1 of the kexec'd slot does not hold the watchdog: {wdk}")
    up = g.first(r"E2E-MARK still-up", after=kexec_boot[0] if kexec_boot else 1e9)
    r.that(up is not None and wdk and not bootloader_between(g, kexec_boot, up) and up[0] - wdk[0] >= 60,
           "B was reset while healthy: nothing fed the watchdog after the kexec")
    cold = cold_boot_one_shot(r, "cold-boot-reboot")
    r.that(cold is not None, "GRUB did not boot B's first cold boot as a one-shot")
    commit = sd_health_after(g, "committed as the default", cold)
    r.that(commit is not None, "health did not commit B in its first cold boot")
    r.that(sd_ordered(g, cold), "updater-health.service was not done before boot-complete.target (cold boot)")
    r.timing("kexec_boot_to_commit_s", kexec_boot, commit)
    r.that(r.env.get("ORDER") == "B A" and r.env.get("B_OK") == "1" and r.env.get("B_TRY") == "0",
           f"grubenv after commit: {r.env}")
    b_good(r)
    r.that(r.st and r.st["booted"] == "B" and r.st["groups"]["B"]["status"] == "good", f"status on B: {r.st}")


def check_sd_daemon(r):
    # updater.service as the guest reported it, kept on the data partition.
    first = r.kept(r"daemon ")
    r.that(first and "Type=notify" in first[1] and "WatchdogUSec=10min" in first[1] and "ActiveState=active" in first[1],
           f"updater.service on A: {first}")
    last = r.kept_all(r"daemon ")[-1:]
    r.that(last and "up to date" in last[0][1] and "NRestarts=0" in last[0][1] and "SubState=running" in last[0][1],
           f"updater.service on B after the commit: {last}")
    r.that("stable" in r.state.get("channels_issued", {}), "the channel was not recorded")


def check_sd_hang(r):
    g = r.g
    hang = g.first(r"E2E-MARK hanging")
    r.that(hang is not None, "B did not reach the hang")
    r.that(g.first(r"Timed out starting boot-co.*Boot Completion Check", after=hang[0] if hang else 1e9) is not None,
           "systemd did not time the trial boot out")
    r.that(g.first(r"Forcibly rebooting: job timed out", after=hang[0] if hang else 1e9) is not None,
           "the timed-out trial boot did not reboot (JobTimeoutAction=reboot-force)")
    back = g.first(r"updater: booting slot A", after=hang[0] if hang else 1e9)
    r.that(back is not None, "the hung trial was not rebooted back to A")
    r.timing("hang_to_grub_s", hang, back)
    lost = g.first(r"E2E-MARK health result=success .*trial did not confirm", after=back[0] if back else 1e9)
    r.that(lost is not None, "A did not mark the lost trial")
    b_lost_trial(r)
    grubenv_back_on_a(r)


def check_sd_health_fail(r):
    """updater-health.service fails the check and reboots at once
    (health.reboot_on_failure): a clean reboot, through firmware."""
    g = r.g
    kexec_boot = g.first(KEXEC_BOOT)
    ran = g.first(r"Starting updater-health.se", after=kexec_boot[0] if kexec_boot else 1e9)
    r.that(ran is not None, "updater-health.service did not run in B")
    rebooted = g.first(r"systemd-shutdown\[1\]: Rebooting\.$", after=ran[0] if ran else 1e9)
    r.that(rebooted is not None, "B did not reboot cleanly after its failed health check")
    back = g.first(r"updater: booting slot A", after=kexec_boot[0] if kexec_boot else 1e9)
    r.that(back is not None, "GRUB did not boot A after B's failed health check")
    r.timing("trial_boot_to_grub_s", kexec_boot, back)
    r.that(g.first(r"E2E-MARK boot slot=A version=1", after=back[0] if back else 1e9) is not None, "A did not come back")
    grubenv_back_on_a(r)
    r.that(r.b.get("status") == "bad" and "50-app" in (r.b.get("last_error") or ""), f"state: {r.groups}")
    r.that(r.st and r.st["booted"] == "A" and "50-app" in (r.st["groups"]["B"].get("last_error") or ""),
           f"status on A does not say why B failed: {r.st}")


def check_sd_hang_early(r):
    """The trial kernel hangs in its initramfs, before systemd: only the
    hardware watchdog, left running across the kexec by the old PID 1
    (KExecWatchdogSec=2min), can bring the machine back."""
    g = r.g
    hang = g.first(r"E2E-MARK hanging-early")
    r.that(hang is not None, "B's initramfs did not reach the hang")
    back = g.first(r"updater: booting slot A", after=hang[0] if hang else 1e9)
    r.that(hang and back and not [t for t, _ in g.marks(r"Welcome to .*Debian") if hang[0] < t < back[0]],
           "systemd started in the hung trial")
    r.that(back is not None, "the watchdog did not reset the hung trial back to GRUB and A")
    r.timing("hang_to_grub_s", hang, back)
    jump = g.first(JUMP_LINE["kexec"])
    r.timing("jump_to_reset_s", jump, back)
    r.that(not jump or not back or 60 <= back[0] - jump[0] <= 200,
           f"the reset came {back[0] - jump[0] if jump and back else '?'} s after the jump, not the 2 min of KExecWatchdogSec")
    lost = g.first(r"E2E-MARK health result=success .*trial did not confirm", after=back[0] if back else 1e9)
    r.that(lost is not None, "A did not mark the lost trial")
    b_lost_trial(r)
    grubenv_back_on_a(r)


def sd_back_on_a(r):
    r.that(r.st and r.st["booted"] == "A" and r.st["groups"]["B"]["status"] == "bad", f"status on A: {r.st}")


# --- setups ------------------------------------------------------------------

# --- the systemd-boot scenarios (the busybox guest under OVMF + sd-boot) -----

def efivars_seen(r):
    """What the guest's kernel read of sd-boot's variables in its last boot
    (kept): {name: value}."""
    seen = r.kept_all(r"efivars ")
    return dict(w.split("=", 1) for w in seen[-1][1].split()[1:] if "=" in w) if seen else {}


def sdboot_ran(r):
    """systemd-boot booted the last boot: LoaderEntrySelected, which only
    sd-boot sets (volatile: read by the guest's kernel, it is not in the
    VARS file's NV store), names the slot the guest says it runs; GRUB
    never ran; the variables the agent left in the NV store are NV|BS|RT."""
    sel = efivars_seen(r).get("LoaderEntrySelected", "")
    booted = (r.st or {}).get("booted") or "?"
    # A last boot the agent kexec'd still carries what sd-boot started.
    last = r.g.marks(r"E2E-MARK boot slot=")
    if last and "trial=yes" in last[-1][1] and r.g.first(JUMP_LINE["kexec"], after=0) and not \
            bootloader_between(r.g, r.g.first(JUMP_LINE["kexec"]), last[-1]):
        booted = "A"
    # sd-boot 252 reports the id lowercased; a Type #2 entry's id is its
    # UKI's file name.
    r.that(sel.lower() in (f"updater-{booted}.conf".lower(), f"updater-{booted}.efi".lower()),
           f"LoaderEntrySelected {sel!r} in the last boot, which says it runs slot {booted}: sd-boot did not boot it")
    r.that(not r.g.marks(r"GRUB|updater: booting slot"), "GRUB ran in a systemd-boot scenario")
    for name in ("LoaderEntryDefault", "LoaderEntryOneShot"):
        if name in r.env:
            r.that(r.env[name + ".attrs"] == 0x7, f"{name}: attributes {r.env[name + '.attrs']:#x}, not NV|BS|RT")


def check_sdboot_commit(r, t2=False):
    """The kexec trial's health arms B's first cold boot as LoaderEntryOneShot;
    the reset boots B through OVMF and sd-boot's one-shot, where health
    commits (LoaderEntryDefault); a plain reset then boots B by default;
    bootctl in B lists the entries and marks B's the default. T2: the
    slots' entries are Type #2 (their UKIs, EFI/Linux/updater-B.efi)."""
    g = r.g
    health_deferred(r)
    r.that(r.kept("reset-after-kexec-trial") is not None, "the kexec trial did not reset for its cold boot")
    kexec_boot = g.first(KEXEC_BOOT)
    after = kexec_boot[0] if kexec_boot else 1e9
    cold = g.first(r"E2E-MARK boot slot=B version=2 trial=no", after=after)
    r.that(cold is not None, "sd-boot did not boot B after the kexec trial's reset")
    r.that(cold and bootloader_between(g, kexec_boot, cold), "no firmware boot between the kexec trial and B's cold boot")
    commit = g.first(r"E2E-MARK health rc=0 .*committed", after=cold[0] if cold else 1e9)
    r.that(commit is not None, "health did not commit B in its first cold boot")
    r.timing("health_to_commit_s", kexec_boot, commit)
    again = g.first(r"E2E-MARK boot slot=B version=2 trial=no", after=commit[0] if commit else 1e9)
    r.that(r.kept("reset-after-commit") is not None and again is not None, "B did not boot by default after the commit")
    ext = ".efi" if t2 else ".conf"
    r.that(r.env.get("LoaderEntryDefault") == f"updater-B{ext}", f"LoaderEntryDefault: {r.env}")
    r.that("LoaderEntryOneShot" not in r.env, f"a one-shot is left: {r.env}")
    listing = "linux" if t2 else "entries"
    r.that(r.env.get(listing) == [f"updater-A{ext}", f"updater-B{ext}"], f"{listing}: {r.env.get(listing)}")
    # The guest's kernel read back, through efivarfs, what the agent wrote.
    seen = efivars_seen(r)
    r.that(seen.get("LoaderEntryDefault") == f"updater-B{ext}" and "LoaderEntryOneShot" not in seen,
           f"efivarfs in B: {seen}")
    # So did systemd's bootctl: both slots' entries (beside its own
    # firmware-setup entry), B's the default and the one selected (the title
    # line before its id).
    bc = r.kept(r"bootctl ")
    lines = bc[1].split(" ", 1)[1].split(";") if bc else []
    ids = [l.split(": ", 1)[1] for l in lines if l.startswith("id: updater-")]
    b_title = [lines[i - 1] for i, l in enumerate(lines) if l == f"id: updater-B{ext}" and i > 0]
    r.that(sorted(ids) == [f"updater-A{ext}", f"updater-B{ext}"] and b_title
           and "(default)" in b_title[0] and "(selected)" in b_title[0], f"bootctl list in B: {lines}")
    manifest = json.loads(base64.b64decode(json.load(open(os.path.join(r.rel, "manifest.json")))["payload"]))
    if t2:
        got = hashlib.sha256(esp_file(r.disk, "/EFI/Linux/updater-B.efi")).hexdigest()
        r.that(manifest["uki"]["sha256"].endswith(got), f"B's UKI on the ESP ({got}) is not the release's")
        r.that("kernel" not in manifest and "initrd" not in manifest, "the release is not a UKI release")
    else:
        got = hashlib.sha256(esp_file(r.disk, "/updater/B/vmlinuz")).hexdigest()
        r.that(manifest["kernel"]["sha256"].endswith(got), f"B's kernel on the ESP ({got}) is not the release's")
        r.that(r.env.get("B_files") == ["initrd.img", "vmlinuz"], f"ESP /updater/B: {r.env.get('B_files')}")
    b_good(r)
    r.that(r.st and r.st["booted"] == "B" and r.st["groups"]["B"]["status"] == "good", f"status on B: {r.st}")


def check_sdboot_hang(r):
    """apply --reboot arms LoaderEntryOneShot; sd-boot boots B once; B arms
    the watchdog and hangs before its health check; the watchdog resets the
    machine; sd-boot boots the default A (the one-shot was consumed); A marks
    B bad and disables its entry."""
    g = r.g
    applied = g.first(r"E2E-MARK apply-start reboot")
    hang = g.first(r"E2E-MARK hanging", after=applied[0] if applied else 0)
    r.that(g.first(r"E2E-MARK watchdog armed") is not None, "B did not arm the watchdog")
    r.that(hang is not None and g.first(r"E2E-MARK boot slot=B version=2 trial=no") is not None,
           "sd-boot did not boot B's one-shot trial")
    back = g.first(r"E2E-MARK boot slot=A version=1", after=hang[0] if hang else 1e9)
    r.that(back is not None, "the watchdog did not bring the machine back to A")
    r.timing("hang_to_a_s", hang, back)
    r.timing("apply_s", applied, g.first(JUMP_LINE["reboot"], after=applied[0] if applied else 0))
    r.that(g.first(r"E2E-MARK health rc=0 .*trial-lost") is not None, "A did not mark the lost trial")
    b_lost_trial(r)
    r.that(r.env.get("entries") == ["updater-A.conf", "updater-B.conf.disabled"], f"entries: {r.env.get('entries')}")
    r.that("LoaderEntryOneShot" not in r.env, f"a one-shot is left: {r.env}")
    r.that(r.env.get("LoaderEntryDefault", "updater-A.conf") == "updater-A.conf", f"the default moved: {r.env}")
    r.that(efivars_seen(r).get("LoaderEntrySelected", "").lower() == "updater-a.conf",
           f"efivarfs in A: {efivars_seen(r)}")


def secure_boot_locked_down(r):
    """The guest ran under Secure Boot, locked down, as the agent's status
    reports the running kernel."""
    k = (r.st or {}).get("kernel") or {}
    r.that(k.get("secure_boot") is True and k.get("lockdown") == "integrity" and k.get("kexec_sig") == "enforced",
           f"status does not report Secure Boot and lockdown: {k}")
    r.that(r.g.first(r"Kernel is locked down from EFI Secure Boot") is not None, "the guest kernel was not locked down")
    r.that(r.g.first(r"integrity: Loaded X.509 cert 'SnakeOil") is not None,
           "the snakeoil certificate did not reach the platform keyring")


def check_sb_unsigned(r):
    """A release whose kernel has the vendor's valid ed25519 signature but
    no Authenticode signature: the agent sees that the locked-down kernel
    would refuse it (ENODATA) before it records the trial, names the cause,
    and with
    kexec.policy = "require" the apply fails (exit 6) with nothing
    half-changed: A still runs and is the default, B installed but not
    bootable, nothing armed, no kexec image loaded."""
    applied = r.kept(r"apply rc=")
    r.that(applied and applied[1].startswith("apply rc=6"), f"apply: {applied}")
    r.that(applied and "no Authenticode signature" in applied[1], f"the agent did not name the cause: {applied}")
    r.that(not r.g.marks(r"E2E-MARK boot slot=B"), "B booted")
    r.that(len(r.g.marks(r"E2E-MARK boot slot=A")) == 1, "the guest booted more than once")
    r.that(r.b.get("status") == "installed", f"state: {r.groups}")
    r.that((r.st or {}).get("booted") == "A" and r.st["groups"]["B"]["bootable"] is False
           and ((r.st.get("kernel") or {}).get("kexec_loaded") is False), f"status: {r.st}")
    r.that(r.env.get("entries") == ["updater-A.conf", "updater-B.conf.disabled"], f"entries: {r.env.get('entries')}")
    r.that("LoaderEntryOneShot" not in r.env and "LoaderEntryDefault" not in r.env, f"variables written: {r.env}")


def efiboot_seen(r, boot_no=None):
    """What a boot's kernel read of the boot manager's variables (kept):
    {name: value}; the last boot's unless BOOT_NO."""
    seen = [t for b, t in r.kept_marks if t.startswith("efiboot") and (boot_no is None or b == boot_no)]
    return dict(w.split("=", 1) for w in seen[-1].split()[1:] if "=" in w) if seen else {}


def check_efi_health_fail(r):
    """apply --reboot makes Boot0002 active, puts it in BootOrder after
    Boot0001 and sets BootNext; the firmware boots it (BootCurrent 0002);
    B's health check fails; the agent deactivates Boot0002, takes it out of
    BootOrder and reboots; the firmware boots Boot0001 (A)."""
    g = r.g
    applied = g.first(r"E2E-MARK apply-start reboot")
    b_boot = g.first(r"E2E-MARK boot slot=B version=2", after=applied[0] if applied else 1e9)
    r.that(b_boot is not None, "the firmware did not boot B's BootNext")
    r.that(b_boot and bootloader_between(g, applied, b_boot), "no firmware boot between the apply and B")
    # B's health fails and reboots at once: its result line is cut by the
    # reboot; the state (below) says why.
    back = g.first(r"E2E-MARK boot slot=A version=1", after=b_boot[0] if b_boot else 1e9)
    r.that(back is not None, "the firmware did not boot A after B's failed health check")
    r.that(back and bootloader_between(g, b_boot, back), "no firmware boot between B and A")
    r.timing("apply_s", applied, g.first(JUMP_LINE["reboot"], after=applied[0] if applied else 0))
    r.timing("b_to_a_s", b_boot, back)
    before = efiboot_seen(r, boot_no=1)
    r.that(before.get("BootOrder", "").startswith("0001,0002") and before.get("BootCurrent") == "0001"
           and before.get("Boot0002.attrs") == "00000000", f"the provisioned options before the apply: {before}")
    r.that(r.b.get("status") == "bad" and "50-app" in (r.b.get("last_error") or ""), f"state: {r.groups}")
    r.that(r.env.get("BootOrder", [])[:2] == [1, 2], f"BootOrder: {r.env}")
    r.that(r.env.get("Boot0002.active") is False and r.env.get("Boot0001.active") is True, f"options: {r.env}")
    r.that("BootNext" not in r.env, f"a BootNext is left: {r.env}")
    r.that(efiboot_seen(r).get("BootCurrent") == "0001", f"efivarfs in A: {efiboot_seen(r)}")
    # Interop: efibootmgr in the guest reads the agent's writes: before the
    # apply B's option inactive (no `*`), at the end too, A active.
    emgr = [t for _, t in r.kept_marks if t.startswith("efibootmgr ")]
    r.that(len(emgr) >= 2 and "Boot0002  updater B" in emgr[0] and "Boot0002  updater B" in emgr[-1]
           and "Boot0001* updater A" in emgr[-1] and "BootOrder: 0001,0002" in emgr[-1] and "BootNext" not in emgr[-1],
           f"efibootmgr in the guest: {emgr}")
    r.that((r.st or {}).get("booted") == "A", f"status: {r.st}")


def check_sdboot_uki(r):
    """A UKI release on Type #2 entries: kexec'd by its sections as the
    trial (the UKI's .cmdline plus the agent's parameters), then booted by
    sd-boot as the Type #2 entry EFI/Linux/updater-B.efi, whose own command
    line names no slot: the agent and the guest read the slot from
    LoaderEntrySelected. Then sdboot-commit's checks, on .efi entries."""
    g = r.g
    kexec_cmd = g.first(r"E2E-MARK boot slot=B version=2 trial=yes")
    r.that(kexec_cmd is not None, "B was not kexec'd as a trial")
    cold = g.first(r"E2E-MARK boot slot=B version=2 trial=no .*selected=updater-b\.efi",
                   after=kexec_cmd[0] if kexec_cmd else 1e9)
    r.that(cold is not None, "sd-boot did not boot B's UKI as the Type #2 entry updater-b.efi")
    cmd = r.kept(r"cmdline ")
    r.that(cmd and cmd[1] == "cmdline console=ttyS0 panic=5", f"B's command line in its cold boot is not its UKI's own: {cmd}")
    check_sdboot_commit(r, t2=True)


def serving(folder, about):
    """A setup that serves the release FOLDER (under the guest's base)
    instead of its usual one."""
    def setup(r):
        shutil.rmtree(r.rel)
        shutil.copytree(os.path.join(r.base, folder), r.rel)
    setup.__doc__ = f"Serve {about}."
    return setup


serve_uki = serving("release-uki", "the release that carries a UKI")
serve_unsigned = serving("release-unsigned", "the release whose kernel has no Authenticode signature")


def tamper_chunk(r):
    """Alter one byte of a chunk that must be fetched: one of the
    application file, which the factory image in slot A does not have (a
    chunk A has would be read from A, and the tampering unseen)."""
    image = open(os.path.join(r.work, "slot-v2.ext4"), "rb").read()
    app = open(os.path.join(r.work, "app-2.bin"), "rb").read()
    at = image.index(app[4 * MIB:4 * MIB + 64])
    off, size, coff, csize = next(ch for ch in index_chunks(os.path.join(r.rel, "rootfs.index"))
                                  if ch[0] <= at < ch[0] + ch[1])
    with open(os.path.join(r.rel, "rootfs.img.zst"), "r+b") as f:
        f.seek(coff + csize // 2)
        b = f.read(1)
        f.seek(coff + csize // 2)
        f.write(bytes([b[0] ^ 0x01]))


def serve_release3(r):
    """Release 3 from a second server, slow enough to cut the power in the
    middle of the delta (128 KiB/s); it logs every request's bytes. And
    where the second changed region of the application file starts in the
    image file as served: the power is cut while it downloads, after the
    first region was written."""
    rel3 = os.path.join(r.dir, "release3")
    shutil.copytree(os.path.join(r.work, "release3"), rel3)
    r.port3 = r.serve(rel3, r.requests3, rate=128 * 1024, stderr="server3.log")
    image = open(os.path.join(r.work, "slot-v3.ext4"), "rb").read()
    app = open(os.path.join(r.work, "app-3.bin"), "rb").read()
    at = image.index(app[5 * MIB:5 * MIB + 64])
    r.second_region = next(ch[2] for ch in index_chunks(os.path.join(r.work, "release3", "rootfs.index"))
                           if ch[0] <= at < ch[0] + ch[1])


# --- the registry ------------------------------------------------------------

GRUB = GuestKind(
    name="grub", about="busybox initramfs as the slot's system; OVMF + GRUB (integration/guest)",
    base="", slot_a=P2_START, slot_b=P3_START, data=P4_START, data_size=DATA_SIZE,
    data_dirs=("state", "slots/A", "slots/B"), e2e_dir="", state_path="/state/state.json", kept_path="/e2e-kept",
    read_env=read_grubenv, timeout=SCENARIO_TIMEOUT, checks=(guest_finished,))
UBOOT = GuestKind(
    name="uboot", about="the same busybox guest; Debian's qemu-x86 U-Boot ROM as -bios, boot.scr",
    base="", slot_a=P2_START, slot_b=P3_START, data=P4_START, data_size=DATA_SIZE,
    data_dirs=("state", "slots/A", "slots/B"), e2e_dir="", state_path="/state/state.json", kept_path="/e2e-kept",
    read_env=read_ubootenv, timeout=SCENARIO_TIMEOUT, checks=(guest_finished, uboot_ran),
    bios=os.path.join("uboot", "root", "usr", "lib", "u-boot", "qemu-x86", "u-boot.rom"))
SYSTEMD = GuestKind(
    name="systemd", about="Debian, systemd as PID 1, read-only squashfs root, the .deb; OVMF + GRUB (integration/sdguest)",
    base="sd", slot_a=SD_P2_START, slot_b=SD_P3_START, data=SD_P4_START, data_size=SD_DATA_SIZE,
    data_dirs=("e2e", "e2e/journal", "slots/A", "slots/B"), e2e_dir="e2e", state_path="/state.json",
    kept_path="/e2e/kept", read_env=read_grubenv, timeout=SD_SCENARIO_TIMEOUT, checks=(guest_finished, systemd_guest),
    slot_a_image="slot-v1.sqfs")

SDBOOT = GuestKind(
    name="sdboot", about="the busybox guest; OVMF (CODE_4M + a VARS copy per scenario) + systemd-boot 252, kernels on the ESP",
    base="sdboot", slot_a=SDB_P2_START, slot_b=SDB_P3_START, data=SDB_P4_START, data_size=DATA_SIZE,
    data_dirs=("state", "slots/A", "slots/B"), e2e_dir="", state_path="/state/state.json", kept_path="/e2e-kept",
    read_env=read_sdboot, timeout=SCENARIO_TIMEOUT, checks=(guest_finished, sdboot_ran), pflash=True)

SECURE = GuestKind(
    name="secure", about="the systemd-boot guest under OVMF's Secure Boot firmware (snakeoil keys enrolled), sd-boot and kernels signed",
    base="sb", slot_a=SDB_P2_START, slot_b=SDB_P3_START, data=SDB_P4_START, data_size=DATA_SIZE,
    data_dirs=("state", "slots/A", "slots/B"), e2e_dir="", state_path="/state/state.json", kept_path="/e2e-kept",
    read_env=read_sdboot, timeout=SCENARIO_TIMEOUT, checks=(guest_finished, sdboot_ran, secure_boot_locked_down),
    pflash=True, code_fd="/usr/share/OVMF/OVMF_CODE_4M.secboot.fd", vars_template="/usr/share/OVMF/OVMF_VARS_4M.snakeoil.fd",
    machine=("-machine", "q35,smm=on", "-global", "driver=cfi.pflash01,property=secure,value=on",
             "-global", "ICH9-LPC.disable_s3=1"))

UKIBOOT = GuestKind(
    name="ukiboot", about="the systemd-boot guest whose slots boot as Type #2 entries: each slot's UKI in EFI/Linux",
    base="uki", slot_a=SDB_P2_START, slot_b=SDB_P3_START, data=SDB_P4_START, data_size=DATA_SIZE,
    data_dirs=("state", "slots/A", "slots/B"), e2e_dir="", state_path="/state/state.json", kept_path="/e2e-kept",
    read_env=read_sdboot, timeout=SCENARIO_TIMEOUT, checks=(guest_finished, sdboot_ran), pflash=True)

EFIBOOT = GuestKind(
    name="efiboot", about="the busybox guest; OVMF's own boot manager: a Boot#### option per slot starts its kernel from the ESP",
    base="sdboot", slot_a=SDB_P2_START, slot_b=SDB_P3_START, data=SDB_P4_START, data_size=DATA_SIZE,
    data_dirs=("state", "slots/A", "slots/B"), e2e_dir="", state_path="/state/state.json", kept_path="/e2e-kept",
    read_env=read_efiboot, timeout=SCENARIO_TIMEOUT, checks=(guest_finished,), pflash=True)

SCENARIOS = {sc.name: sc for sc in [
    Scenario("commit", GRUB, "apply --kexec; B's health arms its cold boot; GRUB's one-shot; health commits",
             65, (kexec_trial, check_commit, slot_a_untouched), KEXEC),
    Scenario("health-fail", GRUB, "B by kexec fails its health check and reboots; GRUB boots A; B bad with the reason",
             48, (kexec_trial, check_health_fail, slot_a_untouched), KEXEC),
    Scenario("hang", GRUB, "B by kexec hangs before its health check; the watchdog resets to A; A marks B bad",
             86, (kexec_trial, check_hang, slot_a_untouched), KEXEC),
    Scenario("powercut", GRUB, "power cut mid-download (2 MiB/s); A boots; apply again resumes",
             48, (check_powercut, slot_a_untouched), rate=2 * MIB,
             cut=Cut("E2E-MARK apply-start install", log="requests", seconds=4)),
    Scenario("tampered", GRUB, "one byte altered in a chunk on the server: apply exits 3, nothing boots",
             19, (check_tampered, slot_a_untouched), setup=tamper_chunk),
    Scenario("reboot", GRUB, "apply --reboot; GRUB's one-shot boots B; health commits",
             37, (check_reboot, slot_a_untouched), REBOOT),
    Scenario("daemon", GRUB, "daemon --once follows the channel, installs, kexecs; commit; daemon in B up to date",
             55, (kexec_trial, check_daemon, slot_a_untouched), KEXEC),
    Scenario("delta", GRUB, "as commit, then release 3 into A by delta from B's chunks, cut mid-way, resumed",
             106, (kexec_trial, check_delta, delta_slots), KEXEC, setup=serve_release3,
             cut=Cut("E2E-MARK apply-start delta", log="requests3", seconds=3,
                     from_byte=lambda r: max(r.second_region - 65536, 1))),
    Scenario("coldboot", GRUB, "commit by kexec, then B's kernel broken on disk: GRUB falls back to A, B bad",
             59, (kexec_trial, cold_boot_failed, slot_a_untouched), KEXEC),
    Scenario("uboot-commit", UBOOT, "commit's steps under U-Boot; uboot.env read by fw_printenv",
             55, (kexec_trial, check_uboot_commit, slot_a_untouched), KEXEC),
    Scenario("uboot-reboot", UBOOT, "reboot's steps under U-Boot: U-Boot consumes the one-shot, boots B, commit",
             31, (check_uboot_reboot, slot_a_untouched), REBOOT),
    Scenario("uboot-hang", UBOOT, "hang's steps under U-Boot: the watchdog resets to the ROM, U-Boot boots A",
             78, (kexec_trial, check_uboot_hang, slot_a_untouched), KEXEC),
    Scenario("uboot-oneshot-cut", UBOOT, "apply --reboot; power cut right after U-Boot saved the consumed one-shot",
             35, (check_uboot_oneshot_cut, slot_a_untouched),
             cut=Cut("updater: booting slot B updater.trial=1")),
    Scenario("uboot-coldboot", UBOOT, "coldboot's steps under U-Boot",
             43, (kexec_trial, cold_boot_failed, slot_a_untouched), KEXEC),
    Scenario("sdboot-commit", SDBOOT, "apply --kexec under systemd-boot; LoaderEntryOneShot cold boot; commit writes LoaderEntryDefault",
             90, (kexec_trial, check_sdboot_commit, slot_a_untouched), KEXEC),
    Scenario("sdboot-hang", SDBOOT, "apply --reboot; sd-boot's one-shot boots B, which hangs; the watchdog resets; sd-boot boots A",
             90, (check_sdboot_hang, slot_a_untouched), REBOOT),
    Scenario("sdboot-sb-commit", SECURE, "Secure Boot, locked down: a kernel signed by the enrolled key kexecs as a trial and commits",
             100, (kexec_trial, check_sdboot_commit, slot_a_untouched), KEXEC),
    Scenario("sdboot-sb-unsigned", SECURE, "Secure Boot: a kernel without an enrolled Authenticode signature is refused; exit 6, nothing changed",
             45, (check_sb_unsigned, slot_a_untouched), setup=serve_unsigned),
    Scenario("sdboot-uki", UKIBOOT, "a UKI release on Type #2 entries: kexec'd by its sections, cold-booted by sd-boot, committed",
             90, (kexec_trial, check_sdboot_uki, slot_a_untouched), KEXEC, setup=serve_uki),
    Scenario("efi-health-fail", EFIBOOT, "apply --reboot; BootNext boots B, whose health check fails; Boot0002 out of BootOrder; A",
             60, (check_efi_health_fail, slot_a_untouched), REBOOT, setup=provision_efi_boot),
    Scenario("sd-kexec", SYSTEMD, "apply --kexec via systemctl kexec; PID 1 feeds the watchdog; cold boot commits",
             232, (sd_committed, slot_a_untouched), KEXEC),
    Scenario("sd-daemon", SYSTEMD, "updater.service (Type=notify) follows the channel and kexecs; as sd-kexec",
             242, (sd_committed, check_sd_daemon, slot_a_untouched), KEXEC, flags=("daemon",)),
    Scenario("sd-hang", SYSTEMD, "B hangs before its health check; systemd times boot-complete.target out; A",
             305, (check_sd_hang, sd_back_on_a, slot_a_untouched), KEXEC, flags=("hang",)),
    Scenario("sd-hang-early", SYSTEMD, "B hangs in its initramfs; KExecWatchdogSec's watchdog resets to A",
             237, (check_sd_hang_early, sd_back_on_a, slot_a_untouched), KEXEC, flags=("hang-early",)),
    Scenario("sd-health-fail", SYSTEMD, "B's health check fails; a clean reboot to A; A's status says why",
             181, (check_sd_health_fail, sd_back_on_a, slot_a_untouched), KEXEC),
]}


# --- the command line --------------------------------------------------------

def registry_table():
    rows = [f"{'scenario':<18} {'guest':<8} {'~s':>4}  {'B by':<6} what it proves"]
    rows += [f"{s.name:<18} {s.guest.name:<8} {s.expect_s:>4}  {s.jump.via if s.jump else '-':<6} {s.about}"
             for s in SCENARIOS.values()]
    return "\n".join(rows)


def run_safely(sc, work):
    """A scenario's result; a harness error fails that scenario only."""
    t0 = time.monotonic()
    try:
        return run_scenario(sc, work)
    except Exception:  # noqa: BLE001 - reported as the scenario's failure
        return result(sc, [f"the harness failed: {traceback.format_exc()}"],
                      {"wall_s": round(time.monotonic() - t0, 1)}, os.path.join(work, "scenarios", sc.name, "console.log"))


def summary_table(results, build_s, scenarios_s, total_s, jobs):
    rows = [f"{'scenario':<18} {'guest':<8} {'result':<6} {'wall s':>7} {'downtime s':>10}  via"]
    for r in results:
        t = r["timings"]
        down = t.get("downtime_s")
        rows.append(f"{r['scenario']:<18} {r['guest']:<8} {'PASS' if r['ok'] else 'FAIL':<6} {t.get('wall_s', 0):>7.1f} "
                    f"{(f'{down:.1f}' if down is not None else '-'):>10}  {t.get('downtime_via', '-')}")
    guest_s = sum(r["timings"].get("wall_s", 0) for r in results)
    rows.append(f"{'total':<18} {'':<8} {'':<6} {scenarios_s:>7.1f}  "
                f"({len(results)} scenarios, {jobs} at a time: {guest_s:.0f} s of guest time; "
                f"build {build_s:.0f} s; whole run {total_s:.0f} s = {total_s / 60:.1f} min)")
    return "\n".join(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__, epilog="scenarios (the registry):\n" + registry_table(),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default=os.path.join(REPO, "target", "e2e"))
    ap.add_argument("--jobs", type=int, default=2, help="guests at a time (default 2)")
    ap.add_argument("--no-build", action="store_true", help="reuse the images in --work")
    ap.add_argument("--only", nargs="+", default=[], metavar="NAME", help="run these scenarios only")
    ap.add_argument("--list", action="store_true", help="print the registry and exit")
    ap.add_argument("scenarios", nargs="*", metavar="NAME", help="as --only")
    a = ap.parse_args()
    if a.list:
        print(registry_table())
        return
    names = list(dict.fromkeys(a.only + a.scenarios)) or list(SCENARIOS)
    unknown = [s for s in names if s not in SCENARIOS]
    if unknown:
        ap.error(f"unknown scenario(s) {unknown}; known: {list(SCENARIOS)}")
    os.makedirs(a.work, exist_ok=True)
    t0 = time.monotonic()
    if not a.no_build:
        subprocess.run([os.path.join(HERE, "build.sh"), a.work], check=True)
    build_s = time.monotonic() - t0
    # The longest first: with two at a time, the short ones fill in at the end.
    queue = sorted((SCENARIOS[n] for n in names), key=lambda s: -s.expect_s)
    done = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=a.jobs) as pool:
        futures = [pool.submit(run_safely, sc, a.work) for sc in queue]
        for f in concurrent.futures.as_completed(futures):
            r = f.result()
            mark = "PASS" if r["ok"] else "FAIL"
            print(f"{mark} {r['scenario']:<17} {json.dumps(r['timings'])}  log: {r['log']}", flush=True)
            for failure in r["failures"]:
                print(f"     - {failure}", flush=True)
            done[r["scenario"]] = r
    results = [done[n] for n in names]
    total_s = time.monotonic() - t0
    scenarios_s = total_s - build_s
    with open(os.path.join(a.work, "results.json"), "w") as f:
        json.dump({"build_s": round(build_s, 1), "scenarios_s": round(scenarios_s, 1), "total_s": round(total_s, 1),
                   "jobs": a.jobs, "results": results}, f, indent=2)
    passed = sum(r["ok"] for r in results)
    print()
    print(summary_table(results, build_s, scenarios_s, total_s, a.jobs))
    print(f"e2e: build {build_s:.0f}s, total {total_s:.0f}s")
    print(f"{passed} passed, {len(results) - passed} failed")
    sys.exit(0 if passed == len(results) else 1)


if __name__ == "__main__":
    main()
