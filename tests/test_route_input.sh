#!/bin/sh
# route/embed input (issue #14 item 4): --input FILE|-, --format lines|jsonl,
# blank lines skipped, a bad line reported as FILE:LINE while the rest is
# routed (exit 1 at the end), ids and the 80-byte prompt excerpt.
# Needs: CLI, FIXTURE_PACK, PYTHON.
set -u
PUB=fixtures/keys/test-signing.pub
. tests/expect.sh
R="$CLI route --pack $FIXTURE_PACK --key $PUB"

# field FILE EXPR: EXPR over the JSON lines of FILE (as r), one result a line.
field() {
    "$PYTHON" -c 'import json, os, sys
for l in open(sys.argv[1], encoding="utf-8"):
    r = json.loads(l); print(eval(sys.argv[2]))' "$1" "$2"
}
# same NAME FILE EXPR WANT: the results of field, joined by spaces, are WANT.
same() {
    got=$(field "$2" "$3" | tr '\n' ' ')
    [ "$got" = "$4 " ] && ok || bad "$1: got '$got', want '$4 '"
}

# --- lines: blank and whitespace-only lines skipped, ids are line numbers
printf 'What is a tort?\n\n   \t\nDefine negligence in law.\n\r\nWhat is 2+2?\n' >"$T/plain.txt"
$R <"$T/plain.txt" >"$T/o1" 2>"$T/e1"
rc=$?
[ "$rc" = 0 ] && ok || bad "blank lines made route exit $rc: $(cat "$T/e1")"
same "blank lines skipped, ids are line numbers" "$T/o1" 'r["id"]' "1 4 6"
grep -q "^tinyroute route: 3 blank lines skipped$" "$T/e1" && ok || bad "blank count: $(cat "$T/e1")"
# --input FILE and --input - route the same prompts as stdin
$R --input "$T/plain.txt" >"$T/o2" 2>/dev/null && cmp -s "$T/o1" "$T/o2" && ok ||
    bad "--input FILE differs from stdin"
$R --input - --format lines <"$T/plain.txt" >"$T/o3" 2>/dev/null && cmp -s "$T/o1" "$T/o3" && ok ||
    bad "--input - differs from stdin"
# embed skips the same blank lines: one array per prompt
n=$("$CLI" embed --pack "$FIXTURE_PACK" --key "$PUB" --input "$T/plain.txt" 2>/dev/null | grep -c '^\[')
[ "$n" = 3 ] && ok || bad "embed of 3 prompts among blank lines printed $n arrays"

# --- jsonl: string and number ids, a multi-line prompt, a missing id, and
# bad lines in the middle (not JSON, no text, \u0000, a fractional id).
cat >"$T/p.jsonl" <<'J'
{"id": "q-a", "text": "What is a tort?"}
not json at all
{"id": 42, "text": "First line of the prompt.\nSecond line: define negligence."}
{"id": "q-b"}

{"id": "q-c", "text": "cut \u0000 here"}
{"id": 1.5, "text": "What is a tort?"}
{"text": "What is the derivative of x squared?"}
J
$R --format jsonl --input "$T/p.jsonl" >"$T/o4" 2>"$T/e4"
rc=$?
[ "$rc" = 1 ] && ok || bad "bad JSONL lines: exit $rc, want 1"
same "jsonl ids (string, number, line number when absent)" "$T/o4" 'repr(r["id"])' "'q-a' 42 8"
same "a multi-line prompt arrives whole" "$T/o4" 'r["prompt"].count(chr(10))' "0 1 0"
for m in "p.jsonl:2: malformed JSON" 'p.jsonl:4: missing "text"' 'p.jsonl:6: a \\u0000 \(NUL\) escape' \
    'p.jsonl:7: "id" must be'; do
    grep -qE "^tinyroute route: .*$m" "$T/e4" && ok || bad "stderr lacks /$m/: $(cat "$T/e4")"
done
# stdin takes JSONL too, with the same result
$R --format jsonl <"$T/p.jsonl" >"$T/o5" 2>/dev/null
cmp -s "$T/o4" "$T/o5" && ok || bad "jsonl from stdin differs from --input FILE"
# a multi-line prompt routes as the text with its newline, not as two prompts
printf 'First line of the prompt.\nSecond line: define negligence.' >"$T/ml.txt"
$R "$(cat "$T/ml.txt")" >"$T/o6" 2>/dev/null
same "jsonl multi-line prompt = the same text as an argument" "$T/o6" 'r["model"]' \
    "$(sed -n 2p "$T/o4" | field /dev/stdin 'r["model"]')"
# plain mode routes a JSONL line as its literal text
$R <"$T/p.jsonl" >"$T/o7" 2>/dev/null
same "lines mode routes JSONL as its literal text" "$T/o7" 'r["id"], r["prompt"][:2]' \
    "(1, '{\"') (2, 'no') (3, '{\"') (4, '{\"') (6, '{\"') (7, '{\"') (8, '{\"')"

# --- the prompt excerpt: at most 80 bytes, cut on a character, "…" marks it
LONG=$("$PYTHON" -c 'print("What is a tort in law " + "\u00e9" * 100)')
export LONG
$R "$LONG" "What is a tort?" >"$T/o8" 2>/dev/null
same "excerpt: 80 bytes, ends in an ellipsis" "$T/o8" 'len(r["prompt"].encode())' "79 15"
same "excerpt: a prefix of the prompt" "$T/o8" 'r["prompt"].endswith("\u2026") and r["prompt"][:-1] in os.environ["LONG"]' \
    "True False"
$R --echo-prompt "$LONG" >"$T/o9" 2>/dev/null
got=$(field "$T/o9" 'r["prompt"]')
[ "$got" = "$LONG" ] && ok || bad "--echo-prompt should print the whole prompt"
same "argument ids are their positions" "$T/o8" 'r["id"]' "1 2"

# --- errors
expect 1 "^tinyroute route: cannot read $T/none.txt: No such file" -- $R --input "$T/none.txt"
expect 1 "^tinyroute route: cannot read $T: is a directory" -- $R --input "$T"
expect 2 "--format must be lines or jsonl, not 'csv'" -- $R --format csv
expect 2 "not with PROMPT arguments" -- $R --input "$T/plain.txt" "What is a tort?"
expect 2 "does not take --echo-prompt" -- "$CLI" embed --pack "$FIXTURE_PACK" --key "$PUB" --echo-prompt hi
# a NUL byte in a plain line is reported, the other lines still routed
printf 'What is a tort?\nbad\000line\nWhat is 2+2?\n' >"$T/nul.txt"
$R --input "$T/nul.txt" >"$T/o10" 2>"$T/e10"
rc=$?
[ "$rc" = 1 ] && grep -q "nul.txt:2: NUL byte" "$T/e10" && ok || bad "NUL line: exit $rc, $(cat "$T/e10")"
same "lines around a NUL line still routed" "$T/o10" 'r["id"]' "1 3"

# a line over TRH_LINE_MAX (16 MiB) is reported and skipped, unstored; the
# next line is still routed
{ echo "What is a tort?"; yes word | tr -d '\n' | head -c 17000000; echo; echo "What is 2+2?"; } >"$T/big.txt"
$R --input "$T/big.txt" >"$T/o11" 2>"$T/e11"
rc=$?
[ "$rc" = 1 ] && grep -q "big.txt:2: line longer than 16777216 bytes" "$T/e11" && ok ||
    bad "long line: exit $rc, $(head -c 300 "$T/e11")"
same "lines around a too-long line still routed" "$T/o11" 'r["id"]' "1 3"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
