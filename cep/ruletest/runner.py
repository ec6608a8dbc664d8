"""Run one rule test through the engine's own operator and compare what it emits.

The inputs go through the same decoder as ``cep run`` (inline events are JSON-encoded first,
strings are raw lines) and the same :class:`~cep.operator.cep_operator.CepOperator`; the
runner only chooses the arrival order and, when asked, moves the watermark.  What comes out
is sorted into alerts (any sink but ``late`` and ``dead_letter``), late records and dead
letters, and each list is matched against the expectations as a whole (order does not
matter; every expectation needs its own record).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from cep.compiler.compiled import CompiledRule
from cep.event import Event
from cep.io.codecs import DeadLetter, decode_lines, json_decoder
from cep.io.sources import open_input
from cep.operator.cep_operator import CepOperator
from cep.operator.records import dead_letter_record
from cep.ruletest.model import (
    AlertExpectation,
    RuleTest,
    SideExpectation,
    TestFileError,
    WatermarkStep,
)

__all__ = ["Outcome", "Problem", "run_test", "read_input_file"]


@dataclass
class Problem:
    """One reason a test failed.  ``kind`` is ``missing`` (expected, not emitted),
    ``unexpected`` (emitted, not expected); ``what`` is ``alert``, ``timeout``, ``late`` or
    ``dead letter``; ``expected``/``actual`` are the entry as written and the record (with
    matched events shown as input indices); ``hints`` explain the nearest miss."""

    kind: str
    what: str
    expected: Any = None
    expected_line: int = 0
    actual: Any = None
    hints: list[str] = field(default_factory=list)


@dataclass
class Outcome:
    """The result of one test: ``problems`` is empty when it passed; ``error`` is set when it
    could not run (an unreadable input file).  ``elapsed_s`` is wall time in seconds."""

    test: RuleTest
    problems: list[Problem] = field(default_factory=list)
    error: str | None = None
    alerts: list[dict[str, Any]] = field(default_factory=list)
    late: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def passed(self) -> bool:
        return not self.problems and self.error is None


Decoded = tuple[dict[str, Any], int] | DeadLetter


def read_input_file(test: RuleTest) -> Iterator[tuple[int, bytes, Decoded]]:
    """``(line_no, raw, decoded)`` for every input of ``test.input_file`` (JSON lines or
    CSV; gzip, bz2 or zstd compressed or not), decoded by the same codecs as ``cep run``.
    Raises ``OSError`` (``EOFError`` for a truncated compressed file)."""
    assert test.input_file is not None
    with open_input(test.input_file) as fh:
        yield from decode_lines(fh, test.input_format, test.time, columns=test.columns)


def _decoded_inputs(test: RuleTest) -> list[tuple[int, bytes, Decoded]]:
    if test.input_file is not None:
        return list(read_input_file(test))
    decode = json_decoder(test.time)
    out = []
    for item in test.inputs:
        raw = item.value.encode() if isinstance(item.value, str) else orjson.dumps(item.value)
        out.append((item.line, raw, decode(raw)))
    return out


def run_test(test: RuleTest, rules: list[CompiledRule],
             max_partial_matches_per_key: int = 10_000) -> Outcome:
    """Run ``test`` over ``rules`` and compare.  Raises :class:`TestFileError` for an
    arrival order that does not fit the inputs."""
    started = time.perf_counter()
    out = Outcome(test)
    try:
        inputs = _decoded_inputs(test)
    except (OSError, EOFError) as exc:
        out.error = f"cannot read {test.input_file}: {exc}"
        return out
    steps = test.arrival if test.arrival is not None else list(range(len(inputs)))
    _check_arrival(test, steps, len(inputs))

    index_of: dict[int, int] = {}  # id(decoded object) → input index
    records: list[tuple[str, dict[str, Any]]] = []

    def emit(sink: str, record: dict[str, Any]) -> None:
        records.append((sink, record))

    op = CepOperator(rules, emit, {test.source: test.max_out_of_orderness_ms},
                     max_partial_matches_per_key)
    op.hold_after = None  # records must show the decoded objects themselves (index_of)
    seq = 0
    for step in steps:
        if isinstance(step, WatermarkStep):
            _force_watermark(op, step.at_ms)
            continue
        line, raw, res = inputs[step]
        if isinstance(res, DeadLetter):
            rec = dead_letter_record(res.reason, res.error, test.source,
                                     raw.decode("utf-8", "replace"), line=line)
            rec["input"] = step
            emit("dead_letter", rec)
            continue
        data, ts = res
        index_of[id(data)] = step
        seq += 1
        op.on_event(Event(ts, seq, data, test.source, line))
    if test.end_of_input:
        op.finish()

    for sink, rec in records:
        if sink == "late":
            shown = dict(rec)
            shown["input"] = index_of.get(id(rec["event"]))
            out.late.append(shown)
        elif sink == "dead_letter":
            out.dead_letters.append(rec)
        else:
            out.alerts.append(_shown_alert(sink, rec, index_of))
    out.problems += _compare_alerts(test.expect, out.alerts)
    if test.expect_late is not None:
        out.problems += _compare_side("late", test.expect_late, out.late, _late_fits)
    if test.expect_dead_letters is not None:
        out.problems += _compare_side("dead letter", test.expect_dead_letters,
                                      out.dead_letters, _dead_fits)
    out.elapsed_s = time.perf_counter() - started
    return out


def _check_arrival(test: RuleTest, steps: list[Any], n: int) -> None:
    seen: set[int] = set()
    for s in steps:
        if isinstance(s, WatermarkStep):
            continue
        if s >= n:
            raise TestFileError(test.file, test.line, f"test {test.name!r}: arrival names "
                                f"input {s}, but there are only {n} inputs (0 to {n - 1})")
        if s in seen:
            raise TestFileError(test.file, test.line,
                                f"test {test.name!r}: input {s} arrives twice")
        seen.add(s)
    if test.arrival is not None and len(seen) != n:
        missing = sorted(set(range(n)) - seen)
        raise TestFileError(test.file, test.line, f"test {test.name!r}: arrival leaves out "
                            f"input(s) {', '.join(map(str, missing))}; list every input once")


def _force_watermark(op: CepOperator, at_ms: int) -> None:
    """An explicit watermark (a punctuation in the source): it only moves forward."""
    if at_ms > op.watermarks.current:
        op.watermarks.current = at_ms
        op.advance(at_ms)


def _shown_alert(sink: str, rec: dict[str, Any], index_of: dict[int, int]) -> dict[str, Any]:
    """The alert with ``sink`` added and ``match`` events replaced by input indices under
    ``match_inputs`` (the record itself is kept in ``record``)."""
    return {
        "rule": rec.get("rule"),
        "severity": rec.get("severity"),
        "sink": sink,
        "timed_out": bool(rec.get("timed_out")),
        "key": rec.get("key"),
        "data": rec.get("data"),
        "meta": rec.get("meta"),
        "match_inputs": {stage: [index_of.get(id(e), -1) for e in evs]
                         for stage, evs in (rec.get("match") or {}).items()},
        "record": rec,
    }


# ----------------------------------------------------------------------------- comparing


def _alert_diffs(exp: AlertExpectation, act: dict[str, Any]) -> list[str]:
    """Why ``act`` is not ``exp`` (empty: it is)."""
    diffs = []
    if exp.timed_out != act["timed_out"]:
        diffs.append("a timed-out partial match" if act["timed_out"] else "not a timeout")
    if exp.rule is not None and exp.rule != act["rule"]:
        diffs.append(f"rule: expected {exp.rule}, got {act['rule']}")
    if exp.key is not None and exp.key != act["key"]:
        diffs.append(f"key: expected {_j(exp.key)}, got {_j(act['key'])}")
    for attr in ("severity", "sink"):
        want = getattr(exp, attr)
        if want is not None and want != act[attr]:
            diffs.append(f"{attr}: expected {want}, got {act[attr]}")
    for part in ("data", "meta"):
        wanted: dict[str, Any] | None = getattr(exp, part)
        if wanted is None:
            continue
        got = act[part] if isinstance(act[part], dict) else {}
        for name, want in wanted.items():
            if name not in got:
                diffs.append(f"{part}.{name}: expected {_j(want)}, missing")
            elif not _equal(want, got[name]):
                diffs.append(f"{part}.{name}: expected {_j(want)}, got {_j(got[name])}")
    if exp.match is not None and exp.match != act["match_inputs"]:
        for stage in sorted(set(exp.match) | set(act["match_inputs"])):
            want, got = exp.match.get(stage), act["match_inputs"].get(stage)
            if want != got:
                diffs.append(f"match.{stage}: expected inputs {_j(want or [])}, "
                             f"got {_j(got or [])}")
    return diffs


def _equal(want: Any, got: Any) -> bool:
    if isinstance(want, bool) or isinstance(got, bool):
        return want is got
    return bool(want == got)


def _compare_alerts(expected: list[AlertExpectation], actual: list[dict[str, Any]]
                    ) -> list[Problem]:
    pairs = _assign(len(expected), len(actual),
                    lambda i, j: not _alert_diffs(expected[i], actual[j]))
    used = set(pairs.values())
    problems = []
    for i, exp in enumerate(expected):
        if i in pairs:
            continue
        what = "timeout" if exp.timed_out else "alert"
        hints: list[str] = []
        near = [(len(d), d) for j, a in enumerate(actual) if j not in used
                for d in [_alert_diffs(exp, a)]
                if a["timed_out"] == exp.timed_out and (exp.rule is None or exp.rule == a["rule"])]
        if near:
            near.sort(key=lambda t: t[0])
            hints = ["nearest emitted one differs in: " + "; ".join(near[0][1])]
        problems.append(Problem("missing", what, exp.written, exp.line, hints=hints))
    for j, act in enumerate(actual):
        if j not in used:
            what = "timeout" if act["timed_out"] else "alert"
            problems.append(Problem("unexpected", what, actual=act))
    return problems


def _late_fits(exp: SideExpectation, act: dict[str, Any]) -> bool:
    if exp.index is not None:
        return bool(act.get("input") == exp.index)
    event = act.get("event") or {}
    return all(k in event and _equal(v, event[k]) for k, v in (exp.fields or {}).items())


def _dead_fits(exp: SideExpectation, act: dict[str, Any]) -> bool:
    if exp.index is not None:
        return bool(act.get("input") == exp.index)
    for k, v in (exp.fields or {}).items():
        if k == "error":
            if not isinstance(v, str) or v not in str(act.get("error", "")):
                return False
        elif k not in act or not _equal(v, act[k]):
            return False
    return True


def _compare_side(what: str, expected: list[SideExpectation], actual: list[dict[str, Any]],
                  fits: Callable[[SideExpectation, dict[str, Any]], bool]) -> list[Problem]:
    pairs = _assign(len(expected), len(actual), lambda i, j: fits(expected[i], actual[j]))
    used = set(pairs.values())
    problems = []
    for i, exp in enumerate(expected):
        if i not in pairs:
            shown = exp.index if exp.index is not None else exp.fields
            problems.append(Problem("missing", what, shown, exp.line))
    for j, act in enumerate(actual):
        if j not in used:
            problems.append(Problem("unexpected", what, actual=act))
    return problems


def _assign(n: int, m: int, fits: Callable[[int, int], bool]) -> dict[int, int]:
    """A maximum matching of expectations ``0..n-1`` to records ``0..m-1`` (augmenting
    paths), so a loose expectation never steals the only record a strict one fits."""
    edges = [[j for j in range(m) if fits(i, j)] for i in range(n)]
    owner: dict[int, int] = {}  # record → expectation

    def augment(i: int, seen: set[int]) -> bool:
        for j in edges[i]:
            if j in seen:
                continue
            seen.add(j)
            if j not in owner or augment(owner[j], seen):
                owner[j] = i
                return True
        return False

    for i in range(n):
        augment(i, set())
    return {i: j for j, i in owner.items()}


def _j(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS, default=str).decode()
