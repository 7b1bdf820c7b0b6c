#!/usr/bin/env python3
"""End-to-end proof on real boots: QEMU (TCG) + OVMF + GRUB + a watchdog +
kexec, running the real `updater` inside the guest.

Usage: integration/e2e.py [--work DIR] [--jobs N] [SCENARIO ...]
Scenarios: commit, health-fail, hang, powercut, tampered, reboot, daemon
(default: all).

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
SCENARIOS = ["commit", "health-fail", "hang", "powercut", "tampered", "reboot", "daemon"]
SCENARIO_TIMEOUT = 420
MIB = 1024 * 1024
P2_START, P3_START, P4_START = 17 * MIB, 81 * MIB, 145 * MIB


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Guest:
    """One QEMU guest with its console log, markers and monitor."""

    def __init__(self, name, workdir, disk, port):
        self.name = name
        self.dir = workdir
        self.disk = disk
        self.port = port
        self.lines = []  # (seconds since start, line)
        self.lock = threading.Lock()
        self.start = None
        self.proc = None
        self.monitor = os.path.join(workdir, "monitor.sock")
        self.log_path = os.path.join(workdir, "console.log")

    def run(self, on_line=None, timeout=SCENARIO_TIMEOUT):
        cmd = [
            "qemu-system-x86_64", "-accel", "tcg", "-m", "512", "-smp", "1",
            "-bios", "/usr/share/ovmf/OVMF.fd",
            "-drive", f"file={self.disk},format=raw,if=virtio",
            "-device", "i6300esb", "-action", "watchdog=reset",
            "-netdev", f"user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:8080-cmd:/bin/busybox nc 127.0.0.1 {self.port}",
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


def read_state(disk, workdir):
    part = os.path.join(workdir, "data.part")
    with open(disk, "rb") as src, open(part, "wb") as dst:
        src.seek(P4_START)
        dst.write(src.read(32 * MIB))
    out = subprocess.run(["debugfs", "-R", "cat /state/state.json", part], capture_output=True, check=True)
    return json.loads(out.stdout.decode())


def sha_of_region(disk, start, size):
    import hashlib
    h = hashlib.sha256()
    with open(disk, "rb") as f:
        f.seek(start)
        h.update(f.read(size))
    return h.hexdigest()


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
    disk = os.path.join(sdir, "disk.img")
    shutil.copyfile(os.path.join(work, "disk.img"), disk)
    # The scenario's name on a fresh data partition.
    ddir = tempfile.mkdtemp(dir=sdir)
    for d in ["state", "slots/A", "slots/B"]:
        os.makedirs(os.path.join(ddir, d))
    with open(os.path.join(ddir, "scenario"), "w") as f:
        f.write(name + "\n")
    data = os.path.join(sdir, "data.img")
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", ddir, data, "32M"], check=True)
    with open(data, "rb") as src, open(disk, "r+b") as dst:
        dst.seek(P4_START)
        dst.write(src.read())
    shutil.rmtree(ddir)
    # The release as served.
    rel = os.path.join(sdir, "release")
    shutil.copytree(os.path.join(work, "release"), rel)
    rate = None
    if name == "tampered":
        # Alter one byte inside the third chunk of the rootfs image.
        table = json.load(open(os.path.join(rel, "rootfs.chunks.json")))
        ch = table["chunks"][2]
        with open(os.path.join(rel, "rootfs.img.zst"), "r+b") as f:
            f.seek(ch["offset"] + ch["csize"] // 2)
            b = f.read(1)
            f.seek(ch["offset"] + ch["csize"] // 2)
            f.write(bytes([b[0] ^ 0x01]))
    if name == "powercut":
        rate = str(2 * MIB)  # slow enough to cut the power mid-download
    port = free_port()
    server_cmd = [VENDOR, "serve", rel, "--listen", f"127.0.0.1:{port}", "--seconds", str(SCENARIO_TIMEOUT + 60)]
    if rate:
        server_cmd += ["--rate", rate]
    server = subprocess.Popen(server_cmd, stdout=subprocess.DEVNULL, stderr=open(os.path.join(sdir, "server.log"), "w"))
    a_before = sha_of_region(disk, P2_START, 48 * MIB)
    guest = Guest(name, sdir, disk, port)
    resets = []

    def on_line(g, t, line):
        if name == "powercut" and "E2E-MARK apply-start install" in line and not resets:
            resets.append(t)

            def cut():
                time.sleep(5)
                g.monitor_cmd("system_reset")
            threading.Thread(target=cut, daemon=True).start()

    t0 = time.monotonic()
    try:
        guest.run(on_line)
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=10)
    wall = time.monotonic() - t0
    c = Check()
    env = read_grubenv(disk)
    try:
        state = read_state(disk, sdir)
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

    if name in ("commit", "health-fail", "hang", "daemon"):
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
        commit = guest.first(r"E2E-MARK health rc=0 .*committed")
        c.that(commit is not None, "health did not commit B")
        timing("health_to_commit_s", kexec_boot, commit)
        reset = guest.first(r"E2E-MARK reset-after-commit")
        c.that(reset and guest.first(r"updater: booting slot B", after=reset[0]), "GRUB did not boot B after the reset")
        c.that(guest.first(r"E2E-MARK boot slot=B version=2 trial=no") is not None, "B did not boot by default")
        c.that(env.get("ORDER") == "B A" and env.get("B_OK") == "1", f"grubenv after commit: {env}")
        c.that(groups.get("B", {}).get("status") == "good" and groups.get("B", {}).get("version") == "2.0.0", f"state: {groups}")
        c.that(st and st["groups"]["B"]["status"] == "good" and st["booted"] == "B", f"status on B: {st}")
    if name == "daemon":
        c.that(guest.first(r"E2E-MARK health rc=0 .*committed") is not None, "health did not commit B")
        again = guest.first(r"E2E-MARK daemon-again rc=0 .*up to date")
        c.that(again is not None, "the daemon in B did not find itself up to date")
        c.that(env.get("ORDER") == "B A" and env.get("B_OK") == "1", f"grubenv after commit: {env}")
        c.that(groups.get("B", {}).get("status") == "good" and groups.get("B", {}).get("version") == "2.0.0", f"state: {groups}")
        c.that("stable" in state.get("channels_issued", {}), f"the channel was not recorded: {state}")
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
    # In every scenario the factory slot A is only ever booted, never written.
    c.that(sha_of_region(disk, P2_START, 48 * MIB) == a_before, "slot A was written")
    return {"scenario": name, "ok": not c.failures, "failures": c.failures, "timings": timings,
            "log": os.path.relpath(guest.log_path, REPO)}


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
