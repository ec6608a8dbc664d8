"""Rounded timers for rules whose expiry says nothing, and the held keys rules share.

* :func:`timer_grain`: 1/64 of the shortest window for a rule with no timeout output, no
  pending match and no skip strategy; exact (1 ms) otherwise.  A timer is at its deadline
  rounded up to the grain, whatever order the deadlines come in.
* A key whose deadline has passed keeps its state until its rounded timer, but an event for
  it first expires what is due: no match from a partial match outside its window.
* Whole runs with rounded timers write exactly the records of exact timers, with and without
  the file scanner, and across a checkpoint taken in the middle.
* Timers restored as exact deadlines (a snapshot from before rounding) still expire keys.
* The set of held keys shared by rules keyed by one field (for the file scanner only) holds
  every key they hold, and is tidied.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cep.app.rules import load_rule_set
from cep.checkpoint import snapshot
from cep.compiler.build import build_rule
from cep.compiler.compiled import CompiledRule
from cep.event import Event
from cep.lang.parse import parse_text
from cep.nfa.cohorts import eviction_order
from cep.operator import key_store, prescan
from cep.operator.cep_operator import CepOperator
from tests.operator.test_prescan import _input, _run

RULES = """
rule pay_then_refund
  key by user
  pattern
    begin a where type == "payment"
    followed by b where type == "refund"
  within 640ms
end

rule logins_then_pay
  key by user
  pattern
    begin a where type == "login" times 2 or more
    followed by b where type == "payment" and amount > 50
  within 1280ms
end

rule view_then_logout
  key by user
  pattern
    begin a where type == "view"
    followed by b where type == "logout" within 320ms
end

rule any_view_then_move
  key by user
  pattern
    begin a where type == "view" and ok
    followed by any b where type == "move"
  within 700ms
end

rule by_device
  key by dev
  pattern
    begin a where type == "add"
    followed by b where type == "conf"
  within 500ms
end

rule refund_covers
  key by user
  pattern
    begin a where type == "payment"
    followed by b where type == "refund" and amount >= first(a).amount
  within 640ms
end
"""

LOUD = """
rule timed
  key by user
  pattern
    begin a where type == "payment"
    followed by b where type == "refund"
  within 640ms
  on timeout emit { }
end

rule skipping
  key by user
  pattern
    begin a where type == "payment"
    followed by b where type == "refund"
  within 640ms
  after match skip past last event
end

rule pending
  key by user
  pattern
    begin a where type == "payment"
    not followed by b where type == "refund" within 640ms
end

rule unbounded
  key by user
  pattern
    begin a where type == "payment"
    followed by b where type == "refund"
end

rule short
  key by user
  pattern
    begin a where type == "payment"
    followed by b where type == "refund"
  within 100ms
