"""Hostile rule files: each is rejected with a diagnostic at file:line:col, cheaply, by the
checker, ``cep check`` and the hot reload alike — never with an exception.

The first part replays the reproductions of the hardening issue (lone surrogates, huge
``times``, huge files and literals, many broken rules, out-of-range numbers, deep groups,
huge durations); the second generates hostile texts with Hypothesis.
"""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cep.app.reload import Control, Reloader
from cep.app.rules import load_rule_set
from cep.cli import app
from cep.compiler.build import build_rule
from cep.compiler.compiled import CompiledRule
from cep.diagnostics import Diagnostic
from cep.lang.check import check_rule_file
from cep.lang.limits import (
    MAX_DURATION_MS,
    MAX_FILE_BYTES,
    MAX_GROUP_DEPTH,
    MAX_LITERAL_CHARS,
    MAX_PATTERN_STEPS,
    MAX_SYNTAX_ERRORS,
    MAX_TIMES,
)
from cep.lang.parse import parse_text
from cep.operator.versions import ReloadReport

GOOD = 'rule good\n  key by user\n  pattern\n    begin a where action == "x"\nend\n'


def diagnose(text: str) -> list[Diagnostic]:
    """Parse and check ``text`` as the file ``r.cep``: every diagnostic, source order."""
    rf, diags = parse_text(text, "r.cep")
    return diags + check_rule_file(rf)


def errors_at(text: str) -> list[tuple[int, int, str]]:
    """``(line, col, message)`` of each error of ``text``."""
    return [(d.span.line, d.span.col, d.message) for d in diagnose(text) if d.is_error]


def rule(pattern: str, tail: str = "", name: str = "r") -> str:
    return f"rule {name}\n  pattern\n    {pattern}\n{tail}end\n"


def positioned(diags: list[Diagnostic]) -> bool:
    return all(d.span.line >= 1 and d.span.col >= 1 for d in diags)


# ---------------------------------------------------------------------- D05 lone surrogates


@pytest.mark.parametrize(("text", "line", "col"), [
    (rule('begin a where action == "x"', '  emit { v: "\\uDC80" }\n'), 4, 13),  # D05
    (rule('begin a where x == 1', '  emit { "\\uD83D": 1 }\n'), 4, 10),  # D13: a key
    (rule('begin a where x == "\\uD83D\\uDE00"'), 3, 24),  # a pair as two escapes
    ('rule r\n  description "\\udfff"\n  pattern\n    begin a\nend\n', 2, 3),
])
def test_a_lone_surrogate_anywhere_in_a_rule_is_an_error_where_it_is_written(
        text: str, line: int, col: int) -> None:
    ((at_line, at_col, message),) = errors_at(text)
    assert (at_line, at_col) == (line, col)
    assert "lone surrogate" in message


def test_characters_beyond_the_basic_plane_are_fine_written_either_way() -> None:
    text = rule('begin a where x == "\\U0001F600"', '  emit { "😀": "\\U0001F600" }\n')
    assert errors_at(text) == []
    (rf := parse_text(text)[0])
    compiled = build_rule(rf.rules[0])
    assert compiled.emit_fn is not None


def test_a_rule_with_a_lone_surrogate_never_reaches_a_run(tmp_path: Path) -> None:
    path = tmp_path / "sur.cep"
    path.write_text(rule('begin a where action == "x"', '  emit { v: "\\uDC80" }\n'))
    rs = load_rule_set([str(path)])
    assert rs.rules == [] and [(d.span.line, d.span.col) for d in rs.errors] == [(4, 13)]


def test_raw_surrogates_in_a_text_are_reported_at_their_place() -> None:
    ((line, col, message),) = errors_at("rule r\n  pattern\n    begin `a\udc80`\nend\n")
    assert (line, col) == (3, 13) and "U+DC80" in message


# ---------------------------------------------------------------------- D06 times


def test_times_above_the_bound_is_an_error_at_the_quantifier() -> None:
    text = rule("begin a where x == 1 times 1000000")
    assert errors_at(text) == [(3, 26, "rule `r`: `times` counts at most 10,000 events, "
                                        "not 1,000,000")]
    assert errors_at(rule(f"begin a where x == 1 times {MAX_TIMES}")) == []
    assert errors_at(rule(f"begin a times 2 to {MAX_TIMES + 1}"))[0][:2] == (3, 13)


