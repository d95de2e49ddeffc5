#!/bin/sh
# One CLI convention (issue 14 item 4), on every subcommand of the table in
# tools/main.c: --help prints the usage on stdout (exit 0), --version and
# -V the top-level version line (exit 0), `help CMD` is `CMD --help`, a bad
# option gets the one message style on stderr (exit 2); and inspect reads a
# delta (text and --json) as well as a pack.
# Needs: CLI, FIXTURE, FIXTURE_PACK. Portable sh (runs under qemu too).
set -u
KEY=fixtures/keys/test-signing.key
PUB=fixtures/keys/test-signing.pub
. tests/expect.sh

# Run "$@" with stdout in $T/o, stderr in $T/e, exit code in $rc.
runq() { "$@" </dev/null >"$T/o" 2>"$T/e"; rc=$?; }

# The subcommands, from the dispatch table itself, so a new one is walked too.
cmds=$(sed -n 's/^ *{"\([a-z-]*\)", cmd_[a-z_]*,.*/\1/p' tools/main.c)
n=0
for c in $cmds; do n=$((n + 1)); done
if [ "$n" -ge 14 ]; then ok; else bad "only $n subcommands parsed from tools/main.c"; fi

runq "$CLI" --version
if [ "$rc" = 0 ] && grep -qE '^tinyroute [0-9]+\.[0-9]+' "$T/o"; then ok; else bad "--version: rc $rc"; fi
cp "$T/o" "$T/version"
runq "$CLI" --help
cp "$T/o" "$T/top"
if [ "$rc" = 0 ] && grep -q '^usage: tinyroute COMMAND' "$T/top"; then ok; else bad "--help: rc $rc"; fi

for c in $cmds; do
    # listed in the top-level usage
    if grep -qE "^  $c " "$T/top"; then ok; else bad "$c missing from tinyroute --help"; fi
    # --help: usage on stdout, nothing on stderr, exit 0
    runq "$CLI" "$c" --help
    if [ "$rc" = 0 ] && grep -q "^usage: tinyroute $c" "$T/o" && [ ! -s "$T/e" ]; then ok
    else bad "$c --help: rc $rc, stdout $(head -c 80 "$T/o"), stderr $(head -c 200 "$T/e")"; fi
    cp "$T/o" "$T/help"
    # help CMD: the very same text
    runq "$CLI" help "$c"
    if [ "$rc" = 0 ] && cmp -s "$T/o" "$T/help"; then ok; else bad "help $c differs from $c --help (rc $rc)"; fi
    # --version and -V, alone or after other options: the top-level line
    for v in --version -V; do
        runq "$CLI" "$c" "$v"
        if [ "$rc" = 0 ] && cmp -s "$T/o" "$T/version"; then ok; else bad "$c $v: rc $rc, $(head -c 80 "$T/o")"; fi
    done
    runq "$CLI" "$c" --out x --version
    if [ "$rc" = 0 ] && cmp -s "$T/o" "$T/version"; then ok; else bad "$c --out x --version: rc $rc"; fi
    # a bad long and a bad short option: two lines on stderr, nothing on stdout, exit 2
    for o in --no-such-option -Z; do
        runq "$CLI" "$c" "$o"
        printf "tinyroute %s: unknown option '%s'\nsee 'tinyroute %s --help'\n" "$c" "$o" "$c" >"$T/want"
        if [ "$rc" = 2 ] && cmp -s "$T/e" "$T/want" && [ ! -s "$T/o" ]; then ok
        else bad "$c $o: rc $rc, stderr: $(head -c 300 "$T/e")"; fi
    done
done

