#!/usr/bin/python3
"""The built-in embedder table against its source.

Checks the table that `tinyroute embedder` wrote: header and part layout,
that it holds exactly the most frequent words the device tokenizer can
produce, hash lookups done the way models/embed.c does them, SIF weights
against their formula, and the int8 vectors of sampled words against the
float vectors of the source JSON.
Usage: test_embedder_table.py TABLE WINK_JSON   (standard library only)
"""
import json
import math
import random
import re
import struct
import sys

GAMMA = 0.5772156649015329  # Euler-Mascheroni: H_V ~ ln V + gamma
SAMPLE = 200


class Checks:
    """Counts checks; finish() prints the closing 'N passed, M failed' line.
    (Not tr_ref.Checks: that module needs numpy, this test must not.)"""

    def __init__(self):
        self.passed = self.failed = 0

    def __call__(self, cond, what):
        if cond:
            self.passed += 1
        else:
            self.failed += 1
            print("FAIL:", what)
        return cond

    def finish(self):
        print("%d passed, %d failed" % (self.passed, self.failed))
        sys.exit(1 if self.failed else 0)


def fnv1a(b):
    h = 2166136261
    for c in b:
        h = ((h ^ c) * 16777619) & 0xFFFFFFFF
    return h


TOKEN = re.compile(rb"(?:[a-z0-9]|[\x80-\xff])+")


def tokenizer_word(b):
    """One maximal run of the device tokenizer, already lower-case, in
    valid UTF-8 (Python's decoder is strict), shorter than 64 bytes."""
    if not 0 < len(b) < 64 or not TOKEN.fullmatch(b):
        return False
    try:
        b.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def round_half_away(x):
    return int(math.floor(abs(x) + 0.5)) * (1 if x >= 0 else -1)


table_path, wink_path = sys.argv[1:3]
check = Checks()

# --- the table on its own ----------------------------------------------
t = open(table_path, "rb").read()
check(t[:8] == b"TREMB001", "magic")
nw, dim, nb, maxw = struct.unpack_from("<4I", t, 8)
scale, sif_a, flags = struct.unpack_from("<ffI", t, 24)
offs = struct.unpack_from("<6I", t, 36)
total = struct.unpack_from("<I", t, 60)[0]
o_b, o_wo, o_c, o_w, o_v, o_pc = offs
check(total == len(t) and total % 64 == 0, "total %d vs file %d, a multiple of 64" % (total, len(t)))
check(nw > 0 and dim > 0 and scale > 0 and sif_a > 0, "counts and scales positive")
check(nb & (nb - 1) == 0 and nb >= 2 * nw and nb // 2 < 2 * nw,
      "buckets: the smallest power of two >= 2 * words (%d for %d)" % (nb, nw))
check(all(o % 64 == 0 for o in offs), "parts 64-aligned: %s" % (offs,))
sizes = [4 * nb, 4 * (nw + 1), None, 4 * nw, nw * dim, 4 * dim]
wo = struct.unpack_from("<%dI" % (nw + 1), t, o_wo) if o_wo + 4 * (nw + 1) <= len(t) else [0]
sizes[2] = wo[-1]
ends = [o + s for o, s in zip(offs, sizes)]
check(offs[0] >= 64 and all(ends[i] <= offs[i + 1] for i in range(5)) and ends[5] <= len(t),
      "parts in order, inside the table, not overlapping")
check(flags == 0, "a fresh table has no principal component yet")
check(set(t[o_pc:o_pc + 4 * dim]) <= {0}, "pc part is zeros")
if check.failed:
    check.finish()

buckets = struct.unpack_from("<%dI" % nb, t, o_b)
words = [t[o_c + wo[i]:o_c + wo[i + 1]] for i in range(nw)]
weights = struct.unpack_from("<%df" % nw, t, o_w)
check(wo[0] == 0 and all(wo[i] < wo[i + 1] for i in range(nw)), "word offsets ascending from 0")
check(max(len(w) for w in words) == maxw < 64, "longest word %d bytes" % maxw)
bad = [w for w in words if not tokenizer_word(w)]
check(not bad, "words with upper case, punctuation or bad UTF-8: %r" % bad[:5])
check(len(set(words)) == nw, "words unique")
check(sum(1 for b in buckets if b) == nw and sorted(b for b in buckets if b) == list(range(1, nw + 1)),
      "every word index in exactly one bucket")
