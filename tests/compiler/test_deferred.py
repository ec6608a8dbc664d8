"""Deferred compilation (cep/compiler/deferred.py, ``build_rule(defer=True)``): the same
generated code, compiled on first use; a failure then disables the condition, logged."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from cep.compiler import runtime as rt
from cep.compiler.build import build_rule
from cep.compiler.codegen import CompileError, StageScope, compile_condition, compile_header_filter
from cep.event import Event
from cep.lang import ast
from cep.lang.format import format_expr

NO_STAGES = StageScope()


def f(*parts: str) -> ast.Path:
    return ast.Path(parts)


def lit(v: Any) -> ast.Lit:
    return ast.Lit(v)


def ev(data: dict[str, Any]) -> Event:
    return Event(1000, 0, data)


EXPRS: list[ast.Expr] = [
    ast.Binary("==", f("x"), lit(1)),
    ast.Binary("and", ast.Binary("contains", ast.Call("lower", (f("cmd"),)), lit("whoami")),
               ast.Binary("in", f("id"), ast.ListLit((lit(4688), lit(4624))))),
    ast.Binary("matches", f("cmd"), lit("^c.d$")),
    ast.Unary("not", ast.Binary("ends with", f("img"), lit("\\cmd.exe"))),
]
DATA = [{}, {"x": 1}, {"x": "1"}, {"cmd": "CMD", "id": 4688}, {"cmd": "c/d whoami", "id": 4624},
        {"img": "C:\\cmd.exe"}, {"img": "a"}, {"cmd": "cxd"}]


@pytest.mark.parametrize("expr", EXPRS, ids=format_expr)
def test_deferred_condition_is_the_eager_one_compiled_later(expr: ast.Expr) -> None:
    eager = compile_condition(expr, NO_STAGES, "e")
    lazy = compile_condition(expr, NO_STAGES, "e", defer="r")
    assert lazy.fn.__code__.co_name == "stub"  # not compiled yet
    assert lazy.code.source == eager.code.source  # type: ignore[attr-defined]
    assert lazy.code.data_expr == eager.code.data_expr  # type: ignore[attr-defined]
    assert (lazy.iterative, lazy.always) == (eager.iterative, eager.always)
    fn = lazy.fn
    assert [fn(ev(d), None) for d in DATA] == [eager.fn(ev(d), None) for d in DATA]
    assert lazy.fn is fn and fn.__code__.co_name == "_cond"  # rebound: no indirection left
    assert fn.__code__.co_code == eager.fn.__code__.co_code


def test_deferred_header_filter() -> None:
    expr = ast.Binary("==", f("src"), lit("a"))
    code = compile_header_filter(expr, defer="r")
    assert code.fn.__code__.co_name == "stub"
    assert code.fn(ev({"src": "a"})) is True and code.fn(ev({})) is False
    assert code.fn.__code__.co_name == "_filter"


def _too_deep() -> ast.Expr:
    """Nested too deeply for Python's parser (over 200 parentheses), not for the
    generator."""
    expr: ast.Expr = f("x")
    for _ in range(260):
        expr = ast.Unary("-", expr)
    return ast.Binary("==", expr, lit(1))


def test_deferred_compile_failure_disables_the_condition_and_is_logged(
        caplog: pytest.LogCaptureFixture) -> None:
    expr = _too_deep()
    with pytest.raises(CompileError):
        compile_condition(expr, NO_STAGES, "deep")  # eager: an error up front (cep check)
    cond = compile_condition(expr, NO_STAGES, "deep", defer="deep_rule")
    with caplog.at_level(logging.ERROR, logger="cep.compiler"):
        assert cond.fn(ev({"x": -1}), None) is False
        assert cond.fn(ev({"x": 1}), None) is False
    [record] = caplog.records
    assert record.getMessage().startswith("rule `deep_rule`: condition `deep` cannot be "
                                          "compiled (")
    assert record.getMessage().endswith("): disabled, it never holds")


def test_deferred_regex_compiles_on_first_test(caplog: pytest.LogCaptureFixture) -> None:
    r = rt.Regex("a+b", deferred=True)
    assert r._re is None
    assert rt.matches(r, "xaab") and not rt.matches(r, "ab"[::-1])
    assert r._re is not None
    bad = rt.Regex("(a)\\1", deferred=True)  # a back-reference: RE2 refuses it
    with caplog.at_level(logging.ERROR, logger="cep.compiler"):
        assert not rt.matches(bad, "aa") and not rt.matches(bad, "aa")
    assert len(caplog.records) == 1
    with pytest.raises(Exception):  # noqa: B017 - re2.error
        rt.Regex("(a)\\1")


def test_build_rule_deferred_matches_like_eager() -> None:
    cond = EXPRS[1]
    rule = ast.Rule(name="r", pattern=(ast.Stage("begin", "s", cond, ()),))
    eager, lazy = build_rule(rule, "<t>"), build_rule(rule, "<t>", defer=True)
    assert (eager.version, eager.text) == (lazy.version, lazy.text)
    [te], [tl] = eager.nfa.start_take_conds, lazy.nfa.start_take_conds
    assert tl.origin is not None and tl.origin.fn.__code__.co_name == "stub"
    for d in DATA:
        assert te.fn(ev(d), None) == tl.fn(ev(d), None)
    assert tl.origin.fn.__code__.co_name == "_cond"
