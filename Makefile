# The two commands of the README. Each bootstraps .venv on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PROFILE ?= quick
DEVICE ?= cpu
# one stamp per device, so that DEVICE=gpu adds the cuda extra to an existing venv (defined after
# DEVICE: with := it is expanded here, and used to read .installed- with an empty DEVICE)
STAMP := $(VENV)/.installed-$(DEVICE)
EXTRAS := test,docs,flax,equinox
ifeq ($(DEVICE),gpu)
EXTRAS := test,docs,flax,equinox,cuda
endif

.PHONY: run test venv clean bench

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(PY) -m figures run --profile $(PROFILE)

test: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadfile --durations=15

bench: $(STAMP)
	$(PY) benchmarks/bench_jacobian.py

clean:
	rm -rf $(VENV) figures/out .pytest_cache
