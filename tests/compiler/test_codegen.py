"""Tests of expression compilation: semantics tables, stage references, emits, keys, safety."""

from __future__ import annotations

import ast as pyast
import math
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cep.compiler import runtime as rt
from cep.compiler.codegen import (
    CompileError,
    StageScope,
    compile_condition,
    compile_emit,
    compile_header_filter,
    compile_key,
    key_names,
    source_of,
)
from cep.event import Event, HeldEvent, hold
from cep.lang import ast
from cep.nfa.pattern import PartialMatchNode

# --------------------------------------------------------------------------- AST builders

MISSING = object()  # marks "field absent" in tables


def lit(v: Any, duration: bool = False) -> ast.Lit:
    return ast.Lit(v, duration=duration)


def E(v: Any) -> ast.Expr:
    """Python value → literal node; AST nodes pass through."""
    if isinstance(v, ast.Lit | ast.ListLit | ast.Path | ast.Unary | ast.Binary | ast.IsNull
                  | ast.Call | ast.Attr):
        return v
    if isinstance(v, list):
        return ast.ListLit(tuple(E(i) for i in v))
    return ast.Lit(v)


def f(*parts: str) -> ast.Path:
    return ast.Path(parts)


def b(op: str, left: Any, right: Any) -> ast.Binary:
    return ast.Binary(op, E(left), E(right))


def not_(x: Any) -> ast.Unary:
    return ast.Unary("not", E(x))


def neg(x: Any) -> ast.Unary:
    return ast.Unary("-", E(x))


def isnull(x: Any, negated: bool = False) -> ast.IsNull:
    return ast.IsNull(E(x), negated)


def call(name: str, *args: Any) -> ast.Call:
    return ast.Call(name, tuple(E(a) for a in args))


def attr(obj: ast.Expr, *parts: str) -> ast.Attr:
    return ast.Attr(obj, parts)


def ev(data: dict[str, Any] | None = None, ts: int = 1000, seq: int = 0) -> Event:
    return Event(ts, seq, dict(data or {}))


def chain(*items: tuple[str, Event]) -> PartialMatchNode | None:
    """A partial match from (stage, event) pairs given oldest first."""
    node: PartialMatchNode | None = None
    for stage, e in items:
        node = PartialMatchNode(stage, e, node)
    return node


NO_STAGES = StageScope()


def check(expr: ast.Expr, data: dict[str, Any], stages: StageScope = NO_STAGES,
          pm: PartialMatchNode | None = None, ts: int = 1000) -> bool:
    cond = compile_condition(expr, stages, "test")
    assert_safe_source(source_of(cond))
    out = cond.fn(ev(data, ts), pm)
    assert type(out) is bool
    return out


def value(expr: ast.Expr, data: dict[str, Any]) -> Any:
    """Value of ``expr`` on one event, through an emit (bare fields read the latest event)."""
    emit = compile_emit((("v", expr),), NO_STAGES)
    assert_safe_source(source_of(emit))
    return emit.fn({"s": [ev(data)]})["v"]


def same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and (a == b or (isinstance(a, float) and math.isnan(a)
                                              and math.isnan(b)))


def row(data_value: Any) -> dict[str, Any]:
    return {} if data_value is MISSING else {"x": data_value}


# --------------------------------------------------------------------------- source safety

ALLOWED_NAMES = set(rt.HELPERS) | {"ev", "pm", "m", "_d", "_SCALAR", "None", "True", "False"}
ALLOWED_ATTRS = {"get", "data", "ts", "lower", "upper", "startswith", "endswith", "casefold"}


def assert_safe_source(source: str) -> None:
    """Structural check of generated code: one function, generated identifiers only, a fixed
    set of attribute names, no imports/lambdas/comprehensions; rule text only in constants."""
    tree = pyast.parse(source)
    assert len(tree.body) == 1 and isinstance(tree.body[0], pyast.FunctionDef)
    fn = tree.body[0]
    assert fn.name in {"_cond", "_filter", "_key", "_emit"}
    for node in pyast.walk(fn):
        assert not isinstance(node, pyast.Import | pyast.ImportFrom | pyast.Lambda
                              | pyast.ListComp | pyast.GeneratorExp | pyast.Subscript
                              | pyast.Global | pyast.JoinedStr)
        if isinstance(node, pyast.Name):
            ok = node.id in ALLOWED_NAMES or node.id[:2] in ("_v", "_c") and node.id[2:].isdigit()
            assert ok, node.id
        if isinstance(node, pyast.Attribute):
            assert node.attr in ALLOWED_ATTRS, node.attr
        if isinstance(node, pyast.Call):
            assert isinstance(node.func, pyast.Name | pyast.Attribute)


# --------------------------------------------------------------------------- comparisons

CMP_TABLE = [
    # (op, left, right literal, data value of x, expected)
    ("==", f("x"), "a", "a", True),
    ("==", f("x"), "a", "b", False),
    ("==", f("x"), "a", MISSING, False),
    ("==", f("x"), "a", None, False),
    ("==", f("x"), "a", 1, False),
    ("==", f("x"), "a", ["a"], False),
    ("!=", f("x"), "a", "b", True),
    ("!=", f("x"), "a", "a", False),
    ("!=", f("x"), "a", MISSING, False),
    ("!=", f("x"), "a", 1, True),
    ("==", f("x"), 5, 5, True),
    ("==", f("x"), 5, 5.0, True),
    ("==", f("x"), 1, True, False),
    ("==", f("x"), 5, "5", False),
    ("==", f("x"), 5, MISSING, False),
    ("!=", f("x"), 5, 6, True),
    ("!=", f("x"), 1, True, True),
    ("!=", f("x"), 5, 5.0, False),
    ("!=", f("x"), 5, MISSING, False),
    ("==", f("x"), True, True, True),
    ("==", f("x"), True, 1, False),
    ("==", f("x"), False, False, True),
    ("!=", f("x"), True, False, True),
    ("!=", f("x"), True, 1, True),
    ("!=", f("x"), True, True, False),
    ("!=", f("x"), True, MISSING, False),
    ("==", f("x"), None, None, False),
    ("==", f("x"), None, 1, False),
    ("!=", f("x"), None, 1, False),
    ("!=", f("x"), None, MISSING, False),
    ("<", f("x"), 5, 4, True),
    ("<", f("x"), 5, 4.5, True),
    ("<", f("x"), 5, 5, False),
    ("<", f("x"), 5, "a", False),
    ("<", f("x"), 5, True, False),
    ("<", f("x"), 5, None, False),
    ("<", f("x"), 5, [1], False),
    ("<=", f("x"), 5, 5, True),
    (">", f("x"), 5, 6, True),
    (">", f("x"), 5.5, 6, True),
    (">", f("x"), -5, -4, True),
    (">=", f("x"), 5, 4.99, False),
    ("<", f("x"), "m", "a", True),
    ("<", f("x"), "m", "z", False),
    ("<", f("x"), "m", 1, False),
    (">=", f("x"), "m", "m", True),
    ("<", f("x"), True, False, False),
    ("<", 5, f("x"), 6, True),  # literal on the left is flipped
    (">=", 5, f("x"), 6, False),
    ("==", "a", f("x"), "a", True),
    ("!=", 5, f("x"), 6, True),
]


