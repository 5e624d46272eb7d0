# edgeav: the two set-up commands are `make demo` and `make test`.
# Each creates .venv if missing and installs what it needs (re-installing only when
# pyproject.toml changes). What the tests need from the system (Debian packages, two small
# tmpfs mounts, the cached Raspberry Pi sysroot) is set up here, never inside a test.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Debian packages the runtime needs, those only training data needs (CMU Flite speaks
# av-digits' test-unseen voices; without it that split uses espeak-ng alone), and those only the
# tests need (the Pi emulation, the live microphone through PulseAudio, the live page in a headless
# browser, the MQTT broker).
DEB_PACKAGES       := libportaudio2 libsndfile1
DEB_TRAIN_PACKAGES := flite
DEB_TEST_PACKAGES  := qemu-user-static mmdebstrap pulseaudio pulseaudio-utils libasound2-plugins chromium mosquitto
# A read-only tmpfs and a full one for tests/test_bad_input.py (root only; else those rows skip).
export EDGEAV_TEST_MOUNTS ?= /tmp/edgeav-test-mounts
# pytest-xdist workers; a test file stays on one worker (its module fixtures are built once).
# Most of the suite is one busy core (a Python start-up, a small training) or waiting on a real
# device stand-in, so on two cores two workers take 9-12 minutes where one took 16.
TEST_JOBS ?= 2
PYTEST := $(BIN)/python -m pytest -q -n $(TEST_JOBS) --dist loadfile

.PHONY: test test-fast test-pi test-setup pi-setup mounts demo install deb deb-test wheel lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# uv installs the same packages as pip, about four times faster on a fresh venv (20 s instead of
# 80 s here, most of it TensorFlow); pip does it where uv cannot be installed or fails.
$(BIN)/uv: | $(BIN)/python
	$(BIN)/python -m pip install --quiet uv || true

# The speech-embedding front-end's models (audio-hybrid, audio-embed) come from the wyoming-openwakeword wheel, installed without
# its own dependencies (an old tflite-runtime build edgeav does not use): see edgeav/speech_embedding.py.
PIP := $(BIN)/python -m pip install --quiet
UV  := $(BIN)/uv pip install --quiet --python $(BIN)/python
$(STAMP): pyproject.toml | $(BIN)/python $(BIN)/uv
	$(UV) -e ".[all,dev]" || $(PIP) -e ".[all,dev]"
	$(UV) --no-deps wyoming-openwakeword==1.8.2 || $(PIP) --no-deps wyoming-openwakeword==1.8.2
	touch $(STAMP)

install: deb $(STAMP)

# apt-get install the missing ones of $(1) (skipped when all are installed; a warning when not root).
define apt_install
	@missing=""; for p in $(1); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = "0" ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "warning: missing Debian packages:$$missing (run as root or install them)"; fi; \
	fi
endef

deb:
	$(call apt_install,$(DEB_PACKAGES) $(DEB_TRAIN_PACKAGES))

deb-test:
	$(call apt_install,$(DEB_TEST_PACKAGES))

mounts:
	@if [ "$$(id -u)" = "0" ]; then \
	  mkdir -p $(EDGEAV_TEST_MOUNTS)/ro $(EDGEAV_TEST_MOUNTS)/full; \
	  mountpoint -q $(EDGEAV_TEST_MOUNTS)/ro || mount -t tmpfs -o ro,size=64k,mode=0777 tmpfs $(EDGEAV_TEST_MOUNTS)/ro || true; \
	  if ! mountpoint -q $(EDGEAV_TEST_MOUNTS)/full && mount -t tmpfs -o size=64k,mode=0777 tmpfs $(EDGEAV_TEST_MOUNTS)/full; then \
	    cat /dev/zero > $(EDGEAV_TEST_MOUNTS)/full/filler 2>/dev/null; \
	    head -c 1 /dev/zero > $(EDGEAV_TEST_MOUNTS)/full/filler2 2>/dev/null; true; \
	  fi; \
	fi

# The emulated Raspberry Pi (arm64 sysroot + aarch64 wheels of the runtime extra), cached in
# $EDGEAV_PI_CACHE (default /var/cache/edgeav-pi); the first time takes a few minutes.
pi-setup: deb-test $(STAMP)
	$(BIN)/python tests/pi/setup_sysroot.py prepare || [ $$? = 77 ]

test-setup: deb-test mounts pi-setup

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: install lint test-setup
	$(PYTEST)

# The device path on aarch64 under qemu-user (Pi 4 and Pi 5 CPUs); also part of `make test`.
test-pi: install pi-setup
	$(PYTEST) -m pi tests/test_pi.py

# No training, no conversion, no CLI storms: under two minutes.
test-fast: install mounts
	$(PYTEST) -m "not slow"

# The pure-Python wheel to copy to a device with the bundle: dist/edgeav-<version>-py3-none-any.whl
wheel: $(STAMP)
	rm -rf build dist/edgeav-*.whl
	$(BIN)/python -m pip wheel --quiet --no-deps -w dist .

# The whole job on the built-in data (about 10 minutes on two cores): see demo/report.md after.
demo: install
	$(BIN)/edgeav demo

clean:
	rm -rf $(VENV) .pytest_cache build dist *.egg-info
