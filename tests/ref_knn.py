#!/usr/bin/python3
"""Independent float64 reference for the fixture pack.

Reads the pack with its own parser (core/PACK_FORMAT.md), re-implements the
built-in embedder and kNN routing in numpy, and compares with the C core as
seen through the CLI:
  1. host == core: the CLI's embedding of every reference prompt equals the
     int8 row the builder stored, bit for bit;
  2. embedder: a float64 re-implementation agrees with the core's int8
     output (quantization ties may differ by one step);
  3. routing: neighbours, per-model predicted correctness and the chosen
     model equal a float64 brute-force kNN, at several k, lambda, offline,
     prior strength a (each estimate shrunk toward the model's prior:
     (hits + a*prior) / (known + a); weighted, a counts in mean weights).
Usage: ref_knn.py CLI PACK PUB DATASET_DIR
"""
import json
import sys

import numpy as np

from tr_ref import Checks, parse_pack, ref_embed, run_cli

CLI, PACK, PUB, DATA = sys.argv[1:5]
check = Checks()


def ref_route(p, q, k, lam, offline, weighted=False, a=0.0):
    rows = p["rows"]
    cos = (rows @ q) / (np.sqrt((rows * rows).sum(1)) * np.sqrt(q @ q))
    order = np.lexsort((np.arange(len(cos)), -cos))[:k]
    # scikit-learn's weights='distance': 1/d, or only the d == 0 neighbours.
    dist = 1.0 - cos[order]
    w = np.ones(len(order))
    if weighted:
        w = (dist <= 1e-6).astype(float) if (dist <= 1e-6).any() else 1.0 / dist
    aw = a * w.mean()  # the prior weighs a neighbours of average weight
    pred = []
    for j, mo in enumerate(p["models"]):
        val = p["valid"][j][order] if p["valid"] is not None else np.ones(len(order), bool)
        lab = p["scores"][j][order] if p["scores"] is not None else p["correct"][j][order].astype(float)
        ww = w * val
        pred.append(((ww * lab).sum() + aw * mo["prior"]) / (ww.sum() + aw) if ww.sum() > 0 else mo["prior"])
    best = None
    for j, mo in enumerate(p["models"]):
        if offline and mo["where"] != 0:
            continue
        u = pred[j] - lam * mo["cost_norm"]
        if best is None or u > bu + 1e-9 or (abs(u - bu) <= 1e-9 and (
                mo["where"] < p["models"][best]["where"] or
                (mo["where"] == p["models"][best]["where"] and mo["cost_norm"] < p["models"][best]["cost_norm"]))):
            best, bu = j, u
    return best, pred, 1.0 - cos[order[0]]


def cli(args, lines):
    return run_cli(CLI, args, lines)


p = parse_pack(PACK)
prompts = [json.loads(l) for l in open(DATA + "/prompts.jsonl")]
flat = lambda t: t.replace("\n", " ").replace("\r", " ")
train = [flat(x["text"]) for x in prompts if x.get("split") != "test"]
test = [flat(x["text"]) for x in prompts if x.get("split") == "test"][:150]
base = ["--pack", PACK, "--key", PUB]

# 1. host (builder) and core (device) embed the reference prompts identically.
emb = [np.array(json.loads(l)) for l in cli(["embed"] + base, train)]
emb = [v for v in emb if v.any()]
check(len(emb) == p["n"], "references: %d embedded non-zero vs %d rows" % (len(emb), p["n"]))
same = sum(int((a == r).all()) for a, r in zip(emb, p["rows"]))
check(same == p["n"], "host/core bit-identical rows: %d of %d" % (same, p["n"]))

# 2. the embedder against its float64 re-implementation.
qs = [np.array(json.loads(l)) for l in cli(["embed"] + base, test)]
total = equal = 0
worst = 0
for t, q in zip(test, qs):
    r = ref_embed(p["emb"], t)
    if r is None:
        check(not q.any(), "prompt without known words should embed to zeros")
        continue
    total += q.size
    equal += int((r == q).sum())
    worst = max(worst, int(np.abs(r - q).max()))
