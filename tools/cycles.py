#!/usr/bin/env python3
"""Import cycles between the top-level modules of each Rust crate under a tree.
# (From the team's shared tools; kept in the repository so CI can run it on a fresh clone.)

Usage: cycles.py [ROOT]   (default: current directory)
Reads every src/ folder of a crate (a folder with Cargo.toml and src/), maps
each .rs file to its top-level module (src/install/pipeline.rs -> install),
collects `crate::NAME` references, and prints each strongly connected group
of two or more modules. Exit 1 when any crate has one.
"""
import os, re, sys

ref = re.compile(r"\bcrate::([a-z_][a-z0-9_]*)")
use_group = re.compile(r"\buse\s+crate::\{([^;]*)\}", re.S)

def modules(src):
    edges = {}
    for dp, _, fs in os.walk(src):
        for f in fs:
            if not f.endswith(".rs"):
                continue
            p = os.path.join(dp, f)
            rel = os.path.relpath(p, src).split(os.sep)
            top = rel[0][:-3] if len(rel) == 1 else rel[0]
            if top in ("lib", "main"):
                continue
            text = open(p, encoding="utf-8", errors="replace").read()
            # drop #[cfg(test)] mod tests { ... } tails: tests may reach anywhere
            cut = re.search(r"#\[cfg\(test\)\]\s*mod\s+tests", text)
            if cut:
                text = text[: cut.start()]
            names = set(ref.findall(text))
            for g in use_group.findall(text):
                names |= {n.split("::")[0].strip() for n in g.split(",") if n.strip()}
            edges.setdefault(top, set()).update(n for n in names if n and n != top)
    return edges

def sccs(g):
    index, low, stack, on, out, i = {}, {}, [], set(), [], [0]
    def visit(v):
        index[v] = low[v] = i[0]; i[0] += 1; stack.append(v); on.add(v)
        for w in g.get(v, ()):
            if w not in g:
                continue
            if w not in index:
                visit(w); low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop(); on.discard(w); comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))
    sys.setrecursionlimit(10000)
    for v in list(g):
        if v not in index:
            visit(v)
    return out

root = sys.argv[1] if len(sys.argv) > 1 else "."
bad = 0
for dp, ds, fs in os.walk(root):
    ds[:] = [d for d in ds if d not in ("target", ".git", "node_modules")]
    if "Cargo.toml" in fs and "src" in ds:
        groups = sccs(modules(os.path.join(dp, "src")))
        for c in groups:
            bad += 1
            print(f"{os.path.relpath(dp, root)}: cycle of {len(c)} modules: {' '.join(c)}")
sys.exit(1 if bad else 0)
