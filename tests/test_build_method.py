#!/usr/bin/python3
"""build chooses the estimator by 5-fold cross-validation (issue 12, item 2):
- the method recorded in the pack (defaults bytes 24..35) is the argmax of
  the per-estimator out-of-fold Areas build prints (text and --json), with
  that Area and query count; inspect shows it;
- the kNN candidate's Area equals a numpy recomputation (the same fixed-seed
  folds, kNN at the pack's k and a fitted on the other four folds, priors
  from them, the out-of-fold estimates pooled into one curve);
- the default-lambda guard reads the shipped method's out-of-fold curve:
  for a kNN pack, its point and Pareto-random's equal the numpy ones, and
  the shipped lambda is the first of the sweep not below Pareto-random;
- with --clusters K the candidates are kNN, K-means and the learned map;
- an explicit --method wins and is recorded as given; bad combinations are
  usage errors;
- `route` with no --method routes with the pack's method;
- held out (the test split, `eval --pack`): the no-flag pack against packs
  built with the settings `eval --data` chooses for each method; within
  0.003 of the best method's.
Usage: test_build_method.py CLI EMBEDDER KEY PUB DATASET_DIR WORKDIR"""
import csv
import json
import os
import re
import shutil
import struct
import subprocess
import sys

import numpy as np

from tr_ref import N_LAMBDA, Checks, hull, hull_at, lambda_at, parse_pack

CLI, EMB, KEY, PUB, DATA, WORK = sys.argv[1:7]
check = Checks()
GRID = 1001
M64 = (1 << 64) - 1
PACK_METHOD = {"knn": 0, "cluster": 1, "learned-map": 2, "task-map": 2}
METHOD_NAME = ["knn", "cluster", "learned-map"]


def build(out, *flags, ok=True):
    r = subprocess.run([CLI, "build", "--data", DATA, "--embedder", EMB, "--key", KEY, "--out", out,
                        "--force"] + [str(f) for f in flags], capture_output=True, text=True)
    if ok and r.returncode:
        sys.exit("build failed: " + r.stderr)
    return r


def defaults(path):
    """(method, method Area, method queries, chosen bits) from the defaults record."""
    b = open(path, "rb").read()
    for i in range(struct.unpack_from("<I", b, 84)[0]):
        t, _f, off, _l, _s, _c = struct.unpack_from("<IIQQII", b, 128 + 32 * i)
        if t == 8:
            chosen = struct.unpack_from("<I", b, off + 20)[0]
            meth, area, q = struct.unpack_from("<IfI", b, off + 24)
            return meth, area, q, chosen, b[off + 36:off + 64]
    raise AssertionError("no defaults section")


def printed_areas(out):
    m = re.search(r"method validation: 5-fold cross-validation over (\d+) references, (\d+) scored out "
                  r"of fold:(.*); method (\S+)( \(given\))?\n", out)
    assert m, out
    areas = {a: float(v) for a, v in re.findall(r" ([a-z-]+) Area ([0-9.]+)", m.group(3))}
    return int(m.group(2)), int(m.group(1)), areas, m.group(4), m.group(5) is not None


def printed_guard(out):
    """(lambda, curve, accuracy, cost, Pareto-random) of build's guard line."""
    m = re.search(r"validation: default lambda ([0-9.e+-]+)( \(given\))? on (.*?): accuracy ([0-9.]+) at "
                  r"normalized cost ([0-9.]+), Pareto-random ([0-9.]+) there", out)
    assert m, out
    return float(m.group(1)), m.group(3), float(m.group(4)), float(m.group(5)), float(m.group(6))


def held_out_area(pack):
    r = subprocess.run([CLI, "eval", "--pack", pack, "--key", PUB, "--data", DATA],
                       capture_output=True, text=True, check=True)
    return float(re.search(r"deferral curve .*: Area ([0-9.]+)", r.stdout).group(1))


# ---- the reference: tools/pareto.c's curve, the folds, kNN ----