@pytest.mark.parametrize(("op", "left", "right", "x", "expected"), CMP_TABLE)
def test_comparison_with_literal(op: str, left: Any, right: Any, x: Any, expected: bool) -> None:
    assert check(b(op, left, right), row(x)) is expected


FIELD_CMP = [
    ("==", 1, 1.0, True), ("==", True, 1, False), ("==", [1, 2], [1, 2], True),
    ("==", {"a": 1}, {"a": 1}, True), ("==", None, None, False), ("==", "a", "a", True),
    ("!=", None, None, False), ("!=", 1, None, False), ("!=", 1, 2, True), ("!=", True, 1, True),
    ("<", 1, 2, True), ("<", "a", "b", True), ("<", 1, "a", False), ("<", None, 1, False),
    ("<", True, 2, False), ("<=", 2, 2.0, True), (">", 3, 2, True), (">=", "b", "a", True),
    (">", [2], [1], False),
]


@pytest.mark.parametrize(("op", "x", "y", "expected"), FIELD_CMP)
def test_comparison_of_two_fields(op: str, x: Any, y: Any, expected: bool) -> None:
    assert check(b(op, f("x"), f("y")), {"x": x, "y": y}) is expected


def test_comparing_two_literals_folds() -> None:
    cond = compile_condition(b("<", 1, 2), NO_STAGES, "1 < 2")
    assert cond.always and "return True" in source_of(cond)
    assert not compile_condition(b("==", 1, True), NO_STAGES, "").always


# --------------------------------------------------------------------------- logic & truth

LOGIC = [
    (f("ok"), {"ok": True}, True),
    (f("ok"), {"ok": 1}, False),
    (f("ok"), {"ok": "true"}, False),
    (f("ok"), {"ok": [1]}, False),
    (f("ok"), {}, False),
    (not_(f("ok")), {}, True),
    (not_(f("ok")), {"ok": True}, False),
    (not_(f("ok")), {"ok": "yes"}, True),
    (not_(b("==", f("x"), "a")), {}, True),  # two-valued logic
    (not_(b("<", f("x"), 5)), {"x": "a"}, True),
    (b("and", f("a"), f("b")), {"a": True, "b": True}, True),
    (b("and", f("a"), f("b")), {"a": True, "b": 1}, False),
    (b("or", f("a"), f("b")), {"a": None, "b": True}, True),
    (b("or", f("a"), f("b")), {}, False),
    (b("and", b("==", f("type"), "login"), not_(f("ok"))), {"type": "login"}, True),
    (b("and", b("==", f("type"), "login"), not_(f("ok"))), {"type": "login", "ok": True}, False),
    (b("or", b("and", f("a"), f("b")), not_(f("c"))), {"a": True}, True),
    (lit(True), {}, True),
    (lit(False), {}, False),
    (lit(None), {}, False),
    (lit(1), {}, False),
    (not_(lit(True)), {}, False),
    (not_(lit(None)), {}, True),
    (f("s"), {"s": "x"}, False),
]


@pytest.mark.parametrize(("expr", "data", "expected"), LOGIC)
def test_logic_and_truthiness(expr: ast.Expr, data: dict[str, Any], expected: bool) -> None:
    assert check(expr, data) is expected


def test_literal_true_is_always_and_short_circuit_source() -> None:
    assert compile_condition(lit(True), NO_STAGES, "true").always
    assert not compile_condition(lit(False), NO_STAGES, "false").always
    src = source_of(compile_condition(b("and", f("a"), b("or", f("b"), f("c"))), NO_STAGES, ""))
    assert " and " in src and " or " in src


def test_long_and_chain_is_flattened() -> None:
    expr: ast.Expr = b("==", f("k0"), 0)
    for i in range(1, 1500):
        expr = b("and", expr, b("==", f(f"k{i}"), i))
    cond = compile_condition(expr, NO_STAGES, "long")
    assert cond.fn(ev({f"k{i}": i for i in range(1500)}), None) is True
    assert cond.fn(ev({f"k{i}": i for i in range(1499)}), None) is False


def test_too_deep_nesting_is_a_compile_error_not_a_crash() -> None:
    expr: ast.Expr = f("x")
    for _ in range(3000):
        expr = neg(expr)
    with pytest.raises(CompileError):
        compile_condition(b("==", expr, 1), NO_STAGES, "deep")


# --------------------------------------------------------------------------- arithmetic

ARITH = [
    (b("+", f("x"), 1), {"x": 1}, 2),
    (b("+", f("x"), 1), {"x": 1.5}, 2.5),
    (b("+", f("x"), 1), {"x": "a"}, None),
    (b("+", f("x"), 1), {"x": True}, None),
    (b("+", f("x"), 1), {}, None),
    (b("+", 1, f("x")), {"x": 2}, 3),
    (b("+", f("x"), f("y")), {"x": "a", "y": "b"}, "ab"),
    (b("+", f("x"), f("y")), {"x": 1, "y": "b"}, None),
    (b("+", f("x"), f("y")), {"x": [1], "y": [2]}, None),
    (b("+", f("x"), 0.5), {"x": 1}, 1.5),
    (b("-", f("x"), 1), {"x": 1}, 0),
    (b("-", 10, f("x")), {"x": 4}, 6),
    (b("-", f("x"), f("y")), {"x": "b", "y": "a"}, None),
    (b("*", f("x"), 2), {"x": 3}, 6),
    (b("*", f("x"), 2), {"x": "ab"}, None),  # no string repetition
    (b("*", f("x"), f("y")), {"x": "ab", "y": 1000}, None),
    (b("/", f("x"), 2), {"x": 5}, 2.5),
    (b("/", f("x"), 0), {"x": 5}, None),
    (b("/", f("x"), f("y")), {"x": 5, "y": 0.0}, None),
    (b("%", f("x"), 3), {"x": 7}, 1),
    (b("%", f("x"), 3), {"x": -7}, 2),
    (b("%", f("x"), 0), {"x": 7}, None),
    (b("%", f("x"), f("y")), {"x": 7.5, "y": 2}, 1.5),
    (neg(f("x")), {"x": 3}, -3),
    (neg(f("x")), {"x": "a"}, None),
    (neg(f("x")), {"x": True}, None),
    (neg(5), {}, -5),
    (b("+", b("*", f("x"), 2), b("/", f("y"), 4)), {"x": 1, "y": 2}, 2.5),
    (b("+", 1, 2), {}, 3),
    (b("+", "a", "b"), {}, "ab"),
    (b("/", 1, 0), {}, None),
    (b("*", f("x"), f("y")), {"x": 10**400, "y": 1.5}, None),  # overflow
    (b("/", f("x"), 3), {"x": 10**400}, None),
    (b("+", f("x"), lit(300000, duration=True)), {"x": 1}, 300001),
]


