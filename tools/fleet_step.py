#!/usr/bin/python3
"""The fleet step (issue 17): many device outcome logs -> one dataset for
`tinyroute build`, on Dask distributed.

    fleet_step.py (--models MODELS.csv | --base DATASET) --out DIR [--device-keys FILE
                  [--allow-unauthenticated]] [--scheduler ADDR | --workers N]
                  [--shard-prompts N] [--chunk-files N] [--lib PATH] [--force]
                  [--robust [--alpha A] [--min-cells N] [--reference PACK --key PUB.pem]]
                  LOG|DIR ...

Logs (files, or the *.trl files of a directory, in sorted order; the order of
the arguments is the batch order) are read by build/libtinyroute-host.so
(tools/hostlib.h: tools/logfile.c's reader and authentication behind a C ABI,
loaded with ctypes by the binding tools/tinyroute_py.py), never by a Python
parser of the format:

 1. read (parallel): every log is read and, with --device-keys, its device
    must be known and not revoked and its MAC must verify (version 1 logs
    only with --allow-unauthenticated); in the same read, for each record
    with kept text, an outcome and a model of MODELS.csv, the sum and count
    of outcomes per (prompt text, model), kept on the worker;
 2. order (driver, serial, in C; only the headers travel): the replay rule
    of a batch (core/OUTCOME_LOG.md): a log whose ids do not pass the newest
    already taken from its device is refused; ids already taken are taken
    once (such a log is read again without them, and must authenticate with
    the same header: a file changed meanwhile is refused);
 3. merge (a tree of merges on the workers): the accepted logs' partials;
 4. write (driver): DIR/prompts.jsonl, correctness.csv (the mean outcome of
    each (prompt, model) pair observed, empty where none), models.csv (a copy
    of MODELS.csv: names are matched by the logs' FNV-1a name hashes) and
    fleet_counts.csv (observations per cell: build's log guard takes
    every counted cell as logged, tools/log_guard.h), as in
    tools/DATASET.md. With more than --shard-prompts prompts (default
    1,000,000) DIR/shard-NNNN/ each hold a complete dataset of that many.
    With --base DATASET instead of --models: the base dataset (a benchmark:
    every model scored) comes first, unchanged, with its models.csv; a fleet
    prompt whose text is a base prompt's fills only that row's unknown
    cells (the benchmark's scores are the reference); the others follow as
    new prompts (split train, no task). `build` needs a score for every model
    somewhere, which fleet logs alone rarely give: build from --base.

--robust (poisoning resistance, issue 17 item 2; see robust_votes): each
device has one vote per (prompt, model), its own mean outcome there, so
logging one prompt many times buys no weight; a device is dropped whole when
(1) its votes disagree with the other devices' (>= 0.5 from their mean, on
cells with >= 3 others) more often than chance allows: P(Binomial(m, q) >=
k) < --alpha (0.001) / devices, q the median device's disagreement rate,
for devices with m >= --min-cells (10) comparable cells; or, with
--reference PACK --key PUB (the pack built from the benchmark references
alone), (2) its votes sit further from PACK's predicted correctness than
the fleet's devices do, beyond the same chance level (a robust z score),
or (3) its votes sit on one side of PACK's estimates per model (sum of
v - p per model, chi-square over its models, the same robust z): a forger
logging 1 for one model and 0 for the others is as far from p as honest
0/1 outcomes are, but never on both sides. Honest users differ, so q is
not 0; an attacker flipping outcomes disagrees on nearly every cell. The summary's "robust" object reports the rule, q,
and each dropped device with the test(s) that dropped it and their counts.
Cells are then the mean of the kept votes; fleet_counts.csv holds the
number of devices. It assumes an honest majority on each cell and that
devices are distinct (one key each; a key file is the fleet's identity).
Measured in tests/eval/RESULTS.md ("Fleet feedback under poisoning"). The
per-device votes travel to the driver: at fleet scale that table wants a
Dask dataframe group-by instead (not done).

Records without text (the default log keeps the embedding only) cannot
become dataset prompts: they are counted as skipped (`build --add-log` takes
them). The prompt id is "fleet-" and the FNV-1a 64 of the kept text, in hex.

A summary JSON goes to stdout, refusals to stderr, each naming its file.
Exit status (the CLI's, README): 0; 1 when some logs were refused (the
dataset is written from the others: the summary's refused and datasets say
so) or on an error that stops the step (no summary); 2 on bad usage.

Runs on a LocalCluster of --workers processes (default 2, one thread each)
or on any Dask scheduler by address (--scheduler tcp://host:8786); the
workers must see the log files, the key file and the library at the same
paths.
"""
import argparse
import csv
import ctypes
import json
import math
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import tinyroute_py as trpy  # noqa: E402 (the binding: the C ABI's declarations, one copy)

