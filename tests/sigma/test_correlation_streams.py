"""Sigma correlations compiled onto derived streams — aliases that name different fields for
different rules, and chained correlations — against brute-force references written from the
definitions (docs/sigma.md, *Correlation rules*), on generated events (Hypothesis) and on the
mordor capture.

With aliases an event belongs to group ``k`` when some referenced rule matches it and the
fields the group-by names for that rule hold ``k``; threshold types count it once per group
it belongs to, ``temporal`` makes it a member (rule) of the group for each rule that put it
there.  A chained correlation reads the alerts of the inner one as events at their time,
carrying the inner group-by values.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cep.app.rules import load_rule_set
from cep.lang.format import format_rules
from cep.sigma.load import load_sigma
from tests.sigma.conftest import count_parses
from tests.sigma.test_correlation import (
    Data,
    Pred,
    _docs,
    _left_out,
    _run,
    _threshold,
    aggregate_holds,
    crossings,
    temporal_ordered_reference,
)

Keyed = tuple[Pred, Callable[[Data], Any]]
"""A referenced rule in the reference: whether it matches an event, and the event's group
under it (``None``: a group-by field is missing)."""


def alias_crossings(events: list[tuple[int, Data]], rules: dict[str, Keyed],
                    members: dict[str, list[str]],
                    holds: Callable[[dict[str, list[Data]]], bool], within_ms: int
                    ) -> list[tuple[Any, int, dict[str, list[int]]]]:
    """:func:`crossings` with a group per rule: at each event e, for each group k it belongs
    to (some rule matches it with group k), an alert when ``holds`` is true of the group's
    window ending at e and false of that window without e.  A window's member ``m`` holds
    the events that one of ``members[m]`` (rule names) matches with group k."""
    order = sorted(range(len(events)), key=lambda i: (events[i][0], i))
    seen: list[tuple[int, Data]] = []
    out = []

    def groups(d: Data) -> list[Any]:
        ks = []
        for pred, key in rules.values():
            k = key(d)
            if pred(d) and k is not None and k not in ks:
                ks.append(k)
        return ks

    def member(d: Data, m: str, k: Any) -> bool:
        return any(rules[r][0](d) and rules[r][1](d) == k for r in members[m])

    for i in order:
        ts, data = events[i]
        for k in groups(data):
            before = [(t, d) for t, d in seen if k in groups(d) and ts - t < within_ms]
            after = before + [(ts, data)]

            def split(window: list[tuple[int, Data]], k: Any = k) -> dict[str, list[Data]]:
                return {m: [d for _, d in window if member(d, m, k)] for m in members}
            if holds(split(after)) and not holds(split(before)):
                out.append((k, ts, {m: [t for t, d in after if member(d, m, k)]
                                    for m in members}))
        seen.append((ts, data))
    return out


def _derived_events_of(alerts: list[dict[str, Any]], key: str
                       ) -> list[tuple[Any, int, dict[str, list[int]]]]:
    """``(group, alert time, {member: times of its events})`` of alerts whose events are
    derived records (each record's ``end`` is its event's time)."""
    return sorted((r["key"][f"data.{key}"], r["end"],
                   {m: [e["end"] for e in evs] for m, evs in sorted(r["match"].items())})
                  for r in alerts)


@st.composite
def _two_address_stream(draw: st.DrawFn, types: list[str]) -> list[tuple[int, Data]]:
    """Events with a source and a destination address (either may be missing)."""
    addrs = st.sampled_from(["a", "b", "c", None])
    steps = draw(st.lists(st.tuples(st.sampled_from([0, 500, 1000, 1700]), addrs, addrs,
                                    st.sampled_from(types), st.integers(-2, 9),
                                    st.sampled_from(["u1", "u2", 3])),
                          min_size=1, max_size=24))
    ts = 0
    out = []
    for gap, src, dst, kind, value, target in steps:
        ts += gap
        data: Data = {"Type": kind, "ts": ts, "Bytes": value, "Target": target}
        if src is not None:
            data["Src"] = src
        if dst is not None:
            data["Dst"] = dst
        out.append((ts, data))
    return out


_OUT = "outbound"
_IN = "inbound"
_ALIASED: dict[str, Keyed] = {
    _OUT: (lambda d: d["Type"] in ("out", "both"), lambda d: d.get("Src")),
    _IN: (lambda d: d["Type"] in ("in", "both"), lambda d: d.get("Dst")),
}
_ALIASES = {"ip": {_OUT: "Src", _IN: "Dst"}}
_DETECTIONS = {_OUT: {"Type": ["out", "both"]}, _IN: {"Type": ["in", "both"]}}


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_two_address_stream(["out", "in", "both", "other"]), _threshold(),
       st.sampled_from([1, 2, 4]))
def test_threshold_with_aliases_agrees_with_reference(
        events: list[tuple[int, Data]], threshold: tuple[str, list[tuple[str, float]]],
        span_s: int) -> None:
    """An address counted as the source of one rule's events and the destination of the
    other's; an event of both rules whose two addresses are equal counts once."""
    kind, criteria = threshold
    field = "Target" if kind == "value_count" else "Bytes"
    cond: dict[str, Any] = dict(criteria)
    if kind != "event_count":
        cond["field"] = field
    text = _docs(_DETECTIONS, {"type": kind, "rules": [_OUT, _IN], "group-by": ["ip"],
                               "timespan": f"{span_s}s", "condition": cond,
                               "aliases": _ALIASES})
    want = alias_crossings(events, _ALIASED, {"events": [_OUT, _IN]},
                           aggregate_holds(kind, field, criteria), span_s * 1000)
    got = _run(text, events, ("correlated__outbound", "correlated__inbound", "correlated"))
    event(f"{kind}: {'no alert' if not want else 'alerts'}")
    assert _derived_events_of(got, "ip") == sorted(want)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_two_address_stream(["out", "in", "both", "other"]), st.sampled_from([1, 2, 3]))
