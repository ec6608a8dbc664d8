"""Run a Flink-oracle case (the JSON format of ``shared/peers/flinkoracle``) through the
engine, end to end: the case's pattern is written as rule text, checked and compiled like any
rule file, and its events are fed through the file-mode operator.

Used by differential tests against the Flink oracle and the reference matcher.  The output has
the oracle's shape: ``{"id", "matches": [[ids]…], "timeouts": [[ids]…], "late": [ids],
"error": None | str, "error_phase": None | "compile"}``.
"""

from __future__ import annotations

import re
from typing import Any

from cep.compiler.build import build_rule
from cep.event import Event
from cep.lang.check import check_rule_file
from cep.lang.operators import CONTAINS, STARTS_WITH
from cep.lang.parse import parse_text
from cep.operator.cep_operator import CepOperator

__all__ = ["run_case", "case_to_rule_text"]

_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+(?:\.\d+)?)|(?P<str>\"(?:[^\"\\]|\\.)*\")|(?P<op>==|!=|<=|>=|[<>+\-*/(),.])"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*))"
)


class _Renamer:
    """Maps the case's stage names to safe rule-language names (``s0``, ``s1``, …)."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    def __call__(self, name: str) -> str:
        if name not in self.names:
            self.names[name] = f"s{len(self.names)}"
        return self.names[name]


def _tokens(text: str) -> list[tuple[str, str]]:
    out = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise ValueError(f"cannot read condition {text!r} at {pos}")
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def _convert_condition(text: str, stage_name: _Renamer) -> str:
    """Oracle condition language → rule-language expression."""
    toks = _tokens(text)
    out: list[str] = []
    i = 0
    while i < len(toks):
        kind, tok = toks[i]
        nxt = toks[i + 1][1] if i + 1 < len(toks) else ""
        if kind == "name" and nxt == "(" and tok in ("startsWith", "contains"):
            # f(a, b) → (a OP b): find the matching comma and parenthesis
            depth, j, comma = 0, i + 1, -1
            while j < len(toks):
                if toks[j][1] == "(":
                    depth += 1
                elif toks[j][1] == ")":
                    depth -= 1
                    if depth == 0:
                        break
                elif toks[j][1] == "," and depth == 1:
                    comma = j
                j += 1
            left = " ".join(t for _, t in toks[i + 2 : comma])
            right = " ".join(t for _, t in toks[comma + 1 : j])
            op = STARTS_WITH.spelling if tok == "startsWith" else CONTAINS.spelling
            out.append(
                f"({_convert_condition(left, stage_name)} {op} "
                f"{_convert_condition(right, stage_name)})"
            )
            i = j + 1
            continue
        if kind == "name" and nxt == "(" and tok in ("sum", "count", "first", "last"):
            out.append(tok)
            out.append("(")
            stage = toks[i + 2][1]
            out.append(stage_name(stage))
            i += 3
            continue
        if kind == "name" and tok == "if":
            raise ValueError("if(...) has no rule-language equivalent")
        if kind == "op" and tok == ".":
            out[-1] = out[-1] + "."
            i += 1
            continue
        if out and out[-1].endswith("."):
            out[-1] = out[-1] + tok
        else:
            out.append(tok)
        i += 1
    return " ".join(out)


_CONTIGUITY = {
    "begin": "begin",
    "next": "next",
    "followedBy": "followed by",
    "followedByAny": "followed by any",
    "notNext": "not next",
    "notFollowedBy": "not followed by",
}


def _stage_lines(stages: list[dict[str, Any]], rn: _Renamer, case: dict[str, Any],
                 indent: str) -> list[str]:
    lines = []
    for st in stages:
        name = rn(st["name"]) if st.get("name") else rn(f"__group{id(st)}")
        head = f"{indent}{_CONTIGUITY[st['contiguity']]} {name}"
        mods = []
        q = st.get("quantifier")
        if q:
            kind = q["kind"]
            if kind == "times":
                mods.append(f"times {q['min']}")
            elif kind == "timesRange":
                mods.append(f"times {q['min']} to {q['max']}")
            elif kind == "oneOrMore":
                mods.append("one or more")
            elif kind == "timesOrMore":
                mods.append(f"times {q['min']} or more")
            inner = q.get("inner", "relaxed")
            if inner == "consecutive":
                mods.append("consecutive")
            elif inner == "allowCombinations":
                mods.append("allow combinations")
        if st.get("optional"):
            mods.append("optional")
        if st.get("greedy"):
            mods.append("greedy")
        if st.get("until"):
            mods.append(f"until {_convert_condition(st['until'], rn)}")
        stage_window = st.get("within_ms")
        if (case.get("within_type") == "PREVIOUS_AND_CURRENT"
                and case.get("within_stage") == st.get("name")):
            stage_window = case.get("within_ms")
        if stage_window is not None:
            mods.append(f"within {stage_window}ms")
        if st.get("group") is not None:
            lines.append(f"{head} (")
            lines.extend(_stage_lines(st["group"], rn, case, indent + "  "))
            lines.append(f"{indent}) {' '.join(mods)}".rstrip())
        else:
            where = st.get("where")
            cond = "" if where in (None, "true") else f" where {_convert_condition(where, rn)}"
            lines.append(f"{head}{cond} {' '.join(mods)}".rstrip())
    return lines


def case_to_rule_text(case: dict[str, Any], timeouts: bool = False) -> tuple[str, _Renamer]:
    """The case's pattern as a rule file; returns the text and the stage renamer."""
    rn = _Renamer()
    lines = ["rule oracle_case"]
    if case.get("key_by"):
        lines.append(f"  key by {case['key_by']}")
    lines.append("  pattern")
    lines.extend(_stage_lines(case["stages"], rn, case, "    "))
    if case.get("within_ms") is not None and case.get("within_type") != "PREVIOUS_AND_CURRENT":
        lines.append(f"  within {case['within_ms']}ms")
    skip = case.get("skip", "noSkip")
    if skip == "skipToNext":
        lines.append("  after match skip to next")
    elif skip == "skipPastLastEvent":
        lines.append("  after match skip past last event")
    elif skip.startswith("skipToFirst:"):
        lines.append(f"  after match skip to first {rn(skip.split(':', 1)[1])}")
    elif skip.startswith("skipToLast:"):
        lines.append(f"  after match skip to last {rn(skip.split(':', 1)[1])}")
    if timeouts:
        lines.append("  on timeout emit { }")
    lines.append("end")
    return "\n".join(lines) + "\n", rn


