# Two commands on a fresh machine: `make run` and `make test`. Both set up .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The tests also need the `embeddings` extra (sentence-transformers and torch, large): make run does not.
TEST_STAMP := $(VENV)/.installed-test
DEMO_N ?= 2000
OUT ?= out/demo

.PHONY: run test bench clean setup

setup: $(STAMP)

# --no-compile: pip would byte-compile every installed module (torch, pyspark, ... about 40 s);
# Python compiles the few hundred a run imports on first use instead.
PIP_INSTALL := $(BIN)/python -m pip install --quiet --no-compile

$(STAMP): setup.py constraints-local.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(PIP_INSTALL) -e ".[local]" -c constraints-local.txt
	touch $(STAMP)

# The report's browser test drives Debian's Chromium through Playwright (no `playwright install`):
# installed here when missing and apt-get is there (CI runs `make test` as root on a clean clone).
CHROMIUM := /usr/bin/chromium

# One pip resolution for everything the tests need (a fresh clone's CI pays for one, not two);
# it also satisfies `make run`'s requirements, so it stamps both.
$(TEST_STAMP): setup.py requirements-test.txt constraints-local.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(PIP_INSTALL) -e ".[local,embeddings]" -r requirements-test.txt -c constraints-local.txt
	if [ ! -x $(CHROMIUM) ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; fi
	touch $(STAMP) $(TEST_STAMP)

run: $(STAMP)
	$(BIN)/wildvalues synth --n $(DEMO_N) --output $(OUT)/demo_conversations.jsonl.gz --seed 7
	$(BIN)/wildvalues run --input $(OUT)/demo_conversations.jsonl.gz --output $(OUT)

# Lint, format and types first (seconds), then the suite (minutes).
test: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -q -n 2 tests --durations=25

# The benchmarks use the test tools too (bench/pii.py's faker, the sentence-transformers models).
bench: $(TEST_STAMP)
	$(BIN)/python bench/pipeline.py --n 10000

clean:
	rm -rf out .pytest_cache
