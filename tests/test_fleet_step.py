#!/usr/bin/python3
"""tools/fleet_step.py on a dask.distributed LocalCluster (issue 17):

  1. a batch of device logs written by the device library (gen_fleet_logs)
     with a tampered, a truncated, a replayed, an unknown-device and a
     revoked-device log among them: exit 1, each refused by name with its
     reason, the good ones used;
  2. the dataset it writes against an independent reading of the good logs
     (a parser written here from core/OUTCOME_LOG.md, version 2, with the
     MAC checked by Python's hmac): every (prompt text, model) cell is the
     mean of the outcomes logged for it, with its count; nothing else;
  3. the same batch on 1 worker, and on a scheduler given by address
     (--scheduler, a LocalCluster this test starts), gives the same files;
     --shard-prompts splits
     the prompts over complete datasets whose union is the unsharded one;
  4. --base: the benchmark first, unchanged, then the fleet's prompts;
     `tinyroute build` reads the result and writes a pack;
  5. a bad key file stops the step (exit 1) before any work;
  6. --robust on a fleet of 10 devices meeting on 40 prompts, 10 % noise in
     honest outcomes, 0 / 2 / 3 devices reporting 1 - outcome: exactly the
     flipping devices are dropped and reported; each cell is the mean of the
     kept devices' own means on it, its count their number;
  7. --reference: the pack's estimates as a second test;
  8. the direction test (robust_votes on synthetic votes): forgers who
     escape tests 1 and 2 are dropped by it, no honest device is.
Usage: test_fleet_step.py HOSTLIB GEN_FLEET_LOGS PACK PUB DATASET CLI EMBEDDER KEY
"""
import csv
import hashlib
import hmac
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile

from tr_ref import Checks

HOSTLIB, GEN, PACK, PUB, DATA, CLI, EMB, KEY = sys.argv[1:9]
TOOL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools", "fleet_step.py")
check = Checks()
W = tempfile.mkdtemp(prefix="tr-fleet-")
LOGS = os.path.join(W, "logs")
os.makedirs(LOGS)


def run(*args, ok=None):
    r = subprocess.run([sys.executable, TOOL, "--lib", HOSTLIB] + [str(a) for a in args],
                       capture_output=True, text=True)
    if ok is not None and r.returncode != ok:
        sys.exit("fleet_step %s: exit %d\n%s" % (" ".join(map(str, args)), r.returncode, r.stderr[-3000:]))
    return r


subprocess.run([GEN, PACK, PUB, DATA, LOGS, "6", "400", "5"], check=True, capture_output=True)


def s_ok(r):
    """A summary on stdout and its datasets written."""
    try:
        return all(os.path.exists(os.path.join(d, "correctness.csv")) for d in json.loads(r.stdout)["datasets"])
    except ValueError:
        return False
keys = open(os.path.join(LOGS, "device-keys")).read().splitlines()
key_of = {int(l.split()[0]): bytes.fromhex(l.split()[1]) for l in keys}


def read_v2(path, key):
    """core/OUTCOME_LOG.md version 2, text logs: (header, [(id, model_hash, flags, outcome, text)])."""
    b = open(path, "rb").read()
    ver, hb, rb, flags, dim, tmax, n = struct.unpack_from("<7I", b, 8)
    recorded = struct.unpack_from("<Q", b, 40)[0]
    dev = struct.unpack_from("<Q", b, 128)[0]
    assert b[:8] == b"TROUTLOG" and ver == 2 and hb == 160 and flags == 4 and len(b) == 160 + n * rb + 32
    assert hmac.compare_digest(hmac.new(key, b[:-32], hashlib.sha256).digest(), b[-32:])
    recs = []
    for i in range(n):
        r = b[160 + i * rb:160 + (i + 1) * rb]
        rid, _tag, mh = struct.unpack_from("<3Q", r, 0)
        rf = struct.unpack_from("<H", r, 38)[0]
        out = struct.unpack_from("<f", r, 56)[0]
        tl = struct.unpack_from("<H", r, 60)[0]
        recs.append((rid, mh, rf, out, r[64:64 + tl] if rf & 4 else None))
    return dict(device=dev, recorded=recorded, n=n), recs


