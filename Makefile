# `make plan` prints the offline plan of the dev stack; `make check` runs what CI runs: lint,
# types and the tests. Each creates ./venv from the pinned requirements on first use.
PY := venv/bin/python

venv/.installed: requirements.txt requirements-dev.txt policies/requirements.txt pyproject.toml
	python3 -m venv venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

.PHONY: plan check lint types test bench
plan: venv/.installed
	venv/bin/configplane plan --stack dev

check: lint types test

# ruff (style, bugs, complexity) and the layer contracts of configplane/ (pyproject.toml)
lint: venv/.installed
	venv/bin/ruff check .
	venv/bin/lint-imports

# Three programs with their own import roots, so three runs: the project (the CLI and the Pulumi
# program), the policy pack (its directory is its root) and the rotation Lambda (likewise).
types: venv/.installed
	venv/bin/mypy configplane components __main__.py
	venv/bin/mypy policies
	venv/bin/mypy lambdas/rotation

test: venv/.installed
	$(PY) -m pytest -q

bench: venv/.installed
	$(PY) -m benchmarks
