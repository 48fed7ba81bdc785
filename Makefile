# `make plan` prints the offline plan of the dev stack; `make test` runs the tests.
# Both create ./venv from the pinned requirements on first use.
PY := venv/bin/python

venv/.installed: requirements.txt requirements-dev.txt policies/requirements.txt pyproject.toml
	python3 -m venv venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

.PHONY: plan test lint bench
plan: venv/.installed
	venv/bin/configplane plan --stack dev

test: venv/.installed
	$(PY) -m pytest -q

lint: venv/.installed
	venv/bin/ruff check .

bench: venv/.installed
	$(PY) -m benchmarks