def test_temporal_with_aliases_agrees_with_reference(events: list[tuple[int, Data]],
                                                     span_s: int) -> None:
    """The specification's example: an address as the destination of one rule's events and
    the source of the other's within the span.  (An event of both rules with equal
    addresses is left out of the generated data: it is one event in both members of one
    group, where the derived form has one record per rule, in the order the operator
    dispatches them.)"""
    events = [(ts, d) for ts, d in events
              if not (d["Type"] == "both" and d.get("Src") == d.get("Dst"))]
    text = _docs(_DETECTIONS, {"type": "temporal", "rules": [_OUT, _IN], "group-by": ["ip"],
                               "timespan": f"{span_s}s", "aliases": _ALIASES})
    want = alias_crossings(events, _ALIASED, {_OUT: [_OUT], _IN: [_IN]},
                           lambda g: all(g.values()), span_s * 1000)
    got = _run(text, events, ("correlated__outbound", "correlated__inbound", "correlated"))
    event("no alert" if not want else "alerts")
    assert _derived_events_of(got, "ip") == sorted(want)


def _chain_docs(span_inner: str, threshold: int, span_outer: str) -> str:
    """The specification's example: many failed logins (event_count by User), then a
    successful login of that user (temporal_ordered by User)."""
    inner = {"title": "many failed", "name": "many_failed",
             "id": "00000000-0000-4000-8000-0000000000aa",
             "correlation": {"type": "event_count", "rules": ["failed"], "group-by": ["User"],
                             "timespan": span_inner, "condition": {"gte": threshold}}}
    return _docs({"failed": {"Type": "fail"}, "success": {"Type": "ok"}},
                 {"type": "temporal_ordered", "rules": ["many_failed", "success"],
                  "group-by": ["User"], "timespan": span_outer}, [inner])


_CHAIN_RULES = ("many_failed", "correlated__many_failed", "correlated__success", "correlated")


def chain_reference(events: list[tuple[int, Data]], key: str, threshold: int, inner_ms: int,
                    outer_ms: int, failed: Pred, success: Pred) -> list[tuple[Any, int, int]]:
    """The inner correlation's alerts (its reference) as events at their time, then the
    ordered pairs of :func:`temporal_ordered_reference` over them and the successes."""
    inner = crossings(events, lambda d: d.get(key), {"events": failed},
                      aggregate_holds("event_count", "", [("gte", threshold)]), inner_ms)
    merged = sorted([(ts, {key: k, "Type": "A"}) for k, ts, _ in inner]
                    + [(ts, {key: d.get(key), "Type": "B"}) for ts, d in events
                       if success(d) and d.get(key) is not None],
                    key=lambda e: e[0])
    return sorted(temporal_ordered_reference(merged, key, outer_ms))


