#!/usr/bin/python3
"""Rebuild (or just eval) the packs of a tests/eval/fleet_sim.py run (WORK/NAME/seed*/,
its bench and fleet-* datasets) with CLI; prints a table of the held-out Areas
and, per batch, whether build's log guard kept the logs (K) or dropped them (D);
the guard's report lines go to stderr. Used for tests/eval/RESULTS.md.
fleet_rebuild.py CLI WORK NAME OUTTAG [--eval-only] [-- extra build flags]"""
import json, os, re, subprocess, sys
import numpy as np

CLI, WORK, NAME, OUT = sys.argv[1:5]
rest = sys.argv[5:]
eval_only = "--eval-only" in rest
extra = rest[rest.index("--") + 1:] if "--" in rest else []
ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
EMB = ROOT + "/build/embedder-50000.bin"
KEY = ROOT + "/fixtures/keys/test-signing.key"
PUB = ROOT + "/fixtures/keys/test-signing.pub"
AREA = re.compile(r"deferral curve .*?: Area ([0-9.]+)")
TAGS = ["0", "0r", "1", "1r", "5", "5r", "20", "20r"]


def area(pack, test):
    r = subprocess.run([CLI, "eval", "--pack", pack, "--key", PUB, "--data", test], capture_output=True, text=True)
    return float(AREA.search(r.stdout).group(1))


res = {}
seeds = sorted(d for d in os.listdir(os.path.join(WORK, NAME)) if d.startswith("seed"))
for sd in seeds:
    W = os.path.join(WORK, NAME, sd)
    o = os.path.join(W, OUT)
    os.makedirs(o, exist_ok=True)
    r = {}
    for tag in ["a"] + TAGS:
        data = os.path.join(W, "bench" if tag == "a" else "fleet-" + tag)
        pack = os.path.join(W, "a.trp" if tag == "a" else "p-%s.trp" % tag)
        g = None
        if not eval_only:
            pack = os.path.join(o, tag + ".trp")
            b = subprocess.run([CLI, "build", "--data", data, "--embedder", EMB, "--key", KEY, "--out", pack,
                                "--force", "--no-tasks", "--json"] + extra, capture_output=True, text=True)
            if b.returncode:
                sys.exit(b.stderr)
            j = json.loads(b.stdout)
            g = j["build"].get("log_guard")
            mv = j["build"]["method_validation"]["method"]
            for l in b.stderr.splitlines():
                if l.startswith("log guard"):
                    print(sd, tag, l, file=sys.stderr)
        r[tag] = dict(area=area(pack, os.path.join(W, "test")), guard=g)
    res[sd] = r
    print(sd, " ".join("%s %.4f%s" % (t, r[t]["area"], "" if not r[t]["guard"] else ("K" if r[t]["guard"]["logs_kept"] else "D")) for t in r), file=sys.stderr)
json.dump(res, open(os.path.join(WORK, NAME, OUT + ".json"), "w"), indent=1)
A = lambda t: np.array([res[s][t]["area"] for s in seeds])
nol, clean = A("a"), A("0")
print("| pack | Area | − clean (mean, worst) | − no logs (mean, worst) | per seed − no logs | logs kept |")
print("|---|---|---|---|---|---|")
print("| (a) without logs | %.4f ± %.4f | | | | |" % (nol.mean(), nol.std(ddof=1)))
for t in TAGS:
    v = A(t)
    kept = [res[s][t]["guard"] for s in seeds]
    ks = "".join("-" if k is None else ("K" if k["logs_kept"] else "D") for k in kept)
    print("| %s | %.4f ± %.4f | %+.4f, %+.4f | %+.4f, %+.4f | %s | %s |" % (
        t, v.mean(), v.std(ddof=1), (v - clean).mean(), (v - clean).min(), (v - nol).mean(), (v - nol).min(),
        " ".join("%+.4f" % x for x in v - nol), ks))
