# qml-robustness: `make all` regenerates every result, `make test` proves it still works.
# CONFIG=configs/<experiment>.yaml selects an experiment; results go to results/<experiment>/.
# Each stage is an executed notebook; make reruns a stage only when its notebook, the config,
# helpers/ or the stage before it changed.

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
HELPERS := $(wildcard helpers/*.py) pyproject.toml

# papermill saves its output after every cell, so a failed run would leave a fresh-looking
# target: write to a temporary name, rename on success, keep a failure as <stage>.failed.ipynb
# (the previous good result stays in place).
define papermill
$(PYTHON) -m papermill --kernel $(KERNEL) --cwd notebooks --no-progress-bar \
	-p config_path $(CONFIG) $< $(@:.ipynb=.running.ipynb) \
	&& mv $(@:.ipynb=.running.ipynb) $@ && rm -f $(@:.ipynb=.failed.ipynb) \
	|| { mv $(@:.ipynb=.running.ipynb) $(@:.ipynb=.failed.ipynb) 2>/dev/null; exit 1; }
endef

.PHONY: all train attack interpret report test bench lab clean env

all: report

env: $(INSTALLED)

$(INSTALLED): requirements.txt pyproject.toml
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -r requirements.txt
	$(PYTHON) -m pip install --quiet --no-deps -e .
	$(PYTHON) -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (qml-robustness)"
	touch $@

train: $(OUT)/01_train.ipynb
attack: $(OUT)/02_attack.ipynb
interpret: $(OUT)/03_interpret.ipynb
report: $(OUT)/04_report.ipynb

# The config is validated before anything is written: a bad value stops make with one message.
$(OUT)/01_train.ipynb: notebooks/01_train.ipynb $(CONFIG) $(HELPERS) $(INSTALLED)
	@$(PYTHON) -m helpers.config $(CONFIG)
	@mkdir -p $(OUT)
	$(papermill)

$(OUT)/02_attack.ipynb: notebooks/02_attack.ipynb $(OUT)/01_train.ipynb
	$(papermill)

$(OUT)/03_interpret.ipynb: notebooks/03_interpret.ipynb $(OUT)/01_train.ipynb
	$(papermill)

$(OUT)/04_report.ipynb: notebooks/04_report.ipynb $(OUT)/02_attack.ipynb $(OUT)/03_interpret.ipynb
	$(papermill)

# Unit tests, then the four notebooks on the smoke config: papermill runs them once
# (each asserts what matters), nbval runs the executed copies again and compares the
# cells marked NBVAL_CHECK_OUTPUT, so a notebook must still run and still say the same thing.
test: $(INSTALLED)
	$(PYTHON) -m pytest -q tests
	$(MAKE) --no-print-directory all CONFIG=configs/smoke.yaml
	$(PYTHON) -m pytest -q -p no:cacheprovider --nbval-lax --nbval-kernel-name $(KERNEL) \
		--nbval-sanitize-with tests/nbval_sanitize.cfg \
		results/smoke/01_train.ipynb results/smoke/02_attack.ipynb \
		results/smoke/03_interpret.ipynb results/smoke/04_report.ipynb

# Speed of the quantum simulation paths against PennyLane, and the wall time of every
# executed stage under results/: results/bench/*.csv and bench.md (about 10 minutes).
bench: $(INSTALLED)
	$(PYTHON) benchmarks/run.py --out results/bench

lab: $(INSTALLED)
	$(VENV)/bin/jupyter lab notebooks/

clean:
	rm -rf $(OUT)
