#!/usr/bin/python3
"""Cluster routing (Jitkrittum et al. 2025) against scikit-learn and numpy.

  1. fitting: the builder's K-means++ on the fixture's reference prompts
     reaches an inertia within 3% of scikit-learn's KMeans (10 restarts) on
     the same prompts embedded by an independent float64 embedder;
  2. error vectors: Psi in the pack equals 1 - mean score per cluster and
     model, shrunk toward the model's overall mean with the strength the
     header records, recomputed in numpy from the assignment to the shipped
     centroids;
  3. routing: the core's cluster choice, predicted correctness and chosen
     model equal a float64 re-computation from the shipped centroids;
  4. the learned soft cluster map (its loss, predictions and choices);
  5. the task map (build --task-map): one cluster per task, Psi from the
     references' own tasks, theta lowers the regularised cross-entropy of
     the tasks from its task-mean start, and routing equals z(x)^T Psi.
Usage: ref_cluster.py CLI EMBEDDER KEY PUB DATASET_DIR WORKDIR
"""
import json
import re
import subprocess
import sys

import numpy as np
from sklearn.cluster import KMeans

from tr_ref import Checks, parse_pack, ref_embed_float

CLI, EMB, KEY, PUB, DATA, WORK = sys.argv[1:7]
K = 16
check = Checks()


pack = WORK + "/clusters.trp"
out = subprocess.run([CLI, "build", "--data", DATA, "--embedder", EMB, "--key", KEY, "--k", "100",
                      "--clusters", str(K), "--learned-map", "--method", "knn", "--out", pack, "--force"],
                     capture_output=True, text=True, check=True).stdout
ours = float(re.search(r"inertia ([0-9.]+)", out).group(1))
p = parse_pack(pack)
c = p["clusters"]
check(c is not None and c["rows"].shape[0] == K, "pack carries %d clusters" % K)

prompts = [json.loads(l) for l in open(DATA + "/prompts.jsonl")]
models = [l.split(",")[0] for l in open(DATA + "/models.csv").read().splitlines()[1:]]
header = open(DATA + "/correctness.csv").readline().strip().split(",")
rows = {}
for line in open(DATA + "/correctness.csv").read().splitlines()[1:]:
    cells = line.split(",")
    rows[cells[0]] = [float(x) if x else np.nan for x in cells[1:]]
col = [header.index(m["name"]) - 1 for m in p["models"]]

X, Y, TASK = [], [], []
for pr in prompts:
    if pr.get("split") == "test":
        continue
    v = ref_embed_float(p["emb"], pr["text"])
    if v is None or not np.any(v):
        continue
    X.append(v / np.linalg.norm(v))
    Y.append([rows[str(pr["id"])][j] for j in col])
    TASK.append(pr.get("task", ""))
X, Y = np.array(X), np.array(Y)
check(len(X) == p["n"], "references: %d here, %d in the pack" % (len(X), p["n"]))

# 1. fitting quality against scikit-learn.
sk = KMeans(n_clusters=K, n_init=10, random_state=0).fit(X)
check(ours <= sk.inertia_ * 1.03, "inertia %.3f vs scikit-learn %.3f" % (ours, sk.inertia_))

# 2. Psi from the shipped centroids' assignment of the references.
# The device assigns the int8 reference rows to the int8 centroids.
R = p["rows"].astype(np.float64)
score = (R @ c["rows"].T.astype(np.float64)) / np.linalg.norm(R, axis=1)[:, None] * c["inv_scale"][None, :]
assign = np.argmax(score - c["half_sq"][None, :], axis=1)
psi = np.zeros((K, len(p["models"])))
for k in range(K):
    for j in range(len(p["models"])):
        ys = Y[assign == k, j]
        ys = ys[~np.isnan(ys)]
        allj = Y[:, j][~np.isnan(Y[:, j])]
        # Shrunk toward the overall mean by a pseudo-prompts (models/fit/trh_fit.h),
        # a = build's --prior-strength (default 16), recorded in the header.
        a = c["psi_prior"]
        psi[k, j] = 1 - (ys.sum() + a * allj.mean()) / (len(ys) + a) if len(ys) else 1 - allj.mean()
