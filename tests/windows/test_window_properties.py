"""``having``, ``all of`` and ``suppress for`` against brute-force references
(tests/windows/reference.py), on random streams with Hypothesis."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cep.compiler.build import build_rule
from cep.compiler.compiled import CompiledRule
from cep.lang.check import check_rule
from cep.lang.parse import parse_text
from tests.helpers import feed

from . import reference as ref


def compile_one(text: str) -> CompiledRule:
    rf, diags = parse_text(text)
    assert not diags, diags
    (rule,) = rf.rules
    errors = [d for d in check_rule(rule) if d.is_error]
    assert not errors, errors
    return build_rule(rule)


VALUES = st.one_of(st.integers(-3, 6), st.sampled_from([0.5, 2.25, -1.5]), st.none(),
                   st.sampled_from(["a", "b", True]))


@st.composite
def streams(draw: Any, n: int = 30) -> list[dict[str, Any]]:
    """In-order events (ids in arrival order) of three keys, with repeated times."""
    size = draw(st.integers(0, n))
    ts = 0
    out = []
    for i in range(size):
        ts += draw(st.sampled_from([0, 1, 2, 3, 5, 8]))
        ev: dict[str, Any] = {"id": i, "ts": ts, "k": draw(st.sampled_from(["x", "y", "z"]))}
        for f in ("v", "w"):
            v = draw(VALUES)
            if v is not None or draw(st.booleans()):
                ev[f] = v
        out.append(ev)
    return out


TERMS = st.lists(st.tuples(
    st.sampled_from(["count", "count_distinct", "sum", "avg", "min", "max"]),
    st.sampled_from(["v", "w"]),
    st.sampled_from([">=", ">", "<=", "<", "=="]),
    st.sampled_from([-1, 0, 1, 2, 3, 1.5, 4]),
), min_size=1, max_size=3)


def _term_text(func: str, field: str, op: str, threshold: float) -> str:
    arg = "" if func == "count" else field
    return f"{func}({arg}) {op} {threshold}"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams(), TERMS, st.sampled_from([1, 4, 10, 1000]))
def test_having_fires_where_the_brute_force_window_crosses(
        events: list[dict[str, Any]], terms: list[tuple[str, str, str, float]],
        within: int) -> None:
    if all(f in ("count", "count_distinct") and op in ("<", "<=") for f, _, op, _ in terms):
        terms = [*terms, ("count", "v", ">=", 1)]  # (the checker rejects those that never fire)
    cond = " and ".join(_term_text(*t) for t in terms)
    rule = compile_one(f"rule r\n  key by k\n  having {cond} within {within}ms\nend\n")
    got = [(r["key"]["k"], [e["id"] for e in r["match"]["events"]])
           for s, r in feed([rule], events).records if s == "alerts"]
    want = ref.having_alerts(events, [(f, None if f == "count" else fld, op, th)
                                      for f, fld, op, th in terms], within)
    assert got == want


@settings(max_examples=200, deadline=None)
@given(streams(), st.sampled_from([1, 4, 10, 1000]))
def test_having_reports_the_aggregates_of_the_crossing_window(
        events: list[dict[str, Any]], within: int) -> None:
    rule = compile_one("rule r\n  key by k\n  having count() >= 2 and sum(v) > -100 and "
                       f"avg(v) > -100 and max(w) > -100 and min(v) < 100 within {within}ms\n"
                       "end\n")
    for sink, rec in feed([rule], events).records:
        assert sink == "alerts"
        window = [e for e in events if e["id"] in {x["id"] for x in rec["match"]["events"]}]
        assert rec["aggregates"] == {
            "count()": len(window),
            "sum(v)": float(s) if (s := ref.aggregate("sum", "v", window)).denominator != 1
            else int(s),
            "avg(v)": float(ref.aggregate("avg", "v", window)),
            "max(w)": ref.aggregate("max", "w", window),
            "min(v)": ref.aggregate("min", "v", window),
        }
        assert rec["window"] == {"start": rec["end"] - within + 1, "end": rec["end"],
                                 "events": len(window), "exact": True}
        assert rec["start"] == window[0]["ts"]


MEMBER_CONDS = {
    "a": ('v == 1', lambda e: type(e.get("v")) in (int, float) and e["v"] == 1),
    "b": ('w == "a"', lambda e: e.get("w") == "a"),
    "c": ("v > 2", lambda e: type(e.get("v")) in (int, float) and e["v"] > 2),
}


@settings(max_examples=150, deadline=None)
@given(streams(40), st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=3,
                             unique=True), st.sampled_from([2, 6, 20, 1000]))
def test_all_of_fires_where_the_brute_force_set_completes(
        events: list[dict[str, Any]], names: list[str], within: int) -> None:
    members = ", ".join(f"{n} where {MEMBER_CONDS[n][0]}" for n in names)
    rule = compile_one(f"rule r\n  key by k\n  all of ({members}) within {within}ms\n"
                       "  emit { first_a: " + names[0] + ".id }\nend\n")
    recs = [r for s, r in feed([rule], events).records if s == "alerts"]
    got = [(r["key"]["k"], sorted({e["id"] for evs in r["match"].values() for e in evs}))
           for r in recs]
    want = ref.all_of_alerts(events, [MEMBER_CONDS[n][1] for n in names], within)
    assert got == want
    for r in recs:  # each member's events, in order; NAME.f reads its first
        assert set(r["match"]) == set(names)
        for n in names:
            ids = [e["id"] for e in r["match"][n]]
            assert ids == sorted(ids) and all(MEMBER_CONDS[n][1](e) for e in r["match"][n])
        assert r["data"] == {"first_a": r["match"][names[0]][0]["id"]}


@settings(max_examples=150, deadline=None)
@given(streams(40), st.sampled_from([1, 3, 10, 50]), st.booleans())
def test_suppression_emits_one_alert_per_group_and_period(
        events: list[dict[str, Any]], period: int, by_field: bool) -> None:
    """A pattern rule (every event with v == 1 is an alert) throttled by key or by field."""
    by = " by w" if by_field else ""
    plain = compile_one("rule r\n  key by k\n  pattern\n    begin a where v == 1\nend\n")
    rule = compile_one(f"rule r\n  key by k\n  pattern\n    begin a where v == 1\n"
                       f"  suppress for {period}ms{by}\nend\n")
    alerts = [r for s, r in feed([plain], events).records if s == "alerts"]
    groups = [(r["match"]["a"][0].get("w") if by_field else r["key"]["k"], r["end"])
              for r in alerts]
    want = [(alerts[i]["alert_id"], n) for i, n in ref.suppress(groups, period)]
    got = [(r["alert_id"], r["suppressed"]) for s, r in feed([rule], events).records]
    # (the alert ids of one rule text differ from the plain rule's only by version)
    assert [n for _, n in got] == [n for _, n in want]
    assert len(got) == len(want)
    total = sum(1 for s, r in feed([rule], events).records)
    assert total + sum(n for _, n in got) + _pending(groups, period) == len(alerts)


def _pending(groups: list[tuple[Any, int]], period: int) -> int:
    """Suppressed alerts not yet reported by a later emitted alert."""
    emitted = {i for i, _ in ref.suppress(groups, period)}
    reported = sum(n for _, n in ref.suppress(groups, period))
    return len(groups) - len(emitted) - reported


@settings(max_examples=100, deadline=None)
@given(streams(40))
def test_having_with_suppression_composes(events: list[dict[str, Any]]) -> None:
    """Suppression acts on the window's crossings exactly as on any alert."""
    having = "having count_distinct(v) >= 2 within 6ms"
    plain = compile_one(f"rule r\n  key by k\n  {having}\nend\n")
    rule = compile_one(f"rule r\n  key by k\n  {having}\n  suppress for 20ms\nend\n")
    crossings = [r for s, r in feed([plain], events).records]
    want = ref.suppress([(r["key"]["k"], r["end"]) for r in crossings], 20)
    got = [r for s, r in feed([rule], events).records]
    assert [(crossings[i]["match"], n) for i, n in want] == [
        (r["match"], r["suppressed"]) for r in got]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(streams(40))
def test_file_runs_take_the_same_alerts_through_the_fast_paths(
        tmp_path_factory: Any, events: list[dict[str, Any]]) -> None:
    """`cep run`'s file path (batched loop, the C line scanner where built) hands the windows
    the same events as the event-by-event path the properties above check."""
    import orjson

    from cep.app.pipeline import FileRunOptions, run_file
    from cep.io.sinks import MemorySink, SinkSet

    rules = [
        compile_one("rule h\n  where w == \"a\" or v > 0\n  key by k\n  having count() >= 2 "
                    "and count_distinct(v) >= 2 within 6ms\n  suppress for 9ms\nend\n"),
        compile_one("rule s\n  key by k\n  all of (a where v == 1, b where w == \"a\") "
                    "within 10ms\nend\n"),
    ]
    path = tmp_path_factory.mktemp("run") / "events.jsonl"
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    sink = MemorySink()
    run_file(rules, FileRunOptions(path=str(path), max_future_skew_ms=None),
             SinkSet({"alerts": sink}))
    direct = [r for _, r in feed(rules, events).records]
    assert [(r["rule"], r["alert_id"], r.get("suppressed")) for r in sink.records] == [
        (r["rule"], r["alert_id"], r.get("suppressed")) for r in direct]
