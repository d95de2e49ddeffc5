#!/usr/bin/python3
"""Delta packs end to end (the dynamic pool of Jitkrittum et al. 2025).

  1. equivalence: a base built without model X, plus a delta that adds X from
     the same labels, routes every held-out prompt exactly as a pack built
     with X (kNN, cluster, learned map, several lambdas);
  2. a new model is routed to where it is best: a "specialist" right on the
     prompts of one cluster only is chosen for that cluster's prompts (cluster
     routing: all of them, and for no other; kNN: most of them);
  3. retire: a retired model is never chosen; dropping an added model; a
     delta that would leave no on-device model is refused and not written;
  4. calibrate: the lambda it writes sends the asked share of the traffic to
     the cloud within 2 points (held-out prompts, as served on the device);
  5. rejections: another base, unknown key, truncated, no signature,
     rollback; an existing --out is not overwritten;
  6. counters: add-model/retire-model/calibrate pick the served delta's + 1,
     refuse a --counter not above it and 2^64-1; route's delta floor.
Usage: test_delta.py CLI EMBEDDER KEY PUB OTHER_KEY DATASET_DIR WORKDIR
"""
import csv
import json
import os
import shutil
import subprocess
import sys

from tr_ref import Checks, parse_pack

CLI, EMB, KEY, PUB, OTHER, DATA, WORK = sys.argv[1:8]
check = Checks()


def cli(*args, ok=True):
    r = subprocess.run([CLI] + [str(a) for a in args], capture_output=True, text=True)
    if ok and r.returncode != 0:
        sys.exit("%s failed: %s" % (" ".join(map(str, args)), r.stderr))
    return r


def route(pack, prompts, *opts, delta=None):
    args = ["route", "--pack", pack, "--key", PUB] + list(opts)
    if delta:
        args += ["--delta", delta]
    r = subprocess.run([CLI] + [str(a) for a in args], input="\n".join(prompts) + "\n",
                       capture_output=True, text=True, check=True)
    return [json.loads(l) for l in r.stdout.splitlines()]


def write_dataset(d, prompts, models, scores):
    """models: [(name, cost, where)]; scores: {prompt id: {model: score or None}}."""
    os.makedirs(d, exist_ok=True)
    with open(d + "/prompts.jsonl", "w") as f:
        for p in prompts:
            f.write(json.dumps(p) + "\n")
    with open(d + "/models.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["name", "cost", "where"])
        w.writerows(models)
    with open(d + "/correctness.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id"] + [m[0] for m in models])
        for p in prompts:
            s = scores[p["id"]]
            w.writerow([p["id"]] + ["" if s[m[0]] is None else s[m[0]] for m in models])


prompts = [json.loads(l) for l in open(DATA + "/prompts.jsonl")]
models = [tuple(r) for r in list(csv.reader(open(DATA + "/models.csv")))[1:]]
rows = list(csv.reader(open(DATA + "/correctness.csv")))
scores = {r[0]: {rows[0][j]: (None if r[j] == "" else float(r[j])) for j in range(1, len(r))}
          for r in rows[1:]}
test = [p["text"].replace("\n", " ") for p in prompts if p.get("split") == "test"]
train = [p for p in prompts if p.get("split") != "test"]

# ---- 1. base without X + delta adding X == pack with X
X = "Qwen1.5-110B"
# --method knn: the suite names every other method it routes (zeroed
# options route with the pack's default, which build would choose)
build = ["--embedder", EMB, "--key", KEY, "--k", 100, "--clusters", 16, "--learned-map", "--method", "knn",
         "--force"]
write_dataset(WORK + "/noX", prompts, [m for m in models if m[0] != X], scores)
cli("build", "--data", DATA, "--out", WORK + "/full.trp", *build)
cli("build", "--data", WORK + "/noX", "--out", WORK + "/base.trp", *build)
base, full = WORK + "/base.trp", WORK + "/full.trp"
d1 = WORK + "/addX.trd"
out = cli("add-model", "--pack", base, "--key", KEY, "--data", DATA, "--model", X, "--out", d1)
check("16 of 16 clusters" in out.stdout, "add-model reports cluster coverage: " + out.stdout)
# (The learned map is not in this list: it is trained on the base's models'
# labels, so a pack built with X has another map; X enters only through Psi.)
for method, lams in (("knn", (0, 0.1, 0.3, 1)), ("cluster", (0, 0.3))):
    for lam in lams:
        a = route(full, test, "--method", method, "--lambda", lam)
        b = route(base, test, "--method", method, "--lambda", lam, delta=d1)
        same = sum(x["model"] == y["model"] for x, y in zip(a, b))
        check(len(a) == len(test) and same == len(a),
              "%s lambda %g: base+delta chose as the full pack on %d of %d" %
              (method, lam, same, len(a)))
        px = [abs(x["predicted"][X] - y["predicted"][X]) for x, y in zip(a, b)]
        check(max(px) < 1e-6, "%s lambda %g: X's predicted correctness equal (max diff %g)" %
              (method, lam, max(px)))
