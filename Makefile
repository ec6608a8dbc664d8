# Two commands do all the set-up:
#   make demo   — install into .venv and run the example rules over the example events (no broker)
#   make test   — install, start a local Kafka broker, run the whole test suite, stop the broker
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-fast lint bench clean

$(STAMP): pyproject.toml setup.py cep/_native/prescan.c
	bash scripts/build-deps.sh $(PYTHON)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip uninstall --quiet --yes cep 2>/dev/null || true  # the old name
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m compileall -q cep >/dev/null
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/cep check examples/rules
	$(BIN)/cep run --rules examples/rules --input examples/logins.jsonl \
	    --dead-letter /dev/null --late /dev/null

test: $(STAMP)
	bash scripts/test.sh

# (with a C compiler the extension must have been built: its test fails if it is missing)
test-fast: $(STAMP)
	CEP_REQUIRE_NATIVE=$$(command -v cc >/dev/null 2>&1 && echo 1) \
	    $(BIN)/python -m pytest -q -m "not kafka and not slow"

lint: $(STAMP)
	$(BIN)/ruff check cep tests benchmarks
	$(BIN)/mypy cep

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
