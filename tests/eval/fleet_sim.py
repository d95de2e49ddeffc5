#!/usr/bin/python3
"""The fleet simulation of issue 17 item 2: does poisoned fleet feedback hurt
the pack built from it, with and without fleet_step.py --robust?

    fleet_sim.py --cli build/tinyroute --embedder TABLE --key PRIV.pem --pub PUB.pem
                 --lib build/libtinyroute-host.so --work DIR [--seeds 5] [--devices 100]
                 [--records 60] DATASET ...  > results.md

DATASET is an imported data set (`tinyroute import`, tools/DATASET.md).
Everything a device and a pack builder do goes through what ships:

 per seed, the prompts with every score known are shuffled into
   test (1,200: the held-out prompts every pack is scored on, never logged),
   bench (600: the benchmark references, every model scored) and
   pool (1,500: what the fleet's users ask; scores hidden from the builder);
 (a) the pack without logs: `tinyroute build` on bench;
 devices: each of N picks 3 tasks and draws RECORDS prompts from the pool's
   prompts of those tasks (Zipf-like popularity within a task, so devices
   meet on popular prompts), has its own cost weight lambda (users'
   budgets differ: 0, 0.05, 0.2 or 1) and routes them with pack (a) by
   `tinyroute route --lambda L --log-out LOG --log-flags embedding,text
   --outcomes DIR --log-device ID:KEY` (a sealed log, format v2): the
   outcome logged is the score of the model the router chose only (bandit
   feedback), from DIR, a per-device copy of its prompts' scores;
   honest users differ: 5 % of an honest device's 0/1 outcomes are flipped;
 attackers: a seeded 20 % of the devices (the 1 % and 5 % sets are the
   first of them) are enrolled devices under an attacker's control (they
   hold a valid key: logs of unknown devices are refused before this
   point). Every other one runs attack "flip" (logs 1 - the true outcome:
   steers routing away from what works) and the others "forge" (logs 1
   when the chosen model is the on-device one, 0 for every cloud model:
   "make the cloud look useless"). Both route the same prompts with the
   same lambda as they would honestly; only the outcomes lie;
 for 0, 1, 5, 20 % attackers: `tools/fleet_step.py --base bench
   --device-keys KEYS [--robust]` on one Dask LocalCluster (by address,
   as in production) -> dataset -> `tinyroute build` -> pack;
   (b) = 0 % without --robust (the clean fleet's pack), (c) with --robust,
   (d) without;
 every pack: `tinyroute eval --pack PACK --data test` -> held-out Area
   (the deferral curve of `eval --data`, on the test prompts).

Prints a Markdown section (tables: mean +- sd over the seeds; the robust
rule's drops: attackers caught and honest devices dropped) and writes
WORK/fleet_sim.json with every figure.
"""
import argparse
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
FLEET_STEP = os.path.normpath(os.path.join(HERE, "..", "..", "tools", "fleet_step.py"))
FRACTIONS = (0, 1, 5, 20)
LAMBDAS = (0.0, 0.05, 0.2, 1.0)
N_TEST, N_BENCH, N_POOL = 1200, 600, 1500
TASKS_PER_DEVICE = 3
HONEST_NOISE = 0.05