@pytest.mark.parametrize(("expr", "data", "expected"), ARITH)
def test_arithmetic(expr: ast.Expr, data: dict[str, Any], expected: Any) -> None:
    assert same(value(expr, data), expected)
    # The same value seen from a condition: `expr == expected` / `expr is null`.
    probe = isnull(expr) if expected is None else b("==", expr, expected)
    assert check(probe, data) is True


def test_arithmetic_in_comparisons() -> None:
    assert check(b(">", b("+", f("a"), f("b")), 10), {"a": 6, "b": 5}) is True
    assert check(b(">", b("+", f("a"), f("b")), 10), {"a": 6}) is False
    assert check(not_(b(">", b("+", f("a"), f("b")), 10)), {"a": 6}) is True


# --------------------------------------------------------------------------- null tests

@pytest.mark.parametrize(("data", "is_null"), [
    ({}, True), ({"x": None}, True), ({"x": 0}, False), ({"x": ""}, False),
    ({"x": False}, False), ({"x": []}, False),
])
def test_is_null(data: dict[str, Any], is_null: bool) -> None:
    assert check(isnull(f("x")), data) is is_null
    assert check(isnull(f("x"), negated=True), data) is (not is_null)


def test_is_null_on_literals_and_nested() -> None:
    assert compile_condition(isnull(None), NO_STAGES, "").always
    assert check(isnull(f("a", "b")), {"a": "str"}) is True
    assert check(isnull(b("+", f("a"), 1)), {"a": "s"}) is True


# --------------------------------------------------------------------------- membership

IN_TABLE = [
    (["a", "b"], "a", True), (["a", "b"], "c", False), (["a", "b"], MISSING, False),
    (["a", "b"], None, False), (["a", "b"], ["a"], False), (["a", "b"], 1, False),
    ([1, 2, 3], 2, True), ([1, 2, 3], 2.0, True), ([1, 2, 3], True, False),
    ([1, 2, 3], "1", False), ([1.5], 1.5, True),
    ([True], True, True), ([True], 1, False), ([1], True, False),
    (["a", 1, True], 1, True), (["a", 1, True], "a", True), (["a", 1, True], True, True),
    (["a", 1, True], False, False), (["a", 1, True], {"a": 1}, False),
    ([None, "a"], None, False), ([None, "a"], "a", True),
    ([], "a", False), ([], MISSING, False),
]


@pytest.mark.parametrize(("items", "x", "expected"), IN_TABLE)
def test_in_list_literal(items: list[Any], x: Any, expected: bool) -> None:
    assert check(b("in", f("x"), items), row(x)) is expected
    # not in: the negation, but false when x is null
    expected_not = (not expected) and x is not MISSING and x is not None
    assert check(b("not in", f("x"), items), row(x)) is expected_not


def test_in_list_of_strings_inlines_a_frozenset() -> None:
    cond = compile_condition(b("in", f("action"), ["login", "logout"]), NO_STAGES, "")
    src = source_of(cond)
    assert "_c0" in src and "login" not in src and "_in(" not in src
    assert cond.fn.__globals__["_c0"] == frozenset({"login", "logout"})


@pytest.mark.parametrize(("data", "expected"), [
    ({"x": "a", "y": "a"}, True), ({"x": "a", "y": "b"}, False), ({"x": 1, "y": 1.0}, True),
    ({"x": True, "y": 1}, False), ({}, False),
])
def test_in_list_with_field_items(data: dict[str, Any], expected: bool) -> None:
    assert check(b("in", f("x"), [f("y"), "zzz"]), data) is expected


CONTAINER_IN = [
    ("a", ["a", "b"], True), ("c", ["a", "b"], False), (1, [1.0], True), (True, [1], False),
    ("b", "abc", True), ("d", "abc", False), (1, "abc", False), ("k", {"k": 1}, True),
    ("a", None, False), (None, ["a"], False), ("a", 5, False), ([1], [[1]], True),
]


@pytest.mark.parametrize(("x", "c", "expected"), CONTAINER_IN)
def test_in_container_field(x: Any, c: Any, expected: bool) -> None:
    data = {"x": x, "c": c}
    assert check(b("in", f("x"), f("c")), data) is expected
    expected_not = not expected and x is not None and c is not None
    assert check(b("not in", f("x"), f("c")), data) is expected_not


STRING_OPS = [
    ("contains", "hello world", "lo w", True),
    ("contains", "hello", "xyz", False),
    ("contains", ["a", "b"], "a", True),
    ("contains", ["a", "b"], "c", False),
    ("contains", [1, 2], 2, True),
    ("contains", [1, 2], True, False),
    ("contains", {"k": 1}, "k", True),
    ("contains", None, "a", False),
    ("contains", 12345, "3", False),
    ("contains", "abc", None, False),
    ("starts with", "hello", "he", True),
    ("starts with", "hello", "lo", False),
    ("starts with", 123, "1", False),
    ("starts with", None, "a", False),
    ("starts with", ["he"], "he", False),
    ("ends with", "hello", "lo", True),
    ("ends with", "hello", "he", False),
    ("ends with", None, "o", False),
]


@pytest.mark.parametrize(("op", "x", "y", "expected"), STRING_OPS)
def test_string_operators(op: str, x: Any, y: Any, expected: bool) -> None:
    assert check(b(op, f("x"), y), {"x": x}) is expected  # literal right side (inlined)
    assert check(b(op, f("x"), f("y")), {"x": x, "y": y}) is expected  # runtime helper


