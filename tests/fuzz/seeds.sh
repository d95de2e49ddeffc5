#!/bin/sh
# Generate the fuzz seed corpora from the real fixture data (nothing binary
# is committed). Packs: built by the CLI from a 40-prompt slice of
# fixtures/mmlu-pro-2k with a 40-word embedder, so the sections the parser
# walks are not drowned by a 6 MB embedder table; one pack per option set,
# so every section kind appears. Outcome logs: exported by the CLI (route
# --log-out) and by the device API (LOG_SEEDS, tests/fuzz/log_seeds.c) over
# the delta seeds' base. Usage (mk/fuzz.mk runs it):
#   seeds.sh CLI WINK_JSON FIXTURE_DIR KEY OTHER_KEY OUT_DIR LOG_SEEDS
set -eu
CLI=$1 WINK=$2 FIX=$3 KEY=$4 OTHER=$5 OUT=$6 LOG_SEEDS=$7
PUB=${KEY%.key}.pub
rm -rf "$OUT"
mkdir -p "$OUT/pack" "$OUT/embed" "$OUT/import" "$OUT/delta" "$OUT/log" "$OUT/inspect" "$OUT/work"
W=$OUT/work

# ---- datasets: every 50th prompt (the file is grouped by task, so this
# spans all of them), with all 27 models and with a device + 2 cloud slice.
slice() { # dir models-awk-filter
    mkdir -p "$1"
    awk 'NR % 50 == 1' "$FIX/prompts.jsonl" > "$1/prompts.jsonl"
    sed -n 's/^{"id":"\([^"]*\)".*/\1/p' "$1/prompts.jsonl" > "$W/ids"
    awk -F, "NR == 1 || $2" "$FIX/models.csv" > "$1/models.csv"
    # Keep the id column and the kept models' columns, the sliced rows only.
    awk -F, -v OFS=, 'FNR == NR { if (FNR > 1) keep[$1] = 1; next }
        FILENAME ~ /ids$/ { want[$1] = 1; next }
        FNR == 1 { n = 0; col[++n] = 1; for (i = 2; i <= NF; i++) if ($i in keep) col[++n] = i }
        FNR == 1 || ($1 in want) { s = $col[1]; for (j = 2; j <= n; j++) s = s OFS $col[j]; print s }' \
        "$1/models.csv" "$W/ids" "$FIX/correctness.csv" > "$1/correctness.csv"
}
slice "$W/ds27" '1'
slice "$W/ds3" '$3 == "device" || $1 == "Llama-2-7b-hf" || $1 == "Qwen1.5-110B"'

"$CLI" embedder --wink "$WINK" --words 40 --out "$W/emb40.bin" >/dev/null

b() { # name dataset extra-args...
    name=$1 ds=$2
    shift 2
    "$CLI" build --data "$ds" --embedder "$W/emb40.bin" --key "$KEY" --split all \
        --out "$OUT/pack/$name.trp" --force "$@" >/dev/null
}
b plain       "$W/ds27"
b prefilter   "$W/ds27" --no-tasks --prefilter 8 --k 5
b clusters    "$W/ds27" --clusters 4 --learned-map --k 7 --lambda 0.2
b nopc        "$W/ds3"  --no-tasks --no-pc --clusters 3 --counter 9 --expires-days 30
b three       "$W/ds3"  --split train --k 3 --prefilter 4
# A hashed n-gram embedder (small: 1024 rows x 8): the parser's other table
# kind, and the second embedder fuzz_embed routes every input with.
"$CLI" embedder --hashed --prompts "$W/ds3/prompts.jsonl" --rows 1024 --dim 8 \
    --out "$W/hashed.bin" >/dev/null
"$CLI" build --data "$W/ds3" --embedder "$W/hashed.bin" --key "$KEY" --split all \
    --out "$OUT/pack/hashed.trp" --force --clusters 3 >/dev/null
cp "$OUT/pack/hashed.trp" "$OUT/hashed.trp"
# Signed by the key the harness revokes: reaches the revocation check.
"$CLI" build --data "$W/ds3" --embedder "$W/emb40.bin" --key "$OTHER" --split all \
    --out "$OUT/pack/other-key.trp" --force --no-tasks >/dev/null

# ---- prompts: real ones, plus the tokenizer's corner cases.
# Delta packs over one base (kept apart from the pack corpus, which mutates).
cp "$OUT/pack/nopc.trp" "$OUT/base.trp"
"$CLI" add-model --pack "$OUT/base.trp" --key "$KEY" --data "$W/ds27" --split all \
    --model Mistral-7B-v0.1 --model Yi-34B --out "$OUT/delta/add.trd" --force >/dev/null
"$CLI" retire-model --pack "$OUT/base.trp" --delta "$OUT/delta/add.trd" --key "$KEY" \
    --model Llama-2-7b-hf --model Yi-34B --out "$OUT/delta/retire.trd" --force >/dev/null
"$CLI" calibrate --pack "$OUT/base.trp" --delta "$OUT/delta/retire.trd" --key "$KEY" \
    --prompts "$W/ds27/prompts.jsonl" --cloud-share 0.5 --out "$OUT/delta/calibrate.trd" \
    --force >/dev/null