lm = route(base, test, "--method", "learned-map", delta=d1)
check(all(len(r["predicted"]) == len(models) and 0 <= r["predicted"][X] <= 1 for r in lm),
      "learned map over base + delta predicts the added model too")

# ---- 2. a specialist is routed to on its cluster
clu_train = route(base, [p["text"].replace("\n", " ") for p in train], "--method", "cluster")
clu_test = route(base, test, "--method", "cluster")
counts = {}
for r in clu_test:
    counts[r["cluster"]] = counts.get(r["cluster"], 0) + 1
c0 = max(counts, key=counts.get)
S = "Specialist-1B"
dev = next(m for m in models if m[2] == "device")  # the layout asks for one
spec_scores = {p["id"]: {S: float(r["cluster"] == c0), dev[0]: scores[p["id"]][dev[0]]}
               for p, r in zip(train, clu_train)}
write_dataset(WORK + "/spec", train, [(S, "1", "cloud"), dev], spec_scores)
d2 = WORK + "/spec.trd"
cli("add-model", "--pack", base, "--delta", d1, "--key", KEY, "--data", WORK + "/spec",
    "--model", S, "--out", d2)
v = cli("verify", "--key", PUB, "--delta", d2, base).stdout
check("2 added, 0 retired" in v and "counter     2" in v,
      "the second delta keeps X, adds the specialist, counter 2: " + v)
# kNN without the prior (--prior-strength 0): its neighbourhoods only roughly
# follow the K-means cluster, and the pack's prior (build's default a)
# pulls the specialist toward its own low prior (right on about 1/16 of the
# prompts), so with it the specialist wins fewer of its cluster's prompts;
# that shrinkage is checked below.
for method in ("cluster", "knn"):
    knn_opts = ("--prior-strength", 0) if method == "knn" else ()
    got = route(base, test, "--method", method, "--lambda", 0.3, *knn_opts, delta=d2)
    inside = [g["model"] == S for g, c in zip(got, clu_test) if c["cluster"] == c0]
    outside = [g["model"] == S for g, c in zip(got, clu_test) if c["cluster"] != c0]
    if method == "cluster":
        check(all(inside) and not any(outside),
              "cluster: specialist chosen on all %d prompts of its cluster (%d) and on none of "
              "the %d others (%d)" % (len(inside), sum(inside), len(outside), sum(outside)))
    else:
        check(sum(inside) > len(inside) / 2 and sum(outside) < len(outside) / 10,
              "knn: specialist chosen on most of its cluster (%d/%d), few others (%d/%d)" %
              (sum(inside), len(inside), sum(outside), len(outside)))
# Its Psi, as add-model writes it: per cluster, its labels shrunk toward its
# own prior with the strength the base's Psi was built with (the clusters
# header; the a build chose for kNN): 1 - (hits_c + a*prior) / (n_c + a). The
# specialist is right exactly on the n_c0 labelled prompts of cluster c0; a
# prompt without a known word gets the model's prior.
a_psi = parse_pack(base)["clusters"]["psi_prior"]
n_c = {}
for r in clu_train:
    if not r["prior_only"]:  # add-model skips a prompt without a known word
        n_c[r["cluster"]] = n_c.get(r["cluster"], 0) + 1
prior_s = n_c[c0] / sum(n_c.values())
got = route(base, test, "--method", "cluster", delta=d2)
want = [prior_s if c["prior_only"] else
        ((n_c[c0] if c["cluster"] == c0 else 0) + a_psi * prior_s) /
        (n_c.get(c["cluster"], 0) + a_psi) for c in clu_test]
err = max(abs(g["predicted"][S] - w) for g, w in zip(got, want))
check(a_psi == parse_pack(base)["prior_strength"] and err < 1e-5,
      "cluster: the specialist's estimate is (hits_c + a*prior)/(n_c + a), a = %g from the "
      "base's header (max diff %.2g)" % (a_psi, err))
