# The DGDM book. `make book` and `make test` set up .venv first when needed.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.dgdm-installed
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)
export PYDEVD_DISABLE_FILE_VALIDATION := 1
# Real photographs for chapter 09 and its tests: the development copies beside the checkout, when
# they are there and you have not named your own (a fresh clone elsewhere skips those parts).
SHARED_DATA := $(abspath ../shared/data)
ifeq ($(DGDM_CUB_ROOT),)
ifneq ($(wildcard $(SHARED_DATA)/cub40/images.txt),)
export DGDM_CUB_ROOT := $(SHARED_DATA)/cub40
endif
endif
ifeq ($(DGDM_IMAGENET_ROOT),)
ifneq ($(wildcard $(SHARED_DATA)/imagenet500/metadata),)
export DGDM_IMAGENET_ROOT := $(SHARED_DATA)/imagenet500
endif
endif

.PHONY: help setup book warm test lint test-unit test-notebooks test-browser lab sync bench clean

help:
	@echo "make book          set up if needed, execute every notebook, write build/notebooks and build/html"
	@echo "make warm          run the book in classroom and in quick mode so that data/models holds every model (README, For instructors)"
	@echo "make test          set up if needed, lint (ruff), unit tests + nbval over every notebook (quick mode)"
	@echo "make test-browser  drive JupyterLab in Chromium and move every slider"
	@echo "make lab           open the book in JupyterLab"
	@echo "make bench         re-run the benchmarks, write docs/results.md and docs/results.json"
	@echo "make sync          re-pair notebooks/*.py and notebooks/*.ipynb after an edit"

setup: $(STAMP)

# Re-installs only when pyproject.toml changes. torch/torchvision are pinned so that pip takes the
# local wheels; an unpinned torch would pull ~2.6 GB from the network.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	set -o pipefail; $(PY) -m pip install --quiet -e ".[book,test,browser]" 2>&1 | { grep -v "is ignored" || true; }
	$(PY) -c "import torch, torchvision, dgdm_lib; print('installed:', dgdm_lib.env_report())"
	@touch $(STAMP)

book: $(STAMP)
	$(PY) -m tools.book --out build

# For instructors: train (or find) every model the chapters use, in both modes, into data/models (or
# $DGDM_DATA/models), to copy to the students' machines. The executed notebooks go to a scratch folder.
# The cache key holds the torch thread count: OMP_NUM_THREADS=4 make warm trains for 4-thread laptops.
WARM_OUT ?= build/warm
warm: $(STAMP)
	$(PY) -m tools.book --out $(WARM_OUT)/classroom
	DGDM_QUICK=1 $(PY) -m tools.book --out $(WARM_OUT)/quick
	@ls $${DGDM_DATA:-data}/models | wc -l | xargs echo "[warm] models cached in $${DGDM_DATA:-data}/models:"

test: $(STAMP)
	$(MAKE) --no-print-directory lint test-unit test-notebooks

# ruff's rules are in pyproject.toml ([tool.ruff]): pyflakes, import order, pyupgrade, likely bugs.
lint: $(STAMP)
	$(VENV)/bin/ruff check .

test-unit: $(STAMP)
	$(PY) -m pytest tests -q

test-notebooks: $(STAMP)
	DGDM_QUICK=1 $(PY) -m pytest --nbval-lax -p no:cacheprovider -q $(NOTEBOOKS)

# Chapter 09 measures its cached fine-tunes when it finds real images: give the drive more time.
test-browser: $(STAMP)
	DGDM_BROWSER_BUDGET_S=$${DGDM_BROWSER_BUDGET_S:-420} bash tools/browser/run.sh

lab: $(STAMP)
	$(VENV)/bin/jupyter lab $(ROOT_FLAG) --ServerApp.root_dir=. notebooks/00_start_here.ipynb

sync: $(STAMP)
	$(VENV)/bin/jupytext --sync notebooks/[0-9][0-9]_*.py

bench: $(STAMP)
	$(PY) benchmarks/run.py

clean:
	rm -rf build .pytest_cache
