# TaskPilot. The two commands: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test test-fast lint format openapi openapi-check docs docs-reference db-upgrade db-check migration bench bench-quick bench-store clean install lock

$(STAMP): pyproject.toml requirements/dev.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements/dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/taskpilot db upgrade
	$(BIN)/taskpilot serve

# Two phases: every layer but `load` on every core (xdist, a whole file per worker), then the load
# layer alone, one test at a time (load, faults, the balancer: they measure the machine, so nothing
# else runs beside them), with the few timing-sensitive tests of other layers marked `alone`. Line and branch coverage of src/app (the live servers included) over both
# is printed, written to coverage.xml, and the run fails below COVERAGE_FLOOR (docs/development.md).
# `make test-fast`: unit + integration only.
COVERAGE_FLOOR ?= 93
PYTEST_PARALLEL ?= -n auto
COVERAGE := --cov=app --cov-branch
# The slowest tests of each phase are printed at its end: where the next minute of `make test` is.
DURATIONS ?= --durations=15
# The suite keeps its bytecode even where the environment says not to write any (this machine's does):
# without it every test process, and every CLI or server process a test starts, compiles src/ and
# tests/ again, and pytest rewrites every test module's asserts again (~3 s of CPU per test process here).
test test-fast: export PYTHONDONTWRITEBYTECODE :=
test: $(STAMP)
	@rm -f .coverage .coverage.*
	$(BIN)/python -m pytest $(PYTEST_PARALLEL) -m "not load and not alone" $(COVERAGE) --cov-report= $(DURATIONS) $(PYTEST_ARGS); \
	parallel=$$?; \
	$(BIN)/python -m pytest -m "load or alone" $(COVERAGE) --cov-append --cov-report=term:skip-covered --cov-report=xml \
		--cov-fail-under=$(COVERAGE_FLOOR) $(DURATIONS) $(PYTEST_ARGS); \
	alone=$$?; \
	test $$parallel -eq 0 -a $$alone -eq 0

# The other layers' folders are not collected at all: importing them (schemathesis, hypothesis, the
# browser and load helpers) cost each xdist worker ~9 s of CPU for tests that `-m` then deselected.
test-fast: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_PARALLEL) -m "unit or integration" --ignore=tests/live --ignore=tests/browser --ignore=tests/load $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench testkit
	$(BIN)/ruff format --check src tests bench testkit
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format src tests bench testkit
	$(BIN)/ruff check --fix src tests bench testkit

openapi: $(STAMP)
	$(BIN)/taskpilot openapi --output openapi/openapi.json

openapi-check: $(STAMP)
	$(BIN)/taskpilot openapi --output openapi/openapi.json --check

# The documentation site (docs/, mkdocs.yml) into site/: strict, so a warning, a broken internal link or
# anchor fails it, and only after the generated reference pages are checked against the code.
docs: $(STAMP)
	$(BIN)/python -m testkit.docs_reference --check
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# docs/reference/: the configuration reference from Settings, the CLI's --help, the HTTP reference from
# openapi/openapi.json (run `make openapi` first when the API changed). Commit what it writes.
docs-reference: $(STAMP)
	$(BIN)/python -m testkit.docs_reference

db-upgrade: $(STAMP)
	$(BIN)/taskpilot db upgrade

# Models and migrations agree: upgrade an empty database, then autogenerate must find nothing.
db-check: $(STAMP)
	$(BIN)/taskpilot db upgrade
	$(BIN)/taskpilot db check

migration: $(STAMP)
	$(BIN)/taskpilot db revision -m "$(m)"

# The benchmark suite (bench/__main__.py): turn cost vs floor, 1,000 open streams, session minting.
# Needs PostgreSQL (BENCH_POSTGRES_URL); ~5 minutes on two cores. bench-quick: a ~1 minute smoke run.
bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

bench-quick: $(STAMP)
	$(BIN)/python -m bench --quick

bench-store: $(STAMP)
	$(BIN)/python -m bench --only store

# Regenerate the hash-pinned locks (needs uv: `pip install uv`). They record no download addresses.
# dev.txt: everything `make install` puts in .venv. runtime.txt: only what the wheel needs (the
# container installs it), resolved within dev.txt so every runtime pin is the version CI tests.
lock:
	uv pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 --no-header -o requirements/dev.txt
	uv pip compile pyproject.toml --generate-hashes --python-version 3.11 --no-header -c requirements/dev.txt -o requirements/runtime.txt

clean:
	rm -rf $(VENV) var site .pytest_cache .mypy_cache .ruff_cache
