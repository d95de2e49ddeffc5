#!/usr/bin/python3
"""Markdown tables from the JSON documents `make eval` writes (tools/EVAL_JSON.md).
Usage: tables.py EVAL_DIR > results.md"""
import glob
import json
import os
import sys

D = sys.argv[1]


def load(name):
    path = os.path.join(D, name)
    return json.load(open(path)) if os.path.exists(path) else None


def ms(x, digits=4):
    if x is None or x.get("mean") is None:
        return "∞" if x is not None and "finite" in x else "—"
    s = "%.*f ± %.*f" % (digits, x["mean"], digits, x["std"])
    if "finite" in x:
        s += " (%d)" % x["finite"]
    return s


def protocol_table(doc, title):
    print("### %s\n" % title)
    print("`%s`\n" % doc["command"])
    print("| data set | method | Area | QNC (finite seeds) | Peak | chosen k:a / K:a |")
    print("|---|---|---|---|---|---|")
    for d in doc["datasets"]:
        for m in d["methods"]:
            # k:a (kNN) and K:a (the a Psi was shrunk with: kNN's)
            chosen = ",".join(str(c) if a is None else "%s:%g" % (c, a) for c, a in
                              zip(m.get("chosen", []), m.get("prior_strength", [None] * len(m.get("chosen", [])))))
            print("| %s | %s | %s | %s | %s | %s |" % (d["name"], m["label"], ms(m["area"]),
                                                     ms(m["qnc"], 3), ms(m["peak"]), chosen))
    print()
    print("| data set | kNN − Pareto | K-means − Pareto | task map − Pareto | best router | "
          "every router above Pareto-random |")
    print("|---|---|---|---|---|---|")
    for d in doc["datasets"]:
        a = {m["id"]: m["area"]["mean"] for m in d["methods"]}
        pr = a["pareto-random"]
        routers = [m for m in d["methods"] if m["kind"] == "router"]
        best = max(routers, key=lambda m: m["area"]["mean"])
        tm = "%+.4f" % (a["task-map"] - pr) if "task-map" in a else "— (no tasks)"
        print("| %s | %+.4f | %+.4f | %s | %s %+.4f | %s |" % (
            d["name"], a["knn"] - pr, a["kmeans"] - pr, tm, best["label"], best["area"]["mean"] - pr,
            "yes" if min(m["area"]["mean"] for m in routers) > pr else "NO"))
    print()


def fidelity_table(doc):
    print("| data set | same decisions | Area int8 | Area float32 | mean abs(dArea) | "
          "recall@10 exact int8 | recall@10 prefilter C=400 |")
    print("|---|---|---|---|---|---|---|")
    for d in doc["datasets"]:
        f = d["fidelity"]
        print("| %s | %.4f | %.4f | %.4f | %.5f | %.4f | %.4f |" % (
            d["name"], f["same_decisions"], f["area_int8"], f["area_f32"], f["delta_area"],
            f["recall_at_10"], f["recall_at_10_prefilter"]))
    print()


def task_table(doc, title):
    for d in doc["datasets"]:
        t = d.get("tasks")
        if not t:
            continue
        print("### %s: %s (%d tasks, k = %d)\n" % (title, d["name"], t["n_tasks"], t["k"]))
        print("| task | prompts | S1 | S2 | S3 (gated) | BMA | oracle | gate kept BMA |")
        print("|---|---|---|---|---|---|---|---|")
        for r in t["rows"]:
            print("| %s | %d | %.4f | %.4f | %.4f | %.4f | %.4f | %s |" % (
                r["task"], r["prompts"], r["s1"], r["s2"], r["s3"], r["bma"], r["oracle"],
                "yes" if r["gate_kept_bma"] else "no"))
        m = t["mean"]
        worst = max(r["bma"] - r["s3"] for r in t["rows"])
        print("| **mean** | | %.4f | %.4f | **%.4f** | %.4f | %.4f | |" % (
            m["s1"], m["s2"], m["s3"], m["bma"], m["oracle"]))
        print("\nS3 − BMA on average: %+.4f (target ≥ 0); worst task: %+.4f (target ≥ −0.01)\n" %
              (m["s3"] - m["bma"], -worst))


print("# tinyroute evaluation (`make eval`)\n")
docs = [(load("fixed-pool.json"), "Fixed pool: every model known on the train prompts"),
        (load("new-models.json"), "New models: half the models known only by their "
                                  "validation labels (Jitkrittum 2025's dynamic pool)"),
        (load("mmlu-small.json"), "MMLU-Pro, models of at most 10B parameters (fixed pool)")]
for doc, title in docs:
    if doc:
        protocol_table(doc, title)
print("## Fidelity: int8 core vs float32 reference (kNN at the chosen k, fixed pool)\n")
if docs[0][0]:
    fidelity_table(docs[0][0])
print("## Task-level selection, leave one task out (Shnitzer et al. 2023)\n")
for doc, title in docs + [(load("tasks.json"), "all models")]:
    if doc:
        task_table(doc, "≤ 10B models" if doc is docs[2][0] else "all models")
study = sorted(glob.glob(os.path.join(D, "study-*.json")))
if study:
    print("## Embedder study (fixed pool, Area, mean over %d seeds)\n" %
          len(json.load(open(study[0]))["datasets"][0]["seeds"]))
    names = [d["name"] for d in json.load(open(study[0]))["datasets"]]
    print("Area above Pareto-random on the prompts each embedder can embed (a prompt\n"
          "without one known word has no SIF embedding: routerdc's Chinese C-Eval and\n"
          "CMMLU prompts), and how many prompts that is.\n")
    print("| embedder | " + " | ".join("%s kNN | K-means | prompts" % n for n in names) + " |")
    print("|---|" + "---|---|---|" * len(names))
    for path in study:
        doc = json.load(open(path))
        cells = []
        for d in doc["datasets"]:
            a = {m["id"]: m["area"]["mean"] for m in d["methods"]}
            cells += ["%+.4f" % (a["knn"] - a["pareto-random"]),
                      "%+.4f" % (a["kmeans"] - a["pareto-random"]), "%d" % d["n_prompts"]]
        label = os.path.basename(path)[6:-5]
        print("| %s | %s |" % (label, " | ".join(cells)))
    print()
