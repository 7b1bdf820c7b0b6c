#!/usr/bin/env python3
"""Write the figures of an e2e run (target/e2e/results.json) into
docs/e2e.md, between the markers <!-- e2e-times --> / <!-- /e2e-times -->
(each scenario's wall time and the totals) and <!-- e2e-downtime --> /
<!-- /e2e-downtime --> (kexec against reboot).

Usage: tools/e2e-figures.py [RESULTS] [--note TEXT]
"""
import json, re, sys

args = sys.argv[1:]
note = ""
if "--note" in args:
    i = args.index("--note")
    note = args[i + 1]
    del args[i:i + 2]
path = args[0] if args else "target/e2e/results.json"
d = json.load(open(path))
rows = d["results"]

times = ["| scenario | guest | result | wall (s) | downtime (s) | via |", "|---|---|---|---:|---:|---|"]
for r in rows:
    t = r["timings"]
    times.append(f"| {r['scenario']} | {r.get('guest', '')} | {'PASS' if r['ok'] else 'FAIL'} | {t.get('wall_s', '')} | {t.get('downtime_s', '—')} | {t.get('downtime_via', '—')} |")
times.append(f"| **all {len(rows)}, {d.get('jobs', 2)} at a time** | | {sum(r['ok'] for r in rows)} passed | {d['total_s']} (build {d['build_s']}) | | |")
down = ["| scenario | via | downtime (s) |", "|---|---|---:|"]
for r in rows:
    t = r["timings"]
    if "downtime_s" in t:
        down.append(f"| {r['scenario']} | {t['downtime_via']} | {t['downtime_s']} |")
    if "cold_boot_downtime_s" in t:
        down.append(f"| {r['scenario']} (B's first cold boot) | reboot | {t['cold_boot_downtime_s']} |")

doc = open("docs/e2e.md").read()
for name, table in (("e2e-times", times), ("e2e-downtime", down)):
    body = "\n".join(table)
    if note:
        body = note + "\n\n" + body
    pat = re.compile(rf"<!-- {name} -->.*?<!-- /{name} -->", re.S)
    if not pat.search(doc):
        sys.exit(f"docs/e2e.md has no <!-- {name} --> markers")
    doc = pat.sub(lambda _: f"<!-- {name} -->\n{body}\n<!-- /{name} -->", doc)
open("docs/e2e.md", "w").write(doc)
print(f"docs/e2e.md: {len(rows)} scenarios from {path}")
