"""Parsing: AST shapes, spans, the grammar itself, and syntax errors driven by fixtures."""

from __future__ import annotations

import ast as pyast
import logging
from pathlib import Path

import pytest
from lark import Lark, logger

from cep.diagnostics import render
from cep.lang import ast
from cep.lang.ast import Attr, Binary, Call, IsNull, ListLit, Lit, Span, Unary
from cep.lang.grammar import grammar_text, parser
from cep.lang.parse import parse_file, parse_text, unquote_string
from cep.lang.syntax_errors import EXAMPLES, _example_table

from .helpers import FIXTURES, compare_expected, fixture_files, rendered

# ---------------------------------------------------------------------- helpers


def one_rule(text: str) -> ast.Rule:
    rf, diags = parse_text(text)
    assert diags == [], [d.message for d in diags]
    assert len(rf.rules) == 1
    return rf.rules[0]


def cond(expr_text: str) -> ast.Expr:
    """The condition of a one-stage rule whose stage condition is ``expr_text``."""
    rule = one_rule(f"rule r\n  pattern\n    begin a where {expr_text}\nend\n")
    condition = rule.pattern[0].condition
    assert condition is not None
    return condition


def P(*parts: str) -> ast.Path:
    return ast.Path(parts)


# ---------------------------------------------------------------------- the grammar


def test_grammar_is_package_data() -> None:
    assert "start: (rule | list_decl | table_decl)*" in grammar_text()


def test_grammar_has_no_lalr_conflicts(caplog: pytest.LogCaptureFixture) -> None:
    logger.setLevel(logging.DEBUG)
    try:
        with caplog.at_level(logging.DEBUG, logger="lark"):
            Lark(grammar_text(), parser="lalr", lexer="contextual", debug=True)
    finally:
        logger.setLevel(logging.CRITICAL)
    conflicts = [r.getMessage() for r in caplog.records if "conflict" in r.getMessage().lower()]
    assert conflicts == []


def test_parser_is_built_once() -> None:
    assert parser() is parser()


def test_bad_examples_all_fail_to_parse() -> None:
    table = _example_table()  # raises if an example parses
    assert len(table) >= len(EXAMPLES)


# ---------------------------------------------------------------------- rules and clauses


CONTRACT_RULE = """\
# Five failed logins for one account within five minutes, the first two back to back.
rule login_brute_force
  description "Five failed logins for one account within five minutes"
  severity high
  tags login, credential-stuffing
  from auth                       # one or more input streams (names bound in cep.toml)
  where action == "login"         # optional pre-filter, applied before keying
  key by user                     # optional; without it all events share one key
  pattern
    begin fail  where outcome == "failure"
    next  again where outcome == "failure"  times 4
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


def test_contract_rule() -> None:
    rule = one_rule(CONTRACT_RULE)
    assert rule.name == "login_brute_force"
    assert rule.description == "Five failed logins for one account within five minutes"
    assert rule.severity == "high"
    assert rule.tags == ("login", "credential-stuffing")
    assert rule.sources == ("auth",)
    assert rule.where == Binary("==", P("action"), Lit("login"))
    assert rule.key_by == (P("user"),)
    assert [s.name for s in rule.pattern] == ["fail", "again"]
    assert [s.contiguity for s in rule.pattern] == ["begin", "next"]
    again = rule.pattern[1]
    assert again.quantifier == ast.Modifier("times", n=4)
    assert rule.within_ms == 5 * 60_000
    assert again.within_ms is None
    assert rule.skip == ast.Skip("skip_past_last_event")
    emit = rule.match_emit
    assert emit is not None and emit.sink == "alerts" and rule.timeout_emit is None
    assert [name for name, _ in emit.fields] == ["user", "attempts", "first_ip", "last_ip"]
    assert emit.fields[1][1] == Binary("+", Lit(1), Call("count", (P("again"),)))
    assert emit.fields[3][1] == Attr(Call("last", (P("again"),)), ("src_ip",))


CONTRACT_SNIPPETS = [
    # the group example
    """rule g
  pattern
    begin login
    followed by otp_round (
      begin ask    where action == "otp_request"
      next  reject where action == "otp_verify" and outcome == "failure"
    ) times 3
  within 10m
end""",
    # the modifiers example
    """rule m
  pattern
    begin first_fail
    next again where outcome == "failure" times 3 or more consecutive greedy
    next ok
  within 1m
