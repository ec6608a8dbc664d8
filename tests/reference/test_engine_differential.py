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

from .fixtures import describe, stored_pairs
from .reference import same_result

flinkcase = pytest.importorskip("cep.testing.flinkcase")

_TAKES_TIMEOUTS = "timeouts" in inspect.signature(flinkcase.run_case).parameters


def run_engine(case: dict[str, Any]) -> dict[str, Any]:
    """The engine's result, with timed-out partial matches whenever the case has a window
    (without one nothing can time out, and the rule language rejects a timeout handler)."""
    if _TAKES_TIMEOUTS:
        return flinkcase.run_case(case, timeouts=case.get("within_ms") is not None)
    return flinkcase.run_case(case)


PAIRS = stored_pairs()


@pytest.mark.parametrize(("case", "flink"), PAIRS, ids=[c["id"] for c, _ in PAIRS])
def test_engine_agrees_with_flink(case: dict[str, Any], flink: dict[str, Any]) -> None:
    if case.get("skip_throw_on_miss") and flink.get("error_phase") == "runtime":
        pytest.skip("throwExceptionOnMiss: Flink fails the job; a rule never stops the engine "
                    "(docs/semantics.md)")
    got = run_engine(case)
    if got.get("error_phase") == "convert":
        pytest.skip(f"not expressible in the rule language: {got.get('error')}")
    assert same_result(flink, got), describe(case, flink, got)
