"""Independent readers and references shared by the Python tests: a pack
parser written from core/PACK_FORMAT.md and the built-in embedder in float64."""
import struct
import subprocess
import sys

import numpy as np


class Checks:
    """Counts checks; finish() prints the closing 'N passed, N failed' line."""

    def __init__(self):
        self.passed = self.failed = 0

    def __call__(self, cond, what):
        if cond:
            self.passed += 1
        else:
            self.failed += 1
            print("FAIL:", what)

    def finish(self):
        print("%d passed, %d failed" % (self.passed, self.failed))
        sys.exit(1 if self.failed else 0)


def run_cli(cli, args, lines):
    """The CLI's stdout lines for the given stdin lines."""
    return subprocess.run([cli] + args, input="\n".join(lines) + "\n", capture_output=True,
                          text=True, check=True).stdout.splitlines()


def parse_pack(path):
    b = open(path, "rb").read()
    assert b[:8] == b"TINYRTPK", "magic"
    dim, n, m, ns = struct.unpack_from("<IIII", b, 72)
    secs = {}
    for i in range(ns):
        t, _flags, off, length, stride, count = struct.unpack_from("<IIQQII", b, 128 + 32 * i)
        secs[t] = (off, length, stride, count)
    p = {"dim": dim, "n": n, "m": m, "embedder_name": b[40:72].rstrip(b"\0").decode()}
    off, _, _, _ = secs[1]
    p["models"] = []
    for j in range(m):
        r = b[off + 96 * j: off + 96 * (j + 1)]
        name = r[:64].split(b"\0")[0].decode()
        cost, cn, prior, where = struct.unpack_from("<fffI", r, 64)
        p["models"].append(dict(name=name, cost=cost, cost_norm=cn, prior=prior, where=where))
    # defaults: u32 k, f32 lambda, f32 prior strength (0 in older packs)
    p["k"], p["lambda"], p["prior_strength"] = struct.unpack_from("<Iff", b, secs[8][0])
    # reference rows, format 2: blocks of 4 rows, chunk c of row 4b + j at
    # 4 * stride * b + 64 c + 16 j (platform/tr_format.h, tr_ref_offset)
    off, _, stride, _ = secs[2]
    nb = (n + 3) // 4
    blocks = np.frombuffer(b, np.int8, nb * 4 * stride, off).reshape(nb, stride // 16, 4, 16)
    rows = blocks.transpose(0, 2, 1, 3).reshape(nb * 4, stride)[:n, :dim]
    p["rows"] = rows.astype(np.int64)

    def bitset(t):
        if t not in secs:
            return None
        off, _, stride, _ = secs[t]
        raw = np.frombuffer(b, np.uint8, m * stride, off).reshape(m, stride)
        return np.unpackbits(raw, axis=1, bitorder="little")[:, :n].astype(bool)

    p["correct"], p["valid"] = bitset(4), bitset(5)
    if 6 in secs:
        off, _, stride, _ = secs[6]
        p["scores"] = np.frombuffer(b, np.uint8, m * stride, off).reshape(m, stride)[:, :n] / 255.0
    else:
        p["scores"] = None
    # then the builder's validation: f32 Area, u32 queries, u32 TR_CHOSE_* bits
    p["val_area"], p["val_queries"], p["chosen"] = struct.unpack_from("<fII", b, secs[8][0] + 12)
    p["clusters"] = None
    if 10 in secs:
        c = b[secs[10][0]:]
        k, stride, o_r, o_s, o_h, o_p = struct.unpack_from("<6I", c, 0)
        rows = np.frombuffer(c, np.int8, k * stride, o_r).reshape(k, stride)[:, :dim].astype(np.int64)
        p["clusters"] = dict(rows=rows, inv_scale=np.frombuffer(c, np.float32, k, o_s).astype(np.float64),
                             half_sq=np.frombuffer(c, np.float32, k, o_h).astype(np.float64),
                             psi=np.frombuffer(c, np.float32, k * m, o_p).reshape(k, m).astype(np.float64),
                             psi_prior=struct.unpack_from("<f", c, 28)[0])
    p["lmap"] = None
    if 12 in secs:
        t = b[secs[12][0]:]
        k, ldim, o_t = struct.unpack_from("<III", t, 0)
        p["lmap"] = np.frombuffer(t, np.float32, k * (ldim + 1), o_t).reshape(k, ldim + 1).astype(np.float64)
    p["tasks"] = None
    if 11 in secs:
        t = b[secs[11][0]:]
        nt, kd, bw, gate, o_u, o_a = struct.unpack_from("<IIffII", t, 0)
        p["tasks"] = dict(k_dist=kd, bandwidth=bw, gate=gate,
                          u=np.frombuffer(t, np.float32, nt, o_u).astype(np.float64),
                          acc=np.frombuffer(t, np.float32, nt * m, o_a).reshape(nt, m).astype(np.float64))
    p["emb"] = parse_embedder(b[secs[7][0]:])
    return p


def parse_embedder(e):
    """An embedder section or table file (platform/tr_format.h)."""
    assert e[:8] == b"TREMB001"
    nw, edim, nb, maxw = struct.unpack_from("<IIII", e, 8)
    scale, _a, flags = struct.unpack_from("<ffI", e, 24)
    o_b, o_wo, o_c, o_w, o_v, o_pc = struct.unpack_from("<6I", e, 36)
    words = None
    if not flags & 2:
        wo = np.frombuffer(e, np.uint32, nw + 1, o_wo)
        chars = e[o_c:]
        words = {bytes(chars[wo[i]:wo[i + 1]]): i for i in range(nw)}
    return dict(words=words, maxw=maxw, rows=nw, hashed=bool(flags & 2),
                    weights=np.frombuffer(e, np.float32, nw, o_w).astype(np.float64),
                    vectors=np.frombuffer(e, np.int8, nw * edim, o_v).reshape(nw, edim).astype(np.float64),
                    pc=np.frombuffer(e, np.float32, edim, o_pc).astype(np.float64) if flags & 1 else None)


def _fnv(data, h=2166136261):
    for c in data:
        h = ((h ^ c) * 16777619) & 0xFFFFFFFF
    return h


def _is_word_byte(c):
    return (48 <= c <= 57) or (65 <= c <= 90) or (97 <= c <= 122) or c >= 0x80


def hashed_features(text, rows):
    """A hashed table's feature rows of a prompt, with repetition, as
    platform/tr_format.h specifies them: each word, and each run of 3 to 5 code
    points of "<word>"."""
    s = text.encode("utf-8")
    out = []
    i = 0
    while i < len(s):
        if not _is_word_byte(s[i]):
            i += 1
            continue
        cps = [b"<"]
        word = bytearray()
        while i < len(s) and _is_word_byte(s[i]):
            c = s[i]
            n = 1 if c < 0x80 else 2 if c < 0xE0 else 3 if c < 0xF0 else 4
            cp = bytes(x + 32 if 65 <= x <= 90 else x for x in s[i:i + n])
            cps.append(cp)
            word += cp
            i += n
        cps.append(b">")
        for n in range(3, 6):
            for j in range(len(cps) - n + 1):
                out.append(_fnv(b"".join(cps[j:j + n])) & (rows - 1))
        out.append(_fnv(b"\x01" + bytes(word)) & (rows - 1))
    return out


def ref_embed_float(e, text):
    """The built-in embedder in float64 before quantization: tokenize, SIF
    sum, pc removal; None when the prompt has no known word."""
    acc = np.zeros(e["vectors"].shape[1])
    known = 0
    word = bytearray()
    for r in hashed_features(text, e["rows"]) if e["hashed"] else []:
        acc += e["weights"][r] * e["vectors"][r]
        known += 1
    for c in text.encode("utf-8") + b" " if not e["hashed"] else b"":
        if (48 <= c <= 57) or (65 <= c <= 90) or (97 <= c <= 122) or c >= 0x80:
            word.append(c + 32 if 65 <= c <= 90 else c)
            continue
        if word and len(word) <= e["maxw"]:
            i = e["words"].get(bytes(word))
            if i is not None:
                acc += e["weights"][i] * e["vectors"][i]
                known += 1
        word = bytearray()
    if not known:
        return None
    if e["pc"] is not None:
        pc = e["pc"]
        acc = acc - (acc @ pc) / (pc @ pc) * pc
    return acc


def ref_embed(e, text):
    """The built-in embedder in float64, quantized to int8 as the core does."""
    acc = ref_embed_float(e, text)
    if acc is None:
        return None
    x = acc / np.abs(acc).max() * 127.0
    return np.clip(np.where(x >= 0, np.floor(x + 0.5), np.ceil(x - 0.5)), -127, 127).astype(np.int64)


# ---- tools/pareto.c: the upper convex hull of (cost, accuracy) points ----
def hull(cost, acc):
    """The upper hull from the cheapest point to the most accurate one (the
    first of equals), as tools/pareto.c draws Pareto-random."""
    pts = sorted(zip(cost, acc), key=lambda p: (p[0], -p[1]))
    top = max(range(len(pts)), key=lambda i: (pts[i][1], -i))
    hc, ha = [], []
    for c, a in pts[:top + 1]:
        if hc and c == hc[-1]:
            continue
        while len(hc) >= 2 and (hc[-1] - hc[-2]) * (a - ha[-2]) - (ha[-1] - ha[-2]) * (c - hc[-2]) >= 0:
            hc.pop(), ha.pop()
        hc.append(c), ha.append(a)
    return hc, ha


def hull_at(hc, ha, c):
    if c <= hc[0]:
        return ha[0]
    for v in range(len(hc) - 1):
        if c <= hc[v + 1]:
            return ha[v] + (ha[v + 1] - ha[v]) * (c - hc[v]) / (hc[v + 1] - hc[v])
    return ha[-1]


# tools/pareto.c's lambda sweep: 0, then 1e-3 .. 1e3 geometric, then 1e9 (everything to the cheapest).
N_LAMBDA = 62


def lambda_at(j):
    if j == 0:
        return 0.0
    if j == N_LAMBDA - 1:
        return 1e9
    return 1e-3 * pow(1e6, (j - 1) / (N_LAMBDA - 3))
