# The README's commands: `make run` (gateway on this PC) and `make test` (every test, every runtime).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
VPY := $(VENV)/bin/python
CACHE := .cache
MPY32 := $(CACHE)/mpy32/micropython-32-plain
STAMP := $(VENV)/.deps-$(shell cat requirements-dev.txt requirements-run.txt pyproject.toml | cksum | cut -d' ' -f1)
# `make run` installs only requirements-run.txt (a subset of what `make test` installs).
RUN_STAMP := $(VENV)/.run-deps-$(shell cat requirements-run.txt | cksum | cut -d' ' -f1)

export XRT_MPY64 := $(abspath $(VENV)/bin/micropython)
export XRT_EXTRA_PATH := $(abspath $(CACHE)/umqtt):$(abspath $(CACHE)/weblib)

.PHONY: test run venv deps mpy32 umqtt weblib clean help bench bench-driver bench-gateway bench-journal bench-energy bench-flash bench-survival bench-rp2040 bench-web bench-deps

help:
	@echo "make test   run every test under cpython, mpy64 and mpy32 (PYTEST_ARGS=\"tests/test_x.py -q\" for some)"
	@echo "make run    run the gateway on this PC (BROKER=host:port, CONFIG=path, DATA=dir, WEB_PORT=8080,"
	@echo "           SETUP=1 [DNS_PORT=5353]; see README)"
	@echo "make typecheck   pyright on the board code against the Pico W and ESP32 stubs"
	@echo "make lint   ruff on the board code, pyflakes on tools/ and tests/"
	@echo "make firmware BOARD=RBAMP_PICO_W   a board image into dist/ (offline from ../shared/vendor;"
	@echo "           RBAMP_ESP32 needs MPY_DIR=<MicroPython v1.25.0 checkout> and ESP-IDF; firmware/README.md)"
	@echo "make deploy PORT=/dev/ttyACM0 CONFIG=config.json   the gateway onto a board with stock MicroPython"
	@echo "           (mpremote; deploy-mpy: the same precompiled)"
	@echo "make deploy-config PORT=/dev/ttyACM0 CONFIG=config.json   only config.json (e.g. for a board"
	@echo "           with our image)"
	@echo "make mpy, mpy-bundle   the board code compiled with mpy-cross into build/"
	@echo "make bench  run the benchmarks and update BENCHMARKS.md"
	@echo "           (one at a time: bench-driver, bench-journal, bench-gateway, bench-energy, bench-flash, bench-survival,"
	@echo "           bench-rp2040, bench-web)"
	@echo "make clean  remove .venv, .cache, .run, build and dist"

$(STAMP): requirements-dev.txt requirements-run.txt pyproject.toml
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q -r requirements-dev.txt
	$(VPY) -m pip install -q -e . --no-deps
	@rm -f $(VENV)/.deps-*
	@touch $@

venv: $(STAMP)

$(RUN_STAMP): requirements-run.txt
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q -r requirements-run.txt
	@rm -f $(VENV)/.run-deps-*
	@touch $@

# umqtt.simple for the tests, `make run` and the unix build: the file our images freeze
# (micropython-lib at MicroPython v1.25.0's pin), extracted from ../shared/vendor and checked against
# firmware/umqtt-simple.sha256 on every run (a copy that differs is replaced); VENDOR_DIR=dir for
# another folder with the offline sources.
umqtt:
	@tools/fetch_umqtt.sh $(CACHE)/umqtt

# microdot, the web page's framework: the wheel pinned in firmware/microdot.sha256, from PyPI, into
# .cache/weblib/microdot (tests on every runtime, `make run`, the images and `make deploy`)
weblib:
	@PYTHON=$(PYTHON) tools/fetch_microdot.sh $(CACHE)/weblib

