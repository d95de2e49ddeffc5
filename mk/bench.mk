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

# With build's prefilter chooser (tools/prefilter_choice.c), measured on each set.
BENCH_TOOL_OBJ := $(patsubst %,$(BUILD)/obj/tools/%.o,prefilter_choice refs util) $(BUILD)/obj/models/fit/refs_host.o
$(BENCH_DIR)/bench: tests/bench/bench.c tests/bench/faiss_baseline.cc $(BENCH_TOOL_OBJ) $(LIB)
	@mkdir -p $(BENCH_DIR)
	g++ -O2 -c tests/bench/faiss_baseline.cc -o $(BENCH_DIR)/faiss_baseline.o
	$(TARGET_CC) $(ALL_CFLAGS) -Itools -c tests/bench/bench.c -o $(BENCH_DIR)/bench.o
	g++ -o $@ $(BENCH_DIR)/bench.o $(BENCH_DIR)/faiss_baseline.o $(BENCH_TOOL_OBJ) $(LIB) -lfaiss -fopenmp -lblas -llapack -lm

# make bench-kmeans KM_N="100000 1000000": the build's sampled K-means
# (models/fit/cluster_fit.c, the code `tinyroute build --clusters` runs) against
# faiss::Clustering on the same rows, same K, sample and iteration cap, in
# the same run (tests/bench/bench_kmeans.c); appends to BUILD_SCALE.md.
# Only this benchmark links FAISS: the CLI never does.
KM_N ?= 100000 1000000
$(BENCH_DIR)/bench_kmeans: tests/bench/bench_kmeans.c tests/bench/faiss_baseline.cc $(BUILD)/obj/models/fit/cluster_fit.o
	@mkdir -p $(BENCH_DIR)
	g++ -O2 -c tests/bench/faiss_baseline.cc -o $(BENCH_DIR)/faiss_baseline.o
	$(TARGET_CC) $(ALL_CFLAGS) -c tests/bench/bench_kmeans.c -o $(BENCH_DIR)/bench_kmeans.o
	g++ -o $@ $(BENCH_DIR)/bench_kmeans.o $(BENCH_DIR)/faiss_baseline.o $(BUILD)/obj/models/fit/cluster_fit.o \
	    -lfaiss -fopenmp -lblas -llapack -lm

.PHONY: bench-kmeans
bench-kmeans: deps-bench
	@$(MAKE) --no-print-directory $(BENCH_DIR)/bench_kmeans
	@set -e; for n in $(KM_N); do \
	  { echo; echo "### K-means vs FAISS, N=$$n, $$(date -u +%Y-%m-%d), $$(git rev-parse --short HEAD)"; echo; \
	    echo "make bench-kmeans KM_N=$$n"; echo; $(BENCH_DIR)/bench_kmeans $$n 100 64 100; } \
	  | tee -a tests/bench/BUILD_SCALE.md; done

# make bench-local: route time with full local stores of 1,024 and 8,192
# entries vs none, on the fixture pack (issue #16; core/INTEGRATION.md,
# "Local learning"). Prints a table; no FAISS.
$(BENCH_DIR)/bench_local: tests/bench/bench_local.c $(TOOL_LIB_OBJ) $(LIB)
	@mkdir -p $(BENCH_DIR)
	$(TARGET_CC) $(ALL_CFLAGS) -Itools -o $@ $< $(TOOL_LIB_OBJ) $(LIB) $(TOOL_LIBS)
.PHONY: bench-local
bench-local: $(BENCH_DIR)/bench_local $(FIXTURE_PACK)
	$(BENCH_DIR)/bench_local $(FIXTURE) $(FIXTURE_PACK) 7

# make bench-layout: the shipped row-major kernel against a probe of 16-row
# tiles of 4-byte groups (tests/bench/bench_layout.c), kernel-only, with the
# read floor of each layout and the prefilter rerank's cost; prints a table
# (tests/bench/ANALYSIS.md, "Row layout probe"). No FAISS.
$(BENCH_DIR)/bench_layout: tests/bench/bench_layout.c $(LIB)
	@mkdir -p $(BENCH_DIR)
	$(TARGET_CC) $(ALL_CFLAGS) -o $@ $< $(LIB) $(TOOL_LIBS)
.PHONY: bench-layout
bench-layout: $(BENCH_DIR)/bench_layout
	$(BENCH_DIR)/bench_layout 50

$(BENCH_DIR)/mmlu.trp: $(CLI) $(EMBEDDER)
	@mkdir -p $(BENCH_DIR)
	$(CLI) import mmlu-pro-32 $(SHARED)/data/mmlu-pro-32 $(BENCH_DIR)/mmlu --force >/dev/null
	$(CLI) build --data $(BENCH_DIR)/mmlu --split all --embedder $(EMBEDDER) \
	    --key $(TEST_KEY) --no-tasks --method knn --out $@ --force >/dev/null

bench: deps deps-bench
	@$(MAKE) --no-print-directory all $(BENCH_DIR)/bench $(BENCH_DIR)/mmlu.trp
	$(BENCH_DIR)/bench $(BENCH_DIR)/mmlu.trp tests/bench/RESULTS.md

# make bench-build-scale N=1000000 M=100: time `tinyroute build` on a
# synthetic N x M dataset (tests/bench/gen_scale.py) and append wall time,
# peak RSS, pack size and the per-phase times to tests/bench/BUILD_SCALE.md.
# The data goes to build/bench-scale/ (never into git); it is regenerated
# only when N or M change. The S3 table is included: beyond 50,000
# references it queries a fixed sample of 256 prompts per task (each still
# searched against every reference of the other tasks), so it grows like N,
# not N^2.
N ?= 100000
M ?= 100
SCALE_DIR := $(BUILD)/bench-scale
SCALE_DATA := $(SCALE_DIR)/data-$(N)x$(M)
SCALE_CMD = $(CLI) build --data $(SCALE_DATA) --embedder $(EMBEDDER) --key $(TEST_KEY) \
	--clusters 64 --k 100 --out $(SCALE_DIR)/pack.trp --force

.PHONY: bench-build-scale
$(SCALE_DATA)/prompts.jsonl: tests/bench/gen_scale.py $(EMBEDDER)
	/usr/bin/python3 tests/bench/gen_scale.py $(EMBEDDER) $(SCALE_DATA) $(N) $(M)

bench-build-scale: $(SCALE_DATA)/prompts.jsonl
	@$(MAKE) --no-print-directory all
	TR_PROGRESS=1 /usr/bin/time -v $(SCALE_CMD) > $(SCALE_DIR)/out.txt 2> $(SCALE_DIR)/err.txt
	@{ echo; echo "### N=$(N) M=$(M), $$(date -u +%Y-%m-%d), $$(git rev-parse --short HEAD)"; echo; \
	  echo '```'; echo '$(SCALE_CMD)' | sed 's|$(BUILD)/|build/|g; s/	/ /g'; \
	  grep -E '^wrote|^k-means|^task table' $(SCALE_DIR)/out.txt; \
	  grep -E 'done in' $(SCALE_DIR)/err.txt; \
	  grep -E 'Elapsed \(wall|Maximum resident|User time|System time' $(SCALE_DIR)/err.txt | sed 's/^\t//'; \
	  echo "pack: $$(stat -c %s $(SCALE_DIR)/pack.trp) bytes"; echo '```'; } | tee -a tests/bench/BUILD_SCALE.md
