# The two commands users run (see README): `make demo` and `make test`.
# Both create .venv if missing and install the pinned stack + this package into it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.brainalign-installed
CORES  ?= 2

.PHONY: venv demo test lint dryrun clean-results gpu-check gpu-check-cpu gpu-wheels

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
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m pytest -n $(CORES) --dist loadfile --no-loadscope-reorder --durations=15

lint: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/snakemake --lint

dryrun: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/snakemake -n

# The GPU kit (benchmarks/gpu_suite.py, docs/gpu.md). On a CUDA machine: every GPU code path checked and every
# GPU benchmark measured beside its peer, in about 8 minutes, results in $(OUT) (default gpu_results/). It uses
# the project's .venv when there is one, else the machine's python3 (a bare GPU machine: missing packages come
# from the wheels in .whl/, made by `make gpu-wheels` on a machine with network access).
GPU_PYTHON ?= $(if $(wildcard $(BIN)/python),$(BIN)/python,$(PYTHON))
OUT ?= gpu_results
gpu-check:
	$(GPU_PYTHON) benchmarks/gpu_suite.py --out $(OUT)

# Its CPU mode: the same code paths at tiny sizes (what tests/test_gpu_suite_cpu.py runs in CI).
gpu-check-cpu: $(STAMP)
	$(BIN)/python benchmarks/gpu_suite.py --device cpu --tiny --out $(OUT)

gpu-wheels:
	bash benchmarks/build_gpu_wheels.sh