LIB_DEFAULT = trpy.LIB_DEFAULT
REC_OUTCOME = trpy.REC_OUTCOME
ERR_BYTES = trpy.ERR_BYTES
LogInfo = trpy.LogInfo


def _cache():
    # Per process (a worker keeps its key handles across tasks); on sys
    # because the task functions may be shipped by value.
    return sys.__dict__.setdefault("_tinyroute_fleet_cache", {})


def host_lib(path):
    """The host library's functions (tools/tinyroute_py.py declares them)."""
    c = _cache()
    if "mallopt" not in c:
        # glibc hands blocks over 128 KB to mmap and back on free, so every
        # log read whole would fault in fresh pages (measured on the test VM:
        # 0.36 s per 32 MB, more than parsing and the MAC). Keeping blocks up
        # to 32 MB (glibc's ceiling) in the heap reuses the pages across logs.
        try:
            libc = ctypes.CDLL(None)
            libc.mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD
            libc.mallopt(-1, 256 << 20)  # M_TRIM_THRESHOLD
        except (OSError, AttributeError):
            pass  # not glibc: only slower
        c["mallopt"] = True
    try:
        return trpy.Library(path).L
    except trpy.Error as e:
        raise RuntimeError(str(e))


def load_keys(L, keys_path, allow_v1):
    err = ctypes.create_string_buffer(ERR_BYTES)
    k = L.trh_keys_load(keys_path.encode(), int(allow_v1), err, ERR_BYTES)
    if not k:
        raise RuntimeError(err.value.decode(errors="replace"))
    return k


def worker_keys(L, keys_path, allow_v1):
    if keys_path is None:
        return None
    c = _cache()
    if ("keys", keys_path, allow_v1) not in c:
        c[("keys", keys_path, allow_v1)] = load_keys(L, keys_path, allow_v1)
    return c[("keys", keys_path, allow_v1)]


def open_log(L, path, keys):
    info, err = LogInfo(), ctypes.create_string_buffer(ERR_BYTES)
    h = L.trh_log_open(path.encode(), keys, ctypes.byref(info), err, ERR_BYTES)
    return h, info, err.value.decode(errors="replace")


def file_part(L, h, info, skip, hashes, cols):
    """One open log's partial aggregate, its first skip records left out."""
    n = info.n
    stats = dict(records=n, used=0, taken_before=skip, no_text=0, no_outcome=0, unknown_model=0)
    mh = np.empty(n, np.uint64)
    tk = np.empty(n, np.uint64)
    fl = np.empty(n, np.uint32)
    oc = np.empty(n, np.float32)
    if n:
        L.trh_log_records(h, 0, n, None, mh.ctypes.data, None, tk.ctypes.data, fl.ctypes.data,
                          oc.ctypes.data, None)
    live = np.arange(n) >= skip
    has_text = tk != 0
    has_out = (fl & REC_OUTCOME) != 0
    pos = np.searchsorted(hashes, mh)
    pos[pos >= len(hashes)] = 0
    known = hashes[pos] == mh
    stats["no_text"] = int(np.sum(live & ~has_text))
    stats["no_outcome"] = int(np.sum(live & has_text & ~has_out))
    stats["unknown_model"] = int(np.sum(live & has_text & has_out & ~known))
    use = live & has_text & has_out & known
    stats["used"] = int(np.sum(use))
    idx = np.nonzero(use)[0]
    texts = {}
    if len(idx):
        # The text of each prompt, once.
        u, first = np.unique(tk[idx], return_index=True)
        buf = ctypes.create_string_buffer(512)
        for key, i in zip(u.tolist(), first.tolist()):
            ln = L.trh_log_text(h, int(idx[i]), buf, 512)
            texts[key] = buf.raw[:ln]
    cells = reduce_cells([np.full(len(idx), info.device_id, np.uint64)], [tk[idx]], [cols[pos[idx]]],
                         [oc[idx].astype(np.float64)], [np.ones(len(idx), np.int64)])
    return dict(cells=cells, texts=texts, stats=stats, refused=[])


