#!/usr/bin/python3
"""Two packs built from the same inputs on different machines must carry the
same bytes: everything signed except the creation time (header bytes 24..31).
This is what makes the device's embedding of a prompt match, bit for bit, the
rows a builder on another architecture stored.
Usage: same_pack.py A B"""
import struct
import sys

a, b = (open(p, "rb").read() for p in sys.argv[1:3])
sa, sb = (struct.unpack_from("<Q", x, 88)[0] for x in (a, b))
passed = failed = 0
for cond, what in [
    (sa == sb, "signed lengths %d and %d" % (sa, sb)),
    (a[:24] == b[:24] and a[32:sa] == b[32:sb], "signed bytes equal but for the creation time"),
]:
    if cond:
        passed += 1
    else:
        failed += 1
        diff = next((i for i in range(32, min(sa, sb)) if a[i] != b[i]), None)
        print("FAIL:", what, "(first difference at byte %s)" % diff)
print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