def test_nested_counts_multiply_and_are_bounded_too() -> None:
    text = rule(f"begin g ( begin a where x == 1 times {MAX_TIMES} ) times 3")
    ((line, col, message),) = errors_at(text)
    assert (line, col) == (3, 5)
    assert message == (f"rule `r`: the pattern counts through {3 * MAX_TIMES:,} events; the "
                       f"limit is {MAX_PATTERN_STEPS:,}")
    assert errors_at(rule(f"begin g ( begin a times {MAX_TIMES} ) times 2")) == []


def test_the_largest_patterns_allowed_compile_in_linear_time() -> None:
    # Naming N states used to take O(N²): 20,000 states took about 27 s; now a fraction of one.
    text = rule(f"begin a where x == 1 times 1 to {MAX_TIMES}\n"
                f"    followed by b where x == 2 times 1 to {MAX_TIMES} optional", "  within 1h\n")
    rf, diags = parse_text(text)
    assert diags == [] and check_rule_file(rf) == []
    started = time.perf_counter()
    nfa = build_rule(rf.rules[0]).nfa
    assert time.perf_counter() - started < 5
    names = [s.name for s in nfa.states]
    assert len(names) == len(set(names)) > 2 * MAX_TIMES


def test_state_names_stay_those_checkpoints_know() -> None:
    rf, _ = parse_text(rule("begin a where x == 1 times 2 to 3\n"
                            "    followed by b where x == 2 optional\n"
                            "    followed by g ( begin c times 2 next d ) times 2\n"
                            "    followed by e"))
    assert [s.name for s in build_rule(rf.rules[0]).nfa.states] == [  # as named before
        "a:2", "$end$", "e", "d", "c", "c:0", "d:0", "c:1", "c:2", "b", "b:0", "a", "a:0",
        "a:1"]


# ---------------------------------------------------------------------- D07 size


def test_a_file_over_the_size_limit_is_refused_before_parsing(tmp_path: Path) -> None:
    body = "A" * (MAX_FILE_BYTES + 10)
    path = tmp_path / "big.cep"
    path.write_text(rule(f'begin a where x == "{body}"'))
    tracemalloc.start()
    try:
        rs = load_rule_set([str(path)])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    ((span, message),) = [((d.span.line, d.span.col), d.message) for d in rs.errors]
    assert span == (1, 1) and message.startswith(f"file of {path.stat().st_size:,} bytes;")
    assert peak < 4 * MAX_FILE_BYTES  # not read past the limit


def test_a_long_literal_is_an_error_at_its_opening_quote() -> None:
    text = rule(f'begin a where x == "{"A" * (MAX_LITERAL_CHARS + 1)}"')
    assert errors_at(text) == [(3, 24, f"string literal of {MAX_LITERAL_CHARS + 1:,} "
                                       f"characters; the limit is {MAX_LITERAL_CHARS:,}")]
    assert errors_at(rule(f'begin a where x == "{"A" * MAX_LITERAL_CHARS}"')) == []
    ((line, col, _),) = errors_at(rule(f"begin a where `{'b' * (MAX_LITERAL_CHARS + 1)}` == 1"))
    assert (line, col) == (3, 19)


@pytest.mark.parametrize("literal", [
    '"' + "A" * 900_000 + '"',  # a closed string: about 4 GB per 10 MB before
    '"' + "A" * 900_000,  # unterminated
    '"' + "\\n" * 450_000 + '"',  # escapes
    '"' + "\\n" * 450_000,
])
def test_lexing_a_long_string_takes_memory_in_proportion_to_it(literal: str) -> None:
    text = rule(f"begin a where x == {literal}")
    tracemalloc.start()
    try:
        diags = diagnose(text)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len([d for d in diags if d.is_error]) == 1 and positioned(diags)
    assert peak < 12 * len(text)  # a few copies of the text, no regex backtracking stack


# ---------------------------------------------------------------------- D09 many broken rules


