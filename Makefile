# Two commands matter on a fresh machine: `make run` and `make test`. Both bootstrap `.venv` first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# Four pytest workers on two cores: most tests wait on Kafka, MongoDB or Ray rather than compute. A file stays
# on one worker, and so do the tests sharing a session Ray cluster (`--dist loadgroup`, groups set in
# tests/conftest.py), so each cluster starts once. `make test PYTEST_WORKERS=0` runs them in one process.
PYTEST_WORKERS ?= 4
PYTEST := $(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadgroup

.PHONY: install run test test-fast check types bench lock lint clean browser bytecode

install: $(STAMP)

# uv itself comes from a hash-pinned lock; everything else is synced from requirements-dev.lock, compiled to
# bytecode once here: every process of a run (xdist workers, CLI and service subprocesses, Ray's workers)
# would otherwise compile what it imports again where PYTHONDONTWRITEBYTECODE is set.
$(STAMP): requirements-bootstrap.lock requirements.lock requirements-dev.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	test -x $(BIN)/uv || $(BIN)/python -m pip install -q --require-hashes --no-deps -r requirements-bootstrap.lock
	$(BIN)/uv pip sync -q --compile-bytecode --python $(BIN)/python requirements-dev.lock
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .
	touch $(STAMP)

run: install
	$(BIN)/modelreg dev

# Debian's chromium for the console's browser tests; without it (no apt, not root) they skip, loudly.
browser:
	./.ci/install-chromium

test: install browser bytecode
	$(TEST_ENV) $(PYTEST) $(PYTEST_ARGS)

test-fast: install browser bytecode
	$(TEST_ENV) $(PYTEST) -m "not e2e and not faults" $(PYTEST_ARGS)

# The project's own bytecode, before the test processes start (they would each compile it), and pytest's
# assertion-rewritten modules cached for the processes after the first: PYTHONDONTWRITEBYTECODE forbids both.
TEST_ENV := env -u PYTHONDONTWRITEBYTECODE
bytecode: install
	$(BIN)/python -m compileall -q -j 0 shared services tests

bench: install
	$(BIN)/uv pip install -q --python $(BIN)/python -r requirements-bench.lock
	$(BIN)/python -m bench

LINTED := shared services tests bench

lint: install
	$(BIN)/ruff check $(LINTED)

# What CI checks before the tests: lint, formatting (`ruff format $(LINTED)` fixes the latter) and types
# (mypy; configuration in pyproject.toml, strict on shared/ and services/).
check: install
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/mypy

# The type check alone.
types: install
	$(BIN)/mypy

# Regenerate the hash-pinned locks (needs the package index).
lock:
	uv pip compile -q --generate-hashes -p 3.11 requirements.in -o requirements.lock
	uv pip compile -q --generate-hashes -p 3.11 requirements-dev.in -o requirements-dev.lock
	uv pip compile -q --generate-hashes -p 3.11 requirements-bootstrap.in -o requirements-bootstrap.lock
	uv pip compile -q --generate-hashes -p 3.11 requirements-bench.in -o requirements-bench.lock

clean:
	rm -rf $(VENV) .modelreg .pytest_cache
