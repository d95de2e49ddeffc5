#!/usr/bin/python3
"""tinyroute eval --data (the Jitkrittum 2025 protocol) on the fixture: the
JSON document's shape (tools/EVAL_JSON.md), invariants every deferral curve
must satisfy, the oracle above every router, fidelity in range, the task
table, determinism, and no overwrite without --force. The operating points
(per seed and mean/sd; CPT and APGR recomputed here from the seeds' figures
and from the split, replayed from the same splitmix64 seeds) and the single
models (counted here from correctness.csv on each seed's test prompts). A
synthetic set of 1,000 models through eval, report, build and add-model
(no fixed model-count limit; `make test-asan` runs this under ASan).
Usage: test_eval_protocol.py CLI EMBEDDER DATASET_DIR WORKDIR"""
import csv
import hashlib
import json
import math
import os
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


CPT_KEYS = ["80", "90", "95", "100"]
CPT_SHARE = [0.80, 0.90, 0.95, 1.00]


def stat(xs):
    """Mean, sd (n - 1) and count over the values that exist, as eval does."""
    v = np.array([x for x in xs if x is not None], dtype=float)
    if not len(v):
        return None, None, 0
    return v.mean(), (v.std(ddof=1) if len(v) > 1 else 0.0), len(v)


def same_stat(st, xs, with_finite):
    m, sd, k = stat(xs)
    if with_finite and st.get("finite") != k:
        return False
    if m is None:
        return st["mean"] is None and st["std"] is None
    return abs(st["mean"] - m) < 1e-9 and abs(st["std"] - sd) < 1e-9


def check_points(d, tag, stdout):
    """The operating points of every method: per seed, the mean/sd of those,
    CPT against QNC, APGR against the seed's Area, the seeds below
    Pareto-random, and the text table."""
    seeds = d["seeds"]
    pr = next(m for m in d["methods"] if m["id"] == "pareto-random").get("per_seed") or []
    for m in d["methods"]:
        ps = m.get("per_seed") or []
        t = "%s %s" % (tag, m["id"])
        if not check(len(ps) == len(seeds) and [p["seed"] for p in ps] == seeds and
                     len(pr) == len(seeds), "%s: one per_seed entry per seed" % t):
            continue
        for key, fin in (("area", 0), ("qnc", 1), ("peak", 0), ("best_single_accuracy", 0),
                         ("apgr", 1)):
            check(same_stat(m[key], [p[key] for p in ps], fin),
                  "%s: %s mean/sd are those of its seeds: %s" % (t, key, m[key]))
        for k in CPT_KEYS:
            check(same_stat(m["cpt"][k], [p["cpt"][k] for p in ps], 1),
                  "%s: CPT %s%% mean/sd/finite are those of its seeds" % (t, k))
        for p, q in zip(ps, pr):
            c = [p["cpt"][k] for k in CPT_KEYS]
            fin = [x for x in c if x is not None]
            check(c[3] == p["qnc"], "%s seed %d: CPT 100%% is QNC" % (t, p["seed"]))
            check(fin == sorted(fin) and c[:len(fin)] == fin,
                  "%s seed %d: CPT never falls as the share grows, and a share not "
                  "reached leaves the higher ones unreached: %s" % (t, p["seed"], c))
            lo, hi = p["cheapest_accuracy"], p["best_single_accuracy"]
            want = (p["area"] - lo) / (hi - lo) if hi > lo else None
            check((want is None and p["apgr"] is None) or
                  (want is not None and abs(p["apgr"] - want) < 1e-9),
                  "%s seed %d: APGR %s = (Area - cheapest) / (best - cheapest) = %s" %
                  (t, p["seed"], p["apgr"], want))
            check(abs(p["area_minus_pareto_random"] - (p["area"] - q["area"])) < 1e-12,
                  "%s seed %d: Area minus Pareto-random's" % (t, p["seed"]))
        if m["kind"] != "router":
            check("below_pareto_random" not in m, "%s: no below_pareto_random" % t)
            continue
        below = [q["area"] - p["area"] for p, q in zip(ps, pr) if q["area"] > p["area"]]
        b = m["below_pareto_random"]
        check(b["seeds"] == len(below) and b["of"] == len(seeds) and
              abs(b["max_shortfall"] - max(below, default=0)) < 1e-12,
              "%s: below Pareto-random in %d seeds by up to %.4f: %s" %
              (t, len(below), max(below, default=0), b))
        rows = [ln for ln in stdout.splitlines() if m["label"] in ln and " seeds" in ln]
        check(len(rows) == 1 and ("%d of %d seeds" % (len(below), len(seeds))) in rows[0],
              "%s: the text table says how often it falls below Pareto-random: %s" % (t, rows))
    check(stdout.count("operating points") == 1, "%s: an operating-points table on stdout" % tag)