def route_point(P, Y, cn, lam, rank):
    u = P.astype(np.float64) - lam * cn[None, :]
    tie = u == u.max(axis=1, keepdims=True)
    best = np.argmin(np.where(tie, rank[None, :], len(cn)), axis=1)
    return sum(cn[best]) / len(best), sum(Y[np.arange(len(best)), best]) / len(best)


def cost_rank(cn):
    rank = np.empty(len(cn), np.int64)
    rank[np.lexsort((np.arange(len(cn)), cn))] = np.arange(len(cn))
    return rank


def route_area(P, Y, cn):
    rank = cost_rank(cn)
    pc, pa = [], []
    for j in range(N_LAMBDA):
        c, a = route_point(P, Y, cn, lambda_at(j), rank)
        pc.append(c), pa.append(a)
    hc, ha = hull(pc, pa)
    q = [hull_at(hc, ha, g / (GRID - 1)) for g in range(GRID)]
    return sum(0.5 * (q[g] + q[g - 1]) / (GRID - 1) for g in range(1, GRID))


def guard(P, Y, cn):
    """tools/choose.c trh_guard_lambda: lambda 0 unless its point is under
    Pareto-random (the single models' hull over these queries), else the
    first of the sweep whose point is not; (lambda, cost, acc, Pareto)."""
    rank, (hc, ha) = cost_rank(cn), hull(list(cn), list(Y.mean(0)))
    for j in range(N_LAMBDA):
        c, a = route_point(P, Y, cn, lambda_at(j), rank)
        if a >= hull_at(hc, ha, c) - 1e-12:
            break
    return lambda_at(j), c, a, hull_at(hc, ha, c)


def folds(n):
    """tools/task_map.c trh_cv_folds: a full splitmix64 Fisher-Yates shuffle,
    position i to fold i % 5, scored while i < 5 * 1000."""
    s, perm = 0x7472686f6c643566, list(range(n))
    fold, scored = np.zeros(n, np.int64), np.zeros(n, bool)
    for i in range(n):
        s = (s + 0x9E3779B97F4A7C15) & M64
        z = s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        z ^= z >> 31
        j = i + z % (n - i)
        perm[i], perm[j] = perm[j], perm[i]
        fold[perm[i]] = i % 5
        scored[perm[i]] = i < 5000
    return fold, scored


def knn_oof(p, cn):
    """kNN at the pack's (k, a), fitted on four folds, estimating the other
    fold's scored rows; pooled fold by fold: (Area, P, Y of the queries, count)."""
    n, m, rows = p["n"], p["m"], p["rows"]
    valid = p["valid"] if p["valid"] is not None else np.ones((m, n), bool)
    Y = np.where(valid, p["correct"], np.nan).T.astype(np.float64)
    fold, scored = folds(n)
    Ps, Yqs = [], []
    for f in range(5):
        train = np.flatnonzero(fold != f)
        queries = np.flatnonzero((fold == f) & scored & valid.all(axis=0))
        rt = rows[train]
        inv = (1.0 / np.sqrt((rt * rt).sum(1).astype(np.float64))).astype(np.float32)
        Yt = Y[train]
        prior = np.where((~np.isnan(Yt)).sum(0) > 0, np.nanmean(Yt, 0), 0).astype(np.float32)
        k, a = min(p["k"], len(train)), np.float32(p["prior_strength"])
        P = np.empty((len(queries), m), np.float32)
        for i, q in enumerate(queries):
            sim = (rt @ rows[q]).astype(np.float32) * inv
            nb = np.lexsort((np.arange(len(train)), -sim))[:k]
            lab = Yt[nb]
            known = (~np.isnan(lab)).sum(0).astype(np.float32)
            hits = np.nansum(lab, 0).astype(np.float32)
            with np.errstate(invalid="ignore", divide="ignore"):
                pr = (hits + a * prior) / (known + a)
            P[i] = np.where(known + a == 0, prior, pr)
        Ps.append(P), Yqs.append(Y[queries])
    P, Yq = np.concatenate(Ps), np.concatenate(Yqs)
    return route_area(P, Yq, cn), P, Yq, len(Yq)


