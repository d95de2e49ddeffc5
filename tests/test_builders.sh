#!/bin/sh
# Builders never sign what devices refuse, never overwrite their inputs and
# read long lines within a stated bound (issue #18). Needs: CLI, EMBEDDER, PYTHON.
set -u
KEY=fixtures/keys/test-signing.key
PUB=fixtures/keys/test-signing.pub
. tests/expect.sh
# A tiny dataset DIR with M models (cost of model 1: COST1).
mkds() {
    "$PYTHON" - "$@" <<'PY'
import json, os, sys
d, M, cost1 = sys.argv[1], int(sys.argv[2]), sys.argv[3]
text = sys.argv[4] if len(sys.argv) > 4 else None
os.makedirs(d, exist_ok=True)
qs = ["What is the capital of France?", "How do plants make food?",
      "Solve two plus two", "Explain the law of gravity"]
with open(d + "/prompts.jsonl", "w") as f:
    for i, t in enumerate(qs):
        if i == 0 and text is not None:
            f.write('{"id":0,"text":"%s","task":"t0"}\n' % text)
        else:
            f.write(json.dumps({"id": i, "text": t, "task": "t%d" % (i % 2)}) + "\n")
names = ["m%d" % j for j in range(M)]
with open(d + "/models.csv", "w") as f:
    f.write("name,cost,where\n")
    for j, n in enumerate(names):
        f.write("%s,%s,%s\n" % (n, cost1 if j == 1 else j + 1, "device" if j == 0 else "cloud"))
with open(d + "/correctness.csv", "w") as f:
    f.write("id," + ",".join(names) + "\n")
    for i in range(4):
        f.write(str(i) + "," + ",".join(str((i + j) % 2) for j in range(M)) + "\n")
PY
}
B="$CLI build --embedder $EMBEDDER --key $KEY"

# --- build: limits checked before the long work, nothing written --------
mkds "$T/ok" 3 2
# One model limit, TR_MODELS_MAX (core/tinyroute.h), which the loader
# checks: M at it builds and verifies; one more is refused before the
# embedding passes (TR_PROGRESS=1 names each phase as it starts).
mkds "$T/limit" 65536 2
expect 0 "wrote" -- $B --data "$T/limit" --out "$T/limit.trp"
expect 0 "M=65536" -- "$CLI" verify --key "$PUB" "$T/limit.trp"
mkds "$T/big" 65537 2
expect 1 "models.csv: M = 65537 models: a router serves at most 65536 \(TR_MODELS_MAX, core/tinyroute.h\); not building a pack" -- env TR_PROGRESS=1 $B --data "$T/big" --out "$T/big.trp"
! grep -q "embedding pass" "$T/err" && ok || bad "the refusal of M = 65537 came after the embedding passes"
[ ! -e "$T/big.trp" ] && ok || bad "a refused pack was written"
# add-model on a base at the limit: refused before its --data is even read
expect 1 "base 65536 \+ added 1 = 65537 models: a router serves at most 65536 \(TR_MODELS_MAX" -- "$CLI" add-model --pack "$T/limit.trp" --key "$KEY" --data "$T/none" --model x --out "$T/limit.trd"
[ ! -e "$T/limit.trd" ] && ok || bad "a refused delta was written"
mkds "$T/cost" 3 1e39
expect 1 "model m1: cost 1e\+39 is not a finite number" -- $B --data "$T/cost" --out "$T/c.trp"
[ ! -e "$T/c.trp" ] && ok || bad "a refused pack was written"
expect 2 "--lambda must be a number in \[0, 3.40282e\+38\]" -- $B --data "$T/ok" --out "$T/l.trp" --lambda 1e39
expect 2 "--counter 18446744073709551615: at most 18446744073709551614" -- $B --data "$T/ok" --out "$T/n.trp" --counter 18446744073709551615
# The largest counter a builder may write does build, and verifies.
expect 0 "counter 18446744073709551614" -- $B --data "$T/ok" --out "$T/max.trp" --counter 18446744073709551614
expect 0 "^OK" -- "$CLI" verify --key "$PUB" "$T/max.trp"
# --out that is one of the inputs
cp "$EMBEDDER" "$T/emb.bin"
expect 2 "--out .* is also the input" -- "$CLI" build --embedder "$T/emb.bin" --key "$KEY" --data "$T/ok" --out "$T/ok/models.csv" --force
expect 2 "--out .* is also the input" -- "$CLI" build --embedder "$T/emb.bin" --key "$KEY" --data "$T/ok" --out "$T/emb.bin" --force
cmp -s "$EMBEDDER" "$T/emb.bin" && ok || bad "the embedder input changed"

