#!/usr/bin/python3
"""Task-level selection (Shnitzer et al. 2023) against a numpy re-implementation.

  1. the builder's leave-one-task-out table: for each task, u = mean cosine
     distance of its references to their 19 nearest references of the other
     tasks, acc[m] = how often the kNN predictor (other tasks, k = pack k) was
     right about model m -- recomputed from the pack's own rows and labels;
  2. for each of the fixture's held-out tasks, the core's S1, S2, S3, p, the
     choices and the out-of-distribution gate against the same formulas in
     float64 (p: Nadaraya-Watson, Gaussian kernel; gate: normal approximation
     of P[X_m* > X_BMA]).
Usage: ref_task.py CLI PACK PUB DATASET_DIR
"""
import json
import math
import sys
from collections import defaultdict

import numpy as np

from tr_ref import Checks, parse_pack, run_cli

CLI, PACK, PUB, DATA = sys.argv[1:5]
check = Checks()


def cli(args, lines):
    return run_cli(CLI, args, lines)


p = parse_pack(PACK)
T = p["tasks"]
check(T is not None, "the pack has a task table")
prompts = [json.loads(l) for l in open(DATA + "/prompts.jsonl")]
flat = lambda t: t.replace("\n", " ").replace("\r", " ")
base = ["--pack", PACK, "--key", PUB]
M, K = p["m"], p["k"]
scores = p["scores"] if p["scores"] is not None else np.array([c.astype(float) for c in p["correct"]])
valid = p["valid"] if p["valid"] is not None else np.ones_like(p["correct"])
Y = np.where(valid, scores, np.nan).T  # n x M, as the builder saw them (0/1 data)

# Which task each reference row came from: the train prompts with a known word,
# in order (the builder keeps that order).
train = [x for x in prompts if x.get("split") != "test"]
emb = [np.array(json.loads(l)) for l in cli(["embed"] + base, [flat(x["text"]) for x in train])]
task_of = [x["task"] for x, v in zip(train, emb) if v.any()]
check(len(task_of) == p["n"], "rows map to train prompts (%d vs %d)" % (len(task_of), p["n"]))
names = list(dict.fromkeys(task_of))
tid = np.array([names.index(t) for t in task_of])
check(len(names) == len(T["u"]), "tasks: %d in the data, %d in the table" % (len(names), len(T["u"])))

# 1. the table.
R = p["rows"].astype(np.float64)
Rn = np.linalg.norm(R, axis=1)
C = (R @ R.T) / np.outer(Rn, Rn)
u_sum, u_n = np.zeros(len(names)), np.zeros(len(names))
hit, cnt = np.zeros((len(names), M)), np.zeros((len(names), M))
for i in range(p["n"]):
    other = np.where(tid != tid[i])[0]
    order = other[np.lexsort((other, -C[i, other]))]
    u_sum[tid[i]] += np.mean(1 - C[i, order[:T["k_dist"]]])
    u_n[tid[i]] += 1
    nb = order[:K]
    for m in range(M):
        if np.isnan(Y[i, m]):
            continue
        lab = Y[nb, m]
        lab = lab[~np.isnan(lab)]
        if len(lab) == 0:
            continue
        hit[tid[i], m] += (lab.mean() > 0.5) == (Y[i, m] >= 0.5)
        cnt[tid[i], m] += 1
u_ref = u_sum / u_n
acc_ref = np.where(cnt > 0, hit / np.maximum(cnt, 1), 0.5)
check(np.abs(u_ref - T["u"]).max() < 1e-5, "u: max difference %.2g" % np.abs(u_ref - T["u"]).max())
# Near-ties at the k-th neighbour can flip a prediction between float32 and
# float64: allow one prompt's worth on the smallest task.
tol = 1.0 / np.bincount(tid).min() + 1e-6
check(np.abs(acc_ref - T["acc"]).max() <= tol, "acc: max difference %.4f (tolerance %.4f)" % (np.abs(acc_ref - T["acc"]).max(), tol))
check(np.mean(np.abs(acc_ref - T["acc"]) < 1e-6) > 0.98, "acc: %.3f of entries identical" % np.mean(np.abs(acc_ref - T["acc"]) < 1e-6))

# 2. the device's scores on each held-out task.
models = p["models"]
cost = np.array([m["cost_norm"] for m in models])
where = np.array([m["where"] for m in models])
prior = np.array([m["prior"] for m in models])


def argbest(score):
    best = None
    for j in range(M):
        if best is None or score[j] > score[best] + 1e-6 or (
                abs(score[j] - score[best]) <= 1e-6 and (where[j], cost[j]) < (where[best], cost[best])):
            best = j
    return best


by_task = defaultdict(list)
for x in prompts:
    if x.get("split") == "test":
        by_task[x["task"]].append(flat(x["text"]))
for task, texts in sorted(by_task.items()):
    out = json.loads(cli(["route"] + base + ["--method", "task"], texts)[0])
    routes = [json.loads(l) for l in cli(["route"] + base, texts)]
    qs = [np.array(json.loads(l), float) for l in cli(["embed"] + base, texts)]
    G, U = [], []
    for q, r in zip(qs, routes):
        if not q.any():
            continue
        G.append([r["predicted"][m["name"]] for m in models])
        c = np.sort(R @ q / (Rn * np.linalg.norm(q)))[::-1]
        U.append(np.mean(1 - c[:T["k_dist"]]))
    G = np.array(G)
    u = float(np.mean(U))
    s1, s2 = G.mean(0), (G > 0.5).mean(0)
    w = np.exp(-(u - T["u"]) ** 2 / (2 * T["bandwidth"] ** 2))
    pp = (w[:, None] * T["acc"]).sum(0) / w.sum()
    s3 = pp * s2 + (1 - pp) * (1 - s2)
    b3, bma = argbest(s3), argbest(prior)
    mu = (G[:, b3] - G[:, bma]).sum()
    var = (G[:, b3] * (1 - G[:, b3]) + G[:, bma] * (1 - G[:, bma])).sum()
    pb = 1.0 if b3 == bma else (0.5 * math.erfc(-mu / math.sqrt(2 * var)) if var > 0 else float(mu > 0))
    chosen = bma if pb < T["gate"] else b3
    got = lambda key: np.array([out["scores"][m["name"]][key] for m in models])
    ok = (out["prompts"] == len(G) and abs(out["mean_distance"] - u) < 1e-4 and
          np.abs(got("s1") - s1).max() < 1e-4 and np.abs(got("s2") - s2).max() < 1e-6 and
          np.abs(got("p") - pp).max() < 1e-4 and np.abs(got("s3") - s3).max() < 1e-4)
    check(ok, "%s: S1/S2/S3/p and u agree" % task)
    names_ = [m["name"] for m in models]
    check(out["by_s1"] == names_[argbest(s1)] and out["by_s3"] == names_[b3] and out["bma"] == names_[bma],
          "%s: choices by S1/S3 and BMA agree (%s/%s/%s vs %s/%s/%s)" % (
              task, out["by_s1"], out["by_s3"], out["bma"], names_[argbest(s1)], names_[b3], names_[bma]))
    check(abs(out["p_beats_bma"] - pb) < 1e-3 and out["chosen"] == names_[chosen],
          "%s: gate P %.4f vs %.4f, chosen %s vs %s" % (task, out["p_beats_bma"], pb, out["chosen"], names_[chosen]))
print("tasks: %d in the table, %d held-out tasks checked" % (len(names), len(by_task)))
check.finish()