def _chain_alerts(alerts: list[dict[str, Any]], key: str) -> list[tuple[Any, int, int]]:
    return sorted((r["key"][f"data.{key}"], r["match"]["many_failed"][0]["end"],
                   r["match"]["success"][0]["end"]) for r in alerts)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(1, 1500), st.sampled_from(["a", "b", None]),
                          st.sampled_from(["fail", "fail", "ok", "other"])),
                min_size=1, max_size=30),
       st.sampled_from([1, 2, 3]), st.sampled_from([2, 4]), st.sampled_from([2, 5]))
def test_chained_correlation_agrees_with_reference(steps: list[tuple[int, str | None, str]],
                                                   threshold: int, inner_s: int,
                                                   outer_s: int) -> None:
    ts = 0
    events: list[tuple[int, Data]] = []
    for gap, user, kind in steps:
        ts += gap  # (distinct times: which came first is the order of time)
        data: Data = {"Type": kind, "ts": ts}
        if user is not None:
            data["User"] = user
        events.append((ts, data))
    want = chain_reference(events, "User", threshold, inner_s * 1000, outer_s * 1000,
                           lambda d: d["Type"] == "fail", lambda d: d["Type"] == "ok")
    got = _run(_chain_docs(f"{inner_s}s", threshold, f"{outer_s}s"), events, _CHAIN_RULES)
    event("no alert" if not want else "alerts")
    assert _chain_alerts(got, "User") == want


def test_chained_alert_carries_both_correlations_and_the_events() -> None:
    events = [(t, {"User": "u", "Type": "fail", "ts": t}) for t in (0, 10, 20)]
    events.append((30, {"User": "u", "Type": "ok", "ts": 30}))
    [alert] = _run(_chain_docs("1m", 3, "1m"), events, _CHAIN_RULES)
    assert alert["rule"] == "correlated" and alert["severity"] == "high"
    assert alert["data"]["title"] == "correlated" and alert["data"]["author"] == "test"
    [fed] = alert["match"]["many_failed"]  # (the feeder's record of the inner alert)
    assert fed["rule"] == "correlated__many_failed" and fed["data"]["User"] == "u"
    [inner] = fed["match"]["event"]
    assert inner["rule"] == "many_failed" and inner["data"]["title"] == "many failed"
    assert inner["data"]["count"] == 3
    assert inner["data"]["User"] == "u"
    assert [e["ts"] for e in inner["match"]["events"]] == [0, 10, 20]
    [ok] = alert["match"]["success"]
    assert ok["data"]["sigma_rule"] == "success" and ok["match"]["event"] == [events[3][1]]


def test_inner_correlation_alerts_on_its_own_with_generate() -> None:
    """``generate: true`` on the outer correlation keeps the inner one's own alerts (and the
    successful logons'), the inner one's failed logons stay quiet."""
    inner = {"title": "many failed", "name": "many_failed",
             "correlation": {"type": "event_count", "rules": ["failed"], "group-by": ["User"],
                             "timespan": "1m", "condition": {"gte": 2}}}
    text = _docs({"failed": {"Type": "fail"}, "success": {"Type": "ok"}},
                 {"type": "temporal_ordered", "rules": ["many_failed", "success"],
                  "group-by": ["User"], "timespan": "1m", "generate": True}, [inner])
    events = [(0, {"User": "u", "Type": "fail"}), (1, {"User": "u", "Type": "fail"}),
              (2, {"User": "u", "Type": "ok"})]
    got = _run(text, events, ("success", "many_failed", "many_failed__chained",
                              "correlated__many_failed", "correlated__success", "correlated"))
    assert sorted(r["rule"] for r in got) == ["correlated", "many_failed", "success"]


def test_chains_and_aliases_convert_to_cep_text_that_loads_back(tmp_path: Path) -> None:
    """``cep sigma convert`` text of a chain and of aliases gives the same rule versions."""
    aliased = _docs(_DETECTIONS, {"type": "value_count", "rules": [_OUT, _IN],
                                  "group-by": ["ip", "Port"], "timespan": "1m",
                                  "condition": {"gte": 2, "field": "Target"},
                                  "aliases": _ALIASES})
    for i, text in enumerate((aliased, _chain_docs("1m", 3, "10m"))):
        yml = tmp_path / f"s{i}.yml"
        yml.write_text(text, encoding="utf-8")
        loaded = load_sigma([yml])
        assert not [d for d in loaded.diagnostics if d.severity == "error"]
        cep = tmp_path / f"s{i}.cep"
        cep.write_text(format_rules(loaded.files[0].rules), encoding="utf-8")
        from_sigma, from_text = load_rule_set([str(yml)]), load_rule_set([str(cep)])
        assert from_text.ok and from_sigma.ok, from_text.diagnostics
        assert [(r.name, r.version) for r in from_sigma.rules] == \
            [(r.name, r.version) for r in from_text.rules]
        assert any(r.stream for r in from_text.rules)


def test_chain_reasons_left_out() -> None:
    """An outer group-by field the inner correlation's alerts do not carry, and a value
    field they do not carry, are left out with the reason."""
    inner = {"title": "inner", "name": "inner",
             "correlation": {"type": "event_count", "rules": ["a"], "group-by": ["Host"],
                             "timespan": "1m", "condition": {"gte": 2}}}
    two = {"a": {"Type": "A"}, "b": {"Type": "B"}}
    assert "'User' is not among the group-by fields of the correlation 'inner' (Host)" in \
        _left_out(_docs(two, {"type": "temporal", "rules": ["inner", "b"],
                              "group-by": ["User"], "timespan": "1m"}, [inner]))
    assert "field 'Bytes' is not among the group-by fields of the correlation 'inner'" in \
        _left_out(_docs(two, {"type": "value_sum", "rules": ["inner", "b"],
                              "group-by": ["Host"], "timespan": "1m",
                              "condition": {"gte": 2, "field": "Bytes"}}, [inner]))


# ---------------------------------------------------------------- the mordor capture

# (``mordor``: the capture's events in event-time order, a fixture of conftest.py)


@pytest.mark.shared
def test_chain_on_real_telemetry(mordor: list[tuple[int, Data]]) -> None:
    """The specification's example on the capture: failed logons (4625) of one account
    (one suffices: the capture's spray tries each account once), then a successful logon
    (4624) of it within 10 minutes — pgustavo, 104 ms after the spray tried it."""
    inner = {"title": "many failed", "name": "many_failed",
             "correlation": {"type": "event_count", "rules": ["failed"],
                             "group-by": ["TargetUserName"], "timespan": "1m",
                             "condition": {"gte": 1}}}
    text = _docs({"failed": {"EventID": 4625}, "success": {"EventID": 4624}},
                 {"type": "temporal_ordered", "rules": ["many_failed", "success"],
                  "group-by": ["TargetUserName"], "timespan": "10m"}, [inner])
    want = chain_reference(mordor, "TargetUserName", 1, 60_000, 600_000,
                           lambda d: d.get("EventID") == 4625,
                           lambda d: d.get("EventID") == 4624)
    got = _run(text, mordor, _CHAIN_RULES)
    assert want == [("pgustavo", 1603355395211, 1603355395315)]
    assert _chain_alerts(got, "TargetUserName") == want


@pytest.mark.shared
def test_aliases_on_real_telemetry(mordor: list[tuple[int, Data]]) -> None:
    """A local address as Sysmon's network connection (3) names it, ``SourceIp``, and as
    the Windows Filtering Platform's permitted connection (5156) does, ``SourceAddress``,
    both within 10 s: one alias over two fields (11 alerts)."""
    rules: dict[str, Keyed] = {
        "conn": (lambda d: d.get("EventID") == 3, lambda d: d.get("SourceIp")),
        "wfp": (lambda d: d.get("EventID") == 5156, lambda d: d.get("SourceAddress")),
    }
    text = _docs({"conn": {"EventID": 3}, "wfp": {"EventID": 5156}},
                 {"type": "temporal", "rules": ["conn", "wfp"], "group-by": ["local_ip"],
                  "timespan": "10s", "aliases": {"local_ip": {"conn": "SourceIp",
                                                              "wfp": "SourceAddress"}}})
    want = alias_crossings(mordor, rules, {"conn": ["conn"], "wfp": ["wfp"]},
                           lambda g: all(g.values()), 10_000)
    got = _run(text, mordor, ("correlated__conn", "correlated__wfp", "correlated"))
    assert len(want) == 11
    assert _derived_events_of(got, "local_ip") == sorted(want)


def test_a_chain_file_is_compiled_once(tmp_path: Path, cache_home: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The compiled-file cache keeps a file of chains and aliases too: the feeders' names are
    made from the correlation's own name."""
    parsed = count_parses(monkeypatch)
    (tmp_path / "chain.yml").write_text(_chain_docs("1m", 3, "10m"), encoding="utf-8")
    first = load_sigma([tmp_path / "chain.yml"])
    second = load_sigma([tmp_path / "chain.yml"])
    assert parsed == ["chain.yml"] and second.files == first.files
    assert [r.name for r in second.files[0].rules] == list(_CHAIN_RULES)