# ---- the checks ----
os.makedirs(WORK, exist_ok=True)
auto = os.path.join(WORK, "method-auto.trp")
r = subprocess.run([CLI, "build", "--data", DATA, "--embedder", EMB, "--key", KEY, "--out", auto,
                    "--force", "--json"], capture_output=True, text=True)
check(r.returncode == 0, "build --json with no flags")
doc = json.loads(r.stdout)
mv = doc["build"]["method_validation"]
nq, ntrain, areas, printed_method, given = printed_areas(r.stderr)
best = max(areas, key=lambda c: areas[c])
meth, marea, mq, chosen, tail = defaults(auto)
print(f"no flags: 5 folds of {ntrain} references, {nq} scored out of fold: {areas}; chose {printed_method}")
check(set(areas) == {"knn", "task-map"}, f"no flags on data with 14 tasks: kNN and the task map scored ({areas})")
check(mv["areas"].keys() == areas.keys() and
      all(abs(mv["areas"][c] - areas[c]) < 1e-4 for c in areas) and mv["queries"] == nq and
      mv["folds"] == 5 and mv["references"] == ntrain and
      mv["method"] == printed_method and mv["given"] is False,
      f"--json's method_validation is what the text says ({mv})")
check(printed_method == best and not given, f"the choice {printed_method} is the argmax of {areas}")
check(meth == PACK_METHOD[best], f"recorded method {meth} is {best}'s ({PACK_METHOD[best]})")
check(abs(marea - mv["areas"][best]) < 1e-6 and mq == nq,
      f"recorded Area {marea:.6f} over {mq} = the best's {mv['areas'][best]:.6f} over {nq}")
check(chosen & 8 and chosen & 7 == 7, f"chosen bits: k, a, lambda and the method ({chosen})")
check(tail == bytes(28), "the defaults record is zero past byte 36")
ins = json.loads(subprocess.run([CLI, "inspect", "--json", auto], capture_output=True, text=True,
                                check=True).stdout)["defaults"]
check(ins["method"] == METHOD_NAME[meth] and "method" in ins["validation"]["chosen"] and
      abs(ins["method_validation"]["area"] - marea) < 1e-6 and ins["method_validation"]["queries"] == mq,
      f"inspect --json shows the method ({ins})")
ver = subprocess.run([CLI, "verify", "--key", PUB, auto], capture_output=True, text=True).stdout
check(f"method      {METHOD_NAME[meth]}; chosen by 5-fold cross-validation (Area {marea:.4f} over {mq} "
      "out-of-fold queries)" in ver,
      "verify shows the method")

p = parse_pack(auto)
costs = {row["name"]: float(row["cost"]) for row in csv.DictReader(open(os.path.join(DATA, "models.csv")))}
c = np.array([costs[mo["name"]] for mo in p["models"]])
cn = (c - c.min()) / (c.max() - c.min())
ref_area, ref_P, ref_Yq, ref_q = knn_oof(p, cn)
check(ref_q == nq and p["n"] == ntrain, f"the folds: {nq} queries of {ntrain} (reference {ref_q} of {p['n']})")
check(abs(ref_area - mv["areas"]["knn"]) < 1e-6,
      f"kNN's out-of-fold Area {mv['areas']['knn']:.7f} (numpy reference {ref_area:.7f})")
# The guard of the no-flag pack reads the shipped method's curve: the
# lambda it ships is 0 exactly when that point is not under Pareto-random
# (the single models' hull over the same queries, recomputed here).
lam, curve, gacc, gcost, gpr = printed_guard(r.stderr)
hc, ha = hull(list(cn), list(ref_Yq.mean(0)))
check(curve == f"{printed_method}'s out-of-fold curve" and abs(hull_at(hc, ha, gcost) - gpr) < 1e-4 and
      (p["lambda"] == 0) == (gacc >= gpr - 1e-12) and abs(lam - p["lambda"]) <= 1e-6 * max(lam, 1),
      f"the guard on {curve}: lambda {lam} (pack {p['lambda']}), accuracy {gacc}, Pareto-random {gpr} "
      f"(numpy {hull_at(hc, ha, gcost):.4f} at cost {gcost})")