# 1. The batch: dev-000000..5 are good; then the bad ones.
good = sorted(f for f in os.listdir(LOGS) if f.endswith(".trl"))
check(len(good) == 6, "6 device logs generated")
raw = open(os.path.join(LOGS, good[1]), "rb").read()
t = bytearray(raw)
t[160 + 7 * 320 + 64] ^= 0x01  # a bit of record 7's text: still a well-formed log
open(os.path.join(LOGS, "x1-tampered.trl"), "wb").write(bytes(t))
open(os.path.join(LOGS, "x2-truncated.trl"), "wb").write(raw[:-1])
shutil.copy(os.path.join(LOGS, good[0]), os.path.join(LOGS, "x3-replayed.trl"))
# A later export of device 1000 whose ids 391..400 overlap dev-000000's
# (1..400): accepted, only ids 401..410 taken. Written by `route --log-out`.
prompts_all = [json.loads(l)["text"] for l in open(os.path.join(DATA, "prompts.jsonl"))]
OVER = os.path.join(LOGS, "x4-overlap.trl")
subprocess.run([CLI, "route", "--pack", PACK, "--key", PUB, "--log-out", OVER, "--log-flags", "text",
                "--outcomes", DATA, "--log-device", "1000:%s:391" % key_of[1000].hex()],
               input="\n".join([t for t in prompts_all if "\n" not in t and "\r" not in t][:20]) + "\n",
               capture_output=True, text=True, check=True)
# Two devices leave the key file: 1004 unknown, 1005 revoked.
KEYS = os.path.join(W, "keys")
open(KEYS, "w").write("\n".join(l + (" revoked" if l.startswith("1005 ") else "")
                                for l in keys if not l.startswith("1004 ")) + "\n")
OUT = os.path.join(W, "out2")
r = run("--models", os.path.join(DATA, "models.csv"), "--out", OUT, "--device-keys", KEYS, "--workers", 2,
        LOGS)
check(r.returncode == 1 and s_ok(r), "refused logs: exit 1, the dataset written (got %d)" % r.returncode)
s = json.loads(r.stdout)
why = {os.path.basename(x["path"]): x["error"] for x in s["refused"]}
want = {"x1-tampered.trl": "MAC does not verify", "x2-truncated.trl": "length does not match",
        "x3-replayed.trl": "replay", "dev-000004.trl": "device 1004 is not in the device keys",
        "dev-000005.trl": "device 1005 is revoked"}
check(set(why) == set(want), "exactly these refused: %s" % sorted(why))
for f, w in want.items():
    check(w in why.get(f, "") and f in why.get(f, ""), "%s: %s" % (f, why.get(f)))
    check(any(f in l and w in l for l in r.stderr.splitlines()), "%s refused on stderr, by name" % f)
check(s["logs"] == 10 and s["accepted"] == 5, "10 logs, 5 accepted")
check(s["skipped"]["taken_before"] == 10, "the overlapping export: its 10 ids already taken are skipped")

# 2. Against an independent reading of dev-000000..3.
names = [row["name"] for row in csv.DictReader(open(os.path.join(DATA, "models.csv")))]


def fnv(b):
    h = 0xcbf29ce484222325
    for c in b:
        h = ((h ^ c) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


col = {fnv(n.encode()): j for j, n in enumerate(names)}
cells, n_rec, n_used = {}, 0, 0
for f, dev in [(g, 1000 + int(g[4:10])) for g in good[:4]] + [("x4-overlap.trl", 1000)]:
    h, recs = read_v2(os.path.join(LOGS, f), key_of[dev])
    n_rec += h["n"]
    for rid, mh, rf, out, text in recs:
        if f.startswith("x4") and rid <= 400:
            continue
        if rf & 16 and text is not None and mh in col:
            c = cells.setdefault((text.decode(), col[mh]), [0.0, 0])
            c[0] += out
            c[1] += 1
            n_used += 1
check(s["records"] == n_rec and s["used"] == n_used, "records %d/%d, used %d/%d"
      % (s["records"], n_rec, s["used"], n_used))
prompts = [json.loads(l) for l in open(os.path.join(OUT, "prompts.jsonl"))]
text_of = {p["id"]: p["text"] for p in prompts}
rows = list(csv.reader(open(os.path.join(OUT, "correctness.csv"))))
cnts = {r[0]: r[1:] for r in list(csv.reader(open(os.path.join(OUT, "fleet_counts.csv"))))[1:]}
check(rows[0] == ["id"] + names, "correctness.csv: a column per model, in models.csv order")
got, bad = {}, 0
for r in rows[1:]:
    for j, v in enumerate(r[1:]):
        if v != "":
            got[(text_of[r[0]], j)] = (float(v), int(cnts[r[0]][j]))
for k, (sm, n) in cells.items():
    g = got.get(k)
    bad += g is None or abs(g[0] - sm / n) > 1e-5 or g[1] != n
check(bad == 0 and len(got) == len(cells) and len(cells) > 0,
      "every (prompt, model) cell = the mean of its logged outcomes, with its count (%d cells, %d wrong)"
      % (len(cells), bad))
check(len(prompts) == len({t for t, _ in cells}) and s["prompts"] == len(prompts),
      "one prompt per distinct logged text (%d)" % len(prompts))
check(open(os.path.join(OUT, "models.csv")).read() == open(os.path.join(DATA, "models.csv")).read(),
      "models.csv copied")

# 3. One worker: the same files. Sharded: the same cells.
OUT1 = os.path.join(W, "out1")
r1 = run("--models", os.path.join(DATA, "models.csv"), "--out", OUT1, "--device-keys", KEYS, "--workers", 1,
         LOGS, ok=1)
check(json.loads(r1.stdout)["workers"] == 1 and
      all(open(os.path.join(OUT, f)).read() == open(os.path.join(OUT1, f)).read()
          for f in ("prompts.jsonl", "correctness.csv", "fleet_counts.csv")), "1 worker: identical output")
from dask.distributed import LocalCluster  # noqa: E402 (only this part needs it)

# Threads in this process: a process cluster would spawn workers that re-run this
# script from the top (no __main__ guard here).
with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, protocol="tcp://",
                  dashboard_address=None) as lc:
    OUTA = os.path.join(W, "outa")
    ra = run("--models", os.path.join(DATA, "models.csv"), "--out", OUTA, "--device-keys", KEYS,
             "--scheduler", lc.scheduler_address, LOGS, ok=1)
