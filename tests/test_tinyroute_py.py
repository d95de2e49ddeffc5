#!/usr/bin/python3
"""tools/tinyroute_py.py, the Python binding (issue 17 item 4), against the CLI
on the fixture: the same C code must give the same answers both ways.

  1. route: for 300 fixture prompts, at the pack's lambda and at 0 and 0.5,
     and with --k 10 and --method cluster where the pack has clusters: the
     chosen model, utility, nearest distance and every model's predicted
     correctness equal `tinyroute route`'s JSON (which prints %.6g);
  2. embed: the int8 embeddings equal `tinyroute embed`'s, byte for byte;
  3. refusals: a pack with one byte changed is refused with the library's
     error text, the same "TR_E_..." message `tinyroute route` prints; a pack
     under a key not trusted is refused; a missing key file names itself;
  4. logs: a sealed log written by `tinyroute route --log-out --log-device`
     reads back through the binding with the CLI's decisions (model name
     hashes, texts, outcomes from --outcomes, embeddings = the binding's
     own embed); one changed byte is refused by the MAC with the key file,
     a revoked device is refused, and the key handle's replay rule refuses
     the same log taken twice.
Usage: test_tinyroute_py.py HOSTLIB CLI PACK PUB PRIVATE.pem DATASET
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
import tinyroute_py as trpy  # noqa: E402
from tr_ref import Checks  # noqa: E402

HOSTLIB, CLI, PACK, PUB, KEY, DATA = sys.argv[1:7]
check = Checks()
W = tempfile.mkdtemp(prefix="tr-py-")
lib = trpy.Library(HOSTLIB)
prompts = [json.loads(l)["text"] for l in open(os.path.join(DATA, "prompts.jsonl"), encoding="utf-8")
           if l.strip()][:300]
INPUT = os.path.join(W, "prompts.jsonl")
with open(INPUT, "w", encoding="utf-8") as f:
    for i, t in enumerate(prompts):
        f.write(json.dumps({"id": i, "text": t}, ensure_ascii=False) + "\n")


def cli(*args, ok=0):
    r = subprocess.run([CLI] + [str(a) for a in args], capture_output=True, text=True)
    if ok is not None and r.returncode != ok:
        sys.exit("tinyroute %s: exit %d\n%s" % (" ".join(map(str, args)), r.returncode, r.stderr[-2000:]))
    return r


def g6(x):
    return float("%.6g" % x)


pack = lib.open_pack(PACK, [PUB])
names = [m["name"] for m in pack.models]
check(pack.n_models == len(names) > 1 and pack.dim > 0 and pack.n_refs > 0,
      "pack info: %d models, dim %d, %d references" % (pack.n_models, pack.dim, pack.n_refs))

# 1. route
info = cli("inspect", PACK).stdout
variants = [([], dict()), (["--lambda", "0"], dict(lam=0)), (["--lambda", "0.5"], dict(lam=0.5)),
            (["--k", "10"], dict(k=10))]
if "section clusters" in info:
    variants.append((["--method", "cluster"], dict(method="cluster")))
for flags, kw in variants:
    want = [json.loads(l) for l in cli("route", "--pack", PACK, "--key", PUB, "--format", "jsonl",
                                       "--input", INPUT, *flags).stdout.splitlines()]
    got = pack.route(prompts, **kw)
    bad = []
    for i, w in enumerate(want):
        j = int(w["index"])
        same = (j == int(got.model[i]) and w["model"] == got.names[i] and
                w["utility"] == g6(got.utility[i]) and
                all(w["predicted"][n] == g6(got.predicted[i][c]) for c, n in enumerate(names)))
        if "nearest_distance" in w:
            same = same and w["nearest_distance"] == g6(got.nearest[i])
        else:
            same = same and np.isnan(got.nearest[i])
        if not same:
            bad.append(i)
    check(len(want) == len(prompts) and not bad,
          "route %s: %d decisions equal the CLI's (model, utility, nearest, %d predictions each); "
          "differ at %s" % (" ".join(flags) or "(pack defaults)", len(want), len(names), bad[:5]))
check(len(set(pack.route(prompts, lam=0).model.tolist())) > 1,
      "the batch is not one answer for all (the comparison could fail)")

# 2. embed
want = np.array([json.loads(l) for l in cli("embed", "--pack", PACK, "--key", PUB, "--format", "jsonl",
                                             "--input", INPUT).stdout.splitlines()], np.int64)
got = pack.embed(prompts)
check(got.dtype == np.int8 and got.shape == (len(prompts), pack.dim) and np.array_equal(got, want)
      and np.abs(got).sum() > 0, "embed: %d x %d int8 equal `tinyroute embed`" % got.shape)
check(pack.embed([]).shape == (0, pack.dim) and len(pack.route([]).model) == 0, "an empty batch")
pack.close()

# 3. refusals
raw = bytearray(open(PACK, "rb").read())
raw[len(raw) // 2] ^= 0x01
BAD = os.path.join(W, "tampered.trp")
open(BAD, "wb").write(raw)
cli_err = cli("route", "--pack", BAD, "--key", PUB, "hello", ok=1).stderr
try:
    lib.open_pack(BAD, [PUB])
    msg = None
except trpy.Error as e:
    msg = str(e)
check(msg is not None and "TR_E_" in msg and BAD in msg and msg in cli_err,
      "a tampered pack is refused with the library's text: %r (CLI: %r)" % (msg, cli_err.strip()))
OTHER = os.path.join(W, "other")
cli("keygen", "--out", OTHER)
opub = [os.path.join(W, f) for f in os.listdir(W) if f.startswith("other") and f.endswith(".pub")]
if opub:
    try:
        lib.open_pack(PACK, [opub[0]])
        msg = None
    except trpy.Error as e:
        msg = str(e)
    check(msg is not None and "TR_E_" in msg, "a pack under an untrusted key is refused: %r" % msg)
    with lib.open_pack(PACK, [opub[0], PUB]) as p2:
        check(p2.n_models == len(names), "with the right key among several it opens")
else:
    check(False, "keygen wrote no .pub in %s: %s" % (W, os.listdir(W)))
try:
    lib.open_pack(PACK, [os.path.join(W, "nokey.pem")])
    msg = None
except trpy.Error as e:
    msg = str(e)
check(msg is not None and "nokey.pem" in msg, "a missing key file names itself: %r" % msg)

# 4. logs
LOG = os.path.join(W, "dev.trl")
KEYHEX = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
routed = [json.loads(l) for l in cli("route", "--pack", PACK, "--key", PUB, "--format", "jsonl", "--input",
                                     INPUT, "--log-out", LOG, "--log-flags", "embedding,text",
                                     "--outcomes", DATA, "--log-device", "7:" + KEYHEX).stdout.splitlines()]
KEYS = os.path.join(W, "device-keys")
open(KEYS, "w").write("7 %s\n" % KEYHEX)
keys = lib.load_keys(KEYS)
with lib.open_log(LOG, keys) as log:
    rec = log.records()
    check(log.info.version == 2 and log.info.device_id == 7 and len(log) == len(prompts),
          "sealed log: version 2, device 7, %d records" % len(log))
    hashes = [lib.fnv1a64(r["model"]) for r in routed]
    check(rec["model_hash"].tolist() == hashes, "each record's model = the CLI's decision")
    texts = [log.text(i) for i in range(len(log))]
    check(all(t is not None and p.encode("utf-8").startswith(t) and len(t) <= 256
              for t, p in zip(texts, prompts)), "each record's text = its prompt (first <= 256 bytes)")
    has = (rec["flags"] & trpy.REC_OUTCOME) != 0
    check(has.sum() > 0 and np.all(np.isin(rec["outcome"][has], [0.0, 1.0])),
          "outcomes from --outcomes on %d records, each 0 or 1" % has.sum())
    check(np.array_equal(log.embeddings(), lib.open_pack(PACK, [PUB]).embed(prompts)),
          "the logged embeddings = the binding's embed of the same prompts")
    skip = keys.take(LOG, log.info.version, log.info.device_id, log.info.recorded, len(log))
    check(skip == 0, "the first take of the log: nothing skipped")
    try:
        keys.take(LOG, log.info.version, log.info.device_id, log.info.recorded, len(log))
        msg = None
    except trpy.Error as e:
        msg = str(e)
    check(msg is not None and LOG in msg, "the same log taken again is refused (replay): %r" % msg)
lb = bytearray(open(LOG, "rb").read())
lb[len(lb) - 7] ^= 0x40
BADLOG = os.path.join(W, "tampered.trl")
open(BADLOG, "wb").write(lb)
for what, path, kf in (("a changed byte", BADLOG, KEYS), ("a revoked device", LOG, KEYS + ".rev")):
    open(KEYS + ".rev", "w").write("7 %s revoked\n" % KEYHEX)
    try:
        lib.open_log(path, lib.load_keys(kf))
        msg = None
    except trpy.Error as e:
        msg = str(e)
    check(msg is not None and path in msg, "%s: the log is refused: %r" % (what, msg))
keys.close()
shutil.rmtree(W)
check.finish()
