"""The table of operators (:mod:`cep.lang.operators`): each operator declared once.

* No module of ``cep`` but the table spells an operator: every other module reads the table.
* The grammar reads exactly the table's operators (the grammar file defines none itself), and
  the C line scanner knows exactly the table's scanner codes.
* An operator added to a copy of the table — handed to the parser, the checks and the code
  generator, no global patched — parses, is checked, formats, compiles and evaluates.
"""

from __future__ import annotations

import ast
import operator as py
import re
from pathlib import Path

import pytest
from lark import Lark

from cep.compiler.codegen import StageScope, compile_condition
from cep.compiler.predicate import UNKNOWN, expr_predicate
from cep.event import Event
from cep.lang import ast as cast
from cep.lang.check import check_rule
from cep.lang.format import format_rule
from cep.lang.grammar import grammar_text
from cep.lang.operators import (
    COMPARE_TERMINAL,
    OPERATORS,
    Kind,
    Lowering,
    Nulls,
    Operands,
    Operator,
    OperatorTable,
    Scan,
)
from cep.lang.parse import parse_text
from cep.lang.schema import parse_schema
from cep.lang.typecheck import check_schema

ROOT = Path(__file__).resolve().parents[2]
TABLE = "cep/lang/operators.py"

ALLOWED = {
    # (module, literal): why it is no operator there
    ("cep/app/metrics.py", "matches"): "the metric counting matches",
    ("cep/checkpoint/snapshot.py", "matches"): "a snapshot field: the number of matches",
    ("cep/operator/cep_operator.py", "matches"): "a counter of matches",
    ("cep/operator/key_store.py", "matches"): "a counter of matches",
    ("cep/testing/flinkcase.py", "matches"): "a counter of matches",
    ("cep/testing/flinkcase.py", "contains"): "the Flink test oracle's function contains(a, b)",
    ("cep/compiler/runtime.py", "contains"): "the helper function's name in __all__",
    ("cep/compiler/runtime.py", "matches"): "the helper function's name in __all__",
    ("cep/lang/lists.py", "<"): "the first character of a pseudo file name (<string>)",
}


def _docstrings(tree: ast.AST) -> set[int]:
    """The ids of the docstring constants of ``tree``."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                out.add(id(body[0].value))
    return out


def _spellings_in(tree: ast.AST, spellings: frozenset[str]) -> list[tuple[int, str]]:
    """``(line, literal)`` of each string constant of ``tree`` that is an operator's spelling
    (not a docstring, not a piece of an f-string's text)."""
    skip = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            skip |= {id(v) for v in node.values if isinstance(v, ast.Constant)}
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and node.value in spellings and id(node) not in skip]


