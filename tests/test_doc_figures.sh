#!/bin/sh
# Figures in the docs come from the code (issue 14 item 3): every size, limit
# and count that README.md, core/INTEGRATION.md, core/DEVICE_CRYPTO.md,
# core/PACK_FORMAT.md (and the header's comment) quote and the code can
# compute is recomputed here and looked up, in its sentence, in the doc. A
# figure that drifts fails with the computed value. Code sizes depend on the
# compiler: the docs round them to KB and this allows 10% either way.
#
#   sh tests/test_doc_figures.sh                 run.sh's env: BUILD FIXTURE_PACK
#                                                FIXTURE PYTHON CLI [RUNNER]
#   sh tests/test_doc_figures.sh --device DIR    make test-device: the device
#                                                build's code sizes only
set -u
. tests/expect.sh

# The docs wrap lines: compare against each file as one line, spaces squeezed.
for f in README.md core/INTEGRATION.md core/DEVICE_CRYPTO.md core/PACK_FORMAT.md core/tinyroute.h; do
    tr '\n' ' ' <"$f" | tr -s ' ' >"$T/$(basename "$f").flat"
done
# comma 6336 -> 6,336 (the docs' style for numbers over 9,999... and 4 digits).
comma() { printf '%s' "$1" | sed -E ':a;s/^([0-9]+)([0-9]{3})/\1,\2/;ta'; }
# has FILE TEXT: FILE says TEXT (whitespace-insensitive).
has() {
    if grep -qF -- "$2" "$T/$(basename "$1").flat"; then ok; else
        bad "$1 does not say '$2' (computed from the code; fix the doc or the code)"
    fi
}
# kb FILE PREFIX ARCH BYTES: the first "ARCH about N KB" after PREFIX (within
# its clause, up to ';') is within 10% of BYTES.
kb() {
    n=$(sed -nE "s/.*$2[^;]*$3 about ([0-9]+) KB.*/\\1/p" "$T/$(basename "$1").flat" | head -n 1)
    if [ -z "$n" ]; then
        bad "$1: no '$3 about N KB' after '$2'"
    elif [ $(($4 * 10)) -ge $((n * 9000)) ] && [ $(($4 * 10)) -le $((n * 11000)) ]; then
        ok
    else
        bad "$1 says $2 $3 about $n KB; size -t measures $4 bytes (more than 10% off)"
    fi
}
# total_size SIZE ARCHIVE: text+data+bss of every member.
total_size() { "$1" -t "$2" | awk '/TOTALS/ {print $4}'; }

if [ "${1:-}" = --device ]; then
    dev=$2
    case $dev in *aarch64*) arch=aarch64 size=aarch64-linux-gnu-size ;; *) arch=x86-64 size=size ;; esac
    kb core/DEVICE_CRYPTO.md "device libtinyroute.a:" "$arch" "$(total_size "$size" "$dev/libtinyroute.a")"
    kb core/DEVICE_CRYPTO.md "minimal libmbedcrypto.a" "$arch" "$(total_size "$size" "$dev/libmbedcrypto.a")"
    echo "$pass passed, $fail failed"
    [ "$fail" = 0 ]
    exit
fi

# The library's own numbers, for this target (run under RUNNER when cross).
cc=cc size=size arch=x86-64
case "${RUNNER:-}" in qemu-aarch64*) cc=aarch64-linux-gnu-gcc size=aarch64-linux-gnu-size arch=aarch64 ;; esac
[ -z "${RUNNER:-}" ] && [ "$(uname -m)" = aarch64 ] && arch=aarch64
if ! $cc ${LIB_CFLAGS:-} -std=c11 -Wall -Wextra -Werror -DTR_DEVICE_CRYPTO -Icore -Iplatform -Imodels -o "$T/doc_figures" \
    tests/doc_figures.c "$BUILD/libtinyroute.a" -lmbedcrypto -lsleef -lm 2>"$T/cc.err"; then
    bad "tests/doc_figures.c does not build: $(head -c 300 "$T/cc.err")"
    echo "$pass passed, $fail failed"
    exit 1
fi
${RUNNER:-} "$T/doc_figures" "$FIXTURE_PACK" >"$T/fig" || bad "doc_figures failed on $FIXTURE_PACK"
fig() { v=$(sed -n "s/^$1 //p" "$T/fig"); [ -n "$v" ] || bad "doc_figures printed no $1"; printf '%s' "$v"; }
D=$(fig pack_dim) M=$(fig pack_models)
[ "$(fig pack_prefilter)" = 0 ] && ok || bad "the fixture pack has a prefilter: the demo-pack figures assume none"

