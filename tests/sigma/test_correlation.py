"""Sigma correlation rules against brute-force references of their semantics (docs/sigma.md,
*Correlation rules*), on generated events (Hypothesis) and on real data (the mordor capture,
the creditcard-ulb transactions).

The references are written from the definitions, not from the engine: for ``event_count``,
``value_count``, ``value_sum``, ``value_avg`` and ``temporal`` an alert fires at an event e
of the referenced rules when the condition holds over the window ending at e (the group's
events x up to e, in event-time then arrival order, with ``e.ts - x.ts < timespan``) and does
not hold over that window without e; each aggregate is computed from the window's list of
events, with exact fractions; an event without a group-by field is in no group.
``temporal_ordered`` pairs the earliest pending first event with the completing second one
and starts again after it.
"""

from __future__ import annotations

import gzip
import subprocess
import sys
import tempfile
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cep.app.rules import load_rule_set
from cep.event import Event
from cep.lang.format import format_rules
from cep.operator.cep_operator import CepOperator
from cep.sigma.load import load_sigma

Data = dict[str, Any]
Pred = Callable[[Data], bool]


def _docs(detections: dict[str, dict[str, Any]], correlation: dict[str, Any],
          extra: list[dict[str, Any]] | None = None) -> str:
    docs: list[dict[str, Any]] = [
        {"title": name, "name": name, "id": f"00000000-0000-4000-8000-00000000000{i}",
         "logsource": {"product": "test"},
         "detection": {"sel": sel, "condition": "sel"}}
        for i, (name, sel) in enumerate(detections.items())]
    docs.append({"title": "correlated", "name": "correlated", "author": "test",
                 "id": "00000000-0000-4000-8000-0000000000ff", "level": "high",
                 "tags": ["attack.t1110"], "references": ["https://example.org/r"],
                 "correlation": correlation})
    return yaml.safe_dump_all(docs + (extra or []))


def _run(text: str, events: list[tuple[int, Data]], rules: tuple[str, ...] = ("correlated",),
         out_of_order_ms: int = 0) -> list[dict[str, Any]]:
    """The alerts of the Sigma file ``text`` over ``events`` in the order given (arrival),
    with ``out_of_order_ms`` as the input's ``max_out_of_orderness``; no event may be late."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "corr.yml"
        path.write_text(text, encoding="utf-8")
        rs = load_rule_set([str(path)])
    assert rs.ok and [r.name for r in rs.rules] == list(rules), rs.diagnostics
    out: list[dict[str, Any]] = []
    op = CepOperator(rs.rules, lambda s, rec: out.append(rec), {"in": out_of_order_ms})
    for seq, (ts, data) in enumerate(events):
        op.on_event(Event(ts, seq, data), "in")
    op.finish()
    assert op.late == 0
    return out


def _left_out(text: str) -> str:
    """The warning of the one correlation rule that is left out."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "corr.yml"
        path.write_text(text, encoding="utf-8")
        loaded = load_sigma([path])
    warnings = [x.message for x in loaded.diagnostics if "correlated" in x.message]
    assert len(warnings) == 1 and not any(x.severity == "error" for x in loaded.diagnostics)
    return warnings[0]


# ---------------------------------------------------------------- the brute-force reference

def crossings(events: list[tuple[int, Data]], key: Callable[[Data], Any],
              members: dict[str, Pred], holds: Callable[[dict[str, list[Data]]], bool],
              within_ms: int) -> list[tuple[Any, int, dict[str, list[int]]]]:
    """Every event e some member accepts, in (time, arrival) order, at which ``holds`` is
    true of the window ending at e and false of that window without e: ``(key, e's time,
    {member: times of its events in the window})``.  An event whose key is None (a group-by
    field missing) belongs to no group."""
    order = sorted(range(len(events)), key=lambda i: (events[i][0], i))
    seen: list[tuple[int, Data]] = []
    out = []
    for i in order:
        ts, data = events[i]
        k = key(data)
        if k is None or not any(p(data) for p in members.values()):
            continue
        before = [(t, d) for t, d in seen if key(d) == k and ts - t < within_ms]
        seen.append((ts, data))
        after = before + [(ts, data)]

        def split(window: list[tuple[int, Data]]) -> dict[str, list[Data]]:
            return {m: [d for _, d in window if p(d)] for m, p in members.items()}
        if holds(split(after)) and not holds(split(before)):
            out.append((k, ts, {m: [t for t, d in after if p(d)] for m, p in members.items()}))
    return out