check(json.loads(ra.stdout)["workers"] == 2 and
      all(open(os.path.join(OUT, f)).read() == open(os.path.join(OUTA, f)).read()
          for f in ("prompts.jsonl", "correctness.csv", "fleet_counts.csv")),
      "--scheduler ADDR (2 workers started elsewhere): identical output")
OUTS = os.path.join(W, "outs")
rs = run("--models", os.path.join(DATA, "models.csv"), "--out", OUTS, "--device-keys", KEYS,
         "--shard-prompts", 100, *[os.path.join(LOGS, g) for g in good[:4]], OVER, ok=0)
dirs = json.loads(rs.stdout)["datasets"]
union = []
for d in dirs:
    union += list(csv.reader(open(os.path.join(d, "correctness.csv"))))[1:]
check(len(dirs) == math.ceil(len(prompts) / 100) and sorted(union) == sorted(rows[1:]),
      "%d shards of <= 100 prompts, their rows = the unsharded rows" % len(dirs))

# 4. --base, then build.
OUTB = os.path.join(W, "outb")
rb = run("--base", DATA, "--out", OUTB, "--device-keys", KEYS, *[os.path.join(LOGS, g) for g in good[:4]],
         ok=0)
sb = json.loads(rb.stdout)
base_lines = [l for l in open(os.path.join(DATA, "prompts.jsonl")) if l.strip()]
out_lines = open(os.path.join(OUTB, "prompts.jsonl")).readlines()
check(out_lines[:len(base_lines)] == base_lines and len(out_lines) == len(base_lines) + sb["prompts"],
      "--base: the benchmark's prompts first, unchanged, then %d fleet prompts" % sb["prompts"])
PK = os.path.join(W, "fleet.trp")
b = subprocess.run([CLI, "build", "--data", OUTB, "--embedder", EMB, "--key", KEY, "--k", "20", "--out", PK],
                   capture_output=True, text=True)
check(b.returncode == 0 and os.path.exists(PK), "tinyroute build reads the fleet dataset: %s"
      % (b.stdout.splitlines()[-1:] if b.returncode == 0 else b.stderr[-300:]))

# 5. A bad key file.
open(KEYS + ".bad", "w").write("1000 abc\n")
r = run("--models", os.path.join(DATA, "models.csv"), "--out", os.path.join(W, "o5"), "--device-keys",
        KEYS + ".bad", LOGS)
check(r.returncode == 1 and "keys.bad:1:" in r.stderr and not os.path.exists(os.path.join(W, "o5")),
      "a bad key file: exit 1 with its line, nothing written")

