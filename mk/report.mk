# make test-report: `tinyroute report` rendered in headless Chromium (no
# display needed); see tests/test_report.py. CHROMIUM=... picks another
# browser binary.
DEB_PKGS += chromium
CHROMIUM ?= chromium

.PHONY: test-report
test-report:
	@$(MAKE) --no-print-directory all
	@CHROMIUM=$(CHROMIUM) $(PYTHON) tests/test_report.py $(CLI) $(BUILD)/report-test
EXTRA_TESTS += test-report
