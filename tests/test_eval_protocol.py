#!/usr/bin/python3
"""tinyroute eval --data (the Jitkrittum 2025 protocol) on the fixture: the
JSON document's shape (tools/EVAL_JSON.md), invariants every deferral curve
must satisfy, the oracle above every router, fidelity in range, the task
table, determinism, and no overwrite without --force.
Usage: test_eval_protocol.py CLI EMBEDDER DATASET_DIR WORKDIR"""
import csv
import hashlib
import json
import shutil
import subprocess
import sys

import numpy as np

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

# --embeddings: given vectors under the same protocol. Vectors that carry each
# prompt's own correctness row route far better than random ones -- which
# they only can if row i is used for prompt i.
given = WORK + "/given"
shutil.rmtree(given, ignore_errors=True)
shutil.copytree(DATA, given)
rows = list(csv.reader(open(given + "/correctness.csv")))[1:]
Y = np.array([[float(x) if x not in ("", "nan") else 0.0 for x in r[1:]] for r in rows])
rng = np.random.default_rng(7)
noise = rng.standard_normal((len(rows), 16)).astype(np.float32)
np.save(given + "/noise.npy", noise)
np.save(given + "/truth.npy", np.hstack([Y, 0.01 * noise[:, :4]]).astype(np.float32))
holes = noise.copy()
holes[[3, 10, 11]] = 0
np.save(given + "/holes.npy", holes)
res = {}
for name in ("noise", "truth", "holes"):
    out = WORK + "/given-%s.json" % name
    run("--data", given, "--embeddings", name + ".npy", "--seeds", 2, "--fixed-pool",
        "--no-learned-map", "--json", out, "--force")
    res[name] = json.load(open(out))["datasets"][0]
    e = res[name]["embedder"]
    check(e["name"] == "given vectors: %s.npy" % name and
          e["sha256"] == hashlib.sha256(open(given + "/%s.npy" % name, "rb").read()).hexdigest(),
          "--embeddings %s: named with the file's sha256 in the JSON" % name)
knn = {k: next(m for m in v["methods"] if m["id"] == "knn")["area"]["mean"] for k, v in res.items()}
check(knn["truth"] > knn["noise"] + 0.05,
      "vectors made of each prompt's own scores route better (Area %.4f) than noise (%.4f)" %
      (knn["truth"], knn["noise"]))
check(res["holes"]["dropped_no_known_word"] == res["noise"]["dropped_no_known_word"] + 3 and
      res["holes"]["n_prompts"] == res["noise"]["n_prompts"] - 3,
      "all-zero rows are left out and counted: %d" % res["holes"]["dropped_no_known_word"])
bad = {"nan": noise.copy(), "rows": noise[:-1], "f64": noise.astype(np.float64),
       "vec": noise[:, 0]}
bad["nan"][5, 2] = np.nan
for name, arr in bad.items():
    np.save(given + "/bad-%s.npy" % name, arr)
    r = run("--data", given, "--embeddings", "bad-%s.npy" % name, "--seeds", 1, ok=False)
    check(r.returncode == 1 and "bad-%s.npy" % name in r.stderr,
          "--embeddings %s is refused with the file named: %s" % (name, r.stderr.strip()))
r = run("--data", given, "--embeddings", "noise.npy", "--embedder", EMB, ok=False)
check(r.returncode == 2 and "replaces" in r.stderr, "--embeddings with --embedder is refused")
r = run("--data", given, "--embeddings", "../x.npy", ok=False)
check(r.returncode == 2 and "inside each" in r.stderr, "--embeddings is a file name, not a path")
check.finish()
