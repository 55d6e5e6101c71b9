# The two set-up commands of the README: `make matrix` (the main job) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: venv test matrix lint typecheck bench clean

venv:
	@bash scripts/bootstrap.sh

test:
	@bash scripts/run-tests.sh

matrix:
	@bash scripts/main-job.sh

lint: venv
	$(VENV)/bin/ruff check pytest_mlxstack tests benchmarks
	$(VENV)/bin/ruff format --check pytest_mlxstack tests benchmarks

typecheck: venv
	$(VENV)/bin/mypy --strict pytest_mlxstack

bench: venv
	$(PY) benchmarks/lifecycle.py
	$(PY) benchmarks/catalog.py
	$(PY) benchmarks/matrix.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
