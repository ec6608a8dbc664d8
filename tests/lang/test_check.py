"""Semantic checks: one fixture per rejection, good files that check clean, loading."""

from __future__ import annotations

from pathlib import Path

import pytest

from cep.diagnostics import Diagnostic, has_errors
from cep.errors import CepError, ConfigError, InputError, RuleError
from cep.lang.ast import Span
from cep.lang.check import (
    MAX_EXPR_DEPTH,
    check_rule,
    check_rule_file,
    check_rule_set,
    expr_depth,
)
from cep.lang.load import load_rules
from cep.lang.parse import parse_file, parse_text

from .helpers import compare_expected, fixture_files, rendered


def diagnose(text: str) -> list[Diagnostic]:
    rf, diags = parse_text(text)
    assert diags == [], [d.message for d in diags]
    return check_rule_file(rf)


def messages(text: str) -> list[str]:
    return [f"{d.severity}: {d.message}" for d in diagnose(text)]


@pytest.mark.parametrize("path", fixture_files("check"), ids=lambda p: p.stem)
def test_check_fixture(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    rf, parse_diags = parse_text(text, path.name)
    assert parse_diags == [], "check fixtures must parse"
    diags = check_rule_file(rf)
    assert diags, "a check fixture must produce at least one diagnostic"
    for d in diags:
        assert d.span.line > 0, "every diagnostic points somewhere"
        assert d.message.startswith("rule `"), "every diagnostic names its rule"
    compare_expected(path, rendered(diags, path.name, text))


def test_there_are_enough_fixtures() -> None:
    assert len(fixture_files("check")) + len(fixture_files("syntax")) >= 30


@pytest.mark.parametrize("path", fixture_files("good"), ids=lambda p: p.stem)
def test_good_files_check_clean(path: Path) -> None:
    rf, diags = parse_file(path)
    assert diags == []
    assert rf.rules
    assert check_rule_file(rf) == []


# ---------------------------------------------------------------------- single rules


def test_allowed_forms_are_not_reported() -> None:
    assert messages("""
rule fine
  pattern
    begin a where x == 1 times 0 to 2
    next b where count(a) < 3 and first(a).x == b.x one or more consecutive greedy until y
    next c where sum(b.v) > 1 times 2 allow combinations
    not next d within 30s
    followed by e optional
  within 1m
  after match skip to last b
  on timeout emit { a: first(a).x, n: count(b), last_ts: last(b).ts, e: e.x }
end
""") == []


def test_header_where_may_use_fields_and_this() -> None:
    assert messages("rule r\n where this.a == 1 and b is not null\n pattern\n"
                    "  begin s\nend") == []


def test_field_named_like_no_stage_is_a_field() -> None:
    assert messages("rule r pattern begin a where x.f == 1 end") == []


def test_not_followed_by_with_zero_window_is_still_open_ended() -> None:
    out = messages("rule r pattern begin a\n not followed by b\n within 0ms\nend")
    assert any("cannot end with `not followed by`" in m for m in out)


def test_timeout_emit_with_a_stage_window_is_fine() -> None:
    assert messages("rule r pattern begin a followed by b within 5s "
                    "on timeout emit { x: a.x } end") == []


def test_not_stage_after_times_zero_range_in_a_group() -> None:
    out = messages("rule r\n pattern\n  begin a\n  next g (\n   begin b times 0 to 2\n"
                   "   not next c\n   next d\n  )\nend")
    assert any("cannot follow the optional stage `b`" in m for m in out)


def test_every_diagnostic_names_the_file() -> None:
    rf, _ = parse_text("rule r pattern next a end", "some/file.cep")
    assert {d.file for d in check_rule_file(rf)} == {"some/file.cep"}
    assert check_rule(rf.rules[0], "x.cep")[0].file == "x.cep"


# ---------------------------------------------------------------------- rule sets


def test_duplicate_rule_names_across_files() -> None:
    a, _ = parse_text("rule x pattern begin a end\nrule y pattern begin a end", "a.cep")
    b, _ = parse_text("rule x pattern begin b end\nrule x pattern begin c end", "b.cep")
    diags = check_rule_set([a, b])
    assert [(d.file, d.span.line, d.message) for d in diags] == [
        ("b.cep", 1, "rule `x` is already defined in a.cep:1")]
    # the duplicate inside b.cep is check_rule_file's
    assert [d.span.line for d in check_rule_file(b)] == [2]


def test_load_rules_walks_directories(tmp_path: Path) -> None:
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    (tmp_path / "b.cep").write_text("rule b pattern begin a end\n")
    (tmp_path / "sub" / "a.cep").write_text("rule a pattern begin a end\n")
    (tmp_path / "sub" / "deeper" / "c.cep").write_text("rule b pattern next a end\n")
    (tmp_path / "sub" / "notes.txt").write_text("rule z pattern end\n")
    files, diags = load_rules([tmp_path, tmp_path / "b.cep", tmp_path / "nope"])
    names = [Path(f.path).relative_to(tmp_path).as_posix() for f in files]
    assert names == ["b.cep", "sub/a.cep", "sub/deeper/c.cep"]
    summary = sorted((Path(d.file).name, d.message) for d in diags)
    assert summary == [
        ("c.cep", "rule `b` is already defined in " + str(tmp_path / "b.cep") + ":1"),
        ("c.cep", "rule `b`: the first stage of a pattern uses `begin`"),
        ("nope", "no such file or directory"),
    ]
    assert has_errors(diags)


def test_load_rules_keeps_syntax_and_check_errors_of_one_file_in_line_order(
        tmp_path: Path) -> None:
    path = tmp_path / "r.cep"
    path.write_text("rule a pattern next x end\nrule b pattern begin x where y = 1 end\n")
    _, diags = load_rules([path])
    assert [d.span.line for d in diags] == [1, 2]


def test_shipped_examples_check_clean() -> None:
    root = Path(__file__).parents[2]
    paths = [p for p in (root / "examples", root / "rules") if p.exists()]
    _, diags = load_rules(paths)
    assert not has_errors(diags), [d.message for d in diags]


# ---------------------------------------------------------------------- errors


def test_error_tree_exit_codes() -> None:
    d = Diagnostic("f.cep", Span(1, 1, 1, 1), "m")
    err = RuleError([d])
    assert isinstance(err, CepError) and err.exit_code == 1 and err.diagnostics == (d,)
    assert "1 error" in str(err)
    assert ConfigError("x").exit_code == 2 and InputError("x").exit_code == 3


def test_very_deep_expressions_are_an_error_not_a_crash() -> None:
    def rule(n: int) -> str:
        return "rule r pattern begin a where " + " or ".join(f"x == {i}" for i in range(n)) \
            + " end"

    assert messages(rule(100)) == []
    assert messages(rule(5000)) == [
        f"error: rule `r`: expression nested more than {MAX_EXPR_DEPTH} levels deep"]
    assert expr_depth(parse_text(rule(3))[0].rules[0].pattern[0].condition) == 4  # type: ignore[arg-type]
