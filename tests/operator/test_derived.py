"""Derived streams in the operator (``emit to stream``, :mod:`cep.operator.derived`): the
records reach the rules reading the stream right after the event that produced them, in a
deterministic order, and a checkpoint taken between any two events, restored into a new
operator, gives exactly the alerts of an uninterrupted run (ids included)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cep.app.rules import load_rule_set
from cep.checkpoint import decode, encode
from cep.compiler.compiled import CompiledRule
from cep.event import Event
from cep.operator.cep_operator import CepOperator
from cep.operator.derived import ORIGIN_BITS

CHAIN = """
rule failed
  where kind == "fail"
  key by user
  having count() >= 2 within 10s
  emit to stream bursts { user: events.user }
end

rule out_conn
  where kind == "conn"
  key by src
  pattern begin c
  emit to stream touched { ip: c.src, side: "src" }
end

rule in_conn
  where kind == "conn"
  key by dst
  pattern begin c
  emit to stream touched { ip: c.dst, side: "dst" }
end

rule burst_then_ok
  from bursts
  key by data.user
  pattern
    begin burst
    followed by again
  within 20s
  emit to stream twice { user: burst.data.user }
end

rule twice_seen
  from twice
  key by data.user
  pattern begin t
  emit { user: t.data.user }
end

rule touched_twice
  from touched
  key by data.ip
  having count() >= 3 within 5s
  emit { ip: events.data.ip }
end
"""


def _rules(tmp_path: Path, text: str = CHAIN) -> list[CompiledRule]:
    path = tmp_path / "chain.cep"
    path.write_text(text, encoding="utf-8")
    rs = load_rule_set([str(path)])
    assert rs.ok, rs.diagnostics
    return rs.rules


def _run(rules: list[CompiledRule], events: list[dict[str, Any]], cut: int | None = None
         ) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def emit(sink: str, rec: dict[str, Any]) -> None:
        out.append(rec)
    op = CepOperator(rules, emit, {"input": 0})
    for seq, data in enumerate(events, 1):
        if seq == cut:
            saved = encode(op)
            op = CepOperator(rules, emit, {"input": 0})
            decode(saved, op)
        op.on_event(Event(data["ts"], seq, data, "input", seq), "input")  # (line = seq)
    op.finish()
    return out


def test_records_reach_readers_right_after_their_event(tmp_path: Path) -> None:
    rules = _rules(tmp_path)
    seen: list[tuple[str, int, int]] = []
    events = [{"ts": 1, "kind": "fail", "user": "u"}, {"ts": 2, "kind": "fail", "user": "u"},
              {"ts": 15_000, "kind": "fail", "user": "u"},
              {"ts": 15_001, "kind": "fail", "user": "u"},
              {"ts": 15_002, "kind": "conn", "src": "a", "dst": "a"}]
    op = CepOperator(rules, lambda s, r: seen.append((r["rule"], r["end"], 0)), {"input": 0})
    original = op.dispatch_one

    def spy(rs: Any, ev: Event) -> None:
        if ev.source != "input":
            seen.append((f"{ev.source}<-{ev.data['rule']}", ev.ts, ev.seq))
        original(rs, ev)
    op.dispatch_one = spy  # type: ignore[method-assign]
    for seq, data in enumerate(events, 1):
        op.on_event(Event(data["ts"], seq, data), "input")
    op.finish()
    root = 4 << ORIGIN_BITS
    assert seen == [
        ("bursts<-failed", 2, (2 << ORIGIN_BITS) | 1),
        ("bursts<-failed", 15_001, root | 1),  # the second burst completes the pattern:
        ("twice<-burst_then_ok", 15_001, root | 2),  # its record, within the same event
        ("twice_seen", 15_001, 0),
        ("touched<-out_conn", 15_002, (5 << ORIGIN_BITS) | 1),
        ("touched<-in_conn", 15_002, (5 << ORIGIN_BITS) | 2),
    ]
    assert op.derived.made == 5


def test_an_event_of_two_producers_counts_in_each(tmp_path: Path) -> None:
    events = [{"ts": 1, "kind": "conn", "src": "a", "dst": "b"},
              {"ts": 2, "kind": "conn", "src": "b", "dst": "a"},
              {"ts": 3, "kind": "conn", "src": "a", "dst": "c"}]
    alerts = _run(_rules(tmp_path), events)
    [alert] = [a for a in alerts if a["rule"] == "touched_twice"]
    assert alert["key"] == {"data.ip": "a"} and alert["end"] == 3
    assert [(e["data"]["side"], e["match"]["c"][0]["ts"]) for e in alert["match"]["events"]] \
        == [("src", 1), ("dst", 2), ("src", 3)]


_EVENTS = st.lists(st.tuples(st.integers(0, 3000), st.sampled_from(["fail", "conn", "x"]),
                             st.sampled_from(["u", "v"]), st.sampled_from(["a", "b", "c"]),
                             st.sampled_from(["a", "b", "c"])), min_size=1, max_size=30)


def _events(steps: list[tuple[int, str, str, str, str]]) -> list[dict[str, Any]]:
    ts, out = 0, []
    for gap, kind, user, src, dst in steps:
        ts += gap
        out.append({"ts": ts, "kind": kind, "user": user, "src": src, "dst": dst})
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(_EVENTS, st.integers(1, 30))
def test_a_checkpoint_between_any_two_events_changes_no_alert(
        tmp_path: Path, steps: list[tuple[int, str, str, str, str]], cut: int) -> None:
    rules = _rules(tmp_path)
    events = _events(steps)
    whole = _run(rules, events)
    assert _run(rules, events, cut) == whole


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(_EVENTS)
def test_the_batch_fast_path_gives_the_same_alerts(
        tmp_path: Path, steps: list[tuple[int, str, str, str, str]]) -> None:
    rules = _rules(tmp_path)
    events = _events(steps)
    out: list[dict[str, Any]] = []
    op = CepOperator(rules, lambda s, r: out.append(r), {"input": 0})
    op.on_batch(events, "input", "ts", 0, 0, lambda d, line: None)
    op.finish()
    assert out == _run(rules, events)


def test_reload_keeps_readers_state_and_changes_nothing_else(tmp_path: Path) -> None:
    rules = _rules(tmp_path)
    events = _events([(1000, "conn", "u", "a", "b"), (1000, "conn", "u", "a", "c")])
    out: list[dict[str, Any]] = []
    op = CepOperator(rules, lambda s, r: out.append(r), {"input": 0})
    for seq, data in enumerate(events, 1):
        op.on_event(Event(data["ts"], seq, data), "input")
    op.reload(_rules(tmp_path))
    op.on_event(Event(3000, 3, {"ts": 3000, "kind": "conn", "src": "a", "dst": "b"}), "input")
    op.finish()
    assert [a["end"] for a in out if a["rule"] == "touched_twice"] == [3000]
