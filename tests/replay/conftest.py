"""Replay tests marked ``kafka`` run against the real broker at ``$CEP_KAFKA_BOOTSTRAP`` (as
``tests/kafka`` does); without it they are skipped.  The file-based tests always run."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("CEP_KAFKA_BOOTSTRAP"):
        return
    skip = pytest.mark.skip(
        reason="CEP_KAFKA_BOOTSTRAP is not set: start a broker with runtime/kafka/up.sh and "
               "export its address (scripts/test.sh does both)")
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.fspath).startswith(here) and item.get_closest_marker("kafka"):
            item.add_marker(skip)