# The added model is shrunk toward its own prior (its mean over its labels):
# with the pack's prior strength every estimate above that prior comes down,
# none below it goes up past it.
own_prior = sum(v[S] for v in spec_scores.values()) / len(spec_scores)
plain = route(base, test, "--prior-strength", 0, delta=d2)
shrunk = route(base, test, delta=d2)
moved = [(a["predicted"][S], b["predicted"][S]) for a, b in zip(plain, shrunk)]
check(all(p0 - 1e-6 <= own_prior + 0.02 or pa < p0 for p0, pa in moved) and
      all(p0 + 1e-6 >= own_prior - 0.02 or pa > p0 for p0, pa in moved) and
      sum(pa < p0 for p0, pa in moved) > len(moved) / 10,
      "knn: the added model's estimates shrink toward its own prior %.3f (%d of %d lower)" %
      (own_prior, sum(pa < p0 for p0, pa in moved), len(moved)))

# ---- 3. retire
top = route(base, test, "--lambda", 0, delta=d2)
counts = {}
for r in top:
    counts[r["model"]] = counts.get(r["model"], 0) + 1
victim = max((m for m in counts if m not in (X, S)), key=counts.get)
d3 = WORK + "/retire.trd"
cli("retire-model", "--pack", base, "--delta", d2, "--key", KEY, "--model", victim,
    "--model", S, "--out", d3)
v = cli("verify", "--key", PUB, "--delta", d3, base).stdout
check("1 added, 1 retired" in v, "retire: one base model retired, the specialist dropped: " + v)
after = route(base, test, "--lambda", 0, delta=d3)
check(counts[victim] > 0 and not any(r["model"] in (victim, S) for r in after),
      "the retired model (chosen %d times before) and the dropped one are never chosen" %
      counts[victim])
devices = [m[0] for m in models if m[2] == "device"]
bad = WORK + "/nodevice.trd"
r = cli("retire-model", "--pack", base, "--key", KEY, *sum([["--model", d] for d in devices], []),
        "--out", bad, ok=False)
check(r.returncode == 1 and "TR_E_MALFORMED" in r.stderr and not os.path.exists(bad),
      "retiring every on-device model is refused and nothing is written: " + r.stderr.strip())

# ---- 4. calibrate on held-out traffic
traffic = WORK + "/traffic.jsonl"
with open(traffic, "w") as f:
    for t in test:
        f.write(json.dumps({"text": t}) + "\n")
for share in (0.1, 0.3, 0.5):
    dc = WORK + "/cal-%g.trd" % share
    out = cli("calibrate", "--pack", base, "--delta", d1, "--key", KEY, "--prompts", traffic,
              "--cloud-share", share, "--out", dc).stdout
    served = route(base, test, delta=dc)  # the delta's lambda is now the default
    got = sum(r["where"] == "cloud" for r in served) / len(served)
    check(abs(got - share) <= 0.02,
          "calibrate %.2f: served share %.4f (%s)" % (share, got, out.strip()))
    v = cli("verify", "--key", PUB, "--delta", dc, base).stdout
    check("settings" in v and "1 added" in v, "the calibration delta keeps the added model")

# ---- 5. rejections
r = cli("route", "--pack", full, "--delta", d1, "--key", PUB, "hello world", ok=False)
check(r.returncode == 1 and "TR_E_DELTA_BASE" in r.stderr, "delta for another base: " + r.stderr)
other = WORK + "/other.trd"
cli("add-model", "--pack", base, "--key", OTHER, "--trust", PUB, "--data", DATA, "--model", X,
    "--out", other)
r = cli("verify", "--key", PUB, "--delta", other, base, ok=False)
check(r.returncode == 1 and "TR_E_KEY_UNKNOWN" in r.stderr, "delta by an untrusted key: " + r.stderr)
blob = open(d1, "rb").read()
for name, data, code in (("truncated", blob[:200], "TR_E_TRUNCATED"),
                         ("unsigned", blob[:blob.rfind(b"TRSG")],
                          "TR_E_NO_SIGNATURE"),
                         ("bit flip", blob[:300] + bytes([blob[300] ^ 1]) + blob[301:],
                          "TR_E_SIGNATURE"),
                         ("a pack, not a delta", open(base, "rb").read()[:4096], "TR_E_BAD_MAGIC")):
    path = WORK + "/bad.trd"
    open(path, "wb").write(data)
    r = cli("verify", "--key", PUB, "--delta", path, base, ok=False)
    check(r.returncode == 1 and code in r.stderr, "%s delta: %s" % (name, r.stderr.strip()))
