# `make device`: the library with signature checks that never touch the heap
# (issue 7). mbedTLS is built from Debian's source with core/tr_mbedtls_device.h
# (SHA-256, P-256 ECDSA verify, a static-pool allocator; nothing else) into
# build-device/ (build-device-aarch64/ with CROSS=aarch64-linux-gnu-):
#   libtinyroute.a  the library, compiled with -DTR_DEVICE_CRYPTO
#   libmbedcrypto.a the minimal mbedcrypto it needs
# Both carry mbedTLS's symbols renamed mbedtls_* -> tr_dev_mbedtls_*, so a
# program may also link another mbedTLS (the host tools' signing code, an
# app's TLS) built with another configuration, hence other struct layouts.
# `make test-device`: the tests below against that library. See
# core/DEVICE_CRYPTO.md.

DEB_PKGS += dpkg-dev

DEV_ROOT  := build-device
DEV       := $(DEV_ROOT)$(if $(CROSS),-$(firstword $(subst -, ,$(CROSS))))
# The source is fetched once, for every target architecture.
DEV_SRC   := $(DEV_ROOT)/src
MBED_DIR  := $(DEV_SRC)/mbedtls
MBED_STAMP:= $(DEV_SRC)/.fetched
DEV_CFG   := core/tr_mbedtls_device.h
# Only the modules the configuration enables: the rest would compile empty.
MBED_MODS := asn1parse asn1write bignum constant_time ecdsa ecp ecp_curves \
             memory_buffer_alloc platform platform_util sha256
MBED_FLAGS:= -std=c99 -O2 -g -Wall -DMBEDTLS_CONFIG_FILE='"tr_mbedtls_device.h"' \
             -I$(MBED_DIR)/include -I$(MBED_DIR)/library -Icore -Iplatform
DEV_CFLAGS:= $(ALL_CFLAGS) -DTR_DEVICE_CRYPTO -DMBEDTLS_CONFIG_FILE='"tr_mbedtls_device.h"' \
             -I$(MBED_DIR)/include

DEV_LIB   := $(DEV)/libtinyroute.a
DEV_MBED  := $(DEV)/libmbedcrypto.a
DEV_OBJ   := $(LIB_SRC:%.c=$(DEV)/obj/%.o)
MBED_OBJ  := $(MBED_MODS:%=$(DEV)/mbedtls/%.o)
# The measuring variant (test-device only): pool statistics, a pool cap and a
# pool large enough to measure any need, not only the shipped one's.
MEAS_DEFS := -DTR_MBEDTLS_MEASURE -DTR_CRYPTO_POOL_BYTES=65536
MEAS_OBJ  := $(MBED_MODS:%=$(DEV)/measure/%.o)
MEAS_MBED := $(DEV)/measure/libmbedcrypto.a
MEAS_CRYPTO := $(DEV)/measure/crypto.o
DEV_SYMS  := $(DEV)/renamed.syms
MEAS_SYMS := $(DEV)/measure/renamed.syms

.PHONY: device test-device
device: $(DEV_LIB) $(DEV_MBED)

# Debian's source (tr_apt_source, mk/deps.mk), unpacked beside a stamp, so it
# happens once.
$(MBED_STAMP):
	$(call tr_apt_source,mbedtls,$(DEV_SRC))
	@# The configuration is written for the 2.x series (3.x changed it).
	cd $(DEV_SRC) && d=$$(ls -d mbedtls-2.* | head -n 1) && test -d "$$d/library" && ln -sfn "$$d" mbedtls
	touch $@

$(DEV)/mbedtls/%.o: $(MBED_STAMP) $(DEV_CFG)
	@mkdir -p $(dir $@)
	$(TARGET_CC) $(MBED_FLAGS) -c $(MBED_DIR)/library/$*.c -o $@

$(DEV)/measure/%.o: $(MBED_STAMP) $(DEV_CFG)
	@mkdir -p $(dir $@)
	$(TARGET_CC) $(MBED_FLAGS) -DTR_MBEDTLS_MEASURE -c $(MBED_DIR)/library/$*.c -o $@

# Every global mbedtls_* symbol the built modules define.
$(DEV_SYMS): $(MBED_OBJ)
	$(CROSS)nm -g --defined-only $^ | awk '$$3 ~ /^mbedtls_/ { print $$3, "tr_dev_" $$3 }' | sort -u > $@
$(MEAS_SYMS): $(MEAS_OBJ)
	$(CROSS)nm -g --defined-only $^ | awk '$$3 ~ /^mbedtls_/ { print $$3, "tr_dev_" $$3 }' | sort -u > $@

