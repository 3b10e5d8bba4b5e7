# Two entry points: `make repro` (set up, then run the pipeline) and `make test`.
# Everything lives in a local virtualenv, built once from the exact pins.
PYTHON ?= python3
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.installed
# Stages call `python`: make it the virtualenv's.
export PATH := $(BIN):$(PATH)

.PHONY: setup repro test browser

$(STAMP): requirements.txt requirements-dev.txt requirements-nodeps.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps -r requirements-nodeps.txt
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

# `dvc plots show` must work offline: a self-contained page template (generated, never committed).
.dvc/plots_template.html: $(STAMP)
	$(BIN)/python -m instrclf.plots template $@

setup: $(STAMP) .dvc/plots_template.html

repro: setup
	$(BIN)/dvc repro

# Headless Chromium renders `dvc plots show`'s page in the browser test.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; }

test: setup browser
	$(BIN)/python -m pytest
