"""Event time, lateness, ordering, timers and caps of the CEP operator."""

from __future__ import annotations

from typing import Any

import pytest
from helpers import feed, field_is, rule_of

from cep.event import Event
from cep.nfa.pattern import PatternSpec, Quantifier, StageSpec
from cep.operator.cep_operator import CepOperator

A, B, C = field_is("name", "a"), field_is("name", "b"), field_is("name", "c")


def ab(contiguity: str = "followed_by", within: int | None = None, **kw: object) -> PatternSpec:
    return PatternSpec((StageSpec("a", "begin", A), StageSpec("b", contiguity, B)),
                       within_ms=within, **kw)  # type: ignore[arg-type]


def ev(i: int, ts: int, name: str, **kw: object) -> dict[str, object]:
    return {"id": i, "ts": ts, "name": name, **kw}


def test_out_of_order_events_are_matched_in_event_time_order() -> None:
    # b arrives before a but has a later time; within the out-of-orderness bound both match.
    rec = feed([rule_of(ab())], [ev(1, 10, "b"), ev(2, 5, "a"), ev(3, 20, "c")], ooo=10)
    assert rec.matches() == [[2, 1]]
    assert rec.late() == []


def test_event_at_or_below_watermark_is_late() -> None:
    # after ts=10 with ooo=0 the watermark is 9: ts 9 is late (equal counts), ts 10 is not.
    rec = feed([rule_of(ab())], [ev(1, 10, "a"), ev(2, 9, "b"), ev(3, 10, "b")])
    assert rec.late() == [2]
    assert rec.matches() == [[1, 3]]
    late = next(r for s, r in rec.records if s == "late")
    assert late["watermark"] == 9 and late["reason"] == "late"


def test_equal_timestamps_keep_arrival_order() -> None:
    rec = feed([rule_of(ab("next"))], [ev(1, 5, "a"), ev(2, 5, "b"), ev(3, 5, "a")])
    assert rec.matches() == [[1, 2]]


def test_window_right_border_is_exclusive() -> None:
    rule = rule_of(ab(within=10))
    assert feed([rule], [ev(1, 0, "a"), ev(2, 9, "b")]).matches() == [[1, 2]]
    assert feed([rule_of(ab(within=10))], [ev(1, 0, "a"), ev(2, 10, "b")]).matches() == []


def test_timeout_fires_on_watermark_without_further_events_for_the_key() -> None:
    rule = rule_of(ab(within=10), key="user", with_timeouts=True)
    events = [ev(1, 0, "a", user="u1"), ev(2, 50, "c", user="u2")]
    rec = feed([rule], events, finish=False)
    assert rec.timeouts() == [[1]]
    timed_out = next(r for s, r in rec.records if r.get("timed_out"))
    assert timed_out["timeout_at"] == 10 and timed_out["key"] == {"user": "u1"}


def test_not_followed_by_at_end_released_when_window_passes() -> None:
    spec = PatternSpec((StageSpec("a", "begin", A), StageSpec("b", "not_followed_by", B)),
                       within_ms=10)
    events = [ev(1, 0, "a"), ev(2, 3, "a"), ev(3, 5, "b"), ev(4, 30, "c")]
    rec = feed([rule_of(spec)], events, finish=False)
    assert rec.matches() == []  # both a's were followed by b inside their window
    rec = feed([rule_of(spec)], [ev(1, 0, "a"), ev(2, 30, "c")], finish=False)
    assert rec.matches() == [[1]]


def test_end_of_input_decides_pending_windows() -> None:
    spec = PatternSpec((StageSpec("a", "begin", A), StageSpec("b", "not_followed_by", B)),
                       within_ms=1000)
    rec = feed([rule_of(spec)], [ev(1, 0, "a"), ev(2, 1, "c")])
    assert rec.matches() == [[1]]


def test_keys_are_independent_and_idle_keys_are_dropped() -> None:
    rule = rule_of(ab("next"), key="user")
    rec_op = []
    op = CepOperator([rule], lambda s, r: rec_op.append(r))
    events = [ev(1, 1, "a", user="x"), ev(2, 2, "a", user="y"), ev(3, 3, "b", user="x"),
              ev(4, 4, "b", user="y"), ev(5, 5, "c", user="z")]
    for seq, e in enumerate(events, 1):
        op.on_event(Event(e["ts"], seq, e, "input", seq))  # type: ignore[arg-type]
    op.finish()
    assert sorted(r["key"]["user"] for r in rec_op) == ["x", "y"]
    assert op.rules[0].keys == {}  # nothing pending: every key state was dropped
    assert op.stats()["rules"]["r"]["matches"] == 2


A_THEN_ANY_B = rule_of(PatternSpec((StageSpec("a", "begin", A),
                                     StageSpec("b", "followed_by_any", B))))


def _capped(cap: int, names: list[str]) -> tuple[CepOperator, list[dict[str, Any]]]:
    """``A_THEN_ANY_B`` under ``cap`` over events named ``names`` (one key, ts 1, 2, …)."""
    out: list[dict[str, Any]] = []
    op = CepOperator([A_THEN_ANY_B], lambda s, r: out.append(r),
                     max_partial_matches_per_key=cap)
    for seq, name in enumerate(names, 1):
        e = ev(seq, seq, name)
        op.on_event(Event(e["ts"], seq, e, "input", seq))  # type: ignore[arg-type]
    op.finish()
    return op, out


def test_partial_match_cap_evicts_from_the_middle_and_counts() -> None:
    op, out = _capped(2, ["a", "a", "a", "a", "b", "x"])
    assert op.rules[0].evictions == 2
    starts = sorted(r["match"]["a"][0]["id"] for r in out)
    assert starts == [1, 4]  # the oldest and the newest partial matches survived
    assert all(r["evicted_partial_matches"] == 2 for r in out)


def test_a_cap_of_one_keeps_one_partial_match_and_below_one_is_refused() -> None:
    op, out = _capped(1, ["a", "a", "b"])
    assert [r["match"]["a"][0]["id"] for r in out] == [2] and op.rules[0].evictions == 1
    for cap in (0, -1):
        with pytest.raises(ValueError, match="at least 1"):
            CepOperator([A_THEN_ANY_B], lambda s, r: None, max_partial_matches_per_key=cap)


def test_looping_stage_prefix_matches_with_relaxed_inner_contiguity() -> None:
    spec = PatternSpec((StageSpec("a", "begin", A),
                        StageSpec("b", "followed_by", B, Quantifier("one_or_more", 1, None))))
    rec = feed([rule_of(spec)], [ev(1, 1, "a"), ev(2, 2, "b"), ev(3, 3, "c"), ev(4, 4, "b")])
    assert sorted(rec.matches()) == [[1, 2], [1, 2, 4]]