# The 32-bit single-float interpreter. Where it cannot be built (no apt), say so loudly and go on;
# CI=true turns the missing interpreter into failing tests.
mpy32:
	@tools/build_mpy32.sh $(CACHE)/mpy32 >/dev/null || { \
	  echo "****************************************************************"; \
	  echo "* WARNING: the mpy32 interpreter could not be built on this     *"; \
	  echo "* machine; its tests will be reported as not run.               *"; \
	  echo "****************************************************************"; }

deps: venv umqtt weblib mpy32 stubs

# The gateway on this PC: real main.py under MicroPython (host profile), its simulated modules in a
# process of their own, embedded broker, live view; the gateway is restarted when it exits or dies.
# BROKER=host:port uses another broker; CONFIG=path another config.json; DATA=dir another data
# folder (default .run); WEB_PORT= the web page's port (default 8080: http://127.0.0.1:8080/);
# SETUP=1 boots the gateway in setup mode (its catch-all DNS on UDP DNS_PORT, default 5353). It installs only what it runs: requirements-run.txt and umqtt (no type
# checker, stubs, 32-bit interpreter or plotting library; `make test` adds those).
run: $(RUN_STAMP) umqtt weblib
	$(VPY) tools/run_host.py $(if $(WEB_PORT),--web-port $(WEB_PORT)) $(if $(filter-out 0 no false,$(SETUP)),--setup) $(if $(DNS_PORT),--dns-port $(DNS_PORT)) $(if $(BROKER),--broker $(BROKER)) $(if $(CONFIG),--config $(CONFIG)) $(if $(DATA),--data $(DATA))

# bench-deps: the benchmark tests draw their plots with the benchmarks' pinned matplotlib.
test: deps bench-deps
	XRT_MPY32=$(abspath $(MPY32)) $(VPY) -m pytest $(PYTEST_ARGS)

# Benchmarks rewrite their section of BENCHMARKS.md and their plots in docs/bench/; each can run
# on its own. Their plotting library (requirements-bench.txt) is installed here; `make test` installs
# it too, because the benchmark tests draw the plots.
BENCH_STAMP := $(VENV)/.bench-$(shell cat requirements-bench.txt | cksum | cut -d' ' -f1)
BENCH_TARGETS := bench-driver bench-journal bench-gateway bench-energy bench-flash bench-survival bench-rp2040 bench-web

$(BENCH_STAMP): requirements-bench.txt | $(STAMP)
	$(VPY) -m pip install -q -r requirements-bench.txt
	@rm -f $(VENV)/.bench-*
	@touch $@

bench-deps: $(BENCH_STAMP)

$(BENCH_TARGETS): export XRT_MPY32 := $(abspath $(MPY32))

bench-driver: deps bench-deps
	PYTHONPATH=lib:tools $(VPY) tools/bench_driver.py --write

bench-journal: deps bench-deps
	$(VPY) tools/bench_journal.py --write

# The gateway measured as a board runs it: an mpy32 build with our code frozen in.
bench-gateway: deps bench-deps
	tools/build_mpy32.sh $(CACHE)/mpy32 firmware/host_manifest.py >/dev/null
	$(VPY) tools/bench_gateway.py --write

bench-energy: deps bench-deps
	$(VPY) tools/bench_energy.py --write

# Journal plus backlog: projected flash life at the default config and at period_s 1 (mpy32).
bench-flash: deps bench-deps
	$(VPY) tools/bench_flash_life.py --write

# Energy lost per gateway restart and per power cut (with and without the mains-loss commit), and
# the time from a mains collapse to the durable commit: the whole gateway on mpy32, virtual time.
bench-survival: deps bench-deps
	PYTHONPATH=tools $(VPY) tools/bench_survival.py --write

# Our Pico W image on the emulated RP2040 (tools/picow): image size, boot time, heap over an
# emulated hour (~16 min wall), CPU of the driver and the journal on the chip.
bench-rp2040: deps bench-deps
	$(VPY) tools/bench_rp2040.py --write

