#!/usr/bin/env bash
# The whole test suite: lint, a local Kafka broker (fetched from Maven Central on first use),
# every test, then the broker is stopped again.  Run through `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
PORT="${CEP_KAFKA_PORT:-19092}"

echo "== lint" >&2
$BIN/ruff check cep tests benchmarks
$BIN/mypy cep

# Graphviz renders `cep explain --format png`; its test is skipped without it.  Installed
# when this is a Debian machine we may administer; otherwise left to the user.
if ! command -v dot >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "== installing graphviz (apt-get)" >&2
    { apt-get install -y -q graphviz >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q graphviz >/dev/null 2>&1; }; } \
        || echo "   graphviz not installed; the PNG test will be skipped" >&2
fi

echo "== kafka broker on 127.0.0.1:$PORT" >&2
BOOTSTRAP="$(bash runtime/kafka/up.sh --port "$PORT" | tail -n 1)"
trap 'bash runtime/kafka/down.sh --port "$PORT" >&2 || true' EXIT
export CEP_KAFKA_BOOTSTRAP="$BOOTSTRAP"

echo "== tests" >&2
# the C line scanner must have been built by `make install` (scripts/build-deps.sh)
export CEP_REQUIRE_NATIVE="${CEP_REQUIRE_NATIVE:-1}"
# the long tests (marked slow: 20-kill runs with a broker restart, building the wheel) run
# with CEP_SLOW=1
if [ "${CEP_SLOW:-0}" = 1 ] || [ $# -gt 0 ]; then
    $BIN/python -m pytest -q -p no:cacheprovider "$@"
else
    $BIN/python -m pytest -q -p no:cacheprovider -m "not slow"
fi

if [ $# -eq 0 ]; then
    # the engine once more on its pure Python path (CEP_PUREPYTHON=1: no C line scanner), so
    # both twins stay exact
    echo "== engine tests on the pure Python path" >&2
    CEP_PUREPYTHON=1 CEP_REQUIRE_NATIVE=0 $BIN/python -m pytest -q -p no:cacheprovider \
        -m "not kafka and not slow" \
        tests/operator tests/nfa tests/io tests/reference
fi