_CMP: dict[str, Callable[[Any, Any], bool]] = {
    "gte": lambda a, b: a >= b, "gt": lambda a, b: a > b, "lte": lambda a, b: a <= b,
    "lt": lambda a, b: a < b, "eq": lambda a, b: a == b}


def _numbers(datas: list[Data], field: str) -> list[Fraction]:
    return [Fraction(d[field]) for d in datas
            if type(d.get(field)) in (int, float)]


def aggregate_holds(kind: str, field: str, criteria: list[tuple[str, float]]
                    ) -> Callable[[dict[str, list[Data]]], bool]:
    """The condition of a threshold correlation over the window's events: every criterion
    ``(op, threshold)`` holds of the aggregate."""
    def value(datas: list[Data]) -> Fraction | int | None:
        if kind == "event_count":
            return len(datas)
        if kind == "value_count":
            return len({d[field] for d in datas if d.get(field) is not None})
        nums = _numbers(datas, field)
        if kind == "value_sum":
            return sum(nums, Fraction(0))
        return sum(nums, Fraction(0)) / len(nums) if nums else None

    def holds(groups: dict[str, list[Data]]) -> bool:
        v = value(groups["events"])
        return v is not None and all(_CMP[op](v, Fraction(th)) for op, th in criteria)
    return holds


def _events_of(alerts: list[dict[str, Any]], key: str
               ) -> list[tuple[Any, int, dict[str, list[int]]]]:
    return sorted((r["key"][key], r["end"],
                   {m: [e["ts"] for e in evs] for m, evs in sorted(r["match"].items())})
                  for r in alerts)


# ---------------------------------------------------------------- generated events

_VALUES = st.one_of(st.none(), st.integers(-3, 12), st.sampled_from([0.5, 2.25, -1.5]),
                    st.sampled_from(["7", "x", True]))


@st.composite
def _stream(draw: st.DrawFn, types: list[str]) -> list[tuple[int, Data]]:
    gaps = st.one_of(st.sampled_from([0, 500, 1000]), st.integers(0, 1500))  # (edges often)
    steps = draw(st.lists(st.tuples(gaps, st.sampled_from(["a", "b", None]),
                                    st.sampled_from(types), _VALUES,
                                    st.sampled_from(["u1", "u2", "u3", 4, None])),
                          min_size=1, max_size=24))
    ts = 0
    out = []
    for gap, user, kind, value, target in steps:
        ts += gap
        data: Data = {"Type": kind, "ts": ts, "Target": target}
        if user is not None:  # (no user: the event belongs to no group)
            data["User"] = user
        if value is not None:
            data["Bytes"] = value
        out.append((ts, data))
    return out


_THRESHOLD = {
    "event_count": (["gte", "gt"], st.integers(1, 5)),
    "value_count": (["gte", "gt"], st.integers(1, 4)),
    "value_sum": (["gte", "gt"], st.sampled_from([0.5, 3, 7.5, 15, 30])),
    "value_avg": (["gte", "gt", "lte", "lt", "eq"], st.sampled_from([-1, 0, 1, 2.25, 4, 7])),
}


@st.composite
def _threshold(draw: st.DrawFn) -> tuple[str, list[tuple[str, float]]]:
    """A type and one criterion, or two (a range, as the specification allows)."""
    kind = draw(st.sampled_from(sorted(_THRESHOLD)))
    ops, values = _THRESHOLD[kind]
    chosen = draw(st.lists(st.sampled_from(ops), min_size=1, max_size=2, unique=True))
    return kind, [(op, draw(values)) for op in chosen]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_stream(["hit", "hit2", "other"]), _threshold(), st.sampled_from([1, 2, 4]),
       st.booleans())
def test_threshold_correlations_agree_with_reference(
        events: list[tuple[int, Data]], threshold: tuple[str, list[tuple[str, float]]],
        span_s: int, two_rules: bool) -> None:
    kind, criteria = threshold
    field = "Target" if kind == "value_count" else "Bytes"
    detections = {"hit": {"Type": "hit"}}
    if two_rules:
        detections["hit2"] = {"Type": "hit2"}
    cond: dict[str, Any] = dict(criteria)
    if kind != "event_count":
        cond["field"] = field
    text = _docs(detections, {"type": kind, "rules": sorted(detections), "group-by": ["User"],
                              "timespan": f"{span_s}s", "condition": cond})
    accepted = {"hit", "hit2"} if two_rules else {"hit"}
    want = crossings(events, lambda d: d.get("User"),
                     {"events": lambda d: d["Type"] in accepted},
                     aggregate_holds(kind, field, criteria), span_s * 1000)
    event(f"{kind}: {'no alert' if not want else 'alerts'}")
    assert _events_of(_run(text, events), "User") == sorted(want)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_stream(["A", "B", "AB", "C", "other"]), st.sampled_from([1, 2, 3]), st.booleans())
