"""Canonical formatting: parse → format → parse gives the same AST; versions ignore cosmetics."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cep.lang import ast
from cep.lang.format import (
    format_duration,
    format_expr,
    format_rule,
    format_rules,
    quote_string,
    rule_version,
)
from cep.lang.parse import parse_text
from cep.lang.syntax_errors import KEYWORD_WORDS

from .helpers import fixture_files


def parse_rules(text: str) -> tuple[ast.Rule, ...]:
    rf, diags = parse_text(text)
    assert diags == [], [d.message for d in diags] + [text]
    return rf.rules


def assert_round_trip(rule: ast.Rule) -> None:
    text = format_rule(rule)
    again = parse_rules(text)
    assert again == (rule,), text
    assert format_rule(again[0]) == text


# ---------------------------------------------------------------------- fixtures


@pytest.mark.parametrize("path", fixture_files("good") + fixture_files("check"),
                         ids=lambda p: p.stem)
def test_fixture_rules_round_trip(path: Path) -> None:
    for rule in parse_rules(path.read_text(encoding="utf-8")):
        assert_round_trip(rule)


def test_canonical_text_of_the_contract_rule() -> None:
    text = (Path(__file__).parent / "fixtures" / "good" / "contract_example.cep").read_text()
    rule = parse_rules(text)[0]
    assert format_rule(rule) == """\
rule login_brute_force
  description "Five failed logins for one account within five minutes"
  severity high
  tags login, credential-stuffing
  from auth
  where action == "login"
  key by user
  pattern
    begin fail where outcome == "failure"
    next again where outcome == "failure" times 4
  within 5m
  after match skip past last event
  emit {
    user: fail.user,
    attempts: 1 + count(again),
    first_ip: fail.src_ip,
    last_ip: last(again).src_ip
  }
end
"""


def test_groups_and_emits_layout() -> None:
    rule = parse_rules("rule r pattern begin a followed by g ( begin b next c ) times 2\n"
                       "within 1m on timeout emit to t { x: a.x } emit {} end")[0]
    assert format_rule(rule) == """\
rule r
  pattern
    begin a
    followed by g (
      begin b
      next c
    ) times 2
  within 1m
  emit {}
  on timeout emit to t {
    x: a.x
  }