def test_string_operator_inlining() -> None:
    src = source_of(compile_condition(b("starts with", f("p"), "/admin"), NO_STAGES, ""))
    assert ".startswith('/admin')" in src and "_starts_with" not in src


# --------------------------------------------------------------------------- regex

REGEX = [
    ("b", "abc", True),  # search semantics: anywhere in the string
    ("^b", "abc", False),
    ("^a.c$", "abc", True),
    ("^a.c$", "abcd", False),
    ("(?i)ADMIN", "the admin page", True),
    (r"\d{3}-\d{4}", "call 555-1234 now", True),
    ("é+", "caféé", True),
    ("x", 123, False),
    ("x", None, False),
    ("x", ["x"], False),
    ("a", "\ud800a", False),  # not encodable as UTF-8 → false, not an exception
]


@pytest.mark.parametrize(("pattern", "x", "expected"), REGEX)
def test_matches(pattern: str, x: Any, expected: bool) -> None:
    assert check(b("matches", f("x"), pattern), {"x": x}) is expected


def test_regex_is_compiled_once_with_re2_and_kept_out_of_source() -> None:
    pattern = "''' evil \"\"\""
    cond = compile_condition(b("matches", f("x"), pattern), NO_STAGES, "")
    src = source_of(cond)
    assert "evil" not in src
    assert isinstance(cond.fn.__globals__["_c0"], rt.Regex)
    assert cond.fn(ev({"x": "a" + pattern + "b"}), None) is True


@pytest.mark.parametrize("text", ["", "a", "ab", "ba", "é", "日本語a", "a\nb", "\x00a", "ÿ"])
@pytest.mark.parametrize("pattern", ["a", "^a", "a$", "^$", "(?i)A", "é|語", "(?s)a.b",
                                     "\\x00", "^.$", "[^a]"])
def test_regex_fast_path_agrees_with_search(pattern: str, text: str) -> None:
    import re2

    assert rt.Regex(pattern).test(text) is (re2.search(pattern, text) is not None)
    assert rt.Regex(pattern)._raw is not None  # the fast path is in use with this binding


def test_regex_is_linear_time() -> None:
    import time

    start = time.perf_counter()
    assert check(b("matches", f("x"), "^(a+)+$"), {"x": "a" * 5000 + "b"}) is False
    assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize("bad", ["(a", r"(a)\1", "(?<=a)b"])
def test_invalid_regex_is_a_compile_error(bad: str) -> None:
    with pytest.raises(CompileError, match="invalid regular expression"):
        compile_condition(b("matches", f("x"), bad), NO_STAGES, "")


def test_non_literal_regex_is_a_compile_error() -> None:
    with pytest.raises(CompileError, match="string literal"):
        compile_condition(b("matches", f("x"), f("y")), NO_STAGES, "")


# --------------------------------------------------------------------------- functions

FUNCS = [
    (call("lower", f("x")), {"x": "AbC"}, "abc"),
    (call("lower", f("x")), {"x": 1}, None),
    (call("lower", f("x")), {}, None),
    (call("upper", f("x")), {"x": "AbC"}, "ABC"),
    (call("upper", f("x")), {"x": ["a"]}, None),
    (call("len", f("x")), {"x": "héllo"}, 5),
    (call("len", f("x")), {"x": [1, 2]}, 2),
    (call("len", f("x")), {"x": {"a": 1}}, 1),
    (call("len", f("x")), {"x": 5}, None),
    (call("len", f("x")), {}, None),
    (call("abs", f("x")), {"x": -3}, 3),
    (call("abs", f("x")), {"x": -2.5}, 2.5),
    (call("abs", f("x")), {"x": True}, None),
    (call("abs", f("x")), {"x": "-1"}, None),
    (call("round", f("x")), {"x": 2.5}, 3),
    (call("round", f("x")), {"x": -2.5}, -3),
    (call("round", f("x")), {"x": 2.4}, 2),
    (call("round", f("x"), 2), {"x": 2.675}, 2.68),
    (call("round", f("x"), 1), {"x": 1.25}, 1.3),
    (call("round", f("x"), 0), {"x": 2.5}, 3.0),
    (call("round", f("x"), -2), {"x": 1250}, 1300),
    (call("round", f("x"), -2), {"x": -1250}, -1300),
    (call("round", f("x"), 2), {"x": 7}, 7),
    (call("round", f("x"), f("n")), {"x": 1.5, "n": "2"}, None),
    (call("round", f("x"), f("n")), {"x": 1.5, "n": True}, None),
    (call("round", f("x"), f("n")), {"x": 1.5, "n": 10**9}, 1.5),
    (call("round", f("x"), f("n")), {"x": 15, "n": -10**9}, 0),
    (call("round", f("x")), {"x": "2.5"}, None),
    (call("round", f("x")), {"x": 10**400 * 1.0 if False else 1e308}, int(1e308)),
    (call("haversine_km", 0, 0, 0, 0), {}, 0.0),
    (call("haversine_km", f("a"), f("b"), 0, 0), {"a": "x", "b": 0}, None),
    (call("haversine_km", f("a"), 0, 0, 0), {"a": 91}, None),
    (call("haversine_km", f("a"), 0, 0, 0), {"a": 10**400}, None),
    (call("haversine_km", f("a"), 0, 0, 0), {}, None),
    (call("lower", "ABC"), {}, "abc"),  # folded at compile time
]


@pytest.mark.parametrize(("expr", "data", "expected"), FUNCS)
def test_functions(expr: ast.Expr, data: dict[str, Any], expected: Any) -> None:
    got = value(expr, data)
    if expected is not None and type(expected) is int and abs(expected) > 2**64:
        expected = float(expected)  # emitted data keeps ints within 64 bits
    assert same(got, expected), (got, expected)


def test_haversine_paris_london() -> None:
    d = value(call("haversine_km", f("lat1"), f("lon1"), f("lat2"), f("lon2")),
              {"lat1": 48.8566, "lon1": 2.3522, "lat2": 51.5074, "lon2": -0.1278})
    assert 340 < d < 347


@pytest.mark.parametrize("expr", [
    call("lower"), call("lower", 1, 2), call("round", 1, 2, 3), call("haversine_km", 1, 2),
    call("nope", 1), call("eval", "1"), call("__import__", "os"),
])
def test_bad_calls_are_compile_errors(expr: ast.Expr) -> None:
    with pytest.raises(CompileError):
        compile_condition(expr, NO_STAGES, "")


