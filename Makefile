# Rhizome: the two commands of the README, and the ones behind them.
#   make demo   - virtualenv, install, Kafka jars, then a local Kafka broker, SQLite, ingest, worker, console, simulator
#   make test   - virtualenv, system packages (PostgreSQL, Chromium), Kafka jars, lint, types, the whole suite
#   make bench  - throughput and latency, each beside a baseline measured in the same run

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# The broker's jars are not in git: Maven fetches them (from infra/kafka/pom.xml) into this untracked
# folder, the way `rhizome broker fetch` does, and leaves this marker once they are all there.
JARS   := infra/kafka/target/dependency/.complete
#: The browser tests' tools from npm (axe-core), installed from package-lock.json.
NODE_TOOLS := node_modules/.package-lock.json

.PHONY: demo test bench lint install system-deps kafka-jars gbstats-fixtures catalogs clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $@

install: $(STAMP)

# A changed pom asks for a fresh fetch: the marker goes first, or `broker fetch` would keep the old jars.
$(JARS): $(STAMP) infra/kafka/pom.xml
	rm -f $@
	$(BIN)/rhizome broker fetch

kafka-jars: $(JARS)

$(NODE_TOOLS): package.json package-lock.json
	npm ci --no-audit --no-fund

system-deps:
	scripts/system-deps.sh

demo: $(STAMP) $(JARS)
	$(BIN)/rhizome demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: system-deps $(STAMP) $(JARS) $(NODE_TOOLS) lint
	$(BIN)/pytest

bench: $(STAMP) $(JARS)
	$(BIN)/python -m benchmarks.run

# Adds the sources' new messages to the French and English catalogs (experiments/locale/), translations kept.
catalogs: $(STAMP)
	$(BIN)/python tools/catalogs.py update

gbstats-fixtures:
	test -x .venv-gbstats/bin/python || ($(PYTHON) -m venv .venv-gbstats && .venv-gbstats/bin/pip install -q -r tools/gbstats/requirements.txt)
	.venv-gbstats/bin/python tools/gbstats/generate_fixtures.py

# Build outputs only, all untracked (tests/unit/test_build.py checks it): never the state of `rhizome up`
# or `rhizome demo` (.rhizome/, its database and broker data).
CLEANED := $(VENV) .venv-gbstats infra/kafka/target test-output bench-output build dist node_modules

clean:
	rm -rf $(CLEANED)