def read_chunk(paths, lib_path, keys_path, allow_v1, hashes, cols):
    """Steps 1 and 3 in one read, on a worker: each log is read and
    authenticated, and aggregated as if nothing were taken before it. The
    result stays on the worker; the driver gets only the headers (heads)."""
    L = host_lib(lib_path)
    keys = worker_keys(L, keys_path, allow_v1)
    out = []
    for p in paths:
        h, info, err = open_log(L, p, keys)
        if not h:
            out.append({"path": p, "ok": False, "error": err})
            continue
        out.append({"path": p, "ok": True, "version": info.version, "device": info.device_id,
                    "recorded": info.recorded, "n": info.n,
                    "part": file_part(L, h, info, 0, hashes, cols)})
        L.trh_log_close(h)
    return out


def heads(chunk):
    return [{k: v for k, v in r.items() if k != "part"} for r in chunk]


def select(chunk, skips, lib_path, keys_path, allow_v1, hashes, cols):
    """After step 2: the partials of the logs accepted (skips: path -> records
    already taken). A log that overlaps an earlier one is read again and
    aggregated without those records; it must still authenticate and have
    the header step 2 judged (else refused: the file changed meanwhile)."""
    parts = []
    L = None
    for r in chunk:
        if r["path"] not in skips:
            continue
        skip = skips[r["path"]]
        if skip == 0:
            parts.append(r["part"])
            continue
        L = L or host_lib(lib_path)
        h, info, err = open_log(L, r["path"], worker_keys(L, keys_path, allow_v1))
        if not h:
            parts.append(dict(cells=reduce_cells([], [], [], [], []), texts={}, stats={},
                              refused=[{"path": r["path"], "error": err + " (read again)"}]))
            continue
        if (info.version, info.device_id, info.recorded, info.n) != (r["version"], r["device"],
                                                                     r["recorded"], r["n"]):
            L.trh_log_close(h)
            parts.append(dict(cells=reduce_cells([], [], [], [], []), texts={}, stats={},
                              refused=[{"path": r["path"], "error": "%s: refused: changed while the "
                                                                   "batch was read" % r["path"]}]))
            continue
        parts.append(file_part(L, h, info, skip, hashes, cols))
        L.trh_log_close(h)
    return merge(*parts)


def reduce_cells(dvs, tks, cs, ss, ns):
    """Sum and count of outcomes per (device, prompt text key, model column)."""
    if not tks:
        return (np.empty(0, np.uint64), np.empty(0, np.uint64), np.empty(0, np.int32), np.empty(0),
                np.empty(0, np.int64))
    dv, tk, c, s, n = (np.concatenate(x) for x in (dvs, tks, cs, ss, ns))
    order = np.lexsort((dv, c, tk))
    dv, tk, c, s, n = dv[order], tk[order], c[order], s[order], n[order]
    start = np.ones(len(tk), bool)
    start[1:] = (tk[1:] != tk[:-1]) | (c[1:] != c[:-1]) | (dv[1:] != dv[:-1])
    at = np.nonzero(start)[0]
    return (dv[at], tk[at], c[at], np.add.reduceat(s, at), np.add.reduceat(n, at))


def binom_sf(k, m, q):
    """P(X >= k) for X ~ Binomial(m, q), in log space (no scipy on the list)."""
    if k <= 0:
        return 1.0
    if q <= 0:
        return 0.0
    if q >= 1:
        return 1.0
    lq, l1q = math.log(q), math.log1p(-q)
    terms = [math.lgamma(m + 1) - math.lgamma(i + 1) - math.lgamma(m - i + 1) + i * lq + (m - i) * l1q
             for i in range(k, m + 1)]
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


def robust_z(z, limit):
    """Each device's z against the fleet's (median, 1.4826 MAD), and the
    Normal quantile of limit it must pass; all NaN when fewer than 3 devices
    have a z (no fleet to compare with)."""
    zj = z[np.isfinite(z)]
    if len(zj) < 3:
        return np.full_like(z, np.nan), float("inf")
    med = float(np.median(zj))
    mad = max(1.4826 * float(np.median(np.abs(zj - med))), 1e-6)
    return (z - med) / mad, normal_isf(limit)


def robust_votes(dv, tk, c, s, n, alpha, min_cells, ref=None):
    """--robust (issue 17, item 2): which devices' votes to keep, and why not.

    Cap: each device has one vote per (prompt, model) cell, its mean
    outcome there, so logging one prompt many times buys no weight (the
    per-device, per-region cap; a region is a prompt).

    Test 1, consensus of the other devices: a vote disagrees when it is
    >= 0.5 from the mean of the other devices' votes on its cell, counted on
    cells with >= 3 other voters. Honest users differ, so honest devices
    disagree at some rate q: the median of the devices' own rates (devices
    with >= min_cells comparable cells). Why the median: with an honest
    majority it is an honest device's rate, where the pooled rate grows
    with the attackers (a 20 % flipping fleet doubled it and hid them). A
    device whose k disagreements of m have P(Binomial(m, q) >= k) <
    alpha / devices is dropped (Bonferroni: at most alpha false drops per
    batch, if disagreements were independent at rate q). Then again without
    the dropped devices' votes, until a round drops no one: an attacker's
    votes pull the consensus honest devices are compared with and raise q,
    so the first round hides the attackers it did not catch.

    Test 2, the benchmark references (ref: the --reference pack's
    predicted correctness p for each vote's cell, from references scored
    offline that no device can touch): an honest 0/1 outcome is
    Bernoulli(p) if p were right, so x = |v - p| has mean 2p(1-p) and
    variance p(1-p)(1 - 4p(1-p)); a device's z = (sum x - sum mean) /
    sqrt(sum var) over its cells. p is an estimate, so honest z's are not
    N(0, 1): they are compared with the fleet's own, robustly (the
    median and 1.4826 x MAD of the devices' z), and a device beyond the
    one-sided Normal quantile of alpha / devices is dropped. Why both: an
    attacker on prompts no one else logs escapes test 1; one that lies
    only where the references are unsure escapes test 2 (a flip of a
    p = 0.5 outcome is invisible to it). Cells and devices with no
    comparison are kept: the rule cannot judge them.
    A dropped device is dropped whole. Returns the votes kept and the
    report (each dropped device, the test(s) and its numbers)."""
    v = s / n
    key = np.stack([tk, c.astype(np.uint64)], 1)
    _, cell = np.unique(key, axis=0, return_inverse=True)
    cell = cell.ravel()
    devs, dev_of = np.unique(dv, return_inverse=True)
    nd = len(devs)
    limit = alpha / max(1, nd)
    why = {}
    alive = np.ones(len(v), bool)
    qs = []
    # Rounds: the consensus and q again without the devices already dropped
    # (their votes pulled the consensus the others were compared with, and
    # raised q), until a round drops no one.
    for rnd in range(1, 11):
        w = alive.astype(float)
        vsum = np.bincount(cell, weights=v * w)
        cnt = np.bincount(cell, weights=w)
        others = cnt[cell] - 1
        comp = alive & (others >= 3)
        loo = (vsum[cell] - v) / np.maximum(others, 1)
        dis = comp & (np.abs(v - loo) >= 0.5)
        m = np.bincount(dev_of, weights=comp, minlength=nd).astype(np.int64)
        k = np.bincount(dev_of, weights=dis, minlength=nd).astype(np.int64)
        judged = m >= min_cells
        rates = k[judged] / np.maximum(m[judged], 1)
        # The median rate; never 0 (one honest slip would then be "impossible").
        q = float(np.median(rates)) if judged.any() else 0.0
        q = max(q, 0.5 / max(1, int(m[judged].sum())) if judged.any() else 0.0)
        qs.append(q)
        new = []
        for i in np.nonzero(judged & (k > q * m))[0]:
            if int(i) in why:
                continue
            p = binom_sf(int(k[i]), int(m[i]), q)
            if p < limit:
                why[int(i)] = {"consensus": dict(comparable=int(m[i]), disagreed=int(k[i]), p=p, q=round(q, 6),
                                                 round=rnd)}
                new.append(int(i))
        if not new:
            break
        alive &= ~np.isin(dev_of, np.array(new, np.int64))
    q = qs[0]
    zr = None
    if ref is not None:
        pr = np.clip(ref, 0.02, 0.98)
        ok = np.isfinite(ref)
        x = np.abs(v - pr)
        mu = 2 * pr * (1 - pr)
        var = pr * (1 - pr) * (1 - 4 * pr * (1 - pr))
        cnt = np.bincount(dev_of, weights=ok, minlength=nd)
        sx = np.bincount(dev_of, weights=np.where(ok, x - mu, 0), minlength=nd)
        sv = np.bincount(dev_of, weights=np.where(ok, var, 0), minlength=nd)
        z = np.where(cnt >= min_cells, sx / np.sqrt(np.maximum(sv, 1e-12)), np.nan)
        zr, crit = robust_z(z, limit)
        for i in np.nonzero(np.isfinite(zr) & (zr > crit))[0]:
            why.setdefault(int(i), {})["references"] = dict(cells=int(cnt[i]), z=round(float(z[i]), 3),
                                                           robust_z=round(float(zr[i]), 3),
                                                           threshold=round(crit, 3))
        # Test 3, the direction (same references, same chance level): per
        # device and model, r = sum(v - p) over its cells, whose variance
        # is sum p(1-p) if p were right; T = sum over its models of r^2 /
        # var (chi-square with one degree per model under that null), as
        # z = (T - df) / sqrt(2 df). Why: an attacker who forges by model
        # (1 for the on-device model, 0 for every cloud one) sits about as
        # far from p as an honest 0/1 outcome does (test 2 does not see
        # it: measured, 0 of 50 llmrouter forgers dropped by it at 20 %),
        # but always on the same side for a model, where an honest
        # device's residuals cancel. Compared with the fleet's own z's as
        # in test 2 (p is an estimate: honest T's are not chi-square).
        models, model_of = np.unique(c, return_inverse=True)
        dm = dev_of.astype(np.int64) * len(models) + model_of.ravel()
        nb = nd * len(models)
        rs = np.bincount(dm, weights=np.where(ok, v - pr, 0), minlength=nb)
        rv = np.bincount(dm, weights=np.where(ok, pr * (1 - pr), 0), minlength=nb)
        rn = np.bincount(dm, weights=ok, minlength=nb)
        has = rn > 0
        chi = np.where(has, rs * rs / np.maximum(rv, 1e-12), 0).reshape(nd, -1).sum(1)
        df = has.reshape(nd, -1).sum(1)
        z3 = np.where(cnt >= min_cells, (chi - df) / np.sqrt(2 * np.maximum(df, 1)), np.nan)
        zr3, crit = robust_z(z3, limit)
        for i in np.nonzero(np.isfinite(zr3) & (zr3 > crit))[0]:
            why.setdefault(int(i), {})["direction"] = dict(cells=int(cnt[i]), models=int(df[i]),
                                                          chi2=round(float(chi[i]), 3),
                                                          robust_z=round(float(zr3[i]), 3),
                                                          threshold=round(crit, 3))
    flagged = sorted(why)
    bad = np.isin(dev_of, np.array(flagged, np.int64))
    report = dict(rule="one vote per device and (prompt, model); a device is dropped when its disagreements "
                       "with the other devices' mean (>= 0.5 away, cells with >= 3 others) exceed chance: "
                       "P(Binomial(m, q) >= k) < alpha / devices, q the median device's rate; repeated without the "
                       "dropped devices until a round drops no one"
                       + ("; or when its distance from the reference pack's estimates, as a z score, is "
                          "beyond the fleet's median by more than the Normal quantile of alpha / devices "
                          "in units of 1.4826 MAD; or when its signed per-model residuals from those "
                          "estimates (chi-square over its models, as a z score) are, by the same measure"
                          if ref is not None else ""),
                  alpha=alpha, min_cells=min_cells, devices=int(nd), q=round(q, 6),
                  q_rounds=[round(x, 6) for x in qs],
                  records_capped=int(n.sum() - len(n)),
                  dropped_devices=[dict(device=int(devs[i]), **why[i]) for i in flagged],
                  dropped_votes=int(bad.sum()), dropped_records=int(n[bad].sum()))
    return ~bad, report


