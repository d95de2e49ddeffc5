# libFuzzer targets (tests/fuzz/, issue 7), built with clang under ASan and
# UBSan in their own tree, $(FUZZ_BUILD):
#   make fuzz [FUZZ_SECONDS=60]  every target (or FUZZ_ONLY) for FUZZ_SECONDS
#                                each, one after the other, corpora kept
#   make fuzz FUZZ_RUNS=N FUZZ_SECONDS=0
#                                each target for exactly N executions
#                                (FUZZ_SECONDS=0: no time limit)
#   make test-fuzz               every target briefly from its seeds alone;
#                                fails on any crash, leak or sanitizer report
# Crashing inputs land in $(FUZZ_BUILD)/crashes/. Rerun one with
# `$(FUZZ_BUILD)/fuzz_NAME FILE`.
DEB_PKGS += clang libclang-rt-14-dev

FUZZ_CC      ?= clang
FUZZ_BUILD   ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_TEST_SECONDS ?= 9
# Executions per target for `make fuzz` (libFuzzer -runs; per worker with
# -jobs). Empty: until FUZZ_SECONDS.
FUZZ_RUNS    ?=
# Extra libFuzzer flags for both, e.g. FUZZ_OPTS=-jobs=2 -workers=2.
FUZZ_OPTS    ?=
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
# FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION: the libFuzzer convention, and the
# second key core/pack.c asks for before it will skip signatures.
FUZZ_CFLAGS  := $(CFLAGS_BASE) -O1 -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION $(FUZZ_SAN) \
                -Icore -Iplatform -Imodels -Imodels/fit -Itools -Itests/fuzz

