#!/bin/sh
# Runs every suite and closes with one "N passed, N failed" line summed over
# the suites' own counts. Exit status: non-zero if anything failed.
set -u
total_pass=0 total_fail=0 broken=""
run() {
    name=$1
    shift
    echo "== $name"
    t0=$(date +%s)
    out=$("$@" 2>&1)
    rc=$?
    printf '%s\n' "$out"
    echo "(suite $name: $(($(date +%s) - t0)) s)"
    # cmocka: "[  PASSED  ] N test(s)." / "[  FAILED  ] N test(s)"; scripts:
    # "N passed, M failed".
    p=$(printf '%s\n' "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p; s/^\([0-9]*\) passed, [0-9]* failed.*/\1/p' | tail -n 1)
    f=$(printf '%s\n' "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p; s/^[0-9]* passed, \([0-9]*\) failed.*/\1/p' | tail -n 1)
    p=${p:-0} f=${f:-0}
    if [ "$rc" != 0 ] && [ "$f" = 0 ]; then f=1; fi
    if [ "$p" = 0 ] && [ "$f" = 0 ]; then f=1; echo "(suite $name ran no test)"; fi
    [ "$f" != 0 ] && broken="$broken $name"
    total_pass=$((total_pass + p)) total_fail=$((total_fail + f))
}
# RUNNER (e.g. qemu-aarch64 ...) runs the test binaries of a cross build.
RUNNER=${RUNNER:-}
# KERNELS_ONLY=1: only the suites whose results pass through the dispatched
# kernels (the C suites, routes through the CLI, the fixture pack) -- for a
# second CPU model of one cross build, where nothing else can differ: the
# host logic (fits, deltas, logs, CLI conventions) runs the same instructions
# as under the first model, which ran every suite.
KERNELS_ONLY=${KERNELS_ONLY:-}
host() { [ -z "$KERNELS_ONLY" ]; }
# The layer rule (imports one way; library symbols tr_ only): on the native
# build without sanitizers, whose archive holds exactly the library's code.
if [ -z "$RUNNER" ] && ! printf '%s' "${LIB_CFLAGS:-}" | grep -q sanitize; then
    run layers sh tests/check_layers.sh "$BUILD"
fi
run kernels $RUNNER "$BUILD/test_kernels"
run core $RUNNER "$BUILD/test_core"
run prior $RUNNER "$BUILD/test_prior"
run api $RUNNER "$BUILD/test_api"
# Under qemu the flip loops take one payload byte in 7 (TR_BADINPUT=full:
# every bit of every byte).
run badinput env TR_BADINPUT=${TR_BADINPUT:-${RUNNER:+quick}} $RUNNER "$BUILD/test_badinput"
run task $RUNNER "$BUILD/test_task"
run task-fit $RUNNER "$BUILD/test_task_fit" "$FIXTURE" "$EMBEDDER"
run governor $RUNNER "$BUILD/test_governor"
run outcome $RUNNER "$BUILD/test_outcome"
run noalloc $RUNNER "$BUILD/test_noalloc"
run local $RUNNER "$BUILD/test_local" "$FIXTURE_PACK"
run dataset $RUNNER "$BUILD/test_dataset"
run eval $RUNNER "$BUILD/test_eval"
run sealed $RUNNER "$BUILD/test_sealed" "$FIXTURE_PACK"
# THREADS_PACK (optional): a second pack, with clusters and a prefilter.
run threads $RUNNER "$BUILD/test_threads" "$FIXTURE" "$FIXTURE_PACK" ${THREADS_PACK:+"$THREADS_PACK"}
run local-threads $RUNNER "$BUILD/test_local_threads" "$FIXTURE" "$FIXTURE_PACK"
host && run embedder-table "$PYTHON" tests/test_embedder_table.py "$EMBEDDER" "$WINK_JSON"
run reference "$PYTHON" tests/ref_knn.py "$CLI" "$FIXTURE_PACK" fixtures/keys/test-signing.pub "$FIXTURE"
run tasks "$PYTHON" tests/ref_task.py "$CLI" "$FIXTURE_PACK" fixtures/keys/test-signing.pub "$FIXTURE"
# clusters routes too (centroids, learned map), but most of its time is the
# fits; test_core routes random clusters under every CPU model.
if host; then
    WORK=$(mktemp -d)
    run clusters "$PYTHON" tests/ref_cluster.py "$CLI" "$EMBEDDER" fixtures/keys/test-signing.key fixtures/keys/test-signing.pub "$FIXTURE" "$WORK"
    rm -rf "$WORK"
    WORK=$(mktemp -d)
    run hashed-embedder "$PYTHON" tests/ref_hashed.py "$CLI" fixtures/keys/test-signing.key fixtures/keys/test-signing.pub "$FIXTURE" "$WORK"
    rm -rf "$WORK"
    WORK=$(mktemp -d)
    run delta "$PYTHON" tests/test_delta.py "$CLI" "$EMBEDDER" fixtures/keys/test-signing.key fixtures/keys/test-signing.pub fixtures/keys/test-other.key "$FIXTURE" "$WORK"
    rm -rf "$WORK"
fi
# Native only: build's settings and estimator choice and eval are host logic,
# and under qemu build-choice took 800 s and eval-protocol ~10 min per CPU
# model (build now cross-validates); the kernels they call are checked under
# qemu by test_eval, test_kernels and the reference suites.
if [ -z "$RUNNER" ]; then
    WORK=$(mktemp -d)
    run build-choice "$PYTHON" tests/test_build_choice.py "$CLI" "$EMBEDDER" fixtures/keys/test-signing.key fixtures/keys/test-signing.pub "$FIXTURE" "$WORK"
    rm -rf "$WORK"
    WORK=$(mktemp -d)
    run build-method "$PYTHON" tests/test_build_method.py "$CLI" "$EMBEDDER" fixtures/keys/test-signing.key fixtures/keys/test-signing.pub "$FIXTURE" "$WORK"
    rm -rf "$WORK"
    WORK=$(mktemp -d)
    run log-guard "$PYTHON" tests/test_log_guard.py "$CLI" "$EMBEDDER" fixtures/keys/test-signing.key fixtures/keys/test-signing.pub "$FIXTURE" "$WORK"
    rm -rf "$WORK"
    WORK=$(mktemp -d)
    run eval-protocol "$PYTHON" tests/test_eval_protocol.py "$CLI" "$EMBEDDER" "$FIXTURE" "$WORK"
    rm -rf "$WORK"
    run eval-local "$PYTHON" tests/test_eval_local.py "$CLI" "$EMBEDDER" "$FIXTURE"
fi
if host; then
    WORK=$(mktemp -d)
    run outcome-log "$PYTHON" tests/test_outcome_log.py "$CLI" "$FIXTURE_PACK" fixtures/keys/test-signing.pub fixtures/keys/test-signing.key "$EMBEDDER" "$FIXTURE" "$WORK"
    rm -rf "$WORK"
fi
# The fleet step on Dask (issue 17): native builds without sanitizers only
# (mk/fleet.mk builds its library there).
if [ -z "$RUNNER" ] && [ -f "$BUILD/libtinyroute-host.so" ] && [ -x "$BUILD/gen_fleet_logs" ] &&
   ! printf '%s' "${LIB_CFLAGS:-}" | grep -q sanitize; then
    run fleet-step "$PYTHON" tests/test_fleet_step.py "$BUILD/libtinyroute-host.so" "$BUILD/gen_fleet_logs" "$FIXTURE_PACK" fixtures/keys/test-signing.pub "$FIXTURE" "$CLI" "$EMBEDDER" fixtures/keys/test-signing.key
    run python-binding "$PYTHON" tests/test_tinyroute_py.py "$BUILD/libtinyroute-host.so" "$CLI" "$FIXTURE_PACK" fixtures/keys/test-signing.pub fixtures/keys/test-signing.key "$FIXTURE"
fi
host && run cli sh tests/test_cli.sh
run route-input sh tests/test_route_input.sh
host && run cli-conventions sh tests/test_cli_conventions.sh
run doc-figures sh tests/test_doc_figures.sh
host && run builders sh tests/test_builders.sh
[ -n "${SAME_AS:-}" ] && run same-pack "$PYTHON" tests/same_pack.py "$SAME_AS" "$FIXTURE_PACK"
[ -n "$broken" ] && echo "failing suites:$broken"
echo "tests: $total_pass passed, $total_fail failed"
[ "$total_fail" = 0 ]