# --------------------------------------------------------------------------- paths & names

PATHS = [
    (f("geo", "country"), {"geo": {"country": "FR"}}, "FR"),
    (f("geo", "country"), {"geo": "FR"}, None),
    (f("geo", "country"), {"geo": None}, None),
    (f("geo", "country"), {"geo": ["country"]}, None),
    (f("geo", "country"), {}, None),
    (f("a", "b", "c"), {"a": {"b": {"c": 3}}}, 3),
    (f("a", "b", "c"), {"a": {"b": 1}}, None),
    (f("a", "b", "c", "d"), {"a": {"b": {"c": {"d": 4}}}}, 4),
    (f("this", "user"), {"user": "u"}, "u"),
    (f("this", "geo", "country"), {"geo": {"country": "FR"}}, "FR"),
    (f("this"), {"a": 1}, {"a": 1}),
    (f("user-agent"), {"user-agent": "curl"}, "curl"),
    (f("@timestamp"), {"@timestamp": "2024"}, "2024"),
    (f("from"), {"from": "x"}, "x"),
    (f("a.b"), {"a.b": 1, "a": {"b": 2}}, 1),
    (f("a", "b"), {"a.b": 1, "a": {"b": 2}}, 2),
    (f("héllo wörld"), {"héllo wörld": 1}, 1),
    (f(""), {"": "empty"}, "empty"),
    (f("__class__"), {}, None),
    (f("__class__"), {"__class__": "c"}, "c"),
    (f("__globals__", "__builtins__"), {}, None),
    (f("a'b"), {"a'b": 1}, 1),
    (f('a"b\nc\\'), {'a"b\nc\\': 2}, 2),
    (f("get"), {"get": 3}, 3),
]


@pytest.mark.parametrize(("path", "data", "expected"), PATHS)
def test_paths(path: ast.Path, data: dict[str, Any], expected: Any) -> None:
    assert value(path, data) == expected
    probe = isnull(path) if expected is None else b("==", path, E(expected))
    if isinstance(expected, dict):
        probe = isnull(path, negated=True)
    assert check(probe, data) is True


# --------------------------------------------------------------------------- ts semantics


def test_ts_is_the_event_time_not_a_data_field() -> None:
    data = {"ts": "2024-01-01", "x": 1}
    assert check(b("==", f("ts"), 5000), data, ts=5000) is True
    assert check(b("==", f("this", "ts"), 5000), data, ts=5000) is True
    assert check(b(">", f("ts"), 4999), data, ts=5000) is True
    assert check(b("==", f("ts"), "2024-01-01"), data, ts=5000) is False
    # a nested `ts` is an ordinary field
    assert check(b("==", f("meta", "ts"), 7), {"meta": {"ts": 7}}, ts=5000) is True


def test_ts_difference_with_durations() -> None:
    stages = StageScope.of(["fail", "again"])
    pm = chain(("fail", ev({}, ts=1_000)))
    within = b("<", b("-", f("again", "ts"), f("fail", "ts")), lit(10_000, duration=True))
    this_minus = b("<", b("-", f("ts"), f("fail", "ts")), lit(10_000, duration=True))
    assert check(this_minus, {}, stages, pm, ts=10_999) is True
    assert check(this_minus, {}, stages, pm, ts=11_000) is False
    assert check(within, {}, stages, pm, ts=5_000) is False  # again has no event yet


# --------------------------------------------------------------------------- stages


STAGES = StageScope.of(["fail", "again", "done"])


def sample_pm() -> PartialMatchNode | None:
    return chain(
        ("fail", ev({"user": "alice", "ip": "1.1.1.1", "n": 1}, ts=100, seq=1)),
        ("again", ev({"user": "alice", "ip": "2.2.2.2", "n": 5, "c": "x"}, ts=200, seq=2)),
        ("again", ev({"user": "alice", "ip": "3.3.3.3", "n": "bad", "c": "y"}, ts=300, seq=3)),
        ("again", ev({"user": "alice", "ip": "4.4.4.4", "n": 2.5, "c": "x"}, ts=400, seq=4)),
    )


STAGE_VALUES = [
    (f("fail", "user"), "alice"),
    (f("fail", "ts"), 100),
    (f("again", "ip"), "2.2.2.2"),  # first event of a looping stage
    (f("again", "ts"), 200),
    (attr(call("first", f("again")), "ip"), "2.2.2.2"),
    (attr(call("last", f("again")), "ip"), "4.4.4.4"),
    (attr(call("last", f("again")), "ts"), 400),
    (call("count", f("again")), 3),
    (call("count", f("again", "c")), 3),
    (call("count", f("again", "missing")), 0),
    (call("count", f("done")), 0),
    (call("sum", f("again", "n")), 7.5),
    (call("sum", f("again", "ts")), 900),
    (call("sum", f("done", "n")), 0),
    (call("avg", f("again", "n")), 3.75),
    (call("avg", f("done", "n")), None),
    (call("min", f("again", "n")), 2.5),
    (call("max", f("again", "n")), 5),
    (call("max", f("done", "n")), None),
    (call("min", f("again", "ip")), None),  # strings are not numbers
    (call("distinct_count", f("again", "c")), 2),
    (call("distinct_count", f("again", "ip")), 3),
    (call("distinct_count", f("done", "c")), 0),
    (f("done", "user"), None),
    (attr(call("first", f("done")), "user"), None),
    (f("fail"), {"user": "alice", "ip": "1.1.1.1", "n": 1}),
    (b("+", 1, call("count", f("again"))), 4),
]


@pytest.mark.parametrize(("expr", "expected"), STAGE_VALUES)
def test_stage_references_in_conditions(expr: ast.Expr, expected: Any) -> None:
    if expected is None:
        probe = isnull(expr)
    elif isinstance(expected, dict):
        probe = b("==", b("in", "user", expr), True)
    else:
        probe = b("==", expr, expected)
    cond = compile_condition(probe, STAGES, "probe")
    assert cond.iterative
    assert cond.fn(ev({"user": "bob", "ip": "9.9.9.9", "n": 100}, ts=999), sample_pm()) is True


@pytest.mark.parametrize(("expr", "expected"), STAGE_VALUES)
def test_stage_references_in_emits(expr: ast.Expr, expected: Any) -> None:
    match: dict[str, list[Event]] = {}
    node = sample_pm()
    while node is not None:
        match.setdefault(node.stage, []).insert(0, node.event)
        node = node.prev
    out = compile_emit((("v", expr),), STAGES).fn(match)
    assert same(out["v"], expected) or out["v"] == expected


