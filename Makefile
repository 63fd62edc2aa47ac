# Two commands a newcomer needs: `make run` and `make test`.
# The virtual environment is rebuilt only when a requirements file changes.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
CORES  ?= all
CONFIG ?= config/config.yaml

.PHONY: run test clean-data lint bench help clean

help:
	@echo "make run     set up .venv and run the whole pipeline on the demo data -> reports/demo/report.html"
	@echo "make test    set up .venv with test tools and run the test suite"
	@echo "make clean-data  run only the intake/cleaning stage (check a new dataset)"
	@echo "make bench   run the benchmarks under bench/ (slow)"

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
	mkdir -p reports
	$(BIN)/snakemake --cores $(CORES) --configfile $(CONFIG)

clean-data: $(BIN)/.run-stamp
	$(BIN)/snakemake --cores $(CORES) --configfile $(CONFIG) clean_all

test: $(BIN)/.test-stamp
	$(BIN)/python -m pytest

bench: $(BIN)/.test-stamp
	$(BIN)/python bench/run_benchmarks.py

lint: $(BIN)/.test-stamp
	$(BIN)/snakemake --lint --configfile $(CONFIG)
	$(BIN)/snakefmt --check Snakefile workflow/rules

clean:
	rm -rf results/* reports/* logs .snakemake
