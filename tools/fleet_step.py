#!/usr/bin/python3
"""The fleet step (issue 17): many device outcome logs -> one dataset for
`tinyroute build`, on Dask distributed.

    fleet_step.py (--models MODELS.csv | --base DATASET) --out DIR [--device-keys FILE
                  [--allow-unauthenticated]] [--scheduler ADDR | --workers N]
                  [--shard-prompts N] [--chunk-files N] [--lib PATH] [--force]
                  LOG|DIR ...

Logs (files, or the *.trl files of a directory, in sorted order; the order of
the arguments is the batch order) are read by build/libtinyroute-host.so
(tools/hostlib.h: tools/logfile.c's reader and authentication behind a C ABI,
loaded with ctypes), never by a Python parser of the format:

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
    fleet_counts.csv (observations per cell; build ignores it), as in
    tools/DATASET.md. With more than --shard-prompts prompts (default
    1,000,000) DIR/shard-NNNN/ each hold a complete dataset of that many.
    With --base DATASET instead of --models: the base dataset (a benchmark:
    every model scored) comes first, unchanged, with its models.csv; a fleet
    prompt whose text is a base prompt's fills only that row's unknown
    cells (the benchmark's scores are the reference); the others follow as
    new prompts (split train). `build` needs a score for every model
    somewhere, which fleet logs alone rarely give: build from --base.

--robust (poisoning resistance, issue 17 item 2; see robust_votes): each
device has one vote per (prompt, model), its own mean outcome there, so
logging one prompt many times buys no weight; a device whose votes disagree
with the other devices' (>= 0.5 from their mean, on cells with >= 3 others)
more often than chance allows is dropped whole: P(Binomial(m, q) >= k) <
--alpha (0.001) / devices, q the fleet's disagreement rate, for devices with
m >= --min-cells (10) comparable cells. Honest users differ, so q is not 0;
an attacker flipping outcomes disagrees on nearly every cell. The summary's
"robust" object reports the rule, q, and each dropped device with its
counts. Cells are then the mean of the kept votes; fleet_counts.csv holds
the number of devices. It assumes an honest majority on each cell and that
devices are distinct (one key each; a key file is the fleet's identity).
Comparing with the benchmark's scores (--base) is not part of the rule yet.
The per-device votes travel to the driver: at fleet scale that table wants
a Dask dataframe group-by instead (not done).

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
LIB_DEFAULT = os.path.normpath(os.path.join(HERE, "..", "build", "libtinyroute-host.so"))
REC_OUTCOME = 16  # TR_LOG_REC_OUTCOME
ERR_BYTES = 1024


class LogInfo(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("flags", ctypes.c_uint32), ("dim", ctypes.c_uint32),
                ("n", ctypes.c_uint32), ("capacity", ctypes.c_uint32),
                ("record_bytes", ctypes.c_uint32), ("device_id", ctypes.c_uint64),
                ("first_id", ctypes.c_uint64), ("recorded", ctypes.c_uint64),
                ("dropped", ctypes.c_uint64), ("embedder_fp", ctypes.c_uint64)]


def _cache():
    # Per process (a worker keeps its library and key handles across tasks);
    # on sys because the task functions may be shipped by value.
    return sys.__dict__.setdefault("_tinyroute_fleet_cache", {})


def host_lib(path):
    c = _cache()
    if ("lib", path) not in c:
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
        L = ctypes.CDLL(path)
        vp, cp, sz, u32, u64 = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint32, ctypes.c_uint64
        L.trh_abi_version.restype = ctypes.c_int
        if L.trh_abi_version() != 1:
            raise RuntimeError("%s: host library ABI %d, this tool speaks 1" % (path, L.trh_abi_version()))
        L.trh_keys_load.argtypes = [cp, ctypes.c_int, cp, sz]
        L.trh_keys_load.restype = vp
        L.trh_keys_free.argtypes = [vp]
        L.trh_keys_take.argtypes = [vp, cp, u32, u64, u64, u32, ctypes.POINTER(u32), cp, sz]
        L.trh_log_open.argtypes = [cp, vp, ctypes.POINTER(LogInfo), cp, sz]
        L.trh_log_open.restype = vp
        L.trh_log_records.argtypes = [vp, u32, u32] + [vp] * 7
        L.trh_log_text.argtypes = [vp, u32, cp, sz]
        L.trh_log_close.argtypes = [vp]
        L.trh_fnv1a64.argtypes = [cp, sz]
        L.trh_fnv1a64.restype = u64
        c[("lib", path)] = L
    return c[("lib", path)]


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


def robust_votes(dv, tk, c, s, n, alpha, min_cells):
    """--robust (issue 17, item 2). Each device has one vote per (prompt, model)
    cell, its mean outcome there: a device cannot outweigh others by logging
    the same prompt many times (the per-device, per-region cap; a region is a
    prompt here). A vote disagrees when it is >= 0.5 from the mean of the
    other devices' votes on that cell, counted where >= 3 other devices
    voted. Honest devices disagree only as often as users really differ: q,
    the fleet's disagreement rate over all such comparisons (an honest
    majority keeps it near that). A device whose k disagreements out of m
    comparable cells (m >= min_cells) have P(Binomial(m, q) >= k) below
    alpha / devices (Bonferroni: at most alpha false flags in the fleet) is
    dropped whole. Returns the votes kept and a report of what was dropped."""
    v = s / n
    key = np.stack([tk, c.astype(np.uint64)], 1)
    _, cell, counts = np.unique(key, axis=0, return_inverse=True, return_counts=True)
    cell = cell.ravel()
    vsum = np.bincount(cell, weights=v)
    others = counts[cell] - 1
    comp = others >= 3
    loo = np.where(others > 0, (vsum[cell] - v) / np.maximum(others, 1), np.nan)
    dis = comp & (np.abs(v - loo) >= 0.5)
    devs, dev_of = np.unique(dv, return_inverse=True)
    m = np.bincount(dev_of, weights=comp).astype(np.int64)
    k = np.bincount(dev_of, weights=dis).astype(np.int64)
    q = float(k.sum() / m.sum()) if m.sum() else 0.0
    flagged = []
    limit = alpha / max(1, len(devs))
    for i in np.nonzero((m >= min_cells) & (k > q * m))[0]:
        p = binom_sf(int(k[i]), int(m[i]), q)
        if p < limit:
            flagged.append((int(devs[i]), int(m[i]), int(k[i]), p))
    bad = np.isin(dv, np.array([f[0] for f in flagged], np.uint64))
    report = dict(rule="one vote per device and (prompt, model); a device is dropped when its "
                       "disagreements with the other devices' mean (>= 0.5 away, cells with >= 3 others) "
                       "exceed chance: P(Binomial(m, q) >= k) < alpha / devices",
                  alpha=alpha, min_cells=min_cells, devices=int(len(devs)), q=round(q, 6),
                  records_capped=int(n.sum() - len(n)),
                  dropped_devices=[dict(device=d, comparable=mm, disagreed=kk, p=pp) for d, mm, kk, pp in flagged],
                  dropped_votes=int(bad.sum()), dropped_records=int(n[bad].sum()))
    return ~bad, report


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
            fp.write(json.dumps({"id": pid, "text": texts[k], "task": "fleet", "split": "train"},
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
    ap.add_argument("--alpha", type=float, default=0.001)
    ap.add_argument("--min-cells", type=int, default=10)
    a = ap.parse_args(argv)
    if a.allow_unauthenticated and not a.device_keys:
        ap.error("--allow-unauthenticated goes with --device-keys")
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
        keep, dropped = robust_votes(dv, tk, c, s, n, a.alpha, a.min_cells)
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