# ---- outcome logs over that base (fuzz_log routes them again with it).
# Real prompts (some with the dataset's exact text, so --outcomes finds
# their scores), one with no known word (routed on priors), one longer than
# a record's text slot and UTF-8 (cut on a character boundary).
sed -n 's/.*"text":"\([^"\\]*\)".*/\1/p' "$W/ds27/prompts.jsonl" | head -n 12 > "$W/lines"
sed -n 's/.*"text":"\(\([^"\\]\|\\.\)*\)".*/\1/p' "$W/ds27/prompts.jsonl" | sed -n '13,16p' >> "$W/lines"
printf 'zzqqxx qqzzyy\n' >> "$W/lines"
{ printf 'caf\303\251 '; printf 'what is the meaning of this long question %.0s' $(seq 1 8); printf '\342\202\254\n'; } >> "$W/lines"
lg() { # name route-args...
    name=$1
    shift
    "$CLI" route --pack "$OUT/base.trp" --key "$PUB" --log-out "$OUT/log/$name.trl" "$@" \
        < "$W/lines" >/dev/null
}
HK=000102030405060708090a0b0c0d0e0f
lg cli-emb --outcomes "$W/ds27"
lg cli-all --delta "$OUT/delta/add.trd" --log-flags embedding,hash,text --log-key $HK \
    --outcomes "$W/ds27"
lg cli-wrapped --log-flags none --log-capacity 4 --outcomes "$W/ds27"
lg cli-hash-text --method cluster --log-flags hash,text --log-key $HK
"$LOG_SEEDS" "$OUT/base.trp" "$OUT/delta/add.trd" "$PUB" "$OUT/log"

# ---- inspect: packs and deltas as they are, and header fields at their
# extremes (each once crashed it: u64 signed bytes wrapped the sum with the
# trailer size; a date gmtime refused left the buffer unterminated).
cp "$OUT"/pack/* "$OUT"/delta/* "$OUT/inspect/"
patch_at() { # file offset bytes(printf escapes)
    printf "$3" | dd of="$1" bs=1 seek="$2" conv=notrunc 2>/dev/null
}
cp "$OUT/pack/plain.trp" "$OUT/inspect/signed-max"
patch_at "$OUT/inspect/signed-max" 88 '\377\377\377\377\377\377\377\377'
cp "$OUT/pack/plain.trp" "$OUT/inspect/sections-max"
patch_at "$OUT/inspect/sections-max" 84 '\040\000\000\000'
head -c 200 "$OUT/pack/plain.trp" > "$OUT/inspect/cut"
# Times gmtime cannot convert: created 2^64-1, expires 2^63-1.
cp "$OUT/pack/plain.trp" "$OUT/inspect/times-max"
patch_at "$OUT/inspect/times-max" 24 '\377\377\377\377\377\377\377\377\377\377\377\377\377\377\377\177'
# A log whose dim rounds up past 2^32 (an embedding "fits" a 64-byte record).
cp "$OUT/log/api-empty.trl" "$OUT/log/dim-wrap.trl"
patch_at "$OUT/log/dim-wrap.trl" 16 '\100\000\000\000\001\000\000\000\371\377\377\377'

awk 'NR % 97 == 3' "$FIX/prompts.jsonl" | sed -n 's/.*"text":"\(\([^"\\]\|\\.\)*\)".*/\1/p' |
    head -n 20 | { i=0; while IFS= read -r t; do printf '%b' "$t" > "$OUT/embed/real$i"; i=$((i+1)); done; }
printf 'The QUICK brown fox, 3x+7=22?' > "$OUT/embed/case"
printf 'caf\303\251 na\303\257ve \360\237\230\200 \344\270\255\346\226\207' > "$OUT/embed/utf8"
printf 'zzqqxx qqzzyy' > "$OUT/embed/unknown"
printf 'a%.0s' $(seq 1 70) > "$OUT/embed/longword"
printf 'bad \300\257 overlong' > "$OUT/embed/badutf8"

# ---- datasets for the loader: the three files joined by "\n\x1e\n".
join3() { # out models prompts correctness
    { cat "$2"; printf '\n\036\n'; cat "$3"; printf '\n\036\n'; cat "$4"; } > "$1"
}
join3 "$OUT/import/ds3" "$W/ds3/models.csv" "$W/ds3/prompts.jsonl" "$W/ds3/correctness.csv"
printf 'name,cost,where,extra\r\n"dev, ice",1.5,device,x\r\nbig,70,cloud,\r\n' > "$W/m"
printf '{"id":7,"text":"two words","task":null}\n\n{"id":"b","text":"caf\\u00e9 \\"q\\"","split":"test"}\n' > "$W/p"
printf '\357\273\277id,big,"dev, ice"\r\n7,1,0.25\r\nb,,"1"\r\n' > "$W/c"
join3 "$OUT/import/quoted" "$W/m" "$W/p" "$W/c"
rm -rf "$W"

# ---- local store blobs (fuzz_local): an even first byte builds a store from
# the bytes and exports it (D = 16: 18 bytes an add), an odd one is a raw blob.
mkdir -p "$OUT/local"
printf '\000' > "$OUT/local/empty-store"
head -c 181 /dev/zero | tr '\000' '\041' | { printf '\000'; cat; } > "$OUT/local/ten-adds"
{ printf '\000'; head -c 180 /dev/zero | tr '\000' '\101'; printf '\002\001\000'; } > "$OUT/local/flip"
printf '\001TRLS' > "$OUT/local/raw-magic"