def test_aggregate_does_not_count_the_event_under_test() -> None:
    cond = compile_condition(b(">=", call("count", f("again")), 3), STAGES, "count(again) >= 3")
    pm = sample_pm()
    assert cond.fn(ev(), pm) is True
    assert cond.fn(ev(), pm.prev) is False  # type: ignore[union-attr]
    assert cond.fn(ev(), None) is False
    # count(…) is never null, so the comparison is inlined without a type guard
    assert "_pm_count(pm, 'again') >= (3)" in source_of(cond)


def test_stage_name_wins_and_this_disambiguates() -> None:
    data = {"fail": {"user": "field"}, "user": "bob"}
    assert check(b("==", f("fail", "user"), "alice"), data, STAGES, sample_pm()) is True
    assert check(b("==", f("this", "fail", "user"), "field"), data, STAGES, sample_pm()) is True
    # a name that is not a stage in scope (e.g. a group) is a field of the event under test
    assert check(b("==", f("grp", "user"), "g"), {"grp": {"user": "g"}}, STAGES) is True


def test_iterative_flag_and_pm_untouched() -> None:
    class Explosive:
        def __getattr__(self, name: str) -> Any:
            raise AssertionError("non-iterative condition touched the partial match")

    plain = compile_condition(b("and", b("==", f("fail"), "x"), b(">", f("ts"), 0)),
                              StageScope.of(["again"]), "")
    assert not plain.iterative
    assert "pm" not in source_of(plain).split("\n", 1)[1]
    assert plain.fn(ev({"fail": "x"}), Explosive()) is True  # type: ignore[arg-type]
    assert compile_condition(b("==", f("again", "x"), 1), STAGES, "").iterative
    assert compile_condition(b(">", call("count", f("again")), 1), STAGES, "").iterative
    assert compile_condition(isnull(attr(call("last", f("again")), "x")), STAGES, "").iterative


@pytest.mark.parametrize("expr", [
    call("count", f("nostage")), call("sum", f("x", "n")), call("sum", f("again")),
    call("first", f("again", "ip")), call("count", 1), call("count"),
    call("count", f("again"), f("fail")),
])
def test_bad_aggregates_are_compile_errors(expr: ast.Expr) -> None:
    with pytest.raises(CompileError):
        compile_condition(b("==", expr, 1), STAGES, "")


def test_condition_carries_label() -> None:
    cond = compile_condition(b("==", f("x"), 1), NO_STAGES, "x == 1")
    assert cond.label == "x == 1"


def test_stage_scope_from_pattern_skips_group_names() -> None:
    inner = (ast.Stage("begin", "ask", None, ()), ast.Stage("next", "reject", None, ()))
    stages = (ast.Stage("begin", "a", None, ()),
              ast.Stage("followed_by", "otp_round", None, (), group=inner))
    scope = StageScope.from_pattern(stages)
    assert scope.names == frozenset({"a", "ask", "reject"})
    assert "otp_round" not in scope


# --------------------------------------------------------------------------- header filter


def test_header_filter() -> None:
    flt = compile_header_filter(b("and", b("==", f("action"), "login"), b(">", f("ts"), 10)))
    assert_safe_source(source_of(flt))
    assert flt.fn(ev({"action": "login"}, ts=11)) is True
    assert flt.fn(ev({"action": "login"}, ts=10)) is False
    assert flt.fn(ev({}, ts=11)) is False
    assert compile_header_filter(f("fail", "x")).fn(ev({"fail": {"x": True}})) is True
    with pytest.raises(CompileError):
        compile_header_filter(b(">", call("count", f("fail")), 1))


# --------------------------------------------------------------------------- keys


def test_compile_key() -> None:
    one_code = compile_key((f("user"),))
    one = one_code.fn  # one path: the value itself
    assert one({"user": "alice"}) == "alice"
    assert one({}) is None
    assert one({"user": ["a", {"b": [1]}]}) == ("a", (("b", (1,)),))
    hash(one({"user": {"x": [1, {"y": 2}]}}))
    assert compile_key((f("device", "id"),)).fn({"device": {"id": 7}}) == 7
    two = compile_key((f("user"), f("device", "id"))).fn  # several: a tuple
    assert two({"user": "u", "device": {"id": 7}}) == ("u", 7)
    assert two({"user": "u", "device": "d"}) == ("u", None)
    assert two({"user": [1], "device": {"id": {"a": 1}}}) == ((1,), (("a", 1),))
    assert compile_key(()).fn({"user": "x"}) == ()
    assert compile_key((f("this", "user"),)).fn({"user": "x"}) == "x"
    odd = compile_key((f("user-agent"), f("__class__"), f("@ts")))
    assert odd.fn({"user-agent": "a", "@ts": 1}) == ("a", None, 1)
    assert_safe_source(source_of(odd))
    assert_safe_source(source_of(one_code))


def test_key_names() -> None:
    paths = (f("user"), f("device", "id"), f("this", "ip"))
    assert key_names(paths) == ("user", "device.id", "ip")


# --------------------------------------------------------------------------- emits


def test_emit_login_brute_force() -> None:
    stages = StageScope.of(["fail", "again"])
    emit = compile_emit((
        ("user", f("fail", "user")),
        ("attempts", b("+", 1, call("count", f("again")))),
        ("first_ip", f("fail", "src_ip")),
        ("last_ip", attr(call("last", f("again")), "src_ip")),
        ("span_ms", b("-", attr(call("last", f("again")), "ts"), f("fail", "ts"))),
        ("ips", call("distinct_count", f("again", "src_ip"))),
        ("total", call("sum", f("again", "bytes"))),
        ("end", f("ts")),
        ("tags", E(["a", f("fail", "user")])),
    ), stages)
    assert_safe_source(source_of(emit))
    match = {
        "fail": [ev({"user": "alice", "src_ip": "10.0.0.1"}, ts=0, seq=1)],
        "again": [ev({"src_ip": f"10.0.0.{i % 2}", "bytes": i}, ts=i * 1000, seq=i + 1)
                  for i in range(1, 5)],
    }
    out = emit.fn(match)
    assert out == {
        "user": "alice", "attempts": 5, "first_ip": "10.0.0.1", "last_ip": "10.0.0.0",
        "span_ms": 4000, "ips": 2, "total": 10, "end": 4000, "tags": ["a", "alice"],
    }
    assert list(out) == ["user", "attempts", "first_ip", "last_ip", "span_ms", "ips",
                         "total", "end", "tags"]
    orjson.dumps(out)


