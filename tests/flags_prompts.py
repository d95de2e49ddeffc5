"""Prompts for tests/test_flags.sh: the fixture's real prompts, then synthetic
ones made of their words in a seeded random order (word sums whose float
roundings differ under FMA more often than those of the real prompts do).
Writes u32 little-endian length + UTF-8 bytes per prompt.

usage: flags_prompts.py PROMPTS.jsonl ALL.bin SUBSET.bin"""
import json
import random
import struct
import sys

N_SYNTH, N_SUBSET = 4000, 300


def write(path, texts):
    with open(path, "wb") as f:
        f.write(b"".join(struct.pack("<I", len(t)) + t for t in texts))


def main():
    src, all_out, sub_out = sys.argv[1:4]
    real = []
    with open(src, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                real.append(json.loads(line)["text"])
    words = [w for t in real for w in t.split()]
    rng = random.Random(20261205)
    synth = [" ".join(rng.choice(words) for _ in range(rng.randint(3, 60))) for _ in range(N_SYNTH)]
    enc = [t.encode("utf-8") for t in real + synth]
    write(all_out, enc)
    write(sub_out, enc[:N_SUBSET] + enc[len(real):len(real) + N_SUBSET])


if __name__ == "__main__":
    main()
