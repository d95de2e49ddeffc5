# make test-flags: the library built with an integrator's flags computes the
# same bits as the reference build (tests/test_flags.sh, platform/tr_numeric.h).

FLAGS_DIR     := $(BUILD)/flags
FLAGS_PROMPTS := $(FLAGS_DIR)/prompts.bin
FLAGS_A64     := $(FLAGS_DIR)/prompts-a64.bin
FLAGS_POINT   := $(FLAGS_DIR)/key.point

# The fixture's prompts, then 4,000 made of its words in a seeded random
# order (u32 length + bytes: the driver links the library alone, no JSON
# parser). The 2,000 real prompts happen to embed identically with and
# without FMA; about one random prompt in 2,500 does not. The run under qemu
# takes 300 of each.
# One recipe writes both files (two targets of one rule could run it twice
# at once under -j).
$(FLAGS_PROMPTS): $(FIXTURE)/prompts.jsonl tests/flags_prompts.py
	@mkdir -p $(FLAGS_DIR)
	$(PYTHON) tests/flags_prompts.py $< $(FLAGS_PROMPTS) $(FLAGS_A64)
$(FLAGS_A64): $(FLAGS_PROMPTS) ;

# The raw 65-byte point ends the DER SubjectPublicKeyInfo.
$(FLAGS_POINT): $(TEST_PUB)
	@mkdir -p $(FLAGS_DIR)
	openssl ec -pubin -in $< -outform DER 2>/dev/null | tail -c 65 > $@

.PHONY: test-flags
test-flags:
	@$(MAKE) --no-print-directory all $(THREADS_PACK) $(FLAGS_PROMPTS) $(FLAGS_A64) $(FLAGS_POINT)
	@BUILD=$(BUILD) LIB_SRC="$(LIB_SRC)" REF_LIB=$(LIB) REF_CFLAGS="$(ALL_CFLAGS)" \
	    PACK=$(THREADS_PACK) POINT=$(FLAGS_POINT) PROMPTS=$(FLAGS_PROMPTS) A64_PROMPTS=$(FLAGS_A64) \
	    sh tests/test_flags.sh

EXTRA_TESTS += test-flags