# 6. --robust.
for flipped in (0, 2, 3):
    P = os.path.join(W, "p%d" % flipped)
    os.makedirs(P)
    subprocess.run([GEN, PACK, PUB, DATA, P, "10", "300", "3", "40", "10", str(flipped)], check=True,
                   capture_output=True)
    OUTR = os.path.join(W, "outr%d" % flipped)
    rr = run("--models", os.path.join(DATA, "models.csv"), "--out", OUTR, "--device-keys",
             os.path.join(P, "device-keys"), "--robust", "--workers", 1, P, ok=0)
    rep = json.loads(rr.stdout)["robust"]
    gone = sorted(d["device"] for d in rep["dropped_devices"])
    check(gone == list(range(1000, 1000 + flipped)),
          "%d flipping devices: dropped %s (q %.3f)" % (flipped, gone, rep["q"]))
    check(rep["dropped_records"] == 300 * flipped, "their 300 records each reported dropped")
    pk = {int(l.split()[0]): bytes.fromhex(l.split()[1]) for l in open(os.path.join(P, "device-keys"))}
    votes = {}
    for f in sorted(os.listdir(P)):
        if not f.endswith(".trl"):
            continue
        dev = 1000 + int(f[4:10])
        per = {}
        for rid, mh, rf, out, text in read_v2(os.path.join(P, f), pk[dev])[1]:
            if rf & 16 and text is not None and mh in col:
                per.setdefault((text.decode(), col[mh]), []).append(out)
        if dev not in gone:
            for k, o in per.items():
                votes.setdefault(k, []).append(sum(o) / len(o))
    ptext = {json.loads(l)["id"]: json.loads(l)["text"] for l in open(os.path.join(OUTR, "prompts.jsonl"))}
    rrows = list(csv.reader(open(os.path.join(OUTR, "correctness.csv"))))[1:]
    rcnt = {r[0]: r[1:] for r in list(csv.reader(open(os.path.join(OUTR, "fleet_counts.csv"))))[1:]}
    seen, wrong = 0, 0
    for r in rrows:
        for j, v in enumerate(r[1:]):
            if v != "":
                seen += 1
                vs = votes.get((ptext[r[0]], j), [])
                wrong += not vs or abs(float(v) - sum(vs) / len(vs)) > 1e-5 or int(rcnt[r[0]][j]) != len(vs)
    check(seen == len(votes) and wrong == 0 and seen > 0,
          "%d flipped: each of %d cells = mean of the kept devices' means, count = devices (%d wrong)"
          % (flipped, seen, wrong))
# 7. --robust --reference PACK: votes also compared with the pack's estimates
# (routed by tools/tinyroute_py.py); it needs --robust and --key.
r = run("--models", os.path.join(DATA, "models.csv"), "--out", os.path.join(W, "o7"), "--reference", PACK,
        "--key", PUB, P)
check(r.returncode == 2 and "--reference" in r.stderr, "--reference without --robust: usage error")
rr = run("--models", os.path.join(DATA, "models.csv"), "--out", os.path.join(W, "o7"), "--device-keys",
         os.path.join(P, "device-keys"), "--robust", "--reference", PACK, "--key", PUB, "--workers", 1, P, ok=0)
rep = json.loads(rr.stdout)["robust"]
gone = sorted(d["device"] for d in rep["dropped_devices"])
check("reference pack" in rep["rule"] and set(range(1000, 1003)) <= set(gone) and
      all(d["consensus"]["disagreed"] > 0 for d in rep["dropped_devices"] if "consensus" in d),
      "--reference: the 3 flipping devices still dropped (%s), the rule names both tests" % gone)
rr = run("--models", os.path.join(DATA, "models.csv"), "--out", os.path.join(W, "o8"), "--device-keys",
         os.path.join(P, "device-keys"), "--robust", "--reference", PACK + ".missing", "--key", PUB,
         "--workers", 1, P)
check(rr.returncode == 1 and ".missing" in rr.stderr, "a missing reference pack: exit 1, named")
# 8. The direction test (robust_votes called directly, synthetic votes): 40
# honest devices and 6 forgers (1 for the on-device model 0, 0 for every
# cloud model), each on prompts of its own (test 1 cannot compare them), the
# reference estimates p near 0.5 so that |v - p| of a forged vote is what an
# honest 0/1 outcome gives (test 2 cannot see them): only test 3, the signed
# per-model residuals, drops the forgers, and no honest device.
sys.path.insert(0, os.path.dirname(TOOL))
import fleet_step  # noqa: E402
rng = __import__("numpy").random.default_rng(17)
np_ = __import__("numpy")
dv, tk, cc, ss, pp = [], [], [], [], []
for d in range(46):
    forger = d >= 40
    for j in range(40):
        mdl = int(rng.integers(0, 3)) if d % 2 else int(rng.integers(3, 9))  # on-device-heavy or cloud users
        p = float(rng.uniform(0.4, 0.6))
        out = (1.0 if mdl == 0 else 0.0) if forger else float(rng.random() < p)
        dv.append(d), tk.append(1000 * d + j), cc.append(mdl), ss.append(out), pp.append(p)
keep, rep8 = fleet_step.robust_votes(np_.array(dv), np_.array(tk, np_.uint64), np_.array(cc), np_.array(ss),
                                     np_.ones(len(dv)), 0.001, 10, np_.array(pp))
why8 = {d["device"]: d for d in rep8["dropped_devices"]}
check(set(why8) == set(range(40, 46)) and all(set(w) == {"device", "direction"} for w in why8.values()),
      "direction test: exactly the 6 forgers dropped, by it alone (%s)" % sorted(why8))
shutil.rmtree(W)
check.finish()