check(total > 0 and equal / total >= 0.995, "embedder agreement %d/%d components" % (equal, total))
check(worst <= 1, "embedder max component difference %d" % worst)

# 3. routing equals the float64 brute-force kNN; a None: the pack's prior
# strength, else --prior-strength a (0: none).
for k, lam, offline, weighted, a in [(10, 0.0, False, False, None), (10, 0.1, False, False, 0),
                                     (50, 0.5, False, False, 4), (1, 0.0, False, False, None),
                                     (100, 0.05, False, False, 16), (10, 0.0, True, False, 2),
                                     (100, 0.0, False, True, None), (10, 0.2, False, True, 0),
                                     (10, 0.0, False, True, 8), (5, 0.0, False, False, 1)]:
    args = ["route"] + base + ["--k", str(k), "--lambda", str(lam)] + (["--offline"] if offline else []) \
        + (["--weighted"] if weighted else []) + ([] if a is None else ["--prior-strength", str(a)])
    a_used = p["prior_strength"] if a is None else a
    outs = [json.loads(l) for l in cli(args, test)]
    agree = pred_ok = dist_ok = 0
    for q, o in zip(qs, outs):
        if not q.any():
            agree += 1; pred_ok += 1; dist_ok += 1
            continue
        best, pred, dist = ref_route(p, q, k, lam, offline, weighted, a_used)
        agree += int(p["models"][best]["name"] == o["model"])
        # Weighted means divide float32 weights: 1e-5; uniform ones are exact
        # up to the float32 rounding of the prior term.
        tol = 1e-5 if weighted else 1e-6
        pred_ok += int(max(abs(pred[j] - o["predicted"][m["name"]]) for j, m in enumerate(p["models"])) < tol)
        dist_ok += int(abs(dist - o["nearest_distance"]) < 1e-5)
    label = "k=%d lambda=%g offline=%s weighted=%s a=%g" % (k, lam, offline, weighted, a_used)
    check(agree == len(outs), "%s: chosen model agrees on %d/%d" % (label, agree, len(outs)))
    check(pred_ok == len(outs), "%s: predicted correctness agrees on %d/%d" % (label, pred_ok, len(outs)))
    check(dist_ok == len(outs), "%s: nearest distance agrees on %d/%d" % (label, dist_ok, len(outs)))

# 4. scikit-learn itself, for the models whose every score is known: the
# same neighbours and the same 'distance' weights give the same predictions
# (scikit-learn has no prior: --prior-strength 0).
from sklearn.neighbors import KNeighborsRegressor

full = [j for j in range(p["m"]) if p["valid"] is None or p["valid"][j].all()]
labels = np.stack([p["correct"][j].astype(float) for j in full], axis=1)
for weights, extra in (("distance", ["--weighted"]), ("uniform", [])):
    outs = [json.loads(l) for l in cli(["route"] + base + ["--k", "100", "--prior-strength", "0"] + extra, test)]
    sk = KNeighborsRegressor(n_neighbors=100, metric="cosine", weights=weights, algorithm="brute")
    sk.fit(p["rows"].astype(np.float64), labels)
    # scikit-learn orders exact ties arbitrarily (MMLU-Pro repeats questions):
    # compare where the 100th and 101st neighbours are not tied.
    R = p["rows"].astype(np.float64)
    Rn = np.linalg.norm(R, axis=1)

    def untied(q):
        c = np.sort(R @ q / (Rn * np.linalg.norm(q)))[::-1]
        return abs(c[99] - c[100]) > 1e-12

    nz = [(q, o) for q, o in zip(qs, outs) if q.any() and untied(q.astype(np.float64))]
    got = np.array([[o["predicted"][p["models"][j]["name"]] for j in full] for _, o in nz])
    want = sk.predict(np.array([q for q, _ in nz], dtype=np.float64))
    close = int((np.abs(got - want).max(axis=1) < 1e-4).sum())
    check(len(nz) > 100 and close == len(nz),
          "scikit-learn KNeighborsRegressor(weights=%s): %d of %d untied prompts agree" % (weights, close, len(nz)))

print("reference: %d test prompts, %d references, embedder agreement %.4f" % (len(test), p["n"], equal / max(total, 1)))
check.finish()