def test_recovery_from_thousands_of_broken_rules_is_linear() -> None:
    broken = "rule b{i}\n  pattern\n    begin a where x == == 1\nend\n"
    good = "rule g{i}\n  pattern\n    begin a where x == 1\nend\n"
    text = "".join((broken if i % 2 else good).format(i=i) for i in range(8_000))
    started = time.perf_counter()
    rf, diags = parse_text(text, "r.cep")
    assert time.perf_counter() - started < 10  # about 120 s before (quadratic)
    assert len(rf.rules) == 4_000  # every good rule between the broken ones
    assert len(diags) == MAX_SYNTAX_ERRORS + 1
    assert [(d.span.line, d.span.col) for d in diags[:2]] == [(7, 24), (15, 24)]
    last = diags[-1]
    assert (last.span.line, last.span.col) == (4 * (2 * MAX_SYNTAX_ERRORS + 1) + 3, 24)
    assert last.message.startswith(f"… and {4_000 - MAX_SYNTAX_ERRORS:,} more syntax error(s)")


def test_messages_after_recovery_name_the_right_rule() -> None:
    text = ("rule a\n  pattern\n    begin x where y == == 1\nend\n"
            "rule b\n  pattern\n    begin x where y == 1\n"
            "rule c\n  pattern\n    begin x\nend\n")
    assert [(line, col, m) for line, col, m in errors_at(text)][:2] == [
        (3, 24, "unexpected `==`; expected an expression"),
        (8, 1, "rule `b` (line 5) is missing `end`")]


# ---------------------------------------------------------------------- D13 numbers, depth


@pytest.mark.parametrize(("where", "col", "message"), [
    ("x > 1e999", 23, "number out of range: 1e999"),
    ("x == " + "9" * 5000, 24, "number out of range: 99999999999999999999… (5,000 characters)"),
    ("x == 9223372036854775808", 24, "number out of range: 9223372036854775808"),
    ("ts - b.ts < 100000000000000000d", 31, "duration out of range: 100000000000000000d"),
])
def test_numbers_out_of_range_are_errors_at_the_literal(where: str, col: int,
                                                        message: str) -> None:
    assert errors_at(rule(f"begin a where {where}")) == [(3, col, message)]


def test_the_largest_numbers_allowed_pass() -> None:
    assert errors_at(rule("begin a where x == 9223372036854775807 or x > 1.7e308 "
                          "or x == -9223372036854775807")) == []


def test_groups_nested_too_deeply_are_one_error_and_no_recursion() -> None:
    inner = "    begin x where a == 1\n"
    for i in range(400):
        inner = f"    begin g{i} (\n{inner}    )\n"
    text = f"rule d\n  pattern\n{inner}end\n"
    ((line, col, message),) = errors_at(text)
    assert (line, col) == (3 + MAX_GROUP_DEPTH, 5)
    assert message == f"groups nested more than {MAX_GROUP_DEPTH} deep"


# ---------------------------------------------------------------------- D18 durations


def test_durations_are_bounded_by_max_duration_ms() -> None:
    huge = rule('begin a where action == "x"\n    followed by b where action == "y"',
                "  within 100000000000000000d\n")
    assert errors_at(huge) == [(5, 10, "duration out of range: 100000000000000000d")]
    at_most = rule("begin a where x == 1\n    followed by b where x == 2 "
                   f"within {MAX_DURATION_MS}ms", f"  within {MAX_DURATION_MS}ms\n")
    assert errors_at(at_most) == []
    assert build_rule(parse_text(at_most)[0].rules[0]).nfa.window_ms == MAX_DURATION_MS
    over = rule(f"begin a where x == 1 within {MAX_DURATION_MS + 1}ms")
    assert [(c, m) for _, c, m in errors_at(over)] == [
        (33, f"duration out of range: {MAX_DURATION_MS + 1}ms")]


# ---------------------------------------------------------------------- cep check, reload

HOSTILE_FILES = {
    "d05.cep": rule('begin a where action == "x"', '  emit { v: "\\uDC80" }\n', name="d05"),
    "d06.cep": rule("begin a where x == 1 times 1000000", name="d06"),
    "d13a.cep": rule("begin a where x > 1e999", name="d13a"),
    "d13b.cep": rule("begin a where x == " + "9" * 5000, name="d13b"),
    "d13c.cep": rule("begin a where x == 1", '  emit { "\\uD83D": 1 }\n', name="d13c"),
    "d18.cep": rule("begin a where x == 1", "  within 100000000000000000d\n", name="d18"),
}


class Immediate(Control):
    """A pipeline stand-in that runs the hand-over at once, on the calling thread."""

    def call(self, fn: Any, timeout: float | None = 10.0) -> Any:
        return fn()


