# The two set-up commands of the README: `make demo` and `make test`.
# `make test` installs the dev extra and the Debian packages the tests need (tests/setup/system_packages.sh).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: demo test install install-dev clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

install: $(VENV)/bin/python
	$(PIP) install -q -e .

install-dev: $(VENV)/bin/python
	$(PIP) install -q -e ".[dev]"

demo: install
	$(VENV)/bin/tfft train configs/quickstart.yaml

test: install-dev
	sh tests/setup/system_packages.sh
	$(PY) -m pytest -q -ra --durations=15 -n 2 --dist loadfile --no-loadscope-reorder

clean:
	rm -rf $(VENV) runs build *.egg-info