# the other getopt reports, in the same style
expect 2 "^tinyroute route: option '--pack' needs a value$" -- "$CLI" route --pack
expect 2 "^tinyroute inspect: option '--json' takes no value$" -- "$CLI" inspect --json=1 "$FIXTURE_PACK"
expect 2 "^see 'tinyroute build --help'$" -- "$CLI" build --data
# eval has two parsers (with --pack: the route family's; without: the
# evaluation protocol's): both report alike
expect 2 "^tinyroute eval: unknown option '--bogus'$" -- "$CLI" eval --pack "$FIXTURE_PACK" --bogus
expect 2 "^tinyroute build: unknown option '--bogus'$" -- "$CLI" build --bogus=3
# help: alone, unknown command, too many words
runq "$CLI" help
if [ "$rc" = 0 ] && cmp -s "$T/o" "$T/top"; then ok; else bad "help alone: rc $rc"; fi
expect 2 "^tinyroute help: no such command 'nosuch'$" -- "$CLI" help nosuch
expect 2 "^tinyroute help: takes one command" -- "$CLI" help build route
# a "--version" after "--" is an argument, not the flag
expect 1 "cannot open --version" -- "$CLI" inspect -- --version

# --- inspect reads a delta ---------------------------------------------
M=$(sed -n 2p "$FIXTURE/models.csv" | cut -d, -f1)
expect 0 "wrote" -- "$CLI" retire-model --pack "$FIXTURE_PACK" --key "$KEY" --model "$M" --out "$T/r.trd"
head -n 20 "$FIXTURE/prompts.jsonl" >"$T/p.jsonl"
expect 0 "wrote" -- "$CLI" calibrate --pack "$FIXTURE_PACK" --delta "$T/r.trd" --key "$KEY" \
    --prompts "$T/p.jsonl" --cloud-share 0.3 --counter 7 --expires-days 30 --out "$T/c.trd"