def test_temporal_agrees_with_reference(events: list[tuple[int, Data]], span_s: int,
                                        three: bool) -> None:
    detections: dict[str, dict[str, Any]] = {"rule_a": {"Type": ["A", "AB"]},
                                             "rule_b": {"Type": ["B", "AB"]}}
    members: dict[str, Pred] = {"rule_a": lambda d: d["Type"] in ("A", "AB"),
                                "rule_b": lambda d: d["Type"] in ("B", "AB")}
    if three:
        detections["rule_c"] = {"Type": "C"}
        members["rule_c"] = lambda d: d["Type"] == "C"
    text = _docs(detections, {"type": "temporal", "rules": list(detections),
                              "group-by": ["User"], "timespan": f"{span_s}s"})
    want = crossings(events, lambda d: d.get("User"), members,
                     lambda g: all(g.values()), span_s * 1000)
    event("no alert" if not want else "alerts")
    assert _events_of(_run(text, events), "User") == sorted(want)


def _all_members(groups: dict[str, list[Data]]) -> bool:
    return all(groups.values())


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_stream(["hit", "A", "B", "other"]), st.lists(st.integers(0, 800), min_size=24,
                                                     max_size=24), st.booleans())
def test_out_of_order_arrival_is_matched_in_event_time(
        events: list[tuple[int, Data]], delays: list[int], temporal: bool) -> None:
    """Events arriving up to 800 ms late (``max_out_of_orderness`` 1 s) give the alerts of
    the reference over their event times (ties in arrival order)."""
    arrival = [e for _, e in sorted(((ts + d, i), (ts, data)) for (i, (ts, data)), d
                                    in zip(enumerate(events), delays, strict=False))]
    if temporal:
        members: dict[str, Pred] = {"a": lambda d: d["Type"] == "A",
                                    "b": lambda d: d["Type"] == "B"}
        text = _docs({"a": {"Type": "A"}, "b": {"Type": "B"}},
                     {"type": "temporal", "rules": ["a", "b"], "group-by": ["User"],
                      "timespan": "2s"})
        holds: Callable[[dict[str, list[Data]]], bool] = _all_members
    else:
        members = {"events": lambda d: d["Type"] == "hit"}
        text = _docs({"hit": {"Type": "hit"}},
                     {"type": "value_count", "rules": ["hit"], "group-by": ["User"],
                      "timespan": "2s", "condition": {"gte": 2, "field": "Target"}})
        holds = aggregate_holds("value_count", "Target", [("gte", 2)])
    want = crossings(arrival, lambda d: d.get("User"), members, holds, 2000)
    assert _events_of(_run(text, arrival, out_of_order_ms=1000), "User") == sorted(want)


def temporal_ordered_reference(events: list[tuple[int, Data]], key: str, within_ms: int,
                               first: Pred = lambda d: d["Type"] == "A",
                               then: Pred = lambda d: d["Type"] == "B"
                               ) -> list[tuple[Any, int, int]]:
    """Per key: an ``A`` (``first``) then a ``B`` (``then``) less than the span after it; the
    alert pairs the earliest ``A`` still within the span with the ``B``, and every ``A``
    before it is spent."""
    pending: dict[Any, list[int]] = {}
    out = []
    for ts, data in sorted(events, key=lambda e: e[0]):
        k = data.get(key)
        if first(data):
            pending.setdefault(k, []).append(ts)
        elif then(data):
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
    got = [(r["key"]["User"], r["match"]["first_a"][0]["ts"], r["match"]["then_b"][0]["ts"])
           for r in _run(text, events)]
    assert sorted(got) == sorted(temporal_ordered_reference(events, "User", span_s * 1000))


# ---------------------------------------------------------------- alerts, generate, refusals

