"""Rule expressions → Python code objects.

Each expression is translated to the source of one small Python function, compiled with
:func:`compile` and executed with empty builtins and only the helpers of
:mod:`cep.compiler.runtime` in scope.

Safety
    Generated source never contains rule text except as literals written by :func:`repr` on
    exact ``str``/``int``/``float`` values.  Identifiers are generated (``_v0``, ``_c0``);
    field names only ever appear as ``repr``'d dictionary keys (``_d.get('user')``) or tuples
    passed to a runtime helper, so a field called ``__class__`` is just a dictionary key and no
    rule can reach an attribute, a builtin or a module.  Regexes are compiled once, here (or,
    when the compilation is deferred, on their first test), with google-re2 (linear time)
    and passed in as constants.  The source stays inspectable through
    :func:`source_of` (or the ``source`` attribute of the returned function).

Name resolution (see :class:`cep.lang.ast.Path`)
    * ``NAME.f`` where ``NAME`` is a stage in scope: field ``f`` of the stage's *first* matched
      event — for a looping stage that is its first event (``last(NAME).f`` reads the last);
      null when the stage has no event yet.  ``NAME`` alone is that event's data object.
    * ``this.f``: field ``f`` of the event under test; ``this`` alone is its data object.
    * anything else: the whole path is a (possibly nested) field of the event under test.
    * ``ts``, ``this.ts`` and ``NAME.ts`` are the event time ``Event.ts`` in epoch
      milliseconds, never a data field.
    * In an emit there is no event under test; bare fields and ``ts`` read the match's latest
      event (the one that completed it) and ``NAME.f`` the stage's first event.

Semantics
    * Missing fields and type mismatches never raise; a missing field and ``null`` are the same.
    * A comparison with a missing/null value is false, including ``x == null`` and
      ``x != null`` (the checker warns; ``is null`` / ``is not null`` is the way).  ``!=`` is
      false when either side is null, so ``x != "a"`` is false for a missing ``x``.
    * Two-valued logic: every comparison yields true or false, ``not`` negates that bool, and
      ``and``/``or`` short-circuit.  So ``not (x == "a")`` is true for a missing ``x``.
    * A bare value as a condition (``where ok``) is true only when it holds ``true``.
    * Ordering compares two numbers or two strings; otherwise false.  ``bool`` is not a number.
    * Arithmetic with null, with a non-number or by zero yields null; ``+`` also joins two
      strings.  ``/`` is true division.
    * ``x in [..]`` / ``x not in [..]`` are false when ``x`` is null; a list of hashable
      literals compiles to a frozenset membership test.  ``contains`` is substring, list item
      or object key; ``starts with`` / ``ends with`` need two strings.
    * ``matches "re"`` uses re2 *search* semantics: the pattern may match anywhere in the
      string; anchor it with ``^…$`` to match the whole string.  The pattern must be a string
      literal.
    * Durations are ints in milliseconds, so ``again.ts - fail.ts < 10s`` works.
    * Aggregates read the stage's events so far (``count``, ``sum``, ``avg``, ``min``,
      ``max``, ``first``, ``last``, ``distinct_count``, ``values``; see
      :mod:`cep.compiler.runtime`); in a condition that is the partial match *before* the
      event under test.  ``sum``/``avg``/``min``/``max`` skip nulls and non-numbers (``sum``
      of nothing is 0, ``min``/``max``/``avg`` of nothing null); ``count(s.f)`` counts the
      events whose ``f`` is not null; ``first(s).f`` / ``last(s).f`` read one event, and
      ``first(s)`` alone is its data object.
    * Emitted values are made JSON-serialisable (:func:`cep.compiler.runtime.to_json`).

Speed
    Comparisons of a field with a number or string literal are inlined
    (``_type(_v0 := _d.get('amount')) in _NUM and _v0 < (5)``, ``_d.get('action') == 'login'``),
    ``in`` over string or number literals is one frozenset lookup, ``and``/``or``/``not`` are
    Python's short-circuit operators on bools, ``count(s)`` compared with a number needs no
    type guard, and regexes use re2's low-level matcher.  Helpers are called only where an
    inline form would not be total.

Errors
    :class:`CompileError` (a ``ValueError`` carrying the node's span) for an unknown function
    or operator, a wrong number of arguments, an aggregate over something that is not a stage
    in scope, a non-literal or invalid regex, a stage reference in the header filter, a literal
    of an unsupported type, or an expression nested too deeply for Python to compile.
"""

from __future__ import annotations

import functools
import io
import math
import tokenize
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import CodeType
from typing import Any, Literal, NamedTuple

from cep.compiler import runtime as rt
from cep.compiler.deferred import deferred_function
from cep.compiler.generated import GeneratedCode, GeneratedText
from cep.compiler.matchers import CidrSet, FoldedSet, GlobSet, MatcherError, eq_folded
from cep.lang import ast
from cep.lang.lists import ListData
from cep.lang.operators import OPERATORS, Lowering, Operator, OperatorTable
from cep.nfa.pattern import Condition

__all__ = [
    "CompileError", "StageScope", "compile_condition", "compile_header_filter",
    "compile_key", "key_names", "compile_emit", "source_of", "inline_expr",
    "eq_guard",
]

Mode = Literal["cond", "filter", "emit"]

_MAX_INLINE_INT = 10**15


class CompileError(ValueError):
    """An expression that cannot be compiled; ``span`` locates it in the rule file."""

    def __init__(self, message: str, span: ast.Span = ast.NOWHERE) -> None:
        super().__init__(message)
        self.message = message
        self.span = span


@dataclass(frozen=True)
class StageScope:
    """The names of the event-bearing stages a rule's expressions may refer to, and the
    lists and tables of its file (name → :class:`~cep.lang.lists.ListData`).

    Group names are not stages for field access; :meth:`from_pattern` collects the stages
    inside groups instead.  A stage name wins over a list name.
    """

    names: frozenset[str] = frozenset()
    lists: Mapping[str, ListData] = field(default_factory=dict, compare=False)
    operators: OperatorTable = field(default=OPERATORS, compare=False)
    """The comparison operators of the language (another table for tests)."""

    def list_named(self, e: ast.Expr) -> ListData | None:
        """The list or table ``e`` names (a one-part path that is no stage), else None."""
        if isinstance(e, ast.Path) and len(e.parts) == 1 and e.parts[0] not in self.names:
            return self.lists.get(e.parts[0])
        return None

    def __contains__(self, name: object) -> bool:
        return name in self.names

    @classmethod
    def of(cls, names: Iterable[str]) -> StageScope:
        """A scope holding ``names``."""
        return cls(frozenset(names))

    @classmethod
    def from_pattern(cls, stages: Sequence[ast.Stage],
                     lists: Mapping[str, ListData] | None = None) -> StageScope:
        """Every non-group stage of ``stages``, recursing into groups; with ``lists``."""
        out: set[str] = set()
        todo = list(stages)
        while todo:
            st = todo.pop()
            if st.group is not None:
                todo.extend(st.group)
            else:
                out.add(st.name)
        return cls(frozenset(out), lists or {})