def normal_isf(p):
    """The z with P(N(0,1) > z) = p (bisection on erfc; no scipy)."""
    lo, hi = -10.0, 40.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if 0.5 * math.erfc(mid / math.sqrt(2)) > p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def reference_estimates(lib_path, pack_path, key, tk, c, names, texts):
    """Each vote's cell as the --reference pack predicts it: the prompt's
    kept text routed by the binding (the device's own code), the model's
    predicted correctness; NaN for a prompt without usable text."""
    try:
        pk = trpy.Library(lib_path).open_pack(pack_path, [key])
    except trpy.Error as e:
        raise RuntimeError("--reference: %s" % e)
    col = {mm["name"]: j for j, mm in enumerate(pk.models)}
    at = np.array([col.get(nm, -1) for nm in names])
    uk = np.unique(tk)
    have = [k for k in uk.tolist() if texts.get(k)]
    pred = {}
    for part in chunks(have, 4096):
        try:
            P = pk.route([texts[k] for k in part]).predicted
        except trpy.Error:
            continue  # a prompt the library refuses: no comparison for this chunk
        pred.update(zip(part, P))
    pk.close()
    out = np.full(len(tk), np.nan)
    for i, (k, ci) in enumerate(zip(tk.tolist(), c.tolist())):
        if k in pred and at[ci] >= 0:
            out[i] = pred[k][at[ci]]
    return out


