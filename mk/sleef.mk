# `make static-sleef`: the SLEEF code the library calls, as a static archive,
# for fully static programs (cc -static). Debian ships SLEEF only as a shared
# library; the library calls two of its functions (platform/softmax.c:
# Sleef_expf_u10 and the 4-lane Sleef_expf4_u10). As `make device` does for
# mbedTLS, they are built from Debian's source (apt-get source sleef, fetched
# once into build-sleef/src, outside git) into
#   build-sleef[-aarch64]/libtinyroute_sleef.a
# holding only the objects those two need: the float vector file compiled for
# each variant the distribution's dispatcher picks from (x86-64: SSE2, SSE4.1,
# AVX2+FMA, with that dispatcher cut down to Sleef_expf4_u10; aarch64:
# AdvSIMD), the scalar float file and their tables. Flags as SLEEF's own
# build (-ffp-contract=off among them); test-install checks the results are
# bit for bit libsleef.so.3's (tests/install/sleef_same.c).
#   make install STATIC_SLEEF=1   also installs it; the .pc's Libs.private and
#                                 the CMake static target then name it in place
#                                 of -lsleef, so `cc -static ... $(pkg-config
#                                 --static --libs tinyroute)` links.
#   SLEEF_SRC=DIR                 an unpacked SLEEF source tree (the version
#                                 of libsleef-dev) instead of the fetch.
# Takes about 35 s on 2 busy cores for x86-64 (three variants), 15 s for aarch64;
# the fetch is 1.2 MB. make clean keeps it (build-sleef*/, outside git).

SLEEF_ROOT  := build-sleef
SLEEF_DIR   := $(SLEEF_ROOT)$(if $(CROSS),-$(firstword $(subst -, ,$(CROSS))))
SLEEF_FETCH := $(SLEEF_ROOT)/src
SLEEF_SRC   ?= $(SLEEF_FETCH)/sleef
SLEEF_STAMP := $(if $(filter file,$(origin SLEEF_SRC)),$(SLEEF_FETCH)/.fetched)
SLEEF_LIB   := $(SLEEF_DIR)/libtinyroute_sleef.a
HOST_CC     ?= cc
SLEEF_MACH  := $(if $(findstring aarch64,$(CROSS)$(TARGET_CC)),aarch64,$(shell uname -m))

# SLEEF's own flags (its Configure.cmake: SLEEF_C_FLAGS, COMMON_TARGET_DEFINITIONS).
SLEEF_CFLAGS := -std=gnu99 -O2 -fPIC -w -ffp-contract=off -fno-math-errno -fno-trapping-math \
                -DSLEEF_STATIC_LIBS=1 -DENABLE_ALIAS=1 -DDORENAME=1 \
                -I$(SLEEF_SRC)/src/common -I$(SLEEF_SRC)/src/arch -I$(SLEEF_SRC)/src/libm \
                -I$(SLEEF_DIR)/include
ifeq ($(SLEEF_MACH),x86_64)
SLEEF_CFLAGS += -msse2 -mfpmath=sse
SLEEF_VARS   := sse2 sse4 avx2128
SLEEF_OBJS   := $(SLEEF_VARS:%=$(SLEEF_DIR)/sp_%.o) $(SLEEF_DIR)/dispsse.o $(SLEEF_DIR)/common.o
SLEEF_HDRS   := $(SLEEF_VARS:%=$(SLEEF_DIR)/include/rename%.h)
else
SLEEF_VARS   := advsimd
SLEEF_OBJS   := $(SLEEF_DIR)/sp_advsimd.o
SLEEF_HDRS   := $(SLEEF_DIR)/include/renameadvsimd.h $(SLEEF_DIR)/include/alias_advsimd.h
endif
SLEEF_OBJS   += $(SLEEF_DIR)/sleefsp.o $(SLEEF_DIR)/rempitab.o
# Per variant: mkrename's arguments and the compiler flags (Configure.cmake).
SLEEF_REN_sse2    := cinz_ 2 4 sse2
SLEEF_REN_sse4    := cinz_ 2 4 sse4
SLEEF_REN_avx2128 := finz_ 2 4 avx2128
SLEEF_REN_advsimd := finz_ 2 4 advsimd
SLEEF_FLAGS_sse2    := -DENABLE_SSE2=1
SLEEF_FLAGS_sse4    := -DENABLE_SSE4=1 -msse4.1
SLEEF_FLAGS_avx2128 := -DENABLE_AVX2128=1 -mavx2 -mfma
SLEEF_FLAGS_advsimd := -DENABLE_ADVSIMD=1 -DALIAS_NO_EXT_SUFFIX='"alias_advsimd.h"'