q_all = struct.unpack_from("%db" % (nw * dim), t, o_v)
check(max(abs(q) for q in q_all) == 127, "the scale is tight: some |q| is 127")


def lookup(w):
    """tr_embedder_lookup: FNV-1a, mask, linear probing, stop at empty."""
    h = fnv1a(w) & (nb - 1)
    for probe in range(nb):
        slot = buckets[(h + probe) & (nb - 1)]
        if slot == 0:
            return -1
        if words[slot - 1] == w:
            return slot - 1
    return -1


rng = random.Random(7)
sample = sorted(set(i for i in [0, 1, 2, nw - 1] + rng.sample(range(nw), min(SAMPLE, nw)) if i < nw))
check(all(lookup(words[i]) == i for i in sample), "hash lookups find the %d sampled words" % len(sample))
check(all(lookup(w) == i for i, w in enumerate(words)), "hash lookups find every word")
check(lookup(b"The") == -1 and lookup(b"notawordxyzzy") == -1, "absent words are not found")

# --- against the source ------------------------------------------------
# The 307 MB file is not DOM-parsed: the small header and the "words" array
# (~3 MB) are, and the sampled vectors are cut out by a regex scan.
data = open(wink_path, "rb").read()
vstart = data.index(b'"vectors":{')
size = int(re.search(rb'"size":\s*(\d+)', data[:512]).group(1))
src_dim = int(re.search(rb'"dimensions":\s*(\d+)', data[:512]).group(1))
wstart = data.index(b'"words":', 0, vstart) + len(b'"words":')
src_words = json.JSONDecoder().raw_decode(data[wstart:vstart].decode("utf-8", "surrogatepass").lstrip())[0]
check(src_dim == dim and len(src_words) == size, "D %d and vocabulary %d match the source" % (dim, size))
usable = [w for w in (s.encode("utf-8", "surrogatepass") for s in src_words) if tokenizer_word(w)]
check(words == usable[:nw], "the table is the %d most frequent tokenizer words, in rank order" % nw)
rank = {w.encode("utf-8", "surrogatepass"): r for r, w in enumerate(src_words)}

H = math.log(size) + GAMMA
worst_w = 0.0
for i, w in enumerate(words):
    expect = sif_a / (sif_a + 1.0 / ((rank.get(w, size) + 1) * H))
    worst_w = max(worst_w, abs(weights[i] - expect) / expect)
check(worst_w <= 2 ** -23, "SIF weights a/(a+p), p = 1/((r+1) H): worst relative error %.2g" % worst_w)

want = {words[i]: i for i in sample}
src = {}
entry = re.compile(rb'"((?:[^"\\]|\\.)*)":\s*\[([^\]]*)\]')
for m in entry.finditer(data, vstart):
    key = m.group(1)
    if b"\\" in key:
        key = json.loads(b'"' + key + b'"').encode("utf-8", "surrogatepass")
    if key in want:
        src[key] = [float(x) for x in m.group(2).split(b",")]
        if len(src) == len(want):
            break
check(len(src) == len(want), "sampled words found in the source (%d of %d)" % (len(src), len(want)))
worst_err, exact, min_cos = 0.0, True, 1.0
for w, i in want.items():
    nums = src.get(w)
    if nums is None:
        continue
    check(len(nums) == dim + 2 and int(nums[dim + 1]) == rank[w],
          "%r: D values, norm, and its rank in \"words\"" % w)
    vec, q = nums[:dim], q_all[i * dim:(i + 1) * dim]
    worst_err = max(worst_err, max(abs(a * scale - b) for a, b in zip(q, vec)))
    exact = exact and all(a == max(-127, min(127, round_half_away(b / scale))) for a, b in zip(q, vec))
    dot = sum(a * b for a, b in zip(q, vec))
    min_cos = min(min_cos, dot / math.sqrt(sum(a * a for a in q) * sum(b * b for b in vec)))
check(worst_err <= scale / 2 * (1 + 1e-6),
      "dequantized error %.6f within half a step %.6f" % (worst_err, scale / 2))
check(exact, "q = round half away from zero (v / scale), clamped to 127")
check(min_cos >= 0.998, "int8 cosine of the sampled words >= 0.998 (min %.5f)" % min_cos)
print("table: %d words, D=%d, scale %.6f, a %g, %d sampled, min cosine %.5f" %
      (nw, dim, scale, sif_a, len(sample), min_cos))
check.finish()
