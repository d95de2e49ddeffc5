"""`tinyroute route` keeps serving the pack it verified while the file is
attacked underneath it (issue 18): a model name rewritten in place, the
embedder's bucket table filled with 0x7F, the file truncated. The answers
must stay those of the untouched pack, with no crash and exit 0.
usage: test_sealed_route.py CLI PACK PUB WORKDIR"""
import json, os, shutil, struct, subprocess, sys, threading

cli, pack, pub, work = sys.argv[1:5]
P = os.path.join(work, "attacked.trp")
shutil.copyfile(pack, P)
prompts = ["What is the derivative of x squared?", "What is a tort in law?",
           "Which organelle makes ATP?", "Explain supply and demand.",
           "What is the capital of France?", "Solve 2x + 3 = 7."]

def sections(b):
    ns = struct.unpack_from("<I", b, 84)[0]
    out = {}
    for i in range(ns):
        t, _f, off, ln, _s, cnt = struct.unpack_from("<IIQQII", b, 128 + 32 * i)
        out[t] = (off, ln, cnt)
    return out

ref = subprocess.run([cli, "route", "--pack", pack, "--key", pub], input="\n".join(prompts) + "\n",
                     capture_output=True, text=True)
assert ref.returncode == 0, ref.stderr
want = [json.loads(l)["model"] for l in ref.stdout.splitlines()]
assert len(want) == len(prompts)

proc = subprocess.Popen([cli, "route", "--pack", P, "--key", pub], stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
got = []
# A CLI that does not answer line by line (or hangs) fails, not blocks.
watchdog = threading.Timer(120, proc.kill)
watchdog.start()

def ask(p):
    proc.stdin.write(p + "\n")
    proc.stdin.flush()
    line = proc.stdout.readline()
    assert line, "route died: " + proc.stderr.read()
    got.append(json.loads(line)["model"])

ask(prompts[0]) # the pack is loaded and serving
b = bytearray(open(P, "rb").read())
sec = sections(b)
off, ln, m = sec[1] # models: rewrite every name in place, same length
with open(P, "r+b") as f:
    for i in range(m):
        r = off + 96 * i
        name = bytes(b[r:r + 64]).split(b"\0")[0]
        evil = (b"EVIL-MODEL" * 7)[:len(name)]
        f.seek(r)
        f.write(evil)
ask(prompts[1])
eoff, eln, _ = sec[7] # embedder: its bucket table all 0x7F
nb, boff = struct.unpack_from("<I", b, eoff + 16)[0], struct.unpack_from("<I", b, eoff + 36)[0]
assert nb > 0
with open(P, "r+b") as f:
    f.seek(eoff + boff)
    f.write(b"\x7f" * (4 * nb))
check = open(P, "rb").read()
assert b"EVIL-MODEL" in check and check[eoff + boff:eoff + boff + 16] == b"\x7f" * 16, "attack not on disk"
ask(prompts[2])
ask(prompts[3])
os.truncate(P, 100)
ask(prompts[4])
ask(prompts[5])
proc.stdin.close()
rc = proc.wait(timeout=60)
watchdog.cancel()
err = proc.stderr.read()
assert rc == 0, "route exited %d: %s" % (rc, err)
assert got == want, "answers changed under attack: %r, want %r" % (got, want)
assert not any("EVIL" in g for g in got)
print("sealed route: %d answers unchanged after rewrite, 0x7F table, truncation" % len(got))
print("1 passed, 0 failed")