EMPTY_SCOPE = StageScope()


# --------------------------------------------------------------------------- code fragments

_NOLIT: Any = object()


class _Code(NamedTuple):
    """A generated Python expression.

    ``kind`` is ``"bool"`` when it always evaluates to exactly True or False, ``"int"`` when it
    always evaluates to an ``int`` (never null), ``"str?"`` when to a ``str`` or None
    (``lower``, ``upper``), ``"any"`` otherwise; ``lit`` holds the value when it is a
    compile-time constant."""

    code: str
    kind: str = "any"
    lit: Any = _NOLIT

    @property
    def is_lit(self) -> bool:
        return self.lit is not _NOLIT


_FALSE = _Code("False", "bool", False)
_TRUE = _Code("True", "bool", True)

_ARITH_HELPER = {"+": "_add", "-": "_sub", "*": "_mul", "/": "_div", "%": "_mod"}
_ARITH_FN: dict[str, Callable[[Any, Any], Any]] = {
    "+": rt.add, "-": rt.sub, "*": rt.mul, "/": rt.div, "%": rt.mod,
}
_FUNC_HELPER = {
    "lower": "_lower", "upper": "_upper", "len": "_len", "abs": "_abs",
    "round": "_round", "haversine_km": "_haversine_km", "text": "_text",
}
_FIELD_AGGS = {
    "sum": "_agg_sum", "avg": "_agg_avg", "min": "_agg_min", "max": "_agg_max",
    "distinct_count": "_agg_distinct_count", "values": "_agg_values",
}


def _scalar_lit(value: Any) -> bool:
    return value is None or type(value) in rt.SCALAR


# --------------------------------------------------------------------------- generator


