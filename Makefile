# Two commands for a fresh Linux machine with Python 3.11:
#   make demo   sets up .venv and trains the default preset (digits) on data that ships with scikit-learn
#   make test   sets up .venv and runs the test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
# PyTorch is pinned here (not in pyproject.toml, which keeps ranges) so installs are reproducible.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
PIP     = $(VENV)/bin/python -m pip

.PHONY: setup demo test docs bench clean

setup: $(VENV)/.ganforge-installed

$(VENV)/.ganforge-installed: pyproject.toml Makefile
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet $(TORCH_SPEC)
	$(PIP) install --quiet -e '.[test,docs,vision,tensorboard]'
	touch $@

demo: setup
	$(VENV)/bin/ganforge train digits

test: setup
	$(VENV)/bin/python -m pytest -q

docs: setup
	$(VENV)/bin/mkdocs build --strict

bench: setup
	$(VENV)/bin/python benchmarks/throughput.py

clean:
	rm -rf $(VENV) site build *.egg-info
