"""``max_events_per_match``: a match of more events is still an alert, cut down, and says what it
left out.

The reproduction: a looping stage without a skip strategy (``a``, ``b one or more``, ``c``)
makes one alert per ``b`` at the ``c``, the k-th holding k events: 76 KB of input became
95 MB of alerts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cep.app.rules import load_rule_set
from cep.compiler.compiled import CompiledRule
from cep.event import Event
from cep.operator.cep_operator import CepOperator
from cep.operator.records import MAX_EVENTS_PER_MATCH, truncate_match

LOOPING = """
rule k
  key by user
  pattern
    begin a where t == "a"
    followed by b where t == "b" one or more
    followed by c where t == "end"
  within 1h
  emit { n: count(b), last_b: last(b).n }
end

rule open_loop
  key by user
  pattern
    begin a where t == "a"
    followed by b where t == "b" one or more
    followed by c where t == "never"
  within 1h
  on timeout emit { n: count(b) }
end
"""


@pytest.fixture(scope="module")
def rules(tmp_path_factory: pytest.TempPathFactory) -> list[CompiledRule]:
    path = Path(tmp_path_factory.mktemp("rules")) / "k.cep"
    path.write_text(LOOPING)
    rs = load_rule_set([str(path)])
    assert rs.ok, rs.diagnostics
    return rs.rules


def stream(n_b: int) -> list[Event]:
    """One ``a``, ``n_b`` ``b``, one ``end``, all of key ``x`` (``n`` numbers them)."""
    kinds = ["a"] + ["b"] * n_b + ["end"]
    return [Event(i, i, {"ts": i, "user": "x", "t": t, "n": i}, "input", i)
            for i, t in enumerate(kinds)]


def run(rules: list[CompiledRule], events: list[Event],
        limit: int | None) -> tuple[CepOperator, list[dict[str, Any]]]:
    out: list[dict[str, Any]] = []
    op = CepOperator(rules, lambda s, r: out.append(r), max_events_per_match=limit)
    for e in events:
        op.on_event(e)
    op.finish()
    return op, out


def numbers(rec: dict[str, Any], stage: str) -> list[int]:
    return [e["n"] for e in rec["match"][stage]]


def test_a_long_match_is_still_an_alert_cut_down_with_what_it_left_out(
        rules: list[CompiledRule]) -> None:
    events = stream(40)
    op, cut = run(rules[:1], events, 10)
    _, full = run(rules[:1], events, None)
    assert len(cut) == len(full) == 40  # one alert per b, none lost
    truncated = 0
    for c, f in zip(cut, full, strict=True):
        # the whole match still decides everything but the lists
        for field in ("key", "start", "end", "data", "alert_id"):
            assert c[field] == f[field]
        n_b = len(f["match"]["b"])
        if n_b + 2 <= 10:
            assert c == f and "events_omitted" not in c
            continue
        truncated += 1
        assert c["events_omitted"] == {"b": n_b - 8}
        assert numbers(c, "a") == [0] and numbers(c, "c") == [41]  # one-event stages whole
        # the b's that began and ended the stage: first 4 and last 4
        assert numbers(c, "b") == numbers(f, "b")[:4] + numbers(f, "b")[-4:]
        assert c["data"] == {"n": n_b, "last_b": numbers(f, "b")[-1]}
    assert truncated == 32
    assert op.stats()["rules"]["k"]["truncated"] == truncated


def test_output_is_bounded_per_alert(rules: list[CompiledRule]) -> None:
    # the reproduction's shape: the k-th alert held k + 2 events; now at most the limit
    _, cut = run(rules[:1], stream(300), 50)
    sizes = [sum(len(v) for v in rec["match"].values()) for rec in cut]
    assert len(cut) == 300 and max(sizes) == 50
    whole = sorted(size + sum(rec.get("events_omitted", {}).values())
                   for size, rec in zip(sizes, cut, strict=True))
    assert whole == [k + 2 for k in range(1, 301)]  # nothing silently lost


def test_timed_out_partial_matches_are_cut_down_too(rules: list[CompiledRule]) -> None:
    op, out = run(rules[1:], stream(30), 6)
    timed_out = [r for r in out if r.get("timed_out")]
    assert timed_out == out and len(out) > 30
    for r in timed_out:
        events = r["data"]["n"] + 1  # a and its b's
        shown = sum(len(v) for v in r["match"].values())
        assert ("events_omitted" in r) == (events > 6)
        assert shown + sum(r.get("events_omitted", {}).values()) == events
    longest = max(timed_out, key=lambda r: r["data"]["n"])
    assert longest["data"] == {"n": 30} and longest["events_omitted"] == {"b": 25}
    assert numbers(longest, "a") == [0] and numbers(longest, "b") == [1, 2, 3, 29, 30]
    assert op.stats()["rules"]["open_loop"]["truncated"] == sum(
        "events_omitted" in r for r in timed_out) > 0


def test_the_default_limit_and_its_refusal_below_one(rules: list[CompiledRule]) -> None:
    for n_b, omitted in ((MAX_EVENTS_PER_MATCH - 2, None),
                         (MAX_EVENTS_PER_MATCH - 1, {"b": 1})):
        out: list[dict[str, Any]] = []
        op = CepOperator(rules[:1], lambda s, r, out=out: out.append(r))  # the default limit
        for e in stream(n_b):
            op.on_event(e)
        op.finish()
        longest = max(out, key=lambda r: r["data"]["n"])  # a, every b, c
        assert longest["data"]["n"] == n_b
        assert longest.get("events_omitted") == omitted
        assert sum(len(v) for v in longest["match"].values()) == MAX_EVENTS_PER_MATCH == 1_000
    for bad in (0, -5):
        with pytest.raises(ValueError, match="max_events_per_match must be at least 1"):
            CepOperator(rules[:1], lambda s, r: None, max_events_per_match=bad)


@pytest.mark.parametrize(("sizes", "limit", "kept"), [
    ({"a": 1, "b": 2500, "c": 1}, 1000, {"a": 1, "b": 998, "c": 1}),
    ({"a": 10, "b": 3, "c": 10}, 12, {"a": 5, "b": 3, "c": 4}),  # share 4, one more to a
    ({"a": 3, "b": 3}, 6, {"a": 3, "b": 3}),  # fits: nothing cut
    ({"a": 5, "b": 5, "c": 5}, 2, {"a": 1, "b": 1, "c": 0}),  # fewer than the stages
    ({"a": 7}, 1, {"a": 1}),
])
def test_stages_share_the_limit_evenly(sizes: dict[str, int], limit: int,
                                       kept: dict[str, int]) -> None:
    match = {stage: list(range(n)) for stage, n in sizes.items()}
    omitted = truncate_match(match, limit)
    assert {stage: len(evs) for stage, evs in match.items()} == kept
    assert omitted == {s: sizes[s] - kept[s] for s in sizes if kept[s] < sizes[s]}
    for stage, evs in match.items():
        q, n = len(evs), sizes[stage]
        # first ceil(q/2) and last floor(q/2) of the stage
        assert evs == list(range((q + 1) // 2)) + list(range(n - q // 2, n))
