"""The future-skew guard (cep.operator.time_guard) on its own and inside the operator."""

from __future__ import annotations

from typing import Any

import pytest

from cep.event import MAX_EVENT_TIME_MS, Event
from cep.operator.cep_operator import CepOperator
from cep.operator.time_guard import FutureGuard

H = 3_600_000


def test_an_event_ahead_of_the_stream_is_refused_until_three_in_a_row_confirm_it() -> None:
    g = FutureGuard(H)
    assert g.limit(float("-inf")) == float("-inf")
    assert g.admits(1_000, float("-inf"), "in", -1, 1)  # nothing accepted yet: any time
    assert g.limit(1_000) == 1_000 + H
    assert not g.admits(1_000 + H + 1, 1_000, "in", -1, 2)
    assert not g.admits(1_000 + 5 * H, 1_000, "in", -1, 4)  # not the next line: a new run
    assert not g.admits(1_000 + 5 * H, 1_000, "in", -1, 5)
    assert g.admits(1_000 + 5 * H, 1_000, "in", -1, 6)  # the third in a row
    assert not g.admits(1_000 + 9 * H, 1_000, "other", -1, 7)  # another input: its own run
    assert g.refused == 4


def test_the_wall_clock_bounds_live_streams_and_is_never_confirmed_away() -> None:
    now = [1_000.0]  # seconds
    g = FutureGuard(H, wall_clock=lambda: now[0])
    ahead = int(now[0] * 1000) + H + 1
    assert not any(g.admits(ahead, float("-inf"), "in", 0, off) for off in range(10))
    now[0] += 2
    assert g.admits(ahead, float("-inf"), "in", 0, 10)
    assert "wall clock" in g.reason(int(now[0] * 1000) + 2 * H, 0)


def test_no_bound_still_caps_the_limit_at_the_valid_domain() -> None:
    g = FutureGuard(None)
    assert g.limit(0) == MAX_EVENT_TIME_MS
    with pytest.raises(ValueError):
        FutureGuard(-1)
    with pytest.raises(ValueError):
        FutureGuard(H, confirm=0)


def test_the_operator_sends_refused_events_to_the_dead_letters_without_moving_the_watermark(
        ) -> None:
    out: list[tuple[str, dict[str, Any]]] = []
    op = CepOperator([], lambda sink, rec: out.append((sink, rec)), {"in": 0}, 10,
                     FutureGuard(H))
    op.on_event(Event(10, 1, {"ts": 10}, "in", 1), "in")
    op.on_event(Event(10 + 2 * H, 2, {"ts": 10 + 2 * H}, "in", 2), "in")
    op.on_event(Event(MAX_EVENT_TIME_MS + 1, 3, {}, "in", 3), "in")
    op.on_event(Event(20, 4, {"ts": 20}, "in", 4), "in")
    assert [(s, r["reason"], r["line"]) for s, r in out] == [
        ("dead_letter", "future_event_time", 2), ("dead_letter", "bad_event_time", 3)]
    assert op.watermark == 19 and op.events_in == 2 and op.refused == 2 and op.late == 0
