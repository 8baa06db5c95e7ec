# Two commands on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
VENV  := .venv
PY    ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
            command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && { echo $$p; break; }; \
          done)
STAMP := $(VENV)/.installed-stamp

.PHONY: setup chromium run test test-chaos test-cluster interop lint typecheck bench clean redis-path lock

$(STAMP): pyproject.toml
	@test -n "$(PY)" || { echo "Python 3.11+ is required"; exit 1; }
	$(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)
	@mkdir -p var
	@scripts/ensure-redis.sh > var/redis-server.path
	@echo "redis-server: $$(cat var/redis-server.path)"

# The driver-page tests drive Debian's chromium (scripts/ensure-chromium.sh). Without one
# the suite still runs and those tests fail, saying why.
chromium: setup
	@scripts/ensure-chromium.sh > var/chromium.path || : > var/chromium.path
	@echo "chromium: $$(cat var/chromium.path)"

run: setup
	REDIS_SERVER=$$(cat var/redis-server.path) scripts/run.sh

test: setup chromium
	REDIS_SERVER=$$(cat var/redis-server.path) CHROMIUM=$$(cat var/chromium.path) $(VENV)/bin/pytest

# Fault injection with real processes (tests/chaos, docs/operations.md): kill -9 of worker
# and serve at named crash points, Redis SIGKILL/SIGTERM, a BAP down, the CPO slow and
# unreachable. About 5 minutes; prints its figures and writes var/chaos-figures.json.
test-chaos: setup
	REDIS_SERVER=$$(cat var/redis-server.path) $(VENV)/bin/pytest -m chaos tests/chaos

# The scale-out tests (docs/scaling.md): Sentinel sets and Redis Clusters of real
# redis-server processes on loopback, the bridge as 2 serve + 2 workers on them, failovers.
# Not in `make test` (-m cluster); about 2 minutes, each test bounded (a stuck journey
# fails after 300 s).
test-cluster: setup
	REDIS_SERVER=$$(cat var/redis-server.path) $(VENV)/bin/pytest -m cluster tests/scale

# The interoperability suite (interop/): an OCPI library no one here wrote, in its own venv.
INTEROP_VENV  := var/interop-venv
INTEROP_STAMP := $(INTEROP_VENV)/.installed-stamp

$(INTEROP_STAMP): interop/requirements.txt
	@test -n "$(PY)" || { echo "Python 3.11+ is required"; exit 1; }
	@mkdir -p var
	$(PY) -m venv $(INTEROP_VENV)
	$(INTEROP_VENV)/bin/pip install -q --upgrade pip
	$(INTEROP_VENV)/bin/pip install -q -r interop/requirements.txt
	@touch $(INTEROP_STAMP)

interop: setup $(INTEROP_STAMP)
	REDIS_SERVER=$$(cat var/redis-server.path) $(INTEROP_VENV)/bin/python interop/run.py --bridge-venv $(VENV)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy bridge

bench: setup
	REDIS_SERVER=$$(cat var/redis-server.path) $(VENV)/bin/python bench/ocpi_ingest.py

# requirements.lock: every runtime dependency pinned with hashes, for the container image
lock: $(STAMP)
	$(VENV)/bin/uv pip compile pyproject.toml --universal --python-version 3.11 --generate-hashes \
	  -o requirements.lock

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
