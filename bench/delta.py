#!/usr/bin/env python3
"""Delta benchmark: bytes fetched to update an image, updater against
casync, zchunk and RAUC's adaptive block-hash-index, side by side in one
run on the same images (docs/benchmarks.md has the results).

Every tool downloads from the same nginx on loopback (Debian's package,
unpacked, as the fleet simulation runs it); the bytes and requests are
counted from nginx's access log ($body_bytes_sent), not reported by the
tools. Device-side wall and CPU seconds and peak RSS come from GNU time
around the device command. Each result is checked byte for byte against
the new image.

Cases (images are built once into WORK/images and reused):
  a  512 MiB random image, 26 scattered 1 MiB regions overwritten
  b  ext4 image (512 MiB) of 2,000 files, 100 rewritten (same size),
     reproducible mkfs
  c  the same tree with 100 files grown by up to 64 KiB (allocations shift)
  d  the same tree as b's base, a non-reproducible mkfs (random UUID,
     hash seed and times)
  e  a major upgrade: 2,200 files, 5% of them kept, the rest new
  m  memory: a 4 GiB random image with 26 scattered 1 MiB regions
     overwritten, updater only (peak RSS of a delta and of a full install;
     needs about 20 GB of disk)

Tools:
  updater     `updater apply URL` into a file slot, the booted slot holding
              the old image; "kept index" as after an install by updater,
              "factory" with no index kept (the slot is read and cut), and
              "full" with nothing to reuse (the reference install)
  casync      `casync make` (default chunk sizes, 16/64/256 KiB) into a
              chunk store on nginx; `casync extract --seed=OLD`
  zchunk      `zck` (default chunking); `zckdl --source=OLD.zck`, then
              `unzck` to the image
  RAUC        computed, not run: this machine's kernel has no nbd module,
              which RAUC's adaptive mode streams through. Its documented
              method: every 4 KiB block of the new image whose hash is in
              neither slot is fetched, plus the block-hash index (0.8% of
              the image). The target slot is taken as empty.

Usage: bench/delta.py [--work DIR] [--cases abcde]
Prints a markdown table per case.
"""

import argparse
import hashlib
import os
import random
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "integration"))
import fleet  # noqa: E402  (nginx unpacking and free ports are shared)

MIB = 1 << 20
IMAGE = 512 * MIB
U = os.path.join(REPO, "target", "release", "updater")
V = os.path.join(REPO, "target", "release", "updater-vendor")


def log(msg):
    print(f"delta: {msg}", file=sys.stderr, flush=True)