M64 = (1 << 64) - 1


def splitmix(state):
    state = (state + 0x9E3779B97F4A7C15) & M64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return state, z ^ (z >> 31)


def shuffle(a, state):
    for i in range(len(a), 1, -1):
        state, z = splitmix(state)
        j = z % i
        a[i - 1], a[j] = a[j], a[i - 1]
    return state


def replay(path, n_seeds, fixed_pool):
    """eval's protocol on a data set whose vectors are all non-zero: models
    with more than 1% unknown scores and prompts with an unknown score left
    out, then per seed the prompts shuffled into 60/10/30 and the models into
    halves (all of them for a fixed pool). Per seed: each test model's
    accuracy on the test prompts and normalised cost, the best (ties to the
    cheaper) and the cheapest (ties to the more accurate) of them."""
    models = [(r["name"], float(r["cost"])) for r in csv.DictReader(open(path + "/models.csv"))]
    ids = [str(json.loads(ln)["id"]) for ln in open(path + "/prompts.jsonl") if ln.strip()]
    rows = list(csv.reader(open(path + "/correctness.csv")))
    col = [rows[0].index(n) for n, _ in models]
    by_id = {r[0]: r for r in rows[1:]}
    Y = np.array([[float(by_id[i][c]) if by_id[i][c] not in ("", "nan") else np.nan for c in col]
                  for i in ids])
    keep = [m for m in range(len(models)) if np.isnan(Y[:, m]).sum() <= 0.01 * len(Y)]
    Y = Y[:, keep]
    Y = Y[~np.isnan(Y).any(axis=1)]
    cost = [models[m][1] for m in keep]
    n, nm = Y.shape
    out = []
    for seed in range(1, n_seeds + 1):
        st = (seed * 0x2545F4914F6CDD1D + 1) & M64
        perm = list(range(n))
        st = shuffle(perm, st)
        te = perm[int(0.6 * n) + int(0.1 * n):]
        mperm = list(range(nm))
        shuffle(mperm, st)
        mte = mperm if fixed_pool else mperm[nm // 2:]
        cmin, cmax = min(cost[m] for m in mte), max(cost[m] for m in mte)
        r = {"acc": {}, "cn": {}, "cmin": cmin, "cmax": cmax, "best": -1, "c_best": 0,
             "cheap": None, "c_cheap": math.inf}
        for m in mte:
            a, c = Y[te, m].sum() / len(te), cost[m]
            r["acc"][m] = a
            r["cn"][m] = (c - cmin) / (cmax - cmin) if cmax > cmin else 0.0
            if a > r["best"] or (a == r["best"] and c < r["c_best"]):
                r["best"], r["c_best"] = a, c
            if c < r["c_cheap"] or (c == r["c_cheap"] and a > r["cheap"]):
                r["cheap"], r["c_cheap"] = a, c
        out.append(r)
    return [models[m][0] for m in keep], cost, out


def check_replay(d, path, fixed_pool, tag):
    """single_models and the seeds' best and cheapest accuracies against a
    count from correctness.csv on each seed's test prompts; with one seed,
    every CPT against the seed's curve (written at every 10th point of the
    1001 the CPT is read from)."""
    names, cost, seeds = replay(path, len(d["seeds"]), fixed_pool)
    want = []
    for m, name in enumerate(names):
        got = [r for r in seeds if m in r["acc"]]
        if got:
            want.append((name, cost[m], np.mean([r["cn"][m] for r in got]),
                         np.mean([r["acc"][m] for r in got]), len(got)))
    sm = d.get("single_models") or []
    check(len(sm) == len(want) and all(
        s["name"] == w[0] and s["cost"] == w[1] and abs(s["cost_norm"] - w[2]) < 1e-9 and
        abs(s["accuracy"] - w[3]) < 1e-9 and s["seeds"] == w[4] for s, w in zip(sm, want)),
        "%s: single_models (%d) match a count on the test prompts (%d)" % (tag, len(sm), len(want)))
    for m in d["methods"]:
        ps = m["per_seed"]
        check(all(abs(p["best_single_accuracy"] - r["best"]) < 1e-12 and
                  abs(p["cheapest_accuracy"] - r["cheap"]) < 1e-12 for p, r in zip(ps, seeds)),
              "%s %s: each seed's best and cheapest single model's accuracy" % (tag, m["id"]))
        if len(seeds) != 1 or m["kind"] == "baseline":
            continue  # Pareto-random's curve need not rise: no bracket
        r, p = seeds[0], ps[0]
        x = [c[0] for c in m["curve"]]
        q = [c[1] for c in m["curve"]]
        rel = [(r["cmin"] + (r["cmax"] - r["cmin"]) * v) / r["c_best"] for v in x]
        for k, share in zip(CPT_KEYS, CPT_SHARE):
            j = next((j for j in range(len(q)) if q[j] >= share * r["best"] - 1e-12), None)
            got = p["cpt"][k]
            ok = (got is None if j is None else got is not None and (
                abs(got - rel[0]) < 1e-12 if j == 0 else rel[j - 1] < got <= rel[j] + 1e-12))
            check(ok, "%s %s: CPT %s%% %s lies where the curve first reaches %.4f (point %s)" %
                  (tag, m["id"], k, got, share * r["best"], j))


for mode in ([], ["--fixed-pool", "--tasks"]):
    out = WORK + "/e%d.json" % len(mode)
    r = run("--data", DATA, "--embedder", EMB, "--seeds", 2, "--json", out, *mode)
    doc = json.load(open(out))
    tag = "fixed pool" if mode else "new models"
    d = doc["datasets"][0]
    ids = [m["id"] for m in d["methods"]]
    check(ids == ["knn", "kmeans", "learned-map", "task-map", "pareto-random", "oracle"],
          "%s: the six methods (the fixture has tasks: the task map too): %s" % (tag, ids))
    by_id = {m["id"]: m for m in d["methods"]}
    check(by_id["learned-map"]["prior_strength"] == by_id["kmeans"]["prior_strength"] ==
          by_id["task-map"]["prior_strength"] == by_id["knn"]["prior_strength"],
          "%s: the cluster methods' Psi is shrunk with kNN's chosen a %s" %
          (tag, by_id["knn"]["prior_strength"]))
    n_tasks = len({json.loads(l).get("task", "") for l in open(DATA + "/prompts.jsonl")})
    check(by_id["task-map"]["param"] == "K" and all(2 <= K <= n_tasks for K in by_id["task-map"]["chosen"]),
          "%s: the task map's K is the train prompts' task count (<= %d): %s" %
          (tag, n_tasks, by_id["task-map"]["chosen"]))
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
        if "chosen" in m and m["id"] != "task-map":  # the task map's K: the task count (above)
            grid = [5, 10, 20, 50, 100, 200] if m["id"] == "knn" else [4, 8, 16, 32, 64]
            check(all(k in grid for k in m["chosen"]), "%s %s: chosen %s from the grid" %
                  (tag, m["id"], m["chosen"]))
        if "chosen" in m:  # kNN: a with k; the cluster methods: the a of their Psi
            a = m.get("prior_strength", [])
            check(len(a) == len(m["chosen"]) and all(x in [0, 1, 2, 4, 8, 16, 32] for x in a),
                  "%s %s: prior strength %s chosen from the grid, one per seed" % (tag, m["id"], a))
    f = d["fidelity"]
    check(0.9 <= f["same_decisions"] <= 1 and 0.9 <= f["recall_at_10"] <= 1 and
          f["delta_area"] < 0.02, "%s: fidelity in range %s" % (tag, f))
    check("kNN (int8 core)" in r.stdout and "fidelity" in r.stdout, "%s: a table on stdout" % tag)
    check_points(d, tag, r.stdout)
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
# The single models and the CPT against the split replayed here: all
# vectors of noise.npy are non-zero, so only unknown scores drop prompts.
for seeds, mode in ((1, ["--fixed-pool"]), (3, [])):
    out = WORK + "/replay-%d.json" % seeds
    run("--data", given, "--embeddings", "noise.npy", "--seeds", seeds, "--no-learned-map",
        "--json", out, *mode)
    check_replay(json.load(open(out))["datasets"][0], given, bool(mode),
                 "replay %d seed(s) %s" % (seeds, "fixed pool" if mode else "new models"))
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

# Prompts without a task (a fleet's logged prompts: tools/fleet_step.py
# writes none) among prompts of named tasks get the nearest task's, as build
# gives them: never a task "" of every topic in the task map or the S3 table.
untasked = WORK + "/untasked"
shutil.rmtree(untasked, ignore_errors=True)
shutil.copytree(DATA, untasked)
recs = [json.loads(line) for line in open(DATA + "/prompts.jsonl")]
named = {r["task"] for r in recs}
blank = [i for i in range(len(recs)) if i % 7 == 3]
for i in blank:
    recs[i]["task"] = ""
with open(untasked + "/prompts.jsonl", "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in recs)
out = WORK + "/untasked.json"
run("--data", untasked, "--embedder", EMB, "--seeds", 1, "--fixed-pool", "--tasks",
    "--json", out, "--force")
d = json.load(open(out))["datasets"][0]
inferred = d.get("tasks_inferred", 0)
check(0.9 * len(blank) <= inferred <= len(blank),
      "untasked prompts given a task: %s of the %d blanked" % (inferred, len(blank)))
task_rows = d.get("tasks", {}).get("rows", [])
check(task_rows and all(t["task"] in named for t in task_rows),
      "the S3 table holds only named tasks: %s" % sorted({t["task"] for t in task_rows} - named))
tmap = next((m for m in d["methods"] if m["id"] == "task-map"), {})
check(tmap.get("chosen") == [len(named)],
      "the task map has one cluster per named task (%d): %s" % (len(named), tmap.get("chosen")))

# 1,000 models: no fixed model-count limit in eval (both pool modes, the task
# table), report, build, add-model (more --model than the old 64) and route.
def synthetic(out, names, n_prompts=300, seed=11):
    """tools/DATASET.md's layout: the fixture's first prompts (text the
    embedder knows) in five tasks, scores drawn from a per-model skill, a
    per-task bonus and a per-prompt difficulty, log-normal costs."""
    os.makedirs(out, exist_ok=True)
    rows = [json.loads(ln) for ln in open(DATA + "/prompts.jsonl") if ln.strip()][:n_prompts]
    rng = np.random.default_rng(seed)
    nm = len(names)
    skill, bonus = rng.normal(0, 0.7, nm), rng.normal(0, 0.8, (5, nm))
    logit = skill[None, :] + bonus[np.arange(n_prompts) % 5] - rng.normal(0, 1.2, (n_prompts, 1))
    Y = (rng.random((n_prompts, nm)) < 1 / (1 + np.exp(-logit))).astype(int)
    cost = np.round(np.exp(rng.normal(1, 1.2, nm)) + np.maximum(skill, 0), 3)
    with open(out + "/prompts.jsonl", "w") as f:
        for i, r in enumerate(rows):
            f.write(json.dumps({"id": "p%d" % i, "text": r["text"], "task": "t%d" % (i % 5),
                                "split": "test" if i % 5 == 4 else "train"}) + "\n")
    with open(out + "/models.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["name", "cost", "where"])
        w.writerows([n, cost[m], "device" if m < 3 else "cloud"] for m, n in enumerate(names))
    with open(out + "/correctness.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id"] + names)
        w.writerows(["p%d" % i] + list(Y[i]) for i in range(n_prompts))


KEYS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "keys")
names = ["m%04d" % m for m in range(1000)]
syn = WORK + "/syn1000"
synthetic(syn, names)
out, html = WORK + "/syn.json", WORK + "/syn.html"
r = run("--data", syn, "--embedder", EMB, "--seeds", 2, "--json", out, "--report", html)
d = json.load(open(out))["datasets"][0]
check(d["n_models"] == 1000 and len(d["methods"]) == 6 and
      sum(m["seeds"] for m in d["single_models"]) == 2 * 500,
      "1,000 models, new models: the six methods (5 tasks: the task map too), 500 test models "
      "per seed in single_models")
oracle = next(m for m in d["methods"] if m["id"] == "oracle")
check(all(len(m["curve"]) == 101 and oracle["area"]["mean"] >= m["area"]["mean"] - 1e-9
          for m in d["methods"]), "1,000 models: every curve written, the oracle on top")
check_points(d, "1,000 models", r.stdout)
page = open(html, encoding="utf-8").read()
check(page.count('<g class="model"') == len(d["single_models"]),
      "1,000 models: eval --report marks every single model (%d)" % len(d["single_models"]))
out2 = WORK + "/syn-fixed.json"
r = run("--data", syn, "--embedder", EMB, "--seeds", 1, "--fixed-pool", "--tasks",
        "--json", out2)
d2 = json.load(open(out2))["datasets"][0]
check(len(d2["single_models"]) == 1000 and (d2.get("tasks") or {}).get("n_tasks") == 5,
      "1,000 models, fixed pool: every model a single model, the 5-task table")
r = subprocess.run([CLI, "report", "--json", out, "--json", out2, "--out", WORK + "/syn-r.html"],
                   capture_output=True, text=True)
check(r.returncode == 0 and "2 data sets" in r.stdout, "report: both 1,000-model documents")
r = subprocess.run([CLI, "report", "--out", WORK + "/many.html"] +
                   [a for _ in range(20) for a in ("--json", WORK + "/e0.json")],
                   capture_output=True, text=True)
check(r.returncode == 0 and "20 data sets" in r.stdout, "report: 20 --json, no fixed count")


def cli(*args):
    return subprocess.run([CLI] + [str(a) for a in args], capture_output=True, text=True)


def predicted(pack, *delta):
    r = cli("route", "--pack", pack, *delta, "--key", KEYS + "/test-signing.pub",
            "What is the capital of France?")
    return json.loads(r.stdout)["predicted"] if r.returncode == 0 else {}


r = cli("build", "--data", syn, "--embedder", EMB, "--key", KEYS + "/test-signing.key",
        "--out", WORK + "/syn.trp")
check(r.returncode == 0 and "M=1000 models" in r.stdout and
      list(predicted(WORK + "/syn.trp")) == names,
      "build and route: a pack of 1,000 models " + r.stderr.strip())
# A base of 900 models, then the other 100 in one delta.
base = WORK + "/syn900"
synthetic(base, names[:900])
r = cli("build", "--data", base, "--embedder", EMB, "--key", KEYS + "/test-signing.key",
        "--out", WORK + "/syn900.trp")
add = [a for n in names[900:] for a in ("--model", n)]
r2 = cli("add-model", "--pack", WORK + "/syn900.trp", "--key", KEYS + "/test-signing.key",
         "--out", WORK + "/add100.trd", "--data", syn, *add)
check(r.returncode == 0 and r2.returncode == 0 and
      list(predicted(WORK + "/syn900.trp", "--delta", WORK + "/add100.trd")) == names,
      "add-model: 100 models in one delta over 900, routed among all 1,000 " +
      r.stderr.strip() + r2.stderr.strip())
check.finish()