class _Gen:
    """Translates one expression tree to Python source in a given mode.

    ``cond``: a function ``(ev, pm)``; stages read the partial-match chain ``pm``.
    ``filter``: a function ``(ev)``; no stages.  ``emit``: a function ``(m)`` over the match
    map; ``ev`` is bound to the match's latest event.
    """

    def __init__(self, mode: Mode, scope: StageScope, deferred: bool = False) -> None:
        self.mode = mode
        self.scope = scope
        self.deferred = deferred
        """Regexes are compiled on their first test (:class:`cep.compiler.runtime.Regex`;
        the patterns of a checked rule are known to compile)."""
        self.consts: dict[str, Any] = {}
        self.n_tmp = 0
        self.iterative = False
        self.uses_data = False
        self.uses_ev = False
        self.shared: dict[tuple[str, ...], str | None] = {}
        """Fields of the event under test whose ``lower(…)`` the expression reads more than
        once, with the temporary that holds it once computed (:meth:`share_lowered`)."""
        self.prelude: list[tuple[str, str]] = []
        """``(temporary, code)`` computed before the expression, in order."""

    def share_lowered(self, expr: ast.Expr) -> None:
        """Compute each ``lower(field)`` of the event under test that ``expr`` reads twice
        or more once, before the expression (a Sigma rule tests one field against many
        values; ``lower`` is pure and never raises)."""
        seen: dict[tuple[str, ...], int] = {}
        for node in ast.walk(expr):
            if (isinstance(node, ast.Call) and node.func == "lower" and len(node.args) == 1
                    and isinstance(node.args[0], ast.Path)):
                parts = self.data_parts(node.args[0])
                if parts is not None:
                    seen[parts] = seen.get(parts, 0) + 1
        self.shared = {parts: None for parts, n in seen.items() if n > 1}

    def data_parts(self, e: ast.Path) -> tuple[str, ...] | None:
        """The field path of the event under test that ``e`` reads, or ``None`` (a stage's
        field, ``ts``)."""
        parts = tuple(e.parts)
        if not parts or parts[0] in self.scope:
            return None
        if parts[0] == "this":
            parts = parts[1:]
        if not parts or parts == rt.TS or not all(type(p) is str for p in parts):
            return None
        return parts

    # -- naming

    def tmp(self) -> str:
        name = f"_v{self.n_tmp}"
        self.n_tmp += 1
        return name

    def const(self, value: Any) -> str:
        name = f"_c{len(self.consts)}"
        self.consts[name] = value
        return name

    def literal(self, value: Any, span: ast.Span) -> _Code:
        """A literal value as source: ``repr`` of exact builtin scalars only."""
        t = type(value)
        if value is None or t is bool:
            return _Code(repr(value), "bool" if t is bool else "any", value)
        if t is str:
            return _Code(repr(value), "any", value)
        if t is int:
            if -_MAX_INLINE_INT < value < _MAX_INLINE_INT:
                return _Code(f"({value!r})", "any", value)
            return _Code(self.const(value), "any", value)
        if t is float:
            if math.isfinite(value):
                return _Code(f"({value!r})", "any", value)
            return _Code(self.const(value), "any", value)
        raise CompileError(f"unsupported literal of type {t.__name__}", span)

    def parts(self, parts: tuple[str, ...], span: ast.Span) -> str:
        for p in parts:
            if type(p) is not str:
                raise CompileError("field names must be strings", span)
        return repr(tuple(parts))

    def name(self, name: str, span: ast.Span) -> str:
        if type(name) is not str:
            raise CompileError("names must be strings", span)
        return repr(name)

    # -- dispatch

    def expr(self, e: ast.Expr) -> _Code:
        if isinstance(e, ast.Lit):
            return self.literal(e.value, e.span)
        if isinstance(e, ast.ListLit):
            items = [self.expr(i) for i in e.items]
            return _Code("[" + ", ".join(i.code for i in items) + "]")
        if isinstance(e, ast.Path):
            return self.path(e)
        if isinstance(e, ast.Unary):
            return self.unary(e)
        if isinstance(e, ast.Binary):
            return self.binary(e)
        if isinstance(e, ast.IsNull):
            inner = self.expr(e.operand)
            if inner.is_lit:
                return _TRUE if (inner.lit is None) != e.negated else _FALSE
            return _Code(f"({inner.code} is {'not ' if e.negated else ''}None)", "bool")
        if isinstance(e, ast.Call):
            return self.call(e)
        if isinstance(e, ast.Attr):
            return self.attr(e)
        if isinstance(e, ast.Lookup):
            return self.lookup(e)
        raise CompileError(f"unsupported expression node {type(e).__name__}")

    def truth(self, c: _Code) -> _Code:
        """``c`` as a bool: true only when it ``is True``."""
        if c.kind == "bool":
            return c
        if c.is_lit:
            return _TRUE if c.lit is True else _FALSE
        return _Code(f"({c.code} is True)", "bool")

    # -- paths

    def data_field(self, parts: tuple[str, ...], span: ast.Span) -> _Code:
        """A field of the event under test (bound to ``_d``)."""
        self.uses_data = True
        if len(parts) == 1:
            return _Code(f"_d.get({self.name(parts[0], span)})")
        if len(parts) == 2:
            t = self.tmp()
            k0 = self.name(parts[0], span)
            k1 = self.name(parts[1], span)
            return _Code(f"({t}.get({k1}) if _type({t} := _d.get({k0})) is _dict else None)")
        return _Code(f"_getp(_d, {self.parts(parts, span)})")

    def stage_event(self, stage: str, which: str, span: ast.Span) -> str:
        """Source of the first/last event of ``stage`` (or None)."""
        self.iterative = True
        s = self.name(stage, span)
        if self.mode == "emit":
            return f"_match_{which}(m, {s})"
        return f"_pm_{which}(pm, {s})"

    def stage_events(self, stage: str, span: ast.Span) -> str:
        self.iterative = True
        s = self.name(stage, span)
        if self.mode == "emit":
            return f"_match_events(m, {s})"
        return f"_pm_events(pm, {s})"

    def event_field(self, ev_code: str, parts: tuple[str, ...], span: ast.Span) -> _Code:
        if not parts:
            return _Code(f"_ev_data({ev_code})")
        if parts == rt.TS:
            return _Code(f"_ev_ts({ev_code})")
        return _Code(f"_ev_field({ev_code}, {self.parts(parts, span)})")

    def path(self, e: ast.Path) -> _Code:
        parts = tuple(e.parts)
        if not parts:
            raise CompileError("empty field path", e.span)
        self.parts(parts, e.span)
        head = parts[0]
        if head in self.scope:
            return self.event_field(self.stage_event(head, "first", e.span), parts[1:], e.span)
        if head == "this":
            parts = parts[1:]
            if not parts:
                self.uses_data = True
                return _Code("_d")
        if parts == rt.TS:
            self.uses_ev = True
            return _Code("ev.ts", "any" if self.mode == "emit" else "int")
        return self.data_field(parts, e.span)

    # -- operators

    def unary(self, e: ast.Unary) -> _Code:
        inner = self.expr(e.operand)
        if e.op == "not":
            b = self.truth(inner)
            if b.is_lit:
                return _FALSE if b.lit else _TRUE
            return _Code(f"(not {b.code})", "bool")
        if e.op == "-":
            if inner.is_lit:
                return self.literal(rt.neg(inner.lit), e.span)
            t = self.tmp()
            return _Code(f"(-{t} if _type({t} := {inner.code}) in _NUM else None)")
        raise CompileError(f"unknown unary operator {e.op!r}", e.span)

    def logical(self, e: ast.Binary) -> _Code:
        # Flatten chains iteratively so long `a and b and c …` stay shallow.
        operands: list[ast.Expr] = []
        todo: list[ast.Expr] = [e]
        while todo:
            x = todo.pop()
            if isinstance(x, ast.Binary) and x.op == e.op:
                todo.append(x.right)
                todo.append(x.left)
            else:
                operands.append(x)
        if e.op == "or":
            codes = self._or_codes(operands)
        else:
            codes = [self.truth(self.expr(x)) for x in operands]
        return _Code("(" + f" {e.op} ".join(c.code for c in codes) + ")", "bool")

    def _or_codes(self, operands: list[ast.Expr]) -> list[_Code]:
        """The codes of an ``or`` chain's operands, where the ``starts with`` (or ``ends
        with``) tests of one subject against string literals are one call of
        ``startswith`` with the tuple of the literals, at the first one's place (the
        subject computed once: a Sigma rule lists dozens of file names).  Each operand is
        a bool that never raises, so the order of the tests does not change the result."""
        def affix(x: ast.Expr) -> str | None:
            """The ``str`` method of ``x``'s operator when ``x`` tests a string literal with
            ``startswith``/``endswith`` (which take a tuple), else ``None``."""
            if not (isinstance(x, ast.Binary) and isinstance(x.right, ast.Lit)
                    and type(x.right.value) is str):
                return None
            spec = self.scope.operators.get(x.op)
            if spec is None or spec.lowering is not Lowering.AFFIX:
                return None
            return spec.python if spec.python in ("startswith", "endswith") else None

        affixes: dict[tuple[str, ast.Expr], list[str]] = {}
        for x in operands:
            method = affix(x)
            if method is not None:
                assert isinstance(x, ast.Binary) and isinstance(x.right, ast.Lit)
                affixes.setdefault((method, x.left), []).append(str(x.right.value))
        codes: list[_Code] = []
        done: set[tuple[str, ast.Expr]] = set()
        for x in operands:
            method = affix(x)
            if method is not None:
                assert isinstance(x, ast.Binary)
                key = (method, x.left)
                lits = affixes[key]
                if len(lits) > 1:
                    if key in done:
                        continue  # (in the call at the first one's place)
                    done.add(key)
                    subject = self.expr(x.left)
                    t = self.tmp()
                    codes.append(_Code(
                        f"(_type({t} := {subject.code}) is _str"
                        f" and {t}.{method}({self.const(tuple(lits))}))", "bool"))
                    continue
            codes.append(self.truth(self.expr(x)))
        return codes

    def binary(self, e: ast.Binary) -> _Code:
        op = e.op
        if op in ("and", "or"):
            return self.logical(e)
        spec = self.scope.operators.get(op)
        if spec is None:
            if op not in _ARITH_HELPER:
                raise CompileError(f"unknown operator {op!r}", e.span)
            left = self.expr(e.left)
            return self.arith(op, left, self.expr(e.right), e.span)
        if spec.cidr and isinstance(e.right, ast.Call) and e.right.func == ast.CIDR_FUNCTION:
            return self.in_cidr(spec, self.expr(e.left), e.right)
        listed = self.scope.list_named(e.right) if spec.list_test is not None else None
        if listed is not None:
            fn = getattr(listed, spec.list_test)  # type: ignore[arg-type]
            left = self.expr(e.left)
            if left.is_lit:
                return _TRUE if fn(left.lit) else _FALSE
            return _Code(f"{self.const(fn)}({left.code})", "bool")
        return self._LOWERINGS[spec.lowering](self, spec, e)

    # -- the lowerings of cep.lang.operators, one method each (Operator.lowering)

    def _fold(self, spec: Operator, left: _Code, right: _Code) -> _Code | None:
        """The constant result of ``left spec right`` for two literals (its runtime
        helper), else ``None``."""
        if left.is_lit and right.is_lit and spec.runtime is not None:
            return _TRUE if rt.HELPERS[spec.runtime](left.lit, right.lit) else _FALSE
        return None

    def lower_compare(self, spec: Operator, e: ast.Binary) -> _Code:
        return self.compare(spec, self.expr(e.left), self.expr(e.right))

    def lower_membership(self, spec: Operator, e: ast.Binary) -> _Code:
        if isinstance(e.right, ast.ListLit):
            return self.in_list(spec, self.expr(e.left), e.right)
        left, right = self.expr(e.left), self.expr(e.right)
        folded = self._fold(spec, left, right)
        if folded is not None:
            return folded
        return _Code(f"{spec.runtime}({left.code}, {right.code})", "bool")

    def lower_contains(self, spec: Operator, e: ast.Binary) -> _Code:
        left, right = self.expr(e.left), self.expr(e.right)
        folded = self._fold(spec, left, right)
        if folded is not None:
            return folded
        if type(right.lit) is str and left.kind == "str?":  # a string or null: no helper
            t = self.tmp()
            return _Code(f"(({t} := {left.code}) is not None and {right.code} in {t})", "bool")
        if type(right.lit) is str:
            t = self.tmp()
            return _Code(
                f"(({right.code} in {t}) if _type({t} := {left.code}) is _str"
                f" else {spec.runtime}({t}, {right.code}))",
                "bool",
            )
        return _Code(f"{spec.runtime}({left.code}, {right.code})", "bool")

    def lower_affix(self, spec: Operator, e: ast.Binary) -> _Code:
        left, right = self.expr(e.left), self.expr(e.right)
        folded = self._fold(spec, left, right)
        if folded is not None:
            return folded
        if type(right.lit) is str:
            t = self.tmp()
            return _Code(
                f"(_type({t} := {left.code}) is _str and {t}.{spec.python}({right.code}))",
                "bool")
        return _Code(f"{spec.runtime}({left.code}, {right.code})", "bool")

    def lower_regex(self, spec: Operator, e: ast.Binary) -> _Code:
        return self.matches(spec, self.expr(e.left), e.right)

    def compare(self, spec: Operator, left: _Code, right: _Code) -> _Code:
        if left.is_lit and right.is_lit:
            return _TRUE if rt.HELPERS[spec.runtime](left.lit, right.lit) else _FALSE  # type: ignore[index]
        if left.is_lit:
            assert spec.flipped is not None
            spec, left, right = self.scope.operators[spec.flipped], right, left
        if not right.is_lit:
            return _Code(f"{spec.runtime}({left.code}, {right.code})", "bool")
        op = spec.python
        v = right.lit
        x = left.code
        if v is None:
            return _FALSE  # a comparison with null is false
        if left.kind == "int" and type(v) in rt.NUM:
            return _Code(f"({x} {op} {right.code})", "bool")  # an int that is never null
        t = self.tmp()
        if type(v) is bool:
            if spec.ordering:
                return _FALSE  # bool is not ordered
            if not spec.mismatch:
                return _Code(f"({x} is {v!r})", "bool")
            return _Code(f"(({t} := {x}) is not None and {t} is not {v!r})", "bool")
        if type(v) is str:
            if spec.ordering:
                return _Code(f"(_type({t} := {x}) is _str and {t} {op} {right.code})", "bool")
            if not spec.mismatch:
                return _Code(f"({x} {op} {right.code})", "bool")
            return _Code(f"(({t} := {x}) is not None and {t} {op} {right.code})", "bool")
        # a number
        if spec.mismatch:
            return _Code(
                f"(({t} := {x}) is not None and"
                f" (_type({t}) not in _NUM or {t} {op} {right.code}))",
                "bool",
            )
        return _Code(f"(_type({t} := {x}) in _NUM and {t} {op} {right.code})", "bool")

    def arith(self, op: str, left: _Code, right: _Code, span: ast.Span) -> _Code:
        if left.is_lit and right.is_lit:
            return self.literal(_ARITH_FN[op](left.lit, right.lit), span)
        if right.is_lit and type(right.lit) is int and (op in "+-*" or (op == "%" and right.lit)):
            if left.kind == "int":
                return _Code(f"({left.code} {op} {right.code})", "int")
            t = self.tmp()
            return _Code(f"({t} {op} {right.code} if _type({t} := {left.code}) in _NUM else None)")
        if left.is_lit and type(left.lit) is int and op in "+-*":
            if right.kind == "int":
                return _Code(f"({left.code} {op} {right.code})", "int")
            t = self.tmp()
            return _Code(f"({left.code} {op} {t} if _type({t} := {right.code}) in _NUM else None)")
        return _Code(f"{_ARITH_HELPER[op]}({left.code}, {right.code})")

    def in_list(self, spec: Operator, left: _Code, lst: ast.ListLit) -> _Code:
        """``left in [...]`` (``not in`` when ``spec`` is negated): a frozenset look-up for
        scalar literals, else ``spec``'s runtime helper."""
        negated = spec.negated
        items = [self.expr(i) for i in lst.items]
        if not all(i.is_lit and _scalar_lit(i.lit) for i in items):
            return _Code(f"{spec.runtime}({left.code}, [{', '.join(i.code for i in items)}])",
                         "bool")
        values = [i.lit for i in items if i.lit is not None]
        keys = frozenset(rt.set_key(v) for v in values)
        if left.is_lit:
            hit = rt.in_set(left.lit, keys)
            if not negated:
                return _TRUE if hit else _FALSE
            return _TRUE if left.lit is not None and not hit else _FALSE
        if not values:
            return _FALSE if not negated else _Code(f"({left.code} is not None)", "bool")
        t = self.tmp()
        c = self.const(keys)
        types = {type(v) for v in values}
        if types == {str}:
            guard = "is _str"
        elif types <= rt.NUM:
            guard = "in _NUM"
        elif not negated:
            return _Code(f"_in_set({left.code}, {c})", "bool")
        else:
            return _Code(f"_not_in_set({left.code}, {c})", "bool")
        if not negated:
            return _Code(f"(_type({t} := {left.code}) {guard} and {t} in {c})", "bool")
        return _Code(
            f"(({t} := {left.code}) is not None and not (_type({t}) {guard} and {t} in {c}))",
            "bool",
        )

    def matches(self, spec: Operator, left: _Code, pattern: ast.Expr) -> _Code:
        if not isinstance(pattern, ast.Lit) or type(pattern.value) is not str:
            raise CompileError(f"`{spec.spelling}` needs a string literal pattern", pattern.span)
        try:
            regex = rt.Regex(pattern.value, deferred=self.deferred and not left.is_lit)
        except Exception as exc:
            raise CompileError(f"invalid regular expression: {exc}", pattern.span) from exc
        if left.is_lit:
            return _TRUE if rt.matches(regex, left.lit) else _FALSE
        return _Code(f"{spec.runtime}({self.const(regex)}, {left.code})", "bool")

    # -- matching operators (cep/compiler/matchers.py)

    def _test(self, matcher: CidrSet | GlobSet | FoldedSet, negated: bool,
              left: _Code) -> _Code:
        """``matcher.test(left)`` (``test_not`` when ``negated``), folded for a literal."""
        fn = matcher.test_not if negated else matcher.test
        if left.is_lit:
            return _TRUE if fn(left.lit) else _FALSE
        return _Code(f"{self.const(fn)}({left.code})", "bool")

    def _string_lits(self, e: ast.Expr, what: str) -> list[str]:
        """The string literals of ``e``: one string, or a list of them."""
        items = e.items if isinstance(e, ast.ListLit) else (e,)
        out = []
        for item in items:
            if not isinstance(item, ast.Lit) or type(item.value) is not str:
                raise CompileError(f"{what} must be string literals", item.span)
            out.append(item.value)
        return out

    def in_cidr(self, spec: Operator, left: _Code, call: ast.Call) -> _Code:
        blocks = []
        for arg in call.args:
            if not isinstance(arg, ast.Lit) or type(arg.value) is not str:
                raise CompileError("cidr() takes string literals, as in cidr(\"10.0.0.0/8\")",
                                   arg.span)
            blocks.append(arg.value)
        if not blocks:
            raise CompileError("cidr() needs at least one block", call.span)
        try:
            matcher = CidrSet(blocks)
        except MatcherError as exc:
            raise CompileError(str(exc), call.span) from exc
        return self._test(matcher, spec.negated, left)

    def lower_fold_eq(self, spec: Operator, e: ast.Binary) -> _Code:
        left, right = self.expr(e.left), e.right
        r = self.expr(right)
        if left.is_lit and right is not None and r.is_lit:
            return _TRUE if eq_folded(left.lit, r.lit) else _FALSE
        if left.is_lit:
            left, r = r, left
        if r.is_lit and type(r.lit) is str:
            t = self.tmp()
            c = self.const(r.lit.casefold())
            return _Code(f"(_type({t} := {left.code}) is _str and {t}.casefold() == {c})",
                         "bool")
        if r.is_lit:
            assert spec.exact_as is not None
            return self.compare(self.scope.operators[spec.exact_as], left, r)
        return _Code(f"{self.const(eq_folded)}({left.code}, {r.code})", "bool")

    def lower_fold_set(self, spec: Operator, e: ast.Binary) -> _Code:
        op, left, right = spec.spelling, self.expr(e.left), e.right
        if not isinstance(right, ast.ListLit) or not all(
                isinstance(i, ast.Lit) and _scalar_lit(i.value) for i in right.items):
            raise CompileError(f"`{op}` needs a list of literals, as in "
                               f"`{op} [\"admin\", \"root\"]`", right.span)
        values = [i.value for i in right.items if isinstance(i, ast.Lit)]
        return self._test(FoldedSet(values), spec.negated, left)

    def lower_glob(self, spec: Operator, e: ast.Binary) -> _Code:
        left, right = self.expr(e.left), e.right
        patterns = self._string_lits(right, f"the patterns of `{spec.spelling}`")
        try:
            globs = GlobSet(patterns, fold=spec.folds_case)
        except Exception as exc:
            raise CompileError(f"invalid pattern: {exc}", right.span) from exc
        if globs.only_exact and spec.exact_as is not None and not left.is_lit:
            return self.in_list(self.scope.operators[spec.exact_as], left, ast.ListLit(
                tuple(ast.Lit(p) for p in sorted(globs.exact)), right.span))
        return self._test(globs, spec.negated, left)

    _LOWERINGS: dict[Lowering, Callable[[_Gen, Operator, ast.Binary], _Code]] = {
        Lowering.COMPARE: lower_compare,
        Lowering.MEMBERSHIP: lower_membership,
        Lowering.CONTAINS: lower_contains,
        Lowering.AFFIX: lower_affix,
        Lowering.REGEX: lower_regex,
        Lowering.FOLD_EQ: lower_fold_eq,
        Lowering.FOLD_SET: lower_fold_set,
        Lowering.GLOB: lower_glob,
    }
    """The method that writes each lowering of :class:`~cep.lang.operators.Lowering`."""

    # -- calls

    def stage_arg(self, e: ast.Call, allow_field: bool) -> tuple[str, tuple[str, ...]]:
        """The (stage, field parts) an aggregate ranges over."""
        if self.mode == "filter":
            raise CompileError(f"aggregate {e.func}() cannot be used in a header filter", e.span)
        if len(e.args) != 1:
            raise CompileError(f"{e.func}() takes exactly one argument", e.span)
        arg = e.args[0]
        if not isinstance(arg, ast.Path) or not arg.parts or arg.parts[0] not in self.scope:
            raise CompileError(f"{e.func}() needs a stage, as in {e.func}(s)", e.span)
        parts = tuple(arg.parts)
        self.parts(parts, arg.span)
        if len(parts) > 1 and not allow_field:
            raise CompileError(f"{e.func}() takes a stage, not a field", e.span)
        return parts[0], parts[1:]

    def aggregate_event(self, e: ast.Call) -> str:
        """Source of the Event returned by ``first(s)`` / ``last(s)``."""
        stage, _ = self.stage_arg(e, allow_field=False)
        return self.stage_event(stage, e.func, e.span)

    def call(self, e: ast.Call) -> _Code:
        f = e.func
        if f == ast.CIDR_FUNCTION:
            raise CompileError("cidr(…) is a set of IP blocks: write `x in cidr(…)`", e.span)
        if f in ("first", "last"):
            return _Code(f"_ev_data({self.aggregate_event(e)})")
        if f == "count":
            stage, parts = self.stage_arg(e, allow_field=True)
            if parts:
                evs = self.stage_events(stage, e.span)
                return _Code(f"_agg_count_field({evs}, {self.parts(parts, e.span)})", "int")
            if self.mode == "emit":
                return _Code(f"_agg_count({self.stage_events(stage, e.span)})", "int")
            self.iterative = True
            return _Code(f"_pm_count(pm, {self.name(stage, e.span)})", "int")
        if f in _FIELD_AGGS:
            stage, parts = self.stage_arg(e, allow_field=True)
            if not parts:
                raise CompileError(f"{f}() needs a field, as in {f}(s.amount)", e.span)
            evs = self.stage_events(stage, e.span)
            kind = "int" if f == "distinct_count" else "any"
            return _Code(f"{_FIELD_AGGS[f]}({evs}, {self.parts(parts, e.span)})", kind)
        if f in _FUNC_HELPER:
            arity = ast.FUNCTIONS[f]
            if not (len(e.args) == arity or (f == "round" and len(e.args) == 1)):
                raise CompileError(f"{f}() takes {arity} argument(s), got {len(e.args)}", e.span)
            if (f == "text" and self.mode != "emit" and len(e.args) == 1
                    and isinstance(e.args[0], ast.Path) and tuple(e.args[0].parts) == ("this",)):
                # the event under test's text, built once per event for every rule
                self.uses_ev = True
                return _Code("_ev_text(ev)")
            args = [self.expr(a) for a in e.args]
            if all(a.is_lit for a in args):
                fn = rt.HELPERS[_FUNC_HELPER[f]]
                return self.literal(fn(*(a.lit for a in args)), e.span)
            if f == "lower" and self.shared and isinstance(e.args[0], ast.Path):
                field = self.data_parts(e.args[0])
                if field is not None and field in self.shared:
                    name = self.shared[field]
                    if name is None:
                        t = self.tmp()
                        name = self.shared[field] = self.tmp()
                        self.prelude.append((name, f"({t}.lower() if _type({t} := "
                                                   f"{args[0].code}) is _str else None)"))
                    return _Code(name, "str?")
            if f in ("lower", "upper"):
                t = self.tmp()
                return _Code(f"({t}.{f}() if _type({t} := {args[0].code}) is _str else None)",
                             "str?")
            return _Code(f"{_FUNC_HELPER[f]}({', '.join(a.code for a in args)})")
        raise CompileError(f"unknown function {f}()", e.span)

    def lookup(self, e: ast.Lookup) -> _Code:
        table = self.scope.lists.get(e.table)
        if table is None or e.table in self.scope.names:
            raise CompileError(f"`{e.table}` is not a table of this rule's file", e.span)
        key = self.expr(e.key)
        return _Code(f"{self.const(table.row)}({key.code})")

    def attr(self, e: ast.Attr) -> _Code:
        parts = tuple(e.parts)
        ptxt = self.parts(parts, e.span)
        if isinstance(e.obj, ast.Call) and e.obj.func in ("first", "last"):
            return self.event_field(self.aggregate_event(e.obj), parts, e.span)
        if isinstance(e.obj, ast.Lookup) and parts:  # one cell, no row object
            table = self.scope.lists.get(e.obj.table)
            if table is None or e.obj.table in self.scope.names:
                raise CompileError(f"`{e.obj.table}` is not a table of this rule's file",
                                   e.obj.span)
            key = self.expr(e.obj.key)
            cell = _Code(f"{self.const(table.cell)}({key.code}, {self.name(parts[0], e.span)})")
            if len(parts) == 1:
                return cell
            return _Code(f"_getp({cell.code}, {self.parts(parts[1:], e.span)})")
        obj = self.expr(e.obj)
        if not parts:
            return obj
        return _Code(f"_getp({obj.code}, {ptxt})")