.PHONY: static-sleef
static-sleef: $(SLEEF_LIB)

# Like mk/device.mk's mbedTLS fetch (tr_apt_source, mk/deps.mk). The version must be libsleef-dev's: its sleef.h is the
# one the library compiles against.
$(SLEEF_FETCH)/.fetched:
	$(call tr_apt_source,sleef,$(SLEEF_FETCH))
	@cd $(SLEEF_FETCH) && d=$$(ls -d sleef-[0-9]* 2>/dev/null | head -n 1) && test -f "$$d/src/libm/sleefsimdsp.c" || { \
	  echo "static-sleef: apt-get source sleef gave no source tree; give one with SLEEF_SRC=DIR" \
	       "(an unpacked SLEEF of libsleef-dev's version)" >&2; exit 1; }
	cd $(SLEEF_FETCH) && ln -sfn "$$(ls -d sleef-[0-9]* | head -n 1)" sleef
	touch $@

# The generators run on the build machine (kept: every variant uses them).
.SECONDARY: $(addprefix $(SLEEF_ROOT)/host/,mkrename mkdisp mkalias)
$(SLEEF_ROOT)/host/%: $(SLEEF_STAMP)
	@mkdir -p $(dir $@)
	$(HOST_CC) -O2 -w -o $@ $(SLEEF_SRC)/src/libm/$*.c

$(SLEEF_DIR)/include/rename%.h: $(SLEEF_ROOT)/host/mkrename
	@mkdir -p $(dir $@)
	$< $(SLEEF_REN_$*) > $@

$(SLEEF_DIR)/include/alias_advsimd.h: $(SLEEF_ROOT)/host/mkalias
	@mkdir -p $(dir $@)
	$< -4 float32x4_t int32x4_t n advsimd > $@

$(SLEEF_DIR)/sp_%.o: $(SLEEF_HDRS) $(SLEEF_STAMP)
	$(TARGET_CC) $(SLEEF_CFLAGS) $(SLEEF_FLAGS_$*) -c $(SLEEF_SRC)/src/libm/sleefsimdsp.c -o $@

# SLEEF's dispatcher source, with only Sleef_expf4_u10's line of mkdisp's
# output: the full one refers to every function of every variant.
$(SLEEF_DIR)/dispsse.c: $(SLEEF_ROOT)/host/mkdisp
	@mkdir -p $(dir $@)
	{ cat $(SLEEF_SRC)/src/libm/dispsse.c.org; \
	  $< 2 4 __m128d __m128 __m128i sse2 sse4 avx2128 | grep -F 'Sleef_expf4_u10,'; } > $@
	grep -q 'Sleef_expf4_u10,' $@

$(SLEEF_DIR)/dispsse.o: $(SLEEF_DIR)/dispsse.c $(SLEEF_HDRS)
	$(TARGET_CC) $(SLEEF_CFLAGS) -DENABLE_AVX2=1 -c $< -o $@

$(SLEEF_DIR)/common.o: $(SLEEF_STAMP)
	@mkdir -p $(dir $@)
	$(TARGET_CC) $(SLEEF_CFLAGS) -c $(SLEEF_SRC)/src/common/common.c -o $@

$(SLEEF_DIR)/sleefsp.o $(SLEEF_DIR)/rempitab.o: $(SLEEF_DIR)/%.o: $(SLEEF_STAMP)
	@mkdir -p $(dir $@)
	$(TARGET_CC) $(SLEEF_CFLAGS) -c $(SLEEF_SRC)/src/libm/$*.c -o $@

$(SLEEF_LIB): $(SLEEF_OBJS)
	rm -f $@
	$(TARGET_AR) rcs $@ $^

# The bit-for-bit check against the distribution's libsleef.so.3.
$(SLEEF_DIR)/sleef_same: tests/install/sleef_same.c $(SLEEF_LIB)
	$(TARGET_CC) -std=gnu11 -O2 -Wall -Wextra -o $@ $< $(SLEEF_LIB) -ldl

ifeq ($(STATIC_SLEEF),1)
STATIC_DEPS := -ltinyroute_sleef $(filter-out -lsleef,$(LIBS))
install-lib: $(SLEEF_LIB)
install-lib: STATIC_EXTRA = install -m 644 $(SLEEF_LIB) $(I_LIB)/libtinyroute_sleef.a
endif
STATIC_INSTALLED := $(I_LIB)/libtinyroute_sleef.a
