#!/usr/bin/python3
"""The outcome log end to end, read back by an independent parser written
from core/OUTCOME_LOG.md:

  1. route --log-out: held-out prompts routed through the device API, the
     dataset's score of the chosen model attached as the observed outcome;
     the ring keeps the newest records and counts the drops; each record
     holds the route's decision, the embedding `embed` prints, and the
     embedder fingerprint of the pack's table;
  2. eval --log: realised quality, mean cost, cloud share, per-model counts,
     and per lambda the cost, cloud share, support and quality estimate,
     against a recomputation from the records and `route` at that lambda;
  3. hash and text: SipHash-2-4 under the given key, text cut on a UTF-8
     boundary; nothing of the prompt in the default log;
  4. build --add-log (--no-log-guard: these sections check the logs' rows
     themselves; the guard that judges them is tests/test_log_guard.py):
     references grow by the records with an embedding and
     an outcome, scores known only for the logged model; a logged prompt
     routed with k=1 now sees its own outcome; hash-only logs add nothing;
     a log from another embedder table is refused;
  5. authenticated logs (version 2, --log-device): the layout and an HMAC
     recomputed here with Python's hmac; build --add-log --device-keys
     refuses a tampered byte, a truncated file, a replay, an unknown, a
     revoked and a wrong-key device and a version 1 log, each by name, uses
     the good logs of the same batch (the references grow by exactly their
     records) and exits 1 (README: a batch with a part failed); an overlapping export gives only its new ids;
     eval --log refuses the same way.
Usage: test_outcome_log.py CLI PACK PUB KEY EMBEDDER DATASET_DIR WORKDIR
"""
import json
import math
import os
import struct
import subprocess
import sys

import numpy as np

from tr_ref import Checks, parse_pack

CLI, PACK, PUB, KEY, EMB, DATA, WORK = sys.argv[1:8]
check = Checks()
LAMBDAS = [0.0, 0.1, 1.0]


def cli(*args, stdin=None, ok=True):
    r = subprocess.run([CLI] + [str(a) for a in args], input=stdin, capture_output=True, text=True)
    if ok and r.returncode != 0:
        sys.exit("%s failed: %s" % (" ".join(map(str, args)), r.stderr))
    return r


