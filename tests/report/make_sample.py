#!/usr/bin/python3
"""Writes tests/report/sample.json and nasty.json: hand-made results documents
in the shape of tools/EVAL_JSON.md, for the report tests. The numbers are
invented but shaped like real deferral curves (concave routers, a piecewise
linear Pareto-random baseline, an oracle well above both), and the summary
metrics are computed from the curves so the tables and the plots agree.

usage: make_sample.py OUTDIR     (deterministic: rerunning changes nothing)
"""
import json
import math
import os
import random
import sys

GRID = [i / 100 for i in range(101)]
SEEDS = list(range(1, 11))


def r4(x):
    return round(x, 4)


def area(curve):
    return sum((curve[i + 1][1] + curve[i][1]) / 2 * (curve[i + 1][0] - curve[i][0])
               for i in range(len(curve) - 1))


def qnc(curve, target):
    """Lowest cost at which the curve reaches the best single model, or None."""
    for x, y in curve:
        if y >= target:
            return x
    return None


def router_curve(a0, a_end, gain, tau, rng):
    # Rises fast from the cheapest model, overshoots, and sinks back towards
    # the costliest model at x = 1: the usual shape of a routed deferral curve.
    pts = []
    for x in GRID:
        rise = (1 - math.exp(-x / tau)) / (1 - math.exp(-1 / tau))
        y = a0 + (a_end - a0) * rise + gain * math.sin(math.pi * x) ** 1.5
        pts.append([x, r4(y + rng.gauss(0, 0.0015) * (0 < x < 1))])
    return pts


def pareto_random(models):
    pts = sorted((m["cost_norm"], m["accuracy"]) for m in models)
    front = []
    for c, a in pts:
        if not front or a > front[-1][1]:
            front.append((c, a))
    out = []
    for x in GRID:
        y = front[-1][1]
        for (c0, a0), (c1, a1) in zip(front, front[1:]):
            if c0 <= x <= c1:
                y = a0 + (a1 - a0) * (x - c0) / (c1 - c0)
                break
        out.append([x, r4(y)])
    return out


def oracle_curve(a0, top, tau):
    return [[x, r4(a0 + (top - a0) * (1 - math.exp(-x / tau)))] for x in GRID]


def method(mid, label, kind, curve, best_single, rng, param=None, choices=None,
           qnc_finite=None):
    a = area(curve)
    peak = max(y for _, y in curve)
    q = qnc(curve, best_single)
    m = {"id": mid, "label": label, "kind": kind}
    if param:
        m["param"] = param
        m["chosen"] = [rng.choice(choices) for _ in SEEDS]
    m["area"] = {"mean": r4(a), "std": r4(0.002 + rng.random() * 0.004)}
    finite = len(SEEDS) if qnc_finite is None else qnc_finite
    if q is None or finite == 0:
        m["qnc"] = {"mean": None, "std": None, "finite": 0}
    else:
        m["qnc"] = {"mean": r4(q), "std": r4(0.01 + rng.random() * 0.05), "finite": finite}
    m["peak"] = {"mean": r4(peak), "std": r4(0.003 + rng.random() * 0.004)}
    m["curve"] = curve
    return m


def singles(spec):
    lo = min(c for _, c, _ in spec)
    hi = max(c for _, c, _ in spec)
    return [{"name": n, "cost": c, "cost_norm": r4((c - lo) / (hi - lo)), "accuracy": a,
             "seeds": 3 + (i * 7) % 6} for i, (n, c, a) in enumerate(spec)]


def add_points(methods, sm):
    """The operating points, from each curve and the single models: CPT at
    80/90/95 % of the best model's accuracy in the units of the sample's QNC
    (CPT 100 % is QNC), APGR between the cheapest and the best model, and for
    routers the seeds below Pareto-random (none when well above it)."""
    best = max(sm, key=lambda m: (m["accuracy"], -m["cost"]))["accuracy"]
    cheap = min(sm, key=lambda m: (m["cost"], -m["accuracy"]))["accuracy"]
    base = area(next(m for m in methods if m["kind"] == "baseline")["curve"])
    for m in methods:
        curve = m.pop("curve")
        m["best_single_accuracy"] = {"mean": best, "std": 0.0042}
        m["cpt"] = {}
        for k, share in (("80", 0.8), ("90", 0.9), ("95", 0.95)):
            x = qnc(curve, share * best)
            m["cpt"][k] = ({"mean": None, "std": None, "finite": 0} if x is None else
                           {"mean": r4(x), "std": 0.012, "finite": len(SEEDS)})
        m["cpt"]["100"] = dict(m["qnc"])
        m["apgr"] = {"mean": r4((area(curve) - cheap) / (best - cheap)), "std": 0.021,
                     "finite": len(SEEDS)}
        if m["kind"] == "router":
            short = area(curve) < base + 0.01
            m["below_pareto_random"] = {"seeds": 3 if short else 0, "of": len(SEEDS),
                                        "max_shortfall": 0.0031 if short else 0}
        m["curve"] = curve


