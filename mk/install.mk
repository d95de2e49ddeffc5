# make install / uninstall: the library as a system library (issue 8).
#   make install PREFIX=/usr/local [DESTDIR=/staging]
# installs include/tinyroute.h (+ tinyroute_status.h, which it includes), lib/libtinyroute.{a,so*},
# lib/pkgconfig/tinyroute.pc, lib/cmake/tinyroute/ (CMake package, target
# tinyroute::tinyroute), bin/tinyroute, share/tinyroute/embedder.bin (the
# default embedder table the installed CLI's build uses) and, under
# share/doc/tinyroute/, the license, the third-party notices and the
# integrator's documents. `make install-lib`: the same without the CLI and
# the table, so it needs only the library's dependencies (mbedTLS's
# libmbedcrypto, SLEEF), not cJSON nor the word vectors. The shared library
# is built only here (make shared), so everyday builds do not compile
# everything twice.
# make test-install: checks an installed copy, natively and for aarch64.

DEB_PKGS += pkg-config cmake clang llvm

PREFIX  ?= /usr/local
DESTDIR ?=

# The version lives in the public header only.
tr_version = $(shell sed -n 's/^.define TR_VERSION_$(1)  *\([0-9][0-9]*\).*/\1/p' core/tinyroute.h)
TR_MAJOR := $(call tr_version,MAJOR)
TR_MINOR := $(call tr_version,MINOR)
TR_PATCH := $(call tr_version,PATCH)
TR_VERSION := $(TR_MAJOR).$(TR_MINOR).$(TR_PATCH)

SO_LINK := libtinyroute.so
# Before 1.0 every minor release may change the ABI (structs grow at their
# end, enums may be renumbered), so the soname carries major.minor: the
# loader then refuses a library of another minor instead of misreading it.
SO_NAME := $(SO_LINK).$(TR_MAJOR)$(if $(filter 0,$(TR_MAJOR)),.$(TR_MINOR))
SO_FILE := $(SO_LINK).$(TR_VERSION)
SO      := $(BUILD)/$(SO_FILE)
PIC_OBJ := $(LIB_SRC:%.c=$(BUILD)/pic/%.o)
SO_MAP  := $(BUILD)/tinyroute.map

$(BUILD)/pic/%.o: %.c $(wildcard core/*.h platform/*.h models/*.h) Makefile
	@mkdir -p $(dir $@)
	$(TARGET_CC) $(ALL_CFLAGS) -fPIC -c $< -o $@

# Export exactly the functions tinyroute.h declares. Internal helpers share
# the tr_ prefix, so a tr_* pattern would leak them; a list made from the
# header cannot drift from it (the header's TR_API does the same for builds
# with -fvisibility=hidden); the header's static inline helpers are not
# library symbols. Calls inside the library then bind directly,
# with no PLT.
$(SO_MAP): core/tinyroute.h mk/install.mk
	@mkdir -p $(dir $@)
	{ echo '{ global:'; \
	  sed -n '/^static/d; s/^[A-Za-z_].*[ *]\(tr_[a-z0-9_]*\)(.*/    \1;/p' $<; \
	  echo '  local: *; };'; } > $@

# --no-undefined with the dependencies on the link line records them as
# DT_NEEDED, so a program links with -ltinyroute alone.
$(SO): $(PIC_OBJ) $(SO_MAP)
	$(TARGET_CC) -shared -Wl,-soname,$(SO_NAME) -Wl,--version-script,$(SO_MAP) \
	    -Wl,--no-undefined -Wl,-z,relro -Wl,-z,now -o $@ $(PIC_OBJ) $(LIBS)
	ln -sf $(SO_FILE) $(BUILD)/$(SO_NAME)
	ln -sf $(SO_NAME) $(BUILD)/$(SO_LINK)

.PHONY: shared install install-lib uninstall test-install
shared: $(SO)

I_INC := $(DESTDIR)$(PREFIX)/include
I_LIB := $(DESTDIR)$(PREFIX)/lib
I_BIN := $(DESTDIR)$(PREFIX)/bin
I_DOC := $(DESTDIR)$(PREFIX)/share/doc/tinyroute
I_SHARE := $(DESTDIR)$(PREFIX)/share/tinyroute
I_CMAKE := $(I_LIB)/cmake/tinyroute
# LICENSE and THIRD-PARTY.md travel with the library: every pack built with the
# default embedder carries the word vectors the notice names.
DOC_FILES := LICENSE THIRD-PARTY.md README.md core/INTEGRATION.md core/PACK_FORMAT.md
CMAKE_FILES := tinyroute-config.cmake tinyroute-config-version.cmake
# What a static link adds: the .pc's Libs.private, the CMake static target's
# link libraries (mk/sleef.mk replaces -lsleef with its static build).
STATIC_DEPS ?= $(LIBS)
tr_empty :=
tr_space := $(tr_empty) $(tr_empty)
CMAKE_DEPS = $(subst $(tr_space),;,$(strip $(patsubst -l%,%,$(patsubst \
    -ltinyroute_sleef,$${_tinyroute_prefix}/lib/libtinyroute_sleef.a,$(STATIC_DEPS)))))