def test_emit_values_are_json_serialisable_copies() -> None:
    stages = StageScope.of(["s"])
    emit = compile_emit((
        ("whole", call("first", f("s"))),
        ("this", f("this")),
        ("nan", b("-", b("*", f("huge"), 10), b("*", f("huge"), 10))),  # inf - inf
        ("big", b("*", f("big"), f("big"))),
        ("nested", f("obj")),
    ), stages)
    data = {"obj": {"l": [1, 2]}, "huge": 1e308, "big": 2**40}
    match = {"s": [ev(data)]}
    out = emit.fn(match)
    assert out["whole"] == data and out["this"] == data
    assert out["nan"] is None
    assert out["big"] == float(2**80)
    out["nested"]["l"].append(3)
    assert data["obj"]["l"] == [1, 2]  # a copy, not the event's own list
    orjson.dumps(out)
    assert rt.to_json({"t": (1, 2), "s": {3}, "f": frozenset({"a"})}) == {
        "t": [1, 2], "s": [3], "f": ["a"]}


def test_emit_bare_fields_read_the_latest_event_and_empty_match() -> None:
    emit = compile_emit((("u", f("user")), ("t", f("ts")), ("n", call("count", f("s")))),
                        StageScope.of(["s", "t"]))
    match = {"s": [ev({"user": "a"}, ts=5, seq=1)], "t": [ev({"user": "b"}, ts=9, seq=2)]}
    assert emit.fn(match) == {"u": "b", "t": 9, "n": 1}
    assert emit.fn({}) == {"u": None, "t": None, "n": 0}


def test_emit_names_are_data_not_code() -> None:
    names = ["__class__", "a'b", 'x"); import os; ("', "line\nbreak", "__import__('os')"]
    emit = compile_emit(tuple((n, lit(1)) for n in names), NO_STAGES)
    assert_safe_source(source_of(emit))
    assert emit.fn({}) == {n: 1 for n in names}


# --------------------------------------------------------------------------- security

EVIL = [
    "__import__('os').system('x')",
    '"); import os; ("',
    "'); import os; ('",
    "\\'; raise SystemExit; '",
    "\n__import__('os')\n",
    "{ev.__class__.__mro__}",
    "\x00\ud800",
]


@pytest.mark.parametrize("text", EVIL)
def test_rule_strings_are_inert_literals(text: str) -> None:
    cond = compile_condition(b("==", f("x"), text), NO_STAGES, text)
    src = source_of(cond)
    assert_safe_source(src)
    assert repr(text) in src
    assert cond.fn(ev({"x": text}), None) is True
    assert cond.fn(ev({"x": "other"}), None) is False
    assert value(b("+", text, f("x")), {"x": "!"}) == text + "!"


@pytest.mark.parametrize("name", EVIL + ["__class__", "__globals__", "__builtins__",
                                         "__dict__", "data", "get", "ev", "pm", "_d"])
def test_field_and_stage_names_are_inert(name: str) -> None:
    for path in (f(name), f(name, name), f(name, "a", "b"), f("this", name)):
        cond = compile_condition(isnull(path), NO_STAGES, "")
        assert_safe_source(source_of(cond))
        assert cond.fn(ev({}), None) is True
        assert value(path, {}) is None
    # as a stage name
    stages = StageScope.of([name])
    cond = compile_condition(
        b("and", b(">", call("count", f(name)), 0), b("==", f(name, "user"), "u")), stages, "")
    assert_safe_source(source_of(cond))
    assert cond.fn(ev(), chain((name, ev({"user": "u"})))) is True
    # as data: the value comes back as plain data
    assert value(f(name), {name: {"__class__": 1}}) == {"__class__": 1}


def test_sandbox_has_no_builtins() -> None:
    cond = compile_condition(b("==", f("x"), 1), NO_STAGES, "")
    g = cond.fn.__globals__
    assert g["__builtins__"] == {}
    assert set(g) <= set(rt.HELPERS) | {"__builtins__", "_cond"}


def test_unsupported_literal_types_are_rejected() -> None:
    class Evil(str):
        def __repr__(self) -> str:
            return "__import__('os')"

    for bad in (Evil("x"), b"bytes", object(), [1], {"a": 1}):
        with pytest.raises(CompileError):
            compile_condition(b("==", f("x"), ast.Lit(bad)), NO_STAGES, "")  # type: ignore[arg-type]
    with pytest.raises(CompileError):
        compile_condition(ast.Path((Evil("x"),)), NO_STAGES, "")


def test_large_and_special_literals() -> None:
    assert check(b("==", f("x"), 10**30), {"x": 10**30}) is True
    assert check(b("<", f("x"), float("inf")), {"x": 1e308}) is True
    assert check(b("==", f("x"), float("nan")), {"x": float("nan")}) is False
    assert check(b(">", f("x"), -0.0), {"x": 0.1}) is True


# --------------------------------------------------------------------------- property test

NAMES = ["a", "b", "ts", "x.y", "__class__", "user-agent", "this", "s1", "s2"]
STAGE_SCOPE = StageScope.of(["s1", "s2"])
SCALAR_VALUES = (st.none() | st.booleans() | st.integers() | st.integers(-(2**70), 2**70)
                 | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=5))
JSON_VALUES = st.recursive(
    SCALAR_VALUES,
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.sampled_from(NAMES), c, max_size=3),
    max_leaves=8,
)
EVENT_DATA = st.dictionaries(st.sampled_from(NAMES), JSON_VALUES, max_size=6)

LEAF = (
    st.builds(ast.Lit, SCALAR_VALUES)
    | st.builds(lambda ms: ast.Lit(ms, duration=True), st.integers(0, 10**9))
    | st.builds(lambda p: ast.Path(tuple(p)), st.lists(st.sampled_from(NAMES), min_size=1,
                                                       max_size=3))
    | st.builds(lambda s, fld: ast.Call("count", (ast.Path((s, *fld)),)),
                st.sampled_from(["s1", "s2"]), st.lists(st.sampled_from(NAMES), max_size=1))
    | st.builds(lambda a, s, fld: ast.Call(a, (ast.Path((s, fld)),)),
                st.sampled_from(["sum", "avg", "min", "max", "distinct_count"]),
                st.sampled_from(["s1", "s2"]), st.sampled_from(NAMES))
    | st.builds(lambda a, s, fld: ast.Attr(ast.Call(a, (ast.Path((s,)),)), (fld,)),
                st.sampled_from(["first", "last"]), st.sampled_from(["s1", "s2"]),
                st.sampled_from(NAMES))
)
BINOPS = ["and", "or", "==", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/", "%", "in",
          "not in", "contains", "starts with", "ends with"]


