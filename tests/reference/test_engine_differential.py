"""The engine against Flink: every recorded oracle case in tests/data/flink.

(The engine against the reference matcher on random cases is tests/nfa/test_differential.py.)

``cep.testing.flinkcase.run_case(case)`` runs an oracle-format case through the engine in file
mode and returns ``{"matches", "timeouts", "late", "error", ...}``.  The test compares matches
and timeouts as multisets of id lists and late ids as lists; where the after-match skip strategy
leaves the emission order free (R7 in reference.py) any outcome the reference allows is
accepted.  Cases the engine cannot express in its rule language (``error_phase == "convert"``)
are left out.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from cep.testing import flinkcase

from .fixtures import describe, stored_pairs
from .reference import same_result

_TAKES_TIMEOUTS = "timeouts" in inspect.signature(flinkcase.run_case).parameters


def run_engine(case: dict[str, Any]) -> dict[str, Any]:
    """The engine's result, with timed-out partial matches whenever the case has a window
    (without one nothing can time out, and the rule language rejects a timeout handler)."""
    if _TAKES_TIMEOUTS:
        return flinkcase.run_case(case, timeouts=case.get("within_ms") is not None)
    return flinkcase.run_case(case)


def _runnable(case: dict[str, Any], flink: dict[str, Any]) -> bool:
    """Whether the pair can be compared: not a case where Flink fails the job on a miss
    (throwExceptionOnMiss; a rule never stops the engine, docs/semantics.md), and one the rule
    language can express (the rest are counted in test_every_left_out_case_is_inexpressible)."""
    if case.get("skip_throw_on_miss") and flink.get("error_phase") == "runtime":
        return False
    try:
        flinkcase.case_to_rule_text(case, case.get("within_ms") is not None)
    except ValueError:
        return False
    return True


ALL_PAIRS = stored_pairs()
PAIRS = [(c, f) for c, f in ALL_PAIRS if _runnable(c, f)]


def test_every_left_out_case_is_inexpressible_or_throws_on_miss() -> None:
    left = [(c, f) for c, f in ALL_PAIRS if not _runnable(c, f)]
    for case, flink in left:
        if case.get("skip_throw_on_miss") and flink.get("error_phase") == "runtime":
            continue
        assert run_engine(case)["error_phase"] == "convert", case["id"]
    assert len(PAIRS) > 10 * len(left)


@pytest.mark.parametrize(("case", "flink"), PAIRS, ids=[c["id"] for c, _ in PAIRS])
def test_engine_agrees_with_flink(case: dict[str, Any], flink: dict[str, Any]) -> None:
    got = run_engine(case)
    assert got.get("error_phase") != "convert", got.get("error")
    assert same_result(flink, got), describe(case, flink, got)
