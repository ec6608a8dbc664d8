"""Shared test set-up: ``tests/`` on the import path (for ``helpers``), and tests marked
``kafka`` skipped unless ``$CEP_KAFKA_BOOTSTRAP`` names a real broker (the test command,
``scripts/test.sh``, starts one with ``runtime/kafka/up.sh`` and sets it)."""

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("CEP_KAFKA_BOOTSTRAP"):
        return
    skip = pytest.mark.skip(
        reason="CEP_KAFKA_BOOTSTRAP is not set: start a broker with runtime/kafka/up.sh and "
               "export its address (scripts/test.sh does both)")
    for item in items:
        if item.get_closest_marker("kafka"):
            item.add_marker(skip)