def fnv1a64(b):
    h = 0xcbf29ce484222325
    for c in b:
        h = ((h ^ c) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def siphash24(key, m):
    M = 0xFFFFFFFFFFFFFFFF
    rotl = lambda x, b: ((x << b) | (x >> (64 - b))) & M
    k0, k1 = struct.unpack("<QQ", key)
    v = [0x736f6d6570736575 ^ k0, 0x646f72616e646f6d ^ k1, 0x6c7967656e657261 ^ k0, 0x7465646279746573 ^ k1]

    def rnd():
        v[0] = (v[0] + v[1]) & M; v[1] = rotl(v[1], 13) ^ v[0]; v[0] = rotl(v[0], 32)
        v[2] = (v[2] + v[3]) & M; v[3] = rotl(v[3], 16) ^ v[2]
        v[0] = (v[0] + v[3]) & M; v[3] = rotl(v[3], 21) ^ v[0]
        v[2] = (v[2] + v[1]) & M; v[1] = rotl(v[1], 17) ^ v[2]; v[2] = rotl(v[2], 32)

    n = len(m)
    tail = m[n - n % 8:] + b"\0" * (7 - n % 8) + bytes([n & 0xff])
    for blk in [m[i:i + 8] for i in range(0, n - n % 8, 8)] + [tail]:
        w = struct.unpack("<Q", blk)[0]
        v[3] ^= w
        rnd(); rnd()
        v[0] ^= w
    v[2] ^= 0xff
    for _ in range(4):
        rnd()
    return v[0] ^ v[1] ^ v[2] ^ v[3]


def read_log(path):
    """core/OUTCOME_LOG.md, versions 1 and 2 (device fields, records at 160, MAC)."""
    b = open(path, "rb").read()
    assert b[:8] == b"TROUTLOG"
    ver, hb, rb, flags, dim, tmax, n, cap, recorded, dropped, fp = struct.unpack_from("<8I3Q", b, 8)
    h = dict(version=ver, header=hb, record_bytes=rb, flags=flags, dim=dim, text_max=tmax, n=n,
             capacity=cap, recorded=recorded, dropped=dropped, fp=fp,
             embedder=b[64:96].rstrip(b"\0").decode(), pack_hash=b[96:128], length=len(b))
    if ver == 2:
        dev, first, auth, macb = struct.unpack_from("<QQII", b, 128)
        h.update(device=dev, first_id=first, auth=auth, mac_bytes=macb, reserved=b[152:160],
                 mac=b[-32:], signed=b[:-32])
    recs = []
    for i in range(n):
        r = b[hb + i * rb: hb + (i + 1) * rb]
        rid, tag, mh, ph, model, where, method, rf = struct.unpack_from("<4QIBBH", r, 0)
        cost, cn, lam, util, out = struct.unpack_from("<5f", r, 40)
        tlen, why = struct.unpack_from("<HB", r, 60)
        rec = dict(id=rid, tag=tag, model_hash=mh, prompt_hash=ph, model=model, where=where,
                   flags=rf, cost=cost, lam=lam, utility=util, outcome=out, emb=None, text=None)
        off = 64
        if flags & 1:
            if rf & 1:
                rec["emb"] = np.frombuffer(r, np.int8, dim, off).astype(np.int64)
            off += (dim + 7) // 8 * 8
        if flags & 4 and rf & 4:
            rec["text"] = r[off:off + tlen]
        recs.append(rec)
    return h, recs


def embedder_fp(pack_path):
    """The fingerprint of core/OUTCOME_LOG.md over the pack's embedder section."""
    b = open(pack_path, "rb").read()
    ns = struct.unpack_from("<I", b, 84)[0]
    for i in range(ns):
        t, _f, off, _l, _s, _c = struct.unpack_from("<IIQQII", b, 128 + 32 * i)
        if t == 7:
            e = b[off:]
    nw, dim, _nb, maxw = struct.unpack_from("<IIII", e, 8)
    scale, sif_a, flags = struct.unpack_from("<III", e, 24)  # the floats' bits
    o_b, o_wo, o_c, o_w, o_v, o_pc = struct.unpack_from("<6I", e, 36)
    nchars = struct.unpack_from("<I", e, o_wo + 4 * nw)[0]
    parts = [struct.pack("<7I", nw, dim, maxw, flags & 1, scale, sif_a, nchars),
             e[o_wo:o_wo + 4 * (nw + 1)], e[o_c:o_c + nchars], e[o_w:o_w + 4 * nw],
             e[o_v:o_v + nw * dim]]
    if flags & 1:
        parts.append(e[o_pc:o_pc + 4 * dim])
    return fnv1a64(b"".join(parts))


def route(pack, prompts, *opts):
    r = cli("route", "--pack", pack, "--key", PUB, *opts, stdin="\n".join(prompts) + "\n")
    return [json.loads(l) for l in r.stdout.splitlines()]


# The held-out prompts (one per line, so stdin can carry them) and their scores.
prompts, first_id = [], {}
for line in open(os.path.join(DATA, "prompts.jsonl")):
    p = json.loads(line)
    first_id.setdefault(p["text"], p["id"])  # --outcomes looks prompts up by text: first wins
    if p.get("split") == "test" and "\n" not in p["text"] and "\r" not in p["text"]:
        prompts.append(p)
prompts = prompts[:160]
texts = [p["text"] for p in prompts]
rows = list(open(os.path.join(DATA, "correctness.csv")))
cols = rows[0].strip().split(",")
score = {}
for line in rows[1:]:
    f = line.rstrip("\n").split(",")
    score[f[0]] = {cols[i]: (float(f[i]) if f[i] != "" else math.nan) for i in range(1, len(cols))}
pk = parse_pack(PACK)
names = [m["name"] for m in pk["models"]]
by_hash = {fnv1a64(n.encode()): n for n in names}

# 1. The log of 160 routes in a ring of 120.
LOG = os.path.join(WORK, "log.bin")
decided = route(PACK, texts, "--lambda", "0.1", "--log-out", LOG, "--outcomes", DATA,
                "--log-capacity", 120)
h, recs = read_log(LOG)
check(h["version"] == 1 and h["header"] == 128 and h["flags"] == 1, "header: version 1, embeddings")
check(h["n"] == 120 and h["recorded"] == 160 and h["dropped"] == 40 and h["capacity"] == 120,
      "ring: 160 recorded, newest 120 kept, 40 dropped")
check(h["length"] == 128 + 120 * h["record_bytes"] and h["record_bytes"] == 64 + 104,
      "length = header + records; record = 64 + dim rounded to 8")
check(h["embedder"] == pk["embedder_name"] and h["dim"] == pk["dim"], "embedder name and dim")
fp = embedder_fp(PACK)
check(h["fp"] == fp, "embedder fingerprint = the documented hash of the pack's table")
check([r["id"] for r in recs] == list(range(41, 161)), "oldest first, ids 41..160")
kept = list(range(40, 160))  # prompt index of each record
embs = [json.loads(l) for l in cli("embed", "--pack", PACK, "--key", PUB,
                                   stdin="\n".join(texts[i] for i in kept) + "\n").stdout.splitlines()]
ok_model = ok_out = ok_emb = ok_cost = 0
for r, i, e in zip(recs, kept, embs):
    d = decided[i]
    ok_model += by_hash.get(r["model_hash"]) == d["model"] and names[r["model"]] == d["model"]
    ok_cost += abs(r["cost"] - d["cost"]) < 1e-4 and abs(r["lam"] - 0.1) < 1e-7 and \
        r["where"] == (d["where"] == "cloud")
    s = score[first_id[texts[i]]][d["model"]]
    has = bool(r["flags"] & 16)
    ok_out += (math.isnan(s) and math.isnan(r["outcome"]) and not has) or (r["outcome"] == s and has)
    ok_emb += r["emb"] is not None and list(r["emb"]) == e
check(ok_model == 120, "logged model = routed model (index and name hash): %d/120" % ok_model)
check(ok_cost == 120, "logged cost, lambda, where: %d/120" % ok_cost)
check(ok_out == 120, "outcome = the dataset score of the chosen model, NaN if unknown: %d/120" % ok_out)
check(ok_emb == 120, "logged embedding = `embed`: %d/120" % ok_emb)
raw = open(LOG, "rb").read()
check(all(t[:40].encode() not in raw for t in texts), "default log holds no prompt text")

# 2. eval --log against a recomputation.
ev = json.loads(cli("eval", "--pack", PACK, "--key", PUB, "--log", LOG, "--json", "--lambda",
                    ",".join(map(str, LAMBDAS))).stdout)
with_out = [r for r in recs if r["flags"] & 16]
q = float(np.mean([r["outcome"] for r in with_out]))
check(ev["records"] == 120 and ev["with_outcome"] == len(with_out) and ev["dropped"] == 40,
      "eval: record counts")
check(abs(ev["realised_quality"] - q) < 1e-5, "realised quality %s vs %s" % (ev["realised_quality"], q))
check(abs(ev["mean_cost"] - np.mean([r["cost"] for r in recs])) < 1e-3, "mean cost")
check(abs(ev["cloud_share"] - np.mean([r["where"] for r in recs])) < 1e-6, "cloud share")
counts = {n: 0 for n in names}
for r in recs:
    counts[by_hash[r["model_hash"]]] += 1
check(all(ev["models"][n]["count"] == counts[n] for n in names), "per-model counts")
emb_recs = [(r, i) for r, i in zip(recs, kept) if r["emb"] is not None]
check(ev["reroutable"] == len(emb_recs), "re-routable = records with an embedding")
for lam, pt in zip(LAMBDAS, ev["deferral"]):
    again = route(PACK, [texts[i] for _, i in emb_recs], "--lambda", lam)
    match = [r["outcome"] for (r, _), a in zip(emb_recs, again)
             if r["flags"] & 16 and a["model"] == by_hash[r["model_hash"]]]
    cost = np.mean([a["cost"] for a in again])
    cloud = np.mean([a["where"] == "cloud" for a in again])
    good = pt["lambda"] == lam and pt["supported"] == len(match) and \
        abs(pt["mean_cost"] - cost) < 1e-3 and abs(pt["cloud_share"] - cloud) < 1e-6
    if match:
        se = np.std(match, ddof=1) / math.sqrt(len(match)) if len(match) > 1 else 0.0
        good = good and abs(pt["quality_estimate"] - np.mean(match)) < 1e-5 and abs(pt["stderr"] - se) < 1e-5
    check(good, "deferral point lambda=%g: %s vs supported %d, quality %s, cost %.4f, cloud %.4f"
          % (lam, pt, len(match), np.mean(match) if match else None, cost, cloud))
    if lam == 0.1:  # the logged lambda: the same pack makes the same choices
        check(pt["supported"] == sum(1 for r, _ in emb_recs if r["flags"] & 16),
              "at the logged lambda every record with an outcome supports the estimate")
txt = cli("eval", "--pack", PACK, "--key", PUB, "--log", LOG).stdout
check("realised quality" in txt and "estimate" in txt and "supported" in txt, "eval --log text report")

# 3. Hash and text.
HLOG = os.path.join(WORK, "hash.bin")
key = bytes(range(16))
long_text = "a" + "é" * 200  # 401 bytes: byte 256 is inside an é, cut before it
cli("route", "--pack", PACK, "--key", PUB, "--log-out", HLOG, "--log-flags", "hash,text",
    "--log-key", key.hex(), texts[0], long_text)
hh, hrecs = read_log(HLOG)
check(hh["flags"] == 6 and hh["record_bytes"] == 64 + 256 and hh["text_max"] == 256,
      "hash,text: 64 + 256-byte records, no embedding")
check(hrecs[0]["prompt_hash"] == siphash24(key, texts[0].encode()) and
      hrecs[1]["prompt_hash"] == siphash24(key, long_text.encode()), "SipHash-2-4 under the key")
check(hrecs[0]["text"] == texts[0].encode()[:256] and bool(hrecs[0]["flags"] & 8) == (len(texts[0].encode()) > 256),
      "short text kept")
check(hrecs[1]["text"] == ("a" + "é" * 127).encode() and hrecs[1]["flags"] & 8, "long text cut at 256 bytes, flagged")
r = cli("route", "--pack", PACK, "--key", PUB, "--log-out", HLOG + "x", "--log-flags", "hash", texts[0], ok=False)
check(r.returncode == 1 and "log-key" in r.stderr and not os.path.exists(HLOG + "x"), "hash without a key is refused")
ev = json.loads(cli("eval", "--pack", PACK, "--key", PUB, "--log", HLOG, "--json").stdout)
check("deferral_skipped" in ev and ev["records"] == 2, "eval --log: no embeddings, no deferral estimate")

# 4. build --add-log.
usable = [(r, i) for r, i in emb_recs if r["flags"] & 16]
NEW = os.path.join(WORK, "new.trp")
b = cli("build", "--data", DATA, "--embedder", EMB, "--key", KEY, "--no-log-guard", "--k", 100, "--method", "knn", "--out", NEW,
        "--add-log", LOG, "--add-log", HLOG)
check("added %d references" % len(usable) in b.stdout and "all 2 records skipped" in b.stdout,
      "build reports what it added and skipped: " + " / ".join(b.stdout.splitlines()[:2]))
npk = parse_pack(NEW)
check(npk["n"] == pk["n"] + len(usable), "references grew by %d (%d -> %d)" % (len(usable), pk["n"], npk["n"]))
check(np.array_equal(npk["rows"][:pk["n"]], pk["rows"]), "the dataset's references are unchanged")
# The same logs through the do-no-harm guard (tools/log_guard.h): judged on
# the dataset's rows, reported, and the pack has them or not as it says.
bg = cli("build", "--data", DATA, "--embedder", EMB, "--key", KEY, "--k", 100, "--method", "knn",
         "--out", NEW + ".g", "--json", "--add-log", LOG, "--add-log", HLOG)
jg = json.loads(bg.stdout)
g = jg["build"].get("log_guard", {})
check(g.get("judged") is True and g.get("logged_rows") == len(usable) and "log guard:" in bg.stderr
      and jg["n_refs"] == pk["n"] + (len(usable) if g.get("logs_kept") else 0),
      "build --add-log with the guard: %d logged rows judged (p %s), kept %s, N %d"
      % (g.get("logged_rows", -1), g.get("p"), g.get("logs_kept"), jg["n_refs"]))
tail_ok = 0
for j, (r, _) in enumerate(usable):
    ref = pk["n"] + j
    m = names.index(by_hash[r["model_hash"]])
    valid = npk["valid"][:, ref]
    tail_ok += np.array_equal(npk["rows"][ref], r["emb"]) and valid[m] and valid.sum() == 1 and \
        npk["correct"][m, ref] == (r["outcome"] == 1.0)
check(tail_ok == len(usable), "appended rows: the logged embedding, only the logged model known (%d/%d)"
      % (tail_ok, len(usable)))
# A logged prompt is now its own nearest reference: with k=1 its logged
# model's prediction is the logged outcome, whatever the old pack said.
picked = {}
for r, i in usable:
    picked.setdefault(r["outcome"], (r, i))
flips = 0
for out, (r, i) in sorted(picked.items()):
    name = by_hash[r["model_hash"]]
    # Without the kNN prior (--prior-strength 0) the neighbour's label alone.
    old = route(PACK, [texts[i]], "--k", 1, "--exact", "--prior-strength", 0)[0]
    new = route(NEW, [texts[i]], "--k", 1, "--exact", "--prior-strength", 0)[0]
    check(new["nearest_distance"] < 1e-6 and new["predicted"][name] == out,
          "k=1: %s predicted %s for a prompt logged with outcome %s (old pack: %s)"
          % (name, new["predicted"][name], out, old["predicted"][name]))
    if out == 0.0:
        check(new["model"] != name, "a logged failure steers k=1 routing away from %s" % name)
    # With the pack's prior strength a: that label shrunk toward the
    # model's prior, (outcome + a * prior) / (1 + a).
    a = npk["prior_strength"]
    prior = npk["models"][names.index(name)]["prior"]
    shrunk = route(NEW, [texts[i]], "--k", 1, "--exact")[0]
    check(abs(shrunk["predicted"][name] - (out + a * prior) / (1 + a)) < 1e-6,
          "k=1, a=%g: %s predicted %s = (%s + a * prior %s) / (1 + a)"
          % (a, name, shrunk["predicted"][name], out, prior))
check(len(picked) == 2, "both outcomes (0 and 1) occur in the log")
r = cli("build", "--data", DATA, "--embedder", EMB, "--key", KEY, "--no-log-guard", "--split", "all",
        "--out", NEW + ".bad", "--add-log", LOG, ok=False)
check(r.returncode == 1 and "not comparable" in r.stderr and not os.path.exists(NEW + ".bad"),
      "a log from another embedder table (another pc) is refused")

# 5. Authenticated logs.
import hashlib
import hmac
import shutil

AUTH = os.path.join(WORK, "auth")
os.makedirs(AUTH, exist_ok=True)
kA, kB, kC = bytes(range(32)), bytes(range(100, 148)), bytes(range(200, 216))
KEYS = os.path.join(AUTH, "device-keys")
with open(KEYS, "w") as f:
    f.write("# fleet keys\n11 %s\n12 %s  # a 48-byte key\n\n13 %s revoked\n" % (kA.hex(), kB.hex(), kC.hex()))


def dlog(name, dev, key, lo, hi, first=None):
    path = os.path.join(AUTH, name)
    spec = "%d:%s" % (dev, key.hex()) + (":%d" % first if first else "")
    cli("route", "--pack", PACK, "--key", PUB, "--lambda", "0.1", "--log-out", path, "--outcomes", DATA,
        "--log-device", spec, stdin="\n".join(texts[lo:hi]) + "\n")
    return path


A1 = dlog("a1.trl", 11, kA, 0, 40)
A2 = dlog("a2.trl", 11, kA, 40, 80, 41)
A3 = dlog("a3-overlap.trl", 11, kA, 60, 100, 61)  # ids 61..100: 61..80 came with a2
B1 = dlog("b1.trl", 12, kB, 80, 120)
h1, r1 = read_log(A1)
check(h1["version"] == 2 and h1["header"] == 160 and h1["device"] == 11 and h1["first_id"] == 1 and
      h1["auth"] == 1 and h1["mac_bytes"] == 32 and h1["reserved"] == bytes(8),
      "version 2 header: device 11, first id 1, HMAC-SHA-256, 32-byte MAC, reserved zero")
check(h1["length"] == 160 + 40 * h1["record_bytes"] + 32, "length = 160 + records + 32")
check(hmac.compare_digest(hmac.new(kA, h1["signed"], hashlib.sha256).digest(), h1["mac"]),
      "MAC = HMAC-SHA-256 under the device key over every byte before it (Python's hmac)")
h2, r2 = read_log(A2)
check([r["id"] for r in r2] == list(range(41, 81)) and h2["recorded"] == 80 and h2["first_id"] == 41,
      "--log-device ...:41: ids continue at 41")
h3, r3 = read_log(A3)
hb1, rb1 = read_log(B1)

# The refusals, each its own file.
raw = open(B1, "rb").read()
TAMPER = os.path.join(AUTH, "tampered.trl")
t = bytearray(raw)
o = 160 + 5 * hb1["record_bytes"] + 56  # record 5's outcome
t[o:o + 4] = struct.pack("<f", 1.0 - rb1[5]["outcome"] if not math.isnan(rb1[5]["outcome"]) else 1.0)
open(TAMPER, "wb").write(bytes(t))
TRUNC = os.path.join(AUTH, "truncated.trl")
open(TRUNC, "wb").write(raw[:-10])
REPLAY = os.path.join(AUTH, "replayed.trl")
shutil.copy(A1, REPLAY)
UNKNOWN = dlog("unknown-device.trl", 99, kA, 0, 20)
REVOKED = dlog("revoked-device.trl", 13, kC, 0, 20)
WRONG = dlog("wrong-key.trl", 12, kA, 0, 20)
V1 = os.path.join(AUTH, "v1.trl")
shutil.copy(LOG, V1)


def usable_of(rs, above=0):
    return sum(1 for r in rs if r["emb"] is not None and r["flags"] & 16 and r["id"] > above)


AUTHED = os.path.join(WORK, "authed.trp")
b = cli("build", "--data", DATA, "--embedder", EMB, "--key", KEY, "--no-log-guard", "--k", 100, "--method", "knn", "--out", AUTHED,
        "--device-keys", KEYS, "--add-log", A1, "--add-log", A2, "--add-log", TAMPER, "--add-log", TRUNC,
        "--add-log", A3, "--add-log", REPLAY, "--add-log", UNKNOWN, "--add-log", REVOKED,
        "--add-log", WRONG, "--add-log", B1, "--add-log", V1, ok=False)
check(b.returncode == 1 and os.path.exists(AUTHED),
      "build with refused logs exits 1 and writes the pack (got %d: %s)" % (b.returncode, b.stderr[-300:]))
err = b.stderr
for path, why in [(TAMPER, "MAC does not verify"), (TRUNC, "length does not match"),
                  (REPLAY, "replay"), (UNKNOWN, "device 99 is not in the device keys"),
                  (REVOKED, "device 13 is revoked"), (WRONG, "MAC does not verify"),
                  (V1, "unauthenticated (version 1)")]:
    line = [l for l in err.splitlines() if path + ":" in l]
    # the reader's own refusals (truncated) name the fault, not the word
    check(len(line) == 1 and why in line[0] and ("refused" in line[0] or path == TRUNC),
          "%s refused by name: %s" % (os.path.basename(path), line))
check("7 of 11 logs refused" in err and "the pack was built from the others (exit 1)" in err,
      "build says how many were refused")
want = usable_of(r1) + usable_of(r2) + usable_of(r3, 80) + usable_of(rb1)
for path, n in [(A1, usable_of(r1)), (A2, usable_of(r2)), (A3, usable_of(r3, 80)), (B1, usable_of(rb1))]:
    check("%s: added %d references" % (path, n) in b.stdout, "%s used: %d references" % (os.path.basename(path), n))
check("a3-overlap.trl: its first 20 records were taken from an earlier log" in err and
      "20 taken from an earlier log" in b.stdout, "overlapping export: its 20 old ids skipped, the new ones used")
apk = parse_pack(AUTHED)
check(apk["n"] == pk["n"] + want and want > 0,
      "references grew by exactly the good logs' records: %d -> %d (want +%d)" % (pk["n"], apk["n"], want))
check(np.array_equal(apk["rows"][pk["n"]:pk["n"] + usable_of(r1)],
                     np.array([r["emb"] for r in r1 if r["emb"] is not None and r["flags"] & 16])),
      "the first good log's rows are its embeddings, in order")
# A batch in the other order: the replay is the later file.
b = cli("build", "--data", DATA, "--embedder", EMB, "--key", KEY, "--no-log-guard", "--k", 100, "--method", "knn", "--out", AUTHED + "2",
        "--device-keys", KEYS, "--add-log", A2, "--add-log", A1, ok=False)
check(b.returncode == 1 and A1 + ": refused as a replay" in b.stderr and "%s: added" % A2 in b.stdout,
      "ids running backwards: the later log is the replay")
b = cli("build", "--data", DATA, "--embedder", EMB, "--key", KEY, "--no-log-guard", "--k", 100, "--method", "knn", "--out", AUTHED + "3",
        "--device-keys", KEYS, "--allow-unauthenticated", "--add-log", V1, "--add-log", A1)
check(b.returncode == 0 and "%s: added" % V1 in b.stdout, "--allow-unauthenticated takes a version 1 log")
b = cli("build", "--data", DATA, "--embedder", EMB, "--key", KEY, "--no-log-guard", "--k", 100, "--method", "knn", "--out", AUTHED + "j",
        "--json", "--device-keys", KEYS, "--add-log", A1)
try:
    doc = json.loads(b.stdout)
except ValueError:
    doc = None
check(doc is not None and "%s: added" % A1 in b.stderr,
      "build --json --add-log: stdout is the one JSON document, the log's report on stderr")
BADKEYS = os.path.join(AUTH, "bad-keys")
open(BADKEYS, "w").write("11 %s\n11 %s\n" % (kA.hex(), kB.hex()))
b = cli("build", "--data", DATA, "--embedder", EMB, "--key", KEY, "--no-log-guard", "--k", 100, "--method", "knn", "--out", AUTHED + "4",
        "--device-keys", BADKEYS, "--add-log", A1, ok=False)
check(b.returncode == 1 and "device 11 is listed twice" in b.stderr and not os.path.exists(AUTHED + "4"),
      "a key file listing a device twice is refused before any work")
open(BADKEYS, "w").write("# 15 bytes: one short\n11 %s\n" % kA.hex()[:30])
b = cli("build", "--data", DATA, "--embedder", EMB, "--key", KEY, "--no-log-guard", "--k", 100, "--method", "knn", "--out", AUTHED + "4",
        "--device-keys", BADKEYS, "--add-log", A1, ok=False)
check(b.returncode == 1 and "bad-keys:2: key of device 11: 32 to 128 hex digits" in b.stderr,
      "a short key is refused with its line")

# eval --log with keys.
for path, code in [(A1, 0), (TAMPER, 1), (TRUNC, 1), (UNKNOWN, 1), (REVOKED, 1), (WRONG, 1), (V1, 1)]:
    e = cli("eval", "--pack", PACK, "--key", PUB, "--log", path, "--json", "--device-keys", KEYS, ok=False)
    good = e.returncode == code and (code == 1) == (path in e.stderr)
    if code == 0:
        good = good and json.loads(e.stdout)["records"] == 40
    else:
        good = good and e.stdout == ""
    check(good, "eval --log --device-keys %s: exit %d (%s)" % (os.path.basename(path), e.returncode, e.stderr.strip()[-120:]))
e = cli("eval", "--pack", PACK, "--key", PUB, "--log", A1, "--json")
check("MAC is not checked" in e.stderr and json.loads(e.stdout)["records"] == 40,
      "eval without --device-keys reads a version 2 log and says its MAC went unchecked")
r = cli("route", "--pack", PACK, "--key", PUB, "--log-out", os.path.join(AUTH, "x.trl"),
        "--log-device", "11:abcd", texts[0], ok=False)
check(r.returncode == 1 and "--log-device takes" in r.stderr, "--log-device with a short key is refused")
check.finish()
