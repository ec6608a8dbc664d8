"""Sigma detections compiled to the engine's conditions agree with a brute-force reference
of the specification's value semantics, on generated rules and events (Hypothesis)."""

from __future__ import annotations

import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cep.app.rules import load_rule_set
from cep.event import Event
from cep.operator.cep_operator import CepOperator

FIELDS = ["A", "B"]
ALPHABET = "aAb\\*?"


def _wild(pattern: str, text: str, before: bool = False, after: bool = False) -> bool:
    """Reference wildcard match of the specification: ``*`` any run, ``?`` one character,
    ``\\`` escapes ``*``, ``?`` and ``\\`` (before anything else it is itself); whole value,
    case-insensitive.  ``before``/``after``: a wildcard the modifier adds (contains,
    startswith, endswith) around the value as parsed, not spliced into its text (a trailing
    ``\\`` stays a literal backslash).  Brute force over positions (no regex)."""
    toks: list[tuple[str, str]] = [("any", "")] if before else []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern) and pattern[i + 1] in "*?\\":
            toks.append(("lit", pattern[i + 1]))
            i += 2
            continue
        toks.append(("any", "") if c == "*" else ("one", "") if c == "?" else ("lit", c))
        i += 1
    if after:
        toks.append(("any", ""))
    text = text.lower()

    @cache
    def m(t: int, s: int) -> bool:
        if t == len(toks):
            return s == len(text)
        kind, ch = toks[t]
        if kind == "any":
            return any(m(t + 1, k) for k in range(s, len(text) + 1))
        if s == len(text):
            return False
        if kind == "one":
            return m(t + 1, s + 1)
        return ch.lower() == text[s] and m(t + 1, s + 1)

    return m(0, 0)


def _value_matches(mod: str, value: Any, actual: Any) -> bool:
    if actual is None:
        return False
    if isinstance(value, int):
        return actual == value or actual == str(value)
    if not isinstance(actual, str):
        return False
    before, after = {"": (False, False), "contains": (True, True),
                     "startswith": (False, True), "endswith": (True, False)}[mod]
    return _wild(value, actual, before, after)


def _selection_matches(sel: dict[str, list[Any]], event: dict[str, Any]) -> bool:
    for key, values in sel.items():
        field, _, mods = key.partition("|")
        parts = mods.split("|") if mods else []
        every = "all" in parts
        mod = next((p for p in parts if p != "all"), "")
        hits = [_value_matches(mod, v, event.get(field)) for v in values]
        if not (all(hits) if every else any(hits)):
            return False
    return True


def reference(detection: dict[str, Any], condition: str, event: dict[str, Any]) -> bool:
    s1 = _selection_matches(detection["sel1"], event)
    s2 = _selection_matches(detection["sel2"], event)
    return {"sel1": s1, "sel1 and not sel2": s1 and not s2, "1 of sel*": s1 or s2,
            "all of sel*": s1 and s2, "not sel1": not s1}[condition]


values = st.one_of(st.text(ALPHABET, min_size=1, max_size=4), st.integers(0, 3))
keys = st.tuples(st.sampled_from(FIELDS),
                 st.sampled_from(["", "|contains", "|startswith", "|endswith", "|contains|all"]))


@st.composite
def selections(draw: st.DrawFn) -> dict[str, list[Any]]:
    out = {}
    for field, mod in draw(st.lists(keys, min_size=1, max_size=2, unique_by=lambda k: k[0])):
        vals = draw(st.lists(values, min_size=1, max_size=3))
        if mod:  # string modifiers take strings
            vals = [str(v) for v in vals]
        out[field + mod] = vals
    return out


events = st.lists(st.dictionaries(st.sampled_from(FIELDS), st.one_of(
    st.text("aAbB\\*?x", max_size=5), st.integers(0, 3), st.none())), min_size=1, max_size=6)


