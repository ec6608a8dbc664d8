"""Kafka integration tests run against the real broker at ``$CEP_KAFKA_BOOTSTRAP`` (the test
command, ``scripts/test.sh``, starts one and sets it).  Without it they are skipped."""

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
        if str(item.fspath).startswith(here):
            item.add_marker(skip)