# View, context, task accumulator, counter slot, crypto pool.
has README.md "exact: $(comma "$(fig ctx_pack)") B for */ info.prefilter_candidates); /* the fixture pack */"
has core/INTEGRATION.md "a view is $(comma "$(fig pack_object)") bytes"
has core/INTEGRATION.md "a context $(comma "$(fig ctx_pack)") bytes for the demo pack (D=$D, $M models)"
has core/INTEGRATION.md "$(comma "$(fig ctx_768_32)") for D=768 and 32 models"
[ "$(fig pack_object)" -le 2048 ] && ok || bad "README's and INTEGRATION.md's 2048-byte view buffer is below tr_pack_size() = $(fig pack_object)"
[ "$(fig prefilter_fixed)" != -1 ] && ok || bad "the prefilter's context bytes are not r16(8*ceil(D/64)) + constant + r16(8*C)"
has core/INTEGRATION.md "adds \`r16(8 * ceil(D/64)) + $(comma "$(fig prefilter_fixed)") + r16(8 * C)\` bytes"
has core/INTEGRATION.md "($(fig task_pack) bytes for $M models)"
# The local store: per entry roundup16(D) + 28 + 8*M (M <= 64), and 1,024 entries.
[ "$(fig local_entry)" = $(( (D + 15) / 16 * 16 + 28 + 8 * M )) ] && ok ||
    bad "tr_local_size grows by $(fig local_entry) bytes per entry, not INTEGRATION.md's roundup16(D) + 28 + 8*M"
has core/INTEGRATION.md "$(fig local_entry) bytes per entry, $(fig local_entry) KiB for 1,024 entries (\`tr_local_size\` = $(comma "$(fig local_1024)") bytes)"
has core/INTEGRATION.md "\`tr_counter_slot\` ($(fig counter_slot) bytes:"
pool=$(fig pool)
has core/INTEGRATION.md "\`TR_CRYPTO_POOL_BYTES\`, $(comma "$pool") B as shipped"
has core/tinyroute.h "TR_CRYPTO_POOL_BYTES ($(comma "$pool") B as shipped)"
has core/DEVICE_CRYPTO.md "| shipped pool \`TR_CRYPTO_POOL_BYTES\` | $pool B | $pool B |"
has core/DEVICE_CRYPTO.md "the $(comma "$pool")-byte pool is in the device library's bss"
# The pool's margin over the measured need (the need itself is measured by
# make test-device): the doc's "plus P% (X B)" must follow from the shipped pool.
need=$(sed -nE 's/.*\| need, max over [^|]*\| ([0-9]+) B \|.*/\1/p' "$T/DEVICE_CRYPTO.md.flat")
if [ -n "$need" ]; then
    has core/DEVICE_CRYPTO.md "The pool is the largest need plus $(((pool - need) * 100 / need))% ($((pool - need)) B)"
else
    bad "core/DEVICE_CRYPTO.md: no 'need, max over ...' row"
fi

