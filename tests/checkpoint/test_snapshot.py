"""Snapshot round trips: a run interrupted by snapshot → restore into a fresh operator gives
exactly the outputs of the uninterrupted run; bad snapshots are refused, never misread."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from helpers import Recorder, field_is, rule_of
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cep.checkpoint import CheckpointError, decode, encode, read_meta
from cep.checkpoint.snapshot import FORMAT_VERSION, payload
from cep.compiler.compiled import CompiledRule
from cep.event import Event
from cep.nfa.compile import PatternError
from cep.nfa.pattern import TRUE, Condition, PatternSpec, Quantifier, StageSpec
from cep.operator.cep_operator import CepOperator

NAMES = ("a", "b", "c")


def _count_below(limit: int) -> Condition:
    """An iterative condition: fewer than ``limit`` events taken so far."""

    def fn(ev: Any, pm: Any) -> bool:
        n = 0
        while pm is not None:
            n += 1
            pm = pm.prev
        return n < limit

    return Condition(fn, f"count < {limit}", iterative=True)


@st.composite
def stages(draw: st.DrawFn) -> tuple[StageSpec, ...]:
    n = draw(st.integers(1, 4))
    out = []
    for i in range(n):
        contiguity = "begin" if i == 0 else draw(st.sampled_from(
            ["next", "followed_by", "followed_by_any", "not_next", "not_followed_by"]))
        kind = draw(st.sampled_from(["single", "single", "times", "times_range",
                                     "one_or_more", "times_or_more"]))
        negated = contiguity.startswith("not")
        if negated:
            kind = "single"
        lo = draw(st.integers(1, 3))
        q = {
            "single": Quantifier(),
            "times": Quantifier("times", lo, lo, draw(st.sampled_from(
                ["relaxed", "consecutive", "allow_combinations"]))),
            "times_range": Quantifier("times_range", lo, lo + 1),
            "one_or_more": Quantifier("one_or_more", 1, None, draw(st.sampled_from(
                ["relaxed", "consecutive", "allow_combinations"]))),
            "times_or_more": Quantifier("times_or_more", lo, None),
        }[kind]
        cond = draw(st.sampled_from([field_is("name", x) for x in NAMES] + [TRUE]))
        if draw(st.booleans()) and not negated:
            cond = _count_below(draw(st.integers(2, 5)))
        out.append(StageSpec(
            name=f"s{i}", contiguity=contiguity, condition=cond, quantifier=q,
            optional=not negated and i > 0 and draw(st.booleans()),
            greedy=kind != "single" and draw(st.booleans()),
            within_ms=draw(st.sampled_from([None, None, 5, 20])) if i > 0 else None,
        ))
    return tuple(out)


@st.composite
def rules(draw: st.DrawFn, name: str) -> CompiledRule:
    spec = PatternSpec(
        stages=draw(stages()),
        within_ms=draw(st.sampled_from([None, 10, 30, 100])),
        skip=draw(st.sampled_from(["no_skip", "skip_to_next", "skip_past_last_event",
                                   "skip_to_first", "skip_to_last"])),
    )
    if spec.skip in ("skip_to_first", "skip_to_last"):
        spec = PatternSpec(spec.stages, spec.within_ms, spec.skip, "s0")
    try:
        rule = rule_of(spec, key=draw(st.sampled_from([None, "user"])), name=name,
                       with_timeouts=True)
    except PatternError:
        assume(False)
        raise
    if draw(st.booleans()):  # a composite (tuple) key
        rule.key_fn = lambda d: (d.get("user"), d.get("name") == "c")
        rule.key_names = ("user", "is_c")
    return rule


@st.composite
def streams(draw: st.DrawFn) -> list[dict[str, Any]]:
    n = draw(st.integers(0, 40))
    ts = 0
    out = []
    for i in range(n):
        ts += draw(st.integers(0, 6))
        jitter = draw(st.sampled_from([0, 0, 0, -1, -3, -8]))
        out.append({"id": i, "ts": max(0, ts + jitter), "name": draw(st.sampled_from(NAMES)),
                    "user": draw(st.sampled_from(["u1", "u2"])), "tags": [i, {"x": i % 2}]})
    return out


def _run(rule_list: list[CompiledRule], events: list[dict[str, Any]], ooo: int,
         cuts: set[int]) -> list[tuple[str, dict[str, Any]]]:
    rec = Recorder()
    op = CepOperator(rule_list, rec, {"input": ooo}, max_partial_matches_per_key=6)
    for i, ev in enumerate(events):
        if i in cuts:
            data = encode(op, {"next": i})
            op = CepOperator(rule_list, rec, {"input": ooo}, max_partial_matches_per_key=6)
            report = decode(data, op)
            assert report.meta == {"next": i}
            assert not report.dropped_rules
        op.on_event(Event(ev["ts"], i + 1, ev, "input", i + 100))
    op.finish()
    return rec.records


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(r1=rules("r1"), r2=rules("r2"), events=streams(), ooo=st.integers(0, 5),
       cuts=st.sets(st.integers(0, 40), max_size=3))
def test_restore_continues_exactly_like_an_uninterrupted_run(
    r1: CompiledRule, r2: CompiledRule, events: list[dict[str, Any]], ooo: int, cuts: set[int]
) -> None:
    expected = _run([r1, r2], events, ooo, set())
    assert _run([r1, r2], events, ooo, cuts) == expected


def _spec() -> PatternSpec:
    return PatternSpec((StageSpec("a", "begin", field_is("name", "a")),
                        StageSpec("b", "followed_by", field_is("name", "b"),
                                  Quantifier("one_or_more"))), within_ms=1000)


def _op_with_state(rule: CompiledRule) -> CepOperator:
    op = CepOperator([rule], Recorder(), {"input": 5})
    for i, name in enumerate("abbbab"):
        op.on_event(Event(i * 10, i + 1, {"name": name, "user": "u"}, "input", i))
    return op


def test_shared_prefixes_are_stored_once() -> None:
    rule = rule_of(_spec(), key="user")
    op = _op_with_state(rule)
    doc = msgpack.unpackb(payload(encode(op))[0], raw=False, strict_map_key=False)
    taken = [n for n in doc["nodes"]]
    # every node is distinct (stage, event, prev); branches point at common parents
    assert len({(s, e, p) for s, e, p in taken}) == len(taken)
    assert len(doc["events"]) == len({tuple(e[:2]) for e in doc["events"]})


def test_changed_rule_version_drops_its_state_and_reports_it() -> None:
    rule = rule_of(_spec(), key="user")
    data = encode(_op_with_state(rule))
    changed = rule_of(_spec(), key="user")
    changed.version = "v2"
    op = CepOperator([changed], Recorder(), {"input": 5})
    report = decode(data, op)
    assert report.dropped_rules == [("r", "v1", "v2")]
    assert op.rules[0].keys == {}
    assert report.buffered > 0  # buffered input is not rule state: it is kept


def test_restore_reports_what_it_restored() -> None:
    rule = rule_of(_spec(), key="user")
    op = CepOperator([rule], Recorder(), {"input": 5})
    report = decode(encode(_op_with_state(rule), {"offsets": {"t/0": 6}}), op)
    assert report.restored_rules == ["r"] and report.keys == 1 and report.partial_matches > 0
    assert read_meta(encode(op, {"x": 1})) == {"x": 1}


@pytest.mark.parametrize("data, message", [
    (b"\x00garbage", "corrupt checkpoint"),
    (msgpack.packb([1, 2]), "not a cep checkpoint"),
    (msgpack.packb({"format": "something else"}), "not a cep checkpoint"),
    (msgpack.packb({"format": "cep.checkpoint", "version": FORMAT_VERSION + 1}),
     f"format version {FORMAT_VERSION + 1} is newer"),
    (msgpack.packb({"format": "cep.checkpoint", "version": 0}), "invalid format version"),
    (msgpack.packb({"format": "cep.checkpoint", "version": 1, "events": []}), "corrupt"),
    (b"\xc1", "corrupt checkpoint"),
])
def test_bad_snapshots_are_refused_with_a_clear_message(data: bytes, message: str) -> None:
    op = CepOperator([rule_of(_spec())], Recorder())
    with pytest.raises(CheckpointError, match=message):
        decode(data, op)


def test_keys_kept_as_their_event_alone_in_several_rules_restore_their_own_events() -> None:
    # Each rule's keys kept as their event alone are unfolded for the snapshot only; the
    # nodes of one rule must not be mistaken for another's (the tables know nodes by id).
    spec = PatternSpec((StageSpec("a", "begin", field_is("name", "a")),
                        StageSpec("b", "followed_by", field_is("name", "b"))), within_ms=1000)
    rule_list = [rule_of(spec, key="user", name=f"r{i}") for i in range(3)]
    op = CepOperator(rule_list, Recorder(), {"input": 0})
    for i in range(20):
        op.on_event(Event(i, i + 1, {"name": "a", "user": f"u{i}"}, "input", i))
    assert all(type(e) is Event for rs in op.rules for e in rs.keys.values())  # kept alone
    restored = CepOperator(rule_list, Recorder(), {"input": 0})
    decode(encode(op), restored)
    for rs in restored.rules:
        for key, ks in rs.keys.items():
            assert [c.node.event.data["user"] for c in ks.a if c.node is not None] == [key]