# --- no output may be one of its inputs, even with --force ------------------
# refuses PATTERN INPUT -- command...: exit 2, PATTERN said, INPUT's bytes kept.
refuses() {
    pat=$1 f=$2
    shift 3
    before=$(cksum <"$f")
    expect 2 "$pat" -- "$@"
    [ "$(cksum <"$f")" = "$before" ] && ok || bad "$* changed its input $f"
}
IS="is also the input .*refusing to overwrite an input"
cp "$KEY" "$T/k.key"
cp "$PUB" "$T/k.pub"
mkds "$T/add" 4 2
printf '{"text": "What is a tort?"}\n' >"$T/traffic.jsonl"
$B --data "$T/ok" --out "$T/small.trp" >/dev/null 2>&1 || bad "build of the small pack"
"$CLI" add-model --pack "$T/small.trp" --key "$KEY" --data "$T/add" --model m3 --out "$T/d1.trd" >/dev/null 2>&1 || bad "add-model of the small delta"
ln "$T/small.trp" "$T/hard.trp"
E="$CLI eval --embedder $EMBEDDER --force"
refuses "--json $T/ok/models.csv $IS" "$T/ok/models.csv" -- $E --data "$T/ok" --json "$T/ok/models.csv"
refuses "--json $T/add/correctness.csv $IS" "$T/add/correctness.csv" -- $E --data "$T/ok" --data "$T/add" --json "$T/add/correctness.csv"
refuses "--report $T/ok/prompts.jsonl $IS" "$T/ok/prompts.jsonl" -- $E --data "$T/ok" --report "$T/ok/prompts.jsonl"
refuses "--json $T/emb.bin $IS" "$T/emb.bin" -- "$CLI" eval --embedder "$T/emb.bin" --data "$T/ok" --json "$T/emb.bin" --force
refuses "--out $T/ok/prompts.jsonl $IS" "$T/ok/prompts.jsonl" -- "$CLI" embedder --hashed --prompts "$T/add/prompts.jsonl" --prompts "$T/ok/prompts.jsonl" --out "$T/ok/prompts.jsonl"
refuses "--out $T/traffic.jsonl $IS" "$T/traffic.jsonl" -- "$CLI" embedder --wink "$T/traffic.jsonl" --out "$T/traffic.jsonl"
A="--key $T/k.key --force"
refuses "--out $T/small.trp $IS" "$T/small.trp" -- "$CLI" add-model --pack "$T/small.trp" $A --data "$T/add" --model m3 --out "$T/small.trp"
refuses "--out $T/hard.trp $IS" "$T/small.trp" -- "$CLI" add-model --pack "$T/small.trp" $A --data "$T/add" --model m3 --out "$T/hard.trp"
refuses "--out $T/add/models.csv $IS" "$T/add/models.csv" -- "$CLI" add-model --pack "$T/small.trp" $A --data "$T/add" --model m3 --out "$T/add/models.csv"
refuses "--out $T/k.key $IS" "$T/k.key" -- "$CLI" add-model --pack "$T/small.trp" $A --data "$T/add" --model m3 --out "$T/k.key"
refuses "--out $T/d1.trd $IS" "$T/d1.trd" -- "$CLI" retire-model --pack "$T/small.trp" --delta "$T/d1.trd" $A --model m1 --out "$T/d1.trd"
refuses "--out $T/k.pub $IS" "$T/k.pub" -- "$CLI" retire-model --pack "$T/small.trp" --trust "$T/k.pub" $A --model m1 --out "$T/k.pub"
refuses "--out $T/traffic.jsonl $IS" "$T/traffic.jsonl" -- "$CLI" calibrate --pack "$T/small.trp" $A --prompts "$T/traffic.jsonl" --cloud-share 0.5 --out "$T/traffic.jsonl"
refuses "--out $T/./d1.trd $IS" "$T/d1.trd" -- "$CLI" calibrate --pack "$T/small.trp" --delta "$T/d1.trd" $A --prompts "$T/traffic.jsonl" --cloud-share 0.5 --out "$T/./d1.trd"
refuses "--log-out $T/small.trp $IS" "$T/small.trp" -- "$CLI" route --pack "$T/small.trp" --key "$T/k.pub" --log-out "$T/small.trp" "What is a tort?"
refuses "--log-out $T/add/correctness.csv $IS" "$T/add/correctness.csv" -- "$CLI" route --pack "$T/small.trp" --key "$T/k.pub" --outcomes "$T/add" --log-out "$T/add/correctness.csv" "What is a tort?"
echo '{}' >"$T/r.json"
refuses "--out $T/r.json $IS" "$T/r.json" -- "$CLI" report --json "$T/r.json" --out "$T/r.json" --force
# and a new file beside the inputs is still written
expect 0 "wrote $T/d2.trd" -- "$CLI" retire-model --pack "$T/small.trp" --delta "$T/d1.trd" --key "$KEY" --model m1 --out "$T/d2.trd"