# --------------------------------------------------------------------------- assembly


def _text(gen: _Gen, name: str, params: str, body: str) -> GeneratedText:
    """The text of ``def name(params): return body`` (plus the bindings ``body`` needs)."""
    lines = [f"def {name}({params}):"]
    if gen.mode == "emit" and (gen.uses_data or gen.uses_ev):
        lines.append("    ev = _match_latest(m)")
    if gen.uses_data:
        lines.append("    _d = ev.data")
    if gen.prelude:  # (each ``(x := …) or True`` is true: the expression's value follows)
        body = "".join(f"(({n} := {c}) or True) and " for n, c in gen.prelude) + f"({body})"
    lines.append(f"    return {body}")
    # The same expression as a fragment over the data object ``_d`` alone, for code that
    # inlines several rules' keys and first conditions into one loop (see ``inline_expr``).
    data_only = not gen.iterative and not gen.uses_ev and gen.mode != "emit"
    return GeneratedText("\n".join(lines) + "\n", body if data_only else None,
                         dict(gen.consts))


def _namespace() -> dict[str, Any]:
    """The globals of a generated function before its constants: empty builtins and the
    runtime helpers."""
    namespace: dict[str, Any] = {"__builtins__": {}}
    namespace.update(rt.HELPERS)
    return namespace


