# tinyroute — `make` builds build/libtinyroute.a and build/tinyroute.
# `make demo` and `make test` do their own set-up (see README.md).

CC       ?= cc
CROSS    ?=
# A cross build (make CROSS=aarch64-linux-gnu-) uses that prefix's gcc, ar,
# nm, objcopy and its own build directory. CC= and AR= on the command line
# replace the compiler and archiver, for any toolchain (clang --target, an
# NDK's clang): make CROSS=aarch64-linux-gnu- CC="clang
# --target=aarch64-linux-gnu" AR=llvm-ar BUILD=build-a64-clang
TARGET_CC:= $(if $(and $(CROSS),$(filter-out command line,$(origin CC))),$(CROSS)gcc,$(CC))
TARGET_AR:= $(if $(filter default,$(origin AR)),$(CROSS)ar,$(AR))
BUILD    ?= build$(if $(CROSS),-$(firstword $(subst -, ,$(CROSS))))
CACHE    ?= $(HOME)/.cache/tinyroute
PYTHON   ?= /usr/bin/python3

# -ffp-contract=off: the host builder and the device must embed a prompt to
# the same bits; a fused multiply-add on one side only would break that.
# The sources enforce it as well (platform/tr_numeric.h), for other builds.
CFLAGS_BASE := -std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Wshadow -Wstrict-prototypes \
               -Wno-unused-parameter -ffp-contract=off -fno-strict-aliasing
CFLAGS   ?=
# make SCALAR=1: pin the scalar reference kernels (no runtime dispatch).
ifeq ($(SCALAR),1)
CFLAGS   += -DTR_FORCE_SCALAR
endif
ALL_CFLAGS := $(CFLAGS_BASE) -Icore -Iplatform -Imodels -Imodels/fit $(CFLAGS)

# Device library: never allocates. Host fitting code (models/fit/) is
# linked into the CLI only.
LIB_SRC  := $(wildcard core/*.c) $(wildcard platform/*.c) \
            $(wildcard models/*.c)
TOOL_SRC := $(wildcard tools/*.c) $(wildcard models/fit/*.c)
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
TOOL_OBJ := $(TOOL_SRC:%.c=$(BUILD)/obj/%.o)
LIBS     := -lmbedcrypto -lsleef -lm
TOOL_LIBS:= -lmbedtls -lmbedx509 -lmbedcrypto -lcjson -lsleef -lm

LIB      := $(BUILD)/libtinyroute.a
CLI      := $(BUILD)/tinyroute

.PHONY: all clean deps demo test embedder fixture-pack
all: $(LIB) $(CLI)

$(BUILD)/obj/%.o: %.c $(wildcard core/*.h platform/*.h models/*.h models/fit/*.h tools/*.h) Makefile
	@mkdir -p $(dir $@)
	$(TARGET_CC) $(ALL_CFLAGS) -c $< -o $@

# The host fits (models/fit/) spend `make eval`'s time in element-wise loops
# over doubles (gradients, distances) that -O2 leaves scalar: -O3
# vectorizes them. Results are the same to the bit: no reassociation
# (reductions stay scalar without -ffast-math) and no contraction
# (-ffp-contract=off), so each element is the same mul and add.
FIT_OPT := -O3
$(BUILD)/obj/models/fit/%.o: ALL_CFLAGS += $(FIT_OPT)

$(LIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@
	$(TARGET_AR) rcs $@ $^

$(CLI): $(TOOL_OBJ) $(LIB)
	$(TARGET_CC) $(ALL_CFLAGS) -o $@ $(TOOL_OBJ) $(LIB) $(TOOL_LIBS)

clean:
	rm -rf $(BUILD)

include mk/deps.mk
include mk/data.mk
include mk/test.mk
-include mk/bench.mk
-include mk/install.mk
-include mk/sleef.mk
-include mk/eval.mk
-include mk/fuzz.mk
-include mk/sanitize.mk
-include mk/device.mk
-include mk/report.mk
-include mk/flags.mk
-include mk/fleet.mk