# A kNN pack: its guard point is numpy's on the pooled out-of-fold kNN curve
# (the one whose Area was recomputed above), not the leave-one-out one.
kp = os.path.join(WORK, "method-knn-guard.trp")
out = build(kp, "--method", "knn").stdout
klam, kcurve, kacc, kcost, kpr = printed_guard(out)
elam, ecost, eacc, epr = guard(ref_P, ref_Yq, cn)
check(kcurve == "knn's out-of-fold curve" and abs(klam - elam) <= 1e-6 * max(elam, 1) and
      abs(kacc - eacc) < 1e-4 and abs(kcost - ecost) < 1e-4 and abs(kpr - epr) < 1e-4 and
      abs(parse_pack(kp)["lambda"] - elam) <= 1e-6 * max(elam, 1),
      f"--method knn's guard ({klam}, {kacc}, {kcost}, {kpr}) = numpy's on the out-of-fold kNN curve "
      f"({elam}, {eacc:.4f}, {ecost:.4f}, {epr:.4f})")

# A zeroed route uses the pack's method.
rt = json.loads(subprocess.run([CLI, "route", "--pack", auto, "--key", PUB, "What is a tort?"],
                               capture_output=True, text=True, check=True).stdout.splitlines()[0])
check(rt["method"] == METHOD_NAME[meth], f"route without --method routes {rt['method']}")
rk = json.loads(subprocess.run([CLI, "route", "--pack", auto, "--key", PUB, "--method", "knn", "What is a tort?"],
                               capture_output=True, text=True, check=True).stdout.splitlines()[0])
check(rk["method"] == "knn", "route --method knn still routes kNN")

# With --clusters K: kNN, K-means and the learned map; no task map (one
# clusters section).
km = os.path.join(WORK, "method-km.trp")
out = build(km, "--clusters", 8, "--learned-map").stdout
_nq, _nt, kareas, kmeth, _g = printed_areas(out)
check(set(kareas) == {"knn", "cluster", "learned-map"}, f"--clusters 8 --learned-map scores {kareas}")
kbest = max(kareas, key=lambda c: kareas[c])
check(kmeth == kbest and defaults(km)[0] == PACK_METHOD[kbest] and
      abs(defaults(km)[1] - kareas[kbest]) < 1e-4, f"--clusters: recorded {kmeth}, argmax {kbest}")
check(abs(kareas["knn"] - areas["knn"]) < 1e-9, "the same kNN Area whatever the other candidates")
# The folds run side by side (TR_THREADS workers, default one per CPU):
# one worker prints the same Areas and writes the same signed bytes (the
# creation time, header bytes 24..31, masked).
km1 = os.path.join(WORK, "method-km-1.trp")
r1 = subprocess.run([CLI, "build", "--data", DATA, "--embedder", EMB, "--key", KEY, "--out", km1, "--force",
                     "--clusters", "8", "--learned-map"], capture_output=True, text=True,
                    env=dict(os.environ, TR_THREADS="1"))
ver = [json.loads(subprocess.run([CLI, "verify", "--json", "--key", PUB, p], capture_output=True,
                                 text=True).stdout) for p in (km, km1)]
signed = [open(p, "rb").read()[:v["signed_bytes"]] for p, v in zip((km, km1), ver)]
check(r1.returncode == 0 and [l for l in r1.stdout.splitlines() if not l.startswith("wrote")] ==
      [l for l in out.splitlines() if not l.startswith("wrote")],
      "TR_THREADS=1: the same cross-validation output as the default workers")
check(signed[0][:24] + signed[0][32:] == signed[1][:24] + signed[1][32:],
      "TR_THREADS=1: the same pack, bit for bit apart from its creation time")