check(c["psi_prior"] == p["prior_strength"] and c["psi_prior"] > 0,
      "the header records Psi's prior strength, the pack's kNN prior strength %g (%g)"
      % (p["prior_strength"], c["psi_prior"]))
agree = np.mean(np.abs(psi - c["psi"]) < 1e-5)
check(agree == 1.0, "Psi entries recomputed from the shipped centroids: %.3f agree" % agree)

# 3. routing the held-out prompts.
test = [pr["text"].replace("\n", " ") for pr in prompts if pr.get("split") == "test"][:200]
qs = [np.array(json.loads(l)) for l in subprocess.run(
    [CLI, "embed", "--pack", pack, "--key", PUB], input="\n".join(test) + "\n",
    capture_output=True, text=True, check=True).stdout.splitlines()]
for lam in (0.0, 0.2):
    outs = [json.loads(l) for l in subprocess.run(
        [CLI, "route", "--pack", pack, "--key", PUB, "--method", "cluster", "--lambda", str(lam)],
        input="\n".join(test) + "\n", capture_output=True, text=True, check=True).stdout.splitlines()]
    same_cluster = same_model = same_pred = used = 0
    for q, o in zip(qs, outs):
        if not q.any():
            continue
        used += 1
        score = (c["rows"] @ q) / np.linalg.norm(q) * c["inv_scale"] - c["half_sq"]
        k = int(np.argmax(score))
        same_cluster += int(k == o["cluster"])
        pred = 1 - c["psi"][k]
        same_pred += int(max(abs(pred[j] - o["predicted"][m["name"]]) for j, m in enumerate(p["models"])) < 1e-5)
        util = [pred[j] - lam * m["cost_norm"] for j, m in enumerate(p["models"])]
        best = max(range(len(util)), key=lambda j: (round(util[j], 6), p["models"][j]["where"] == 0,
                                                   -p["models"][j]["cost_norm"]))
        same_model += int(p["models"][best]["name"] == o["model"])
    check(same_cluster == used, "lambda %g: cluster agrees on %d/%d" % (lam, same_cluster, used))
    check(same_pred == used, "lambda %g: predicted correctness agrees on %d/%d" % (lam, same_pred, used))
    check(same_model == used, "lambda %g: chosen model agrees on %d/%d" % (lam, same_model, used))
# 4. the learned soft cluster map: the builder's reported loss is the loss of
# the shipped theta, it is below the K-means start, and the device's
# predictions and choices equal z(x)^T Psi computed here.
th = p["lmap"]
check(th is not None and th.shape == (K, p["dim"] + 1), "pack carries the learned map")
m_loss = re.search(r"log loss ([0-9.]+) from the K-means start ([0-9.]+)", out)
Phi = R / np.linalg.norm(R, axis=1)[:, None]


def soft(P):
    s = P @ th[:, :-1].T + th[:, -1][None, :]
    s = np.exp(s - s.max(axis=1, keepdims=True))
    return s / s.sum(axis=1, keepdims=True)


G = np.clip(soft(Phi) @ c["psi"], 1e-6, 1 - 1e-6)
E = 1 - Y
known = ~np.isnan(E)
ll = -(E[known] * np.log(G[known]) + (1 - E[known]) * np.log(1 - G[known])).mean()
check(abs(ll - float(m_loss.group(1))) < 1e-4, "learned-map loss %.6f vs builder %s" % (ll, m_loss.group(1)))
check(float(m_loss.group(1)) < float(m_loss.group(2)), "training lowered the loss")
outs = [json.loads(l) for l in subprocess.run(
    [CLI, "route", "--pack", pack, "--key", PUB, "--method", "learned-map", "--lambda", "0.1"],
    input="\n".join(test) + "\n", capture_output=True, text=True, check=True).stdout.splitlines()]
same_pred = same_model = used = 0
for q, o in zip(qs, outs):
    if not q.any():
        continue
    used += 1
    pred = 1 - soft((q / np.linalg.norm(q))[None, :])[0] @ c["psi"]
    same_pred += int(max(abs(pred[j] - o["predicted"][m["name"]]) for j, m in enumerate(p["models"])) < 1e-4)
    util = [pred[j] - 0.1 * m["cost_norm"] for j, m in enumerate(p["models"])]
    # The device's choice must be best here too, up to float32 rounding (its
    # utilities are f32 sums; a near-tie may fall either way).
    got = next(j for j, m in enumerate(p["models"]) if m["name"] == o["model"])
    same_model += int(util[got] >= max(util) - 1e-5)
