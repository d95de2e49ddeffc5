#!/usr/bin/python3
"""Synthetic dataset (tools/DATASET.md layout) for `make bench-build-scale`.

usage: gen_scale.py EMBEDDER.bin OUT_DIR N M [TOPICS]

N prompts x M models. Each prompt has a topic ("task"); its text is 8-30
words drawn from the embedder's own vocabulary, 60% from the topic's 300
words, so the prompts form clusters the builder can find. Scores are 0/1
from a per-model, per-topic accuracy; costs are log-spread over two orders
of magnitude; model 0 is the one device model. Fixed seed: the same data
on every run. numpy, because a million rows in pure Python take minutes.
"""
import json
import os
import struct
import sys

import numpy as np


def vocabulary(path):
    """The embedder table's words (layout: TR_E_* in platform/tr_format.h)."""
    b = open(path, "rb").read()
    assert b[:8] == b"TREMB001", "not an embedder table"
    n_words = struct.unpack_from("<I", b, 8)[0]
    offs_at, chars_at = struct.unpack_from("<II", b, 40)
    offs = np.frombuffer(b, "<u4", n_words + 1, offs_at)
    chars = b[chars_at:chars_at + int(offs[-1])]
    return [chars[offs[i]:offs[i + 1]].decode("utf-8") for i in range(n_words)]


def main():
    if len(sys.argv) not in (5, 6):
        sys.exit(__doc__)
    emb, out, n, m = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    topics = int(sys.argv[5]) if len(sys.argv) == 6 else 32
    rng = np.random.default_rng(8)
    # Plain words only: skip punctuation tokens and the most frequent 100
    # (stop words carry little SIF weight anyway).
    words = [w for w in vocabulary(emb)[100:20000] if w.isalpha()]
    vocab = np.array(words, dtype=object)
    topic_words = rng.choice(len(vocab), size=(topics, 300), replace=False if topics * 300 <= len(vocab) else True)
    os.makedirs(out, exist_ok=True)

    cost = np.logspace(-2, 0, m)  # 0.01 .. 1: two orders of magnitude
    with open(os.path.join(out, "models.csv"), "w") as f:
        f.write("name,cost,where\n")
        for j in range(m):
            f.write("model-%03d,%.6g,%s\n" % (j, cost[j], "device" if j == 0 else "cloud"))

    # Accuracy: a model's general skill (dearer models a bit better) plus
    # a per-topic strength, so routing by topic pays.
    skill = 0.35 + 0.4 * np.linspace(0, 1, m) + rng.normal(0, 0.05, m)
    acc = np.clip(skill[:, None] + rng.normal(0, 0.15, (m, topics)), 0.02, 0.98)  # m x topics

    chunk = 50000
    with open(os.path.join(out, "prompts.jsonl"), "w") as fp, \
            open(os.path.join(out, "correctness.csv"), "wb") as fc:
        fc.write(("id," + ",".join("model-%03d" % j for j in range(m)) + "\n").encode())
        for s in range(0, n, chunk):
            c = min(chunk, n - s)
            topic = rng.integers(0, topics, c)
            length = rng.integers(8, 31, c)
            on_topic = rng.random((c, 30)) < 0.6
            tw = topic_words[topic[:, None], rng.integers(0, 300, (c, 30))]
            gw = rng.integers(0, len(vocab), (c, 30))
            idx = np.where(on_topic, tw, gw)
            lines = []
            for i in range(c):
                text = " ".join(vocab[idx[i, :length[i]]])
                lines.append(json.dumps({"id": str(s + i), "text": text,
                                         "task": "topic%02d" % topic[i]}))
            fp.write("\n".join(lines) + "\n")
            # Scores as bytes: "0,1,...,1\n" per row, built without a
            # per-cell Python loop.
            sc = (rng.random((c, m)) < acc[:, topic].T).astype(np.uint8) + ord("0")
            row = np.full((c, 2 * m), ord(","), np.uint8)
            row[:, 0::2] = sc
            row[:, -1] = ord("\n")
            body = row.tobytes()
            width = 2 * m
            ids = ["%d," % (s + i) for i in range(c)]
            fc.write(b"".join(ids[i].encode() + body[i * width:(i + 1) * width] for i in range(c)))
    print("wrote %s: %d prompts, %d models, %d topics" % (out, n, m, topics))


if __name__ == "__main__":
    main()