# The web page (issue 16): the gateway's heap and publish latency with the page off, idle and open,
# and page load times (the frozen mpy32 build, as bench-gateway); the web application on the
# emulated RP2040 (no Wi-Fi there: requests through microdot's handle_request in memory).
bench-web: deps bench-deps
	tools/build_mpy32.sh $(CACHE)/mpy32 firmware/host_manifest.py >/dev/null
	$(VPY) tools/bench_web.py --write

bench: $(BENCH_TARGETS)

# Board code compiled with mpy-cross: `mpy` for both board targets (armv6m: Pico W, xtensawin:
# ESP32) into build/mpy/<arch>/; `mpy-bundle` the bytecode copy for stock firmware in
# build/mpy-bundle/ (lib/rbamp/*.mpy, lib/gateway/*.mpy, lib/microdot/*.mpy, boot.py, main.py). See tools/build_mpy.py.
.PHONY: mpy mpy-bundle
mpy: venv
	$(VPY) tools/build_mpy.py mpy build/mpy

mpy-bundle: venv
	$(VPY) tools/build_mpy.py bundle build/mpy-bundle

# A board image with our code frozen in, built by the port's own build; the image lands in dist/
# (see firmware/README.md).
#   make firmware BOARD=RBAMP_PICO_W    offline, from ../shared/vendor; installs the Arm toolchain
#   make firmware BOARD=RBAMP_ESP32|RBAMP_PICO_W MPY_DIR=<MicroPython checkout at firmware/MICROPYTHON_VERSION>
.PHONY: firmware
firmware:
	tools/build_firmware.sh "$(BOARD)" "$(MPY_DIR)"

# The gateway onto a board with mpremote (tools/deploy.py): PORT=/dev/ttyACM0 [CONFIG=config.json].
# RESUME=1 (no soft reset on connect) and NO_RESET=1 are for the unix port behind a pty (tests).
.PHONY: deploy deploy-mpy deploy-config
DEPLOY_ARGS = --port "$(PORT)" $(if $(CONFIG),--config "$(CONFIG)") $(if $(RESUME),--resume) $(if $(NO_RESET),--no-reset)
deploy: venv
	$(VPY) tools/deploy.py $(DEPLOY_ARGS)

deploy-mpy: mpy-bundle
	$(VPY) tools/deploy.py --source build/mpy-bundle $(DEPLOY_ARGS)

deploy-config: venv
	$(VPY) tools/deploy.py --config-only $(DEPLOY_ARGS)

# Type checks of the board code against the MicroPython stubs of each board (tools/typecheck/),
# and ruff (ruff.toml). Both also run inside `make test` (tests/test_typecheck.py, test_lint.py).
.PHONY: stubs typecheck lint
STUBS := $(CACHE)/stubs/.stamp-$(shell cat tools/typecheck/stubs-*.txt | cksum | cut -d' ' -f1)
$(STUBS): tools/typecheck/stubs-rp2.txt tools/typecheck/stubs-esp32.txt | $(STAMP)
	rm -rf $(CACHE)/stubs
	$(VPY) -m pip install -q --target $(CACHE)/stubs/rp2 -r tools/typecheck/stubs-rp2.txt
	$(VPY) -m pip install -q --target $(CACHE)/stubs/esp32 -r tools/typecheck/stubs-esp32.txt
	@touch $@

stubs: $(STUBS)

typecheck: stubs umqtt
	PYRIGHT_PYTHON_IGNORE_WARNINGS=1 $(VENV)/bin/pyright -p tools/typecheck/pyright-rp2.json
	PYRIGHT_PYTHON_IGNORE_WARNINGS=1 $(VENV)/bin/pyright -p tools/typecheck/pyright-esp32.json

lint: venv
	$(VENV)/bin/ruff check
	$(VENV)/bin/ruff check --isolated --select F --exclude "firmware/**/*manifest.py,firmware/host_manifest.py" tools tests firmware

clean:
	rm -rf $(VENV) $(CACHE) .run .pytest_cache build dist
