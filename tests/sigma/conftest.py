"""Shared pieces of the Sigma tests: the mordor capture as events in event-time order, a
private compiled-file cache, and a count of the Sigma files parsed."""

from __future__ import annotations

import gzip
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

MORDOR = (Path(__file__).resolve().parents[3] / "shared" / "data" / "windows-security-mordor"
          / "purplesharp_ad_playbook_I_2020-10-22042947.json.gz")
"""25,993 flat NXLog events (tests that read it are marked ``shared``)."""


def mordor_ts(d: dict[str, Any]) -> int:
    """An event's ``@timestamp`` (ISO 8601) in epoch milliseconds."""
    return int(datetime.fromisoformat(d["@timestamp"].replace("Z", "+00:00")).timestamp() * 1000)


@pytest.fixture(scope="module")
def mordor() -> list[tuple[int, dict[str, Any]]]:
    """The capture's events as ``(event time in ms, data)`` sorted by time; the event time is
    also put in the data as ``ts``, where alerts show it with the events."""
    with gzip.open(MORDOR) as fh:
        datas = [orjson.loads(line) for line in fh]
    return sorted(((mordor_ts(d), {**d, "ts": mordor_ts(d)}) for d in datas),
                  key=lambda e: e[0])


@pytest.fixture
def cache_home(private_cache: Path) -> Path:
    """A compiled-file cache of this test only (turned on); its bundles' directory."""
    return private_cache / "sigma"


def count_parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the Sigma files parsed (YAML and pySigma) from now on in this test."""
    from helpers import record_calls

    from cep.sigma import load as load_module

    return record_calls(monkeypatch, load_module, "_parse", lambda path, text: path.name)
