# `make test`: every suite, natively. Each suite prints its own result; the
# runner prints one closing "N passed, N failed" line over the suites.

TEST_CFLAGS := $(ALL_CFLAGS) -Itools
TOOL_LIB_OBJ := $(filter-out $(BUILD)/obj/tools/main.o,$(TOOL_OBJ))

$(BUILD)/test_core: tests/test_core.c $(TOOL_LIB_OBJ) $(LIB)
	$(TARGET_CC) $(TEST_CFLAGS) -o $@ $< $(TOOL_LIB_OBJ) $(LIB) -lcmocka $(TOOL_LIBS)

$(BUILD)/test_prior: tests/test_prior.c $(TOOL_LIB_OBJ) $(LIB)
	$(TARGET_CC) $(TEST_CFLAGS) -o $@ $< $(TOOL_LIB_OBJ) $(LIB) -lcmocka $(TOOL_LIBS)

$(BUILD)/test_badinput: tests/test_badinput.c $(TOOL_LIB_OBJ) $(LIB)
	$(TARGET_CC) $(TEST_CFLAGS) -o $@ $< $(TOOL_LIB_OBJ) $(LIB) -lcmocka $(TOOL_LIBS)

$(BUILD)/test_task: tests/test_task.c $(TOOL_LIB_OBJ) $(LIB)
	$(TARGET_CC) $(TEST_CFLAGS) -o $@ $< $(TOOL_LIB_OBJ) $(LIB) -lcmocka $(TOOL_LIBS)

$(BUILD)/test_task_fit: tests/test_task_fit.c $(TOOL_LIB_OBJ) $(LIB)
	$(TARGET_CC) $(TEST_CFLAGS) -o $@ $< $(TOOL_LIB_OBJ) $(LIB) -lcmocka $(TOOL_LIBS)

$(BUILD)/test_governor: tests/test_governor.c $(TOOL_LIB_OBJ) $(LIB)
	$(TARGET_CC) $(TEST_CFLAGS) -o $@ $< $(TOOL_LIB_OBJ) $(LIB) -lcmocka $(TOOL_LIBS)

$(BUILD)/test_outcome: tests/test_outcome.c $(TOOL_LIB_OBJ) $(LIB)
	$(TARGET_CC) $(TEST_CFLAGS) -o $@ $< $(TOOL_LIB_OBJ) $(LIB) -lcmocka $(TOOL_LIBS)

$(BUILD)/test_local: tests/test_local.c $(TOOL_LIB_OBJ) $(LIB)
	$(TARGET_CC) $(TEST_CFLAGS) -o $@ $< $(TOOL_LIB_OBJ) $(LIB) -lcmocka $(TOOL_LIBS)

$(BUILD)/test_noalloc: tests/test_noalloc.c $(TOOL_LIB_OBJ) $(LIB)
	$(TARGET_CC) $(TEST_CFLAGS) -o $@ $< $(TOOL_LIB_OBJ) $(LIB) -lcmocka $(TOOL_LIBS)

$(BUILD)/test_api: tests/test_api.c $(TOOL_LIB_OBJ) $(LIB)
	$(TARGET_CC) $(TEST_CFLAGS) -o $@ $< $(TOOL_LIB_OBJ) $(LIB) -lcmocka $(TOOL_LIBS)

$(BUILD)/test_sealed: tests/test_sealed.c $(TOOL_LIB_OBJ) $(LIB)
	$(TARGET_CC) $(TEST_CFLAGS) -o $@ $< $(TOOL_LIB_OBJ) $(LIB) -lcmocka $(TOOL_LIBS)

$(BUILD)/test_eval: tests/test_eval.c $(BUILD)/obj/tools/pareto.o
	$(TARGET_CC) $(TEST_CFLAGS) -o $@ $^ -lcmocka -lm

$(BUILD)/test_dataset: tests/test_dataset.c $(patsubst %,$(BUILD)/obj/tools/%.o,dataset jsonl util) $(LIB)
	$(TARGET_CC) $(TEST_CFLAGS) -o $@ $^ -lcmocka $(TOOL_LIBS)

$(BUILD)/test_kernels: tests/test_kernels.c $(LIB)
	$(TARGET_CC) $(TEST_CFLAGS) -o $@ $< $(LIB) -lcmocka $(LIBS)

$(BUILD)/test_threads: tests/test_threads.c $(TOOL_LIB_OBJ) $(LIB)
	$(TARGET_CC) $(TEST_CFLAGS) -pthread -o $@ $< $(TOOL_LIB_OBJ) $(LIB) $(TOOL_LIBS)

$(BUILD)/test_local_threads: tests/test_local_threads.c $(TOOL_LIB_OBJ) $(LIB)
	$(TARGET_CC) $(TEST_CFLAGS) -pthread -o $@ $< $(TOOL_LIB_OBJ) $(LIB) $(TOOL_LIBS)

