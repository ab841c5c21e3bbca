# Two commands on a fresh machine (see README):
#   make run    set up, fetch weights and driving clips, turn the example job into a video
#   make test   set up with test tools, run the test suite (all but the slow-marked tests)
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
FD     := $(VENV)/bin/facedrop
UNAME  := $(shell uname -s)

# PyTorch, chosen per machine (the README says what each gets):
# - macOS: PyPI's wheel, which has MPS.
# - Linux with an NVIDIA driver (nvidia-smi found): PyPI's wheel, the CUDA build.
# - Linux without one: the CPU build from PyTorch's CPU index (~200 MB instead of ~1.5 GB of
#   CUDA wheels that could never run).
# A matching torch wheel already in pip's local wheelhouse (find-links) is used first: torch
# itself offline (--no-deps), then its small pure-Python dependencies from the usual index
# (torch is then satisfied, so no other build is pulled).
TORCH_VERSION := 2.13.0
TORCH_CPU_INDEX := https://download.pytorch.org/whl/cpu
ifeq ($(UNAME),Darwin)
TORCH_SOURCE :=
else
TORCH_SOURCE := $(if $(shell command -v nvidia-smi 2>/dev/null),,--index-url $(TORCH_CPU_INDEX))
endif

# setuptools prints a boxed "Editable installation" warning for every 'pip install -e': it is
# about import shadowing in general, not about this project, so the set-up leaves it out.
QUIET_EDITABLE := PYTHONWARNINGS="ignore:Editable installation"

.PHONY: setup setup-test run test test-slow test-parity lint wheel-check bench bench-studio clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# The set-up runs pip only when it has not run since pyproject.toml or this Makefile changed
# (the stamp below): once set up, 'make run' needs no network at all, and an offline machine
# gets the example job and the run's own message instead of pip's failure to reach an index.
SETUP_STAMP := $(VENV)/.facedrop-setup

setup: $(SETUP_STAMP)

$(SETUP_STAMP): $(PY) pyproject.toml Makefile
	($(PY) -m pip install --quiet --no-index --no-deps "torch==$(TORCH_VERSION)" 2>/dev/null \
	  && $(PY) -m pip install --quiet "torch==$(TORCH_VERSION)") \
	  || $(PY) -m pip install --quiet "torch==$(TORCH_VERSION)" $(TORCH_SOURCE)
	$(QUIET_EDITABLE) $(PY) -m pip install --quiet -e .
	@touch $@

setup-test: setup
	$(QUIET_EDITABLE) $(PY) -m pip install --quiet -e '.[test]'

# The example job is written first, so it is there even when a download fails (offline); then
# the run says what was skipped and the one command to run once the files are there.
run: setup
	@test -d hello || $(FD) example hello
	@skipped=""; \
	$(FD) weights fetch || skipped="the model weights"; \
	$(FD) drivers fetch || skipped="$${skipped:+$$skipped and }the driving clips"; \
	if [ -n "$$skipped" ]; then \
	  echo; \
	  echo "Skipped: $$skipped could not be downloaded (see above), so the example job in"; \
	  echo "hello/ was not turned into a video yet. Once the files are available, run:"; \
	  echo "    make run"; \
	  echo "Offline, bring the files in yourself first: $(FD) weights import DIR (add --trust"; \
	  echo "for files that are not the pinned ones) and $(FD) drivers add VIDEO --default;"; \
	  echo "then: $(FD) run hello"; \
	  exit 1; \
	fi
	$(FD) run hello
	@echo "facedrop is in $(VENV)/bin: run '. $(VENV)/bin/activate' to put it on your PATH."

# make test stays under 8 minutes on 2 cores; the few checks that cannot be made that short
# (whole jobs through a real daemon, full-size models) are marked slow and run by make test-slow,
# which CI runs right after make test. A parity test always runs in make test, slow or not.
test: setup-test
	$(PY) -m pytest -q -m "not slow or parity"

test-slow: setup-test
	$(PY) -m pytest -q -m "slow and not parity"

# The numeric parity tests again under the CPU kernel sets this machine does not pick by itself
# (default everywhere, avx2 on an AVX-512 machine), so a tolerance that only holds for one
# rounding fails here first.
PARITY_CAPS := default $(if $(shell grep -qw avx512f /proc/cpuinfo 2>/dev/null && echo y),avx2,)
test-parity: setup-test
	set -e; for cap in $(PARITY_CAPS); do \
	  echo "parity tests with ATEN_CPU_CAPABILITY=$$cap"; \
	  ATEN_CPU_CAPABILITY=$$cap $(PY) -m pytest -q -m parity; \
	done

lint: setup-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy watcher pipeline

# Build a wheel, install it into a fresh venv and run commands from another folder: proves a
# normal (non-editable) install carries everything the program reads.
wheel-check: setup-test
	bash .ci/wheel-check

bench: setup
	$(FD) bench

clean:
	rm -rf $(VENV) .pytest_cache .cache build dist

# The studio page's data endpoint with 10,000 past jobs and 2,000 inbox entries (target 50 ms).
bench-studio: setup
	$(PY) -m watcher.studio.bench