check(same_pred == used, "learned map: predicted correctness agrees on %d/%d" % (same_pred, used))
check(same_model == used, "learned map: chosen model agrees on %d/%d" % (same_model, used))

# 5. the task map: the data's tasks as the clusters.
tpack = WORK + "/taskmap.trp"
tout = subprocess.run([CLI, "build", "--data", DATA, "--embedder", EMB, "--key", KEY, "--k", "100",
                       "--task-map", "--out", tpack, "--force"], capture_output=True, text=True, check=True).stdout
tp = parse_pack(tpack)
names = sorted(set(TASK), key=TASK.index)  # build numbers the tasks in order of first appearance
tix = np.array([names.index(t) for t in TASK])
T, tc, th = len(names), tp["clusters"], tp["lmap"]
check(tc is not None and tc["rows"].shape[0] == T and th is not None and th.shape == (T, tp["dim"] + 1),
      "task map: one cluster per task (%d) and a learned map over them" % T)
check(np.array_equal(tp["rows"], p["rows"]), "task map: the same references as the K-means pack")
a = tc["psi_prior"]
tpsi = np.zeros((T, len(p["models"])))
for t in range(T):
    for j in range(len(p["models"])):
        ys = Y[tix == t, j]
        ys, allj = ys[~np.isnan(ys)], Y[:, j][~np.isnan(Y[:, j])]
        tpsi[t, j] = 1 - (ys.sum() + a * allj.mean()) / (len(ys) + a) if len(ys) else 1 - allj.mean()
check(np.max(np.abs(tpsi - tc["psi"])) < 1e-5,
      "task map: Psi is each model's shrunk error on each task's references (max diff %.2g)"
      % np.max(np.abs(tpsi - tc["psi"])))
# the task means as the fit starts from them (models/fit/learned_map_fit.c: 10 c, -10 |c|^2 / 2)
cent = np.array([Phi[tix == t].mean(axis=0) for t in range(T)])
start = np.hstack([10 * cent, (-10 * (cent ** 2).sum(axis=1) / 2)[:, None]])
l2 = float(re.search(r"task map: %d tasks, l2 ([0-9.e-]+) chosen" % T, tout).group(1))


def task_objective(W):
    s_ = Phi @ W[:, :-1].T + W[:, -1][None, :]
    s_ -= s_.max(axis=1, keepdims=True)
    ll_ = -(s_[np.arange(len(tix)), tix] - np.log(np.exp(s_).sum(axis=1))).mean()
    return ll_ + l2 * (W[:, :-1] ** 2).sum()


check(task_objective(th) < task_objective(start) - 0.05,
      "task map: training lowered the objective %.4f -> %.4f" % (task_objective(start), task_objective(th)))
tq = [np.array(json.loads(l)) for l in subprocess.run(
    [CLI, "embed", "--pack", tpack, "--key", PUB], input="\n".join(test) + "\n",
    capture_output=True, text=True, check=True).stdout.splitlines()]
outs = [json.loads(l) for l in subprocess.run(
    [CLI, "route", "--pack", tpack, "--key", PUB, "--method", "learned-map", "--lambda", "0.1"],
    input="\n".join(test) + "\n", capture_output=True, text=True, check=True).stdout.splitlines()]
same_pred = used = 0
for q, o in zip(tq, outs):
    if not q.any():
        continue
    used += 1
    s_ = th[:, :-1] @ (q / np.linalg.norm(q)) + th[:, -1]
    z = np.exp(s_ - s_.max())
    pred = 1 - (z / z.sum()) @ tc["psi"]
    same_pred += int(max(abs(pred[j] - o["predicted"][m["name"]]) for j, m in enumerate(tp["models"])) < 1e-4)
check(used > 100 and same_pred == used, "task map: predicted correctness agrees on %d/%d" % (same_pred, used))
print("clusters: K=%d, inertia %.3f (scikit-learn %.3f)" % (K, ours, sk.inertia_))
check.finish()
