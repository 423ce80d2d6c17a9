# qml-robustness: `make all` regenerates every result, `make test` proves it still works.
# CONFIG=configs/<experiment>.yaml selects an experiment; results go to results/<experiment>/.
# Each stage is an executed notebook. The stage graph (which notebook, which stages before
# it, which code) is declared once, in helpers/store/graph.py; .stages.mk is generated from
# it. make reruns a stage when its notebook, the config, its code or a stage before it
# changed; inside a stage, only the units of work whose config values or code changed are
# recomputed (docs/architecture.md).

SHELL := /bin/bash
.DELETE_ON_ERROR:

CONFIG ?= configs/default.yaml
EXPERIMENT := $(basename $(notdir $(CONFIG)))
OUT := results/$(EXPERIMENT)

# A virtual environment in .venv, created on first use. To use an activated conda env
# instead (see environment.yml): make all VENV=$$CONDA_PREFIX
VENV ?= .venv
PYTHON := $(VENV)/bin/python
KERNEL := qml-robustness
INSTALLED := $(VENV)/.qml-robustness-installed
# The studies whose summary and figures are tracked in git (README, docs/results.md).
SHIPPED := default plus_minus_study moons breast_cancer noise device defences iris digits_4x4

# papermill saves its output after every cell, so a failed run would leave a fresh-looking
# target: write to a temporary name, rename on success, keep a failure as <stage>.failed.ipynb
# (the previous good result stays in place). helpers/stages/notebook.py runs papermill with
# the kernel over IPC and its stderr (each stage's progress bar) streamed to this terminal.
define papermill
$(PYTHON) -m helpers.stages.notebook $< $(@:.ipynb=.running.ipynb) $(CONFIG) $(KERNEL) \
	&& mv $(@:.ipynb=.running.ipynb) $@ && rm -f $(@:.ipynb=.failed.ipynb) \
	|| { mv $(@:.ipynb=.running.ipynb) $(@:.ipynb=.failed.ipynb) 2>/dev/null; exit 1; }
endef

.PHONY: all test bench bench-stages bench-verifier lab clean env docs shipped sweep calibration

env: $(INSTALLED)

$(INSTALLED): requirements.txt pyproject.toml
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -r requirements.txt
	$(PYTHON) -m pip install --quiet --no-deps -e .
	$(PYTHON) -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (qml-robustness)"
	touch $@

# The stage rules: train, attack, interpret, report and their notebooks under $(OUT).
.stages.mk: helpers/store/graph.py helpers/store/layout.py
	python3 -m helpers.store.graph make > $@
include .stages.mk

# Every stage, through the last one, and the report page (results/<experiment>/report.html,
# then results/index.html: every experiment with its key numbers).
all: $(LAST_STAGE) $(REPORT_PAGE)

# Unit tests, then the four notebooks on the smoke config: papermill runs them once
# (each asserts what matters), nbval runs the executed copies again and compares the
# cells marked NBVAL_CHECK_OUTPUT, so a notebook must still run and still say the same thing.
# The browser tests open the smoke study's report.html and index.html in headless Chromium
# (skipped without it unless QMLR_REQUIRE_BROWSER=1, as in CI). Last, each source notebook as
# JupyterLab's Run All runs it (from notebooks/, no papermill), reusing the smoke study's
# units; it leaves the executed copies alone.
test: $(INSTALLED)
	$(PYTHON) -m pytest -q -m "not browser" tests
	$(MAKE) --no-print-directory all CONFIG=configs/smoke.yaml
	$(PYTHON) -m pytest -q -p no:cacheprovider -m browser tests
	$(PYTHON) -m pytest -q -p no:cacheprovider --nbval-lax --nbval-kernel-name $(KERNEL) \
		--nbval-sanitize-with tests/nbval_sanitize.cfg $(STAGE_NOTEBOOKS:%=results/smoke/%.ipynb)
	$(PYTHON) -m pytest -q -p no:cacheprovider tests/notebooks_in_lab.py

# Every shipped study and the calibration of the paired tests, then the generated parts of the
# README and docs/ from their results.
shipped: $(INSTALLED)
	for name in $(SHIPPED); do $(MAKE) --no-print-directory all CONFIG=configs/$$name.yaml || exit 1; done
	$(MAKE) --no-print-directory calibration docs

# The paired tests of two models on simulated studies drawn from a population: their level,
# power and coverage beside the corrected resampled t-test's (docs/statistics.md; ~10 minutes).
calibration: $(INSTALLED)
	$(PYTHON) -m helpers.analysis.calibration results/calibration/inference.csv

# The generated parts of README.md and docs/ (configs reference from the registries, tables
# and findings copied from the shipped studies' results): no number in them is typed by hand.
docs: $(INSTALLED)
	$(PYTHON) -m helpers.docs

# A sweep (docs/sweeps.md): every point of SWEEP=sweeps/<name>.yaml (each a full experiment under
# results/<name>/<point>/) through its stages, points at once (PARALLEL, default 2) inside one
# cluster (SCHEDULER=tcp://host:8786: a running Dask scheduler; WORKERS: the local one's size);
# then the sweep's tables, and its notebook (figure, summary.md) run like the stages'.
SWEEP ?= sweeps/qubits.yaml
sweep: $(INSTALLED)
	$(PYTHON) -m helpers.sweeps run $(SWEEP) $(if $(SCHEDULER),--scheduler $(SCHEDULER)) \
		$(if $(WORKERS),--workers $(WORKERS)) $(if $(PARALLEL),--parallel $(PARALLEL))
	$(PYTHON) -m helpers.sweeps report $(SWEEP)

# Speed of the quantum simulation paths against PennyLane, and the wall time of every
# executed stage under results/: results/bench/*.csv and bench.md (about 15 minutes).
bench: $(INSTALLED)
	$(PYTHON) benchmarks/run.py --out results/bench

# A reduced default study, stage by stage, under the working tree and under BASE (a revision,
# default HEAD) in the same run: wall and CPU ratios, and which tables the change moved
# (benchmarks/stages.py; docs/performance.md). BENCH_CONFIG picks another study to reduce.
bench-stages: $(INSTALLED)
	$(PYTHON) benchmarks/stages.py --base $(or $(BASE),HEAD) $(if $(BENCH_CONFIG),--config $(BENCH_CONFIG)) --out results/bench

# The complete verifier under the working tree and under BASE on the default study's trained
# models and verified points, in the same run: verdicts, seconds and their ratio, contradictions
# (benchmarks/verifier.py; docs/verification.md).
bench-verifier: $(INSTALLED)
	$(PYTHON) benchmarks/verifier.py --base $(or $(BASE),HEAD) --out results/bench

# JupyterLab on notebooks/: open a stage and Run All (its default config, or set config_path).
# Kernels talk to the server over IPC, not TCP; as root (most containers) Jupyter asks for
# --allow-root. LAB_ARGS passes more options (e.g. LAB_ARGS="--no-browser --port 8899").
lab: $(INSTALLED)
	$(VENV)/bin/jupyter lab notebooks/ --KernelManager.transport=ipc $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

clean:
	rm -rf $(OUT)