def test_alert_carries_the_correlation_rules_metadata_and_events() -> None:
    text = _docs({"hit": {"Type": "hit"}},
                 {"type": "value_count", "rules": ["hit"], "group-by": ["User"],
                  "timespan": "10s", "condition": {"gte": 2, "field": "Target"}})
    events = [(1000, {"User": "a", "Type": "hit", "Target": "x"}),
              (2000, {"User": "a", "Type": "hit", "Target": "x"}),
              (3000, {"User": "a", "Type": "hit", "Target": "y"})]
    [alert] = _run(text, events)
    assert alert["severity"] == "high" and alert["key"] == {"User": "a"}
    assert {k: alert["data"][k] for k in ("sigma_id", "title", "level", "author", "tags",
                                          "references")} == {
        "sigma_id": "00000000-0000-4000-8000-0000000000ff", "title": "correlated",
        "level": "high", "author": "test", "tags": ["attack.t1110"],
        "references": ["https://example.org/r"]}
    assert [e["Target"] for e in alert["match"]["events"]] == ["x", "x", "y"]
    assert alert["aggregates"] == {"count_distinct(Target)": 2}


def test_generate_true_keeps_the_referenced_rules_alerts() -> None:
    corr = {"type": "event_count", "rules": ["hit"], "group-by": ["User"], "timespan": "10s",
            "condition": {"gte": 2}}
    events = [(1000, {"User": "a", "Type": "hit"}), (2000, {"User": "a", "Type": "hit"})]
    quiet = _run(_docs({"hit": {"Type": "hit"}}, corr), events)
    loud = _run(_docs({"hit": {"Type": "hit"}}, {**corr, "generate": True}), events,
                ("hit", "correlated"))
    assert [r["rule"] for r in quiet] == ["correlated"]
    assert sorted(r["rule"] for r in loud) == ["correlated", "hit", "hit"]


@pytest.mark.parametrize(("kind", "cond", "reason"), [
    ("event_count", {"lt": 5}, "event_count with `lt: 5`: an event count stays below a bound"),
    ("event_count", {"lte": 5}, "known at the window's end"),
    ("event_count", {"eq": 5}, "an event count stays at a bound"),
    ("value_count", {"lte": 5, "field": "T"}, "a count of distinct values stays below"),
    ("value_sum", {"lt": 5, "field": "T"}, "a sum stays below"),
    ("value_avg", {"neq": 5, "field": "T"}, "value_avg with `neq: 5`"),
    ("event_count", {"neq": 5}, "compare with >=, >, <=, < and =="),
    ("value_percentile", {"gte": 5, "field": "T", "percentile": 90}, "not percentiles"),
    ("event_count", {"gt": 100, "lte": 200}, "event_count with `lte: 200`"),
    ("event_count", {"gte": 0}, "holds for a window without events"),
    ("value_sum", {"gte": -2, "field": "T"}, "a sum of 0), so no event can make it hold"),
    ("value_sum", {"gte": 1, "lt": 9, "field": "T"}, "value_sum with `lt: 9`"),
])
def test_conditions_without_an_exact_form_are_left_out(kind: str, cond: dict[str, Any],
                                                       reason: str) -> None:
    text = _docs({"hit": {"Type": "hit"}}, {"type": kind, "rules": ["hit"],
                                             "group-by": ["User"], "timespan": "1m",
                                             "condition": cond})
    assert reason in _left_out(text)


def test_partial_temporal_and_aliases_without_a_field_are_left_out() -> None:
    two = {"a": {"Type": "A"}, "b": {"Type": "B"}}
    base = {"type": "temporal", "rules": ["a", "b"], "group-by": ["User"], "timespan": "1m"}
    assert "only the condition that all 2 rules occur" in _left_out(
        _docs(two, {**base, "condition": {"gte": 1}}))
    assert "only a conjunction of every referenced rule" in _left_out(
        _docs(two, {**base, "condition": "a or b"}))
    assert "alias 'user' names no field for rule 'b'" in _left_out(
        _docs(two, {**base, "group-by": ["user"], "aliases": {"user": {"a": "User"}}}))
    assert "only the condition that all 2 rules occur" in _left_out(
        _docs(two, {**base, "condition": {"gte": 1, "lte": 2}}))


