"""The per-key cap at work: which partial matches eviction drops, what it costs, what it logs.

The reproduction: one key at ``max_partial_matches_per_key`` (``a`` then ``followed by any
b``, so every ``b`` forks every partial match) used to sort all of the key's partial matches
on every event and log a line per event.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any

import pytest

from cep.app.rules import load_rule_set
from cep.compiler.compiled import CompiledRule
from cep.event import Event
from cep.nfa.heap import offer, smallest
from cep.nfa.matcher import NO_COMPLETED, START_CK, Computation, KeyState
from cep.nfa.pattern import PartialMatchNode
from cep.operator.cep_operator import CepOperator, RuleState
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


def sort_evict(ks: KeyState, over: int) -> None:
    """The eviction the operator had before: sort every partial match of the key by ``ck``,
    drop the first ``over`` (Java's ``removeIf``)."""
    victims = sorted((c for c in ks.a if c.node is not None), key=lambda c: c.ck)
    doomed = {id(c) for c in victims[:over]}
    ks.remove_if(lambda c: id(c) in doomed)


class SortingOperator(CepOperator):
    """The operator with the eviction it had before (:func:`sort_evict`)."""

    def _evict(self, rs: RuleState, key: Any, ks: KeyState, over: int) -> None:
        sort_evict(ks, over)
        rs.evictions += over


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


def live(op: CepOperator) -> list[tuple[Any, str, list[int]]]:
    """The key's partial matches in array order: first-event key, state, events taken."""
    ks = op.rules[0].keys["x"]
    assert isinstance(ks, KeyState)
    out = []
    for c in ks.a:
        seqs = []
        node = c.node
        while node is not None:
            seqs.append(node.event.seq)
            node = node.prev
        out.append((c.ck, c.state.name, seqs[::-1]))
    return out


@pytest.mark.parametrize("cap", [1, 7, 50])
def test_the_cap_keeps_what_sorting_every_partial_match_kept(hot_rule: CompiledRule,
                                                             cap: int) -> None:
    # forks of one partial match share its first event: ties the eviction must break as the
    # stable sort did (the earlier in array order goes first)
    events = hot_events(5, 40, end=False)
    new_out: list[dict[str, Any]] = []
    old_out: list[dict[str, Any]] = []
    new = CepOperator([hot_rule], lambda s, r: new_out.append(r),
                      max_partial_matches_per_key=cap)
    old = SortingOperator([hot_rule], lambda s, r: old_out.append(r),
                          max_partial_matches_per_key=cap)
    run(new, events)
    run(old, events)
    assert new.rules[0].evictions == old.rules[0].evictions > 0
    kept = live(new)
    assert kept == live(old)
    assert new.rules[0].partial_matches() == cap
    end = Event(1000, 1000, {"ts": 1000, "user": "x", "t": "end"}, "input", 1000)
    run(new, [end])
    run(old, [end])
    new.finish()
    old.finish()
    # every kept partial match that took a b completes
    assert new_out == old_out
    assert len(new_out) == sum(len(seqs) >= 2 for _, _, seqs in kept)


def random_heap(rng: random.Random, n: int, start: bool) -> tuple[Computation, ...]:
    a: list[Computation] = []
    for i in range(n):
        node = PartialMatchNode("s", Event(i, i, {}, "input", i), None)
        offer(a, Computation(None, node, (rng.randint(0, 5), rng.randint(0, 2))))  # type: ignore[arg-type]
    if start:
        offer(a, Computation(None, None, START_CK))  # type: ignore[arg-type]
    return tuple(a)


def test_evict_oldest_leaves_the_heap_as_sort_and_remove_if_did() -> None:
    rng = random.Random(11)
    for _ in range(500):
        n = rng.randint(0, 40)
        a = random_heap(rng, n, start=rng.random() < 0.8)
        over = rng.randint(0, n + 2)
        ref = KeyState(a, NO_COMPLETED, 0)
        sort_evict(ref, over)
        ks = KeyState(a, NO_COMPLETED, 0)
        assert ks.evict_oldest(over) == min(over, n)
        assert [id(c) for c in ks.a] == [id(c) for c in ref.a]


def test_finding_the_oldest_looks_at_a_few_partial_matches_not_all() -> None:
    a = random_heap(random.Random(3), 10_000, start=True)
    looked = []

    def counts(c: Computation) -> bool:
        looked.append(c)
        return c.node is not None

    got = smallest(a, 30, counts)
    assert [a[i].ck for i in got] == sorted(c.ck for c in a)[:30]
    assert len(looked) <= 31  # the 30 taken, and the start computation at most


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
    events = hot_events(3, 60, end=False)
    with caplog.at_level(logging.WARNING, logger="cep.operator"):
        run(op, events[:-1])
        before = op.rules[0].evictions
        assert before > 40
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
