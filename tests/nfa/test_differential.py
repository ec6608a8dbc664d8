"""Differential test: the engine against an independent brute-force reference matcher.

Random patterns drawn from every operator the reference supports (tests/reference/strategies.py)
and random short event sequences, some out of order; the engine runs them end to end (rule text →
parser → checker → NFA → operator in file mode) and must produce the same multiset of matches and
the same late events as the reference, which is written from the semantics alone.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from reference.reference import reference_run
from reference.strategies import cases

from cep.testing.flinkcase import run_case


def _multiset(matches: list[list[Any]]) -> Counter[tuple[Any, ...]]:
    return Counter(tuple(sorted(m)) for m in matches)


@settings(max_examples=2000, deadline=None, suppress_health_check=list(HealthCheck))
@given(cases(if_function=False, throw_on_miss=False))
def test_engine_agrees_with_reference(case: dict[str, Any]) -> None:
    # `if(c, a, b)` of the oracle's condition language has no rule-language form
    assume("if(" not in json.dumps(case["stages"]))
    # Skip strategies release tied matches in Java heap order; those cases are checked against
    # recorded Flink runs instead of the reference, which does not model the tie order.
    assume(case["skip"] == "noSkip")
    expected = reference_run(case)
    got = run_case(case)
    assert got["error"] is None, got["error"]
    assert _multiset(got["matches"]) == _multiset(expected["matches"])
    assert sorted(got["late"]) == sorted(expected["late"])