# Pack bytes, from the fixture pack's own section table.
"$CLI" inspect --json "$FIXTURE_PACK" >"$T/inspect.json" || bad "inspect failed"
"$PYTHON" - "$T/inspect.json" >"$T/pack" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
s = {x["name"]: x for x in d["sections"]}
print("row", s["ref_i8"]["stride"])
print("norm", s["ref_invnorm"]["length"] // s["ref_invnorm"]["count"])
print("record", s["models"]["stride"])
print("emb_mb", "%.1f" % (s["embedder"]["length"] / 1e6))
print("pack_mb", "%.1f" % (d["bytes"] / 1e6))
PY
pk() { sed -n "s/^$1 //p" "$T/pack"; }
row=$(pk row) norm=$(pk norm)
has core/INTEGRATION.md "a float norm: $((row + norm)) bytes at D = $D)"
has core/INTEGRATION.md "a reference costs $((row + norm)) bytes ($row-byte int8 row + $norm-byte norm)"
has core/INTEGRATION.md "+ $((8 * ((D + 63) / 64))) bytes with the prefilter"
has core/INTEGRATION.md "a model costs a $(pk record)-byte record"
has core/INTEGRATION.md "($(pk emb_mb) MB of the $(pk pack_mb) MB demo pack)"
has core/INTEGRATION.md "The embedder table is $(pk emb_mb) MB for 50k words"

# The format's constants (platform/tr_format.h, core/tinyroute.h).
has core/PACK_FORMAT.md "| header ($(fig header_bytes) bytes) |"
has core/PACK_FORMAT.md "| section table (n x $(fig section_entry_bytes) bytes) |"
has core/PACK_FORMAT.md "end of file = signed_bytes + $(fig trailer_fixed) + sig_len"
has core/PACK_FORMAT.md "number of sections (at most $(fig max_sections))"
has core/PACK_FORMAT.md "M records of $(fig model_record) bytes"
has core/PACK_FORMAT.md "(it is at most $(fig sig_max) bytes)"
has core/PACK_FORMAT.md "1 ≤ D ≤ $(fig dim_max);"
has core/PACK_FORMAT.md "\`TR_MODELS_MAX\` ($(fig models_max);"
has core/PACK_FORMAT.md "C ≤ \`TR_PREFILTER_MAX\` ($(fig prefilter_max))"
has core/PACK_FORMAT.md "1 ≤ k ≤ \`TR_K_MAX\` ($(fig k_max))"
has core/PACK_FORMAT.md "[0, \`TR_PRIOR_STRENGTH_MAX\`] = [0, $(fig prior_max)]"
has core/PACK_FORMAT.md "n_added ≤ \`TR_DELTA_MAX_ADDED\` ($(fig delta_max_added))"
has core/PACK_FORMAT.md "claims more than $(fig delta_max_added) added models"
has core/PACK_FORMAT.md "K equals the clusters' K, ≤ $(fig lmap_max_k)"

# The builder's sampling constants (tools/, host only: read from the source).
def() { sed -nE "s/^#define $2 ([0-9]+)u?.*/\\1/p" "$1"; }
has README.md "up to $(comma "$(def tools/choose.h TRH_CHOOSE_QUERIES)") of the references"
has README.md "beyond $(comma "$(def tools/cmd_build.c TR_TASK_ALL_QUERIES)") references on a fixed sample of $(def tools/cmd_build.c TR_TASK_QUERIES) prompts per task"
has core/INTEGRATION.md "Up to $(comma "$(def tools/cmd_build.c TR_TASK_ALL_QUERIES)") references every reference is a query"
has core/INTEGRATION.md "of $(def tools/cmd_build.c TR_TASK_QUERIES) queries"
has core/INTEGRATION.md "at most $(def tools/cmd_build.c TR_KM_PER_CLUSTER) references per centroid"

# The fixture's counts (README): prompts, models, held-out prompts whose
# every score is known (the ones eval scores).
"$PYTHON" - "$FIXTURE" >"$T/fx" <<'PY'
import csv, json, sys
d = sys.argv[1]
prompts = [json.loads(l) for l in open(d + "/prompts.jsonl")]
rows = {r[0]: r[1:] for r in csv.reader(open(d + "/correctness.csv"))}
models = list(csv.reader(open(d + "/models.csv")))[1:]
test = [p for p in prompts if p["split"] == "test"]
print("n", len(prompts)); print("m", len(models))
print("known", sum(all(c != "" for c in rows[p["id"]]) for p in test))
PY
fx() { sed -n "s/^$1 //p" "$T/fx"; }
has README.md "$(comma "$(fx n)") real MMLU-Pro prompts × $(fx m) models"
has README.md "($(fx known) held-out MMLU-Pro prompts whose $(fx m) scores are all known"

# Code size: the host library of this target (the device build's:
# make test-device runs the --device mode). The docs give the default
# build's; extra flags (test-asan's sanitizers, SCALAR=1) change both
# figures below, so they are not compared then.
if [ -n "${LIB_CFLAGS:-}" ]; then
    echo "(code size and heap calls not compared: library built with $LIB_CFLAGS)"
else
    kb core/INTEGRATION.md "host libtinyroute.a:" "$arch" "$(total_size "$size" "$BUILD/libtinyroute.a")"
    # Heap calls of one pack load in the host build (test_noalloc counts them).
    if [ -z "${RUNNER:-}" ]; then
        heap=$(FIXTURE_PACK=$FIXTURE_PACK "$BUILD/test_noalloc" 2>&1 | sed -nE 's/.*pack load ([0-9]+) \(inside mbedTLS\).*/\1/p')
        doc=$(sed -nE 's/.*which makes about ([0-9,]+) heap calls.*/\1/p' "$T/DEVICE_CRYPTO.md.flat" | tr -d ,)
        if [ -n "$heap" ] && [ -n "$doc" ] && [ $((heap * 10)) -ge $((doc * 9)) ] && [ $((heap * 10)) -le $((doc * 11)) ]; then
            ok
        else
            bad "core/DEVICE_CRYPTO.md says about ${doc:-?} heap calls per pack load; test_noalloc counts ${heap:-?}"
        fi
    fi
fi

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
