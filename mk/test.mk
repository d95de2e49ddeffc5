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

.PHONY: test test-native test-aarch64
# Suites with their own make targets (mk/*.mk add themselves here): the
# install test, sanitizer builds, short fuzz runs, the device crypto build.
EXTRA_TESTS ?=
test: deps deps-cross
	@$(MAKE) --no-print-directory test-native
	@$(MAKE) --no-print-directory test-aarch64
	@set -e; for t in $(EXTRA_TESTS); do echo "=== make $$t"; $(MAKE) --no-print-directory $$t; done

test-native:
	@$(MAKE) --no-print-directory all $(TEST_BINS) $(FIXTURE_PACK) $(THREADS_PACK)
	@$(TEST_ENV) CLI=$(CLI) FIXTURE_PACK=$(FIXTURE_PACK) THREADS_PACK=$(THREADS_PACK) sh tests/run.sh

# The whole suite again, cross-compiled for aarch64 and run under qemu-user:
# once on a core without the dot-product extension (plain NEON kernels), once
# with it (SDOT, and the i8mm SMMLA variant, which -cpu max also has). The aarch64 CLI builds its own fixture pack, which must equal
# the native one byte for byte (but for its creation time).
A64      := build-aarch64
QEMU_LD  := /usr/aarch64-linux-gnu
test-aarch64: $(EMBEDDER)
	@$(MAKE) --no-print-directory CROSS=aarch64-linux-gnu- all \
	    $(A64)/test_noalloc $(A64)/test_eval $(A64)/test_core $(A64)/test_task $(A64)/test_task_fit $(A64)/test_governor $(A64)/test_dataset $(A64)/test_kernels $(A64)/test_outcome $(A64)/test_badinput $(A64)/test_sealed $(A64)/test_prior $(A64)/test_api $(A64)/test_local
	@set -e; for cpu in cortex-a53 max; do \
	  d=$(A64)/qemu-$$cpu; mkdir -p $$d; \
	  printf '#!/bin/sh\nexec qemu-aarch64 -cpu %s -L $(QEMU_LD) %s "$$@"\n' $$cpu $(CURDIR)/$(A64)/tinyroute > $$d/tinyroute; \
	  chmod +x $$d/tinyroute; \
	  $$d/tinyroute build --data $(FIXTURE) --embedder $(EMBEDDER) --key $(TEST_KEY) \
	      --k 100 --method knn --out $$d/fixture.trp --force >/dev/null; \
	  echo "=== aarch64 under qemu -cpu $$cpu"; \
	  $(TEST_ENV) BUILD=$(A64) RUNNER="qemu-aarch64 -cpu $$cpu -L $(QEMU_LD)" CLI=$$d/tinyroute \
	      FIXTURE_PACK=$$d/fixture.trp SAME_AS=$(FIXTURE_PACK) sh tests/run.sh; \
	done
