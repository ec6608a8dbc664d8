"""Run library rules over a mapped dataset the way ``cep run`` does.

The mapped events are written as JSON lines in arrival order and read back by
:func:`cep.app.pipeline.run_file`, the function behind ``cep run --input FILE``: same decoder,
same watermark, same operator, same sinks.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from cep.app.pipeline import FileRunOptions, RunSummary, run_file
from cep.app.rules import load_rule_set
from cep.io.sinks import MemorySink, SinkSet
from cep.mapping.datasets import write_jsonl

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "rules"
DATA = ROOT.parent / "shared" / "data"


def dataset(relative: str) -> Path:
    """A file under shared/data, or skip the test when the dataset is not present."""
    path = DATA / relative
    if not path.exists():
        pytest.skip(f"dataset not present: {path}")
    return path


def run_mapped(
    rule_files: list[str],
    events: Iterable[dict[str, Any]],
    workdir: Path,
    max_out_of_orderness_ms: int = 0,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], RunSummary]:
    """Run ``rule_files`` (paths under rules/) over ``events``; returns (alerts, late, summary)."""
    rs = load_rule_set([str(RULES / f) for f in rule_files])
    assert rs.ok, rs.diagnostics
    jsonl = workdir / "events.jsonl"
    with jsonl.open("w", encoding="utf-8") as out:
        write_jsonl(iter(events), out)
    alerts, late = MemorySink(), MemorySink()
    sinks = SinkSet({"alerts": alerts, "late": late})
    opts = FileRunOptions(path=str(jsonl), fmt="json",
                          max_out_of_orderness_ms=max_out_of_orderness_ms)
    summary = run_file(rs.rules, opts, sinks)
    return alerts.records, late.records, summary
