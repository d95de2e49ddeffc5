# make bench: speed against the memory-read floor and FAISS (Debian
# libfaiss-dev), on the real MMLU-Pro prompts and synthetic data. Writes
# tests/bench/RESULTS.md; no test asserts on time.
SHARED ?= ../shared
BENCH_DIR := $(BUILD)/bench

.PHONY: bench deps-bench
deps-bench:
	@dpkg-query -W -f='$${Status}' libfaiss-dev 2>/dev/null | grep -q 'ok installed' || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq libfaiss-dev >/dev/null; }

$(BENCH_DIR)/bench: tests/bench/bench.c tests/bench/faiss_baseline.cc $(LIB)
	@mkdir -p $(BENCH_DIR)
	g++ -O2 -c tests/bench/faiss_baseline.cc -o $(BENCH_DIR)/faiss_baseline.o
	$(TARGET_CC) $(ALL_CFLAGS) -c tests/bench/bench.c -o $(BENCH_DIR)/bench.o
	g++ -o $@ $(BENCH_DIR)/bench.o $(BENCH_DIR)/faiss_baseline.o $(LIB) -lfaiss -fopenmp -lblas -llapack -lm

$(BENCH_DIR)/mmlu.trp: $(CLI) $(EMBEDDER)
	@mkdir -p $(BENCH_DIR)
	$(CLI) import mmlu-pro-32 $(SHARED)/data/mmlu-pro-32 $(BENCH_DIR)/mmlu --force >/dev/null
	$(CLI) build --data $(BENCH_DIR)/mmlu --split all --embedder $(EMBEDDER) \
	    --key $(TEST_KEY) --no-tasks --out $@ --force >/dev/null

bench: deps deps-bench
	@$(MAKE) --no-print-directory all $(BENCH_DIR)/bench $(BENCH_DIR)/mmlu.trp
	$(BENCH_DIR)/bench $(BENCH_DIR)/mmlu.trp tests/bench/RESULTS.md
