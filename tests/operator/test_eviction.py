"""The per-key cap at work: which partial matches eviction drops, what it costs, what it logs.

The reproduction: one key at ``max_partial_matches_per_key`` (``a`` then ``followed by any
b``, so every ``b`` forks every partial match).  Eviction drops whole cohorts (partial matches
that started at one event) from the middle of start order outward (docs/semantics.md, *The
per-key cap*), and the key's next alerts say how many partial matches it lost.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from cep.app.rules import load_rule_set
from cep.compiler.compiled import CompiledRule
from cep.event import Event
from cep.nfa.cohorts import evict_cohorts, eviction_order
from cep.nfa.heap import JavaHeap, offer
from cep.nfa.matcher import NO_COMPLETED, START_CK, Computation, KeyState
from cep.nfa.pattern import PartialMatchNode
from cep.operator.cep_operator import CepOperator
from cep.operator.eviction import EvictionLog

HOT_KEY = """
rule fba
  key by user
  pattern
    begin a where t == "a"
    followed by any b where t == "b"
    followed by c where t == "end"
end
"""


@pytest.fixture(scope="module")
def hot_rule(tmp_path_factory: pytest.TempPathFactory) -> CompiledRule:
    path = Path(tmp_path_factory.mktemp("rules")) / "fba.cep"
    path.write_text(HOT_KEY)
    rs = load_rule_set([str(path)])
    assert rs.ok, rs.diagnostics
    return rs.rules[0]


def hot_events(a: int, b: int, end: bool) -> list[Event]:
    """``a`` events ``a``, then ``b`` events ``b`` (then one ``end``), all of key ``x``."""
    kinds = ["a"] * a + ["b"] * b + (["end"] if end else [])
    return [Event(i, i, {"ts": i, "user": "x", "t": t, "n": i}, "input", i)
            for i, t in enumerate(kinds, 1)]


def run(op: CepOperator, events: list[Event]) -> None:
    for e in events:
        op.on_event(e)


def cohorts(op: CepOperator) -> Counter[Any]:
    """The key's partial matches by first event (``ck``)."""
    ks = op.rules[0].keys["x"]
    assert isinstance(ks, KeyState)
    return Counter(c.ck for c in ks.a if c.node is not None)


def test_eviction_order_takes_the_middle_first_then_the_oldest() -> None:
    assert eviction_order(0) == []
    assert eviction_order(1) == [0]
    assert eviction_order(2) == [0, 1]
    assert eviction_order(3) == [1, 0, 2]
    assert eviction_order(5) == [2, 3, 1, 0, 4]
    assert eviction_order(6) == [3, 2, 4, 1, 0, 5]
    for m in range(40):
        assert sorted(eviction_order(m)) == list(range(m))


@pytest.mark.parametrize("cap", [1, 7, 50])
def test_the_cap_evicts_whole_cohorts_and_keeps_the_oldest_and_newest(
        hot_rule: CompiledRule, cap: int) -> None:
    out: list[dict[str, Any]] = []
    op = CepOperator([hot_rule], lambda s, r: out.append(r), max_partial_matches_per_key=cap)
    events = hot_events(5, 40, end=False)
    free = CepOperator([hot_rule], lambda s, r: None, max_partial_matches_per_key=10**9)
    for e in events:
        op.on_event(e)
        free.on_event(e)
        got = cohorts(op) if "x" in op.rules[0].keys else Counter()
        assert sum(got.values()) <= cap
        whole = cohorts(free)
        # never part of a cohort: every cohort left has all the members it has without a cap
        # (without a skip strategy a cohort's members evolve alone)
        for ck, n in got.items():
            assert n == whole[ck]
    assert op.rules[0].evictions > 0
    end = Event(1000, 1000, {"ts": 1000, "user": "x", "t": "end"}, "input", 1000)
    op.on_event(end)
    op.finish()
    assert all(r["evicted_partial_matches"] > 0 for r in out)
    # a cohort grows by one member per b, 41 after 40 b's: a cap of 50 holds one, the newest
    # (with only the oldest and the newest left, the oldest goes first); a cap below that
    # holds none
    assert sorted({r["match"]["a"][0]["n"] for r in out}) == ([5] if cap == 50 else [])


def test_with_room_for_two_cohorts_the_oldest_and_the_newest_stay(
        hot_rule: CompiledRule) -> None:
    # three a's, then b's: every b adds a member to every cohort; at the cap of 8 the middle
    # cohort goes first
    op = CepOperator([hot_rule], lambda s, r: None, max_partial_matches_per_key=8)
    run(op, hot_events(3, 2, end=False))  # cohorts of 3 partial matches each: 9 > 8
    assert sorted(ck[1] for ck in cohorts(op)) == [1, 3]
    assert op.rules[0].evictions == 3


