"""Cohort pruning under ``skip past last event`` (docs/semantics.md, *Cohorts under skip past
last event*): the pruned engine emits exactly what the unpruned one (Flink's algorithm) emits,
in the same order, and holds linearly many partial matches in a burst.

The differential tests run random cases end to end (rule text → NFA → operator in file mode)
twice, once with ``prune_cohorts=False``; the comparison against Flink's own NFA is
tests/nfa/test_cohort_pruning_flink.py.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from reference.bursts import burst_cases, stage
from reference.strategies import cases

from cep.compiler.build import build_rule
from cep.lang.parse import parse_text
from cep.nfa.model import absorbing
from cep.testing.flinkcase import run_case


def _same_both_ways(case: dict[str, Any]) -> dict[str, Any]:
    pruned = run_case(case, timeouts=False)
    plain = run_case(case, timeouts=False, prune_cohorts=False)
    assert pruned["error"] == plain["error"]
    if plain["error"] is not None:
        return pruned
    # the per-key cap evicts from the unpruned run what pruning never holds: the engines
    # then differ by the cap's design (docs/semantics.md, Caps), not by pruning
    assume(plain["evictions"] == 0)
    assert pruned["matches"] == plain["matches"]  # same matches, same order
    assert pruned["late"] == plain["late"]
    assert pruned["peak_partial_matches"] <= plain["peak_partial_matches"]
    return pruned


@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
@given(burst_cases())
def test_pruning_changes_no_match_on_bursts(case: dict[str, Any]) -> None:
    _same_both_ways(case)


@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
@given(cases(if_function=False, throw_on_miss=False))
def test_pruning_changes_no_match_on_any_pattern(case: dict[str, Any]) -> None:
    assume("if(" not in json.dumps(case["stages"]))
    case["skip"] = "skipPastLastEvent"
    _same_both_ways(case)


def test_the_burst_cases_prune() -> None:
    """The random bursts above do exercise the pruning: in a fixed sample, partial matches
    are merged in many cases, many of which emit a match."""
    seen = {"cases": 0, "pruned": 0, "pruned_and_matched": 0}

    @settings(max_examples=300, deadline=None, database=None,
              suppress_health_check=list(HealthCheck), derandomize=True)
    @given(burst_cases())
    def sample(case: dict[str, Any]) -> None:
        plain = run_case(case, timeouts=False, prune_cohorts=False)
        pruned = run_case(case, timeouts=False)
        seen["cases"] += 1
        if pruned["peak_partial_matches"] < plain["peak_partial_matches"]:
            seen["pruned"] += 1
            seen["pruned_and_matched"] += bool(pruned["matches"])

    sample()
    assert seen["pruned"] >= seen["cases"] // 5, seen
    assert seen["pruned_and_matched"] >= seen["cases"] // 10, seen


def _nfa(text: str, prune: bool = True) -> Any:
    rf, diags = parse_text(text, "<t>")
    assert not diags, diags
    return build_rule(rf.rules[0], "<t>", prune_cohorts=prune).nfa


RULE = """
rule r
  key by user
  pattern
    begin fails where outcome == "failure" times 3 or more
    followed by ok where outcome == "success"{extra}
  within 10m
  after match {skip}
end
"""


def test_only_skip_past_last_event_prunes() -> None:
    for skip in ("skip to next", "skip to first fails", "skip to last fails"):
        nfa = _nfa(RULE.format(skip=skip, extra=""))
        assert not nfa.cohort_pruning and not any(s.absorbing for s in nfa.states)
    nfa = _nfa(RULE.format(skip="skip past last event", extra=""))
    assert nfa.cohort_pruning
    assert [s.stage for s in nfa.states if s.absorbing] == ["ok"]
    assert not _nfa(RULE.format(skip="skip past last event", extra=""), False).cohort_pruning


def test_no_pruning_without_a_skip_strategy() -> None:
    text = RULE.replace("  after match {skip}\n", "").format(extra="")
    nfa = _nfa(text)
    assert not nfa.cohort_pruning


def test_no_pruning_when_timeouts_are_reported() -> None:
    text = RULE.format(skip="skip past last event", extra="").replace(
        "end\n", "  on timeout emit { n: count(fails) }\nend\n")
    assert not _nfa(text).cohort_pruning


def test_a_stage_reading_the_partial_match_is_not_absorbing() -> None:
    nfa = _nfa(RULE.format(skip="skip past last event",
                           extra=" and count(fails) > 3"))
    assert nfa.cohort_pruning
    assert not any(s.absorbing for s in nfa.states)
    ok = [s for s in nfa.states if s.stage == "ok"]
    assert ok and not any(absorbing(s) for s in ok)


def _burst(n: int) -> dict[str, Any]:
    stages = [stage("F", "begin", 'name == "f"',
                     {"kind": "timesOrMore", "min": 3, "max": None, "inner": "relaxed"}),
              stage("S", "followedBy", 'name == "s"')]
    events = [{"id": i, "ts": i, "name": "f", "price": 0} for i in range(1, n + 1)]
    events.append({"id": n + 1, "ts": n + 1, "name": "s", "price": 0})
    return {"id": "burst", "stages": stages, "within_ms": None, "skip": "skipPastLastEvent",
            "events": events}


def test_a_burst_holds_linearly_many_partial_matches() -> None:
    n = 40
    pruned = _same_both_ways(_burst(n))
    # Flink's P(k) = k + (k-2)(k-3)/2 after k failures; one member per cohort and state here
    plain = run_case(_burst(n), timeouts=False, prune_cohorts=False)
    assert plain["peak_partial_matches"] == n + (n - 2) * (n - 3) // 2
    assert pruned["peak_partial_matches"] <= 2 * n
    assert pruned["matches"] == [list(range(1, n + 2))]