end""",
    "rule k\n  key by user, device.id\n  pattern\n    begin a\nend",
    "rule s\n  pattern\n    begin a\n    next b\n  after match skip to first b\nend",
    "rule s\n  pattern\n    begin a\n    next b\n  after match skip to last b\nend",
    "rule s\n  pattern\n    begin a\n  after match no skip\nend",
    "rule s\n  pattern\n    begin a\n  after match skip to next\nend",
    "rule e\n  pattern\n    begin a\n  within 1m\n  emit to sink { x: a.x }\n"
    "  on timeout emit to other { y: a.y, }\nend",
    "rule e\n  pattern\n    begin a\n    followed by any b\n    not next c\n"
    "    not followed by d within 5m\nend",
]

CONTRACT_EXPRESSIONS = [
    '"a"', "'b'", "12", "1.5", "true", "false", "null", "500ms", "30s", "5m", "2h", "1d",
    '["a", "b"]', "amount", "geo.country", "event.action", "this", "this.user",
    "`from`", "a.`user-agent`", "`@timestamp`", "count(a)", "sum(a.f)", "avg(a.f)",
    "min(a.f)", "max(a.f)", "first(a).f", "last(a).f", "distinct_count(a.f)", "not ok",
    "ok and amount > 5", "x == 1", "x != 1", "x < 1", "x <= 1", "x > 1", "x >= 1",
    "a and b or c", "1 + 2 - 3 * 4 / 5 % 6", "-x", "(a or b)", 'x in ["a"]',
    'x not in ["a"]', "x is null", "x is not null", 'x contains "a"', 'x starts with "a"',
    'x ends with "a"', 'x matches "^a+$"', "lower(x)", "upper(x)", "len(x)", "abs(x)",
    "round(x, 2)", "haversine_km(a, b, c, d)", "again.ts - a.ts < 10s",
]


@pytest.mark.parametrize("text", CONTRACT_SNIPPETS)
def test_contract_snippets_parse(text: str) -> None:
    one_rule(text)


@pytest.mark.parametrize("expr", CONTRACT_EXPRESSIONS)
def test_contract_expressions_parse(expr: str) -> None:
    cond(expr)


def test_peers_patterns_parse() -> None:
    rf, diags = parse_file(FIXTURES / "good" / "peers_patterns.cep")
    assert diags == []
    assert [r.name for r in rf.rules] == [
        "brute_force", "brute_force_relaxed", "fail_then_success", "pay_refund_pay",
        "card_testing"]


def test_header_clauses_in_any_order() -> None:
    a = one_rule('rule r\n  key by u\n  severity low\n  from s\n  description "d"\n'
                 '  tags x-y, z\n  where a == 1\n  pattern\n    begin a\nend')
    b = one_rule('rule r\n  tags x-y, z\n  description "d"\n  where a == 1\n  from s\n'
                 '  severity low\n  key by u\n  pattern\n    begin a\nend')
    assert a == b
    assert a.tags == ("x-y", "z") and a.severity == "low"


def test_defaults() -> None:
    rule = one_rule("rule r pattern begin a end")
    assert rule.severity == "medium" and rule.skip == ast.Skip() and rule.emits == ()
    assert rule.where is None and rule.key_by == () and rule.within_ms is None


def test_several_rules_and_comments() -> None:
    rf, diags = parse_text("# c\nrule a pattern begin x end # c\n\nrule b\n pattern\n"
                           "  begin y # end\nend\n")
    assert diags == [] and [r.name for r in rf.rules] == ["a", "b"]


# ---------------------------------------------------------------------- stages


def test_modifiers_in_any_order_are_kept_in_order() -> None:
    rule = one_rule("rule r pattern begin a where x times 3 or more consecutive greedy "
                    "until y within 30s end")
    kinds = [m.kind for m in rule.pattern[0].modifiers]
    assert kinds == ["times_or_more", "consecutive", "greedy", "until", "within"]
    st = rule.pattern[0]
    assert st.quantifier == ast.Modifier("times_or_more", n=3)
    assert st.consecutive and st.greedy and not st.optional and not st.allow_combinations
    assert st.until == P("y") and st.within_ms == 30_000


@pytest.mark.parametrize("text,kind,n,m", [
    ("times 2", "times", 2, None), ("times 2 to 4", "times_range", 2, 4),
    ("times 0 to 4", "times_range", 0, 4), ("times 2 or more", "times_or_more", 2, None),
    ("times -1", "times", -1, None), ("one or more", "one_or_more", None, None),
])
def test_quantifiers(text: str, kind: str, n: int | None, m: int | None) -> None:
    st = one_rule(f"rule r pattern begin a {text} end").pattern[0]
    assert st.quantifier == ast.Modifier(kind, n=n, m=m)


def test_contiguities() -> None:
    rule = one_rule("rule r\n pattern\n  begin a\n  next b\n  followed by c\n"
                    "  followed   by\tany d\n  not next e\n  not followed by f within 1s\nend")
    assert [s.contiguity for s in rule.pattern] == list(ast.CONTIGUITIES)


def test_group_stages_nest() -> None:
    rule = one_rule("rule r\n pattern\n  begin a\n  followed by g (\n    begin b\n"
                    "    next h (\n      begin c\n    ) one or more\n  ) times 2 optional\n"
                    "  within 1m\nend")
    g = rule.pattern[1]
    assert g.group is not None and g.condition is None
    assert [s.name for s in g.group] == ["b", "h"]
    assert g.group[1].group is not None and g.group[1].group[0].name == "c"
    assert [m.kind for m in g.modifiers] == ["times", "optional"]
    assert rule.within_ms == 60_000
    assert g.span == Span(4, 3, 9, 20)


def test_within_on_its_own_line_bounds_the_pattern() -> None:
    own_line = one_rule("rule r\n pattern\n  begin a\n  next b where x\n  within 5m\nend")
    same_line = one_rule("rule r\n pattern\n  begin a\n  next b where x within 5m\nend")
    both = one_rule("rule r\n pattern\n  begin a\n  not followed by b within 1m\n"
                    "  within 5m\nend")
    assert own_line.within_ms == 300_000 and own_line.pattern[1].within_ms is None
    assert same_line.within_ms is None and same_line.pattern[1].within_ms == 300_000
    assert both.within_ms == 300_000 and both.pattern[1].within_ms == 60_000
    # the stage's span shrinks back when its trailing `within` moves to the rule
    assert own_line.pattern[1].span == Span(4, 3, 4, 16)
    assert dict(own_line.spans)["within"] == Span(5, 3, 5, 11)


def test_within_on_its_own_line_inside_a_pattern_stays_on_the_stage() -> None:
    rule = one_rule("rule r\n pattern\n  begin a\n   within 5m\n  next b\nend")
    assert rule.pattern[0].within_ms == 300_000 and rule.within_ms is None


# ---------------------------------------------------------------------- expressions


@pytest.mark.parametrize("text,value", [
    ("500ms", 500), ("30s", 30_000), ("5m", 300_000), ("2h", 7_200_000), ("1d", 86_400_000),
])
def test_durations_are_milliseconds(text: str, value: int) -> None:
    assert cond(f"x < {text}") == Binary("<", P("x"), Lit(value, duration=True))


def test_literals() -> None:
    assert cond("x == 1.25") == Binary("==", P("x"), Lit(1.25))
    assert cond("x == 2e3") == Binary("==", P("x"), Lit(2000.0))
    assert cond("x == true or y == false or z is null") == Binary(
        "or", Binary("or", Binary("==", P("x"), Lit(True)), Binary("==", P("y"), Lit(False))),
        IsNull(P("z"), False))
    assert cond("x in [1, 'a', null,]") == Binary(
        "in", P("x"), ListLit((Lit(1), Lit("a"), Lit(None))))


def test_negative_numbers_fold_into_literals() -> None:
    assert cond("x > -5") == Binary(">", P("x"), Lit(-5))
    assert cond("x > -5m") == Binary(">", P("x"), Lit(-300_000, duration=True))
    assert cond("x > --5") == Binary(">", P("x"), Lit(5))
    assert cond("x > -y") == Binary(">", P("x"), Unary("-", P("y")))


@pytest.mark.parametrize("text,value", [
    (r'"a\"b"', 'a"b'), (r"'it\'s'", "it's"), (r'"tab\there"', "tab\there"),
    (r'"\\d+"', r"\d+"), (r'"\d+"', r"\d+"), (r'"\u00e9"', "é"), (r'"nl\n"', "nl\n"),
])
def test_string_escapes(text: str, value: str) -> None:
    assert unquote_string(text) == value
    assert cond(f"x == {text}") == Binary("==", P("x"), Lit(value))


def test_precedence() -> None:
    a, b, c = P("a"), P("b"), P("c")
    assert cond("a or b and c") == Binary("or", a, Binary("and", b, c))
    assert cond("not a == b") == Unary("not", Binary("==", a, b))
    assert cond("not a and b") == Binary("and", Unary("not", a), b)
    assert cond("a + b * c") == Binary("+", a, Binary("*", b, c))
    assert cond("a - b - c") == Binary("-", Binary("-", a, b), c)
    assert cond("(a - b) * c") == Binary("*", Binary("-", a, b), c)
    assert cond("-a * b") == Binary("*", Unary("-", a), b)
    assert cond("-first(s).x") == Unary("-", Attr(Call("first", (P("s"),)), ("x",)))
    assert cond("a + b < c and a is not null") == Binary(
        "and", Binary("<", Binary("+", a, b), c), IsNull(a, True))


def test_multi_word_operators() -> None:
    a = P("a")
    for op in ("not in", "starts with", "ends with"):
        spaced = op.replace(" ", "   ")
        assert cond(f'a {spaced} "x"') == Binary(op, a, Lit("x"))
    assert cond('a matches "x+"') == Binary("matches", a, Lit("x+"))
    assert cond('a contains "x"') == Binary("contains", a, Lit("x"))


def test_paths_and_names() -> None:
    assert cond("this.user == `from`") == Binary("==", P("this", "user"), P("from"))
    assert cond("fail.`user-agent` == `@timestamp`") == Binary(
        "==", P("fail", "user-agent"), P("@timestamp"))
    # keywords inside longer names, and keywords after a dot, are names
    assert cond("nothing == fromage.end and notify") == Binary(
        "and", Binary("==", P("nothing"), P("fromage", "end")), P("notify"))
    # a keyword the grammar cannot accept at a position is read as a name there
    assert cond("x == from") == Binary("==", P("x"), P("from"))


def test_calls_with_fields() -> None:
    assert cond("first(s).a.b == last(t).`c d`") == Binary(
        "==", Attr(Call("first", (P("s"),)), ("a", "b")),
        Attr(Call("last", (P("t"),)), ("c d",)))
    assert cond("round(x, 2) > f()") == Binary(
        ">", Call("round", (P("x"), Lit(2))), Call("f", ()))


# ---------------------------------------------------------------------- spans


def test_spans_are_one_based_and_inclusive() -> None:
    text = "rule r\n  pattern\n    begin fail where user == 'x' times 2\nend\n"
    rule = one_rule(text)
    st = rule.pattern[0]
    assert rule.span == Span(1, 1, 4, 3)
    assert rule.name_span == Span(1, 6, 1, 6)
    assert st.name_span == Span(3, 11, 3, 14)
    assert st.span == Span(3, 5, 3, 40)
    assert st.condition is not None and st.condition.span == Span(3, 22, 3, 32)
    assert st.modifiers[0].span == Span(3, 34, 3, 40)


def test_emit_field_spans() -> None:
    rule = one_rule("rule r pattern begin a\n emit {\n  x: a.x,\n  `y z`: 1 }\nend")
    emit = rule.match_emit
    assert emit is not None
    assert emit.field_spans == (Span(3, 3, 3, 3), Span(4, 3, 4, 7))
    assert [n for n, _ in emit.fields] == ["x", "y z"]


# ---------------------------------------------------------------------- errors


@pytest.mark.parametrize("path", fixture_files("syntax"), ids=lambda p: p.stem)
def test_syntax_fixture(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    rf, diags = parse_text(text, path.name)
    assert diags, "a syntax fixture must produce at least one error"
    assert all(d.severity == "error" for d in diags)
    compare_expected(path, rendered(diags, path.name, text))


def test_every_error_of_a_file_is_reported_and_good_rules_survive() -> None:
    path = FIXTURES / "syntax" / "three_broken_rules.cep"
    rf, diags = parse_file(path)
    assert len(diags) == 3
    assert [r.name for r in rf.rules] == ["good_one", "good_two"]


def test_missing_end_keeps_the_next_rule() -> None:
    rf, diags = parse_text("rule a pattern begin x\nrule b pattern begin y end\n")
    assert len(diags) == 1 and "missing `end`" in diags[0].message
    assert [r.name for r in rf.rules] == ["b"]


def test_error_at_end_of_file() -> None:
    rf, diags = parse_text("rule a pattern begin x where")
    assert len(diags) == 1 and rf.rules == ()


def test_unreadable_file(tmp_path: Path) -> None:
    rf, diags = parse_file(tmp_path / "missing.cep")
    assert rf.rules == () and len(diags) == 1 and "cannot read" in diags[0].message
    bad = tmp_path / "latin1.cep"
    bad.write_bytes(b"rule \xe9 end")
    assert "cannot read" in parse_file(bad)[1][0].message


def test_render_without_source_or_position() -> None:
    d = ast.Span(0, 0, 0, 0)
    from cep.diagnostics import Diagnostic
    assert render(Diagnostic("f.cep", d, "boom", hint="h"), None) == "f.cep: error: boom\n  hint: h"
    spanned = Diagnostic("f.cep", Span(2, 3, 3, 1), "multi", "warning")
    assert render(spanned, "x\n\tab cd\ny") == "f.cep:2:3: warning: multi\n\tab cd\n\t ^~~~"


# ---------------------------------------------------------------------- layering


LAYER01 = ["cep/errors.py", "cep/diagnostics.py", *sorted(
    str(p.relative_to(Path(__file__).parents[2])) for p in
    (Path(__file__).parents[2] / "cep" / "lang").glob("*.py"))]


@pytest.mark.parametrize("module", LAYER01)
def test_language_modules_import_no_runtime_libraries(module: str) -> None:
    source = (Path(__file__).parents[2] / module).read_text(encoding="utf-8")
    imported: set[str] = set()
    for node in pyast.walk(pyast.parse(source)):
        if isinstance(node, pyast.Import):
            imported.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, pyast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"asyncio", "aiokafka", "typer", "msgpack"}