def test_cep_check_reports_each_hostile_file_at_its_place(tmp_path: Path) -> None:
    for name, text in HOSTILE_FILES.items():
        (tmp_path / name).write_text(text)
    result = CliRunner().invoke(app, ["check", str(tmp_path)])
    assert result.exit_code == 1 and result.exception is None or isinstance(
        result.exception, SystemExit)
    assert "Traceback" not in result.output
    for name in HOSTILE_FILES:
        assert f"{tmp_path / name}:" in result.output
    assert f"{len(HOSTILE_FILES)} error(s)" in result.output


def test_the_reload_rejects_hostile_files_with_positions_and_keeps_its_rules(
        tmp_path: Path) -> None:
    (tmp_path / "good.cep").write_text(GOOD)
    applied: list[list[CompiledRule]] = []

    def apply(rules: list[CompiledRule]) -> ReloadReport:
        applied.append(rules)
        return ReloadReport(versions={r.name: r.version for r in rules})

    reloader = Reloader([str(tmp_path)], Immediate(), apply, [])
    assert reloader.reload_now("start").ok and len(applied) == 1
    for name, text in HOSTILE_FILES.items():
        (tmp_path / name).write_text(text)
        result = reloader.reload_now(name)
        assert not result.ok and len(applied) == 1, name
        (err,) = result.errors
        assert Path(err["file"]).name == name and err["line"] >= 1 and err["col"] >= 1
        assert err["text"].startswith(f"{err['file']}:{err['line']}:{err['col']}: error:")
        (tmp_path / name).unlink()
    assert reloader.reload_now("end").ok and len(applied) == 2


def test_a_rule_that_fails_to_compile_is_a_diagnostic_at_the_rule(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import cep.app.rules

    def broken(*args: object, **kwargs: object) -> CompiledRule:
        raise RecursionError("maximum recursion depth exceeded")

    (tmp_path / "good.cep").write_text(GOOD)
    monkeypatch.setattr(cep.app.rules, "build_rule", broken)
    rs = load_rule_set([str(tmp_path)])
    assert rs.rules == []
    assert [(d.span.line, d.span.col, d.message) for d in rs.errors] == [
        (1, 6, "rule `good`: cannot be compiled (RecursionError: maximum recursion depth "
               "exceeded)")]


# ---------------------------------------------------------------------- generated hostile texts

TEMPLATE = (
    "rule t\n  description {string}\n  key by user, {name}\n  pattern\n"
    "    begin a where x {op} {value}\n"
    "    followed by b where b.v > {value} times {count}\n"
    "    followed by {group}\n"
    "  within {duration}\n"
    "  emit {{ {key}: {value}, n: count(b) }}\nend\n"
)

_ESCAPES = ["\\n", "\\u0041", "\\uD800", "\\uDFFF", "\\uD83D\\uDE00", "\\U0001F600",
            "\\U0010FFFF", "\\U00110000", "\\UFFFFFFFF", "\\x", "\\\\"]
digits = st.integers(1, 6000).map(lambda n: "9" * n) | st.integers(0, 2**70).map(str)
strings = st.builds(
    lambda parts: '"' + "".join(parts) + '"',
    st.lists(st.sampled_from(_ESCAPES) | st.text(st.characters(
        blacklist_characters='"\\\n\r'), max_size=5)
        | st.integers(1, 2 * MAX_LITERAL_CHARS).map(lambda n: "A" * n), max_size=4))
durations = st.builds(lambda n, unit: n + unit, digits, st.sampled_from(["ms", "s", "m", "h", "d"]))
values = st.one_of(
    digits, st.builds(lambda n, e: f"{n}e{e}", digits, st.integers(-400, 400)),
    st.sampled_from(["1e999", "1e308", "-1e999", "1.5e-999", "0.5", "-9223372036854775807",
                     "true", "null", "a.x", "len(a.x)"]),
    strings, durations,
    st.integers(1, 400).map(lambda n: "not " * n + "x"),
    st.integers(1, 400).map(lambda n: "[" * n + "1" + "]" * n),
    st.integers(1, 400).map(lambda n: "(" * n + "x" + ")" * n),
    st.integers(1, 400).map(lambda n: "- " * n + "x"),
)
names = st.one_of(st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True),
                  st.builds(lambda t: f"`{t}`", st.text(st.characters(
                      blacklist_characters="`\n\r"), min_size=1, max_size=8)),
                  st.integers(1, 2 * MAX_LITERAL_CHARS).map(lambda n: "`" + "q" * n + "`"))
