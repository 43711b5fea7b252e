# recursa: `make demo` and `make test` are the two commands the README promises.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
EXTRAS ?= llamacpp,server,dev

.PHONY: demo test install lint typecheck pytest clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

install: $(PY)
	$(PIP) install -q -e '.[$(EXTRAS)]'

demo: $(PY)
	$(PIP) install -q -e '.[llamacpp]'
	$(VENV)/bin/recursa solve "Natalia sold clips to 48 of her friends in April, and then she \
	sold half as many clips in May. How many clips did Natalia sell altogether in April and May?" \
	--task math -n 4 -k 2 -t 3 --max-tokens 160 --n-ctx 4096 --seed 0

lint: install
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

typecheck: install
	$(VENV)/bin/mypy

pytest: install
	$(PY) -m pytest -q -ra

test: install
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/mypy
	$(PY) -m pytest -q -ra

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache
