"""Sigma correlation rules (``event_count``, ``temporal_ordered``) against a brute-force
reference of their semantics (docs/sigma.md), on generated and real events."""

from __future__ import annotations

import gzip
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cep.app.rules import load_rule_set
from cep.event import Event
from cep.operator.cep_operator import CepOperator

MORDOR = (Path(__file__).resolve().parents[3] / "shared" / "data" / "windows-security-mordor"
          / "purplesharp_ad_playbook_I_2020-10-22042947.json.gz")


def _docs(detections: dict[str, dict[str, Any]], correlation: dict[str, Any]) -> str:
    docs = [{"title": name, "name": name, "id": f"00000000-0000-4000-8000-00000000000{i}",
             "logsource": {"product": "test"},
             "detection": {"sel": sel, "condition": "sel"}}
            for i, (name, sel) in enumerate(detections.items())]
    docs.append({"title": "correlated", "name": "correlated", "author": "test",
                 "correlation": correlation})
    return yaml.safe_dump_all(docs)


def _run(text: str, events: list[tuple[int, dict[str, Any]]]) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "corr.yml"
        path.write_text(text, encoding="utf-8")
        rs = load_rule_set([str(path)])
    assert rs.ok and [r.name for r in rs.rules] == ["correlated"], rs.diagnostics
    out: list[dict[str, Any]] = []
    op = CepOperator(rs.rules, lambda s, rec: out.append(rec))
    for seq, (ts, data) in enumerate(events):
        op.on_event(Event(ts, seq, data))
    op.finish()
    return out


def event_count_reference(events: list[tuple[int, dict[str, Any]]], hit: Any, key: str,
                          n: int, within_ms: int) -> list[tuple[Any, list[int]]]:
    """Per key, in time order: the hits since the last alert whose time is within the span
    of the newest one; an alert (key, their times) when there are ``n``; then start again."""
    window: dict[Any, list[int]] = {}
    out = []
    for ts, data in sorted(events, key=lambda e: e[0]):  # (sorted is stable: arrival order)
        if not hit(data):
            continue
        k = data.get(key)
        w = [t for t in window.get(k, []) if ts - t < within_ms] + [ts]
        if len(w) >= n:
            out.append((k, w))
            w = []
        window[k] = w
    return out


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 4000), st.sampled_from(["a", "b"]), st.booleans()),
                min_size=1, max_size=25),
       st.integers(1, 4), st.sampled_from([1, 3, 5]), st.sampled_from(["gte", "gt"]))
def test_event_count_agrees_with_reference(steps: list[tuple[int, str, bool]], count: int,
                                           span_s: int, op: str) -> None:
    ts = 0
    events = []
    for gap, user, is_hit in steps:
        ts += gap
        events.append((ts, {"User": user, "Type": "hit" if is_hit else "other"}))
    n = count if op == "gte" else count + 1
    text = _docs({"hit": {"Type": "hit"}},
                 {"type": "event_count", "rules": ["hit"], "group-by": ["User"],
                  "timespan": f"{span_s}s", "condition": {op: count}})
    got = [(r["key"]["User"], [e["ts"] for e in r["match"]["first"] + r["match"].get("more", [])])
           for r in _run(text, [(t, {**d, "ts": t}) for t, d in events])]
    want = event_count_reference([(t, {**d, "ts": t}) for t, d in events],
                                 lambda d: d["Type"] == "hit", "User", n, span_s * 1000)
    assert sorted(got) == sorted(want)


def temporal_ordered_reference(events: list[tuple[int, dict[str, Any]]], key: str,
                               within_ms: int) -> list[tuple[Any, int, int]]:
    """Per key: an ``A`` then a ``B`` less than the span after it; the alert pairs the
    earliest ``A`` still within the span with the ``B``, and every ``A`` before it is spent."""
    pending: dict[Any, list[int]] = {}
    out = []
    for ts, data in sorted(events, key=lambda e: e[0]):
        k = data.get(key)
        if data["Type"] == "A":
            pending.setdefault(k, []).append(ts)
        elif data["Type"] == "B":
            live = [a for a in pending.get(k, []) if ts - a < within_ms]
            if live:
                out.append((k, live[0], ts))
                pending[k] = []
    return out


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(1, 3000), st.sampled_from(["a", "b"]),
                          st.sampled_from(["A", "B", "C"])), min_size=1, max_size=20),
       st.sampled_from([1, 2, 5]))
def test_temporal_ordered_agrees_with_reference(steps: list[tuple[int, str, str]],
                                                span_s: int) -> None:
    ts = 0
    events = []
    for gap, user, kind in steps:
        ts += gap  # distinct times: the order of A and B is the order of time
        events.append((ts, {"User": user, "Type": kind, "ts": ts}))
    text = _docs({"first_a": {"Type": "A"}, "then_b": {"Type": "B"}},
                 {"type": "temporal_ordered", "rules": ["first_a", "then_b"],
                  "group-by": ["User"], "timespan": f"{span_s}s"})
    got = [(r["key"]["User"], r["match"]["rule1"][0]["ts"], r["match"]["rule2"][0]["ts"])
           for r in _run(text, events)]
    assert sorted(got) == sorted(temporal_ordered_reference(events, "User", span_s * 1000))


def _mordor_ts(d: dict[str, Any]) -> int:
    return int(datetime.fromisoformat(d["@timestamp"].replace("Z", "+00:00")).timestamp() * 1000)


@pytest.mark.shared
def test_password_spray_on_real_telemetry() -> None:
    """Failed logons (4625) per host, at least 5 within a minute: the mordor capture's
    password spray (7 failures on WORKSTATION5 within 12 ms) alerts once, as the reference."""
    with gzip.open(MORDOR) as fh:
        datas = [orjson.loads(line) for line in fh]
    events = sorted(((_mordor_ts(d), d) for d in datas), key=lambda e: e[0])
    text = _docs({"failed_logon": {"EventID": 4625}},
                 {"type": "event_count", "rules": ["failed_logon"], "group-by": ["Hostname"],
                  "timespan": "1m", "condition": {"gte": 5}})
    got = [(r["key"]["Hostname"], r["data"]["count"], r["data"]["author"])
           for r in _run(text, events)]
    want = event_count_reference(events, lambda d: d.get("EventID") == 4625, "Hostname", 5,
                                 60_000)
    assert [(k, len(w)) for k, w in want] == [(k, c) for k, c, _ in got]
    assert got and got[0][0].upper().startswith("WORKSTATION5") and got[0][2] == "test"