def sh(args, **kw):
    r = subprocess.run([str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, **kw)
    return r


def must(args, ok=(0,), **kw):
    r = sh(args, **kw)
    if r.returncode not in ok:
        sys.exit("fleet_sim: %s: exit %d\n%s" % (" ".join(map(str, args)), r.returncode, r.stderr))
    return r


def load(d):
    prompts = [json.loads(l) for l in open(os.path.join(d, "prompts.jsonl"), encoding="utf-8") if l.strip()]
    with open(os.path.join(d, "correctness.csv"), newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    names = rows[0][1:]
    by_id = {r[0]: r[1:] for r in rows[1:] if r}
    with open(os.path.join(d, "models.csv"), newline="", encoding="utf-8") as f:
        mrows = list(csv.reader(f))
    where = {r[mrows[0].index("name")]: r[mrows[0].index("where")] for r in mrows[1:] if r}
    keep, S = [], []
    for p in prompts:
        row = by_id[str(p["id"])]
        if all(c != "" for c in row):
            keep.append(p)
            S.append([float(c) for c in row])
    return keep, np.array(S), names, mrows, where


def write_ds(d, prompts, S, names, mrows, split):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "prompts.jsonl"), "w", encoding="utf-8") as f:
        for p in prompts:
            q = {"id": str(p["id"]), "text": p["text"], "split": split}
            if "task" in p:
                q["task"] = p["task"]
            f.write(json.dumps(q, ensure_ascii=False) + "\n")
    with open(os.path.join(d, "correctness.csv"), "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["id"] + names)
        for p, s in zip(prompts, S):
            w.writerow([str(p["id"])] + ["%g" % v for v in s])
    with open(os.path.join(d, "models.csv"), "w", newline="", encoding="utf-8") as f:
        csv.writer(f, lineterminator="\n").writerows(mrows)


AREA = re.compile(r"deferral curve .*?: Area ([0-9.]+), Peak ([0-9.]+); Pareto-random Area ([0-9.]+)")


def area(a, pack, test):
    r = must([a.cli, "eval", "--pack", pack, "--key", a.pub, "--data", test])
    m = AREA.search(r.stdout)
    if not m:
        sys.exit("fleet_sim: no Area in eval's output:\n" + r.stdout)
    return float(m.group(1)), float(m.group(3))


def build(a, data, out):
    must([a.cli, "build", "--data", data, "--embedder", a.embedder, "--key", a.key, "--out", out,
          "--force", "--no-tasks"])


def run_seed(a, name, prompts, S, names, mrows, where, seed, sched):
    rng = np.random.default_rng(1000 * seed + 17)
    W = os.path.join(a.work, name, "seed%d" % seed)
    shutil.rmtree(W, ignore_errors=True)
    os.makedirs(W)
    perm = rng.permutation(len(prompts))
    te, be, po = perm[:N_TEST], perm[N_TEST:N_TEST + N_BENCH], perm[N_TEST + N_BENCH:N_TEST + N_BENCH + N_POOL]
    test, bench = os.path.join(W, "test"), os.path.join(W, "bench")
    write_ds(test, [prompts[i] for i in te], S[te], names, mrows, "test")
    write_ds(bench, [prompts[i] for i in be], S[be], names, mrows, "train")
    pack_a = os.path.join(W, "a.trp")
    build(a, bench, pack_a)
    res = {"no_logs": area(a, pack_a, test)[0]}

    # The fleet: devices, their tasks, prompts, lambdas and keys.
    tasks = sorted({prompts[i].get("task", "") for i in po})
    by_task = {t: [i for i in po if prompts[i].get("task", "") == t] for t in tasks}
    for t in tasks:  # popularity: a random order, weights 1/(rank+1)^0.8
        rng.shuffle(by_task[t])
    N = a.devices
    keys = [rng.integers(0, 256, 32, dtype=np.uint8).tobytes().hex() for _ in range(N)]
    with open(os.path.join(W, "device-keys"), "w") as f:
        for d in range(N):
            f.write("%d %s\n" % (d + 1, keys[d]))
    bad = rng.permutation(N)[:max(1, round(0.20 * N))]
    attack = {int(d): ("flip" if j % 2 == 0 else "forge") for j, d in enumerate(bad)}
    dev_cols = np.array([where.get(n) == "device" for n in names])
    logs = {"honest": [], "attack": {}}
    t_dev = time.time()
    for d in range(N):
        ts = rng.choice(len(tasks), size=min(TASKS_PER_DEVICE, len(tasks)), replace=False)
        pool = [i for t in ts for i in by_task[tasks[t]]]
        w = np.concatenate([1.0 / (np.arange(len(by_task[tasks[t]])) + 1) ** 0.8 for t in ts])
        draw = rng.choice(len(pool), size=a.records, replace=True, p=w / w.sum())
        idx = [pool[j] for j in draw]
        lam = LAMBDAS[int(rng.integers(len(LAMBDAS)))]
        truth = S[idx].copy()
        flip = (rng.random(truth.shape) < HONEST_NOISE) & ((truth == 0) | (truth == 1))
        honest = np.where(flip, 1 - truth, truth)
        kinds = [("honest", honest)]
        if d in attack:
            forged = 1 - truth if attack[d] == "flip" else np.tile(dev_cols.astype(float), (len(idx), 1))
            kinds.append(("attack", forged))
        for kind, scores in kinds:
            dd = os.path.join(W, "dev", "%s-%04d" % (kind, d))
            # One row per draw; the outcome lookup is by text (the first
            # row with it), so a repeated prompt gets one outcome per device.
            plist = [dict(prompts[i], id="d%d-%d" % (d, k)) for k, i in enumerate(idx)]
            write_ds(dd, plist, scores, names, mrows, "train")
            log = dd + ".trl"
            must([a.cli, "route", "--pack", pack_a, "--key", a.pub, "--lambda", lam,
                  "--input", os.path.join(dd, "prompts.jsonl"), "--format", "jsonl",
                  "--log-out", log, "--log-flags", "embedding,text", "--outcomes", dd,
                  "--log-device", "%d:%s" % (d + 1, keys[d])])
            if kind == "honest":
                logs["honest"].append(log)
            else:
                logs["attack"][d] = log
    t_dev = time.time() - t_dev

    drops = {}
    keyf = os.path.join(W, "device-keys")
    for pct in FRACTIONS:
        evil = [int(d) for d in bad[:round(pct / 100 * N)]]
        batch = [logs["attack"][d] if d in evil else logs["honest"][d] for d in range(N)]
        for robust in (False, True):
            tag = "%d%s" % (pct, "r" if robust else "")
            out = os.path.join(W, "fleet-" + tag)
            r = must([sys.executable, FLEET_STEP, "--base", bench, "--out", out, "--device-keys", keyf,
                      "--scheduler", sched, "--lib", a.lib, "--force"]
                     + (["--robust", "--reference", pack_a, "--key", a.pub] if robust else []) + batch)
            summ = json.loads(r.stdout)
            with open(out + ".summary.json", "w") as f:  # what the step reported: every drop's numbers
                f.write(r.stdout)
            if summ["refused"]:
                sys.exit("fleet_sim: logs refused: %s" % summ["refused"])
            pack = os.path.join(W, "p-%s.trp" % tag)
            build(a, out, pack)
            res[tag] = area(a, pack, test)[0]
            if robust:
                dd = summ["robust"]["dropped_devices"]
                dropped = [x["device"] - 1 for x in dd]
                drops[tag] = dict(attackers=len(evil), caught=len(set(dropped) & set(evil)),
                                  honest_dropped=len(set(dropped) - set(evil)),
                                  flip_caught=sum(1 for x in dropped if attack.get(x) == "flip" and x in evil),
                                  forge_caught=sum(1 for x in dropped if attack.get(x) == "forge" and x in evil),
                                  by_consensus=sum(1 for x in dd if "consensus" in x),
                                  by_references=sum(1 for x in dd if "references" in x),
                                  by_direction=sum(1 for x in dd if "direction" in x),
                                  q=summ["robust"]["q"], fleet_prompts=summ["prompts"], cells=summ["cells"])
    if not a.keep:
        shutil.rmtree(os.path.join(W, "dev"), ignore_errors=True)
    return dict(area=res, drops=drops, device_seconds=round(t_dev, 1))


def ms(xs):
    xs = np.array(xs, float)
    return "%.4f ± %.4f" % (xs.mean(), xs.std(ddof=1) if len(xs) > 1 else 0.0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("datasets", nargs="+")
    for o in ("--cli", "--embedder", "--key", "--pub", "--lib", "--work"):
        ap.add_argument(o, required=True)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--devices", type=int, default=100)
    ap.add_argument("--records", type=int, default=60)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--keep", action="store_true", help="keep the device logs")
    a = ap.parse_args()
    for o in ("cli", "embedder", "key", "pub", "lib", "work"):
        setattr(a, o, os.path.abspath(getattr(a, o)))
    from dask.distributed import LocalCluster
    t0 = time.time()
    cluster = LocalCluster(n_workers=a.workers, threads_per_worker=1, processes=True, dashboard_address=None)
    out = {}
    try:
        for d in a.datasets:
            name = os.path.basename(os.path.normpath(d))
            prompts, S, names, mrows, where = load(d)
            out[name] = [run_seed(a, name, prompts, S, names, mrows, where, s, cluster.scheduler_address)
                         for s in range(1, a.seeds + 1)]
            print("fleet_sim: %s done (%.0f s)" % (name, time.time() - t0), file=sys.stderr)
    finally:
        cluster.close()
    with open(os.path.join(a.work, "fleet_sim.json"), "w") as f:
        json.dump(out, f, indent=1)

    print("## Fleet feedback under poisoning (issue 17 item 2)\n")
    print("`%s` (in `make eval`; %.0f s)\n" % (" ".join(["tests/eval/fleet_sim.py"] + sys.argv[1:]),
                                             time.time() - t0))
    print("Held-out Area (`tinyroute eval --pack`, %d test prompts per seed) of packs built from %d benchmark "
          "references plus the outcome logs of %d devices x %d routed prompts (bandit feedback), "
          "mean ± sd over %d seeds; `robust` = `fleet_step.py --robust`. "
          "Attackers: half flip every outcome, half forge (on-device model 1, cloud 0).\n"
          % (N_TEST, N_BENCH, a.devices, a.records, a.seeds))
    for name, runs in out.items():
        A = lambda k: [r["area"][k] for r in runs]
        clean = np.array(A("0"))
        print("### %s\n" % name)
        print("| pack | Area | − clean fleet (mean, worst seed) | − no logs (mean, worst seed) |")
        print("|---|---|---|---|")
        nol = np.array(A("no_logs"))
        print("| (a) without logs | %s | | |" % ms(nol))
        for pct in FRACTIONS:
            for robust in (False, True):
                tag = "%d%s" % (pct, "r" if robust else "")
                v = np.array(A(tag))
                label = ("(b) clean fleet" if tag == "0" else "%s %d %% attackers" %
                         ("(c) robust," if robust else "(d) plain,", pct))
                print("| %s | %s | %+.4f, %+.4f | %+.4f, %+.4f |" % (
                    label, ms(v), (v - clean).mean(), (v - clean).min(), (v - nol).mean(), (v - nol).min()))
        print("\nWhat --robust dropped (sum over the seeds):\n")
        print("| attackers | attackers dropped (flip, forge) | honest devices dropped | dropped by test 1 consensus / test 2 references / test 3 direction | q (mean) |")
        print("|---|---|---|---|---|")
        for pct in FRACTIONS:
            ds = [r["drops"]["%dr" % pct] for r in runs]
            print("| %d %% (%d) | %d (%d, %d) | %d | %d / %d / %d | %.3f |" % (
                pct, sum(x["attackers"] for x in ds), sum(x["caught"] for x in ds),
                sum(x["flip_caught"] for x in ds), sum(x["forge_caught"] for x in ds),
                sum(x["honest_dropped"] for x in ds), sum(x["by_consensus"] for x in ds),
                sum(x["by_references"] for x in ds),
                sum(x.get("by_direction", 0) for x in ds), np.mean([x["q"] for x in ds])))
        print()
    print("Run time: %.0f s." % (time.time() - t0), file=sys.stderr)


if __name__ == "__main__":
    main()
