#!/usr/bin/python3
"""tinyroute eval --data (the Jitkrittum 2025 protocol) on the fixture: the
JSON document's shape (tools/EVAL_JSON.md), invariants every deferral curve
must satisfy, the oracle above every router, fidelity in range, the task
table, determinism, and no overwrite without --force.
Usage: test_eval_protocol.py CLI EMBEDDER DATASET_DIR WORKDIR"""
import json
import subprocess
import sys

from tr_ref import Checks

CLI, EMB, DATA, WORK = sys.argv[1:5]
check = Checks()


def run(*args, ok=True):
    r = subprocess.run([CLI, "eval"] + [str(a) for a in args], capture_output=True, text=True)
    if ok and r.returncode:
        sys.exit("eval failed: " + r.stderr)
    return r


def area(curve):
    return sum((curve[i][1] + curve[i - 1][1]) / 2 * (curve[i][0] - curve[i - 1][0])
               for i in range(1, len(curve)))


for mode in ([], ["--fixed-pool", "--tasks"]):
    out = WORK + "/e%d.json" % len(mode)
    r = run("--data", DATA, "--embedder", EMB, "--seeds", 2, "--json", out, *mode)
    doc = json.load(open(out))
    tag = "fixed pool" if mode else "new models"
    d = doc["datasets"][0]
    ids = [m["id"] for m in d["methods"]]
    check(ids == ["knn", "kmeans", "learned-map", "pareto-random", "oracle"],
          "%s: the five methods: %s" % (tag, ids))
    check(d["seeds"] == [1, 2] and d["n_models"] == 26,
          "%s: 2 seeds, 26 models (one with unknown scores left out): %s" % (tag, d["n_models"]))
    check(d["cost_unit"] == open(DATA + "/cost_unit.txt").read().strip(),
          "%s: the cost unit comes from the dataset's cost_unit.txt: %s" % (tag, d["cost_unit"]))
    oracle = next(m for m in d["methods"] if m["id"] == "oracle")
    for m in d["methods"]:
        c = m["curve"]
        q = [p[1] for p in c]
        check(len(c) == 101 and c[0][0] == 0 and c[-1][0] == 1 and
              all(0 <= x <= 1 for x in q), "%s %s: 101 points over [0,1]" % (tag, m["id"]))
        if m["kind"] == "router" or m["kind"] == "bound":
            check(all(q[i] >= q[i - 1] - 1e-12 for i in range(1, 101)),
                  "%s %s: the hull never falls as the budget grows" % (tag, m["id"]))
        check(abs(area(c) - m["area"]["mean"]) < 0.003,
              "%s %s: Area %.4f is the area under its curve (%.4f)" %
              (tag, m["id"], m["area"]["mean"], area(c)))
        check(m["peak"]["mean"] >= max(q) - 1e-9 and m["peak"]["mean"] >= m["area"]["mean"],
              "%s %s: Peak bounds the curve" % (tag, m["id"]))
        check(oracle["area"]["mean"] >= m["area"]["mean"] - 1e-9,
              "%s: the oracle (%.4f) is above %s (%.4f)" %
              (tag, oracle["area"]["mean"], m["id"], m["area"]["mean"]))
        if "chosen" in m:
            grid = [5, 10, 20, 50, 100, 200] if m["id"] == "knn" else [4, 8, 16, 32, 64]
            check(all(k in grid for k in m["chosen"]), "%s %s: chosen %s from the grid" %
                  (tag, m["id"], m["chosen"]))
    f = d["fidelity"]
    check(0.9 <= f["same_decisions"] <= 1 and 0.9 <= f["recall_at_10"] <= 1 and
          f["delta_area"] < 0.02, "%s: fidelity in range %s" % (tag, f))
    check("kNN (int8 core)" in r.stdout and "fidelity" in r.stdout, "%s: a table on stdout" % tag)
    if mode:
        t = d["tasks"]
        check(t["n_tasks"] >= 5 and all(max(x["s1"], x["s2"], x["s3"], x["bma"]) <= x["oracle"] + 1e-9
                                        for x in t["rows"]),
              "tasks: %d held-out tasks, no choice above the per-task oracle" % t["n_tasks"])

# Determinism: the same command gives the same numbers.
again = WORK + "/again.json"
run("--data", DATA, "--embedder", EMB, "--seeds", 2, "--json", again)
a, b = json.load(open(WORK + "/e0.json")), json.load(open(again))
check(a["datasets"] == b["datasets"], "two runs give identical results")
r = run("--data", DATA, "--embedder", EMB, "--seeds", 2, "--json", again, ok=False)
check(r.returncode == 2 and "not overwriting" in r.stderr, "an existing --json is kept")
r = run("--data", DATA + "/nope", "--embedder", EMB, ok=False)
check(r.returncode == 1 and "nope" in r.stderr, "a missing dataset is named: " + r.stderr.strip())
r = run("--data", DATA, "--embedder", EMB, "--seeds", 0, ok=False)
check(r.returncode == 2 and "--seeds" in r.stderr, "--seeds 0 is refused")
check.finish()
