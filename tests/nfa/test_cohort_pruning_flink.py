"""Cohort pruning against Flink CEP's own NFA (``../shared/peers/flinkoracle``).

Random burst cases under ``skip past last event`` (the strategy of
tests/nfa/test_cohort_pruning.py, drawn by Hypothesis with a fixed derandomized sample) run
once through the oracle in one JVM, then through the engine with cohort pruning (what a rule
runs) and without: the pruned engine must find Flink's matches and exactly the unpruned
engine's.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from reference.bursts import burst_cases
from reference.reference import same_result

from cep.testing.flinkcase import run_case

pytestmark = pytest.mark.shared  # the Flink oracle of ../shared/peers

ORACLE = Path(__file__).resolve().parents[3] / "shared" / "peers" / "flinkoracle" / "run.sh"
CASES = 400
MAX_EVENTS = 16  # (Flink's own NFA grows much faster than cep's on bursts)


def _sample(n: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    @settings(max_examples=n, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(burst_cases(max_events=MAX_EVENTS))
    def draw(case: dict[str, Any]) -> None:
        out.append(case)

    draw()
    for i, case in enumerate(out):
        case["id"] = f"burst-{i}"
    return out


def test_pruned_engine_agrees_with_flink_on_bursts(tmp_path: Path) -> None:
    if not ORACLE.exists():
        pytest.skip(f"Flink oracle not present: {ORACLE}")
    cases = _sample(CASES)
    path = tmp_path / "cases.jsonl"
    path.write_text("".join(json.dumps(c) + "\n" for c in cases), encoding="utf-8")
    run = subprocess.run([str(ORACLE), "--mode", "file", "--timeouts", "never", str(path)],
                         capture_output=True, text=True, timeout=1200, check=True)
    flink = {d["id"]: d for d in map(json.loads, run.stdout.splitlines())}
    assert len(flink) == len(cases)
    compared = pruned_cases = 0
    for case in cases:
        expected = flink[case["id"]]
        if expected["error"] is not None:
            continue
        got = run_case(case, timeouts=False)
        plain = run_case(case, timeouts=False, prune_cohorts=False)
        assert same_result(expected, got, timeouts=False), (case, expected, got)
        assert got["matches"] == plain["matches"], case
        compared += 1
        pruned_cases += got["peak_partial_matches"] < plain["peak_partial_matches"]
    assert compared >= CASES * 9 // 10
    assert pruned_cases >= CASES // 5  # (the sample exercises the pruning)