# The fixture pack has neither clusters nor a prefilter; the threads suite
# also routes through a pack that has both (and a learned map).
THREADS_PACK := $(BUILD)/threads.trp
$(THREADS_PACK): $(EMBEDDER) $(CLI) $(wildcard $(FIXTURE)/*)
	$(CLI) build --data $(FIXTURE) --embedder $(EMBEDDER) --key $(TEST_KEY) \
	    --k 100 --clusters 16 --learned-map --prefilter 256 --method knn --out $@ --force >/dev/null

TEST_BINS := $(BUILD)/test_noalloc $(BUILD)/test_eval $(BUILD)/test_core $(BUILD)/test_task $(BUILD)/test_task_fit $(BUILD)/test_governor $(BUILD)/test_dataset $(BUILD)/test_kernels $(BUILD)/test_threads \
             $(BUILD)/test_outcome $(BUILD)/test_badinput $(BUILD)/test_sealed $(BUILD)/test_prior $(BUILD)/test_api \
             $(BUILD)/test_local $(BUILD)/test_local_threads

# LIB_CFLAGS: the library's extra flags (test-asan's sanitizers), for the
# suites that compile a small program against $(BUILD)/libtinyroute.a.
TEST_ENV = BUILD=$(BUILD) PYTHON=$(PYTHON) EMBEDDER=$(EMBEDDER) WINK_JSON=$(WINK_JSON) \
           FIXTURE=$(FIXTURE) LIB_CFLAGS="$(CFLAGS)"

.PHONY: test test-build test-native test-aarch64 test-aarch64-build
# Suites with their own make targets (mk/*.mk add themselves here): the
# install test, sanitizer builds, short fuzz runs, the device crypto build.
EXTRA_TESTS ?=
# The emulated lane: test-aarch64, then the suites that build or install for
# aarch64 themselves (mk/*.mk add themselves to AARCH64_LANE instead).
AARCH64_LANE ?=

# Two lanes, one per core: the aarch64 suites under qemu-user (one emulated
# thread) in the background beside the native suites and EXTRA_TESTS. What
# both lanes read (the native CLI, embedder and fixture pack, the cross
# build) is built first, so no two makes write one file; each lane keeps
# going past a failed suite. The emulated lane's output is printed, in one
# piece, when both are done; the exit status is non-zero if either failed.
LANE_LOG := $(BUILD)/test-aarch64-lane.log
test: deps deps-cross
	@$(MAKE) --no-print-directory test-build test-aarch64-build
	@rm -f $(LANE_LOG); \
	( rc=0; for t in test-aarch64 $(AARCH64_LANE); do echo "=== make $$t"; \
	    $(MAKE) --no-print-directory $$t || rc=1; done; exit $$rc ) > $(LANE_LOG) 2>&1 & lane=$$!; \
	rc=0; $(MAKE) --no-print-directory test-native || rc=1; \
	for t in $(EXTRA_TESTS); do echo "=== make $$t"; $(MAKE) --no-print-directory $$t || rc=1; done; \
	echo "=== waiting for the aarch64 lane ($(LANE_LOG))"; wait $$lane || rc=1; cat $(LANE_LOG); \
	[ $$rc = 0 ] && echo "make test: every lane passed" || { echo "make test: FAILED (see above)"; exit 1; }

test-build:
	@$(MAKE) --no-print-directory all $(TEST_BINS) $(FIXTURE_PACK) $(THREADS_PACK)

test-native: test-build
	@$(TEST_ENV) CLI=$(CLI) FIXTURE_PACK=$(FIXTURE_PACK) THREADS_PACK=$(THREADS_PACK) sh tests/run.sh

# The whole suite again, cross-compiled for aarch64 and run under qemu-user:
# once on a core without the dot-product extension (plain NEON kernels), and
# once with it (SDOT, and the i8mm SMMLA variant, which -cpu max also has)
# for the suites whose results pass through the kernels only (KERNELS_ONLY,
# tests/run.sh): the rest is the same code on the same emulated ISA. Each
# CPU model's CLI builds its own fixture pack, which must equal the native
# one byte for byte (but for its creation time).
A64      := build-aarch64
# The guest's loader and libc come from the multiarch root (libc6:arm64,
# which the :arm64 -dev packages of deps-cross pull in). With the cross
# toolchain's sysroot (-L /usr/aarch64-linux-gnu) qemu mixed its ld.so
# (2.36-8cross1) with the multiarch libc.so.6 (2.36-9+deb12u14) found by
# path fallback, and every guest pthread_create spun forever in the loader.
QEMU_LD  := /
A64_TEST_BINS := $(patsubst %,$(A64)/test_%,noalloc eval core task task_fit governor dataset kernels outcome \
                 badinput sealed prior api local threads local_threads)
test-aarch64-build: $(EMBEDDER)
	@$(MAKE) --no-print-directory CROSS=aarch64-linux-gnu- all $(A64_TEST_BINS)

test-aarch64: test-aarch64-build
	@set -e; for cpu in cortex-a53 max; do \
	  d=$(A64)/qemu-$$cpu; mkdir -p $$d; \
	  printf '#!/bin/sh\nexec qemu-aarch64 -cpu %s -L $(QEMU_LD) %s "$$@"\n' $$cpu $(CURDIR)/$(A64)/tinyroute > $$d/tinyroute; \
	  chmod +x $$d/tinyroute; \
	  $$d/tinyroute build --data $(FIXTURE) --embedder $(EMBEDDER) --key $(TEST_KEY) \
	      --k 100 --method knn --out $$d/fixture.trp --force >/dev/null; \
	  only=; [ $$cpu = max ] && only=1; \
	  echo "=== aarch64 under qemu -cpu $$cpu$${only:+ (KERNELS_ONLY)}"; \
	  $(TEST_ENV) BUILD=$(A64) RUNNER="qemu-aarch64 -cpu $$cpu -L $(QEMU_LD)" CLI=$$d/tinyroute \
	      FIXTURE_PACK=$$d/fixture.trp SAME_AS=$(FIXTURE_PACK) KERNELS_ONLY=$$only sh tests/run.sh; \
	done
