#!/usr/bin/python3
"""The built-in embedder table against its source.

Checks the table that `tinyroute embedder` wrote: header and part offsets,
hash-table lookups done the way models/embed.c does them, dequantized vectors
against the float vectors of the source JSON, SIF weights against their
formula, and that every word is one the device tokenizer can produce.
Usage: test_embedder_table.py TABLE WINK_JSON
"""
import math
import random
import re
import struct
import sys

from tr_ref import Checks

table_path, wink_path = sys.argv[1:3]
check = Checks()


def fnv1a(b):
    h = 2166136261
    for c in b:
        h = ((h ^ c) * 16777619) & 0xFFFFFFFF
    return h


t = open(table_path, "rb").read()
check(t[:8] == b"TREMB001", "magic")
nw, dim, nb, maxw = struct.unpack_from("<IIII", t, 8)
scale, sif_a, flags = struct.unpack_from("<ffI", t, 24)
offs = struct.unpack_from("<6I", t, 36)
total = struct.unpack_from("<I", t, 60)[0]
o_b, o_wo, o_c, o_w, o_v, o_pc = offs
check(total == len(t) and total % 64 == 0, "total length %d vs file %d" % (total, len(t)))
check(all(o % 64 == 0 and 64 <= o <= len(t) for o in offs), "parts 64-aligned and inside")
check(nb & (nb - 1) == 0 and nb >= 2 * nw, "bucket count a power of two >= 2 * words")
check(flags == 0, "a fresh table has no principal component yet")
buckets = struct.unpack_from("<%dI" % nb, t, o_b)
wo = struct.unpack_from("<%dI" % (nw + 1), t, o_wo)
words = [t[o_c + wo[i]:o_c + wo[i + 1]] for i in range(nw)]
weights = struct.unpack_from("<%df" % nw, t, o_w)
check(max(len(w) for w in words) == maxw < 64, "longest word %d" % maxw)
ok_word = re.compile(rb"^(?:[a-z0-9]|[\x80-\xff])+$")
bad = [w for w in words if not ok_word.match(w)]
check(not bad, "words the tokenizer cannot produce: %r" % bad[:5])
check(len(set(words)) == nw, "words are unique")
check(sum(1 for b in buckets if b) == nw and max(buckets) == nw, "every word in one bucket")


def lookup(w):
    h = fnv1a(w) & (nb - 1)
    for probe in range(nb):
        slot = buckets[(h + probe) & (nb - 1)]
        if slot == 0:
            return -1
        if words[slot - 1] == w:
            return slot - 1
    return -1


rng = random.Random(7)
sample = sorted(set([0, 1, 2, nw - 1] + rng.sample(range(nw), 200)))
check(all(lookup(words[i]) == i for i in sample), "hash lookups find the sampled words")
check(lookup(b"notawordxyzzy") == -1 and lookup(b"The") == -1, "absent words are not found")

# The source: wanted words' float vectors and ranks, by a regex scan of the
# "vectors" object (the file is 307 MB; no DOM parse).
want = {words[i]: i for i in sample}
src = {}
data = open(wink_path, "rb").read()
vstart = data.index(b'"vectors":{')
size = int(re.search(rb'"size":(\d+)', data[:200]).group(1))
for m in re.finditer(rb'"((?:[^"\\]|\\.)*)":\[([^\]]*)\]', data[vstart:]):
    if m.group(1) in want:
        nums = [float(x) for x in m.group(2).split(b",")]
        src[m.group(1)] = nums
        if len(src) == len(want):
            break
check(len(src) == len(want), "sampled words found in the source (%d of %d)" % (len(src), len(want)))
H = math.log(size) + 0.5772156649015329
worst_err = worst_w = 0.0
last_rank = -1
for w, i in sorted(want.items(), key=lambda kv: kv[1]):
    nums = src.get(w)
    if nums is None:
        continue
    vec, rank = nums[:dim], int(nums[dim + 1])
    q = struct.unpack_from("%db" % dim, t, o_v + i * dim)
    worst_err = max(worst_err, max(abs(a * scale - b) for a, b in zip(q, vec)))
    expect_w = sif_a / (sif_a + 1.0 / ((rank + 1) * H))
    worst_w = max(worst_w, abs(weights[i] - expect_w) / expect_w)
    check(rank > last_rank, "words stored in frequency order (rank %d after %d)" % (rank, last_rank))
    last_rank = rank
check(worst_err <= scale / 2 * 1.001, "dequantized error %.5f within half a step %.5f" % (worst_err, scale / 2))
check(worst_w < 1e-6, "SIF weights follow a/(a+p), worst relative error %.2g" % worst_w)
print("table: %d words, D=%d, scale %.5f, %d sampled" % (nw, dim, scale, len(sample)))
check.finish()