def run(args, **kw):
    p = subprocess.run(args, capture_output=True, text=True, timeout=3600, **kw)
    if p.returncode != 0:
        sys.exit(f"{' '.join(map(str, args))} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


def measured(args, cwd=None, env=None):
    """Run ARGS under GNU time: (wall s, cpu s, peak RSS KiB)."""
    out = os.path.join(WORK, "time.out")
    run(["/usr/bin/time", "-o", out, "-f", "%e %U %S %M"] + args, cwd=cwd, env=env)
    with open(out) as f:
        wall, user, sys_, rss = f.read().split()[-4:]
    return float(wall), float(user) + float(sys_), int(rss)


# ---------------------------------------------------------------- images

def randbytes(rng, n):
    # In pieces: one getrandbits call is limited to 2**31 bits.
    return b"".join(rng.randbytes(min(MIB, n - k)) for k in range(0, n, MIB))


def write_tree(root, files):
    """files: list of (name, bytes). Fixed mtimes: a reproducible mkfs."""
    if os.path.exists(root):
        shutil.rmtree(root)
    os.makedirs(root)
    for i, (name, data) in enumerate(files):
        d = os.path.join(root, f"d{i % 40:02}")
        os.makedirs(d, exist_ok=True)
        p = os.path.join(d, name)
        with open(p, "wb") as f:
            f.write(data)
        os.utime(p, (1_700_000_000, 1_700_000_000))
    for dirpath, _, _ in os.walk(root):
        os.utime(dirpath, (1_700_000_000, 1_700_000_000))


def mkfs(tree, img, reproducible=True):
    if os.path.exists(img):
        os.remove(img)
    with open(img, "wb") as f:
        f.truncate(IMAGE)
    env = dict(os.environ)
    args = ["mkfs.ext4", "-q", "-F", "-b", "4096", "-O", "^has_journal", "-d", tree]
    if reproducible:
        env["E2FSPROGS_FAKE_TIME"] = "1700000000"
        args += ["-U", "6f0b2f1e-8d0a-4a52-9d3e-0c5f1b3a7e11",
                 "-E", "hash_seed=0b7c1e55-3f2a-4c8e-a1d4-5e6f7a8b9c0d,root_owner=0:0,nodiscard"]
    else:
        args += ["-E", "root_owner=0:0,nodiscard"]
    run(args + [img], env=env)


def tree_files(seed, n, keep=None):
    rng = random.Random(seed)
    files = []
    for i in range(n):
        size = rng.randrange(4096, 400 * 1024)
        files.append((f"f{i:04}", randbytes(rng, size)))
    return files


def make_images(case, out):
    old, new = os.path.join(out, "old.img"), os.path.join(out, "new.img")
    if os.path.exists(old) and os.path.exists(new):
        return old, new
    os.makedirs(out, exist_ok=True)
    if case in ("a", "m"):
        size = IMAGE if case == "a" else 8 * IMAGE
        rng = random.Random(1)
        with open(old, "wb") as f:
            for _ in range(size // (64 * MIB)):
                f.write(randbytes(rng, 64 * MIB))
        shutil.copyfile(old, new)
        with open(new, "r+b") as f:
            for _ in range(26):
                at = rng.randrange(0, size - MIB)
                f.seek(at)
                f.write(randbytes(rng, MIB))
        return old, new
    base = tree_files(2, 2000)
    t_old, t_new = os.path.join(out, "tree-old"), os.path.join(out, "tree-new")
    write_tree(t_old, base)
    mkfs(t_old, old)
    rng = random.Random(3)
    files = list(base)
    if case == "b":
        for i in rewritten(rng, files, 20_400_000):
            name, data = files[i]
            files[i] = (name, randbytes(rng, len(data)))
        write_tree(t_new, files)
        mkfs(t_new, new)
    elif case == "c":
        for i in rng.sample(range(len(files)), 100):
            name, data = files[i]
            files[i] = (name, data + randbytes(rng, rng.randrange(1, 64 * 1024)))
        write_tree(t_new, files)
        mkfs(t_new, new)
    elif case == "d":
        write_tree(t_new, files)
        mkfs(t_new, new, reproducible=False)
    elif case == "e":
        keep = set(rng.sample(range(len(files)), 100))
        fresh = tree_files(4, 2200)
        files = [files[i] if i in keep else fresh[i] for i in range(2000)] + fresh[2000:]
        write_tree(t_new, files)
        mkfs(t_new, new)
    shutil.rmtree(t_old)
    shutil.rmtree(t_new, ignore_errors=True)
    return old, new


def rewritten(rng, files, total):
    """100 files whose sizes add up to about TOTAL bytes (the issue's image
    had 20.4 MB in its 100 rewritten files): a random sample, then swaps
    that bring the sum within 0.5%, deterministically."""
    pick = rng.sample(range(len(files)), 100)
    rest = [i for i in range(len(files)) if i not in set(pick)]
    size = lambda i: len(files[i][1])
    for _ in range(100_000):
        s = sum(size(i) for i in pick)
        if abs(s - total) <= total // 200:
            break
        a, b = rng.randrange(100), rng.randrange(len(rest))
        if (s > total) == (size(rest[b]) < size(pick[a])):
            pick[a], rest[b] = rest[b], pick[a]
    return pick


def changed_blocks(old, new, block=4096):
    """Bytes of NEW in 4 KiB blocks that differ from OLD's at the same place."""
    n = 0
    with open(old, "rb") as a, open(new, "rb") as b:
        while True:
            x, y = a.read(block * 256), b.read(block * 256)
            if not y:
                break
            for k in range(0, len(y), block):
                if x[k:k + block] != y[k:k + block]:
                    n += len(y[k:k + block])
    return n


def rauc_computed(old, new, block=4096):
    """RAUC adaptive block-hash-index, by its documented method."""
    have = set()
    with open(old, "rb") as f:
        while True:
            b = f.read(block)
            if not b:
                break
            have.add(hashlib.sha256(b).digest())
    missing = 0
    with open(new, "rb") as f:
        while True:
            b = f.read(block)
            if not b:
                break
            if hashlib.sha256(b).digest() not in have:
                missing += len(b)
    size = os.path.getsize(new)
    return missing + int(size * 0.008), int(size * 0.008)


# ---------------------------------------------------------------- nginx

class Server:
    def __init__(self, root):
        self.prefix = os.path.join(WORK, "nginx")
        os.makedirs(os.path.join(self.prefix, "tmp"), exist_ok=True)
        self.port = fleet.free_port()
        with open(os.path.join(HERE, "delta-nginx.conf")) as f:
            conf = f.read()
        conf = conf.replace("@PORT@", str(self.port)).replace("@ROOT@", root).replace("@PREFIX@", self.prefix)
        self.conf = os.path.join(self.prefix, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(conf)
        self.log = os.path.join(self.prefix, "access.log")
        self.proc = subprocess.Popen(
            [fleet.get_nginx(WORK), "-p", self.prefix, "-c", self.conf, "-e", os.path.join(self.prefix, "error.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 20
        import socket
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        else:
            self.stop()
            sys.exit("nginx did not start")
        self.mark = 0

    def url(self, path):
        return f"http://127.0.0.1:{self.port}/{path}"

    def begin(self):
        self.mark = os.path.getsize(self.log) if os.path.exists(self.log) else 0

    def served(self, prefix=""):
        """(bytes, requests) since begin(), of paths under PREFIX."""
        total = reqs = 0
        with open(self.log) as f:
            f.seek(self.mark)
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[0].lstrip("/").startswith(prefix):
                    total += int(parts[2])
                    reqs += 1
        return total, reqs

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# ---------------------------------------------------------------- tools

def same(a, b):
    return subprocess.run(["cmp", "-s", a, b]).returncode == 0


def keys():
    k = os.path.join(WORK, "keys")
    if not os.path.exists(os.path.join(k, "m.key")):
        run([V, "keygen", "--out", k, "--name", "m"])
        run([V, "keygen", "--out", k, "--name", "k"])
        run([V, "keyring", "init", os.path.join(WORK, "ring"), "--manifest-key", os.path.join(k, "m.pub"),
             "--kernel-key", os.path.join(k, "k.pub")])
    return os.path.join(k, "m.key")


def updater_release(img, out, version, extra):
    if os.path.exists(out):
        shutil.rmtree(out)
    run([V, "release", "create", "--out", out, "--key", keys(), "--product", "bench", "--version", version,
         "--security-version", "1", "--compatible", "bench", "--image", f"rootfs={img}",
        ] + extra)


def updater_device(name, seed_img, kept_index):
    dev = os.path.join(WORK, "dev", name)
    if os.path.exists(dev):
        shutil.rmtree(dev)
    os.makedirs(os.path.join(dev, "state", "releases"))
    with open(os.path.join(dev, "cmdline"), "w") as f:
        f.write("updater.slot=A\n")
    with open(os.path.join(dev, "boot.env"), "w") as f:
        f.write("ORDER=A B\nA_OK=1\nB_OK=0\nTRY=\n")
    # A copy, not a link: the booted slot must be a slot of its own.
    shutil.copyfile(seed_img, os.path.join(dev, "A.img"))
    if kept_index:
        shutil.copyfile(kept_index, os.path.join(dev, "state", "releases", "A.rootfs.index"))
    with open(os.path.join(dev, "config.toml"), "w") as f:
        f.write(f'''compatible = "bench"
state_dir = "{dev}/state"
keyring = "{WORK}/ring"
cmdline_path = "{dev}/cmdline"
[bootloader]
backend = "file"
path = "{dev}/boot.env"
[slots.A.targets]
rootfs = "{dev}/A.img"
[slots.B.targets]
rootfs = "{dev}/B.img"
''')
    return dev


def row(tool, fetched, meta, reqs, wall, cpu, rss, size, note=""):
    pct = 100.0 * fetched / size
    fmt = lambda v, f: "n/a" if v is None else f.format(v)
    return (f"| {tool} | {fetched / 1e6:.2f} MB ({pct:.2f}%) | {meta / 1e6:.3f} MB | {fmt(reqs, '{}')} | "
            f"{fmt(wall, '{:.2f}')} | {fmt(cpu, '{:.2f}')} | {fmt(rss, '{:.1f}')} | {note} |")


def bench_case(case, srv_root, srv):
    out = os.path.join(WORK, "images", case)
    old, new = make_images(case, out)
    size = os.path.getsize(new)
    changed = changed_blocks(old, new)
    rows = []
    figures = {}
    log(f"case {case}: {size >> 20} MiB, {changed / 1e6:.1f} MB in changed 4 KiB blocks")

    # updater: releases of both images, each cut with its default sizes.
    rel_old, rel_new = os.path.join(srv_root, "u-old"), os.path.join(srv_root, "u-new")
    updater_release(old, rel_old, "1.0.0", [])
    updater_release(new, rel_new, "2.0.0", [])
    url = srv.url("u-new/manifest.json")
    full_file = os.path.getsize(os.path.join(rel_new, "rootfs.img.zst"))
    index_file = os.path.getsize(os.path.join(rel_new, "rootfs.index"))
    runs = [("updater, kept index", old, os.path.join(rel_old, "rootfs.index")),
            ("updater, factory (no index)", old, None),
            ("updater, full (nothing to reuse)", None, None)]
    if case == "m":
        runs = [runs[0], runs[2]]
    for label, seed, kept in runs:
        if seed is None:
            seed = os.path.join(WORK, "unrelated.img")
            if not os.path.exists(seed):
                with open(seed, "wb") as f:
                    f.write(randbytes(random.Random(9), IMAGE))
        dev = updater_device("u", seed, kept)
        srv.begin()
        wall, cpu, rss = measured([U, "--config", os.path.join(dev, "config.toml"), "apply", url])
        if not same(os.path.join(dev, "B.img"), new):
            sys.exit(f"{label}: slot B is not the new image")
        fetched, reqs = srv.served("u-new/")
        meta = fetched - srv.served("u-new/rootfs.img.zst")[0]
        rows.append(row(label, fetched, meta, reqs, wall, cpu, rss / 1024, size))
        figures[label] = (fetched, wall, cpu)
        shutil.rmtree(dev)
    if case == "m":
        print(f"\n#### (m) {CASES[case]}\n")
        print(f"{size >> 20} MiB image; updater's image file {full_file / 1e6:.1f} MB, its index {index_file / 1e6:.2f} MB\n")
        print("| tool | fetched (of the image) | index / metadata | requests | wall s | CPU s | peak RSS MiB | note |")
        print("|---|---|---|---|---|---|---|---|")
        for r in rows:
            print(r)
        for d in (rel_old, rel_new):
            shutil.rmtree(d)
        return figures, full_file

    # casync: a chunk store and a blob index on the server.
    cas = os.path.join(srv_root, "casync")
    if os.path.exists(cas):
        shutil.rmtree(cas)
    os.makedirs(cas)
    run(["casync", "make", f"--store={cas}/store", f"{cas}/new.caibx", new])
    target = os.path.join(WORK, "casync-out.img")
    if os.path.exists(target):
        os.remove(target)
    srv.begin()
    wall, cpu, rss = measured(["casync", "extract", f"--store={srv.url('casync/store')}", f"--seed={old}",
                               "--reflink=no", "--hardlink=no", srv.url("casync/new.caibx"), target])
    if not same(target, new):
        sys.exit("casync: the extracted image differs")
    fetched, reqs = srv.served("casync/")
    rows.append(row("casync (64 KiB average)", fetched, os.path.getsize(f"{cas}/new.caibx"), reqs, wall, cpu,
                    rss / 1024, size))
    figures["casync"] = (fetched, wall, cpu)

    # zchunk: old.zck on the device, new.zck on the server.
    z = os.path.join(srv_root, "zck")
    if os.path.exists(z):
        shutil.rmtree(z)
    os.makedirs(z)
    run(["zck", "-o", f"{z}/new.zck", new])
    local = os.path.join(WORK, "zck-dev")
    if os.path.exists(local):
        shutil.rmtree(local)
    os.makedirs(local)
    run(["zck", "-o", f"{local}/old.zck", old])
    header = run(["zck_read_header", f"{z}/new.zck"]).stdout
    hsize = 0
    for line in header.splitlines():
        if line.lower().startswith("header size"):
            hsize = int(line.split(":")[1].split()[0])
    srv.begin()
    script = f"cd {local} && zckdl -q --source=old.zck {srv.url('zck/new.zck')} && unzck -c new.zck > new.img"
    wall, cpu, rss = measured(["bash", "-c", script])
    if not same(os.path.join(local, "new.img"), new):
        sys.exit("zchunk: the image differs")
    fetched, reqs = srv.served("zck/")
    rows.append(row("zchunk (zckdl + unzck)", fetched, hsize, reqs, wall, cpu, rss / 1024, size))
    figures["zchunk"] = (fetched, wall, cpu)

    r_fetch, r_index = rauc_computed(old, new)
    rows.append(row("RAUC adaptive block-hash-index (computed)", r_fetch, r_index, None, None, None, None, size,
                    "4 KiB blocks in neither slot + 0.8% index"))
    figures["rauc"] = (r_fetch, None, None)

    print(f"\n#### ({case}) {CASES[case]}\n")
    print(f"{size >> 20} MiB image; {changed / 1e6:.1f} MB in changed 4 KiB blocks; updater's image file "
          f"{full_file / 1e6:.1f} MB, its index {index_file / 1e6:.2f} MB\n")
    print("| tool | fetched (of the image) | index / metadata | requests | wall s | CPU s | peak RSS MiB | note |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(r)
    sys.stdout.flush()
    return figures, full_file


CASES = {
    "a": "512 MiB random image, 26 scattered 1 MiB regions overwritten",
    "b": "ext4 image of 2,000 files, 100 of them rewritten (same size), reproducible mkfs",
    "c": "the same tree, 100 files grown by up to 64 KiB (allocations shift)",
    "d": "the same tree as the base, a non-reproducible mkfs (random UUID, hash seed, times)",
    "e": "a major upgrade: 2,200 files, 5% of the old ones kept",
    "m": "memory: a 4 GiB random image, 26 scattered 1 MiB regions overwritten",
}


def main():
    global WORK
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default="/tmp/updater-delta")
    ap.add_argument("--cases", default="abcde")
    a = ap.parse_args()
    WORK = os.path.abspath(a.work)
    os.makedirs(WORK, exist_ok=True)
    srv_root = os.path.join(WORK, "srv")
    os.makedirs(srv_root, exist_ok=True)
    srv = Server(srv_root)
    try:
        print(f"# updater delta benchmark, {time.strftime('%Y-%m-%d', time.gmtime())}, {os.cpu_count()} cores")
        for c in a.cases:
            figures, full = bench_case(c, srv_root, srv)
            if c == "m":
                continue
            u = figures["updater, kept index"][0]
            print(f"\nupdater / casync: {u / figures['casync'][0]:.2f}; updater / zchunk: "
                  f"{u / figures['zchunk'][0]:.2f}; updater / its image file (a full download): {u / full:.3f}; "
                  f"delta install {figures['updater, kept index'][1]:.2f} s against "
                  f"{figures['updater, full (nothing to reuse)'][1]:.2f} s for the full install")
            sys.stdout.flush()
    finally:
        srv.stop()


if __name__ == "__main__":
    main()