def merge(*parts):
    """Partials -> one partial (a step of the tree reduction)."""
    cells = [p["cells"] for p in parts]
    out = dict(cells=reduce_cells(*[[c[i] for c in cells if len(c[0])] for i in range(5)]), texts={},
               stats={}, refused=[])
    for p in parts:
        out["texts"].update(p["texts"])
        for k, v in p["stats"].items():
            out["stats"][k] = out["stats"].get(k, 0) + v
        out["refused"] += p["refused"]
    return out


def read_models(path):
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))
    head = rows[0]
    if "name" not in head:
        raise RuntimeError("%s: no name column" % path)
    return [r[head.index("name")] for r in rows[1:] if r], rows


def read_base(d, names):
    """A dataset's prompts (lines kept as they are) and scores, by model order."""
    prompts = [l.rstrip("\n") for l in open(os.path.join(d, "prompts.jsonl"), encoding="utf-8") if l.strip()]
    with open(os.path.join(d, "correctness.csv"), newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))
    at = [rows[0].index(n) for n in names]
    scores = {r[0]: [r[j] for j in at] for r in rows[1:] if r}
    out = []
    for l in prompts:
        p = json.loads(l)
        out.append((str(p["id"]), p["text"], l, scores[str(p["id"])]))
    return out


def write_dataset(d, keys, texts, cells_by_prompt, names, model_rows, force, base=None):
    os.makedirs(d, exist_ok=True)
    for f in ("prompts.jsonl", "correctness.csv", "models.csv"):
        if os.path.exists(os.path.join(d, f)) and not force:
            raise RuntimeError("%s exists; not overwriting it (use --force)" % os.path.join(d, f))
    m = len(names)
    filled = 0
    with open(os.path.join(d, "prompts.jsonl"), "w", encoding="utf-8") as fp, \
            open(os.path.join(d, "correctness.csv"), "w", newline="", encoding="utf-8") as fc, \
            open(os.path.join(d, "fleet_counts.csv"), "w", newline="", encoding="utf-8") as fn:
        wc, wn = csv.writer(fc, lineterminator="\n"), csv.writer(fn, lineterminator="\n")
        wc.writerow(["id"] + names)
        wn.writerow(["id"] + names)
        for pid, text, line, row in base or []:
            cnt = [""] * m
            for c, s, n in cells_by_prompt.get(text, []):
                if row[c] == "":
                    row[c], cnt[c] = "%.6g" % (s / n), str(n)
                    filled += 1
            fp.write(line + "\n")
            wc.writerow([pid] + row)
            wn.writerow([pid] + cnt)
        for k in keys:
            pid = "fleet-%016x" % k
            # No task: a device does not know it. build gives each such
            # prompt the nearest named task (tools/DATASET.md); a task
            # "fleet" made one task map cluster of every topic.
            fp.write(json.dumps({"id": pid, "text": texts[k], "split": "train"},
                                ensure_ascii=False) + "\n")
            row, cnt = [""] * m, [""] * m
            for c, s, n in cells_by_prompt[k]:
                row[c] = "%.6g" % (s / n)
                cnt[c] = str(n)
            wc.writerow([pid] + row)
            wn.writerow([pid] + cnt)
    with open(os.path.join(d, "models.csv"), "w", newline="", encoding="utf-8") as f:
        csv.writer(f, lineterminator="\n").writerows(model_rows)
    return filled


def expand(args):
    paths = []
    for a in args:
        if os.path.isdir(a):
            paths += sorted(os.path.join(a, f) for f in os.listdir(a) if f.endswith(".trl"))
        else:
            paths.append(a)
    return paths