def test_alerts_after_an_eviction_say_how_many_were_lost_then_the_count_restarts(
        hot_rule: CompiledRule) -> None:
    out: list[dict[str, Any]] = []
    op = CepOperator([hot_rule], lambda s, r: out.append(r), max_partial_matches_per_key=8)
    run(op, hot_events(3, 2, end=True))
    assert op.rules[0].evictions == 3
    assert len(out) == 4 and all(r["evicted_partial_matches"] == 3 for r in out)
    # no eviction since the key's last match: no mark
    more = [Event(i, i, {"ts": i, "user": "x", "t": t}, "input", i)
            for i, t in enumerate(["a", "b", "end"], 100)]
    run(op, more)
    op.finish()
    assert len(out) > 4 and not any("evicted_partial_matches" in r for r in out[4:])


def random_heap(rng: random.Random, n: int, start: bool) -> tuple[Computation, ...]:
    a: list[Computation] = []
    for i in range(n):
        node = PartialMatchNode("s", Event(i, i, {}, "input", i), None)
        offer(a, Computation(None, node, (rng.randint(0, 5), rng.randint(0, 2))))  # type: ignore[arg-type]
    if start:
        offer(a, Computation(None, None, START_CK))  # type: ignore[arg-type]
    return tuple(a)


def test_evict_cohorts_drops_as_few_whole_cohorts_as_the_order_allows() -> None:
    rng = random.Random(11)
    for _ in range(500):
        n = rng.randint(0, 40)
        a = random_heap(rng, n, start=rng.random() < 0.8)
        over = rng.randint(0, n + 2)
        sizes = Counter(c.ck for c in a if c.node is not None)
        starts = sorted(sizes)
        ks = KeyState(a, NO_COMPLETED, 0)
        dropped = ks.evict_cohorts(over)
        left = Counter(c.ck for c in ks.a if c.node is not None)
        gone = [ck for ck in starts if ck not in left]
        assert all(left[ck] == sizes[ck] for ck in left)  # whole cohorts only
        assert dropped == sum(sizes[ck] for ck in gone) == ks.evicted
        assert any(c.node is None for c in ks.a) == any(c.node is None for c in a)
        # the victims are a prefix of the eviction order, and the shortest that suffices
        order = [starts[j] for j in eviction_order(len(starts))]
        assert set(order[:len(gone)]) == set(gone)
        if over <= 0:
            assert not gone
        elif gone:
            assert dropped >= over or len(gone) == len(starts)
            assert sum(sizes[ck] for ck in order[:len(gone) - 1]) < over
        # the survivors as Java's removeIf leaves them
        ref = JavaHeap()
        ref.a = list(a)
        ref.remove_if(lambda c, g=set(gone): c.node is not None and c.ck in g)
        assert [id(c) for c in ks.a] == [id(c) for c in ref.a]
        assert evict_cohorts(a, 0) == (list(a), 0)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_eviction_warnings_are_rate_limited_and_say_how_many(
        hot_rule: CompiledRule, caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    op = CepOperator([hot_rule], lambda s, r: None, max_partial_matches_per_key=20)
    op.eviction_log = EvictionLog(logging.getLogger("cep.operator"), every_s=10, clock=clock)
    # an a then a b, again and again: new cohorts keep coming and every b grows them all
    events = [Event(i, i, {"ts": i, "user": "x", "t": "ab"[i % 2]}, "input", i)
              for i in range(120)]
    with caplog.at_level(logging.WARNING, logger="cep.operator"):
        run(op, events[:-2])
        before = op.rules[0].evictions
        assert before > 200
        assert len(caplog.records) == 1  # dozens of evicting events, one line
        first = caplog.records[0].getMessage()
        assert "further evictions of this rule are logged at most every 10 s" in first
        clock.now += 9.9
        run(op, events[-2:-1])
        assert len(caplog.records) == 1
        clock.now += 0.1
        run(op, events[-1:])
    total = op.rules[0].evictions
    assert total > before
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    # the second line: everything evicted since the first line, and the total
    logged_first = int(first.split(": ")[1].split()[0])
    assert f": {total - logged_first} partial matches evicted in " in lines[1]
    assert f", {total} in all " in lines[1]
    assert op.stats()["rules"]["fba"]["evictions"] == total