def mmlu(rng):
    sm = singles([
        ("Phi-3-mini-4k-instruct", 3.8, 0.4148), ("Yi-6B", 6, 0.2497),
        ("Mistral-7B-Instruct-v0.2", 7.2, 0.2876), ("mathstral-7B", 7.2, 0.4200),
        ("Meta-Llama-3_1-8B-Instruct", 8, 0.4419), ("gemma-7b", 8.5, 0.3236),
        ("Yi-34B", 34, 0.4208), ("Mixtral-8x7B-Instruct-v0.1", 46.7, 0.4189),
        ("Meta-Llama-3_1-70B-Instruct", 70, 0.6282), ("Qwen1.5-110B", 110, 0.4920),
        ("DeepSeek-Coder-V2", 236, 0.6363), ("jamba-1.5-large", 398, 0.4946),
        ("Llama-2-70b-hf", 70, 0.3629)])
    best = max(m["accuracy"] for m in sm)
    a0 = 0.4148
    methods = [
        method("knn", "kNN (int8 core)", "router", router_curve(a0, 0.60, 0.095, 0.10, rng),
               best, rng, "k", [10, 50, 100, 100, 200]),
        method("cluster", "Cluster map", "router", router_curve(a0, 0.59, 0.085, 0.12, rng),
               best, rng, "clusters", [16, 32, 64], qnc_finite=7),
        method("learned-map", "Learned soft cluster map", "router",
               router_curve(a0, 0.61, 0.10, 0.08, rng), best, rng, "temperature",
               [0.05, 0.1, 0.2]),
        method("pareto-random", "Pareto-random", "baseline", pareto_random(sm), best, rng,
               qnc_finite=10),
        method("oracle", "Oracle", "bound", oracle_curve(a0, 0.89, 0.05), best, rng),
    ]
    add_points(methods, sm)
    cats = ["biology", "business", "chemistry", "computer science", "economics",
            "engineering", "health", "history", "law", "math", "other", "philosophy",
            "physics", "psychology"]
    rows = []
    for c in cats:
        base = 0.35 + rng.random() * 0.3
        s = [r4(base + rng.gauss(0, 0.02)) for _ in range(3)]
        bma = r4(base + rng.gauss(-0.01, 0.02))
        rows.append({"task": c, "s1": s[0], "s2": s[1], "s3": s[2], "bma": bma,
                     "oracle": r4(max(s + [bma]) + 0.02 + rng.random() * 0.05),
                     "gate_kept_bma": bma >= max(s) - 0.005})
    mean = {k: r4(sum(r[k] for r in rows) / len(rows)) for k in ("s1", "s2", "s3", "bma", "oracle")}
    knn_area = methods[0]["area"]["mean"]
    return {
        "name": "mmlu-pro-32",
        "path": "build/eval/mmlu-pro-32",
        "n_prompts": 12032, "n_models": 26,
        "cost_unit": "params_b (billions of parameters)",
        "embedder": {"name": "wink-sg100-sif-50k",
                     "sha256": "3f1c9a0d5be2e7a4c61f08d9b2a47e5c0d93b8f1a2c4e6d8f0a1b3c5d7e9f1a2"},
        "pack_sha256": "9b2e4d6f8a0c1e3f5a7b9d1f3e5c7a9b0d2f4e6a8c0e2f4a6b8d0f2e4c6a8b0d",
        "seeds": SEEDS,
        "methods": methods,
        "single_models": sm,
        "tasks": {"n_tasks": len(cats), "rows": rows, "mean": mean},
        "fidelity": {"same_decisions": 0.9952, "area_int8": knn_area,
                     "area_f32": r4(knn_area + 0.0001), "delta_area": -0.0001,
                     "recall_at_10": 0.9812, "recall_at_10_prefilter": 0.9534},
    }


