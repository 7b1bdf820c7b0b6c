#!/usr/bin/env python3
"""Fleet simulation: 200 devices follow a channel served by nginx.

Usage: integration/fleet.py [--work DIR] [--devices N] [--jobs N]

nginx is Debian's package, unpacked (apt-get download + dpkg -x, so no
service is installed or started on this machine) and started here on a
loopback port with integration/fleet/nginx.conf. Each device is a folder:
file-backed slots, a file boot env, its own machine-id, state and config;
a "reboot" is recorded by the agent's reboot command and carried out here
by booting the slot the boot env names, then running `updater health`.

Phases, each asserted exactly (the rollout hash is deterministic, and this
script computes it independently of the agent, from docs/fleet.md):
  1. release 2.0.0 at 25%: exactly the devices whose bucket is below 2500
     install, boot and commit it; the others do nothing.
  2. raised to 100%: the rest install it; the first quarter is up to date.
  3. release 2.1.0 at 100%, failing its health check on some devices: those
     mark it bad, go back, and never fetch it again; the others commit it.
  4. the channel expires: every device refuses it.
Prints the wall time and what nginx served; writes WORK/report.json.
"""
import argparse
import concurrent.futures
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
UPDATER = os.path.join(REPO, "target", "release", "updater")
VENDOR = os.path.join(REPO, "target", "release", "updater-vendor")
COMPATIBLE = "acme-gw"
BAD_DEVICES = 20  # devices 0..19 fail 2.1.0's health check
CMD_TIMEOUT = 120


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def run(args, check=True, env=None, timeout=CMD_TIMEOUT):
    e = dict(os.environ)
    e["UPDATER_NO_REAL_RESTART"] = "1"
    e.pop("UPDATER_LOG", None)
    if env:
        e.update(env)
    p = subprocess.run(args, capture_output=True, text=True, env=e, timeout=timeout)
    if check and p.returncode != 0:
        fail(f"{' '.join(args)} exited {p.returncode}\nstdout: {p.stdout}\nstderr: {p.stderr}")
    return p


def updater(*args, **kw):
    return run([UPDATER, *args], **kw)


def vendor(*args, **kw):
    return run([VENDOR, *args], **kw)


def device_id(machine_id):
    """docs/fleet.md: the id derived from /etc/machine-id."""
    return hashlib.sha256(f"updater-device-id-v1\n{machine_id}".encode()).hexdigest()[:32]


def bucket(device, version):
    """docs/fleet.md: first 8 bytes of sha256("updater-rollout-v1\\n" + device
    id + "\\n" + version), big-endian, modulo 10000."""
    h = hashlib.sha256(f"updater-rollout-v1\n{device}\n{version}".encode()).digest()
    return int.from_bytes(h[:8], "big") % 10000


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_nginx(work):
    """Debian's nginx binary, unpacked into WORK/nginx-pkg (cached)."""
    nginx = os.path.join(work, "nginx-pkg", "usr", "sbin", "nginx")
    if os.path.exists(nginx):
        return nginx
    dl = os.path.join(work, "nginx-dl")
    os.makedirs(dl, exist_ok=True)

    def download():
        # apt-get download writes into its working directory.
        return subprocess.run(["apt-get", "download", "nginx"], cwd=dl, capture_output=True, text=True,
                              timeout=300)
    p = download()
    if p.returncode != 0:
        # The package lists may be missing on a fresh machine.
        run(["apt-get", "update", "-qq"], timeout=600)
        p = download()
    debs = [f for f in os.listdir(dl) if f.startswith("nginx_") and f.endswith(".deb")]
    if not debs:
        fail(f"apt-get download nginx failed: {p.stderr}")
    deb = os.path.join(dl, debs[0])
    run(["dpkg-deb", "-x", deb, os.path.join(work, "nginx-pkg")])
    return nginx