# An explicit --method wins, recorded as given (cross-validated alone).
for name in ("knn", "task-map"):
    gp = os.path.join(WORK, "method-given.trp")
    out = build(gp, "--method", name).stdout
    _q, _t, gareas, gm, gg = printed_areas(out)
    gmeth, garea, gq, gchosen, _ = defaults(gp)
    check(gg and gm == name and set(gareas) == {name} and gmeth == PACK_METHOD[name] and
          not gchosen & 8 and gq == nq and abs(garea - gareas[name]) < 1e-4,
          f"--method {name}: kept, scored alone, not marked chosen ({gareas}, bits {gchosen})")
    if name == "task-map":
        check(parse_pack(gp)["clusters"]["rows"].shape[0] == 14, "--method task-map: the 14 tasks are the clusters")
    else:
        check(parse_pack(gp)["clusters"] is None, "--method knn: no clusters section")
r = build(os.path.join(WORK, "x.trp"), "--method", "cluster", ok=False)
check(r.returncode == 2 and "needs --clusters" in r.stderr, "--method cluster without --clusters: usage error")
r = build(os.path.join(WORK, "x.trp"), "--method", "forest", ok=False)
check(r.returncode == 2 and "--method must be" in r.stderr, "an unknown --method: usage error")
r = build(os.path.join(WORK, "x.trp"), "--method", "task-map", "--clusters", 4, ok=False)
check(r.returncode == 2, "--method task-map with --clusters: usage error")

# Prompts without a task among prompts of 14 (a fleet's logged prompts:
# fleet_step.py writes none) take the task whose mean unit row is nearest
# (tools/task_map.c trh_infer_tasks), not a 15th task "" of every topic:
# the task map's clusters are the 14 tasks' mean rows over the named and
# the inferred prompts, recomputed here from the pack's own rows.
nt_dir = os.path.join(WORK, "untasked")
os.makedirs(nt_dir, exist_ok=True)
for f in ("correctness.csv", "models.csv"):
    shutil.copy(os.path.join(DATA, f), nt_dir)
rows_in = [json.loads(l) for l in open(os.path.join(DATA, "prompts.jsonl"), encoding="utf-8") if l.strip()]
with open(os.path.join(nt_dir, "prompts.jsonl"), "w", encoding="utf-8") as f:
    for i, p in enumerate(rows_in):
        q = {k: v for k, v in p.items() if k != "task" or i % 4 != 1}
        f.write(json.dumps(q, ensure_ascii=False) + "\n")
for i, p in enumerate(rows_in):
    if i % 4 == 1:
        p.pop("task", None)
train = [p for p in rows_in if p.get("split") != "test"]
ntp = os.path.join(WORK, "untasked.trp")
r = subprocess.run([CLI, "build", "--data", nt_dir, "--embedder", EMB, "--key", KEY, "--out", ntp, "--force",
                    "--method", "task-map", "--no-tasks"], capture_output=True, text=True)
# The references are the train prompts the embedder knows a word of (the
# others are skipped): embed says which, and gives their rows.
tl = os.path.join(WORK, "untasked-train.jsonl")
with open(tl, "w", encoding="utf-8") as f:
    f.writelines(json.dumps({"text": p["text"]}, ensure_ascii=False) + "\n" for p in train)
emb = subprocess.run([CLI, "embed", "--pack", ntp, "--key", PUB, "--input", tl, "--format", "jsonl"],
                     capture_output=True, text=True)
E = np.array([json.loads(l) for l in emb.stdout.splitlines()], np.float64)
known = np.abs(E).sum(1) > 0
train = [p for p, k in zip(train, known) if k]
n_un = sum(1 for p in train if "task" not in p)
check(r.returncode == 0 and f"tasks: {n_un} references without a task given the nearest of the 14 tasks'"
      in r.stdout, f"build names the {n_un} untasked references and 14 tasks: {r.stdout[:400]}{r.stderr}")
pk = parse_pack(ntp)
cl = pk["clusters"]["rows"].astype(np.float64)
check(cl.shape[0] == 14, f"the untasked prompts join the 14 tasks, no 15th ({cl.shape[0]} clusters)")
X = E[known]
check(X.shape[0] == pk["rows"].shape[0] and np.array_equal(X, pk["rows"][:, :X.shape[1]]),
      "embed's rows of the known train prompts are the pack's references")
