#!/bin/sh
# The layer rule (README "What is where"): imports go one way,
#   tools -> core -> models -> platform, and models/fit (host fitting) sits
#   beside tools: it may use models and platform, never core.
# Checked three ways, each failure named with file:line or symbol:
#   1. every quoted #include resolves, by basename, to a directory the
#      including file's row allows (no "../" paths; basenames unique);
#   2. tests/example (what an integrator writes) includes only <tinyroute.h>;
#   3. with BUILD's objects (if built): the device library defines only tr_/TR_
#      globals, models/ and platform/ objects call nothing defined in core/,
#      and host objects define only trh_ names (plus main and the cmd_ table).
# Usage: tests/check_layers.sh [BUILD]   Prints "N passed, M failed".
set -u
BUILD=${1:-build}
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

DIRS="platform models models/fit core tools"
# may_include DIR: the directories DIR's files may include from.
may_include() {
    case $1 in
        platform) echo "platform" ;;
        models) echo "models platform" ;;
        models/fit) echo "models/fit models platform" ;;
        core) echo "core models platform" ;;
        tools) echo "tools core models/fit models platform" ;;
    esac
}

# 1a. One file per basename across the layers: an include by basename must
# name exactly one file, and object names must not collide in the archive.
dups=$(for d in $DIRS; do ls "$d" | grep '\.[ch]$'; done | sort | uniq -d)
if [ -z "$dups" ]; then ok; else bad "basenames in more than one layer: $(echo $dups)"; fi

# 1b. Every quoted include of every file against its row.
map=$(for d in $DIRS; do for f in "$d"/*.[ch]; do [ -e "$f" ] && echo "$(basename "$f") $d"; done; done)
n_checked=0
for d in $DIRS; do
    allowed=" $(may_include "$d") "
    for f in "$d"/*.[ch]; do
        [ -e "$f" ] || continue
        out=$(grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$f" |
            sed 's/^\([0-9]*\):.*"\(.*\)".*/\1 \2/' |
            while read -r line inc; do
                where=$(printf '%s\n' "$map" | awk -v b="${inc##*/}" '$1 == b { print $2 }')
                case $inc in
                    ../*|*/../*) echo "$f:$line: includes \"$inc\" by a relative path"; continue ;;
                    */*) [ -n "$where" ] && echo "$f:$line: includes \"$inc\" by a path: name the file, the -I flags say where"
                         continue ;; # a dependency's header (mbedtls/...)
                esac
                if [ -z "$where" ]; then
                    echo "$f:$line: \"$inc\" is in no layer (${DIRS})"
                else
                    case $allowed in
                        *" $where "*) ;;
                        *) echo "$f:$line: $d/ includes $where/$inc (allowed: $(may_include "$d"))" ;;
                    esac
                fi
            done)
        n_checked=$((n_checked + 1))
        if [ -z "$out" ]; then ok; else bad "$out"; fi
    done
done
[ "$n_checked" -ge 40 ] || bad "only $n_checked files checked: wrong working directory?"

# 2. The integrator's example sees the public header only.
for f in tests/example/*.c; do
    [ -e "$f" ] || { bad "no tests/example/*.c"; break; }
    out=$(grep -n '#[[:space:]]*include' "$f" | grep -v '<[a-z0-9_/]*\.h>' ; \
          grep -n '#[[:space:]]*include[[:space:]]*<\(tr_\|tinyroute_\)' "$f")
    if [ -z "$out" ]; then ok; else bad "$f: includes beyond <tinyroute.h>: $out"; fi
done

# 3. Symbols of the device library as built (the archive's members, so no
# stale object counts), when it is there (make builds it before the tests).
lib=$BUILD/libtinyroute.a
if [ -f "$lib" ]; then
    NM=${NM:-nm}
    core_members=" $(for f in core/*.c; do basename "$f" .c; done | tr '\n' ' ')"
    # "member.o: T symbol" per line, from nm -A's "lib.a:member.o: addr T sym"
    syms=$($NM -A "$lib" 2>/dev/null | sed 's/^[^:]*:\([^:]*\)\.o: *[0-9a-f]* *\([A-Za-z]\) \(.*\)$/\1 \2 \3/')
    stray=$(printf '%s\n' "$syms" | awk '$2 ~ /^[A-TV-Z]$/ && $3 !~ /^(tr_|TR_)/ { print $1 ": " $3 }')
    if [ -z "$stray" ]; then ok; else bad "device library defines non-tr_ globals: $(echo $stray)"; fi
    core_defs=$(printf '%s\n' "$syms" | awk -v c="$core_members" '$2 ~ /^[A-TV-Z]$/ && index(c, " " $1 " ") { print $3 }' | sort -u)
    up=$(printf '%s\n' "$syms" | awk -v c="$core_members" '$2 == "U" && !index(c, " " $1 " ") { print $1 " " $3 }' |
        while read -r m s; do printf '%s\n' "$core_defs" | grep -qx "$s" && echo "$m.o -> $s"; done)
    if [ -z "$up" ]; then ok; else bad "models/ or platform/ call core/: $(echo $up)"; fi
    [ "$(printf '%s\n' "$core_defs" | grep -c '^tr_')" -ge 20 ] && ok || bad "fewer than 20 core symbols read from $lib"
    # Host code (tools/, models/fit/) has its own prefix, so a reader knows
    # from a name alone whether it can run on the device.
    host_objs=$(for f in tools/*.c models/fit/*.c; do o=$BUILD/obj/${f%.c}.o; [ -f "$o" ] && echo "$o"; done)
    host_stray=$($NM -g --defined-only $host_objs | awk 'NF == 3 && $3 !~ /^(trh_|TRH_|cmd_)/ && $3 != "main" { print $3 }' | sort -u)
    if [ -z "$host_stray" ]; then ok; else bad "host objects define names without trh_: $(echo $host_stray)"; fi
else
    echo "(no $lib: symbol checks skipped; run make first)"
fi

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