# The table is the same bytes on every architecture (test-aarch64 compares the
# packs that carry it), so a cross install takes the native one.
EMB_DEFAULT := build/embedder-$(EMB_WORDS).bin
ifneq ($(BUILD),build)
$(EMB_DEFAULT):
	$(MAKE) --no-print-directory CROSS= BUILD=build CC=cc AR=ar $@
endif

# The .pc names PREFIX, not DESTDIR: DESTDIR is only a staging root. The
# CMake files find the prefix from where they are, so need neither.
install-lib: $(LIB) $(SO)
	install -d $(I_INC) $(I_LIB)/pkgconfig $(I_CMAKE) $(I_DOC)
	install -m 644 $(DOC_FILES) $(I_DOC)/
	install -m 644 core/tinyroute.h platform/tinyroute_status.h $(I_INC)/
	install -m 644 $(LIB) $(I_LIB)/libtinyroute.a
	install -m 755 $(SO) $(I_LIB)/$(SO_FILE)
	ln -sf $(SO_FILE) $(I_LIB)/$(SO_NAME)
	ln -sf $(SO_NAME) $(I_LIB)/$(SO_LINK)
	printf '%s\n' 'prefix=$(PREFIX)' 'exec_prefix=$${prefix}' 'libdir=$${exec_prefix}/lib' \
	    'includedir=$${prefix}/include' '' 'Name: tinyroute' \
	    'Description: Routes LLM prompts to models from signed routing packs' \
	    'Version: $(TR_VERSION)' 'Cflags: -I$${includedir}' \
	    'Libs: -L$${libdir} -ltinyroute' 'Libs.private: $(STATIC_DEPS)' \
	    > $(I_LIB)/pkgconfig/tinyroute.pc
	for f in $(CMAKE_FILES); do \
	  sed -e 's|@VERSION@|$(TR_VERSION)|g' -e 's|@MAJOR@|$(TR_MAJOR)|g' -e 's|@MINOR@|$(TR_MINOR)|g' \
	      -e 's|@SO_FILE@|$(SO_FILE)|g' -e 's|@SO_NAME@|$(SO_NAME)|g' -e 's|@STATIC_LIBS@|$(CMAKE_DEPS)|g' \
	      mk/$$f.in > $(I_CMAKE)/$$f || exit 1; \
	done
	$(STATIC_EXTRA)

install: install-lib $(CLI) $(EMB_DEFAULT)
	install -d $(I_BIN) $(I_SHARE)
	install -m 755 $(CLI) $(I_BIN)/tinyroute
	install -m 644 $(EMB_DEFAULT) $(I_SHARE)/embedder.bin

uninstall:
	rm -f $(I_INC)/tinyroute.h $(I_INC)/tinyroute_status.h $(I_LIB)/libtinyroute.a $(I_LIB)/$(SO_FILE) \
	    $(I_LIB)/$(SO_NAME) $(I_LIB)/$(SO_LINK) $(I_LIB)/pkgconfig/tinyroute.pc \
	    $(I_BIN)/tinyroute $(addprefix $(I_DOC)/,$(notdir $(DOC_FILES))) \
	    $(addprefix $(I_CMAKE)/,$(CMAKE_FILES)) $(I_SHARE)/embedder.bin $(STATIC_INSTALLED)
	-rmdir $(I_DOC) $(I_SHARE) $(I_CMAKE) $(I_LIB)/cmake 2>/dev/null

# Native: a real prefix. aarch64: PREFIX=/usr staged under DESTDIR, used as
# the pkg-config sysroot, as a cross distribution build would.
test-install:
	@$(MAKE) --no-print-directory all $(FIXTURE_PACK)
	@BUILD=$(BUILD) A64=$(A64) QEMU_LD=$(QEMU_LD) FIXTURE_PACK=$(FIXTURE_PACK) EMBEDDER=$(EMBEDDER) \
	    TEST_PUB=$(TEST_PUB) PYTHON=$(PYTHON) MAKE="$(MAKE)" sh tests/example/test_install.sh
AARCH64_LANE += test-install