def llmrouter(rng):
    sm = singles([("gemma-2-9b-it", 0.1, 0.512), ("qwen2.5-7b-instruct", 0.2, 0.587),
                  ("llama3-chatqa-1.5-8b", 0.2, 0.433), ("mistral-7b-instruct-v0.3", 0.2, 0.468),
                  ("llama-3.3-nemotron-super-49b-v1", 0.9, 0.655)])
    best = max(m["accuracy"] for m in sm)
    a0 = 0.512
    methods = [
        method("knn", "kNN (int8 core)", "router", router_curve(a0, 0.655, 0.03, 0.2, rng),
               best, rng, "k", [10, 50, 100]),
        method("cluster", "Cluster map", "router", router_curve(a0, 0.62, 0.0, 0.3, rng),
               best, rng, "clusters", [8, 16], qnc_finite=0),
        method("learned-map", "Learned soft cluster map", "router",
               router_curve(a0, 0.655, 0.035, 0.15, rng), best, rng, "temperature", [0.1, 0.2]),
        method("pareto-random", "Pareto-random", "baseline", pareto_random(sm), best, rng),
        method("oracle", "Oracle", "bound", oracle_curve(a0, 0.83, 0.08), best, rng),
    ]
    add_points(methods, sm)
    return {
        "name": "llmrouter-9models",
        "path": "build/eval/llmrouter-9models",
        "n_prompts": 6108, "n_models": 9,
        "cost_unit": "usd_per_1m_output_tokens",
        "embedder": {"name": "wink-sg100-sif-50k",
                     "sha256": "3f1c9a0d5be2e7a4c61f08d9b2a47e5c0d93b8f1a2c4e6d8f0a1b3c5d7e9f1a2"},
        "seeds": SEEDS,
        "methods": methods,
        "single_models": sm,
    }


def sample():
    rng = random.Random(6)
    return {
        "tinyroute_version": "0.1.0",
        "kernel": "avx2",
        "created": "2026-11-25T10:00:00Z",
        "command": "tinyroute eval --data build/eval/mmlu-pro-32 --data build/eval/llmrouter-9models "
                   "--seeds 10 --json results.json",
        "protocol": "Jitkrittum et al. 2025: prompts 60/10/30 train/validation/test, models split in "
                    "half into train and test models per seed, parameters chosen on validation",
        "datasets": [mmlu(rng), llmrouter(rng)],
    }


# Names are user data: every field a name can reach carries markup, quotes
# and non-ASCII, and one data set has only the required fields.
EVIL = "<script>document.body.setAttribute('data-pwned','1')</script>"


def nasty():
    rng = random.Random(7)
    ds = llmrouter(rng)
    ds["name"] = 'set "one" & ' + EVIL
    ds["path"] = "build/</style><b>x</b>"
    ds["cost_unit"] = "€ per <1M> tokens"
    ds["embedder"] = {"name": "emb'\"<i>", "sha256": None}
    ds["pack_sha256"] = None
    for i, m in enumerate(ds["methods"]):
        m["id"] = m["id"] + ' "q\'' + ("<img src=x onerror=alert(1)>" if i == 0 else "")
        m["label"] = m["label"] + ' <b>"' + "'&amp;" + ("</svg>" + EVIL if i == 1 else "")
    ds["methods"][0]["chosen"] = ["<u>", None, 3]
    ds["methods"][1]["peak"] = None
    ds["methods"][1]["area"] = {"mean": None, "std": None}
    del ds["methods"][2]["qnc"]
    ds["methods"][2]["curve"][5] = None
    ds["methods"][2]["curve"][6] = [0.06, None]
    ds["methods"][0]["cpt"] = {"80": {"mean": None, "finite": 0}, "90": "<b>x</b>", "95": None}
    ds["methods"][0]["below_pareto_random"] = {"seeds": "<i>", "of": None}
    ds["methods"][1]["apgr"] = {"mean": "<u>", "std": None}
    del ds["methods"][3]["best_single_accuracy"]
    ds["single_models"][0]["name"] = "Ünïcødé model — «β» " + EVIL
    ds["single_models"][1]["name"] = 'm"\'&<>'
    ds["tasks"] = {"n_tasks": 1, "rows": [{"task": EVIL, "s1": None, "s2": 0.5,
                                           "gate_kept_bma": None}], "mean": None}
    ds["fidelity"] = {"same_decisions": None, "note<script>": 1}
    bare = {"name": "bare", "methods": []}
    points = {"name": "models only", "methods": [], "seeds": [],
              "single_models": [{"name": "solo", "cost_norm": 0.5, "accuracy": 0.5},
                                {"name": "no cost", "cost_norm": None, "accuracy": 0.2}]}
    return {"tinyroute_version": EVIL, "command": "eval '" + EVIL + '"',
            "datasets": [ds, bare, points]}


def main():
    out = sys.argv[1]
    for name, doc in (("sample.json", sample()), ("nasty.json", nasty())):
        with open(os.path.join(out, name), "w") as f:
            json.dump(doc, f, indent=1, ensure_ascii=False)
            f.write("\n")


if __name__ == "__main__":
    main()