def test_a_missing_reference_leaves_out_only_its_correlation(tmp_path: Path) -> None:
    yml = tmp_path / "two.yml"
    yml.write_text(_docs({"hit": {"Type": "hit"}},
                         {"type": "event_count", "rules": ["hit"], "group-by": ["User"],
                          "timespan": "1m", "condition": {"gte": 2}},
                         [{"title": "dangling", "name": "dangling",
                           "correlation": {"type": "event_count", "rules": ["nope"],
                                           "timespan": "1m", "condition": {"gte": 2}}}]),
                   encoding="utf-8")
    loaded = load_sigma([yml])
    assert [r.name for r in loaded.files[0].rules] == ["correlated"]
    [warning] = [d for d in loaded.diagnostics if d.severity == "warning"]
    assert warning.file == str(yml) and "`dangling` left out: Rule 'nope' not found" in \
        warning.message


def test_alias_naming_one_field_for_every_rule_is_that_field() -> None:
    two = {"a": {"Type": "A"}, "b": {"Type": "B"}}
    events = [(0, {"Account": "u", "Type": "B", "ts": 0}),
              (5, {"Account": "v", "Type": "A", "ts": 5}),
              (10, {"Account": "u", "Type": "A", "ts": 10})]
    for rules in (["a", "b"], ["a", "00000000-0000-4000-8000-000000000001"]):  # (name or id)
        [alert] = _run(_docs(two, {"type": "temporal", "rules": rules, "group-by": ["user"],
                                   "timespan": "1m",
                                   "aliases": {"user": {"a": "Account", "b": "Account"}}}),
                       events)
        assert alert["key"] == {"Account": "u"} and alert["end"] == 10


def test_range_conditions_and_all_rules_ranges() -> None:
    """The specification's ranges (two criteria in the mapping), which pySigma alone
    rejects: an average within bounds, and "all rules" written as a range."""
    hit = {"hit": {"Type": "hit"}}
    events = [(t, {"User": "u", "Type": "hit", "Bytes": b, "ts": t})
              for t, b in [(0, 10), (1, 2), (2, 0), (3, 100)]]
    alerts = _run(_docs(hit, {"type": "value_avg", "rules": ["hit"], "group-by": ["User"],
                              "timespan": "1m", "condition": {"gt": 4, "lte": 6,
                                                              "field": "Bytes"}}), events)
    assert [a["end"] for a in alerts] == [1]  # averages 10, 6, 4, 28
    two = {"a": {"Type": "A"}, "b": {"Type": "B"}}
    [alert] = _run(_docs(two, {"type": "temporal", "rules": ["a", "b"], "group-by": ["User"],
                               "timespan": "1m", "condition": {"gt": 1, "lte": 2}}),
                   [(0, {"User": "u", "Type": "A", "ts": 0}),
                    (1, {"User": "u", "Type": "B", "ts": 1})])
    assert alert["end"] == 1


def test_pipelines_map_group_by_value_field_and_aliases(tmp_path: Path) -> None:
    """winlogbeat's mapping reaches the key, the counted field and the alias's field."""
    from cep.sigma.pipelines import load_pipeline
    two = {"a": {"EventID": 4625}, "b": {"EventID": 4624}}
    cases = [({"type": "value_count", "rules": ["a"], "group-by": ["Computer"],
               "timespan": "1m", "condition": {"gte": 2, "field": "TargetUserName"}},
              "key by winlog.computer_name",
              "having count_distinct(winlog.event_data.TargetUserName) >= 2"),
             ({"type": "temporal", "rules": ["a", "b"], "group-by": ["user"], "timespan": "1m",
               "aliases": {"user": {"a": "TargetUserName", "b": "TargetUserName"}}},
              "key by winlog.event_data.TargetUserName", "all of (")]
    for i, (corr, key, window) in enumerate(cases):
        yml = tmp_path / f"p{i}.yml"
        yml.write_text(_docs(two, corr), encoding="utf-8")
        loaded = load_sigma([yml], load_pipeline(("winlogbeat",)))
        text = format_rules(loaded.files[0].rules)
        assert f"  {key}\n" in text and window in text, text


def test_extended_conjunction_is_all_rules() -> None:
    two = {"a": {"Type": "A"}, "b": {"Type": "B"}}
    events = [(0, {"User": "u", "Type": "B", "ts": 0}), (10, {"User": "u", "Type": "A", "ts": 10})]
    for cond in ("a and b", "b and a"):
        [alert] = _run(_docs(two, {"type": "temporal", "rules": ["a", "b"], "group-by": ["User"],
                                   "timespan": "1m", "condition": cond}), events)
        assert alert["end"] == 10


