# The fleet step (issue 17): tools/fleet_step.py on Dask distributed reads
# device logs through build/libtinyroute-host.so (tools/hostlib.h, a C ABI
# over tools/logfile.c), never through a second parser of the format.
#   make hostlib       the shared library (position-independent objects in
#                      $(BUILD)/pic-host/; mk/install.mk's libtinyroute.so
#                      keeps $(BUILD)/pic/ and PIC_OBJ to itself)
#   make test-fleet    tests/test_fleet_step.py on a LocalCluster (seconds)
DEB_PKGS += python3-dask python3-distributed

HOSTLIB  := $(BUILD)/libtinyroute-host.so
HOST_PIC_SRC := $(LIB_SRC) $(filter-out tools/main.c,$(TOOL_SRC))
HOST_PIC_OBJ := $(HOST_PIC_SRC:%.c=$(BUILD)/pic-host/%.o)
GEN_FLEET:= $(BUILD)/gen_fleet_logs

.PHONY: hostlib test-fleet
hostlib: $(HOSTLIB)

$(BUILD)/pic-host/%.o: %.c $(wildcard core/*.h platform/*.h models/*.h models/fit/*.h tools/*.h) Makefile mk/fleet.mk
	@mkdir -p $(dir $@)
	$(TARGET_CC) $(ALL_CFLAGS) -Itools -fPIC -c $< -o $@

$(HOSTLIB): $(HOST_PIC_OBJ)
	$(TARGET_CC) -shared -o $@ $(HOST_PIC_OBJ) $(TOOL_LIBS)

$(GEN_FLEET): tests/bench/gen_fleet_logs.c $(TOOL_LIB_OBJ) $(LIB)
	$(TARGET_CC) $(ALL_CFLAGS) -Itools -o $@ $< $(TOOL_LIB_OBJ) $(LIB) $(TOOL_LIBS)

# tests/run.sh runs it too (suite fleet-step), in native builds without
# sanitizers: Python cannot load an ASan-built library, and ctypes loads the
# host's architecture only.
ifeq ($(CROSS)$(findstring sanitize,$(CFLAGS)),)
TEST_BINS += $(HOSTLIB) $(GEN_FLEET)
endif

test-fleet: $(HOSTLIB) $(GEN_FLEET) $(FIXTURE_PACK) $(CLI) $(EMBEDDER)
	$(PYTHON) tests/test_fleet_step.py $(HOSTLIB) $(GEN_FLEET) $(FIXTURE_PACK) $(TEST_KEY:.key=.pub) \
	    $(FIXTURE) $(CLI) $(EMBEDDER) $(TEST_KEY)