groups = st.integers(1, 3 * MAX_GROUP_DEPTH).map(
    lambda n: "g0 (" + "".join(f" begin g{i} (" for i in range(1, n)) + " begin c where c > 1"
    + " )" * (n - 1) + " next d ) times 2")
counts = st.one_of(digits, st.integers(-2, 3 * MAX_TIMES).map(str),
                   st.builds(lambda a, b: f"{a} to {b}", st.integers(0, 2 * MAX_TIMES),
                             st.integers(0, 3 * MAX_TIMES)))
SYNTAX = st.one_of(
    st.sampled_from(["emit {", "end", "rule", "rule rule", "pattern", "begin", "(", ")", "not",
                     "==", "= =", "&&", "@x", "$", ";", "#", "\t", "\r\n", "\x00", "\ufeff",
                     "\u2028", "\udc80", "\ud83d\ude00", "😀", "é", "`", '"\\', "'"]),
    st.lists(st.sampled_from(["rule", "end", "pattern", "begin", "where", "followed by",
                              "times", "within", "emit", "{", "}", ":", ",", "x", "1", "5m",
                              "key by", "not", "(", ")", "\n"]), max_size=30).map(" ".join),
    st.text(max_size=20), values,
)


@st.composite
def hostile_texts(draw: st.DrawFn) -> str:
    """The template with hostile values in its slots, then maybe cut short or with hostile
    fragments put in at random places (keyword soup, odd characters, values)."""
    text = TEMPLATE.format(
        string=draw(strings), name=draw(names), op=draw(st.sampled_from(["==", "<", "in"])),
        value=draw(values), count=draw(counts), group=draw(groups),
        duration=draw(durations), key=draw(names | strings))
    if draw(st.integers(0, 3)) == 0:
        text = text[: draw(st.integers(0, len(text)))]
    for _ in range(draw(st.integers(0, 2)) if draw(st.booleans()) else 0):
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(SYNTAX) + text[at:]
    return text


FAST = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.large_base_example])


@FAST
@given(hostile_texts())
def test_parse_and_check_never_raise_and_always_point_somewhere(text: str) -> None:
    diags = diagnose(text)
    assert positioned(diags), [(d.span, d.message) for d in diags]
    rf, parse_diags = parse_text(text, "r.cep")
    if not any(d.is_error for d in diags):
        for r in rf.rules:
            build_rule(r)  # what checks clean compiles


def _file_text(text: str) -> str:
    """As a file can hold it: UTF-8 text of a rule file (not binary, beginning with `rule`)."""
    text = "".join(c for c in text if not ("\ud800" <= c <= "\udfff")
                   and (c in "\t\n\r\f" or c >= " ") and c != "\x7f")
    return "rule " + text.removeprefix("\ufeff")


@settings(FAST, max_examples=20)
@given(st.lists(hostile_texts(), min_size=1, max_size=3))
def test_check_and_reload_reject_hostile_files_with_positions(tmp_path_factory: Any,
                                                              texts: list[str]) -> None:
    directory = tmp_path_factory.mktemp("rules")
    (directory / "good.cep").write_text(GOOD)
    for i, text in enumerate(texts):
        (directory / f"h{i}.cep").write_text(_file_text(text), encoding="utf-8")
    rs = load_rule_set([str(directory)])
    assert positioned(rs.diagnostics), [(d.span, d.message) for d in rs.diagnostics]
    result = CliRunner().invoke(app, ["check", str(directory)])
    assert result.exit_code == (1 if rs.errors else 0), result.output
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit), result.exception

    applied: list[list[CompiledRule]] = []

    def apply(rules: list[CompiledRule]) -> ReloadReport:
        applied.append(rules)
        return ReloadReport(versions={})

    reloader = Reloader([str(directory)], Immediate(), apply, [])
    outcome = reloader.reload_now("test")
    assert outcome.ok == (not rs.errors) and len(applied) == (0 if rs.errors else 1)
    assert all(e["line"] >= 1 and e["col"] >= 1 and e["file"] for e in outcome.errors)