class Nginx:
    def __init__(self, work, root):
        self.prefix = os.path.join(work, "nginx")
        os.makedirs(os.path.join(self.prefix, "tmp"), exist_ok=True)
        self.port = free_port()
        with open(os.path.join(HERE, "fleet", "nginx.conf")) as f:
            conf = f.read()
        conf = conf.replace("@PORT@", str(self.port)).replace("@ROOT@", root).replace("@PREFIX@", self.prefix)
        self.conf = os.path.join(self.prefix, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(conf)
        self.binary = get_nginx(work)
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            [self.binary, "-p", self.prefix, "-c", self.conf, "-e", os.path.join(self.prefix, "error.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.1)
        self.stop()
        with open(os.path.join(self.prefix, "error.log")) as f:
            fail(f"nginx did not start: {f.read()}")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def requests(self):
        path = os.path.join(self.prefix, "access.log")
        if not os.path.exists(path):
            return []
        with open(path) as f:
            return f.read().splitlines()


class Device:
    def __init__(self, work, i, channel_url, keyring):
        self.i = i
        self.machine_id = hashlib.sha256(f"fleet-device-{i}".encode()).hexdigest()[:32]
        self.id = device_id(self.machine_id)
        self.dir = os.path.join(work, "devices", f"{i:03}")
        d = self.dir
        os.makedirs(os.path.join(d, "slots"))
        os.makedirs(os.path.join(d, "health.d"))
        with open(os.path.join(d, "machine-id"), "w") as f:
            f.write(self.machine_id + "\n")
        with open(os.path.join(d, "slots", "A.rootfs"), "wb") as f:
            f.write(b"factory image\n" * 100)
        self.set_cmdline("A", False)
        # The file backend's env, as the device's slot chooser keeps it.
        with open(os.path.join(d, "boot.env"), "w") as f:
            f.write("ORDER=A B\nA_OK=1\nB_OK=0\nTRY=\n")
        self.set_health(True)
        with open(os.path.join(d, "config.toml"), "w") as f:
            f.write(f"""compatible = "{COMPATIBLE}"
state_dir = "{d}/state"
keyring = "{keyring}"
cmdline_path = "{d}/cmdline"
[bootloader]
backend = "file"
path = "{d}/boot.env"
[slots.A.targets]
rootfs = "{d}/slots/A.rootfs"
[slots.B.targets]
rootfs = "{d}/slots/B.rootfs"
[http]
connect_timeout_secs = 5
stall_timeout_secs = 10
[trial]
reboot_command = ["sh", "-c", "echo \\"$0\\" >> {d}/reboots"]
[health]
dir = "{d}/health.d"
check_timeout_secs = 10
[kexec]
policy = "never"
[device]
id_file = "{d}/machine-id"
[daemon]
channel = "{channel_url}"
strategy = "immediate"
""")

    def set_cmdline(self, slot, trial):
        with open(os.path.join(self.dir, "cmdline"), "w") as f:
            f.write(f"console=ttyS0 updater.slot={slot}{' updater.trial=1' if trial else ''}\n")

    def set_health(self, ok):
        p = os.path.join(self.dir, "health.d", "50-app")
        with open(p, "w") as f:
            f.write("#!/bin/sh\n" + ("exit 0\n" if ok else "echo app failed to start; exit 1\n"))
        os.chmod(p, 0o755)

    def u(self, *args, **kw):
        return updater("--config", os.path.join(self.dir, "config.toml"), *args, **kw)

    def reboots(self):
        try:
            with open(os.path.join(self.dir, "reboots")) as f:
                return len(f.read().splitlines())
        except FileNotFoundError:
            return 0

    def status(self):
        return json.loads(self.u("status", "--json").stdout)

    def boot(self):
        """What the bootloader does at a reset: the pending one-shot trial,
        else the primary (the boot env decides; the agent's status reads it)."""
        st = self.status()
        trial = st.get("trial")
        if trial and not trial.get("confirmed"):
            self.set_cmdline(trial["group"], True)
        else:
            self.set_cmdline(st["primary"], False)
        # Exit 7 says this boot's slot failed its trial (and was marked bad),
        # which phase 3 makes happen on purpose; anything else is a failure.
        r = self.u("health", "--json", check=False)
        if r.returncode not in (0, 7):
            fail(f"device {self.i}: health exited {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}")
        return r

    def running(self):
        st = self.status()
        return st["groups"][st["booted"]].get("version")

    def cycle(self):
        """One daemon poll; if it restarted the device, boot what the boot
        env says and run health (again, when health rebooted it back).
        Returns the daemon's output."""
        before = self.reboots()
        out = self.u("daemon", "--once").stdout.strip()
        restarts = 0
        while self.reboots() > before and restarts < 3:
            before = self.reboots()
            self.boot()
            restarts += 1
        return out


def pool(jobs, fn, items):
    with concurrent.futures.ThreadPoolExecutor(jobs) as ex:
        return list(ex.map(fn, items))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default=os.path.join(REPO, "target", "fleet"))
    ap.add_argument("--devices", type=int, default=200)
    ap.add_argument("--jobs", type=int, default=4)
    a = ap.parse_args()
    for exe in (UPDATER, VENDOR):
        if not os.access(exe, os.X_OK):
            fail(f"{exe} is missing: cargo build --release --workspace first")
    work = os.path.abspath(a.work)
    for sub in ["devices", "www", "keys", "keyring", "nginx"]:
        shutil.rmtree(os.path.join(work, sub), ignore_errors=True)
    os.makedirs(work, exist_ok=True)
    t0 = time.time()
    www = os.path.join(work, "www")
    gw = os.path.join(www, "gw")
    os.makedirs(gw)
    keys = os.path.join(work, "keys")
    for name in ["manifest", "kernel", "channel"]:
        vendor("keygen", "--out", keys, "--name", name)
    keyring = os.path.join(work, "keyring")
    vendor("keyring", "init", keyring,
            "--manifest-key", f"{keys}/manifest.pub",
            "--kernel-key", f"{keys}/kernel.pub",
            "--channel-key", f"{keys}/channel.pub")

    def release(version, seed):
        img = os.path.join(work, f"rootfs-{version}.img")
        with open(img, "wb") as f:
            # 256 KiB that does not compress, different per release.
            f.write(b"".join(hashlib.sha256(seed + i.to_bytes(4, "big")).digest() for i in range(8192)))
        out = os.path.join(gw, version)
        vendor("release", "create", "--out", out, "--key", f"{keys}/manifest.key",
                "--product", "gw", "--version", version, "--security-version", "1",
                "--compatible", COMPATIBLE, "--image", f"rootfs={img}")
        return json.loads(updater("verify", f"{out}/manifest.json", "--keyring", keyring, "--json").stdout)["digest"]

    def publish(*args):
        vendor("channel", "publish", "--out", os.path.join(gw, "stable.json"),
                "--key", f"{keys}/channel.key", *args)

    digest20 = release("2.0.0", b"2.0.0")
    release("2.1.0", b"2.1.0")
    publish("--release", f"{COMPATIBLE}=2.0.0/manifest.json@25")

    nginx = Nginx(work, www)
    nginx.start()
    try:
        channel_url = f"http://127.0.0.1:{nginx.port}/gw/stable.json"
        devices = [Device(work, i, channel_url, keyring) for i in range(a.devices)]
        report = {"devices": a.devices}

        # The agent's view of a device agrees with this script's formulas.
        plan = json.loads(devices[0].u("check", "--json").stdout)
        if (plan["device"], plan["bucket"], plan["release"]["digest"]) != (
                devices[0].id, bucket(devices[0].id, "2.0.0"), digest20):
            fail(f"check --json disagrees with docs/fleet.md's formulas: {plan}")

        # 1. 25%.
        t = time.time()
        expected = {d.i for d in devices if bucket(d.id, "2.0.0") < 2500}
        outs = pool(a.jobs, Device.cycle, devices)
        on = {d.i for d in devices if d.running() == "2.0.0"}
        if on != expected:
            fail(f"phase 1: devices on 2.0.0 {sorted(on)} != expected by bucket {sorted(expected)}")
        if not 0.15 * a.devices <= len(on) <= 0.35 * a.devices:
            fail(f"phase 1: {len(on)} of {a.devices} at 25%")
        for d, out in zip(devices, outs):
            if d.i not in expected and "not in the rollout" not in out:
                fail(f"phase 1: device {d.i} said {out!r}")
        report["phase1_25pct"] = {"updated": len(on), "seconds": round(time.time() - t, 1)}
        print(f"phase 1: 25% rollout -> {len(on)} of {a.devices} devices on 2.0.0 (exactly the buckets below 2500)")

        # 2. 100%.
        t = time.time()
        publish("--release", f"{COMPATIBLE}=2.0.0/manifest.json@100")
        outs = pool(a.jobs, Device.cycle, devices)
        stragglers = [d.i for d in devices if d.running() != "2.0.0"]
        if stragglers:
            fail(f"phase 2: not on 2.0.0: {stragglers}")
        for d, out in zip(devices, outs):
            if d.i in expected and "up to date" not in out:
                fail(f"phase 2: device {d.i} (already updated) said {out!r}")
        report["phase2_100pct"] = {"updated": a.devices - len(expected), "seconds": round(time.time() - t, 1)}
        print(f"phase 2: 100% -> all {a.devices} on 2.0.0")

        # 3. A release that fails on some devices.
        t = time.time()
        bad = devices[:BAD_DEVICES]
        for d in bad:
            d.set_health(False)
        publish("--release", f"{COMPATIBLE}=2.1.0/manifest.json@100")
        pool(a.jobs, Device.cycle, devices)
        for d in devices:
            want = "2.0.0" if d.i < BAD_DEVICES else "2.1.0"
            if d.running() != want:
                fail(f"phase 3: device {d.i} runs {d.running()}, expected {want}")
        fetched = sum(1 for line in nginx.requests() if "/gw/2.1.0/manifest.json" in line)
        if fetched != a.devices:
            fail(f"phase 3: 2.1.0's manifest fetched {fetched} times by {a.devices} devices")
        reboots = {d.i: d.reboots() for d in bad}
        # Polls again: the bad ones must not retry (no fetch, no restart).
        outs = pool(a.jobs, Device.cycle, bad)
        for d, out in zip(bad, outs):
            if "failed on this device" not in out:
                fail(f"phase 3: device {d.i} said {out!r}")
            if d.reboots() != reboots[d.i]:
                fail(f"phase 3: device {d.i} restarted again")
        fetched_again = sum(1 for line in nginx.requests() if "/gw/2.1.0/manifest.json" in line)
        if fetched_again != fetched:
            fail(f"phase 3: the bad release was fetched {fetched_again - fetched} more times")
        report["phase3_bad_release"] = {"committed": a.devices - BAD_DEVICES, "marked_bad_not_retried": BAD_DEVICES,
                                        "seconds": round(time.time() - t, 1)}
        print(f"phase 3: 2.1.0 committed on {a.devices - BAD_DEVICES}; {BAD_DEVICES} marked it bad, went back to 2.0.0 and do not retry it")

        # 4. Expired: checked a year ahead.
        t = time.time()
        later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 366 * 86400))
        results = pool(a.jobs, lambda d: d.u("daemon", "--once", "--now", later, check=False), devices)
        for d, p in zip(devices, results):
            if p.returncode != 3 or "expired" not in p.stderr:
                fail(f"phase 4: device {d.i} exited {p.returncode}: {p.stderr}")
        report["phase4_expired"] = {"refused": a.devices, "seconds": round(time.time() - t, 1)}
        print(f"phase 4: expired channel refused by all {a.devices} devices (exit 3)")

        reqs = nginx.requests()
        report["wall_seconds"] = round(time.time() - t0, 1)
        report["requests_served"] = len(reqs)
        report["requests_by_kind"] = {
            "channel": sum(1 for r in reqs if "/stable.json" in r),
            "manifest": sum(1 for r in reqs if "/manifest.json" in r),
            "other": sum(1 for r in reqs if "/stable.json" not in r and "/manifest.json" not in r),
        }
        report["bytes_served"] = sum(int(r.split('"')[2].split()[1]) for r in reqs if r.count('"') >= 2)
    finally:
        nginx.stop()
    with open(os.path.join(work, "report.json"), "w") as f:
        json.dump(report, f, indent=2)
    print(f"fleet simulation passed: {a.devices} devices, {report['requests_served']} requests "
          f"({report['bytes_served']} bytes) served by nginx, {report['wall_seconds']} s wall time")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
