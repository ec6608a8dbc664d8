"""Rule expressions → predicates the C line scanner can evaluate (:mod:`cep._prescan`).

A predicate is plain data, nested tuples over *slots* (numbered field paths of the event
under test), in three-valued logic — false, true, unknown:

* ``("const", r)`` with ``r`` 0 (false), 1 (true) or 2 (unknown);
* ``("and", (p, …))``, ``("or", (p, …))``, ``("not", p)`` — Kleene's connectives;
* ``("cmp", code, slot, literal)`` — ``code`` the :attr:`~cep.lang.operators.Operator.scan_code`
  of an operator lowered as :attr:`~cep.lang.operators.Scan.CMP` (the six comparisons), the
  literal a bool, an int (64-bit), a finite float or UTF-8 ``bytes`` (a string);
* ``("truth", slot)`` — the value is ``true``; ``("isnull", slot)``, ``("notnull", slot)``;
* ``(code, slot, (bytes, …))`` — membership in a list of strings, ``code`` the scanner code
  of an operator lowered as :attr:`~cep.lang.operators.Scan.LIST` (``in``, ``not in``);
* ``("held", slot, i)`` — the value is a key of rule ``i``'s per-key state (built by
  :mod:`cep.operator.prescan`, not here).

The translation follows the semantics of :mod:`cep.compiler.codegen` (a comparison with a
missing or null value is false, ``!=`` is false when the value is null, ordering needs two
numbers or two strings, ``bool`` is not a number, a bare value is true only when it is
``true``).  Which operators it models is the table's (:class:`~cep.lang.operators.Scan`);
whatever it does not model — stage references, ``ts``, arithmetic, functions, regexes,
``contains``, CIDR blocks, case-insensitive forms and wildcard patterns (a ``like`` without a
wildcard is membership) — becomes *unknown*, never a guess: the scanner
then leaves the line to Python, so a predicate may only ever be less decisive than the
compiled condition, never different.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from cep.compiler.generated import GeneratedCode
from cep.compiler.matchers import parse_glob
from cep.lang import ast
from cep.lang.operators import OPERATORS, Operator, OperatorTable, Scan

__all__ = ["Pred", "UNKNOWN", "TRUE", "FALSE", "condition_predicate", "expr_predicate", "join"]

Pred = tuple[Any, ...]
FALSE: Pred = ("const", 0)
TRUE: Pred = ("const", 1)
UNKNOWN: Pred = ("const", 2)

_INT64 = 1 << 63

# slot_of(path) -> slot number for a field path (a tuple of str)
SlotOf = Callable[[tuple[str, ...]], int]


def join(op: str, items: list[Pred]) -> Pred:
    """``("and", items)`` or ``("or", items)`` simplified: a constant that absorbs (false for
    ``and``, true for ``or``) wins, neutral constants are dropped, one item stands alone."""
    absorbing, neutral = (FALSE, TRUE) if op == "and" else (TRUE, FALSE)
    if absorbing in items:
        return absorbing
    items = [p for p in items if p != neutral]
    if not items:
        return neutral
    return items[0] if len(items) == 1 else (op, tuple(items))


def condition_predicate(code: GeneratedCode | None, slot_of: SlotOf) -> Pred:
    """The predicate of a compiled condition or header filter (its expression and stage
    names: :attr:`GeneratedCode.ast`, :attr:`GeneratedCode.scope`); unknown without code
    (a hand-made function, a composite guard)."""
    if code is None or code.ast is None:
        return UNKNOWN
    return expr_predicate(code.ast, frozenset(code.scope), slot_of)


def expr_predicate(expr: ast.Expr, stages: frozenset[str], slot_of: SlotOf,
                   operators: OperatorTable = OPERATORS) -> Pred:
    """The predicate of ``expr`` as a condition (true only when it evaluates to ``true``);
    ``operators``: the language's comparison operators (another table for tests)."""
    return _Tr(stages, slot_of, operators).cond(expr)