def _node(children: st.SearchStrategy[ast.Expr]) -> st.SearchStrategy[ast.Expr]:
    return (
        st.builds(ast.Binary, st.sampled_from(BINOPS), children, children)
        | st.builds(ast.Unary, st.sampled_from(["not", "-"]), children)
        | st.builds(ast.IsNull, children, st.booleans())
        | st.builds(lambda xs: ast.ListLit(tuple(xs)), st.lists(children, max_size=3))
        | st.builds(lambda x, p: ast.Binary("matches", x, ast.Lit(p)), children,
                    st.sampled_from(["a", "^b.*$", "(?i)x|y", "[0-9]+", ""]))
        | st.builds(lambda fn, x: ast.Call(fn, (x,)),
                    st.sampled_from(["lower", "upper", "len", "abs", "round"]), children)
        | st.builds(lambda x, n: ast.Call("round", (x, n)), children, children)
        | st.builds(lambda a, c, d, e: ast.Call("haversine_km", (a, c, d, e)),
                    children, children, children, children)
        | st.builds(lambda x, p: ast.Attr(x, (p,)), children, st.sampled_from(NAMES))
    )


EXPRS = st.recursive(LEAF, _node, max_leaves=12)
PM = st.lists(st.tuples(st.sampled_from(["s1", "s2", "other"]), EVENT_DATA,
                        st.integers(0, 10**12)), max_size=4)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expr=EXPRS, data=EVENT_DATA, pm_items=PM, ts=st.integers(0, 10**13))
def test_random_expressions_never_raise(expr: ast.Expr, data: dict[str, Any],
                                        pm_items: list[tuple[str, dict[str, Any], int]],
                                        ts: int) -> None:
    pm = chain(*((s, ev(d, t, i)) for i, (s, d, t) in enumerate(pm_items)))
    cond = compile_condition(expr, STAGE_SCOPE, "random")
    assert_safe_source(source_of(cond))
    assert type(cond.fn(ev(data, ts), pm)) is bool

    match: dict[str, list[Event]] = {}
    for i, (s, d, t) in enumerate(pm_items):
        match.setdefault(s, []).append(ev(d, t, i))
    emit = compile_emit((("v", expr), ("w", ast.Unary("not", expr))), STAGE_SCOPE)
    assert_safe_source(source_of(emit))
    out = emit.fn(match)
    orjson.dumps(out)
    assert type(out["w"]) is bool

    try:
        flt = compile_header_filter(expr)
    except CompileError:
        return  # aggregates are not allowed in a header filter
    assert type(flt.fn(ev(data, ts))) is bool


# --------------------------------------------------------------------------- or chains

_AFFIX_SUBJECTS = (f("this", "A"), call("lower", f("this", "A")), call("lower", f("this", "B")))
_AFFIX_VALUES = st.one_of(st.text("aB\\", max_size=4), st.integers(0, 2), st.none(),
                          st.lists(st.text("aB", max_size=2), max_size=2))


@st.composite
def _affix_tests(draw: st.DrawFn) -> ast.Expr:
    op = draw(st.sampled_from(["starts with", "ends with", "contains", "=="]))
    subject = draw(st.sampled_from(_AFFIX_SUBJECTS))
    return b(op, subject, draw(st.one_of(st.text("ab\\", max_size=3), st.integers(0, 2))))


@settings(max_examples=300, deadline=None)
@given(st.lists(_affix_tests(), min_size=2, max_size=8),
       st.dictionaries(st.sampled_from(["A", "B"]), _AFFIX_VALUES))
def test_an_or_chain_of_affix_tests_is_the_or_of_its_tests(
        tests: list[ast.Expr], data: dict[str, Any]) -> None:
    # the tests of one subject are one startswith/endswith call with a tuple: same result
    chained = tests[0]
    for t in tests[1:]:
        chained = ast.Binary("or", chained, t)
    whole = compile_condition(chained, StageScope(), "x").fn(ev(data), None)
    each = [compile_condition(t, StageScope(), "x").fn(ev(data), None) for t in tests]
    assert whole is any(each)


def test_affix_tests_of_one_subject_are_one_call() -> None:
    lowered = call("lower", f("this", "Image"))
    chained = b("or", b("ends with", lowered, "\\a.exe"),
                b("or", b("==", f("this", "x"), 1), b("ends with", lowered, "\\b.exe")))
    src = source_of(compile_condition(chained, StageScope(), "x"))
    assert src.count(".endswith(") == 1 and src.count(".lower()") == 1
    assert compile_condition(chained, StageScope(), "x").fn(ev({"Image": "C:\\B.EXE"}), None)


def test_text_of_this_is_built_once_per_event() -> None:
    # keyword searches of several rules over one event join its strings once (Event.text)
    words = compile_condition(b("matches", call("text", f("this")), "(?i)kiwi"), StageScope(),
                              "x").fn
    one, two = ev({"a": "gentilKiwi", "b": ["x"]}), ev({"a": "other"})
    assert words(one, None) and not words(two, None)
    assert one.text == "gentilKiwi\nx" and two.text == "other"
    one.data["a"] = "changed"  # (events are not changed once decoded: the text stays)
    assert words(one, None)
    held = hold(ev({"a": "kiwi"}))  # an event kept as its JSON text: read, not kept
    assert isinstance(held, HeldEvent) and words(held, None)


def test_a_field_lowered_twice_is_lowered_once() -> None:
    lowered = call("lower", f("this", "CommandLine"))
    cond = b("and", b("contains", lowered, " -enc "),
             b("or", b("==", lowered, "x"), b("contains", call("lower", f("Image")), "ps")))
    compiled = compile_condition(cond, StageScope(), "x")
    assert source_of(compiled).count(".lower()") == 2  # CommandLine once, Image once
    assert compiled.fn(ev({"CommandLine": "PS -ENC abc", "Image": "PS.exe"}), None)
    assert not compiled.fn(ev({"CommandLine": "PS -ENC abc", "Image": 3}), None)
    assert not compiled.fn(ev({"Image": "ps"}), None)
