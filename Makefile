# Two commands a newcomer needs: `make run` and `make test`.
# The virtual environment is rebuilt only when a requirements file changes.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
CORES  ?= all
CONFIG ?= config/config.yaml
# workflow/scripts on the Python path: the package `alliance` and the logger plugin `alliance`
# (workflow/scripts/snakemake_logger_plugin_alliance), the console of make run: one line per step
SCRIPTS   := PYTHONPATH=$(CURDIR)/workflow/scripts
SNAKEMAKE := $(SCRIPTS) $(BIN)/snakemake --workflow-profile profiles/default --logger alliance --cores $(CORES)
# after an interrupted run: the stale lock removed (when no Snakemake runs here), said what is redone
RECOVER   := $(SCRIPTS) $(BIN)/python -m alliance.console recover
# a config with keys left null (a `make init` draft's TODO(init) keys) stops here, naming every one
UNFILLED  := $(SCRIPTS) $(BIN)/python -m alliance.intake.unfilled
# a config that would be evaluated as code (YTE's __use_yte__) is refused before Snakemake reads it
NO_CODE   := $(SCRIPTS) $(BIN)/python -m alliance.config_text

.PHONY: run test test-slow clean-data init lint bench help clean

help:
	@echo "make run         set up .venv and run the whole pipeline on the demo data -> reports/demo/report.html"
	@echo "make test        set up .venv with test tools and run the test suite (without the slow tests)"
	@echo "make test-slow   the slow tests: many-replication recovery studies, live R references"
	@echo "make clean-data  run only the intake/cleaning stage (check a new dataset)"
	@echo "make init DATA=<file> [PATIENTS=<file>] [OUT=<file>]  draft a config from a lab's export -> config/draft_<name>.yaml"
	@echo "make lint        snakemake --lint, snakefmt --check, ruff check and ruff format --check"
	@echo "make bench       run the benchmarks under bench/ (slow)"

$(BIN)/.run-stamp: requirements/run.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found; install Python 3.11 or call make PYTHON=/path/to/python3.11"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements/run.txt
	touch $@

$(BIN)/.test-stamp: $(BIN)/.run-stamp requirements/test.txt
	$(BIN)/python -m pip install --quiet -r requirements/test.txt
	touch $@

run: $(BIN)/.run-stamp
	@mkdir -p reports
	@$(NO_CODE) $(CONFIG)
	@$(UNFILLED) $(CONFIG)
	@$(RECOVER)
	$(SNAKEMAKE) --configfile $(CONFIG)

# the target comes before --configfile, which takes several values (a target after it is read as a config file)
clean-data: $(BIN)/.run-stamp
	@$(NO_CODE) $(CONFIG)
	@$(UNFILLED) $(CONFIG)
	@$(RECOVER)
	$(SNAKEMAKE) clean_all --configfile $(CONFIG)

# a commented draft config from a lab's export (never over an existing file unless OUT= names it)
init: $(BIN)/.run-stamp
	@test -n "$(DATA)" || { echo "usage: make init DATA=<sessions file> [PATIENTS=<patients file>] [OUT=<config file>]"; exit 2; }
	@$(SCRIPTS) $(BIN)/python -m alliance.intake.draft_config "$(DATA)" $(if $(PATIENTS),--patients "$(PATIENTS)") $(if $(OUT),--out "$(OUT)")

# the markers are pyproject.toml's (-m 'not slow'); test-slow runs the rest. Two pytest-xdist
# workers, one per core, each test module on one worker, the modules of the shared `make run`
# together (tests/conftest.py); WORKERS=0 runs in one process
WORKERS ?= 2
PYTEST_WORKERS := $(if $(filter 0,$(WORKERS)),,-n $(WORKERS))
test: $(BIN)/.test-stamp
	$(BIN)/python -m pytest $(PYTEST_WORKERS)

test-slow: $(BIN)/.test-stamp
	$(BIN)/python -m pytest -m slow $(PYTEST_WORKERS)

bench: $(BIN)/.test-stamp
	$(BIN)/python bench/run_benchmarks.py

lint: $(BIN)/.test-stamp
	@$(NO_CODE) $(CONFIG)
	$(BIN)/snakemake --lint --configfile $(CONFIG)
	$(BIN)/snakefmt --check Snakefile workflow/Snakefile workflow/rules
	$(BIN)/ruff check
	$(BIN)/ruff format --check

clean:
	rm -rf results/* reports/* logs benchmarks .snakemake