r = cli("verify", "--key", PUB, "--min-delta-counter", 2, "--delta", d1, base, ok=False)
check(r.returncode == 1 and "TR_E_ROLLBACK" in r.stderr and d1 in r.stderr,
      "delta counter 1 under floor 2: " + r.stderr)
r = cli("verify", "--key", PUB, "--min-counter", 1, "--min-delta-counter", 1, "--delta", d1, base,
        ok=False)
check(r.returncode == 0, "pack and delta floors are separate: " + r.stderr)
before = open(d1, "rb").read()
r = cli("add-model", "--pack", base, "--key", KEY, "--data", DATA, "--model", X, "--out", d1,
        ok=False)
check(r.returncode == 2 and "not overwriting" in r.stderr and open(d1, "rb").read() == before,
      "an existing --out is left alone: " + r.stderr.strip())
r = cli("add-model", "--pack", base, "--delta", d1, "--key", KEY, "--data", DATA, "--model", X,
        "--out", WORK + "/twice.trd", ok=False)
check(r.returncode == 1 and "already a model" in r.stderr, "adding a served name: " + r.stderr)

# ---- 6. counters: the tools pick the next one and refuse a doomed one
def counter_of(delta):
    v = cli("verify", "--key", PUB, "--delta", delta, base).stdout
    line = [l for l in v.splitlines() if l.strip().startswith("counter")][-1]
    return int(line.split()[1])


check(counter_of(d1) == 1 and counter_of(d3) == 3,
      "auto counters: no --delta gives 1, retire-model after d2 gives 3")
for share in (0.1, 0.3, 0.5):
    check(counter_of(WORK + "/cal-%g.trd" % share) == 2, "calibrate after d1 (counter 1) gives 2")
for c in (1, 3):
    doomed = WORK + "/doomed-%d.trd" % c
    r = cli("calibrate", "--pack", base, "--delta", d3, "--key", KEY, "--prompts", traffic,
            "--cloud-share", 0.3, "--counter", c, "--out", doomed, ok=False)
    check(r.returncode == 1 and "not above the counter" in r.stderr and "(3)" in r.stderr
          and not os.path.exists(doomed),
          "calibrate --counter %d --delta <counter 3> is refused, nothing written: %s"
          % (c, r.stderr.strip()))
cal4 = WORK + "/cal-4.trd"
cli("calibrate", "--pack", base, "--delta", d3, "--key", KEY, "--prompts", traffic,
    "--cloud-share", 0.3, "--counter", 7, "--out", cal4)
check(counter_of(cal4) == 7, "an explicit --counter above the delta's is kept")
top = 2 ** 64 - 1
never = WORK + "/never.trd"
r = cli("retire-model", "--pack", base, "--key", KEY, "--model", victim, "--counter", top,
        "--out", never, ok=False)
check(r.returncode == 1 and "2^64-1" in r.stderr and not os.path.exists(never),
      "--counter 2^64-1 is refused: " + r.stderr.strip())
last = WORK + "/last.trd"
cli("retire-model", "--pack", base, "--key", KEY, "--model", victim, "--counter", top - 1,
    "--out", last)
check(counter_of(last) == top - 1, "2^64-2 is still allowed")
r = cli("retire-model", "--pack", base, "--delta", last, "--key", KEY, "--model", X,
        "--out", never, ok=False)
check(r.returncode == 1 and "no counter is left" in r.stderr and not os.path.exists(never),
      "after 2^64-2 the auto counter would be 2^64-1: refused: " + r.stderr.strip())
# route's delta floor
r = cli("route", "--pack", base, "--delta", d3, "--key", PUB, "--min-delta-counter", 4,
        "hello world", ok=False)
check(r.returncode == 1 and "TR_E_ROLLBACK" in r.stderr, "route --min-delta-counter 4 refuses "
      "delta 3: " + r.stderr.strip())
r = cli("route", "--pack", base, "--delta", d3, "--key", PUB, "--min-delta-counter", 3,
        "hello world", ok=False)
check(r.returncode == 0 and json.loads(r.stdout)["model"] not in (victim, S),
      "route --min-delta-counter 3 serves delta 3: " + r.stderr.strip())
r = cli("route", "--pack", base, "--key", PUB, "--min-counter", 2 ** 63, "hello world", ok=False)
check(r.returncode == 1 and "TR_E_ROLLBACK" in r.stderr, "route --min-counter: pack floor")
check.finish()