def _build(text: GeneratedText, name: str) -> GeneratedCode:
    """Compile ``text`` (its function ``name``) with empty builtins and only the runtime
    helpers and its constants in scope.

    Raises:
        CompileError: Python cannot compile it (too complex, too deeply nested)."""
    namespace = _namespace()
    namespace.update(text.consts)
    try:
        code = _compiled(text.source, name)
    except (SyntaxError, RecursionError, MemoryError, ValueError) as exc:
        raise CompileError("expression is too complex or too deeply nested") from exc
    exec(code, namespace)
    return GeneratedCode(namespace[name], text)


def _deferred(generate: Callable[[], GeneratedText], name: str, params: str, what: str,
              text: GeneratedText | None = None) -> GeneratedCode:
    """The code whose text ``generate`` writes (or ``text``, written already), generated and
    compiled on first use (:func:`cep.compiler.deferred.deferred_function`; ``what``: whose
    function it is, for the log)."""
    fn, body = deferred_function(generate, name, params, _namespace(), what, text)
    return GeneratedCode(fn, body)


@functools.lru_cache(maxsize=1024)
def _compiled(source: str, name: str) -> CodeType:
    """``compile()`` of a generated module source.  Code objects are immutable and carry no
    constant of the rule (those live in the namespace each function is executed into), so
    rules whose generated source is the same (the unkeyed ``key`` of every Sigma rule) share
    one; a pure memo, bounded.

    Raises:
        SyntaxError, RecursionError, MemoryError, ValueError: Python cannot compile it."""
    return compile(source, f"<cep:{name}>", "exec")


