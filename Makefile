# Developer tasks. Everything runs inside $(VENV); `make test` works from a fresh
# clone with only python3 and make.

PYTHON ?= python3
VENV ?= .venv
PYTEST_ARGS ?=
BENCH_ARGS ?=
SPHINXOPTS ?=

VPY := $(VENV)/bin/python
PIP := $(VPY) -m pip

.PHONY: help venv install test demo bench lint docs clean

help:
	@echo "make venv     create $(VENV) (if absent) and upgrade pip"
	@echo "make install  editable install of the package into $(VENV)"
	@echo "make test     install .[test] and run pytest (PYTEST_ARGS=...)"
	@echo "make demo     run 'python -m sk_softmax demo'"
	@echo "make bench    run 'python -m sk_softmax bench' (BENCH_ARGS=...)"
	@echo "make lint     run ruff"
	@echo "make docs     run the docs' doctests and build the HTML into docs/_build/html"
	@echo "make clean    remove build artefacts and caches (keeps $(VENV))"

# The interpreter is the stamp: the venv is created only when it is missing.
$(VPY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

venv: $(VPY)

# pip on an already-installed editable package is quick, so these simply re-run it.
install: venv
	$(PIP) install -e .

test: venv
	$(PIP) install -e ".[test]"
	$(VPY) -m pytest $(PYTEST_ARGS)

demo: install
	$(VPY) -m sk_softmax demo

bench: install
	$(VPY) -m sk_softmax bench $(BENCH_ARGS)

lint: venv
	$(PIP) install ruff
	$(VPY) -m ruff check .

# Two passes, both with warnings as errors: the doctest builder runs every code
# example of the pages (without executing the gallery; pytest runs those of the
# docstrings), then the HTML builder executes the gallery scripts and renders
# the site.
docs: venv
	$(PIP) install -e ".[docs]"
	$(VENV)/bin/sphinx-build -W --keep-going $(SPHINXOPTS) -b doctest \
		-D plot_gallery=0 -d docs/_build/doctrees-doctest docs docs/_build/doctest
	$(VENV)/bin/sphinx-build -W --keep-going $(SPHINXOPTS) -b html \
		-d docs/_build/doctrees docs docs/_build/html
	@echo "HTML pages in docs/_build/html/index.html"

clean:
	rm -rf build dist *.egg-info docs/_build docs/auto_examples docs/generated \
		.pytest_cache .hypothesis .ruff_cache bench-results*.json
	find . -path ./$(VENV) -prune -o -path './.venv*' -prune -o \
		-name __pycache__ -type d -exec rm -rf {} +