if X.shape[0] == len(train) and cl.shape[0] == 14:
    X = (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32).astype(np.float64)
    names = []
    for p in train:  # task ids by first appearance, as build numbers them
        if "task" in p and p["task"] not in names:
            names.append(p["task"])
    t = np.array([names.index(p["task"]) if "task" in p else -1 for p in train])
    S = np.array([X[t == j].sum(0) for j in range(14)])
    C = (S / np.linalg.norm(S, axis=1, keepdims=True)).astype(np.float32).astype(np.float64)
    t_inf = t.copy()
    t_inf[t < 0] = np.argmax(X[t < 0] @ C.T, axis=1)

    def worst_cos(tt):
        M = np.array([X[tt == j].mean(0) for j in range(14)])
        return min(float(M[j] @ cl[j] / np.linalg.norm(M[j]) / np.linalg.norm(cl[j])) for j in range(14))
    got, named_only = worst_cos(t_inf), worst_cos(t)
    check(got > 0.9999 and named_only < got, f"the clusters are the mean rows with the nearest-task rule "
          f"(worst cosine {got:.6f}; named prompts alone {named_only:.6f})")

# Held out (the test split): the no-flag pack against the settings `eval
# --data` chooses per method (its per-seed picks of k or K and a).
ej = os.path.join(WORK, "method-e.json")
subprocess.run([CLI, "eval", "--data", DATA, "--embedder", EMB, "--seeds", "3", "--fixed-pool", "--json",
                ej, "--force"], capture_output=True, text=True, check=True)
ed = json.load(open(ej))["datasets"][0]
flags = {"knn": lambda K, a: ["--method", "knn", "--k", K, "--prior-strength", a],
         "kmeans": lambda K, a: ["--method", "cluster", "--clusters", K, "--prior-strength", a],
         "learned-map": lambda K, a: ["--method", "learned-map", "--clusters", K, "--prior-strength", a],
         "task-map": lambda K, a: ["--method", "task-map", "--prior-strength", a]}
held, eval_area = {}, {}
gp = os.path.join(WORK, "method-eval.trp")
for mo in ed["methods"]:
    if mo["id"] not in flags:
        continue
    eval_area[mo["id"]] = mo["area"]["mean"]
    held[mo["id"]] = []
    for K, a in sorted(set(zip(mo["chosen"], mo["prior_strength"]))):
        build(gp, *flags[mo["id"]](K, a))
        held[mo["id"]].append(held_out_area(gp))
mine = held_out_area(auto)
best_eval = max(eval_area, key=lambda i: eval_area[i])
ref = float(np.mean(held[best_eval]))
top = max(float(np.mean(v)) for v in held.values())
print(f"held-out Area: no flags {mine:.4f}; eval's settings per method (mean over its picks): "
      + ", ".join(f"{i} {np.mean(v):.4f} {['%.4f' % h for h in v]}" for i, v in held.items())
      + f"; eval's best method {best_eval} (eval Area {eval_area[best_eval]:.4f})")
knn_ref = float(np.mean(held["knn"]))
check(mine >= knn_ref - 0.003, f"no-flag build {mine:.4f} within 0.003 of eval's kNN settings {knn_ref:.4f}")
# Against eval's best method, the target (0.003). Before build
# cross-validated, it chose the task map's (l2, a) on one fifth (264
# queries), which preferred l2 1e-2 where the test split prefers 1e-3, and
# missed by 0.0041 (no flags 0.6579 against 0.6620). With the pooled 5-fold
# curve (1350 queries) it was +0.0002 when written (no flags 0.6640; the
# task map at eval's a picks, l2 now cross-validated too, 0.6638).
print(f"no-flag build vs eval's best method {best_eval}: {mine - ref:+.4f}; vs the best held out: {mine - top:+.4f}"
      f"; vs the best single pick held out: {mine - max(max(v) for v in held.values()):+.4f}")
check(mine >= ref - 0.003, f"no-flag build {mine:.4f} within 0.003 of eval's best method {best_eval} {ref:.4f}")
check(mine >= top - 0.003, f"no-flag build {mine:.4f} within 0.003 of the best method held out {top:.4f}")
sys.exit(check.finish())
