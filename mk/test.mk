# `make test`: every suite, natively. Each suite prints its own result; the
# runner prints one closing "N passed, N failed" line over the suites.

TEST_CFLAGS := $(ALL_CFLAGS) -Itools
TOOL_LIB_OBJ := $(filter-out $(BUILD)/obj/tools/tinyroute.o,$(TOOL_OBJ))

$(BUILD)/test_core: tests/test_core.c $(TOOL_LIB_OBJ) $(LIB)
	$(CROSS)$(CC) $(TEST_CFLAGS) -o $@ $< $(TOOL_LIB_OBJ) $(LIB) -lcmocka $(TOOL_LIBS)

$(BUILD)/test_dataset: tests/test_dataset.c $(BUILD)/obj/tools/dataset.o $(BUILD)/obj/tools/util.o
	$(CROSS)$(CC) $(TEST_CFLAGS) -o $@ $^ -lcmocka $(TOOL_LIBS)

$(BUILD)/test_kernels: tests/test_kernels.c $(LIB)
	$(CROSS)$(CC) $(TEST_CFLAGS) -o $@ $< $(LIB) -lcmocka $(LIBS)

TEST_BINS := $(BUILD)/test_core $(BUILD)/test_dataset $(BUILD)/test_kernels

test: deps
	@$(MAKE) --no-print-directory all $(TEST_BINS) $(FIXTURE_PACK)
	@CLI=$(CLI) BUILD=$(BUILD) PYTHON=$(PYTHON) EMBEDDER=$(EMBEDDER) WINK_JSON=$(WINK_JSON) \
	    FIXTURE=$(FIXTURE) FIXTURE_PACK=$(FIXTURE_PACK) sh tests/run.sh
