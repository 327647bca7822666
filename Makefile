# Rhizome: the two commands of the README, and the ones behind them.
#   make demo   - virtualenv, install, local Kafka broker, SQLite, ingest, worker, console, simulator
#   make test   - virtualenv, system packages (PostgreSQL, Chromium), Kafka jars, lint, types, the whole suite
#   make bench  - throughput and latency, each beside a baseline measured in the same run

PYTHON ?= python3
# cargo (the native core) as rustup installs it, when it is not on the PATH already.
export PATH := $(PATH):$(HOME)/.cargo/bin
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
JARS   := infra/kafka/target/dependency/.complete
#: The browser tests' tools from npm (axe-core), installed from package-lock.json.
NODE_TOOLS := node_modules/.package-lock.json
# The processor's hot path compiled with mypyc, and its native core with cargo (experiments/native.py),
# rebuilt when a source changes.
NATIVE := build/native/manifest.json
NATIVE_SOURCES := $(shell find experiments streams -name '*.py' -o -name '*.rs' -o -name Cargo.toml -o -name Cargo.lock)

.PHONY: demo test bench lint install native system-deps kafka-jars gbstats-fixtures catalogs clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $@

install: $(STAMP)

$(NATIVE): $(STAMP) $(NATIVE_SOURCES) tools/build_native.py
	$(BIN)/python tools/build_native.py

native: $(NATIVE)

$(JARS): infra/kafka/pom.xml
	mvn -q -B -f infra/kafka/pom.xml dependency:copy-dependencies -DincludeScope=runtime
	date -u +%FT%TZ > $@

kafka-jars: $(JARS)

$(NODE_TOOLS): package.json package-lock.json
	npm ci --no-audit --no-fund

system-deps:
	scripts/system-deps.sh

demo: $(STAMP) $(NATIVE) $(JARS)
	$(BIN)/rhizome demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/mypy tools/build_native.py
	cd streams/core && cargo fmt --check
	cd streams/core && PYO3_PYTHON=$(CURDIR)/$(BIN)/python CARGO_TARGET_DIR=$(CURDIR)/build/cargo cargo clippy --release --quiet -- -D warnings

test: system-deps $(STAMP) $(NATIVE) $(JARS) $(NODE_TOOLS) lint
	$(BIN)/pytest

bench: $(STAMP) $(NATIVE) $(JARS)
	$(BIN)/python -m benchmarks.run

# Adds the sources' new messages to the French and English catalogs (experiments/locale/), translations kept.
catalogs: $(STAMP)
	$(BIN)/python tools/catalogs.py update

gbstats-fixtures:
	test -x .venv-gbstats/bin/python || ($(PYTHON) -m venv .venv-gbstats && .venv-gbstats/bin/pip install -q -r tools/gbstats/requirements.txt)
	.venv-gbstats/bin/python tools/gbstats/generate_fixtures.py

clean:
	rm -rf $(VENV) .venv-gbstats infra/kafka/target .rhizome test-output bench-output build node_modules