def test_converted_correlations_parse_back_to_the_same_rules(tmp_path: Path) -> None:
    """``cep sigma convert`` text of every correlation type loads back to the same rule."""
    rules = {"hit": {"Type": "hit"}, "other": {"Type": "other"}}
    corrs: list[dict[str, Any]] = [
        {"type": "event_count", "condition": {"gt": 3}},
        {"type": "value_count", "condition": {"gte": 3, "field": "Target"}},
        {"type": "value_sum", "condition": {"gte": 1.5, "field": "Bytes"}},
        {"type": "value_avg", "condition": {"lt": 2, "field": "Bytes"}},
        {"type": "temporal"},
        {"type": "temporal_ordered"},
    ]
    for i, c in enumerate(corrs):
        yml = tmp_path / f"c{i}.yml"
        yml.write_text(_docs(rules, {**c, "rules": ["hit", "other"], "group-by": ["User", "Host"],
                                     "timespan": "90s"}), encoding="utf-8")
        loaded = load_sigma([yml])
        [file] = loaded.files
        assert [r.name for r in file.rules] == ["correlated"], loaded.diagnostics
        cep = tmp_path / f"c{i}.cep"
        cep.write_text(format_rules(file.rules), encoding="utf-8")
        from_sigma, from_text = load_rule_set([str(yml)]), load_rule_set([str(cep)])
        assert from_text.ok and from_sigma.ok, from_text.diagnostics
        assert [(r.name, r.version) for r in from_sigma.rules] == \
            [(r.name, r.version) for r in from_text.rules]


def test_cep_sigma_convert_prints_correlations(tmp_path: Path) -> None:
    yml = tmp_path / "spray.yml"
    yml.write_text(_docs({"hit": {"Type": "hit"}},
                         {"type": "value_count", "rules": ["hit"], "group-by": ["User"],
                          "timespan": "5m", "condition": {"gte": 10, "field": "Target"}}),
                   encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "cep.cli", "sigma", "convert", str(yml)],
                          capture_output=True, check=False)
    assert done.returncode == 0, done.stderr
    text = done.stdout.decode()
    assert "  key by User\n  having count_distinct(Target) >= 10 within 5m\n" in text
    cep = tmp_path / "spray.cep"
    cep.write_text(text, encoding="utf-8")
    assert load_rule_set([str(cep)]).ok


# ---------------------------------------------------------------- the mordor capture

# (``mordor``: the capture's events in event-time order, a fixture of conftest.py)

def _host(d: Data) -> Any:
    return d.get("Hostname")


@pytest.mark.shared
def test_password_spray_event_count_on_real_telemetry(mordor: list[tuple[int, Data]]) -> None:
    """Failed logons (4625) per host, at least 5 within a minute: the capture's password
    spray (7 failures on WORKSTATION5 within 12 ms) alerts once, at the fifth."""
    text = _docs({"failed_logon": {"EventID": 4625}},
                 {"type": "event_count", "rules": ["failed_logon"], "group-by": ["Hostname"],
                  "timespan": "1m", "condition": {"gte": 5}})
    got = _run(text, mordor)
    want = crossings(mordor, _host, {"events": lambda d: d.get("EventID") == 4625},
                     aggregate_holds("event_count", "", [("gte", 5)]), 60_000)
    assert _events_of(got, "Hostname") == sorted(want)
    assert len(got) == 1 and got[0]["key"]["Hostname"] == "WORKSTATION5.theshire.local"
    assert got[0]["data"]["count"] == 5 and got[0]["data"]["author"] == "test"


@pytest.mark.shared
@pytest.mark.parametrize(("event_id", "threshold", "span"), [(4625, 5, "1m"), (4624, 2, "10s"),
                                                             (4624, 3, "1m")])
def test_value_count_on_real_telemetry(mordor: list[tuple[int, Data]], event_id: int,
                                       threshold: int, span: str) -> None:
    """Distinct target accounts of logon events per host within the span."""
    text = _docs({"logon": {"EventID": event_id}},
                 {"type": "value_count", "rules": ["logon"], "group-by": ["Hostname"],
                  "timespan": span, "condition": {"gte": threshold, "field": "TargetUserName"}})
    span_ms = int(span[:-1]) * (60_000 if span.endswith("m") else 1000)
    got = _run(text, mordor)
    want = crossings(mordor, _host, {"events": lambda d: d.get("EventID") == event_id},
                     aggregate_holds("value_count", "TargetUserName", [("gte", threshold)]),
                     span_ms)
    assert _events_of(got, "Hostname") == sorted(want)
    assert want, "the case should alert"