def _expr(gen: _Gen, expr: ast.Expr) -> _Code:
    try:
        return gen.expr(expr)
    except RecursionError as exc:
        raise CompileError("expression is nested too deeply") from exc


def compile_condition(expr: ast.Expr, stages: StageScope, label: str,
                      defer: str | None = None) -> Condition:
    """Compile a stage's ``where`` or ``until`` expression.

    Args:
        expr: the expression AST.
        stages: the rule's event-bearing stage names.
        label: the expression's text, shown by ``cep explain``.
        defer: the rule's name when the condition's function is to be generated and
            compiled on its first use (:mod:`cep.compiler.deferred`), and each regex's
            compilation its first test (:class:`cep.compiler.runtime.Regex`): only for a
            checked rule (the checker, or the Sigma loader, has compiled each pattern with
            the same engine), whose expressions the generator accepts.  A condition whose
            ``iterative`` and ``always`` only generating tells is generated now (only its
            ``compile()`` waits).

    Returns:
        A :class:`~cep.nfa.pattern.Condition` whose ``fn(ev, pm)`` takes the
        :class:`~cep.event.Event` under test and the partial match so far (a
        ``PartialMatchNode`` chain, newest first, or None) and returns a bool without raising.
        ``iterative`` is set iff the expression refers to a stage (``NAME.f`` or an
        aggregate); otherwise the function never reads ``pm``.  ``always`` is set when the
        expression is the constant ``true``.

    Raises:
        CompileError: see the module docstring (when deferred: only those found now).
    """
    guard = eq_guard(expr, stages)
    if defer is not None and _known_shape(expr, stages):
        what = f"rule `{defer}`: condition `{label[:200]}`"
        code = replace(_deferred(lambda: _condition(expr, stages, True)[0], "_cond", "ev, pm",
                                 what), ast=expr, scope=tuple(stages.names), eq_guard=guard)
        return Condition(code.fn, label, False, False, code)
    text, iterative, always = _condition(expr, stages, defer is not None)
    if defer is not None:  # (its shape is known by generating it: only the compile waits)
        what = f"rule `{defer}`: condition `{label[:200]}`"
        code = _deferred(lambda: text, "_cond", "ev, pm", what, text)
    else:
        code = _build(text, "_cond")
    code = replace(code, ast=expr, scope=tuple(stages.names), eq_guard=guard)
    return Condition(code.fn, label, iterative, always, code)