end
"""


# ---------------------------------------------------------------------- versions


def test_version_ignores_comments_spacing_and_clause_order() -> None:
    a = parse_rules("rule r\n  severity high\n  key by u\n  pattern\n    begin a where x==1\n"
                    "  within 60s\nend")[0]
    b = parse_rules("# comment\nrule   r   # here\n key  by  u\nseverity high\npattern\n"
                    "begin a   where (x == 1)  # there\n\n within 1m\nend")[0]
    assert rule_version(a) == rule_version(b)
    assert len(rule_version(a)) == 16 and int(rule_version(a), 16) >= 0


def test_version_changes_with_meaning() -> None:
    base = "rule r pattern begin a where x == 1\nwithin 1m\nend"
    versions = {rule_version(parse_rules(t)[0]) for t in (
        base, base.replace("x == 1", "x == 2"), base.replace("1m", "2m"),
        base.replace("begin a", "begin b"), base.replace("rule r", "rule s"))}
    assert len(versions) == 5


# ---------------------------------------------------------------------- pieces


@pytest.mark.parametrize("ms,text", [
    (0, "0ms"), (1500, "1500ms"), (60_000, "1m"), (90_000, "90s"), (86_400_000, "1d"),
    (7_200_000, "2h"), (-300_000, "-5m"),
])
def test_durations(ms: int, text: str) -> None:
    assert format_duration(ms) == text


def test_strings_are_double_quoted_with_escapes() -> None:
    assert quote_string("it's \"x\"\\\n\t\x01") == '"it\'s \\"x\\"\\\\\\n\\t\\u0001"'


@pytest.mark.parametrize("text", [
    "(a or b) and c", "a or b and c", "not (a and b)", "a - (b - c)", "a - b - c",
    "-(a + b)", "(a + b) * c", "-x * 2", "(a < b) == c", "x - -5", "not not x",
    "(x is null) is null", "first(s).a.`b c`", "`from` == this.to", "[1, [2, 3]]",
])
def test_expressions_keep_their_shape(text: str) -> None:
    rule = parse_rules(f"rule r pattern begin a where {text} end")[0]
    cond = rule.pattern[0].condition
    assert cond is not None
    assert format_expr(cond) == text
    assert_round_trip(rule)


def test_format_rules_separates_with_blank_lines() -> None:
    rules = parse_rules("rule a pattern begin x end rule b pattern begin y end")
    assert format_rules(rules).count("\n\nrule b") == 1


# ---------------------------------------------------------------------- generated ASTs

_words = sorted(KEYWORD_WORDS - {"this"})
names = st.from_regex(r"[a-z_][a-z0-9_]{0,5}", fullmatch=True).filter(
    lambda s: s not in KEYWORD_WORDS)
texts = st.characters(blacklist_categories=("Cs",))  # a lone surrogate is not text
segments = st.one_of(names, st.sampled_from(_words),
                     st.text(st.characters(blacklist_categories=("Cs",),
                                           blacklist_characters="`\n\r"), min_size=1,
                             max_size=6))
numbers = st.one_of(st.integers(-10**12, 10**12),
                    st.floats(allow_nan=False, allow_infinity=False))
literals = st.one_of(
    st.builds(ast.Lit, numbers),
    st.builds(ast.Lit, st.text(texts, max_size=8)),
    st.builds(ast.Lit, st.sampled_from([True, False, None])),
    st.builds(lambda ms: ast.Lit(ms, duration=True), st.integers(-10**9, 10**9)),
)
paths = st.builds(lambda head, rest: ast.Path((head, *rest)),
                  st.one_of(segments, st.just("this")), st.lists(segments, max_size=2))
calls_leaf = st.builds(lambda f, args: ast.Call(f, tuple(args)), names,
                       st.lists(st.one_of(literals, paths), max_size=3))


def _is_number(e: ast.Expr) -> bool:
    return isinstance(e, ast.Lit) and isinstance(e.value, int | float) and not isinstance(
        e.value, bool)


def _extend(children: st.SearchStrategy[ast.Expr]) -> st.SearchStrategy[ast.Expr]:
    ops = ["and", "or", "==", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/", "%", "in",
           "not in", "contains", "starts with", "ends with"]
    return st.one_of(
        st.builds(ast.Binary, st.sampled_from(ops), children, children),
        st.builds(lambda left, rx: ast.Binary("matches", left, ast.Lit(rx)), children,
                  st.text(texts, max_size=5)),
        st.builds(ast.Unary, st.just("not"), children),
        st.builds(ast.Unary, st.just("-"), children.filter(lambda e: not _is_number(e))),
        st.builds(ast.IsNull, children, st.booleans()),
        st.builds(lambda f, args: ast.Call(f, tuple(args)), names,
                  st.lists(children, max_size=3)),
        st.builds(lambda c, p: ast.Attr(c, tuple(p)), calls_leaf,
                  st.lists(segments, min_size=1, max_size=2)),
        st.builds(lambda items: ast.ListLit(tuple(items)), st.lists(children, max_size=3)),
    )


exprs = st.recursive(st.one_of(literals, paths), _extend, max_leaves=8)

modifiers = st.one_of(
    st.builds(lambda n: ast.Modifier("times", n=n), st.integers(-3, 50)),
    st.builds(lambda n, m: ast.Modifier("times_range", n=n, m=m), st.integers(-3, 50),
              st.integers(-3, 50)),
    st.builds(lambda n: ast.Modifier("times_or_more", n=n), st.integers(-3, 50)),
    st.sampled_from([ast.Modifier(k) for k in ("one_or_more", "optional", "greedy",
                                                "consecutive", "allow_combinations")]),
    st.builds(lambda e: ast.Modifier("until", expr=e), exprs),
    st.builds(lambda ms: ast.Modifier("within", ms=ms), st.integers(0, 10**9)),
)
stage_names = names.filter(lambda n: n != "any")


def _stage(group: st.SearchStrategy[tuple[ast.Stage, ...] | None]) -> st.SearchStrategy[ast.Stage]:
    return st.builds(
        lambda c, n, cond, mods, g: ast.Stage(c, n, None if g else cond, tuple(mods), group=g),
        st.sampled_from(ast.CONTIGUITIES), stage_names, st.none() | exprs,
        st.lists(modifiers, max_size=3), group)


inner_stages = _stage(st.none())
stages = _stage(st.none() | st.lists(inner_stages, min_size=1, max_size=3).map(tuple))
skips = st.one_of(
    st.builds(ast.Skip, st.sampled_from(["no_skip", "skip_to_next", "skip_past_last_event"])),
    st.builds(ast.Skip, st.sampled_from(["skip_to_first", "skip_to_last"]), stage_names),
)
emit_names = st.one_of(names, st.sampled_from(_words), st.text(texts, max_size=6))


def _emit(on_timeout: bool) -> st.SearchStrategy[ast.Emit]:
    return st.builds(
        lambda fields, sink: ast.Emit(tuple(fields), sink=sink, on_timeout=on_timeout),
        st.lists(st.tuples(emit_names, exprs), max_size=3), st.one_of(st.just("alerts"), names))


rules = st.builds(
    lambda name, pattern, desc, sev, tags, srcs, where, keys, within, skip, me, te: ast.Rule(
        name=name, pattern=tuple(pattern), description=desc, severity=sev, tags=tuple(tags),
        sources=tuple(srcs), where=where, key_by=tuple(keys), within_ms=within, skip=skip,
        emits=tuple(e for e in (me, te) if e is not None)),
    names, st.lists(stages, min_size=1, max_size=4), st.none() | st.text(texts, max_size=10),
    st.sampled_from(["info", "low", "medium", "high", "critical", "urgent"]),
    st.lists(st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,6}", fullmatch=True), max_size=3),
    st.lists(names, max_size=2), st.none() | exprs, st.lists(paths, max_size=2),
    st.none() | st.integers(0, 10**9), skips, st.none() | _emit(False), st.none() | _emit(True),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rules)
def test_generated_rules_round_trip(rule: ast.Rule) -> None:
    assert_round_trip(rule)


@settings(max_examples=300, deadline=None)
@given(exprs)
def test_generated_expressions_round_trip(expr: ast.Expr) -> None:
    rule = ast.Rule("r", (ast.Stage("begin", "a", expr, ()),))
    assert_round_trip(rule)


def test_deep_but_allowed_expressions_round_trip() -> None:
    cond = " or ".join(f"x == {i}" for i in range(140))
    assert_round_trip(parse_rules(f"rule r pattern begin a where {cond} end")[0])
