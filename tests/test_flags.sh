#!/bin/sh
# The numeric contract (platform/tr_numeric.h), tested as an integrator would
# break it: the library's sources compiled with someone else's flags, linked
# to tests/flags_driver.c, must compute every float of tr_embed, the
# routes of every method, the quantiser, the governor, task selection and
# the exported outcome log to the same bits as the reference build
# (the Makefile's flags). Variants:
#   distro   cc -O2 -g                    (Debian's default: gnu17, gcc fuses;
#            with -fPIC -fvisibility=hidden, as a shared build, whose
#            exports must be exactly the header's TR_API functions)
#   native   cc -O3 -march=native         (FMA, AVX-512 where the host has them)
#   clang    clang -O2 -march=native      (clang's own default contraction)
#   aarch64  aarch64-linux-gnu-gcc -std=gnu11 -O2, run under qemu-aarch64
# Env: BUILD LIB_SRC REF_LIB REF_CFLAGS PACK POINT PROMPTS [A64_PROMPTS] [SKIP_A64]
set -u
pass=0 fail=0
dir=$BUILD/flags
mkdir -p "$dir"
LIBS="-lmbedcrypto -lsleef -lm"
INC="-Icore -Iplatform -Imodels"

# build NAME CC FLAGS: the library in $dir/NAME/ with CC FLAGS, the driver
# with CC and the reference flags.
build() {
    name=$1 cc=$2 flags=$3 out=$dir/$1
    rm -rf "$out" && mkdir -p "$out/obj"
    # Two compilers at a time: the machine is shared.
    for src in $LIB_SRC; do printf '%s\n' "$src"; done |
        xargs -P 2 -I{} sh -c "$cc $flags $INC -c {} -o $out/obj/\$(echo {} | tr / _).o" \
            2> "$out/build.log" &&
        ar rcs "$out/lib.a" "$out"/obj/*.o &&
        $cc $REF_CFLAGS -o "$out/driver" tests/flags_driver.c "$out/lib.a" $LIBS 2>> "$out/build.log" ||
        { cat "$out/build.log"; return 1; }
}

# same NAME RUNNER PROMPTS REFERENCE: run the variant's driver, compare.
same() {
    name=$1 runner=$2 prompts=$3 ref=$4
    if ! $runner "$dir/$name/driver" "$PACK" "$POINT" "$prompts" > "$dir/$name/out.txt"; then
        echo "FAIL $name: the driver failed"; fail=$((fail + 1)); return
    fi
    if cmp -s "$ref" "$dir/$name/out.txt"; then
        echo "ok   $name: $(wc -l < "$ref") lines identical to the reference build"
        pass=$((pass + 1))
    else
        # The first differing line names the prompt and the route.
        first=$(diff "$ref" "$dir/$name/out.txt" | sed -n 2p | cut -c1-160)
        echo "FAIL $name: output differs from the reference build; first: $first"
        fail=$((fail + 1))
    fi
}

# The reference: the library exactly as `make` built it.
mkdir -p "$dir/ref"
if ! cc $REF_CFLAGS -o "$dir/ref/driver" tests/flags_driver.c "$REF_LIB" $LIBS ||
    ! "$dir/ref/driver" "$PACK" "$POINT" "$PROMPTS" > "$dir/ref/out.txt"; then
    echo "reference build failed"
    echo "0 passed, 1 failed"
    exit 1
fi
# The reference output must itself say something: embeddings, every method.
for want in ' e=[0-9a-f]' ' knn=[0-9]' ' clus=[0-9]' ' lmap=[0-9]' ' f32=[0-9]' ' gov=[0-9]' ' task=[0-9]'; do
    if ! grep -q -- "$want" "$dir/ref/out.txt"; then
        echo "FAIL reference output has no '$want'"
        fail=$((fail + 1))
    fi
done

for v in "distro|cc|-O2 -g -fPIC -fvisibility=hidden" "native|cc|-O3 -march=native" "clang|clang|-O2 -march=native"; do
    name=${v%%|*} rest=${v#*|}
    cc=${rest%%|*} flags=${rest#*|}
    if ! command -v "$cc" >/dev/null; then
        echo "FAIL $name: no $cc"; fail=$((fail + 1)); continue
    fi
    if build "$name" "$cc" "$flags"; then
        same "$name" "" "$PROMPTS" "$dir/ref/out.txt"
    else
        echo "FAIL $name: build failed"; fail=$((fail + 1))
    fi
done

# The distro objects are also an integrator's shared build with
# -fvisibility=hidden: TR_API must export exactly the functions the header
# declares, and no internal tr_ helper (its static inline tr_query_*
# helpers are compiled into the caller: no library symbols).
out=$dir/distro
if [ -f "$out/lib.a" ] && cc -shared -o "$out/lib.so" "$out"/obj/*.o $LIBS; then
    sed -n '/^static/d; s/^[A-Za-z_].*[ *]\(tr_[a-z0-9_]*\)(.*/\1/p' core/tinyroute.h | sort > "$out/want"
    nm -D --defined-only "$out/lib.so" | awk '{print $3}' | sort > "$out/got"
    if [ -s "$out/want" ] && cmp -s "$out/want" "$out/got"; then
        echo "ok   hidden: -fvisibility=hidden exports the header's $(wc -l < "$out/want") functions, nothing else"
        pass=$((pass + 1))
    else
        echo "FAIL hidden: exported symbols differ from the header's functions:"
        diff "$out/want" "$out/got" | head -5
        fail=$((fail + 1))
    fi
else
    echo "FAIL hidden: no shared library from the distro objects"; fail=$((fail + 1))
fi

if [ -z "${SKIP_A64:-}" ]; then
    # Under qemu a subset of the prompts (A64_PROMPTS: the first of them),
    # compared with the native reference's output for the same subset.
    a64p=${A64_PROMPTS:-$PROMPTS}
    "$dir/ref/driver" "$PACK" "$POINT" "$a64p" > "$dir/ref/out-a64.txt" &&
        if build aarch64 aarch64-linux-gnu-gcc "-std=gnu11 -O2"; then
            same aarch64 "qemu-aarch64 -cpu max -L ${QEMU_LD:-/}" "$a64p" "$dir/ref/out-a64.txt"
        else
            echo "FAIL aarch64: build failed"; fail=$((fail + 1))
        fi
fi
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