class _Tr:
    def __init__(self, stages: frozenset[str], slot_of: SlotOf,
                 operators: OperatorTable) -> None:
        self.stages = stages
        self.slot_of = slot_of
        self.operators = operators

    def field(self, e: ast.Expr) -> int | None:
        """The slot of a field of the event under test, or None."""
        if not isinstance(e, ast.Path):
            return None
        parts = tuple(e.parts)
        if not parts or parts[0] in self.stages:
            return None
        if parts[0] == "this":
            parts = parts[1:]
        if not parts or parts == ("ts",) or not all(type(p) is str for p in parts):
            return None
        return self.slot_of(parts)

    def cond(self, e: ast.Expr) -> Pred:
        if isinstance(e, ast.Lit):
            return TRUE if e.value is True else FALSE
        if isinstance(e, ast.Path):
            slot = self.field(e)
            return UNKNOWN if slot is None else ("truth", slot)
        if isinstance(e, ast.Unary) and e.op == "not":
            inner = self.cond(e.operand)
            if inner[0] == "const":
                return inner if inner[1] == 2 else (FALSE if inner[1] else TRUE)
            return ("not", inner)
        if isinstance(e, ast.IsNull):
            slot = self.field(e.operand)
            if slot is None:
                return UNKNOWN
            return ("notnull" if e.negated else "isnull", slot)
        if isinstance(e, ast.Binary):
            if e.op in ("and", "or"):
                return self.logical(e)
            spec = self.operators.get(e.op)
            scan = Scan.UNKNOWN if spec is None else spec.scan
            if scan is Scan.CMP:
                return self.compare(e)
            if scan is Scan.LIST and isinstance(e.right, ast.ListLit):
                return self.in_list(spec, e.left, e.right)  # type: ignore[arg-type]
            if scan is Scan.EXACT_GLOB:
                return self.like(spec, e.left, e.right)  # type: ignore[arg-type]
        return UNKNOWN

    def like(self, spec: Operator, left: ast.Expr, right: ast.Expr) -> Pred:
        """Wildcard patterns none of which holds a wildcard: the membership operator
        ``spec`` amounts to then (``like`` → ``in``); any other pattern is not modelled."""
        items = right.items if isinstance(right, ast.ListLit) else (right,)
        texts: list[ast.Expr] = []
        for item in items:
            if not isinstance(item, ast.Lit) or type(item.value) is not str:
                return UNKNOWN
            parts = parse_glob(item.value)
            if any(p.kind != "text" for p in parts):
                return UNKNOWN
            texts.append(ast.Lit(parts[0].text if parts else ""))
        assert spec.exact_as is not None
        return self.in_list(self.operators[spec.exact_as], left, ast.ListLit(tuple(texts)))

    def logical(self, e: ast.Binary) -> Pred:
        items: list[Pred] = []
        todo: list[ast.Expr] = [e]
        while todo:
            x = todo.pop()
            if isinstance(x, ast.Binary) and x.op == e.op:
                todo += [x.right, x.left]
            else:
                items.append(self.cond(x))
        return join(e.op, items)

    def compare(self, e: ast.Binary) -> Pred:
        spec, left, right = self.operators[e.op], e.left, e.right
        if isinstance(left, ast.Lit) and not isinstance(right, ast.Lit):
            assert spec.flipped is not None
            spec, left, right = self.operators[spec.flipped], right, left
        op = spec.scan_code
        if not isinstance(right, ast.Lit):
            return UNKNOWN
        slot = self.field(left)
        if slot is None:
            return UNKNOWN
        v = right.value
        if v is None:
            return FALSE  # a comparison with null is false
        if type(v) is bool:
            return FALSE if spec.ordering else ("cmp", op, slot, v)  # bool is not ordered
        if type(v) is str:
            return ("cmp", op, slot, v.encode())
        if type(v) is int:
            return ("cmp", op, slot, v) if -_INT64 <= v < _INT64 else UNKNOWN
        if type(v) is float:
            return ("cmp", op, slot, v) if math.isfinite(v) else UNKNOWN
        return UNKNOWN

    def in_list(self, spec: Operator, left: ast.Expr, lst: ast.ListLit) -> Pred:
        slot = self.field(left)
        if slot is None:
            return UNKNOWN
        values: list[bytes] = []
        for item in lst.items:
            if not isinstance(item, ast.Lit):
                return UNKNOWN
            if item.value is None:
                continue  # null never matches
            if type(item.value) is not str:
                return UNKNOWN
            values.append(item.value.encode())
        if not values:  # an empty list (or nulls only): `in` never holds, `not in` for any value
            return ("notnull", slot) if spec.negated else FALSE
        return (spec.scan_code, slot, tuple(values))
