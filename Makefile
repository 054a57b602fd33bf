# Safe Code Executor: `make run` serves on 127.0.0.1:5000, `make test` runs every check.
# Both set everything up first (venv, front-end bundle, sandbox image) when it is missing.

PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
UI_OUT  := static/dist/app.js
PYTEST_ARGS ?=

.PHONY: install run image test test-runsc lint typecheck unit bench bench-sessions security-report clean engine wheel server-image

install: $(STAMP) $(UI_OUT)

# development: the server's dependencies ([server]) and the tools ([dev]), the project editable
$(STAMP): pyproject.toml setup.py
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[server,dev]'
	touch $(STAMP)

$(UI_OUT): static/package.json static/package-lock.json $(wildcard static/src/*)
	npm --prefix static ci --no-audit --no-fund
	npm --prefix static run build

engine:
	@scripts/engine-up

# dist/safe_code_executor-*.whl: the client, the server (its [server] extra) and the UI bundle
wheel: install
	rm -rf build/lib *.egg-info  # else setuptools packs modules removed since the last build
	$(BIN)/pip wheel --no-deps --no-build-isolation -w dist .
	rm -rf build/lib *.egg-info

# sce-server:latest, the server as an image (deploy/server-image; docs/DEPLOY.md), offline
server-image: install image
	$(BIN)/python scripts/server-image

image: install
	$(BIN)/python -m app image ensure

run: install engine image
	$(BIN)/python -m app serve --bind 127.0.0.1:5000

lint: install
	$(BIN)/ruff check app tests
	$(BIN)/ruff format --check app tests

typecheck: install
	$(BIN)/mypy

unit: install
	$(BIN)/pytest -q tests/unit

# the UI's node tests, everything under runc, then the hostile-program corpus again under gVisor (runsc)
test: install lint typecheck image
	npm --prefix static test
	$(BIN)/pytest -q $(PYTEST_ARGS)
	SCE_RUNTIME=runsc $(BIN)/pytest -q tests/security/test_corpus.py $(PYTEST_ARGS)

# every Docker suite with gVisor as the sandbox runtime (CI runs it after `make test`); the cluster
# suite (a second engine, HAProxy) runs once, under runc, and the corpus under runsc already ran,
# both in `make test`
test-runsc: install image
	SCE_RUNTIME=runsc $(BIN)/pytest -q -m "docker and not browser and not engine_restart and not cluster" \
		--ignore=tests/security/test_corpus.py $(PYTEST_ARGS)

bench: install image
	$(BIN)/python -m tests.bench

# the sessions phase alone, added to the last full run's docs/PERFORMANCE.md
bench-sessions: install image
	$(BIN)/python -m tests.bench --phases sessions --merge docs/perf.json

security-report: install image
	$(BIN)/python -m tests.security.report

clean:
	rm -rf $(VENV) static/node_modules static/dist build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache

# A scale-out trial on loopback (docs/DEPLOY.md): a second Docker engine, two servers using both
# engines, HAProxy on 127.0.0.1:5100 in front; `make cluster-stop` stops all of it by pid.
# `make cluster TLS=1`: the servers reach the second engine over tcp://127.0.0.1:2376 with mutual TLS.
.PHONY: cluster cluster-stop
cluster: install engine image
	scripts/cluster up $(if $(TLS),--tls)

cluster-stop:
	scripts/cluster down