$(DEV_MBED): $(MBED_OBJ) $(DEV_SYMS)
	rm -f $@
	$(TARGET_AR) rcs $@ $(MBED_OBJ)
	$(CROSS)objcopy --redefine-syms=$(DEV_SYMS) $@
	$(CROSS)ranlib $@

$(MEAS_MBED): $(MEAS_OBJ) $(MEAS_SYMS)
	rm -f $@
	$(TARGET_AR) rcs $@ $(MEAS_OBJ)
	$(CROSS)objcopy --redefine-syms=$(MEAS_SYMS) $@
	$(CROSS)ranlib $@

$(DEV)/obj/%.o: %.c $(wildcard core/*.h platform/*.h models/*.h) Makefile mk/device.mk | $(MBED_STAMP)
	@mkdir -p $(dir $@)
	$(TARGET_CC) $(DEV_CFLAGS) -c $< -o $@

$(DEV_LIB): $(DEV_OBJ) $(DEV_SYMS)
	rm -f $@
	$(TARGET_AR) rcs $@ $(DEV_OBJ)
	$(CROSS)objcopy --redefine-syms=$(DEV_SYMS) $@
	$(CROSS)ranlib $@

$(MEAS_CRYPTO): core/crypto.c $(wildcard core/*.h) mk/device.mk $(MEAS_SYMS)
	@mkdir -p $(dir $@)
	$(TARGET_CC) $(DEV_CFLAGS) $(MEAS_DEFS) -c $< -o $@
	$(CROSS)objcopy --redefine-syms=$(MEAS_SYMS) $@

# The test programs: the library's own suites, linked against the device
# library. The host tool objects (pack writer, PEM keys, signing) still use
# the host mbedTLS, under its own names.
DEV_TEST_LIBS := $(DEV_LIB) $(DEV_MBED) -lcmocka $(TOOL_LIBS)

$(DEV)/test_noalloc: tests/test_noalloc.c $(TOOL_LIB_OBJ) $(DEV_LIB) $(DEV_MBED)
	$(TARGET_CC) $(TEST_CFLAGS) -DTR_TEST_LOAD_NOALLOC -o $@ $< $(TOOL_LIB_OBJ) $(DEV_TEST_LIBS)

$(DEV)/test_core $(DEV)/test_task $(DEV)/test_governor $(DEV)/test_local: $(DEV)/test_%: tests/test_%.c $(TOOL_LIB_OBJ) $(DEV_LIB) $(DEV_MBED)
	$(TARGET_CC) $(TEST_CFLAGS) -o $@ $< $(TOOL_LIB_OBJ) $(DEV_TEST_LIBS)

$(DEV)/test_device_crypto: tests/test_device_crypto.c $(MEAS_CRYPTO) $(TOOL_LIB_OBJ) $(DEV_LIB) $(MEAS_MBED)
	$(TARGET_CC) $(TEST_CFLAGS) -DTR_DEVICE_CRYPTO $(MEAS_DEFS) -pthread -o $@ $< $(MEAS_CRYPTO) \
	    $(TOOL_LIB_OBJ) $(DEV_LIB) $(MEAS_MBED) -lcmocka $(TOOL_LIBS)

DEV_TESTS := test_noalloc test_device_crypto test_core test_task test_governor test_local
# The fixture pack is the native one: a cross build's pack has the same bytes
# but for its creation time (test-aarch64 checks that).
DEV_PACK  := build/fixture.trp
DEV_RUNNER:= $(if $(CROSS),qemu-aarch64 -L $(QEMU_LD))
# Under qemu-user a dynamically linked aarch64 program hangs in
# pthread_create, so the concurrency test runs natively only.

test-device:
	@$(MAKE) --no-print-directory CROSS= build/tinyroute $(DEV_PACK)
	@$(MAKE) --no-print-directory all device $(DEV_TESTS:%=$(DEV)/%)
	@set -e; for t in $(DEV_TESTS); do \
	  echo "== device $$t"; \
	  FIXTURE_PACK=$(DEV_PACK) $(if $(CROSS),TR_TEST_SKIP_THREADS=1) $(DEV_RUNNER) $(DEV)/$$t; \
	done; echo "device tests: all $(words $(DEV_TESTS)) suites passed"
	@echo "== device code size against core/DEVICE_CRYPTO.md"; sh tests/test_doc_figures.sh --device $(DEV)
EXTRA_TESTS += test-device
