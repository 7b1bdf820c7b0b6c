#!/usr/bin/env python3
"""End-to-end proof on real boots: QEMU (TCG) + OVMF + GRUB + a watchdog +
kexec, running the real `updater` inside the guest.

Usage: integration/e2e.py [--work DIR] [--jobs N] [SCENARIO ...]
Scenarios: commit, health-fail, hang, powercut, tampered, reboot, daemon,
delta (default: all).

Every QEMU and server process is started here, ended here by PID, and has a
time limit. The guest reaches only the release server: QEMU user networking
with restrict=on and one guestfwd rule (a host-side `busybox nc` per
connection to the server's loopback port).
"""
import argparse
import concurrent.futures
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
UPDATER = os.path.join(REPO, "target", "release", "updater")
VENDOR = os.path.join(REPO, "target", "release", "updater-vendor")
SCENARIOS = ["commit", "health-fail", "hang", "powercut", "tampered", "reboot", "daemon", "delta", "coldboot",
             "uboot-commit", "uboot-reboot", "uboot-hang", "uboot-oneshot-cut", "uboot-coldboot",
             "sd-kexec", "sd-daemon", "sd-hang", "sd-hang-early", "sd-health-fail"]
SCENARIO_TIMEOUT = 420
# The systemd guest boots three or four times, and sd-hang waits out the
# trial's 150 s deadline: about 300 s here, so more room.
SD_SCENARIO_TIMEOUT = 600
MIB = 1024 * 1024
P2_START, P3_START, P4_START = 17 * MIB, 81 * MIB, 145 * MIB
DATA_SIZE = 48 * MIB
# The systemd guest's disk (integration/sdguest/build.sh): larger slots for
# its squashfs images, the state at the data partition's root (it is
# /var/lib/updater there).
SD_P2_START, SD_P3_START, SD_P4_START = 17 * MIB, 113 * MIB, 209 * MIB
SD_DATA_SIZE = 64 * MIB


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Guest:
    """One QEMU guest with its console log, markers and monitor."""

    def __init__(self, name, workdir, disk, port, port3=None, bios="/usr/share/ovmf/OVMF.fd"):
        self.name = name
        self.bios = bios
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
        fwd = f"guestfwd=tcp:10.0.2.100:8080-cmd:/bin/busybox nc 127.0.0.1 {self.port}"
        if self.port3:
            # Release 3 (the delta scenario) from a second server.
            fwd += f",guestfwd=tcp:10.0.2.100:8081-cmd:/bin/busybox nc 127.0.0.1 {self.port3}"
        cmd = [
            "qemu-system-x86_64", "-accel", "tcg", "-m", "512", "-smp", "1",
            "-bios", self.bios,
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


def read_grubenv(disk):
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


def data_part(disk, workdir, start=P4_START, size=DATA_SIZE):
    part = os.path.join(workdir, "data.part")
    with open(disk, "rb") as src, open(part, "wb") as dst:
        src.seek(start)
        dst.write(src.read(size))
    return part


def read_state(disk, workdir, start=P4_START, size=DATA_SIZE, path="/state/state.json"):
    out = subprocess.run(["debugfs", "-R", f"cat {path}", data_part(disk, workdir, start, size)],
                         capture_output=True, check=True)
    return json.loads(out.stdout.decode())


def data_clean(disk, workdir, start, size):
    """Whether the data partition's ext4 was cleanly unmounted (its
    superblock state, as dumpe2fs reads it after QEMU exited), and the
    superblock's mount count."""
    out = subprocess.run(["dumpe2fs", "-h", data_part(disk, workdir, start, size)], capture_output=True, text=True)
    fields = dict(line.split(":", 1) for line in out.stdout.splitlines() if ":" in line)
    return fields.get("Filesystem state", "").strip(), fields.get("Mount count", "").strip()


def sha_of_region(disk, start, size):
    import hashlib
    h = hashlib.sha256()
    with open(disk, "rb") as f:
        f.seek(start)
        h.update(f.read(size))
    return h.hexdigest()


def index_chunks(path):
    """(offset, size, coffset, csize) of each chunk of a schema-2 index
    (docs/release-format.md), read independently of the agent's parser."""
    import struct
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


def final_status(g):
    m = g.marks(r"E2E-MARK status (\{.*\})")
    if not m:
        return None
    return json.loads(re.search(r"E2E-MARK status (\{.*\})", m[-1][1]).group(1))


class Check:
    def __init__(self):
        self.failures = []

    def that(self, cond, what):
        if not cond:
            self.failures.append(what)
        return cond


def run_scenario(name, work):
    sdir = os.path.join(work, "scenarios", name)
    shutil.rmtree(sdir, ignore_errors=True)
    os.makedirs(sdir)
    sd = name.startswith("sd-")
    # The systemd guest has its own disk, release and layout.
    base = os.path.join(work, "sd") if sd else work
    p2, p3, p4, dsize = (SD_P2_START, SD_P3_START, SD_P4_START, SD_DATA_SIZE) if sd else (P2_START, P3_START, P4_START, DATA_SIZE)
    disk = os.path.join(sdir, "disk.img")
    shutil.copyfile(os.path.join(base, "disk.img"), disk)
    # The scenario's name on a fresh data partition.
    ddir = tempfile.mkdtemp(dir=sdir)
    for d in (["e2e", "e2e/journal", "slots/A", "slots/B"] if sd else ["state", "slots/A", "slots/B"]):
        os.makedirs(os.path.join(ddir, d))
    with open(os.path.join(ddir, "e2e/scenario" if sd else "scenario"), "w") as f:
        f.write(name + "\n")
    # Flags the systemd guest's units test (integration/sdguest).
    if name == "sd-hang":
        open(os.path.join(ddir, "e2e", "hang"), "w").close()
    if name == "sd-daemon":
        open(os.path.join(ddir, "e2e", "daemon"), "w").close()
    if name == "sd-hang-early":
        open(os.path.join(ddir, "e2e", "hang-early"), "w").close()
    data = os.path.join(sdir, "data.img")
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", ddir, data, f"{dsize // MIB}M"], check=True)
    with open(data, "rb") as src, open(disk, "r+b") as dst:
        dst.seek(p4)
        dst.write(src.read())
    shutil.rmtree(ddir)
    # The release as served.
    rel = os.path.join(sdir, "release")
    shutil.copytree(os.path.join(base, "release"), rel)
    rate = None
    if name == "tampered":
        # Alter one byte of a chunk that must be fetched: one of the
        # application file, which the factory image in slot A does not have
        # (a chunk A has would be read from A, and the tampering unseen).
        image = open(os.path.join(work, "slot-v2.ext4"), "rb").read()
        app = open(os.path.join(work, "app-2.bin"), "rb").read()
        at = image.index(app[4 * MIB:4 * MIB + 64])
        off, size, coff, csize = next(ch for ch in index_chunks(os.path.join(rel, "rootfs.index"))
                                      if ch[0] <= at < ch[0] + ch[1])
        with open(os.path.join(rel, "rootfs.img.zst"), "r+b") as f:
            f.seek(coff + csize // 2)
            b = f.read(1)
            f.seek(coff + csize // 2)
            f.write(bytes([b[0] ^ 0x01]))
    if name == "powercut":
        rate = str(2 * MIB)  # slow enough to cut the power mid-download
    port = free_port()
    requests2 = os.path.join(sdir, "release-requests.log")
    limit = SD_SCENARIO_TIMEOUT if sd else SCENARIO_TIMEOUT
    server_cmd = [VENDOR, "serve", rel, "--listen", f"127.0.0.1:{port}", "--seconds", str(limit + 60),
                  "--log", requests2]
    if rate:
        server_cmd += ["--rate", rate]
    server = subprocess.Popen(server_cmd, stdout=subprocess.DEVNULL, stderr=open(os.path.join(sdir, "server.log"), "w"))
    servers = [server]
    port3 = None
    requests3 = os.path.join(sdir, "release3-requests.log")
    if name == "delta":
        # Release 3 from a second server, slow enough to cut the power in
        # the middle of the delta; it logs every request's bytes.
        rel3 = os.path.join(sdir, "release3")
        shutil.copytree(os.path.join(work, "release3"), rel3)
        port3 = free_port()
        servers.append(subprocess.Popen(
            [VENDOR, "serve", rel3, "--listen", f"127.0.0.1:{port3}", "--seconds", str(SCENARIO_TIMEOUT + 60),
             "--rate", str(128 * 1024), "--log", requests3],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(sdir, "server3.log"), "w")))
    slot_bytes = os.path.getsize(os.path.join(base, "slot-v1.sqfs")) if sd else 48 * MIB
    a_before = sha_of_region(disk, p2, slot_bytes)
    uboot = name.startswith("uboot-")
    bios = os.path.join(work, "uboot", "root", "usr", "lib", "u-boot", "qemu-x86", "u-boot.rom") if uboot else None
    guest = Guest(name, sdir, disk, port, port3, **({"bios": bios} if bios else {}))
    resets = []

    def cut_after_request(g, log_path, seconds, from_byte=0):
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

    # The delta's second changed region of the application file, in the
    # image file as served: the power is cut while it downloads, after the
    # first region was written.
    second_region = 0
    if name == "delta":
        image = open(os.path.join(work, "slot-v3.ext4"), "rb").read()
        app = open(os.path.join(work, "app-3.bin"), "rb").read()
        at = image.index(app[5 * MIB:5 * MIB + 64])
        second_region = next(ch[2] for ch in index_chunks(os.path.join(work, "release3", "rootfs.index"))
                             if ch[0] <= at < ch[0] + ch[1])

    def on_line(g, t, line):
        if name == "uboot-oneshot-cut" and "updater: booting slot B updater.trial=1" in line and not resets:
            # U-Boot has consumed and saved the one-shot (it prints this line
            # after the fatwrite): cut the power before B's kernel is up.
            resets.append(t)
            g.monitor_cmd("system_reset")
        if name == "powercut" and "E2E-MARK apply-start install" in line and not resets:
            resets.append(t)
            cut_after_request(g, requests2, 4)
        if name == "delta" and "E2E-MARK apply-start delta" in line and not resets:
            resets.append(t)
            # Release 3 is served at 128 KiB/s: cut 3 s into the second
            # changed region (the first is written by then).
            cut_after_request(g, requests3, 3, max(second_region - 65536, 1))

    t0 = time.monotonic()
    try:
        guest.run(on_line, timeout=limit)
    finally:
        for srv in servers:
            srv.send_signal(signal.SIGKILL)
            srv.wait(timeout=10)
    wall = time.monotonic() - t0
    c = Check()
    env = read_ubootenv(disk, sdir) if uboot else read_grubenv(disk)
    try:
        state = read_state(disk, sdir, p4, dsize, "/state.json" if sd else "/state/state.json")
    except Exception as e:  # noqa: BLE001 - reported as a failure
        state = {}
        c.that(False, f"state file unreadable: {e}")
    groups = state.get("groups", {})
    st = final_status(guest)
    c.that(guest.first(r"E2E-MARK FINAL") is not None, "the guest never reached FINAL")
    c.that(not guest.marks(r"E2E-MARK error"), f"errors: {[l for _, l in guest.marks(r'E2E-MARK error')]}")
    boots = guest.marks(r"E2E-MARK boot slot=")
    grub = guest.marks(r"updater: booting slot")
    timings = {"wall_s": round(wall, 1)}

    def timing(key, a, b):
        if a and b:
            timings[key] = round(b[0] - a[0], 1)

    if uboot:
        c.that(guest.first(r"U-Boot 20\d\d") is not None, "U-Boot did not run")
        c.that("fw_printenv_error" not in env, f"fw_printenv cannot read the env U-Boot and the agent wrote: {env}")
        c.that(not guest.marks(r"GRUB|BdsDxe"), "GRUB or OVMF ran in a U-Boot scenario")
    if name in ("commit", "health-fail", "hang", "daemon", "delta", "coldboot", "uboot-commit", "uboot-hang", "uboot-coldboot"):
        c.that(len(boots) >= 2 and "slot=A version=1" in boots[0][1], "first boot is not A v1")
        c.that(guest.first(r"E2E-MARK apply rc=") is None, "apply returned instead of jumping by kexec")
        kexec_boot = guest.first(r"E2E-MARK boot slot=B version=2 trial=yes")
        c.that(kexec_boot is not None, "B never booted as a trial")
        # B arrived by kexec: no GRUB in between.
        start = guest.first(r"E2E-MARK apply-start kexec")
        c.that(start and kexec_boot and not [g for g in grub if start[0] < g[0] < kexec_boot[0]],
               "GRUB ran between the apply and B's boot: that was not a kexec")
        jump = guest.first(r"kexec_core: Starting new kernel")
        timing("apply_s", start, jump)
        timing("kexec_to_new_userspace_s", jump, kexec_boot)
        timing("reset_to_grub_s", (0.0, ""), grub[0] if grub else None)
    if name == "commit":
        # The kexec boot's health passes and arms B's first cold boot; the
        # reset boots B through GRUB's one-shot, where health commits.
        deferred = guest.first(r'E2E-MARK health rc=0 .*"outcome":"cold-boot-pending"')
        c.that(deferred is not None, "health in the kexec boot did not guard the first cold boot")
        reset = guest.first(r"E2E-MARK reset-after-commit")
        c.that(reset and guest.first(r"updater: booting slot B updater.trial=1", after=reset[0]),
               "GRUB did not boot B's first cold boot as a one-shot after the reset")
        commit = guest.first(r"E2E-MARK health rc=0 .*committed", after=reset[0] if reset else 1e9)
        c.that(commit is not None, "health did not commit B in its first cold boot")
        timing("health_to_commit_s", kexec_boot, commit)
        k = (st or {}).get("kernel") or {}
        c.that(k.get("lockdown") == "none" and k.get("kexec_sig") == "not-enforced" and k.get("kexec_loaded") is False,
               f"status does not report the guest kernel's lockdown and kexec state: {k}")
        c.that(guest.first(r"E2E-MARK boot slot=B version=2 trial=no") is not None, "B did not boot by default")
        c.that(env.get("ORDER") == "B A" and env.get("B_OK") == "1", f"grubenv after commit: {env}")
        c.that(groups.get("B", {}).get("status") == "good" and groups.get("B", {}).get("version") == "2.0.0", f"state: {groups}")
        c.that(st and st["groups"]["B"]["status"] == "good" and st["booted"] == "B", f"status on B: {st}")
    if name == "daemon":
        c.that(guest.first(r"E2E-MARK cold-boot-reset") is not None, "B's first cold boot was not guarded")
        c.that(guest.first(r"E2E-MARK health rc=0 .*committed") is not None, "health did not commit B")
        again = guest.first(r"E2E-MARK daemon-again rc=0 .*up to date")
        c.that(again is not None, "the daemon in B did not find itself up to date")
        c.that(env.get("ORDER") == "B A" and env.get("B_OK") == "1", f"grubenv after commit: {env}")
        c.that(groups.get("B", {}).get("status") == "good" and groups.get("B", {}).get("version") == "2.0.0", f"state: {groups}")
        c.that("stable" in state.get("channels_issued", {}), f"the channel was not recorded: {state}")
    if name == "uboot-commit":
        deferred = guest.first(r'E2E-MARK health rc=0 .*"outcome":"cold-boot-pending"')
        c.that(deferred is not None, "health in the kexec boot did not guard the first cold boot")
        reset = guest.first(r"E2E-MARK reset-after-commit")
        cold = guest.first(r"updater: booting slot B updater.trial=1", after=reset[0] if reset else 1e9)
        c.that(cold is not None, "U-Boot did not boot B's first cold boot as a one-shot")
        commit = guest.first(r"E2E-MARK health rc=0 .*committed", after=cold[0] if cold else 1e9)
        c.that(commit is not None, "health did not commit B in its first boot through U-Boot")
        c.that(guest.first(r"E2E-MARK boot slot=B version=2 trial=no") is not None, "U-Boot did not boot B by default")
        c.that(env.get("BOOT_ORDER") == "B A" and env.get("BOOT_B_LEFT", "0") != "0" and not env.get("BOOT_TRY"),
               f"uboot.env after commit: {env}")
        c.that(groups.get("B", {}).get("status") == "good", f"state: {groups}")
    if name == "uboot-reboot":
        applied = guest.first(r"E2E-MARK apply-start reboot")
        one = guest.first(r"updater: booting slot B updater.trial=1", after=applied[0] if applied else 1e9)
        c.that(one is not None, "U-Boot did not boot B's one-shot trial")
        c.that(guest.first(r"E2E-MARK health rc=0 .*committed") is not None, "health did not commit B")
        c.that(env.get("BOOT_ORDER") == "B A" and env.get("BOOT_B_LEFT", "0") != "0" and not env.get("BOOT_TRY"),
               f"uboot.env: {env}")
        c.that(groups.get("B", {}).get("status") == "good", f"state: {groups}")
    if name == "uboot-hang":
        hang = guest.first(r"E2E-MARK hanging")
        c.that(hang is not None, "B did not reach the hang")
        back = guest.first(r"updater: booting slot A", after=hang[0] if hang else 0)
        c.that(back is not None, "the watchdog did not bring the machine back to U-Boot and A")
        timing("hang_to_uboot_s", hang, back)
        c.that(groups.get("B", {}).get("status") == "bad" and "trial did not confirm" in (groups.get("B", {}).get("last_error") or ""), f"state: {groups}")
        c.that(env.get("BOOT_ORDER") == "A B" and env.get("BOOT_B_LEFT") == "0", f"uboot.env: {env}")
    if name == "uboot-oneshot-cut":
        c.that(len(resets) == 1, "the harness never cut the power after the one-shot")
        after = resets[0] if resets else 1e9
        c.that(guest.first(r"E2E-MARK boot slot=B", after=0) is None, "B's system came up: the cut was too late")
        back = guest.first(r"updater: booting slot A", after=after)
        c.that(back is not None and guest.first(r"updater.trial=1", after=back[0]) is None,
               "U-Boot did not boot A (without a trial) after the cut: the consumed one-shot was not saved")
        c.that(guest.first(r"E2E-MARK health rc=0 .*trial-lost", after=after) is not None, "A did not mark the lost trial")
        c.that(groups.get("B", {}).get("status") == "bad" and "trial did not confirm" in (groups.get("B", {}).get("last_error") or ""), f"state: {groups}")
        c.that(env.get("BOOT_ORDER") == "A B" and env.get("BOOT_B_LEFT") == "0" and not env.get("BOOT_TRY"), f"uboot.env: {env}")
    if name in ("coldboot", "uboot-coldboot"):
        deferred = guest.first(r'E2E-MARK health rc=0 .*"outcome":"cold-boot-pending"')
        c.that(deferred is not None, "health in the kexec boot did not guard the first cold boot")
        broke = guest.first(r"E2E-MARK broke-b-kernel")
        c.that(broke is not None, "the scenario did not break B's kernel on the disk")
        after = broke[0] if broke else 1e9
        c.that(guest.first(r"updater: booting slot B updater.trial=1", after=after) is not None,
               "GRUB did not try B's first cold boot")
        c.that(guest.first(r"updater: slot B cannot be loaded", after=after) is not None,
               "GRUB did not report B's kernel unloadable")
        back = guest.first(r"E2E-MARK boot slot=A version=1", after=after)
        c.that(back is not None, "A did not come back after B's failed cold boot")
        c.that(guest.first(r"E2E-MARK health rc=0 .*trial-lost", after=after) is not None, "A did not mark B's lost cold boot")
        why = groups.get("B", {}).get("last_error") or ""
        c.that(groups.get("B", {}).get("status") == "bad" and "committed by kexec, failed its first cold boot" in why,
               f"state: {groups}")
        if uboot:
            c.that(env.get("BOOT_ORDER") == "A B" and env.get("BOOT_B_LEFT") == "0" and not env.get("BOOT_TRY"), f"uboot.env: {env}")
        else:
            c.that(env.get("ORDER") == "A B" and env.get("B_OK") == "0" and env.get("B_TRY") == "0", f"grubenv: {env}")
        c.that(st and st["booted"] == "A" and "failed its first cold boot" in (st["groups"]["B"].get("last_error") or ""),
               f"status on A: {st}")
    if name == "health-fail":
        # B's health fails and reboots at once (health.reboot_on_failure), so
        # the evidence is GRUB booting A after B's trial boot, and the state.
        back = guest.first(r"updater: booting slot A", after=kexec_boot[0] if kexec_boot else 1e9)
        c.that(back is not None, "GRUB did not boot A after B's failed health check")
        timing("trial_boot_to_grub_s", kexec_boot, back)
        c.that(guest.first(r"E2E-MARK boot slot=A version=1", after=back[0] if back else 1e9) is not None, "A did not come back")
        c.that(env.get("ORDER") == "A B" and env.get("B_OK") == "0", f"grubenv: {env}")
        c.that(groups.get("B", {}).get("status") == "bad" and "50-app" in (groups.get("B", {}).get("last_error") or ""), f"state: {groups}")
        c.that(st and st["booted"] == "A" and st["groups"]["B"]["status"] == "bad", f"status on A: {st}")
    if name == "hang":
        hang = guest.first(r"E2E-MARK hanging")
        c.that(hang is not None, "B did not reach the hang")
        back = guest.first(r"updater: booting slot A", after=hang[0] if hang else 0)
        c.that(back is not None, "the watchdog did not bring the machine back to A")
        timing("hang_to_grub_s", hang, back)
        c.that(guest.first(r"E2E-MARK health rc=0 .*trial-lost") is not None, "A did not mark the lost trial")
        c.that(groups.get("B", {}).get("status") == "bad" and "trial did not confirm" in (groups.get("B", {}).get("last_error") or ""), f"state: {groups}")
        c.that(env.get("ORDER") == "A B" and env.get("B_OK") == "0", f"grubenv: {env}")
    if name == "powercut":
        c.that(len(resets) == 1, "the harness never cut the power")
        after = guest.first(r"E2E-MARK after-cut")
        c.that(after is not None and '"B":{' in after[1], "A did not come back after the cut")
        if after:
            s = json.loads(after[1].split("after-cut ", 1)[1])
            c.that(s["groups"]["B"]["status"] == "installing" and s["groups"]["B"]["bootable"] is False, f"B after the cut: {s['groups']['B']}")
            c.that(s["booted"] == "A", "not on A after the cut")
        applied = guest.first(r"E2E-MARK apply rc=0 .*resumed")
        c.that(applied is not None, "the second apply did not resume and complete")
        timing("resumed_apply_s", after, applied)
        if applied:
            fetched = int(re.search(r"\((\d+) bytes fetched", applied[1]).group(1))
            whole = sum(os.path.getsize(os.path.join(rel, f)) for f in os.listdir(rel))
            timings["resumed_fetch_bytes"] = fetched
            timings["release_bytes"] = whole
            c.that(fetched < whole, f"the second apply fetched {fetched} of {whole} bytes: it started over")
        c.that(groups.get("B", {}).get("status") == "installed", f"state: {groups}")
        c.that(env.get("B_OK") == "0" and env.get("ORDER") == "A B", f"grubenv: {env}")
        c.that(sha_of_region(disk, P3_START, 48 * MIB) == sha_of_region(os.path.join(work, "slot-v2.ext4"), 0, 48 * MIB),
               "slot B does not hold the release")
    if name == "tampered":
        c.that(guest.first(r"E2E-MARK apply rc=3 ") is not None, "apply did not fail with exit code 3")
        c.that(len(boots) == 1, "the guest booted again: something jumped or rebooted")
        c.that(env.get("B_OK") == "0" and env.get("ORDER") == "A B", f"grubenv: {env}")
        b = groups.get("B", {})
        c.that(b.get("status") == "installing" and "chunk" in (b.get("last_error") or ""), f"state: {groups}")
    if name == "reboot":
        applied = guest.first(r"E2E-MARK apply-start reboot")
        trial_grub = guest.first(r"updater: booting slot B updater.trial=1", after=applied[0] if applied else 0)
        c.that(trial_grub is not None, "GRUB did not boot B's one-shot trial")
        c.that(guest.first(r"E2E-MARK health rc=0 .*committed") is not None, "health did not commit B")
        c.that(env.get("ORDER") == "B A" and env.get("B_OK") == "1" and env.get("B_TRY") == "0", f"grubenv: {env}")
        c.that(groups.get("B", {}).get("status") == "good", f"state: {groups}")
        restart = guest.first(r"reboot: Restarting system", after=applied[0] if applied else 0)
        timing("apply_s", applied, restart)
        timing("restart_to_grub_s", restart, trial_grub)
    if name == "delta":
        plan = mark_json(guest, r"E2E-MARK delta-plan rc=0 ")
        c.that(plan is not None, "the dry run did not print a plan")
        rootfs = next((i for i in (plan or {}).get("images", []) if i["class"] == "rootfs"), {})
        seed = (rootfs.get("plan") or {}).get("seed") or {}
        c.that(seed.get("group") == "B" and seed.get("kind") == "kept-index",
               f"the plan does not read the booted slot B through its kept index: {seed}")
        c.that(len(resets) == 1, "the harness never cut the power")
        after = mark_json(guest, r"E2E-MARK after-cut ")
        c.that(after is not None and after["booted"] == "B" and after["groups"]["A"]["status"] == "installing"
               and after["groups"]["A"]["bootable"] is False, f"after the cut: {after}")
        done = mark_json(guest, r"E2E-MARK delta rc=0 ")
        c.that(done is not None and done.get("version") == "3.0.0", "the resumed delta did not complete")
        runs = served_runs(requests3)
        rel3_bytes = sum(os.path.getsize(os.path.join(work, "release3", f)) for f in os.listdir(os.path.join(work, "release3")))
        planned = (plan or {}).get("planned_bytes", 0)
        timings["release3_bytes"] = rel3_bytes
        timings["planned_bytes"] = planned
        timings["served_runs"] = runs
        c.that(len(runs) == 3, f"release 3 was asked for {len(runs)} times, expected 3 (plan, cut, resumed): {runs}")
        if plan and done and len(runs) == 3:
            _, (cut_bytes, _, in_flight), (resumed_bytes, _, _) = runs
            timings["delta_fetched_before_cut"] = cut_bytes
            timings["delta_fetched_resumed"] = resumed_bytes
            c.that(planned < rel3_bytes * 0.35, f"the plan fetches {planned} of the release's {rel3_bytes} bytes: no delta")
            # What the server sent is what the agent counted.
            c.that(resumed_bytes == done["bytes_fetched"], f"served {resumed_bytes}, the agent counted {done['bytes_fetched']}")
            c.that(done["bytes_in_place"] > 0, f"the resumed delta found nothing in place: {done}")
            # The first changed region (1 MiB) was written before the cut:
            # the resumed delta does not fetch it again.
            c.that(cut_bytes > MIB and resumed_bytes < planned - MIB * 3 // 4,
                   f"the resumed delta fetched {resumed_bytes} of the plan's {planned} after {cut_bytes} before the cut")
            # Fetched twice: the request in flight at the cut (the server
            # goes on sending it into the socket buffers after the reset, so
            # it counts it whole) and what was written after the last
            # checkpoint (one second's worth at 128 KiB/s).
            c.that(cut_bytes + resumed_bytes <= planned + in_flight + 128 * 1024,
                   f"fetched {cut_bytes} + {resumed_bytes} in all, the plan said {planned} (+ {in_flight} in flight)")
        timing("resumed_delta_s", guest.first(r"E2E-MARK after-cut"), guest.first(r"E2E-MARK delta rc="))
        c.that(sha_of_region(disk, P2_START, 48 * MIB) == sha_of_region(os.path.join(work, "slot-v3.ext4"), 0, 48 * MIB),
               "slot A does not hold release 3")
        c.that(sha_of_region(disk, P3_START, 48 * MIB) == sha_of_region(os.path.join(work, "slot-v2.ext4"), 0, 48 * MIB),
               "slot B, booted during the delta, was written")
    else:
        # The factory slot A is only ever booted, never written.
        c.that(sha_of_region(disk, p2, slot_bytes) == a_before, "slot A was written")
    if sd:
        check_sd(name, guest, c, env, groups, st, timings, disk, sdir, base)
    return {"scenario": name, "ok": not c.failures, "failures": c.failures, "timings": timings,
            "log": os.path.relpath(guest.log_path, REPO)}


def check_sd(name, guest, c, env, groups, st, timings, disk, sdir, base):
    """The systemd guest's checks (integration/sdguest): systemd is PID 1 on
    a read-only squashfs root, the jump is `systemctl kexec`, the state is on
    a data partition that must come through each jump cleanly unmounted."""
    grub = guest.marks(r"updater: booting slot")

    def timing(key, a, b):
        if a and b:
            timings[key] = round(b[0] - a[0], 1)

    def grub_between(a, b):
        return [g for g in grub if a[0] < g[0] < b[0]]

    boots = guest.marks(r"E2E-MARK boot slot=")
    c.that(boots and "slot=A version=1" in boots[0][1], "first boot is not A v1")
    c.that(guest.first(r"Welcome to .*Debian") is not None, "systemd did not start")
    roots = guest.marks(r"E2E-MARK watchdog ")
    c.that(roots and all("root=squashfs ro" in l for _, l in roots), f"the root filesystem was not read-only squashfs: {roots}")
    # Every boot that mounted the data partition found it clean: each jump
    # (systemctl kexec, systemctl reboot) unmounted it first.
    mounts = guest.marks(r"E2E-MARK data-mount ")
    c.that(mounts and all("mounted filesystem" in l for _, l in mounts), f"the data partition was not mounted: {mounts}")
    c.that(not [l for _, l in mounts if "recovery" in l], f"a mount of the data partition replayed its journal: {mounts}")
    state, count = data_clean(disk, sdir, SD_P4_START, SD_DATA_SIZE)
    c.that(state == "clean", f"the data partition is {state!r} after the last poweroff")
    timings["data_mounts"] = count
    # PID 1 feeds the watchdog; it leaves it armed across a kexec.
    wd = guest.first(r"E2E-MARK watchdog ")
    c.that(wd and "runtime=30s" in wd[1] and "kexec=2min" in wd[1] and "nowayout=1" in wd[1],
           f"systemd's watchdog settings: {wd}")
    # The agent found PID 1 holding the watchdog and relied on it to carry
    # the watchdog across the kexec, instead of failing to open the device.
    # Read from the journal kept on the data partition, dumped by the next
    # boot: what the agent logs just before the jump races the shutdown on
    # the console, never in the journal.
    c.that(guest.first(r"E2E-JOURNAL .*fed by systemd \(RuntimeWatchdogSec=30s\).*KExecWatchdogSec=2min") is not None,
           "the agent did not rely on systemd's watchdog settings")
    c.that(guest.first(r"E2E-JOURNAL .*kexec with: .*updater.deadline=150") is not None,
           "the kexec command line does not carry the trial's deadline")
    start = guest.first(r"E2E-MARK apply-start kexec") if name != "sd-daemon" else guest.first(r"E2E-MARK ready .*boots=1")
    kexec_boot = guest.first(r"E2E-MARK boot slot=B version=2 trial=yes")
    c.that(kexec_boot is not None, "B never booted as a trial")
    # (`systemctl kexec` returns once the shutdown is queued: the apply may
    # return before the system stops, unlike reboot(2)'s jump.)
    if start and kexec_boot:
        c.that(not grub_between(start, kexec_boot), "GRUB ran between the apply and B's boot: that was not a kexec")
        # systemctl kexec: a clean shutdown, the data partition unmounted
        # before the jump.
        jump = guest.first(r"kexec_core: Starting new kernel", after=start[0])
        c.that(jump is not None and jump[0] < kexec_boot[0], "no kexec")
        unmounted = guest.first(r"Unmounted var-lib-updater.mount", after=start[0])
        c.that(unmounted and jump and unmounted[0] < jump[0], "systemd did not unmount the data partition before the kexec")
        timing("apply_to_kexec_s", start, jump)
        timing("kexec_to_new_slot_s", jump, kexec_boot)
    b = groups.get("B", {})

    def health_after(pattern, after):
        return guest.first(r"E2E-MARK health result=success .*" + pattern, after=after[0] if after else 1e9)

    def ordered(after):
        """updater-health.service became active before boot-complete.target
        in the boot after AFTER."""
        m = guest.first(r"E2E-MARK order health=(\d+) boot-complete=(\d+)", after=after[0] if after else 1e9)
        if not m:
            return False
        h, bc = map(int, re.search(r"health=(\d+) boot-complete=(\d+)", m[1]).groups())
        return 0 < h <= bc

    if name in ("sd-kexec", "sd-daemon"):
        pending = health_after("after a kexec", kexec_boot)
        c.that(pending is not None, "health in the kexec boot did not guard the first cold boot")
        c.that(ordered(kexec_boot), "updater-health.service was not done before boot-complete.target (kexec boot)")
        # PID 1 of the new slot took the watchdog over (it holds the device,
        # with its own 30 s timeout) and the healthy slot outlived that
        # timeout twice over: it is fed.
        wdk = guest.first(r"E2E-MARK watchdog ", after=kexec_boot[0] if kexec_boot else 1e9)
        c.that(wdk and "pid1-holds=yes" in wdk[1] and "timeout=30 " in wdk[1] and "state=active" in wdk[1],
               f"PID 1 of the kexec'd slot does not hold the watchdog: {wdk}")
        up = guest.first(r"E2E-MARK still-up", after=kexec_boot[0] if kexec_boot else 1e9)
        c.that(up is not None and wdk and not grub_between(kexec_boot, up) and up[0] - wdk[0] >= 60,
               "B was reset while healthy: nothing fed the watchdog after the kexec")
        reboot = guest.first(r"E2E-MARK cold-boot-reboot")
        cold = guest.first(r"updater: booting slot B updater.trial=1", after=reboot[0] if reboot else 1e9)
        c.that(cold is not None, "GRUB did not boot B's first cold boot as a one-shot")
        commit = health_after("committed as the default", cold)
        c.that(commit is not None, "health did not commit B in its first cold boot")
        c.that(ordered(cold), "updater-health.service was not done before boot-complete.target (cold boot)")
        timing("kexec_boot_to_commit_s", kexec_boot, commit)
        c.that(env.get("ORDER") == "B A" and env.get("B_OK") == "1" and env.get("B_TRY") == "0", f"grubenv after commit: {env}")
        c.that(b.get("status") == "good" and b.get("version") == "2.0.0", f"state: {groups}")
        c.that(st and st["booted"] == "B" and st["groups"]["B"]["status"] == "good", f"status on B: {st}")
    if name == "sd-daemon":
        first = guest.first(r"E2E-MARK daemon ")
        c.that(first and "Type=notify" in first[1] and "WatchdogUSec=10min" in first[1] and "ActiveState=active" in first[1],
               f"updater.service on A: {first}")
        last = guest.marks(r"E2E-MARK daemon ")[-1:]
        c.that(last and "up to date" in last[0][1] and "NRestarts=0" in last[0][1] and "SubState=running" in last[0][1],
               f"updater.service on B after the commit: {last}")
        c.that("stable" in st_channels(groups, st, sdir, disk), "the channel was not recorded")
    if name == "sd-hang":
        hang = guest.first(r"E2E-MARK hanging")
        c.that(hang is not None, "B did not reach the hang")
        c.that(guest.first(r"Timed out starting boot-co.*Boot Completion Check", after=hang[0] if hang else 1e9) is not None,
               "systemd did not time the trial boot out")
        c.that(guest.first(r"Forcibly rebooting: job timed out", after=hang[0] if hang else 1e9) is not None,
               "the timed-out trial boot did not reboot (JobTimeoutAction=reboot-force)")
        back = guest.first(r"updater: booting slot A", after=hang[0] if hang else 1e9)
        c.that(back is not None, "the hung trial was not rebooted back to A")
        timing("hang_to_grub_s", hang, back)
        lost = guest.first(r"E2E-MARK health result=success .*trial did not confirm", after=back[0] if back else 1e9)
        c.that(lost is not None, "A did not mark the lost trial")
        c.that(b.get("status") == "bad" and "trial did not confirm" in (b.get("last_error") or ""), f"state: {groups}")
        c.that(env.get("ORDER") == "A B" and env.get("B_OK") == "0", f"grubenv: {env}")
    if name == "sd-health-fail":
        # updater-health.service fails the check and reboots at once
        # (health.reboot_on_failure): a clean reboot, through firmware.
        ran = guest.first(r"Starting updater-health.se", after=kexec_boot[0] if kexec_boot else 1e9)
        c.that(ran is not None, "updater-health.service did not run in B")
        rebooted = guest.first(r"systemd-shutdown\[1\]: Rebooting\.$", after=ran[0] if ran else 1e9)
        c.that(rebooted is not None, "B did not reboot cleanly after its failed health check")
        back = guest.first(r"updater: booting slot A", after=kexec_boot[0] if kexec_boot else 1e9)
        c.that(back is not None, "GRUB did not boot A after B's failed health check")
        timing("trial_boot_to_grub_s", kexec_boot, back)
        c.that(guest.first(r"E2E-MARK boot slot=A version=1", after=back[0] if back else 1e9) is not None, "A did not come back")
        c.that(env.get("ORDER") == "A B" and env.get("B_OK") == "0", f"grubenv: {env}")
        c.that(b.get("status") == "bad" and "50-app" in (b.get("last_error") or ""), f"state: {groups}")
        c.that(st and st["booted"] == "A" and "50-app" in (st["groups"]["B"].get("last_error") or ""),
               f"status on A does not say why B failed: {st}")
    if name == "sd-hang-early":
        # The trial kernel hangs in its initramfs, before systemd: only the
        # hardware watchdog, left running across the kexec by the old PID 1
        # (KExecWatchdogSec=2min), can bring the machine back.
        hang = guest.first(r"E2E-MARK hanging-early")
        c.that(hang is not None, "B's initramfs did not reach the hang")
        back = guest.first(r"updater: booting slot A", after=hang[0] if hang else 1e9)
        c.that(hang and back and not [t for t, _ in guest.marks(r"Welcome to .*Debian") if hang[0] < t < back[0]],
               "systemd started in the hung trial")
        c.that(back is not None, "the watchdog did not reset the hung trial back to GRUB and A")
        timing("hang_to_grub_s", hang, back)
        jump = guest.first(r"kexec_core: Starting new kernel")
        timing("jump_to_reset_s", jump, back)
        c.that(not jump or not back or 60 <= back[0] - jump[0] <= 200,
               f"the reset came {back[0] - jump[0] if jump and back else '?'} s after the jump, not the 2 min of KExecWatchdogSec")
        lost = guest.first(r"E2E-MARK health result=success .*trial did not confirm", after=back[0] if back else 1e9)
        c.that(lost is not None, "A did not mark the lost trial")
        c.that(b.get("status") == "bad" and "trial did not confirm" in (b.get("last_error") or ""), f"state: {groups}")
        c.that(env.get("ORDER") == "A B" and env.get("B_OK") == "0", f"grubenv: {env}")
    if name in ("sd-hang", "sd-hang-early", "sd-health-fail"):
        c.that(st and st["booted"] == "A" and st["groups"]["B"]["status"] == "bad", f"status on A: {st}")


def st_channels(groups, st, sdir, disk):
    """The channels the state records (the daemon followed one)."""
    try:
        return read_state(disk, sdir, SD_P4_START, SD_DATA_SIZE, "/state.json").get("channels_issued", {})
    except Exception:  # noqa: BLE001 - reported by the caller's check
        return {}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default=os.path.join(REPO, "target", "e2e"))
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--no-build", action="store_true", help="reuse the images in --work")
    ap.add_argument("scenarios", nargs="*", default=SCENARIOS)
    a = ap.parse_args()
    unknown = [s for s in a.scenarios if s not in SCENARIOS]
    if unknown:
        ap.error(f"unknown scenario(s) {unknown}; known: {SCENARIOS}")
    os.makedirs(a.work, exist_ok=True)
    t0 = time.monotonic()
    if not a.no_build:
        subprocess.run([os.path.join(HERE, "build.sh"), a.work], check=True)
    build_s = time.monotonic() - t0
    results = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=a.jobs) as pool:
        for r in pool.map(lambda s: run_scenario(s, a.work), a.scenarios):
            mark = "PASS" if r["ok"] else "FAIL"
            print(f"{mark} {r['scenario']:<12} {json.dumps(r['timings'])}  log: {r['log']}", flush=True)
            for f in r["failures"]:
                print(f"     - {f}", flush=True)
            results.append(r)
    with open(os.path.join(a.work, "results.json"), "w") as f:
        json.dump({"build_s": round(build_s, 1), "total_s": round(time.monotonic() - t0, 1), "results": results}, f, indent=2)
    passed = sum(r["ok"] for r in results)
    print(f"e2e: build {build_s:.0f}s, total {time.monotonic() - t0:.0f}s")
    print(f"{passed} passed, {len(results) - passed} failed")
    sys.exit(0 if passed == len(results) else 1)


if __name__ == "__main__":
    main()
