# `make eval`: the evaluation of issue 6 from a clean checkout. Imports the
# three shared data sets, runs the Jitkrittum 2025 protocol (10 seeds) for new
# models (model split) and for a fixed pool, the leave-one-task-out table, the
# embedder study, and writes build/eval/{results.md,report.html,*.json}.
SHARED      ?= ../shared
EVAL        := $(BUILD)/eval
EVAL_SEEDS  ?= 10
STUDY_SEEDS ?= 3
EVAL_SETS   := mmlu-pro-32 llmrouter-9models routerdc-7models
EVAL_DIRS   := $(EVAL_SETS:%=$(EVAL)/%)

$(EVAL)/%/prompts.jsonl: | $(CLI)
	$(CLI) import $* $(SHARED)/data/$* $(EVAL)/$* --force

$(BUILD)/embedder-%.bin: $(WINK_JSON) | $(CLI)
	$(CLI) embedder --wink $< --words $* --out $@

EVAL_DATA = $(EVAL_DIRS:%=--data %)
EVAL_RUN  = $(CLI) eval $(EVAL_DATA) --seeds $(EVAL_SEEDS) --force

# The hashed n-gram embedder learns its rows from the three sets' prompt
# text (no labels): one table for all, as one pack builder would fit it.
$(EVAL)/hashed-64k.bin: $(EVAL_DIRS:%=%/prompts.jsonl) | $(CLI)
	$(CLI) embedder --hashed $(EVAL_DIRS:%=--prompts %/prompts.jsonl) --out $@

# Issue 17 item 2: a simulated fleet's outcome logs, poisoned by 0/1/5/20 %
# attackers, through route --log-out, tools/fleet_step.py (Dask) and build
# (tests/eval/fleet_sim.py; ~10 min). $(BUILD)/libtinyroute-host.so: mk/fleet.mk.
FLEET_SIM_SEEDS ?= 5
FLEET_SIM = $(PYTHON) tests/eval/fleet_sim.py --cli $(CLI) --embedder $(EMBEDDER) --key $(TEST_KEY) \
    --pub $(TEST_KEY:.key=.pub) --lib $(BUILD)/libtinyroute-host.so --work $(EVAL)/fleet-sim \
    --seeds $(FLEET_SIM_SEEDS) $(EVAL)/llmrouter-9models $(EVAL)/mmlu-pro-32

.PHONY: eval
eval: deps all $(EVAL_DIRS:%=%/prompts.jsonl) $(EMBEDDER) $(BUILD)/embedder-20000.bin \
      $(BUILD)/embedder-100000.bin $(EVAL)/hashed-64k.bin $(BUILD)/libtinyroute-host.so
	$(EVAL_RUN) --embedder $(EMBEDDER) --json $(EVAL)/new-models.json > $(EVAL)/new-models.txt
	$(EVAL_RUN) --embedder $(EMBEDDER) --fixed-pool --tasks --json $(EVAL)/fixed-pool.json \
	    > $(EVAL)/fixed-pool.txt
	$(CLI) eval --data $(EVAL)/mmlu-pro-32 --seeds $(EVAL_SEEDS) --force --embedder $(EMBEDDER) \
	    --fixed-pool --tasks --max-cost 10 --json $(EVAL)/mmlu-small.json > $(EVAL)/mmlu-small.txt
	@set -e; for v in "sif-pc-50k:$(EMBEDDER):" "sif-50k:$(EMBEDDER):--no-pc" \
	    "mean-pc-50k:$(EMBEDDER):--mean" "mean-50k:$(EMBEDDER):--mean --no-pc" \
	    "sif-pc-20k:$(BUILD)/embedder-20000.bin:" "sif-pc-100k:$(BUILD)/embedder-100000.bin:" \
	    "hashed-64k:$(EVAL)/hashed-64k.bin:" "random:$(EMBEDDER):--random-embedding"; do \
	  name=$${v%%:*}; rest=$${v#*:}; table=$${rest%%:*}; flags=$${rest#*:}; \
	  echo "embedder study: $$name"; \
	  $(CLI) eval $(EVAL_DATA) --seeds $(STUDY_SEEDS) --force --fixed-pool --no-learned-map \
	      --embedder $$table $$flags --json $(EVAL)/study-$$name.json > /dev/null; \
	done
	$(PYTHON) tests/eval/tables.py $(EVAL) > $(EVAL)/results.md
	$(FLEET_SIM) > $(EVAL)/fleet-sim.md
	cat $(EVAL)/fleet-sim.md >> $(EVAL)/results.md
	$(CLI) report --force --json $(EVAL)/fixed-pool.json --json $(EVAL)/new-models.json \
	    --json $(EVAL)/mmlu-small.json --out $(EVAL)/report.html
	@echo "eval: $(EVAL)/results.md and $(EVAL)/report.html"

# make eval-local: the device that learns from its own outcomes (issue #16,
# tools/eval_local.c): model and traffic shift with bandit feedback, 10 seeds;
# device candidates are the models of at most 10B parameters (mmlu-pro-32,
# routed among all models, then among the <= 10B ones alone)
# and of at most 0.2 USD per 1M input tokens, the 7-9B ones (llmrouter).
# Writes build/eval/local.txt (tests/eval/RESULTS.md, "Local learning") and
# build/eval/local.html (the three runs' figures, from local-*.json).
.PHONY: eval-local
eval-local: all $(EVAL)/mmlu-pro-32/prompts.jsonl $(EVAL)/llmrouter-9models/prompts.jsonl $(EMBEDDER)
	{ $(CLI) eval --local --data $(EVAL)/mmlu-pro-32 --embedder $(EMBEDDER) --seeds $(EVAL_SEEDS) --device-max-cost 10 \
	      --json $(EVAL)/local-mmlu.json --force; \
	  $(CLI) eval --local --data $(EVAL)/mmlu-pro-32 --embedder $(EMBEDDER) --seeds $(EVAL_SEEDS) --device-max-cost 10 --max-cost 10 \
	      --json $(EVAL)/local-mmlu-small.json --force; \
	  $(CLI) eval --local --data $(EVAL)/llmrouter-9models --embedder $(EMBEDDER) --seeds $(EVAL_SEEDS) --device-max-cost 0.2 \
	      --json $(EVAL)/local-llmrouter.json --force; } \
	  > $(EVAL)/local.txt
	$(CLI) report --force --json $(EVAL)/local-mmlu.json --json $(EVAL)/local-mmlu-small.json \
	    --json $(EVAL)/local-llmrouter.json --out $(EVAL)/local.html
	@cat $(EVAL)/local.txt
