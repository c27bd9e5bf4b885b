# The two commands users run (see README): `make demo` and `make test`.
# Both create .venv if missing and install the pinned stack + this package into it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.brainalign-installed
CORES  ?= 2

.PHONY: venv demo test lint dryrun clean-results

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-cache-dir -r requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

# Whole DAG on the embedded default (simulated NSD, BOLD5000, THINGS-EEG2), then the HTML report.
demo: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/snakemake --cores $(CORES) --rerun-incomplete
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/snakemake --cores $(CORES) --report results/report.html

test: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m pytest -n $(CORES) --dist loadgroup

lint: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/snakemake --lint

dryrun: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/snakemake -n
