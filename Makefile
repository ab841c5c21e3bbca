# Two commands on a fresh machine (see README):
#   make run    set up, fetch weights and driving clips, turn examples/hello into a video
#   make test   set up with test tools, run the test suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
UNAME  := $(shell uname -s)

.PHONY: setup setup-test run test lint bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# macOS gets the normal (MPS-enabled) torch wheel; Linux pins the release whose CPU build CI uses.
setup: $(PY)
ifeq ($(UNAME),Darwin)
	$(PY) -m pip install --quiet torch
else
	$(PY) -m pip install --quiet torch==2.13.0
endif
	$(PY) -m pip install --quiet -e .

setup-test: setup
	$(PY) -m pip install --quiet -e '.[test]'

run: setup
	$(VENV)/bin/facedrop weights fetch
	$(VENV)/bin/facedrop drivers fetch
	$(VENV)/bin/facedrop run examples/hello

test: setup-test
	$(PY) -m pytest -q

lint: setup-test
	$(VENV)/bin/ruff check watcher pipeline tests install_launchagent.py

bench: setup
	$(VENV)/bin/facedrop bench

clean:
	rm -rf $(VENV) .pytest_cache .cache
