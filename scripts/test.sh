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

echo "== kafka broker on 127.0.0.1:$PORT" >&2
BOOTSTRAP="$(bash runtime/kafka/up.sh --port "$PORT" | tail -n 1)"
trap 'bash runtime/kafka/down.sh --port "$PORT" >&2 || true' EXIT
export CEP_KAFKA_BOOTSTRAP="$BOOTSTRAP"

echo "== tests" >&2
$BIN/python -m pytest -q -p no:cacheprovider "$@"