def _condition(expr: ast.Expr, stages: StageScope, deferred: bool
               ) -> tuple[GeneratedText, bool, bool]:
    """The text of a condition's function, whether it reads the partial match
    (``iterative``) and whether it is the constant ``true`` (``always``).

    Raises:
        CompileError: see the module docstring."""
    gen = _Gen("cond", stages, deferred=deferred)
    gen.share_lowered(expr)
    body = gen.truth(_expr(gen, expr))
    return (_text(gen, "_cond", "ev, pm", body.code), gen.iterative,
            body.is_lit and body.lit is True)


def _known_shape(expr: ast.Expr, stages: StageScope) -> bool:
    """True when the tree alone tells that the condition's function neither reads the
    partial match nor is the constant ``true`` (what :func:`_condition` also answers), so
    that its generation may wait: no stage is named (only a stage name or an aggregate of
    one makes the generator read the partial match), and the top is an ``and``/``or``
    (never folded to a constant) or a comparison whose left side reads the event under
    test (a field, or ``lower``/``upper`` of one), which folds to no constant true: the
    generator folds a comparison only when its left side is a constant."""
    if not isinstance(expr, ast.Binary):
        return False
    if expr.op not in ("and", "or"):
        left = expr.left
        if isinstance(left, ast.Call) and left.func in ("lower", "upper") \
                and len(left.args) == 1:
            left = left.args[0]
        if not isinstance(left, ast.Path) or expr.op not in stages.operators:
            return False
    names = stages.names
    for node in ast.walk(expr):
        if isinstance(node, ast.Path):
            if node.parts and node.parts[0] in names:
                return False
        elif isinstance(node, ast.Call) and node.func in ast.AGGREGATES:
            return False
    return True


def eq_guard(expr: ast.Expr, stages: StageScope = EMPTY_SCOPE) -> tuple[str, str] | None:
    """``(field, text)`` when ``expr`` can only hold for an event whose top-level ``field``
    is the string ``text``: one of the terms of its top-level ``and`` chain is ``field ==
    "text"`` (or ``"text" == field``).  Lets generated loops branch on ``field`` once for
    many rules.  ``None`` otherwise."""
    todo = [expr]
    while todo:
        e = todo.pop()
        if not isinstance(e, ast.Binary):
            continue
        if e.op == "and":
            todo += [e.right, e.left]
            continue
        spec = stages.operators.get(e.op)
        if spec is None or not spec.equality:
            continue
        for a, b in ((e.left, e.right), (e.right, e.left)):
            if isinstance(a, ast.Path) and isinstance(b, ast.Lit) and type(b.value) is str \
                    and not b.duration:
                parts = tuple(a.parts)
                if len(parts) == 2 and parts[0] == "this":
                    parts = parts[1:]
                if len(parts) == 1 and type(parts[0]) is str and parts[0] not in stages \
                        and parts[0] not in ("this", "ts"):
                    return parts[0], b.value
    return None