# the base hash inspect shows is the one verify computes for the pack
base=$("$CLI" verify --key "$PUB" "$FIXTURE_PACK" | sed -n 's/^  sha256 *\([0-9a-f]*\).*/\1/p' | head -n 1)
if [ ${#base} = 64 ]; then ok; else bad "no sha256 in verify's output: '$base'"; fi
nm=$(($(wc -l <"$FIXTURE/models.csv") - 1))
expect 0 "^$T/c.trd: [0-9]+ bytes, delta format v1 \(NOT verified" -- "$CLI" inspect "$T/c.trd"
expect 0 "^  base sha256 $base \(N=[0-9]+ references, M=$nm models, K=0 clusters\)" -- "$CLI" inspect "$T/c.trd"
expect 0 "^  models 0 added, 1 retired$" -- "$CLI" inspect "$T/c.trd"
expect 0 "^  settings k 0, lambda [0-9.]+, prior strength 0 " -- "$CLI" inspect "$T/c.trd"
expect 0 "^  counter 7, created [0-9-]+T[0-9:]+Z, expires [0-9-]+T" -- "$CLI" inspect "$T/c.trd"
expect 0 "^  section delta_settings +64 bytes" -- "$CLI" inspect "$T/c.trd"
expect 0 "^  section delta_retire " -- "$CLI" inspect "$T/c.trd"
if grep -q "problem" "$T/out"; then bad "a good delta has problems: $(cat "$T/out")"; else ok; fi
J='"kind":"delta","verified":false,"format_version":1,"security_counter":7,'
expect 0 "$J" -- "$CLI" inspect --json "$T/c.trd"
for f in "\"base_hash\":\"$base\"" "\"n_base_models\":$nm" '"n_added":0' '"n_retired":1' \
    '"settings":\{"k":0,"lambda":[0-9.]+,"prior_strength":0\}' '"name":"delta_retire"' '"problems":\[\]' \
    '"key_id":"[0-9a-f]{64}"'; do
    if grep -qE "$f" "$T/out"; then ok; else bad "inspect --json lacks /$f/: $(cat "$T/out")"; fi
done
# the first delta: no settings, its own counter
expect 0 '"security_counter":1,' -- "$CLI" inspect --json "$T/r.trd"
if grep -q '"settings"' "$T/out"; then bad "retire-only delta shows settings"; else ok; fi
# a pack says it is one
expect 0 '"kind":"pack"' -- "$CLI" inspect --json "$FIXTURE_PACK"
# A header that claims more base models than the retire bitset covers is
# reported as a problem (no count), not read past the section: byte 72 is
# the base model count (TR_DH_BASE_MODELS), 200 = octal 310.
cp "$T/c.trd" "$T/bad.trd"
printf '\310' | dd of="$T/bad.trd" bs=1 seek=72 conv=notrunc 2>/dev/null
expect 0 '"n_retired":null.*"problems":\["retire section of 8 bytes does not cover the base.s 200 models"\]' -- "$CLI" inspect --json "$T/bad.trd"
expect 0 "^  models 0 added, retired unknown$" -- "$CLI" inspect "$T/bad.trd"
expect 0 "problem: retire section of 8 bytes" -- "$CLI" inspect "$T/bad.trd"
# a signed_bytes past the end: the trailer problem, as for a pack (byte 88)
cp "$T/c.trd" "$T/bad2.trd"
printf '\377\377' | dd of="$T/bad2.trd" bs=1 seek=88 conv=notrunc 2>/dev/null
expect 0 '"key_id":"none".*"problems":\[[^]]*signed_bytes [0-9]+ leaves no room' -- "$CLI" inspect --json "$T/bad2.trd"
# two retire sections (the settings entry's type, byte 128, made retire =
# 33 = octal 041): a problem and no count, not a sum of both
cp "$T/c.trd" "$T/dup.trd"
printf '\041' | dd of="$T/dup.trd" bs=1 seek=128 conv=notrunc 2>/dev/null
expect 0 '"n_retired":null.*"problems":\["more than one retire section"\]' -- "$CLI" inspect --json "$T/dup.trd"
# a truncated delta: an error, exit 1
head -c 100 "$T/c.trd" >"$T/short.trd"
expect 1 "short.trd: TR_E_TRUNCATED" -- "$CLI" inspect "$T/short.trd"


# --- --json: one document on stdout, the human report on stderr -----------
# verify: the verdict with inspect's fields, the delta's too; a refusal is a
# document with the status name, exit 1
json_get() { "$PYTHON" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {"d": d}))' "$@"; }
runq "$CLI" verify --json --key "$PUB" --delta "$T/c.trd" "$FIXTURE_PACK"
if [ "$rc" = 0 ] && [ "$(json_get "$T/o" 'd["verified"], d["kind"], d["sha256"] == "'"$base"'", d["n_models"], d["delta"]["verified"], d["delta"]["n_retired"], d["delta"]["n_served_models"]')" = "(True, 'pack', True, $nm, True, 1, $nm)" ]; then ok
else bad "verify --json: rc $rc, $(head -c 300 "$T/o")"; fi
runq "$CLI" verify --json --key fixtures/keys/test-other.pub "$FIXTURE_PACK"
if [ "$rc" = 1 ] && [ "$(json_get "$T/o" 'd["verified"], d["error"]')" = "(False, 'TR_E_KEY_UNKNOWN')" ]; then ok
else bad "verify --json, untrusted key: rc $rc, $(cat "$T/o")"; fi
runq "$CLI" verify --json --key "$PUB" "$T/no-such.trp"
if [ "$rc" = 1 ] && [ "$(json_get "$T/o" 'd["verified"], d["error"]')" = "(False, 'unreadable')" ]; then ok
else bad "verify --json, missing file: rc $rc, $(cat "$T/o")"; fi
# build: the written pack, as verify --json sees it, and what the build did
mkdir -p "$T/ds"
head -n 60 "$FIXTURE/prompts.jsonl" >"$T/ds/prompts.jsonl"
head -n 61 "$FIXTURE/correctness.csv" >"$T/ds/correctness.csv"
cp "$FIXTURE/models.csv" "$T/ds/"
runq "$CLI" build --json --data "$T/ds" --embedder "$EMBEDDER" --key "$KEY" --k 5 --out "$T/j.trp"
if [ "$rc" = 0 ] && grep -q "^wrote $T/j.trp" "$T/e" &&
    [ "$(json_get "$T/o" 'd["file"], d["verified"], d["n_models"], d["defaults"]["k"], sorted(d["build"])')" = \
      "('$T/j.trp', True, $nm, 5, ['method_validation', 'seconds', 'skipped_no_known_word', 'skipped_zero_after_pc'])" ]; then ok
else bad "build --json: rc $rc, $(head -c 300 "$T/o")"; fi
"$CLI" verify --json --key "$PUB" "$T/j.trp" >"$T/v"
if [ "$(json_get "$T/o" 'd["key_id"], d["signed_bytes"], d["sections"]')" = "$(json_get "$T/v" 'd["key_id"], d["signed_bytes"], d["sections"]')" ]; then ok
else bad "build --json and verify --json differ on the same pack"; fi

# keygen, pubkey, embedder, import: one parsable document on stdout, nothing else
one_doc() { "$PYTHON" -c 'import json,sys; t=open(sys.argv[1]).read(); json.loads(t); sys.exit(0 if t.count("\n") == 1 else 1)' "$1"; }
runq "$CLI" keygen --json --out "$T/jk"
if [ "$rc" = 0 ] && one_doc "$T/o" && [ "$(json_get "$T/o" 'd["key"], d["pub"], len(d["key_id"])')" = "('$T/jk.key', '$T/jk.pub', 64)" ]; then ok
else bad "keygen --json: rc $rc, $(cat "$T/o")"; fi
kid=$(json_get "$T/o" 'd["key_id"]')
runq "$CLI" pubkey --json "$T/jk.pub"
if [ "$rc" = 0 ] && one_doc "$T/o" && [ "$(json_get "$T/o" 'd["key_id"], d["point"]')" = "('$kid', '$("$CLI" pubkey --format hex "$T/jk.pub")')" ]; then ok
else bad "pubkey --json: rc $rc, $(cat "$T/o")"; fi
head -n 200 "$FIXTURE/prompts.jsonl" >"$T/p200.jsonl"
runq "$CLI" embedder --json --hashed --rows 1024 --dim 8 --prompts "$T/p200.jsonl" --out "$T/jh.bin"
if [ "$rc" = 0 ] && one_doc "$T/o" && grep -q "^wrote $T/jh.bin" "$T/e" &&
    [ "$(json_get "$T/o" 'd["kind"], d["rows"], d["dim"], d["bytes"], d["sha256"]')" = \
      "('hashed', 1024, 8, $(wc -c <"$T/jh.bin"), '$(sha256sum "$T/jh.bin" | cut -c1-64)')" ]; then ok
else bad "embedder --json: rc $rc, $(cat "$T/o")"; fi
mkdir -p "$T/isrc"
"$PYTHON" - "$T/isrc" <<'PY'
import json, sys
d = sys.argv[1]
with open(d + "/questions.jsonl", "w") as f:
    for i in range(8):
        f.write(json.dumps({"question_id": i, "question": "Question %d?" % i, "category": "law" if i % 2 else "math"}) + "\n")
open(d + "/models.csv", "w").write("model,params_b\nsmall,1\nbig,70\n")
with open(d + "/correctness.csv", "w") as f:
    f.write("question_id,category,small,big\n" + "".join("%d,x,%d,1\n" % (i, i % 2) for i in range(8)))
PY
runq "$CLI" import --json mmlu-pro-32 "$T/isrc" "$T/idst"
if [ "$rc" = 0 ] && one_doc "$T/o" && [ "$(json_get "$T/o" 'd["prompts"], d["models"], d["device_models"], d["tasks"], d["out"]')" = "(8, 2, ['small'], 2, '$T/idst')" ]; then ok
else bad "import --json: rc $rc, $(cat "$T/o" "$T/e")"; fi
# the delta commands: the new delta as inspect --json reads it, verified
runq "$CLI" retire-model --json --pack "$FIXTURE_PACK" --key "$KEY" --model "$M" --out "$T/rj.trd"
if [ "$rc" = 0 ] && one_doc "$T/o" && grep -q "^wrote $T/rj.trd" "$T/e" &&
    [ "$(json_get "$T/o" 'd["kind"], d["verified"], d["n_retired"], d["base_hash"] == "'"$base"'"')" = "('delta', True, 1, True)" ]; then ok
else bad "retire-model --json: rc $rc, $(cat "$T/o")"; fi
# every subcommand with a single result documents --json; the ones left are
# listed here (route and embed print one JSON line per prompt already)
for c in $cmds; do
    "$CLI" "$c" --help | grep -q -- "--json" && continue
    case " route embed " in
    *" $c "*) ok ;;
    *) bad "$c --help has no --json" ;;
    esac
done

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