def test_no_module_but_the_table_spells_an_operator() -> None:
    spellings = OPERATORS.spellings()
    found: dict[str, list[tuple[int, str]]] = {}
    for path in sorted((ROOT / "cep").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel == TABLE:
            continue
        hits = [(line, lit) for line, lit in _spellings_in(ast.parse(path.read_text(), rel),
                                                           spellings)
                if (rel, lit) not in ALLOWED]
        if hits:
            found[rel] = sorted(hits)
    assert found == {}
    # (and the scan does see spellings where they are)
    assert len({lit for _, lit in _spellings_in(
        ast.parse((ROOT / TABLE).read_text()), spellings)}) == len(OPERATORS)


def test_every_allowed_literal_is_still_there() -> None:
    """An exception that is no longer needed is removed from the list."""
    spellings = OPERATORS.spellings()
    for rel, lit in ALLOWED:
        tree = ast.parse((ROOT / rel).read_text(), rel)
        assert any(v == lit for _, v in _spellings_in(tree, spellings)), (rel, lit)


def _lark(text: str) -> Lark:
    return Lark(text, parser="lalr", lexer="contextual", maybe_placeholders=False)


def test_the_grammar_file_defines_no_operator_and_the_grammar_reads_the_tables() -> None:
    bare = _lark(grammar_text(OperatorTable(())))
    names = {"NAME", "TAG", "QNAME", "STRING", "WS", "COMMENT"}
    for term in bare.terminals:
        if term.name in names:
            continue
        for op in OPERATORS:
            assert not re.fullmatch(term.pattern.to_regexp(), op.spelling), (term.name, op)
    full = _lark(grammar_text())
    terminals = {t.name for t in full.terminals} - {t.name for t in bare.terminals}
    assert terminals == {op.terminal for op in OPERATORS}
    compare = next(t for t in full.terminals if t.name == COMPARE_TERMINAL)
    assert {op.spelling for op in OPERATORS if op.terminal == COMPARE_TERMINAL} == {
        s for s in ("==", "!=", "<", "<=", ">", ">=", "=<", "<>", "=")
        if re.fullmatch(compare.pattern.to_regexp(), s)}


RIGHT = {Lowering.REGEX: '"a+"', Lowering.FOLD_SET: '["a", "B"]', Lowering.GLOB: '"a*"'}


@pytest.mark.parametrize("op", list(OPERATORS), ids=lambda op: op.spelling)
def test_each_operator_parses_as_itself_and_formats_back(op: Operator) -> None:
    spaced = op.spelling.replace(" ", "  \t ")
    text = (f"rule r\n  pattern\n    begin a where x {spaced} "
            f"{RIGHT.get(op.lowering, '1')}\nend\n")
    rf, diags = parse_text(text)
    assert diags == []
    cond = rf.rules[0].pattern[0].condition
    assert isinstance(cond, cast.Binary) and cond.op == op.spelling
    assert f"x {op.spelling} " in format_rule(rf.rules[0])
    assert parse_text(format_rule(rf.rules[0]))[0].rules == rf.rules


def test_the_c_scanner_knows_exactly_the_tables_scanner_codes() -> None:
    source = (ROOT / "cep/_native/prescan.c").read_text()
    ops = re.search(r"static const char \*OPS\[\] = \{([^}]*)\}", source)
    assert ops is not None
    assert re.findall(r'"([^"]*)"', ops.group(1)) == [
        op.scan_code for op in OPERATORS if op.scan is Scan.CMP]
    for op in OPERATORS:
        if op.scan is Scan.LIST:
            assert f'strcmp(op, "{op.scan_code}")' in source


def test_the_table_refuses_dangling_references_and_duplicates() -> None:
    lt = OPERATORS["<"]
    with pytest.raises(ValueError, match="not in the table"):
        OperatorTable((lt,))
    with pytest.raises(ValueError, match="share a spelling"):
        OperatorTable((*OPERATORS, OPERATORS["=="]))


# ---------------------------------------------------------------------- a new operator

LESS_THAN = Operator(
    "less than", "LESS_THAN", Kind.ORDER, Lowering.COMPARE, runtime="_lt", python="<",
    test=py.lt, flipped=">", ordering=True, operands=Operands(values=True))
"""A throw-away operator: ``<`` written in words, not lowered for the C scanner."""

RULE = """
rule r
  key by user
  pattern
    begin a where amount less than 5
    followed by b where 10 less than amount
  within 1m
end
"""


def test_an_operator_added_to_a_copy_of_the_table_goes_all_the_way() -> None:
    table = OPERATORS.with_operator(LESS_THAN)
    assert "less than" not in OPERATORS  # the language's table is untouched
    # parses (only with the table that has it) ...
    assert any(d.is_error for d in parse_text(RULE)[1])
    rf, diags = parse_text(RULE, operators=table)
    assert diags == []
    rule = rf.rules[0]
    first, second = (st.condition for st in rule.pattern)
    assert isinstance(first, cast.Binary) and first.op == "less than"
    # ... is checked, against a schema too ...
    assert check_rule(rule, operators=table) == []
    schema = parse_schema({"fields": {"amount": "string", "user": "string"}})
    errors = check_schema([rf], schema, operators=table)
    assert [e.message for e in errors] == [
        'rule `r`: `amount` is a string in the schema; `less than` with the number 5 never '
        'holds',
        'rule `r`: `amount` is a string in the schema; `less than` with the number 10 never '
        'holds']
    # ... formats and parses back ...
    text = format_rule(rule)
    assert "where amount less than 5" in text and "where 10 less than amount" in text
    assert parse_text(text, operators=table)[0].rules == rf.rules
    # ... compiles to the code `<` compiles to, and evaluates as it
    scope = StageScope(frozenset({"a", "b"}), operators=table)
    assert first is not None and second is not None
    words = compile_condition(first, scope, "words")
    symbol = compile_condition(cast.Binary("<", first.left, first.right), scope, "symbol")
    assert words.code is not None and symbol.code is not None
    assert words.code.source == symbol.code.source
    flipped = compile_condition(second, scope, "flipped")
    for amount, holds in ((3, True), (5, False), (4.5, True), ("3", False), (None, False)):
        ev = Event(0, 0, {"amount": amount})
        assert words.fn(ev, None) is holds
        assert flipped.fn(ev, None) is (amount is not None and type(amount) is not str
                                        and amount > 10)
    # ... and the C scanner, which has no code for it, leaves it to Python
    assert expr_predicate(first, frozenset(), lambda p: 1, table) == UNKNOWN
    assert expr_predicate(cast.Binary("<", first.left, first.right), frozenset(),
                          lambda p: 1, table) == ("cmp", "<", 1, 5)


# ---------------------------------------------------------------------- declared semantics

SAMPLES = [None, "a", "B", "ab", "b*", 1, 2, 2.5, True, ["a", 1]]


def _holds(op: Operator, left: object, right: cast.Expr) -> bool:
    cond = compile_condition(cast.Binary(op.spelling, cast.Path(("x",)), right),
                             StageScope(), op.spelling)
    return bool(cond.fn(Event(0, 0, {} if left is None else {"x": left}), None))


def _right(op: Operator) -> cast.Expr:
    return {Lowering.REGEX: cast.Lit("a"), Lowering.FOLD_SET: cast.ListLit((cast.Lit("a"),)),
            Lowering.GLOB: cast.Lit("a*"), Lowering.MEMBERSHIP: cast.ListLit((cast.Lit("a"),
                                                                               cast.Lit(1)))
            }.get(op.lowering, cast.Lit("a"))


@pytest.mark.parametrize("op", list(OPERATORS), ids=lambda op: op.spelling)
def test_a_null_operand_makes_every_operator_false(op: Operator) -> None:
    """What the table says of nulls (``Nulls``): a missing tested value, and for those that
    say so a missing other operand, make the test false."""
    assert not _holds(op, None, _right(op))
    if op.nulls is Nulls.FALSE and op.lowering not in (Lowering.REGEX,):
        assert not _holds(op, "a", cast.Path(("y",)))


@pytest.mark.parametrize("op", [op for op in OPERATORS if op.negated], ids=lambda op: op.spelling)
def test_a_negated_operator_is_the_negation_for_present_values(op: Operator) -> None:
    base = OPERATORS[op.negation_of]  # type: ignore[index]
    for value in SAMPLES[1:]:
        assert _holds(op, value, _right(op)) is not _holds(base, value, _right(base)), value


@pytest.mark.parametrize("op", [op for op in OPERATORS if op.flipped], ids=lambda op: op.spelling)
def test_the_flipped_form_holds_with_the_operands_swapped(op: Operator) -> None:
    flipped = OPERATORS[op.flipped]  # type: ignore[index]
    for value in SAMPLES:
        for lit in ("a", 2, True, None):
            # (two fields: the runtime helper of the flipped form, no literal to flip back)
            swapped = compile_condition(
                cast.Binary(flipped.spelling, cast.Path(("y",)), cast.Path(("x",))),
                StageScope(), "swapped")
            ev = Event(0, 0, {"x": value, "y": lit})
            assert bool(swapped.fn(ev, None)) is _holds(op, value, cast.Lit(lit)), (value, lit)