def compile_header_filter(expr: ast.Expr, lists: Mapping[str, ListData] | None = None,
                          defer: str | None = None) -> GeneratedCode:
    """Compile the rule header ``where``: ``code.fn(event) -> bool`` (no stages in scope;
    ``lists``: the lists and tables of the rule's file; ``defer``: as for
    :func:`compile_condition`).

    Raises:
        CompileError: for aggregates (there is no match yet) and the usual errors.
    """
    scope = StageScope(frozenset(), lists or {})

    def generate(deferred: bool) -> GeneratedText:
        gen = _Gen("filter", scope, deferred=deferred)
        return _text(gen, "_filter", "ev", gen.truth(_expr(gen, expr)).code)

    code = (_build(generate(False), "_filter") if defer is None else
            _deferred(lambda: generate(True), "_filter", "ev", f"rule `{defer}`: header filter"))
    return replace(code, ast=expr, eq_guard=eq_guard(expr))


def compile_key(paths: tuple[ast.Path, ...]) -> GeneratedCode:
    """Compile ``key by p1, p2, …`` to ``code.fn(data) -> key`` over an event's data object
    (``code.key_paths``: the fields' paths).

    Returns:
        Code whose function gives, for one path, the field's value itself (the fast path: no
        tuple is built); for several paths, a tuple with one value per path; without paths, ``()``
        (every event shares one key).  A missing field gives None; list and object values are
        made hashable by :func:`cep.compiler.runtime.hashable`.  A leading ``this.`` is
        dropped; ``ts`` here is a data field.  The alert's ``key`` object is built by
        :class:`cep.operator.records.AlertBuilder`.
    """
    gen = _Gen("filter", EMPTY_SCOPE)
    items = []
    for p in paths:
        parts = tuple(p.parts)
        if len(parts) > 1 and parts[0] == "this":
            parts = parts[1:]
        if not parts:
            raise CompileError("empty key path", p.span)
        if len(parts) == 1:
            get = f"_d.get({gen.name(parts[0], p.span)})"
        else:
            get = f"_getp(_d, {gen.parts(parts, p.span)})"
        t = gen.tmp()
        items.append(f"({t} if _type({t} := {get}) in _SCALAR or {t} is None else _hashable({t}))")
    gen.consts["_SCALAR"] = rt.SCALAR
    body = items[0] if len(items) == 1 else "(" + "".join(f"{i}, " for i in items) + ")"
    key_paths = tuple(
        tuple(p.parts[1:] if len(p.parts) > 1 and p.parts[0] == "this" else p.parts)
        for p in paths)
    return replace(_build(_text(gen, "_key", "_d", body), "_key"),
                   key_paths=key_paths)  # type: ignore[arg-type]


def key_names(paths: tuple[ast.Path, ...]) -> tuple[str, ...]:
    """Names of the key fields for the alert's ``key`` object: ``("user", "device.id")``."""
    out = []
    for p in paths:
        parts = tuple(p.parts)
        if len(parts) > 1 and parts[0] == "this":
            parts = parts[1:]
        out.append(".".join(parts))
    return tuple(out)


def compile_emit(fields: Sequence[tuple[str, ast.Expr]], stages: StageScope,
                 defer: str | None = None) -> GeneratedCode:
    """Compile an ``emit { name: expr, … }`` block to ``code.fn(match) -> dict``.

    ``match`` is the full match map ``{stage: [events oldest first]}``.  ``NAME.f`` reads the
    stage's first event, aggregates all its events, bare fields and ``ts`` the match's latest
    event.  Values are JSON-serialisable (see :func:`cep.compiler.runtime.to_json`); keys keep
    the order written.  ``defer``: the rule's name when the function is to be generated and
    compiled on its first call (a rule's first match; :mod:`cep.compiler.deferred`): only
    for a checked rule, whose emit the generator accepts.

    Raises:
        CompileError: see the module docstring (not when deferred).
    """
    if defer is not None:
        return _deferred(lambda: _emit_text(fields, stages), "_emit", "m",
                         f"rule `{defer}`: emit")
    return _build(_emit_text(fields, stages), "_emit")


def _emit_text(fields: Sequence[tuple[str, ast.Expr]], stages: StageScope) -> GeneratedText:
    """The text of an emit's function (:func:`compile_emit`).

    Raises:
        CompileError: see the module docstring."""
    gen = _Gen("emit", stages)
    entries = []
    for name, expr in fields:
        if (isinstance(expr, ast.ListLit) and expr.items
                and all(isinstance(i, ast.Lit) and type(i.value) in (str, int, float)
                        and (type(i.value) is not float or math.isfinite(i.value))
                        for i in expr.items)):
            # a list of literals (a Sigma rule's tags, references): one constant tuple,
            # made a new list for each alert by _json, not source to compile
            value = _Code(gen.const(tuple(i.value for i in expr.items)))  # type: ignore[union-attr]
        else:
            value = _expr(gen, expr)
        entries.append(f"{gen.name(name, ast.NOWHERE)}: _json({value.code})")
    return _text(gen, "_emit", "m", "{" + ", ".join(entries) + "}")


def inline_expr(code: GeneratedCode | None, prefix: str
                ) -> tuple[str, dict[str, Any]] | None:
    """A compiled key, header filter or non-iterative condition as an expression over the
    event's data object ``_d`` only, for generated code that inlines it; ``None`` when it has
    no such form (it reads ``ts`` or a stage) or there is no code (a hand-made function).

    Returns ``(source, namespace)``: the expression, with the generator's constants renamed
    ``_c…`` → ``{prefix}c…`` so that fragments of several rules can share one function, and
    the bindings it needs besides :data:`cep.compiler.runtime.HELPERS`.  Only ``NAME``
    tokens are renamed (never the contents of string literals); temporaries (``_v…``) are
    assigned before use inside each fragment, so fragments may reuse them.
    """
    if code is None or code.data_expr is None:
        return None
    body, consts = code.data_expr, code.consts
    if not consts:
        return body, {}
    renamed = {name: f"_{prefix}{name[1:]}" for name in consts}
    out = []
    for tok in tokenize.generate_tokens(io.StringIO(body).readline):
        text = tok.string
        if tok.type == tokenize.NAME and text in renamed:
            text = renamed[text]
        out.append((tok.type, text))
    source = tokenize.untokenize(out).strip()
    return source, {renamed[k]: v for k, v in consts.items()}


def source_of(compiled: Condition | GeneratedCode) -> str:
    """The generated Python source behind a compiled condition, filter, key or emit.

    Raises:
        TypeError: a condition this module did not compile."""
    code = compiled.code if isinstance(compiled, Condition) else compiled
    if not isinstance(code, GeneratedCode):
        raise TypeError("not a compiled expression")
    return code.source
