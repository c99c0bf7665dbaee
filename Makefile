# Two entry points: `make train` (set up + train the default recipe) and `make test` (set up + full suite;
# `make test-fast` runs the unit and small-integration tests alone);
# `make docs` builds the documentation site into site/.
PYTHON ?= python3
VENV ?= .venv
# Offline machines: point at the four MNIST IDX files. ../shared/data/mnist is used when it exists.
DATA_DIR ?= $(wildcard ../shared/data/mnist)
ARGS ?=

STAMP := $(VENV)/.tinyhub-installed

# The editable install maps modeling/ trainer/ cards/ into the tinyhub namespace through a meta-path finder;
# setuptools then prints an informational "Editable installation" banner that reads like a failure.

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	@echo "Installing torch and tinyhub's extras into $(VENV): a few GB on the first run; pip shows its progress."
	$(VENV)/bin/pip install "torch==2.14.1" "torchvision==0.29.1"
	PYTHONWARNINGS="ignore:Editable installation" $(VENV)/bin/pip install -e ".[train,bench,export,demo,test,docs]"
	touch $@

setup: $(STAMP)

train: $(STAMP)
	$(VENV)/bin/tinyhub train $(if $(DATA_DIR),--data-dir $(abspath $(DATA_DIR))) $(ARGS)

# Two workers, a test file each at a time (its module fixtures set up once), each computing on one thread.
WORKERS ?= 2
test: $(STAMP)
	TINYHUB_TEST_DATA=$(if $(DATA_DIR),$(abspath $(DATA_DIR))) $(VENV)/bin/python -m pytest -q -n $(WORKERS) --dist loadfile $(ARGS)

# The unit and small-integration tests only (no processes, Ray, wheels, Hub server or killed runs; a test that
# starts one fails unless marked e2e): under two minutes.
test-fast: $(STAMP)
	TINYHUB_TEST_DATA=$(if $(DATA_DIR),$(abspath $(DATA_DIR))) $(VENV)/bin/python -m pytest -q -n $(WORKERS) --dist loadfile -m "not e2e" $(ARGS)

# NO_MKDOCS_2_WARNING: Material prints a notice about MkDocs 2.0 on every build; the site builds with MkDocs 1.6.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

.PHONY: setup train test test-fast docs
