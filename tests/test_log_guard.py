#!/usr/bin/python3
"""build's do-no-harm guard on logged rows (issue 17, tools/log_guard.h).

From the fixture: a benchmark of 400 prompts (every model scored) and a
fleet's rows (fleet_counts.csv marks their cells, as tools/fleet_step.py
writes them):
- noise: the other prompts, each knowing one random model, a coin flip;
- forge: the same prompts and models, 1 for the on-device model and 0 for
  a cloud one ("make the cloud look useless");
- flip: the benchmark's questions asked again by the fleet (the text with
  a prefix), every model logged 1 - its true score;
- repeat: the same questions, every model's true score (logs that help:
  the fleet saw the real outcomes of the questions the pack is judged on).
The guard must drop noise, forge and flip (the pack is then the
benchmark's own: its N and defaults, and route's output equal to the pack
built from the benchmark alone, so the pc too comes from the trusted
prompts only) and keep repeat; build reports the decision (text and
--json "log_guard"); --no-log-guard builds with every row, as before.
Usage: test_log_guard.py CLI EMBEDDER KEY PUB DATASET_DIR WORKDIR"""
import csv
import json
import os
import subprocess
import sys

import numpy as np

from tr_ref import Checks

CLI, EMB, KEY, PUB, DATA, WORK = sys.argv[1:7]
check = Checks()
N_BENCH, N_PROBE = 400, 100