def _run(rule: dict[str, Any], evs: list[dict[str, Any]]) -> list[bool]:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "r.yml"
        path.write_text(yaml.safe_dump(rule), encoding="utf-8")
        rs = load_rule_set([str(path)])
    assert rs.ok and len(rs.rules) == 1, rs.diagnostics
    fired: set[int] = set()
    op = CepOperator(rs.rules, lambda s, rec: fired.add(rec["start"]))
    for i, e in enumerate(evs):
        op.on_event(Event(i, i, e, "input"))
    op.finish()
    return [i in fired for i in range(len(evs))]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(selections(), selections(),
       st.sampled_from(["sel1", "sel1 and not sel2", "1 of sel*", "all of sel*", "not sel1"]),
       events)
def test_detection_agrees_with_reference(sel1: dict[str, list[Any]], sel2: dict[str, list[Any]],
                                         condition: str, evs: list[dict[str, Any]]) -> None:
    detection = {"sel1": sel1, "sel2": sel2, "condition": condition}
    rule = {"title": "generated", "id": "00000000-0000-4000-8000-000000000001",
            "logsource": {"product": "test"}, "detection": detection}
    assert _run(rule, evs) == [reference(detection, condition, e) for e in evs]


def test_modifiers_of_the_specification() -> None:
    """One rule per modifier family, each on an event it must match and one it must not."""
    cases: list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = [
        ({"F|re": "^ab+c$"}, {"F": "abbc"}, {"F": "ABBC"}),
        ({"F|re|i": "^ab+c$"}, {"F": "ABBC"}, {"F": "abd"}),
        ({"F|cidr": "10.1.0.0/16"}, {"F": "10.1.200.3"}, {"F": "10.2.0.1"}),
        ({"F|base64offset|contains": "http"}, {"F": "x aHR0c y"}, {"F": "http"}),
        ({"F|wide|base64offset|contains": "ab"}, {"F": "YQBiA"}, {"F": "ab"}),
        ({"F|windash|contains": "-enc"}, {"F": "ps /enc x"}, {"F": "ps enc"}),
        ({"F|exists": True}, {"F": ""}, {"G": 1}),
        ({"F|exists": False}, {"G": 1}, {"F": 0}),
        ({"F|gt": 5}, {"F": 6}, {"F": 5}),
        ({"F|lte": 5}, {"F": 5}, {"F": 6}),
        ({"F|fieldref": "G"}, {"F": "Ab", "G": "aB"}, {"F": "a", "G": "b"}),
        ({"F": None}, {"G": 1}, {"F": "x"}),
        ({"F": ""}, {"F": ""}, {"F": "x"}),
        ({"F|cased": "Ab"}, {"F": "Ab"}, {"F": "ab"}),
        ({"F": 4688}, {"F": "4688"}, {"F": "4689"}),
        ({"F": "4688"}, {"F": 4688}, {"F": 46880}),
    ]
    for sel, yes, no in cases:
        rule = {"title": "m", "logsource": {"product": "t"},
                "detection": {"sel": sel, "condition": "sel"}}
        assert _run(rule, [yes, no]) == [True, False], sel


def test_keywords_search_every_string_of_the_event() -> None:
    rule = {"title": "k", "logsource": {"product": "t"},
            "detection": {"keywords": ["mimikatz", "sekurlsa::*"], "condition": "keywords"}}
    evs = [{"a": {"b": ["x MimiKatz y"]}}, {"msg": "sekurlsa::logonpasswords"},
           {"msg": "a sekurlsa::x"}, {"n": 1, "msg": "benign"}]
    assert _run(rule, evs) == [True, True, False, False]


def test_a_trailing_backslash_is_a_literal_under_contains() -> None:
    """The modifier's wildcards surround the parsed value: ``contains '\\'`` finds a
    backslash (pySigma's reading), not a ``*`` (splicing ``*\\*`` would escape the star)."""
    detection = {"sel1": {"A|contains": ["\\"]}, "sel2": {"A": ["?"]}, "condition": "sel1"}
    rule = {"title": "generated", "id": "00000000-0000-4000-8000-000000000001",
            "logsource": {"product": "test"}, "detection": detection}
    evs = [{"A": "\\"}, {"A": "x\\y"}, {"A": "*"}]
    assert _run(rule, evs) == [reference(detection, "sel1", e) for e in evs] == [True, True,
                                                                                   False]