def chunks(xs, k):
    return [xs[i:i + k] for i in range(0, len(xs), k)]


def main(argv):
    ap = argparse.ArgumentParser(prog="fleet_step.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("logs", nargs="+")
    group = ap.add_mutually_exclusive_group(required=True)
    group.add_argument("--models")
    group.add_argument("--base")
    ap.add_argument("--out", required=True)
    ap.add_argument("--device-keys")
    ap.add_argument("--allow-unauthenticated", action="store_true")
    ap.add_argument("--scheduler")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--shard-prompts", type=int, default=1000000)
    ap.add_argument("--chunk-files", type=int, default=0,
                    help="logs per task (default: about 4 tasks per worker thread)")
    ap.add_argument("--lib", default=LIB_DEFAULT)
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--robust", action="store_true",
                    help="one vote per device and cell; drop devices that disagree with the others "
                         "beyond chance (see the top of this file)")
    ap.add_argument("--reference", metavar="PACK",
                    help="--robust also compares each vote with PACK's estimate (the pack built "
                         "from the benchmark references, verified with --key)")
    ap.add_argument("--key", help="public key (PEM) of --reference's pack")
    ap.add_argument("--alpha", type=float, default=0.001)
    ap.add_argument("--min-cells", type=int, default=10)
    a = ap.parse_args(argv)
    if a.allow_unauthenticated and not a.device_keys:
        ap.error("--allow-unauthenticated goes with --device-keys")
    if a.reference and not (a.key and a.robust):
        ap.error("--reference goes with --robust and --key")
    if a.workers < 1 or a.shard_prompts < 1 or a.chunk_files < 0:
        ap.error("--workers and --shard-prompts must be >= 1")
    from dask.distributed import Client, LocalCluster

    t0 = time.time()
    lib_path = os.path.abspath(a.lib)
    keys_path = os.path.abspath(a.device_keys) if a.device_keys else None
    L = host_lib(lib_path)
    # The driver's own key handle holds the batch's replay state (step 2);
    # loading it first fails a bad key file before any work.
    keys = load_keys(L, keys_path, a.allow_unauthenticated) if keys_path else None
    names, model_rows = read_models(a.models or os.path.join(a.base, "models.csv"))
    base = read_base(a.base, names) if a.base else None
    hashes_all = np.array([L.trh_fnv1a64(n.encode(), len(n.encode())) for n in names], np.uint64)
    order = np.argsort(hashes_all)
    hashes, cols = hashes_all[order], order.astype(np.int32)
    paths = [os.path.abspath(p) for p in expand(a.logs)]
    if not paths:
        ap.error("no log given")

    cluster = None
    if a.scheduler:
        client = Client(a.scheduler)
    else:
        cluster = LocalCluster(n_workers=a.workers, threads_per_worker=1, processes=True,
                               dashboard_address=None)
        client = Client(cluster)
    try:
        # The tasks go by reference to this module, which every worker gets
        # (ctypes types cannot travel by value).
        client.upload_file(os.path.join(HERE, "tinyroute_py.py"))
        client.upload_file(os.path.abspath(__file__))
        sys.path.insert(0, HERE)
        import fleet_step as mod
        threads = max(1, sum(client.nthreads().values()))
        per = a.chunk_files or max(1, -(-len(paths) // (4 * threads)))
        t1 = time.time()
        # 1 and 3: read, authenticate, aggregate; the partials stay on the workers
        read = client.map(mod.read_chunk, chunks(paths, per), lib_path=lib_path, keys_path=keys_path,
                          allow_v1=a.allow_unauthenticated, hashes=hashes, cols=cols, pure=False)
        ver = [r for h in client.gather(client.map(mod.heads, read, pure=False)) for r in h]
        t2 = time.time()
        # 2. the replay rule, in batch order, on the driver's key handle
        refused, skips = [], {}
        for r in ver:
            if not r["ok"]:
                refused.append({"path": r["path"], "error": r["error"]})
                continue
            skip = ctypes.c_uint32(0)
            err = ctypes.create_string_buffer(ERR_BYTES)
            if keys and L.trh_keys_take(keys, r["path"].encode(), r["version"], r["device"], r["recorded"],
                                        r["n"], ctypes.byref(skip), err, ERR_BYTES):
                refused.append({"path": r["path"], "error": err.value.decode(errors="replace")})
                continue
            skips[r["path"]] = skip.value
        # the accepted partials, then a tree of merges on the workers
        fs = [client.submit(mod.select, f, skips, lib_path=lib_path, keys_path=keys_path,
                            allow_v1=a.allow_unauthenticated, hashes=hashes, cols=cols, pure=False)
              for f in read]
        while len(fs) > 1:
            fs = [client.submit(mod.merge, *g, pure=False) for g in chunks(fs, 8)]
        total = fs[0].result() if fs else merge()
        t3 = time.time()
    finally:
        t_close = time.time()
        client.close()
        if cluster:
            cluster.close()
        t_close = time.time() - t_close
    refused += total["refused"]
    for r in refused:
        print("fleet_step: " + r["error"], file=sys.stderr)

    # 4. write
    dv, tk, c, s, n = total["cells"]
    dropped = None
    if a.robust:
        ref = (reference_estimates(lib_path, a.reference, a.key, tk, c, names, total["texts"])
               if a.reference else None)
        keep, dropped = robust_votes(dv, tk, c, s, n, a.alpha, a.min_cells, ref)
        # One vote per device and cell: its mean outcome there, weight 1.
        dv, tk, c, s, n = dv[keep], tk[keep], c[keep], s[keep] / n[keep], np.ones(int(keep.sum()), np.int64)
    # Over devices: per (prompt, model) the sum and count.
    _, tk, c, s, n = reduce_cells([np.zeros(len(tk), np.uint64)], [tk], [c], [s], [n])
    by_prompt, bad_text = {}, 0
    texts = {}
    for k, raw in total["texts"].items():
        try:
            t = raw.decode("utf-8")
        except UnicodeDecodeError:
            t = ""
        if t.strip():
            texts[k] = t
        else:
            bad_text += 1
    for k, ci, si, ni in zip(tk.tolist(), c.tolist(), s.tolist(), n.tolist()):
        if k in texts:
            by_prompt.setdefault(k, []).append((ci, si, ni))
    # Fleet prompts that are base prompts go into the base rows (by text).
    by_text = {}
    if base:
        base_texts = {t for _, t, _, _ in base}
        for k in list(by_prompt):
            if texts[k] in base_texts:
                by_text[texts[k]] = by_prompt.pop(k)
    keys_sorted = sorted(by_prompt)
    shards = chunks(keys_sorted, a.shard_prompts) or [[]]
    if len(shards) == 1:
        filled = write_dataset(a.out, shards[0], texts, {**by_prompt, **by_text}, names, model_rows,
                               a.force, base)
        dirs = [a.out]
    else:
        dirs = [os.path.join(a.out, "shard-%04d" % i) for i in range(len(shards))]
        filled = 0
        for i, (d, sh) in enumerate(zip(dirs, shards)):  # the base goes with the first shard
            filled += write_dataset(d, sh, texts, {**by_prompt, **by_text}, names, model_rows, a.force,
                                    base if i == 0 else None)
    t4 = time.time()
    st = total["stats"]
    summary = dict(logs=len(paths), accepted=len(paths) - len(refused), refused=refused,
                   records=st.get("records", 0), used=st.get("used", 0),
                   skipped=dict(taken_before=st.get("taken_before", 0), no_text=st.get("no_text", 0),
                                no_outcome=st.get("no_outcome", 0),
                                unknown_model=st.get("unknown_model", 0), unusable_text=bad_text),
                   prompts=len(keys_sorted), cells=int(sum(len(v) for v in by_prompt.values())),
                   base_prompts=len(base) if base else 0, base_cells_filled=filled,
                   base_prompts_observed=len(by_text),
                   datasets=dirs, workers=threads,
                   seconds=dict(start=round(t1 - t0, 3), read=round(t2 - t1, 3),
                                merge=round(t3 - t2, 3), shutdown=round(t_close, 3),
                                write=round(t4 - t3 - t_close, 3),
                                total=round(t4 - t0, 3)))
    summary["records_per_s"] = round(summary["records"] / max(t3 - t1, 1e-9))
    if dropped is not None:
        summary["robust"] = dropped
    print(json.dumps(summary))
    if keys:
        L.trh_keys_free(keys)
    return 1 if refused else 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except RuntimeError as e:
        print("fleet_step: %s" % e, file=sys.stderr)
        sys.exit(1)