@pytest.mark.shared
def test_temporal_on_real_telemetry(mordor: list[tuple[int, Data]]) -> None:
    """A logon (4624), special privileges (4672) and a new process (4688) on one host within
    30 s, in any order; and PurpleSharp started (Sysmon 1) near a failed logon."""
    text = _docs({"logon": {"EventID": 4624}, "privileges": {"EventID": 4672},
                  "new_process": {"EventID": 4688}},
                 {"type": "temporal", "rules": ["logon", "privileges", "new_process"],
                  "group-by": ["Hostname"], "timespan": "30s"})
    members: dict[str, Pred] = {
        "logon": lambda d: d.get("EventID") == 4624,
        "new_process": lambda d: d.get("EventID") == 4688,
        "privileges": lambda d: d.get("EventID") == 4672}
    want = crossings(mordor, _host, members, lambda g: all(g.values()), 30_000)
    assert want and _events_of(_run(text, mordor), "Hostname") == sorted(want)

    text = _docs({"purplesharp": {"EventID": 1, "Image|endswith": "\\PurpleSharp.exe"},
                  "failed_logon": {"EventID": 4625}},
                 {"type": "temporal", "rules": ["purplesharp", "failed_logon"],
                  "group-by": ["Hostname"], "timespan": "1m"})
    members = {"failed_logon": lambda d: d.get("EventID") == 4625,
               "purplesharp": lambda d: d.get("EventID") == 1 and str(
                   d.get("Image", "")).lower().endswith("\\purplesharp.exe")}
    want = crossings(mordor, _host, members, lambda g: all(g.values()), 60_000)
    assert len(want) == 1 and _events_of(_run(text, mordor), "Hostname") == want


CREDITCARD = (Path(__file__).resolve().parents[3] / "shared" / "data" / "creditcard-ulb"
              / "creditcard_time_amount_class.csv.gz")


@pytest.mark.shared
@pytest.mark.parametrize(("kind", "condition"), [
    ("value_sum", {"gte": 2000}),              # fraud amounts summing up within 10 minutes
    ("value_avg", {"lte": 1, "gte": 0}),       # card testing: micro-charges on average
    ("value_avg", {"gt": 500}),
])
def test_value_sum_and_avg_on_real_transactions(kind: str, condition: dict[str, Any]) -> None:
    """The 284,807 card transactions (one stream: the data set has no card key), frauds
    (Class 1) by amount over 10 minutes, against the reference."""
    import csv
    with gzip.open(CREDITCARD, "rt", encoding="utf-8") as fh:
        events = [(int(r["Time"]) * 1000, {"Amount": float(r["Amount"]), "Class": int(r["Class"]),
                                           "ts": int(r["Time"]) * 1000, "row": int(r["row_id"])})
                  for r in csv.DictReader(fh)]
    text = _docs({"fraud": {"Class": 1}},
                 {"type": kind, "rules": ["fraud"], "timespan": "10m",
                  "condition": {**condition, "field": "Amount"}})
    want = crossings(events, lambda d: (), {"events": lambda d: d["Class"] == 1},
                     aggregate_holds(kind, "Amount", list(condition.items())), 600_000)
    got = _run(text, events)
    assert want, "the case should alert"
    assert sorted((r["end"], [e["ts"] for e in r["match"]["events"]]) for r in got) == \
        sorted((ts, m["events"]) for _, ts, m in want)


@pytest.mark.shared
def test_temporal_ordered_on_real_telemetry(mordor: list[tuple[int, Data]]) -> None:
    """A logon (4624) followed by special privileges assigned (4672) on one host within 2 s."""
    text = _docs({"logon": {"EventID": 4624}, "privileges": {"EventID": 4672}},
                 {"type": "temporal_ordered", "rules": ["logon", "privileges"],
                  "group-by": ["Hostname"], "timespan": "2s"})
    got = [(r["key"]["Hostname"], r["match"]["logon"][0]["ts"], r["match"]["privileges"][0]["ts"])
           for r in _run(text, mordor)]
    want = temporal_ordered_reference(mordor, "Hostname", 2000,
                                      lambda d: d.get("EventID") == 4624,
                                      lambda d: d.get("EventID") == 4672)
    assert want and sorted(got) == sorted(want)
