# Everyday targets. The README's two commands are `make run` and `make test`; both set up
# whatever is missing (venv, packages, the embedded model, chromium) and are quick when done.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
RUNTIME := $(VENV)/.stamp-runtime
DEV     := $(VENV)/.stamp-dev
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTEST_ARGS ?=

.PHONY: run test setup model chromium lint format bench zoo clean lorax-venv load

run: model ## set up and start the app on http://127.0.0.1:7860 (embedded default)
	$(BIN)/python app.py

test: $(DEV) model chromium lorax-venv ## set up everything the tests need and run the whole suite
	$(BIN)/ruff check .
	LORA_LAND_REQUIRE_LORAX=1 $(BIN)/python -m pytest $(PYTEST_ARGS)

setup: $(DEV) model chromium

$(RUNTIME): requirements.txt
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $@

$(DEV): requirements-dev.txt $(RUNTIME)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

model: $(RUNTIME) ## prepare the embedded SmolLM2-135M-Instruct once (progress bar)
	$(BIN)/python -m lora_land.engine.prepare

chromium: ## Debian's chromium for the browser tests (Playwright drives it, downloads nothing)
	@test -x /usr/bin/chromium || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium; }

lint: $(DEV)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(DEV)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(DEV) model ## run the benchmarks; results in bench/results/*.json
	$(BIN)/python -m bench.leaderboard
	$(BIN)/python -m bench.engine
	$(BIN)/python -m bench.arena
	$(BIN)/python -m bench.batching

zoo: model ## zoo v2: train on the train split, choose on dev, measure once, ship (resumable; hours)
	$(BIN)/python -m lora_land.cli zoo --resume

# the official lorax-client pins huggingface_hub<1.0: it gets a small virtualenv of its own,
# which tests/server/test_lorax_client.py runs against the live server
LORAX_VENV := .venv-lorax
lorax-venv: $(LORAX_VENV)/.stamp
$(LORAX_VENV)/.stamp:
	@test -x $(LORAX_VENV)/bin/python || $(PY) -m venv $(LORAX_VENV)
	$(LORAX_VENV)/bin/python -m pip install --quiet --disable-pip-version-check lorax-client==0.6.3
	@touch $@

load: $(DEV) model ## the load test (a few minutes of CPU): bench/results/load.json
	$(BIN)/python -m bench.load

clean:
	rm -rf $(VENV) $(LORAX_VENV) .pytest_cache .ruff_cache