$(FUZZ_BUILD)/obj/%.o: %.c $(wildcard core/*.h platform/*.h models/*.h models/fit/*.h tools/*.h) mk/fuzz.mk
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@
$(FUZZ_BUILD)/obj-nosig/%.o: %.c $(wildcard core/*.h platform/*.h models/*.h) mk/fuzz.mk
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -DTR_FUZZ_SKIP_SIGNATURE -fsanitize=fuzzer-no-link -c $< -o $@

# Object sets a target links: the library as shipped, the library with the
# signature check skipped (only pack.c differs), the host helpers.
FUZZ_LIB       := $(LIB_SRC:%.c=$(FUZZ_BUILD)/obj/%.o)
FUZZ_LIB_NOSIG := $(filter-out $(FUZZ_BUILD)/obj/core/pack.o,$(FUZZ_LIB)) \
                  $(FUZZ_BUILD)/obj-nosig/core/pack.o
FUZZ_HOST      := $(patsubst %,$(FUZZ_BUILD)/obj/tools/%.o,keys util dataset jsonl)

# Seed corpora, generated from the fixtures by tests/fuzz/seeds.sh into
# $(FUZZ_BUILD)/seeds/{pack,embed,import,delta,log,inspect}. The log seeds
# written through the device API come from log_seeds (the library under the
# sanitizers, no libFuzzer).
FUZZ_SEEDS := $(FUZZ_BUILD)/seeds
$(FUZZ_BUILD)/log_seeds: tests/fuzz/log_seeds.c $(FUZZ_LIB) $(patsubst %,$(FUZZ_BUILD)/obj/tools/%.o,keys util)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $^ $(TOOL_LIBS)
$(FUZZ_SEEDS)/.stamp: tests/fuzz/seeds.sh $(CLI) $(WINK_JSON) $(wildcard $(FIXTURE)/*) $(FUZZ_BUILD)/log_seeds
	sh tests/fuzz/seeds.sh $(CLI) $(WINK_JSON) $(FIXTURE) $(TEST_KEY) \
	    fixtures/keys/test-other.key $(FUZZ_SEEDS) $(FUZZ_BUILD)/log_seeds
	touch $@

# One target: $(call tr_fuzz_target,NAME,HARNESS.c,OBJECTS,SEED_SET[,DICT]).
# Builds $(FUZZ_BUILD)/fuzz_NAME; SEED_SET names a directory of $(FUZZ_SEEDS).
# A new target is one more line below, e.g. for delta packs:
#   $(eval $(call tr_fuzz_target,delta,tests/fuzz/fuzz_delta.c,$(FUZZ_LIB) $(FUZZ_HOST),pack,tests/fuzz/pack.dict))
FUZZ_NAMES :=
define tr_fuzz_target
FUZZ_NAMES += $(1)
FUZZ_SEEDS_$(1) := $(FUZZ_SEEDS)/$(4)
FUZZ_DICT_$(1) := $(if $(5),-dict=$(5))
$(FUZZ_BUILD)/fuzz_$(1): $(2) $(3) $(wildcard tests/fuzz/*.h) $(5)
	$$(FUZZ_CC) $$(FUZZ_CFLAGS) -fsanitize=fuzzer -o $$@ $(2) $(3) $$(TOOL_LIBS)
endef

$(eval $(call tr_fuzz_target,pack,tests/fuzz/fuzz_pack.c,$(FUZZ_LIB) $(FUZZ_HOST),pack,tests/fuzz/pack.dict))
$(eval $(call tr_fuzz_target,pack_nosig,tests/fuzz/fuzz_pack.c,$(FUZZ_LIB_NOSIG) $(FUZZ_HOST),pack,tests/fuzz/pack.dict))
$(eval $(call tr_fuzz_target,delta,tests/fuzz/fuzz_delta.c,$(FUZZ_LIB_NOSIG) $(FUZZ_HOST),delta,tests/fuzz/pack.dict))
$(eval $(call tr_fuzz_target,embed,tests/fuzz/fuzz_embed.c,$(FUZZ_LIB) $(FUZZ_HOST),embed))
$(eval $(call tr_fuzz_target,import,tests/fuzz/fuzz_import.c,$(FUZZ_LIB) $(FUZZ_HOST),import,tests/fuzz/import.dict))
$(eval $(call tr_fuzz_target,log,tests/fuzz/fuzz_log.c,$(FUZZ_LIB) $(FUZZ_HOST) $(FUZZ_BUILD)/obj/tools/logfile.o,log,tests/fuzz/log.dict))
$(eval $(call tr_fuzz_target,local,tests/fuzz/fuzz_local.c,$(FUZZ_LIB) $(FUZZ_HOST) $(patsubst %,$(FUZZ_BUILD)/obj/tools/%.o,packwriter packfile),local))
$(eval $(call tr_fuzz_target,inspect,tests/fuzz/fuzz_inspect.c,$(FUZZ_LIB) $(FUZZ_HOST) $(patsubst %,$(FUZZ_BUILD)/obj/tools/%.o,cmd_verify packfile packwriter),inspect,tests/fuzz/pack.dict))

FUZZ_BINS := $(FUZZ_NAMES:%=$(FUZZ_BUILD)/fuzz_%)
# make fuzz FUZZ_ONLY="pack_nosig import": a subset.
FUZZ_ONLY ?= $(FUZZ_NAMES)

# One run: NAME, seconds, corpus directory (written to; seeds read only),
# extra flags.
# -timeout catches hangs, which a seconds-long test would otherwise hide.
tr_fuzz_run = echo "=== fuzz_$(1): $(2) s $(4)"; mkdir -p $(3) $(FUZZ_BUILD)/crashes && \
    TR_FUZZ_HASHED_PACK=$(FUZZ_SEEDS)/hashed.trp $(FUZZ_BUILD)/fuzz_$(1) -max_total_time=$(2) -timeout=10 -print_final_stats=1 \
        -artifact_prefix=$(FUZZ_BUILD)/crashes/$(1)- $(FUZZ_DICT_$(1)) $(4) $(FUZZ_OPTS) \
        $(3) $(FUZZ_SEEDS_$(1)) 2>$(FUZZ_BUILD)/fuzz_$(1).log \
    && grep -E '^stat::number_of_executed_units|^Done' $(FUZZ_BUILD)/fuzz_$(1).log \
    || { tail -n 60 $(FUZZ_BUILD)/fuzz_$(1).log; echo "fuzz_$(1) FAILED (log: $(FUZZ_BUILD)/fuzz_$(1).log)"; false; }

.PHONY: fuzz fuzz-build test-fuzz
fuzz-build: $(FUZZ_BINS) $(FUZZ_SEEDS)/.stamp $(FIXTURE_PACK)

fuzz: fuzz-build
	@$(foreach t,$(FUZZ_ONLY),{ $(call tr_fuzz_run,$(t),$(FUZZ_SECONDS),$(FUZZ_BUILD)/corpus/$(t),$(if $(FUZZ_RUNS),-runs=$(FUZZ_RUNS))); } &&) true

# Fresh corpora each time, so the result depends on the code and the seeds,
# not on what earlier runs left behind.
test-fuzz: fuzz-build
	@rm -rf $(FUZZ_BUILD)/test-corpus
	@fail=0; $(foreach t,$(FUZZ_NAMES),{ $(call tr_fuzz_run,$(t),$(FUZZ_TEST_SECONDS),$(FUZZ_BUILD)/test-corpus/$(t)); } || fail=1;) \
	if [ $$fail = 0 ]; then echo "test-fuzz: $(words $(FUZZ_NAMES)) targets, no crash"; else echo "test-fuzz: FAILED"; exit 1; fi
EXTRA_TESTS += test-fuzz
