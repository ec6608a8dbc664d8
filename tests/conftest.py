"""Shared test set-up: ``tests/`` on the import path (for ``helpers``); tests marked
``kafka`` skipped unless ``$CEP_KAFKA_BOOTSTRAP`` names a real broker (the test command,
``scripts/test.sh``, starts one with ``runtime/kafka/up.sh`` and sets it), and tests marked
``shared`` skipped unless ``../shared`` (public datasets, the peers) is beside the project;
the ``private_cache`` fixture."""

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


SHARED = Path(__file__).resolve().parents[2] / "shared"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not SHARED.is_dir():
        no_shared = pytest.mark.skip(reason=f"{SHARED} is not there (public datasets, peers)")
        for item in items:
            if item.get_closest_marker("shared"):
                item.add_marker(no_shared)
    if os.environ.get("CEP_KAFKA_BOOTSTRAP"):
        return
    skip = pytest.mark.skip(
        reason="CEP_KAFKA_BOOTSTRAP is not set: start a broker with runtime/kafka/up.sh and "
               "export its address (scripts/test.sh does both)")
    for item in items:
        if item.get_closest_marker("kafka"):
            item.add_marker(skip)


@pytest.fixture
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The engine's caches (parsed rule files, compiled Sigma files) turned on, in a
    directory of this test only: ``$XDG_CACHE_HOME/cep``."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("CEP_NO_GRAMMAR_CACHE", raising=False)
    return tmp_path / "cache" / "cep"