# --- retiring the only model a delta added: an empty delta, valid end to end
# (PACK_FORMAT.md: it serves the base alone and withdraws the delta before it)
expect 0 "counter 2, 0 model\(s\) added, none retired" -- "$CLI" retire-model --pack "$T/small.trp" --delta "$T/d1.trd" --key "$KEY" --model m3 --out "$T/empty.trd"
grep -q "no change from the base" "$T/out" && ok || bad "retire-model did not say the delta is empty"
expect 0 "0 added, 0 retired: 3 served" -- "$CLI" verify --key "$PUB" --delta "$T/empty.trd" "$T/small.trp"
expect 0 '"m3":' -- "$CLI" route --pack "$T/small.trp" --delta "$T/d1.trd" --key "$PUB" "What is a tort?"
expect 0 '"predicted":\{"m0":[^}]*"m2":[0-9.]*\}' -- "$CLI" route --pack "$T/small.trp" --delta "$T/empty.trd" --key "$PUB" "What is a tort?"
! grep -q '"m3"' "$T/out" && ok || bad "the empty delta still serves m3"

# --- a \u0000 escape in a prompt is refused, not cut ---------------------
mkds "$T/nul" 3 2 'What is\u0000 the capital of France?'
expect 1 "prompts.jsonl:1: a .u0000 \(NUL\) escape" -- $B --data "$T/nul" --out "$T/nul.trp"
# an escaped backslash followed by u0000 is ordinary text
mkds "$T/nul2" 3 2 'What is \\u0000 the capital of France?'
expect 0 "wrote" -- $B --data "$T/nul2" --out "$T/nul2.trp"
# the other prompt readers: calibrate's traffic and the hashed embedder's prompts
printf '{"text": "fine"}\n{"text": "cut\\u0000 here"}\n' >"$T/nul.jsonl"
expect 1 "nul.jsonl:2: a .u0000 \(NUL\) escape" -- "$CLI" calibrate --pack "$T/small.trp" --key "$KEY" --prompts "$T/nul.jsonl" --cloud-share 0.5 --out "$T/nul.trd"
expect 1 "nul.jsonl:2: a .u0000 \(NUL\) escape" -- "$CLI" embedder --hashed --prompts "$T/nul.jsonl" --out "$T/nul.bin"
[ ! -e "$T/nul.trd" ] && [ ! -e "$T/nul.bin" ] && ok || bad "a reader cut at \\u0000 wrote its output"

