# The shell suites' shared harness (sourced): a scratch dir $T removed on
# exit, pass/fail counts, and expect CODE PATTERN -- command... which checks
# the exit code and a pattern in stdout+stderr.
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0

ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

expect() {
    code=$1 pat=$2
    shift 3
    "$@" >"$T/out" 2>"$T/err"
    got=$?
    if [ "$got" != "$code" ]; then
        bad "$* -> exit $got, want $code: $(head -c 300 "$T/err")"
    elif [ -n "$pat" ] && ! grep -qE -- "$pat" "$T/out" "$T/err"; then
        bad "$* -> output lacks /$pat/: $(head -c 300 "$T/err")"
    else
        ok
    fi
}