end
"""


def _rules(tmp_path: Path, text: str) -> list[CompiledRule]:
    path = tmp_path / "r.cep"
    path.write_text(text)
    rs = load_rule_set([str(path)])
    assert rs.ok, rs.diagnostics
    return rs.rules


def test_only_silent_rules_with_a_window_get_rounded_timers(tmp_path: Path) -> None:
    op = CepOperator(_rules(tmp_path, RULES + LOUD), lambda sink, rec: None)
    grains = {rs.rule.name: rs.grain for rs in op.rules}
    assert grains == {"pay_then_refund": 10, "logins_then_pay": 20, "view_then_logout": 5,
                      "any_view_then_move": 10, "by_device": 7, "refund_covers": 10,
                      "timed": 1, "skipping": 1, "pending": 1, "unbounded": 1, "short": 1}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-3000, 3000), max_size=40))
def test_a_rounded_timer_is_the_deadline_rounded_up_to_the_grain(deadlines: list[int]) -> None:
    # in any order: each deadline's rounding, not the last one's (add_timer remembers it)
    rf, diags = parse_text(RULES, "<rules>")
    assert not diags
    [rs] = CepOperator([build_rule(rf.rules[0], "<rules>")], lambda sink, rec: None).rules
    assert rs.grain == 10
    want: dict[int, list[str]] = {}
    for i, d in enumerate(deadlines):
        rs.add_timer(f"k{i}", d)
        want.setdefault(-(-d // 10) * 10, []).append(f"k{i}")
    assert sorted(rs.timers) == sorted(want)
    assert {d: keys if type(keys) is list else [keys] for d, keys in rs.due.items()} == want


class _Records:
    def __init__(self) -> None:
        self.out: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, sink: str, rec: dict[str, Any]) -> None:
        self.out.append((sink, rec))


def test_a_key_outlives_its_deadline_but_never_matches_past_it(tmp_path: Path) -> None:
    rec = _Records()
    op = CepOperator(_rules(tmp_path, RULES), rec)
    rs = op.rules[0]  # pay_then_refund: window 640 ms, timers rounded to 10 ms
    op.on_event(Event(1, 1, {"type": "payment", "user": "u1"}, "input", 1))
    assert type(rs.keys["u1"]) is Event  # kept as its event alone (compact_after)
    assert rs.state_of("u1").deadline == 641 and rs.timers == [650]
    op.on_event(Event(645, 2, {"type": "view", "user": "u2"}, "input", 2))
    assert "u1" in rs.keys and rs.timeouts == 0  # past its deadline, before its timer
    op.on_event(Event(646, 3, {"type": "refund", "user": "u1"}, "input", 3))
    assert rec.out == [] and "u1" not in rs.keys and rs.timeouts == 1  # expired, no match
    op.on_event(Event(700, 4, {"type": "payment", "user": "u1"}, "input", 4))
    op.on_event(Event(1339, 5, {"type": "refund", "user": "u1"}, "input", 5))
    assert [r["start"] for _, r in rec.out] == [700]  # 639 ms later: inside the window


def test_the_timer_frees_the_key_once_the_watermark_passes_it(tmp_path: Path) -> None:
    op = CepOperator(_rules(tmp_path, RULES), lambda sink, rec: None)
    rs = op.rules[0]
    op.on_event(Event(1, 1, {"type": "payment", "user": "u1"}, "input", 1))
    op.on_event(Event(650, 2, {"type": "view", "user": "u2"}, "input", 2))
    assert op.watermark == 649 and "u1" in rs.keys
    op.on_event(Event(651, 3, {"type": "view", "user": "u2"}, "input", 3))
    assert "u1" not in rs.keys and rs.timeouts == 1 and not rs.timers


def test_timers_restored_at_exact_deadlines_still_expire_keys(tmp_path: Path) -> None:
    op = CepOperator(_rules(tmp_path, RULES), lambda sink, rec: None)
    rs = op.rules[0]
    op.on_event(Event(1, 1, {"type": "payment", "user": "u1"}, "input", 1))
    op.on_event(Event(5, 2, {"type": "payment", "user": "u2"}, "input", 2))
    # what a snapshot written with exact timers holds
    rs.restore_timers([(rs.state_of(k).deadline, n, k)
                       for n, k in enumerate(("u1", "u2"))])
    op.state_changed()
    assert rs.timers == [641, 645]
    op.on_event(Event(642, 3, {"type": "view", "user": "u3"}, "input", 3))
    assert "u1" not in rs.keys and "u2" in rs.keys
    op.on_event(Event(646, 4, {"type": "view", "user": "u3"}, "input", 4))
    assert not rs.keys


def _feed(rules: list[CompiledRule], objs: list[dict[str, Any]], exact: bool,
          cut: int | None = None) -> list[tuple[str, dict[str, Any]]]:
    rec = _Records()
    op = CepOperator(rules, rec)
    op.share_holders()
    if exact:
        for rs in op.rules:
            rs.grain = 1
    for seq, d in enumerate(objs, 1):
        if seq == cut:  # a checkpoint, restored into a new operator
            data = snapshot.encode(op)
            op = CepOperator(rules, rec)
            snapshot.decode(data, op)
            assert not op.holder_groups  # until the scanner shares them again
            op.share_holders()
        op.on_event(Event(d["ts"], seq, d, "input", seq))
        [held] = op.holder_groups
        for rs in held.rules:
            assert held.issuperset(rs.keys)
    op.finish()
    return rec.out


@pytest.mark.parametrize("seed", range(6))
def test_rounded_timers_write_the_records_of_exact_ones(tmp_path: Path, seed: int) -> None:
    from tests.operator.test_fastpath import _objects

    rng = random.Random(seed)
    objs = [d for d in _objects(rng, 2500) if type(d["ts"]) is int]
    for d in objs:
        d["ts"] *= 3
    rules = _rules(tmp_path, RULES)
    exact = _feed(rules, objs, exact=True)
    assert len(exact) > 20, "some alerts"
    assert _feed(rules, objs, exact=False) == exact
    assert _feed(rules, objs, exact=False, cut=len(objs) // 2) == exact


@pytest.mark.skipif(not prescan.AVAILABLE, reason="cep._prescan is not built")
@pytest.mark.parametrize("seed", range(4))
def test_the_scanner_with_rounded_timers_and_shared_held_keys_writes_the_same_records(
        tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(seed)
    data = tmp_path / "in.jsonl"
    data.write_bytes(_input(rng, 3000))
    rules = _rules(tmp_path, RULES)
    op = CepOperator(rules, lambda sink, rec: None)
    assert not op.holder_groups and op.rules[0].holders is None  # shared for the scanner only
    op.share_holders()
    built = prescan.build_program(op.rules, "input", "ts")
    assert built is not None
    paths = prescan.gates_of(op.rules, "input", "ts")[0]  # type: ignore[index]
    shared = prescan.holders_of(paths, built[1])
    assert shared[paths.index(("user",))] is op.rules[0].holders is not None
    rounded = _run(rules, data, tmp_path / "c", native=True)
    assert rounded == _run(rules, data, tmp_path / "py", native=False)
    monkeypatch.setattr(key_store, "TIMER_GRAINS", 10**9)  # every timer exact
    assert _run(rules, data, tmp_path / "exact", native=True) == rounded
    assert rounded[3], "some alerts"


def test_the_shared_held_keys_are_tidied_when_far_larger_than_the_keys(tmp_path: Path) -> None:
    op = CepOperator(_rules(tmp_path, RULES), lambda sink, rec: None)
    op.share_holders()
    [held] = op.holder_groups
    assert [rs.rule.name for rs in held.rules] == ["pay_then_refund", "logins_then_pay",
                                                    "view_then_logout", "any_view_then_move",
                                                    "refund_covers"]
    sizes = []
    for i in range(10_000):
        op.on_event(Event(i * 1000, i + 1, {"type": "payment", "user": f"u{i}"}, "input", i))
        sizes.append(len(held))
        assert held.issuperset(held.rules[0].keys)
    assert len(held.rules[0].keys) == 1  # each key expired before the next came
    # keys only join it until 1,024 more than it held at its last rebuild (one key, which two
    # rules keep) have joined, and it is rebuilt from the keys
    assert max(sizes) == 1 + 1024 and min(sizes[5000:]) < 5


def _feed_compact(rules: list[CompiledRule], later: list[CompiledRule],
                  objs: list[dict[str, Any]], compact: bool
                  ) -> tuple[list[tuple[str, dict[str, Any]]], list[Any]]:
    """Records, and after every event the partial matches and timeouts of each rule, with or
    without keys kept as their event(s) alone; a checkpoint a third of the way in and a reload
    to ``later`` two thirds of the way in (changed rules drain)."""
    rec = _Records()
    op = CepOperator(rules, rec)
    op.hold_after = 64  # events held compactly early, the kept events among them

    def settle() -> None:
        for rs in op.rules:
            if not compact:
                rs.compact_after = None
    settle()
    seen: list[Any] = []
    kept = several = 0
    for seq, d in enumerate(objs, 1):
        if seq == len(objs) // 3:
            data = snapshot.encode(op)
            op = CepOperator(rules, rec)
            op.hold_after = 64
            snapshot.decode(data, op)
            settle()
        if seq == 2 * len(objs) // 3:
            op.reload(later)
            settle()
        op.on_event(Event(d["ts"], seq, d, "input", seq))
        kept += sum(type(v) is not key_store.KeyState for rs in op.rules
                    for v in rs.keys.values())
        several += sum(type(v) is tuple for rs in op.rules for v in rs.keys.values())
        seen.append([(rs.rule.name, rs.draining, rs.partial_matches(), rs.timeouts)
                     for rs in op.rules])
    state = msgpack.unpackb(snapshot.payload(snapshot.encode(op))[0], strict_map_key=False)
    del state["created_ms"]
    for saved in state["rules"]:
        for k in saved["keys"]:
            # (a key's clock only spares it a look at its deadline; a key kept as its event
            # alone does not note the time of the events that left it as it was)
            k[1] = None
    seen.append(state)  # the same state, unfolded
    op.finish()
    seen.append(op.stats())
    assert (kept > 0) == compact and (several > 0) == compact  # (also as their events)
    return rec.out, seen


@pytest.mark.parametrize("seed", range(6))
def test_keys_kept_as_their_event_alone_behave_as_full_state(tmp_path: Path,
                                                             seed: int) -> None:
    from tests.operator.test_fastpath import _objects

    rng = random.Random(seed)
    objs = [d for d in _objects(rng, 2500) if type(d["ts"]) is int]
    for d in objs:
        d["ts"] *= 3
    rules = _rules(tmp_path, RULES)
    later = _rules(tmp_path, RULES.replace("within 640ms", "within 900ms"))
    full = _feed_compact(rules, later, objs, compact=False)
    assert len(full[0]) > 20, "some alerts"
    assert _feed_compact(rules, later, objs, compact=True) == full


def test_a_key_kept_as_its_event_is_held_compactly_and_kept_as_its_events_after(
        tmp_path: Path) -> None:
    rec = _Records()
    op = CepOperator(_rules(tmp_path, RULES), rec)
    op.hold_after = 1
    rs = op.rules[0]  # pay_then_refund
    assert rs.compact_after == 640 and rs.shortcut is not None
    op.on_event(Event(1, 1, {"type": "payment", "user": "u1"}, "input", 1))
    assert type(rs.keys["u1"]) is Event and rs.partial_matches() == 1
    for i in range(2, 6):  # rounds of held events: the kept event is held too
        op.on_event(Event(i, i, {"type": "view", "user": f"v{i}"}, "input", i))
        op.on_event(Event(i, i + 10, {"type": "payment", "user": f"p{i}"}, "input", i))
    assert type(rs.keys["u1"]).__name__ == "HeldEvent"
    op.on_event(Event(20, 20, {"type": "refund", "user": "u1"}, "input", 20))
    assert "u1" not in rs.keys  # matched: its one partial match completed
    [(_, r)] = [x for x in rec.out if x[1]["key"] == {"user": "u1"}]
    assert r["match"] == {"a": [{"type": "payment", "user": "u1"}],
                          "b": [{"type": "refund", "user": "u1"}]}
    op.on_event(Event(30, 30, {"type": "payment", "user": "u2"}, "input", 30))
    op.on_event(Event(31, 31, {"type": "payment", "user": "u2"}, "input", 31))
    kept = rs.keys["u2"]  # a second partial match: the two events, the first's deadline
    assert type(kept) is tuple and [e.seq for e in kept[1:]] == [30, 31]
    assert kept[0] == 30 + 640 and len(rs.state_of("u2").a) == 3  # and the start
    op.on_event(Event(32, 32, {"type": "refund", "user": "u2"}, "input", 32))
    assert "u2" not in rs.keys  # both completed, in start order
    assert [r["start"] for _, r in rec.out if r["key"] == {"user": "u2"}] == [30, 31]


@pytest.mark.parametrize("payments", [2, 4])
@pytest.mark.parametrize("cap", [1, 2, 3])
def test_keys_kept_as_their_events_respect_the_cap_on_partial_matches(tmp_path: Path,
                                                                      cap: int,
                                                                      payments: int) -> None:
    # payments of 1, 2, … then a refund of 9: with a cap the partial matches are evicted from
    # the middle of start order, whether the key is kept as its events or holds its full state
    outs = []
    for compact in (False, True):
        rec = _Records()
        op = CepOperator(_rules(tmp_path, RULES), rec, max_partial_matches_per_key=cap)
        for rs in op.rules:
            if not compact:
                rs.compact_after = None
        for i in range(1, payments + 1):
            op.on_event(Event(i, i, {"type": "payment", "user": "u", "amount": i}, "input", i))
        end = payments + 1
        op.on_event(Event(end, end, {"type": "refund", "user": "u", "amount": 9}, "input", end))
        outs.append((rec.out, [(rs.rule.name, rs.evictions) for rs in op.rules]))
    assert outs[0] == outs[1]
    starts = [r["start"] for _, r in outs[1][0] if r["rule"] == "refund_covers"]
    kept: list[int] = []  # each payment a cohort of one: one victim per payment over the cap
    for i in range(1, end):
        kept.append(i)
        if len(kept) > cap:
            del kept[eviction_order(len(kept))[0]]
    assert starts == kept
    assert dict(outs[1][1])["refund_covers"] == max(0, payments - cap)
