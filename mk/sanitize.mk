# Sanitizer runs (gcc), each in its own build directory so the plain build
# is untouched:
#   make test-asan  the whole native suite under AddressSanitizer and
#                   UndefinedBehaviorSanitizer (the CLI the python checks call
#                   included), into build-asan/;
#   make test-tsan  the threads suite under ThreadSanitizer, into build-tsan/.
# Both exit non-zero on the first report. Not part of `make test`.

ASAN_BUILD  := build-asan
TSAN_BUILD  := build-tsan
ASAN_CFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer \
               -fno-sanitize-recover=undefined
TSAN_CFLAGS := -fsanitize=thread -fno-omit-frame-pointer
# halt_on_error: the first report fails the run rather than scrolling by;
# UBSan's own exit code, since -fno-sanitize-recover already aborts.
SAN_ENV     := ASAN_OPTIONS=halt_on_error=1:detect_leaks=1:exitcode=86 \
               UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:exitcode=87 \
               TSAN_OPTIONS=halt_on_error=1:exitcode=66:second_deadlock_stack=1

.PHONY: test-asan test-tsan
test-asan:
	@$(SAN_ENV) $(MAKE) --no-print-directory CC=gcc CROSS= BUILD=$(ASAN_BUILD) \
	    CFLAGS="$(ASAN_CFLAGS)" test-native

# The packs are plain data: the normal build's CLI makes them (a TSan CLI
# would only slow that down); only the library and the test are
# instrumented.
test-tsan:
	@$(MAKE) --no-print-directory $(FIXTURE_PACK) $(THREADS_PACK)
	@$(MAKE) --no-print-directory CC=gcc CROSS= BUILD=$(TSAN_BUILD) \
	    CFLAGS="$(TSAN_CFLAGS)" $(TSAN_BUILD)/test_threads $(TSAN_BUILD)/test_local_threads
	$(SAN_ENV) $(TSAN_BUILD)/test_threads $(FIXTURE) $(FIXTURE_PACK) $(THREADS_PACK)
	$(SAN_ENV) $(TSAN_BUILD)/test_local_threads $(FIXTURE) $(FIXTURE_PACK)
EXTRA_TESTS += test-asan test-tsan
