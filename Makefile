# edgeav: the two set-up commands are `make demo` and `make test`.
# Each creates .venv if missing and installs what it needs (re-installing only when
# pyproject.toml changes).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEB_PACKAGES := libportaudio2 libsndfile1

.PHONY: test test-fast test-pi demo install deb lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[all,dev]"
	touch $(STAMP)

install: deb $(STAMP)

# Debian packages the runtime and tests need (skipped when already installed).
deb:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = "0" ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "warning: missing Debian packages:$$missing (run as root or install them)"; fi; \
	fi

lint: install
	$(BIN)/ruff check .

test: install lint
	$(BIN)/python -m pytest -q

# The device path on aarch64 under qemu-user (Pi 4 and Pi 5 CPUs); also part of `make test`.
# First run installs qemu-user-static + mmdebstrap and builds a cached sysroot (EDGEAV_PI_CACHE).
test-pi: install
	$(BIN)/python -m pytest -q -m pi tests/test_pi.py

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

# The whole job on the built-in data (about 10 minutes on two cores): see demo/report.md after.
demo: install
	$(BIN)/edgeav demo

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