def _ids(node: Any) -> list[Any]:
    ids = []
    while node is not None:
        ids.append(node.event.data.get("id"))
        node = node.prev
    ids.reverse()
    return ids


def run_case(case: dict[str, Any], timeouts: bool | None = None, *,
             prune_cohorts: bool = True) -> dict[str, Any]:
    """Run one oracle-format case in ``file`` mode (see the oracle's README).
    ``prune_cohorts=False`` runs Flink's algorithm without cohort pruning
    (:func:`cep.compiler.build.build_rule`); ``result["peak_partial_matches"]`` is the most
    partial matches one key held after an event."""
    if timeouts is None:
        timeouts = "expected_timeouts" in case
    result: dict[str, Any] = {
        "id": case.get("id"), "matches": [], "timeouts": [], "late": [],
        "error": None, "error_phase": None, "peak_partial_matches": 0,
    }
    try:
        text, _ = case_to_rule_text(case, timeouts)
    except ValueError as exc:
        result["error"] = f"unsupported: {exc}"
        result["error_phase"] = "convert"
        return result
    rf, diags = parse_text(text, "<case>")
    diags = list(diags) + ([] if diags else check_rule_file(rf))
    errors = [d for d in diags if d.severity == "error"]
    if errors:
        result["error"] = "; ".join(d.message for d in errors)
        result["error_phase"] = "compile"
        return result
    rule = build_rule(rf.rules[0], "<case>", prune_cohorts=prune_cohorts)

    def emit(sink: str, record: dict[str, Any]) -> None:
        if sink == "late":
            result["late"].append(record["event"].get("id"))
        elif record.get("timed_out"):
            ids = [e.get("id") for evs in record["match"].values() for e in evs]
            result["timeouts"].append(ids)
        else:
            ids = [e.get("id") for evs in record["match"].values() for e in evs]
            result["matches"].append(ids)

    op = CepOperator([rule], emit, {"input": int(case.get("ooo", 0))})
    peak = 0
    for seq, ev in enumerate(case["events"], 1):
        op.on_event(Event(int(ev["ts"]), seq, ev, "input", seq))
        for rs in op.rules:
            peak = max(peak, rs.partial_matches())
    op.finish()
    result["peak_partial_matches"] = peak
    result["evictions"] = sum(rs.evictions for rs in op.rules)
    return result