# inputs are checked before the work: a bad --key or --out fails before any output
for case in "1 --key $PUB --out $T/early.trp" "1 --key $T/no.key --out $T/early.trp" "2 --key $KEY --out $T/no/dir/early.trp"; do
    want=${case%% *}
    # shellcheck disable=SC2086
    "$CLI" build --data "$T/ok" --embedder "$EMBEDDER" ${case#* } >"$T/o" 2>"$T/e"
    rc=$?
    [ $rc = "$want" ] && [ ! -s "$T/o" ] && [ ! -e "$T/early.trp" ] && ok || bad "build ${case#* }: exit $rc, stdout $(cat "$T/o")"
done
grep -q "cannot create a file there" "$T/e" && ok || bad "unwritable --out: $(cat "$T/e")"

# every prompt reader takes - for standard input
head -n 40 "$FIXTURE/prompts.jsonl" | "$CLI" calibrate --pack "$T/small.trp" --key "$KEY" --prompts - \
    --cloud-share 0.5 --out "$T/stdin.trd" >"$T/o" 2>"$T/e" && grep -q "of 40 prompts" "$T/o" && ok ||
    bad "calibrate --prompts -: $(cat "$T/o" "$T/e")"
printf '{"text": "fine"}\nnot json\n' | "$CLI" calibrate --pack "$T/small.trp" --key "$KEY" --prompts - \
    --cloud-share 0.5 --out "$T/stdin2.trd" >"$T/o" 2>"$T/e"
[ $? = 1 ] && grep -q "stdin:2: malformed JSON" "$T/e" && [ ! -e "$T/stdin2.trd" ] && ok ||
    bad "calibrate --prompts - with a bad line: $(cat "$T/e")"
# the hashed fit reports its phases with TR_PROGRESS=1, and is silent on a pipe without it
head -n 300 "$FIXTURE/prompts.jsonl" | TR_PROGRESS=1 "$CLI" embedder --hashed --rows 1024 --prompts - \
    --out "$T/h1.bin" >"$T/o" 2>"$T/e" && grep -q "^embedder: features *done in" "$T/e" &&
    grep -q "^embedder: SVD *done in" "$T/e" && ok || bad "embedder --hashed progress: $(cat "$T/e")"
head -n 300 "$FIXTURE/prompts.jsonl" | "$CLI" embedder --hashed --rows 1024 --prompts - \
    --out "$T/h2.bin" >"$T/o" 2>"$T/e" && [ ! -s "$T/e" ] && cmp -s "$T/h1.bin" "$T/h2.bin" && ok ||
    bad "embedder --hashed without TR_PROGRESS: stderr $(head -c 200 "$T/e"), or another table"

# --- import: the output never overlaps the source --------------------------
mkdir -p "$T/src"
"$PYTHON" - "$T/src" <<'PY'
import json, sys
d = sys.argv[1]
with open(d + "/questions.jsonl", "w") as f:
    for i in range(6):
        f.write(json.dumps({"question_id": i, "question": "What is question %d about?" % i,
                            "category": "law" if i % 2 else "math"}) + "\n")
open(d + "/models.csv", "w").write("model,params_b\nsmall,1\nbig,70\n")
with open(d + "/correctness.csv", "w") as f:
    f.write("question_id,category,small,big\n")
    for i in range(6):
        f.write("%d,%s,%d,1\n" % (i, "law" if i % 2 else "math", i % 2))
PY
cp -r "$T/src" "$T/orig"
expect 2 "overlaps the input directory" -- "$CLI" import mmlu-pro-32 "$T/src" "$T/src" --force
expect 2 "overlaps the input directory" -- "$CLI" import mmlu-pro-32 "$T/src" "$T/src/sub/dir" --force
expect 2 "overlaps the input directory" -- "$CLI" import mmlu-pro-32 "$T/src" "$T" --force
ln -s src "$T/link"
expect 2 "overlaps the input directory" -- "$CLI" import mmlu-pro-32 "$T/src" "$T/link/" --force
expect 2 "overlaps the input directory" -- "$CLI" import mmlu-pro-32 "$T/src/" "$T/src/../src/new" --force
diff -r "$T/src" "$T/orig" >/dev/null && ok || bad "import changed its source"
[ ! -e "$T/src/sub" ] && [ ! -e "$T/src/prompts.jsonl" ] && ok || bad "import wrote inside its source"
expect 0 "6 prompts, 2 models" -- "$CLI" import mmlu-pro-32 "$T/src" "$T/dst"
# a \u0000 in a source question is refused with its line, not cut
cp -r "$T/src" "$T/nulsrc"
printf '{"question_id": 7, "question": "cut\\u0000 here", "category": "law"}\n' >>"$T/nulsrc/questions.jsonl"
expect 1 "questions.jsonl:7: a .u0000 \(NUL\) escape" -- "$CLI" import mmlu-pro-32 "$T/nulsrc" "$T/nuldst"

# --- import keeps long source ids whole (no fixed-size id buffer) ------------
mkdir -p "$T/lr"
"$PYTHON" - "$T/lr" <<'PY'
import json, sys
d = sys.argv[1]
open(d + "/models.csv", "w").write("model,size,input_price_usd_per_1M_tokens\nsmall,7B,0.1\nbig,70B,0.9\n")
with open(d + "/items.jsonl", "w") as f:
    for i in range(6):
        # indices that differ only past their 100th character
        f.write(json.dumps({"split": "train" if i < 4 else "test", "index": "x" * 100 + str(i),
                            "task_name": "t", "question": "Question number %d?" % i,
                            "scores": {"small": i % 2, "big": 1}}) + "\n")
PY
expect 0 "6 prompts, 2 models" -- "$CLI" import llmrouter-9models "$T/lr" "$T/lrout"
"$PYTHON" -c 'import json,sys; ids=[json.loads(l)["id"] for l in open(sys.argv[1])]; sys.exit(0 if ids == ["%s-%s%d" % ("train" if i < 4 else "test", "x"*100, i) for i in range(6)] else 1)' "$T/lrout/prompts.jsonl" &&
    ok || bad "import cut long ids: $(head -c 300 "$T/lrout/prompts.jsonl")"

# --- a 100 MB line: refused at TRH_LINE_MAX, memory bounded ------------------
cp -r "$T/src" "$T/long"
"$PYTHON" - "$T/long/questions.jsonl" <<'PY'
import sys
with open(sys.argv[1], "a") as f:
    f.write('{"question_id": 99, "question": "' + "a" * (100 << 20) + '", "category": "x"}\n')
PY
if [ -x /usr/bin/time ]; then
    /usr/bin/time -v "$CLI" import mmlu-pro-32 "$T/long" "$T/longout" >"$T/out" 2>"$T/err"
    got=$?
    rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$T/err")
    echo "import of a 100 MB line: peak RSS ${rss} kB (bound: TRH_LINE_MAX = 16 MiB)"
else
    "$CLI" import mmlu-pro-32 "$T/long" "$T/longout" >"$T/out" 2>"$T/err"
    got=$?
fi
[ "$got" = 1 ] && grep -q "questions.jsonl:7: line longer than 16777216 bytes" "$T/err" && ok ||
    bad "100 MB line: exit $got, $(head -c 300 "$T/err")"
# the memory bound: far below the line's 100 MB (a 1 GB line took 3.9 GB before)
# (not under an emulator or a sanitizer: qemu-user's own resident memory, or
# ASan's shadow and quarantine, would be counted)
if [ -n "${rss:-}" ] && [ -z "${RUNNER:-}" ] && [ -z "${ASAN_OPTIONS:-}${TSAN_OPTIONS:-}" ]; then [ "$rss" -lt 65536 ] && ok || bad "peak RSS $rss kB for a 100 MB line"; fi
# the same bound for a dataset's own prompts.jsonl
mkds "$T/longds" 3 2
"$PYTHON" -c 'import sys; open(sys.argv[1],"a").write("{\"id\":9,\"text\":\"" + "b" * (20 << 20) + "\"}\n")' "$T/longds/prompts.jsonl"
expect 1 "prompts.jsonl:5: line longer than 16777216 bytes" -- $B --data "$T/longds" --out "$T/long.trp"

# --- outcome logs: fields outside core/OUTCOME_LOG.md are refused --------
if [ -n "${FIXTURE_PACK:-}" ]; then
    "$CLI" route --pack "$FIXTURE_PACK" --key "$PUB" --log-out "$T/log" "What is a tort?" "Define negligence." >/dev/null 2>&1
    expect 0 "" -- "$CLI" eval --pack "$FIXTURE_PACK" --key "$PUB" --log "$T/log"
    M=$("$CLI" inspect --json "$FIXTURE_PACK" | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["n_models"])')
    # mutate OFFSET FORMAT VALUE OUT: record 1's field at OFFSET
    mutate() {
        "$PYTHON" - "$T/log" "$@" <<'PY'
import struct, sys
src, off, fmt, val, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
b = bytearray(open(src, "rb").read())
rb = struct.unpack_from("<I", b, 16)[0]
v = float(val) if fmt == "<f" else int(val)
struct.pack_into(fmt, b, 128 + rb + off, v)
open(out, "wb").write(b)
PY
    }
    mutate 40 "<f" nan "$T/nan.log"
    expect 1 "record 1: field cost" -- "$CLI" eval --pack "$FIXTURE_PACK" --key "$PUB" --log "$T/nan.log"
    mutate 48 "<f" inf "$T/lam.log"
    expect 1 "record 1: field lambda" -- "$CLI" eval --pack "$FIXTURE_PACK" --key "$PUB" --log "$T/lam.log"
    mutate 52 "<f" nan "$T/util.log"
    expect 1 "record 1: field utility" -- "$CLI" eval --pack "$FIXTURE_PACK" --key "$PUB" --log "$T/util.log"
    mutate 36 "<B" 7 "$T/where.log"
    expect 1 "record 1: field where" -- "$CLI" eval --pack "$FIXTURE_PACK" --key "$PUB" --log "$T/where.log"
    mutate 32 "<I" "$M" "$T/model.log"
    expect 1 "record 1: field model" -- "$CLI" eval --pack "$FIXTURE_PACK" --key "$PUB" --log "$T/model.log"
    mutate 56 "<f" 2 "$T/out.log"
    expect 1 "record 1: field outcome" -- "$CLI" eval --pack "$FIXTURE_PACK" --key "$PUB" --log "$T/out.log"
    # A refused log prints no report, not even a part of one: every check,
    # the model index and each record's re-routing, comes before the output.
    for j in "" --json; do
        expect 1 "record 1: field model" -- "$CLI" eval --pack "$FIXTURE_PACK" --key "$PUB" --log "$T/model.log" $j
        [ ! -s "$T/out" ] && ok || bad "eval --log $j printed before refusing a model index past M: $(head -c 200 "$T/out")"
    done
    mutate 64 "<b" -128 "$T/emb.log" # record 1's embedding: -128, which no router logs
    for j in "" --json; do
        expect 1 "record 2: its embedding cannot be re-routed \(TR_E_ARG" -- "$CLI" eval --pack "$FIXTURE_PACK" --key "$PUB" --log "$T/emb.log" $j
        [ ! -s "$T/out" ] && grep -q "1 record(s) could not be re-routed; refusing the log" "$T/err" && ok ||
            bad "eval --log $j printed before refusing an embedding: $(head -c 200 "$T/out")"
    done
fi

# --- no fixed counts in the host tools (was: 64 --add-log, 16 --prompts, a
# 2048-byte eval command line); add-model's own limit is the delta format's
expect 0 "" -- "$CLI" route --pack "$FIXTURE_PACK" --key "$PUB" --log-out "$T/one.log" "What is a tort?"
many=""
for i in $(seq 70); do many="$many --add-log $T/one.log"; done
expect 0 "$T/one.log: added 0 references; skipped 0 without an embedding, 1 without an outcome" -- $B --data "$FIXTURE" --k 10 --prior-strength 16 --lambda 0 --no-tasks --method knn --out "$T/many.trp" $many
[ "$(cat "$T/out" "$T/err" | grep -c "$T/one.log: added 0 references")" = 70 ] && ok || bad "build did not read all 70 --add-log"
many=""
for i in $(seq 20); do many="$many --prompts $T/ok/prompts.jsonl"; done
expect 0 "" -- "$CLI" embedder --hashed --rows 1024 --dim 8 $many --out "$T/hashed20.bin"
[ -s "$T/hashed20.bin" ] && ok || bad "embedder --hashed with 20 --prompts wrote nothing"
deep="$T"
for i in $(seq 12); do deep="$deep/$(printf 'd%.0s' $(seq 200))"; done
mkdir -p "$deep"
expect 0 "" -- "$CLI" eval --data "$FIXTURE" --embedder "$EMBEDDER" --seeds 1 --no-learned-map --json "$deep/e.json"
"$PYTHON" - "$deep/e.json" <<'PY' && ok || bad "eval's JSON does not carry its whole command line"
import json, sys
cmd = json.load(open(sys.argv[1]))["command"]
sys.exit(0 if cmd.endswith("--json " + sys.argv[1]) and len(cmd) > 2400 else 1)
PY
models=""
for i in $(seq 1025); do models="$models --model m$i"; done
expect 2 "at most 1024 --model per delta" -- "$CLI" add-model --pack "$T/small.trp" --key "$KEY" --data "$T/add" $models --out "$T/d1025.trd"
[ ! -e "$T/d1025.trd" ] && ok || bad "add-model with 1025 --model wrote a delta"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
