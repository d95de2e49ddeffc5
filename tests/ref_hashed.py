#!/usr/bin/python3
"""The hashed n-gram embedder (platform/tr_format.h, TR_EMB_HASHED) against numpy:
  1. the fit: `tinyroute embedder --hashed` learns the same singular
     directions as an exact SVD (scipy's ARPACK, to machine precision) of
     the same tf-idf matrix (features from tests/tr_ref.py's own reading of
     the spec);
  2. the device: a pack built with the table embeds prompts (reference
     prompts and hand-made ones: Chinese, accents, emoji, case, digits) as a
     float64 re-implementation does, and host and core rows are identical;
  3. bad options are refused.
Usage: ref_hashed.py CLI SIGNING_KEY PUBLIC_KEY DATASET_DIR WORKDIR"""
import json
import subprocess
import sys
from collections import Counter

import numpy as np
from scipy.sparse import csr_matrix  # python3-scipy: a dependency of python3-sklearn
from scipy.sparse.linalg import svds

from tr_ref import Checks, hashed_features, parse_embedder, parse_pack, ref_embed, run_cli

CLI, KEY, PUB, DATA, WORK = sys.argv[1:6]
check = Checks()
ROWS, DIM = 4096, 32
table = WORK + "/hashed.bin"
subprocess.run([CLI, "embedder", "--hashed", "--prompts", DATA + "/prompts.jsonl", "--rows",
                str(ROWS), "--dim", str(DIM), "--out", table], check=True, capture_output=True)
e = parse_embedder(open(table, "rb").read())
check(e["hashed"] and e["rows"] == ROWS and e["vectors"].shape == (ROWS, DIM) and e["pc"] is None,
      "a hashed table of %d rows x %d" % (ROWS, DIM))

# 1. The fit.
texts = [json.loads(l)["text"] for l in open(DATA + "/prompts.jsonl") if l.strip()]
X = np.zeros((len(texts), ROWS))
for i, t in enumerate(texts):
    for r, c in Counter(hashed_features(t, ROWS)).items():
        X[i, r] = c
df = (X > 0).sum(0)
idf = np.log((1 + len(texts)) / (1 + df)) + 1
A = X * idf
A /= np.maximum(np.linalg.norm(A, axis=1, keepdims=True), 1e-300)
# The top DIM right singular vectors by ARPACK on the sparse matrix, to
# machine precision (tol 0); numpy's dense SVD took 67 s with Debian's
# reference LAPACK.
_, sv, Vt = svds(csr_matrix(A), k=DIM, tol=0, v0=np.ones(min(A.shape)))
V = Vt[np.argsort(-sv)].T                        # ROWS x DIM, largest first
ours = e["weights"][:, None] * e["vectors"] / idf[:, None]  # dequantized, idf removed
check(np.all(ours[df == 0] == 0), "rows no prompt has are zero")
ours /= np.linalg.norm(ours, axis=0, keepdims=True)
M = np.abs(ours.T @ V)
top = [M[j, j] for j in range(10)]
check(min(top) >= 0.99, "top 10 singular directions match the exact SVD's: |cos| >= %.4f" % min(top))
overlap = (M ** 2).sum() / DIM
check(overlap >= 0.95, "the %d-d subspaces overlap %.4f (1 = same)" % (DIM, overlap))

# 2. The device.
pack = WORK + "/hashed.trp"
subprocess.run([CLI, "build", "--data", DATA, "--embedder", table, "--key", KEY, "--method", "knn",
                "--out", pack, "--force"], check=True, capture_output=True)
p = parse_pack(pack)
check(p["embedder_name"] == "hashed-ngram-4k-d32-pc" and p["emb"]["pc"] is not None,
      "the pack names its embedder: " + p["embedder_name"])
prompts = [json.loads(l) for l in open(DATA + "/prompts.jsonl") if l.strip()]
flat = lambda t: t.replace("\r", " ").replace("\n", " ")  # one per line; same features
train = [flat(x["text"]) for x in prompts if x.get("split") != "test"]
base = ["--pack", pack, "--key", PUB]
emb = [np.array(json.loads(l)) for l in run_cli(CLI, ["embed"] + base, train)]
same = sum(int((a == r).all()) for a, r in zip(emb, p["rows"]))
check(len(emb) == p["n"] and same == p["n"], "host/core bit-identical rows: %d of %d" % (same, p["n"]))
hand = ["北京是中国的首都吗？", "Ça coûte combien, s'il vous plaît?", "WHAT is 2+2", "what IS 2+2",
        "emoji 🙂🙂 and ÅNGSTRÖM", "x", "a" * 300, "日本語とEnglishの混在テキスト 12345",
        "supercalifragilisticexpialidocious antidisestablishmentarianism"]
test = [flat(x["text"]) for x in prompts if x.get("split") == "test"][:100] + hand
qs = [np.array(json.loads(l)) for l in run_cli(CLI, ["embed"] + base, test)]
total = equal = worst = 0
for t, q in zip(test, qs):
    r = ref_embed(p["emb"], t)
    check(r is not None and q.any(), "every prompt with a word embeds: %r" % t[:40])
    if r is None:
        continue
    total += q.size
    equal += int((r == q).sum())
    worst = max(worst, int(np.abs(r - q).max()))
check(total > 0 and equal / total >= 0.995, "embedder agreement %d/%d components" % (equal, total))
check(worst <= 1, "embedder max component difference %d" % worst)
check((qs[-7] == qs[-6]).all(), "case folds: 'WHAT is' and 'what IS' embed alike")

# 3. Bad options.
for args, want in ((["--rows", "1000"], "power of two"), (["--dim", "0"], "--dim"),
                   (["--wink", "x.json"], "no --wink"), ([], None)):
    cmd = [CLI, "embedder", "--hashed", "--out", WORK + "/bad.bin"] + args
    if want is not None:
        cmd += ["--prompts", DATA + "/prompts.jsonl"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    check(r.returncode == 2 and (want or "--prompts") in r.stderr,
          "embedder --hashed %s is refused: %s" % (" ".join(args) or "without --prompts",
                                                   r.stderr.strip()))
bad = WORK + "/bad-utf8.jsonl"
open(bad, "wb").write(b'{"text": "ok"}\n{"text": "\xff\xfe not UTF-8"}\n')
r = subprocess.run([CLI, "embedder", "--hashed", "--prompts", bad, "--out", WORK + "/bad.bin"],
                   capture_output=True, text=True)
check(r.returncode == 1 and "UTF-8" in r.stderr, "a prompt that is not UTF-8 is named: " +
      r.stderr.strip())
check.finish()
