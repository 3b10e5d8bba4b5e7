# Two entry points: `make repro` (set up, then run the pipeline) and `make test`.
# Everything lives in a local virtualenv, built once from the hashed lock file.

# The first of these that is Python 3.11-3.13 (TensorFlow 2.20 supports them); override with PYTHON=...
PYTHON ?= $(shell for p in python3.11 python3.12 python3.13 python3; do \
  command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 13))' 2>/dev/null \
  && { echo $$p; break; }; done)
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.installed
# Stages call `python`: make it the virtualenv's.
export PATH := $(BIN):$(PATH)

# The sampled instrument libraries the default data is rendered from (Debian packages):
# three SoundFonts, and freepats' Gravis patches with timidity to play them.
SOUNDFONTS := timgm6mb-soundfont fluid-soundfont-gm csound-soundfont freepats timidity
# Only the tests need this: headless Chromium opens `dvc plots show`'s page and the error reports.
TEST_PACKAGES := chromium

.PHONY: setup repro test system test-system lock gpu

define apt_install
	@missing=$$(for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  echo "installing Debian packages: $$missing"; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi
endef

system:
	$(call apt_install,$(SOUNDFONTS))

test-system: system
	$(call apt_install,$(TEST_PACKAGES))

$(STAMP): requirements.lock requirements-nodeps.txt pyproject.toml
	@test -n "$(PYTHON)" || { echo "error: no Python 3.11-3.13 found; set PYTHON=/path/to/python3.x" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --require-hashes -r requirements.lock
	$(BIN)/python -m pip install -q --require-hashes --no-deps -r requirements-nodeps.txt
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

setup: system $(STAMP)

# TensorFlow's CUDA libraries on top of the CPU set-up (a machine with an NVIDIA GPU and driver).
gpu: $(STAMP)
	$(BIN)/python -m pip install -r requirements-gpu.txt

repro: setup
	$(BIN)/dvc repro

test: test-system $(STAMP)
	$(BIN)/python -m pytest

# Re-resolve requirements.txt + requirements-dev.txt into the hashed lock (needs PyPI).
lock: $(STAMP)
	$(BIN)/python -m pip install -q uv
	$(BIN)/uv pip compile requirements.txt requirements-dev.txt --universal --python-version 3.11 \
	  --generate-hashes --no-header -o requirements.lock
	$(BIN)/uv pip compile requirements-nodeps.in --no-deps --universal --python-version 3.11 \
	  --generate-hashes --no-header -o requirements-nodeps.txt