def load():
    prompts = [json.loads(l) for l in open(os.path.join(DATA, "prompts.jsonl"), encoding="utf-8") if l.strip()]
    with open(os.path.join(DATA, "correctness.csv"), newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    by_id = {r[0]: r[1:] for r in rows[1:] if r}
    with open(os.path.join(DATA, "models.csv"), newline="", encoding="utf-8") as f:
        mrows = list(csv.reader(f))
    keep = [p for p in prompts if all(c != "" for c in by_id[str(p["id"])])]
    S = np.array([[float(c) for c in by_id[str(p["id"])]] for p in keep])
    dev = np.array([r[mrows[0].index("where")] == "device" for r in mrows[1:]])
    return keep, S, rows[0][1:], mrows, dev


def write(d, prompts, S, names, mrows, counts=None):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "prompts.jsonl"), "w", encoding="utf-8") as f:
        for p in prompts:
            q = {"id": str(p["id"]), "text": p["text"], "split": "train"}
            if p.get("task"):
                q["task"] = p["task"]
            f.write(json.dumps(q) + "\n")
    with open(os.path.join(d, "correctness.csv"), "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["id"] + names)
        for p, s in zip(prompts, S):
            w.writerow([str(p["id"])] + ["" if np.isnan(v) else "%g" % v for v in s])
    with open(os.path.join(d, "models.csv"), "w", newline="", encoding="utf-8") as f:
        csv.writer(f, lineterminator="\n").writerows(mrows)
    if counts is not None:
        with open(os.path.join(d, "fleet_counts.csv"), "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["id"] + names)
            for p, c in zip(prompts, counts):
                w.writerow([str(p["id"])] + [str(int(v)) if v else "" for v in c])


def build(d, out, *flags):
    r = subprocess.run([CLI, "build", "--data", d, "--embedder", EMB, "--key", KEY, "--out", out, "--force",
                        "--no-tasks", "--json"] + list(flags), capture_output=True, text=True)
    if r.returncode:
        sys.exit("build failed: " + r.stderr)
    return json.loads(r.stdout), r.stderr


def route(pack, inp):
    return subprocess.run([CLI, "route", "--pack", pack, "--key", PUB, "--input", inp, "--format", "jsonl"],
                          capture_output=True, text=True, check=True).stdout


prompts, S, names, mrows, dev = load()
rng = np.random.default_rng(17)
perm = rng.permutation(len(prompts))
N_FLEET = len(prompts) - N_BENCH - N_PROBE
bi, fi, ti = perm[:N_BENCH], perm[N_BENCH:N_BENCH + N_FLEET], perm[N_BENCH + N_FLEET:]
bench = [prompts[i] for i in bi]
fleet = [dict(prompts[i], task=None) for i in fi]  # a device does not know the task
m = len(names)
write(os.path.join(WORK, "bench"), bench, S[bi], names, mrows)
probe = os.path.join(WORK, "probe.jsonl")
with open(probe, "w", encoding="utf-8") as f:
    for i in ti:
        f.write(json.dumps({"text": prompts[i]["text"]}) + "\n")
jb, _ = build(os.path.join(WORK, "bench"), os.path.join(WORK, "bench.trp"))
check("log_guard" not in jb["build"], "no logs, no guard report")
bench_routes = route(os.path.join(WORK, "bench.trp"), probe)

one = rng.integers(0, m, N_FLEET)  # the model each bandit row knows
cases = {}
Y = np.full((N_FLEET, m), np.nan)
Y[np.arange(N_FLEET), one] = rng.integers(0, 2, N_FLEET)
cases["noise"] = Y
Y = np.full((N_FLEET, m), np.nan)
Y[np.arange(N_FLEET), one] = dev[one].astype(float)
cases["forge"] = Y
again = [dict(p, id="again-%s" % p["id"], text="Question: " + p["text"], task=None) for p in bench]
cases["flip"] = (again, 1 - S[bi])
cases["repeat"] = (again, S[bi].copy())
for name in ("noise", "forge"):
    cases[name] = (fleet, cases[name])

for name, (rows, Y) in cases.items():
    d = os.path.join(WORK, name)
    n_fleet = len(rows)
    write(d, bench + rows, np.vstack([S[bi], Y]), names, mrows,
          counts=np.vstack([np.zeros((N_BENCH, m)), ~np.isnan(Y)]))
    j, err = build(d, os.path.join(WORK, name + ".trp"))
    g = j["build"].get("log_guard", {})
    print("%s: %s" % (name, next((l for l in err.splitlines() if l.startswith("log guard")), "no guard line")))
    check(g.get("judged") is True, "%s: the guard judged the logs" % name)
    # (a prompt with no known word is not a reference: at most a few)
    check(n_fleet - 5 <= g.get("logged_rows", 0) <= n_fleet and N_BENCH - 5 <= g.get("trusted_rows", 0) <= N_BENCH,
          "%s: %s logged rows, %s trusted" % (name, g.get("logged_rows"), g.get("trusted_rows")))
    check(g.get("queries", 0) > 0 and 0 < g.get("p", 0) <= 1, "%s: queries and p reported" % name)
    want_keep = name == "repeat"
    check(g.get("logs_kept") is want_keep, "%s: logs %s (got %s, p %s)" % (
        name, "kept" if want_keep else "dropped", g.get("logs_kept"), g.get("p")))
    check(("KEPT" if want_keep else "DROPPED") in err, "%s: the report says so" % name)
    if want_keep:
        check(j["n_refs"] == jb["n_refs"] + g.get("logged_rows", -1), "%s: kept: %d references" % (name, j["n_refs"]))
    else:
        check(j["n_refs"] == jb["n_refs"] and j["defaults"] == jb["defaults"],
              "%s: dropped: the benchmark's own pack (N %d, defaults)" % (name, j["n_refs"]))
        check(route(os.path.join(WORK, name + ".trp"), probe) == bench_routes,
              "%s: dropped: routes as the benchmark's own pack" % name)
    jo, _ = build(d, os.path.join(WORK, name + "-off.trp"), "--no-log-guard")
    check("log_guard" not in jo["build"] and jo["n_refs"] == jb["n_refs"] + g.get("logged_rows", -1),
          "%s: --no-log-guard: every row a reference, no guard" % name)

# A count cell that is not a count is an error naming the file and line,
# never read as "logged" (it was: strtod's end was not checked).
d = os.path.join(WORK, "badcount")
rows, Y = cases["noise"]
write(d, bench + rows, np.vstack([S[bi], Y]), names, mrows,
      counts=np.vstack([np.zeros((N_BENCH, m)), ~np.isnan(Y)]))
path = os.path.join(d, "fleet_counts.csv")
lines = open(path, encoding="utf-8").read().split("\n")
cells = lines[N_BENCH + 1].split(",")
j = next(i for i in range(1, len(cells)) if cells[i] == "1")
cells[j] = "3x"
lines[N_BENCH + 1] = ",".join(cells)
open(path, "w", encoding="utf-8").write("\n".join(lines))
r = subprocess.run([CLI, "build", "--data", d, "--embedder", EMB, "--key", KEY, "--out",
                    os.path.join(WORK, "badcount.trp"), "--force", "--no-tasks"], capture_output=True, text=True)
check(r.returncode != 0 and "fleet_counts.csv:%d:" % (N_BENCH + 2) in r.stderr and "'3x' is not a count" in r.stderr
      and not os.path.exists(os.path.join(WORK, "badcount.trp")),
      "a count cell '3x': refused, file and line named (%s)" % r.stderr.strip()[-160:])
check.finish()
