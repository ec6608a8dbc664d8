"""``having``, ``all of`` and ``suppress for`` end to end: what ``cep check`` reports, the
canonical text, checkpoints taken mid-stream, reloads, metrics."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from cep.checkpoint import decode, encode
from cep.diagnostics import render
from cep.event import Event
from cep.lang.check import check_rule
from cep.lang.format import format_rule, rule_version
from cep.lang.parse import parse_text
from cep.operator.cep_operator import CepOperator
from tests.helpers import Recorder

from .test_window_properties import compile_one, streams

FAN_OUT = """
rule fan_out
  where ok
  key by k
  having count_distinct(v) >= 2 and sum(w) >= 0 within 6ms
  suppress for 10ms by k
  emit { k: events.k, n: distinct_count(events.v) }
end
"""
SET = """
rule set
  key by k
  all of (a where v == 1, b where v == 2) within 6ms
  suppress for 4ms
  emit { a: a.id, b: last(b).id }
end
"""


def _errors(text: str) -> list[str]:
    rf, diags = parse_text(text, "r.cep")
    out = [render(d, None) for d in diags]
    for rule in rf.rules:
        out += [render(d, None) for d in check_rule(rule, "r.cep") if d.is_error]
    return out


def test_check_reports_each_mistake_at_its_place() -> None:
    errs = _errors("rule r\n  key by k\n  having count() <= 5 within 10m\n"
                   "  after match skip to next\nend\n")
    assert any(e.startswith("r.cep:3:10: error: rule `r`: this `having` condition never "
                            "fires") for e in errs), errs
    assert any(e.startswith("r.cep:4:3: error: rule `r`: `after match` has no meaning")
               for e in errs), errs
    errs = _errors("rule r\n  having avg(x) > \"a\" and upper(x) > 1 within 0ms\n"
                   "  suppress for 0ms\nend\n")
    assert [e.split(": error: ")[0] for e in errs] == ["r.cep:2:3", "r.cep:2:19",
                                                        "r.cep:2:27", "r.cep:3:3"], errs
    errs = _errors("rule r\n  all of (a where x == 1, b where a.x == 2) within 5m\nend\n")
    assert len(errs) == 1 and errs[0].startswith("r.cep:2:35: error: rule `r`: a member of "
                                                 "`all of` reads the event alone"), errs
    errs = _errors("rule r\n  having count() > 1 within 5m\n  emit { x: nope.x }\nend\n")
    assert errs and "nope" in errs[0]  # the window's events are `events`, nothing else
    assert _errors("rule r\n  suppress for 1h\n  pattern\n    begin a\nend\n")  # order


def test_canonical_text_round_trips_and_ignores_layout() -> None:
    for text in (FAN_OUT, SET):
        rf, diags = parse_text(text)
        assert not diags
        again, _ = parse_text(format_rule(rf.rules[0]))
        assert again.rules[0] == rf.rules[0]
    a, _ = parse_text(SET)
    b, _ = parse_text(SET.replace("all of (", "all   of (\n   ").replace("within 6ms",
                                                                        "within 6ms  # x"))
    assert rule_version(a.rules[0]) == rule_version(b.rules[0])
    c, _ = parse_text(SET.replace("suppress for 4ms", "suppress for 5ms"))
    assert rule_version(c.rules[0]) != rule_version(a.rules[0])


def _events(raw: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [dict(e, ok=True) for e in raw]


@settings(max_examples=60, deadline=None)
@given(streams(40), st.integers(0, 40))
def test_a_checkpoint_taken_anywhere_continues_exactly(raw: list[dict[str, Any]],
                                                       cut: int) -> None:
    """Windows and suppression periods are in the snapshot: restored into a fresh operator
    mid-stream, the run emits exactly what the uninterrupted one does."""
    events = _events(raw)
    rules = [compile_one(FAN_OUT), compile_one(SET)]

    def run(stop: int | None) -> list[dict[str, Any]]:
        rec = Recorder()
        op = CepOperator(rules, rec)
        for seq, ev in enumerate(events, 1):
            if seq - 1 == stop:
                snap = encode(op)
                op = CepOperator(rules, rec)
                decode(snap, op)
            op.on_event(Event(ev["ts"], seq, ev, "input", seq))
        op.finish()
        return [r for _, r in rec.records]

    assert run(cut) == run(None)


def test_stats_and_reload_keep_the_state_of_an_unchanged_version() -> None:
    rules = [compile_one(FAN_OUT)]
    rec = Recorder()
    op = CepOperator(rules, rec)
    evs = [{"ts": t, "k": "x", "v": v, "w": 1, "ok": True}
           for t, v in ((1, 1), (2, 2), (3, 3), (8, 1), (9, 2), (20, 5), (21, 6))]
    for seq, ev in enumerate(evs[:4], 1):
        op.on_event(Event(ev["ts"], seq, ev, "input", seq))
    op.reload([compile_one(FAN_OUT)])  # same text: same version, state kept
    for seq, ev in enumerate(evs[4:], 5):
        op.on_event(Event(ev["ts"], seq, ev, "input", seq))
    op.finish()
    alerts = [r for _, r in rec.records]
    # window 6 ms: crossings at 2 ({1, 2}: emitted, period to 12), 8 (window (2, 8] = ts 3,
    # 8: one value without ts 8, two with it), 9 (ts 8, 9: {1} then {1, 2}) — both suppressed
    # — and 21 (ts 20, 21), emitted with the two suppressed; ts 3 and 20 cross nothing
    assert [a["end"] for a in alerts] == [2, 21]
    assert [a["suppressed"] for a in alerts] == [0, 2]
    st_ = op.stats()["rules"]["fan_out"]
    assert st_["matches"] == 4 and st_["suppressed"] == 2
    assert st_["window_keys"] == 1 and st_["window_events"] == 2
    assert st_["suppression_groups"] == 1


def test_metrics_expose_suppression_and_windows() -> None:
    from cep.app.metrics import (
        EngineCollector,
        ReloadState,
        RunMetrics,
        new_registry,
        operator_snapshot,
        render,
    )

    op = CepOperator([compile_one(FAN_OUT)], Recorder())
    for seq, (t, v) in enumerate(((1, 1), (2, 2), (8, 1), (9, 2)), 1):
        op.on_event(Event(t, seq, {"ts": t, "k": "x", "v": v, "w": 0, "ok": True}, "input",
                          seq))
    snap = operator_snapshot([op], "file", RunMetrics())
    (rule,) = snap.rules
    # crossings at 2 (emitted) and 9 (suppressed); the window holds ts 8 and 9
    assert (rule["suppressed"], rule["window_keys"], rule["window_events"]) == (1, 1, 2)
    text = render(new_registry(EngineCollector(lambda: (snap, ReloadState())))).decode()
    assert 'cep_suppressed_alerts_total{rule="fan_out"} 1.0' in text
    assert 'cep_window_events{rule="fan_out"} 2.0' in text
    assert 'cep_suppression_groups{rule="fan_out"} 1.0' in text


def test_schema_check_reads_the_fields_of_aggregates_and_suppression_groups(tmp_path) -> None:
    from cep.lang.schema import load_schema
    from cep.lang.typecheck import check_schema

    schema_file = tmp_path / "schema.yaml"
    schema_file.write_text("fields:\n  host.name: string\n  user.name: string\n",
                           encoding="utf-8")
    rf, _ = parse_text("rule r\n  key by user.name\n  having count_distinct(host.nmae) >= 2 "
                       "within 1m\n  suppress for 1h by user.nme\nend\n", "r.cep")
    diags = check_schema([rf], load_schema(str(schema_file)))
    assert [(d.span.line, d.span.col) for d in diags] == [(3, 25), (4, 22)], diags
    assert all("unknown field" in d.message for d in diags)


def test_a_version_2_checkpoint_restores_with_empty_windows() -> None:
    import hashlib

    import msgpack

    from cep.checkpoint.snapshot import MAGIC, payload

    rules = [compile_one(FAN_OUT)]
    op = CepOperator(rules, Recorder())
    for seq, (t, v) in enumerate(((1, 1), (2, 2), (3, 3)), 1):
        op.on_event(Event(t, seq, {"ts": t, "k": "x", "v": v, "w": 0, "ok": True}, "input",
                          seq))
    body, framed = payload(encode(op))
    doc = msgpack.unpackb(body, strict_map_key=False)
    assert framed and doc["version"] == 3 and doc["rules"][0]["alerting"]["windows"]
    doc["version"] = 2
    del doc["rules"][0]["alerting"]
    old = msgpack.packb(doc)
    fresh = CepOperator(rules, Recorder())
    decode(MAGIC + hashlib.sha256(old).digest() + old, fresh)
    assert fresh.stats()["rules"]["fan_out"]["window_keys"] == 0
    assert fresh.stats()["rules"]["fan_out"]["matches"] == 1  # the counters are v2's


def test_a_full_window_drops_its_oldest_events_and_says_so() -> None:
    from cep.operator.window import WindowState

    rule = compile_one("rule r\n  key by k\n  having count() >= 3 within 1h\nend\n")
    assert rule.window is not None
    win = WindowState(rule.window, cap=3)
    hits = []
    for seq, t in enumerate((1, 2, 3, 4, 5), 1):
        hit = win.offer("x", Event(t, seq, {"k": "x"}, "input", seq))
        hits.append(None if hit is None else (hit.events, hit.exact, hit.first_ts))
    # the third event crosses; the fourth and fifth push the oldest out (count stays 3)
    assert hits == [None, None, (3, True, 1), None, None]
    assert win.evicted == 2 and not win.windows["x"].exact
    later = win.offer("x", Event(10_000_000, 6, {"k": "x"}, "input", 6))
    assert later is None and win.windows["x"].exact  # emptied by time: exact again
    rule = compile_one("rule r\n  key by k\n  having count_distinct(v) >= 3 within 1h\nend\n")
    assert rule.window is not None
    win = WindowState(rule.window, cap=3)
    got = [win.offer("x", Event(t, t, {"k": "x", "v": v}, "input", t))
           for t, v in enumerate((1, 1, 1, 2, 3), 1)]
    assert got[:4] == [None] * 4 and got[4] is not None
    assert (got[4].exact, got[4].events, got[4].aggregates) == (
        False, 3, {"count_distinct(v)": 3})


def test_trace_tells_window_suppressed_and_matched_events_apart() -> None:
    import io
    import json

    from cep.app.trace import trace_key
    from cep.io.codecs import TimeSpec, decode_lines

    rule = compile_one("rule r\n  key by k\n  having count() >= 2 within 5ms\n"
                       "  suppress for 100ms\nend\n")
    lines = [{"ts": t, "k": "x"} for t in (1, 2, 20, 21, 22)] + [{"ts": 3, "k": "y"}]
    lines.sort(key=lambda e: e["ts"])
    text = io.BytesIO("".join(json.dumps(e) + "\n" for e in lines).encode())
    got = trace_key(rule, {"k": "x"}, decode_lines(text, "json", TimeSpec()))
    # 1: in the window; 2 crosses (alert); 20: the window lost 1 and 2, holds 20 alone;
    # 21 crosses again within 100 ms of the alert: suppressed; 22 stays above
    assert [f.what for f in got.fates] == ["in window", "matched", "in window", "suppressed",
                                           "in window"]
