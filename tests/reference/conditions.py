"""The condition language of the Flink-oracle case format, parsed and evaluated in Python.

Grammar (loosest binding first)::

    expr    := or
    or      := and ("or" and)*
    and     := not ("and" not)*
    not     := "not" not | cmp
    cmp     := add (("==" | "!=" | "<=" | ">=" | "<" | ">") add)?
    add     := mul (("+" | "-") mul)*
    mul     := unary (("*" | "/") unary)*
    unary   := "-" unary | primary
    primary := NUMBER | STRING | true | false | null | "(" expr ")" | FIELD
             | startsWith(e, e) | contains(e, e) | if(e, e, e)
             | sum(STAGE.field) | count(STAGE) | first(STAGE).field | last(STAGE).field

Values are ``float`` (every number), ``str``, ``bool`` or ``None`` (a missing field).

* A comparison with a missing operand is false, ``!=`` included.  Operands of different types are
  never equal and not ordered (only ``!=`` holds).  Booleans only support ``==``/``!=``.
* Arithmetic with a missing or non-numeric operand is missing; ``+`` on two strings concatenates;
  division follows IEEE doubles (``x / 0`` is ±infinity or NaN).
* Truthiness: missing → false, numbers → non-zero, strings → non-empty.
* ``type`` of an event without a ``type`` field is ``"Event"``; ``ts`` is the event's timestamp.
* Iterative functions read the events already taken by STAGE in the partial match under
  evaluation (never the event under test): ``sum`` skips non-numeric values, ``first``/``last``
  of an empty stage are missing.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Condition", "ConditionError", "compile_condition", "TRUE"]

Event = Mapping[str, Any]
Context = Mapping[str, Sequence[Event]]  # stage name -> events already taken by that stage


class ConditionError(ValueError):
    """A condition that does not parse."""


# --------------------------------------------------------------------------- values


def truthy(v: Any) -> bool:
    if v is None:
        return False
    if isinstance(v, bool):
        return v
    if isinstance(v, float):
        return v != 0.0
    if isinstance(v, str):
        return v != ""
    return True


def _norm(v: Any) -> Any:
    """JSON ints become floats, like every number of the language."""
    if isinstance(v, bool) or v is None or isinstance(v, str | float):
        return v
    if isinstance(v, int):
        return float(v)
    return v


def field_of(event: Event, name: str) -> Any:
    v = event.get(name)
    if v is None and name == "type":
        return "Event"
    return _norm(v)


def _compare(op: str, x: Any, y: Any) -> bool:
    if x is None or y is None:
        return False
    if isinstance(x, bool) or isinstance(y, bool):
        if isinstance(x, bool) and isinstance(y, bool):
            if op == "==":
                return x == y
            if op == "!=":
                return x != y
            return False
        return op == "!="
    same_kind = (isinstance(x, float) and isinstance(y, float)) or (
        isinstance(x, str) and isinstance(y, str)
    )
    if not same_kind:
        return op == "!="
    if op == "==":
        return x == y
    if op == "!=":
        return x != y
    if op == "<":
        return x < y
    if op == "<=":
        return x <= y
    if op == ">":
        return x > y
    if op == ">=":
        return x >= y
    raise AssertionError(op)


def _divide(p: float, q: float) -> float:
    if q != 0.0:
        return p / q
    if p == 0.0 or math.isnan(p):
        return math.nan
    return math.copysign(math.inf, p) * math.copysign(1.0, q)


def _arith(op: str, x: Any, y: Any) -> Any:
    if op == "+" and isinstance(x, str) and isinstance(y, str):
        return x + y
    if not (isinstance(x, float) and not isinstance(x, bool)) or not (
        isinstance(y, float) and not isinstance(y, bool)
    ):
        return None
    if op == "+":
        return x + y
    if op == "-":
        return x - y
    if op == "*":
        return x * y
    return _divide(x, y)


# --------------------------------------------------------------------------- AST

Evaluator = Callable[[Event, Context], Any]


@dataclass(frozen=True)
class Condition:
    """A parsed condition.  ``iterative`` tells whether it reads the partial match."""

    source: str
    iterative: bool
    stages: frozenset[str]  # stages whose taken events the condition reads
    _eval: Evaluator

    def value(self, event: Event, context: Context | None = None) -> Any:
        return self._eval(event, context or {})

    def __call__(self, event: Event, context: Context | None = None) -> bool:
        return truthy(self._eval(event, context or {}))


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
      | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<op>==|!=|<=|>=|[<>+\-*/(),.])
      | (?P<name>[A-Za-z_$][A-Za-z0-9_$]*)
    )""",
    re.VERBOSE,
)


def _unescape(body: str) -> str:
    out = []
    i = 0
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            d = body[i + 1]
            out.append({"n": "\n", "t": "\t"}.get(d, d))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _tokenize(src: str) -> list[tuple[str, str]]:
    tokens = []
    pos = 0
    while True:
        while pos < len(src) and src[pos].isspace():
            pos += 1
        if pos >= len(src):
            break
        m = _TOKEN.match(src, pos)
        if m is None or m.end() == pos:
            raise ConditionError(f"condition {src!r}: cannot read at {pos}")
        kind = m.lastgroup or ""
        tokens.append((kind, m.group(kind)))
        pos = m.end()
    tokens.append(("end", ""))
    return tokens


class _Parser:
    def __init__(self, src: str) -> None:
        self.src = src
        self.toks = _tokenize(src)
        self.i = 0
        self.iterative = False
        self.stages: set[str] = set()

    # -- tokens
    def peek(self) -> tuple[str, str]:
        return self.toks[self.i]

    def take(self) -> tuple[str, str]:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def accept(self, text: str) -> bool:
        kind, tok = self.peek()
        if tok == text and kind in ("op", "name"):
            self.i += 1
            return True
        return False

    def expect(self, text: str) -> None:
        if not self.accept(text):
            raise ConditionError(f"condition {self.src!r}: expected {text!r}")

    def ident(self) -> str:
        kind, tok = self.take()
        if kind != "name":
            raise ConditionError(f"condition {self.src!r}: expected a name, got {tok!r}")
        return tok

    # -- grammar
    def parse(self) -> Evaluator:
        e = self.expr()
        if self.peek()[0] != "end":
            raise ConditionError(f"condition {self.src!r}: unexpected {self.peek()[1]!r}")
        return e

    def expr(self) -> Evaluator:
        return self.or_()

    def or_(self) -> Evaluator:
        left = self.and_()
        while self.accept("or"):
            right = self.and_()
            left = (lambda a, b: lambda ev, cx: truthy(a(ev, cx)) or truthy(b(ev, cx)))(left, right)
        return left

    def and_(self) -> Evaluator:
        left = self.not_()
        while self.accept("and"):
            right = self.not_()
            left = (lambda a, b: lambda ev, cx: truthy(a(ev, cx)) and truthy(b(ev, cx)))(
                left, right
            )
        return left

    def not_(self) -> Evaluator:
        if self.accept("not"):
            inner = self.not_()
            return lambda ev, cx: not truthy(inner(ev, cx))
        return self.cmp()

    def cmp(self) -> Evaluator:
        left = self.add()
        kind, tok = self.peek()
        if kind == "op" and tok in ("==", "!=", "<=", ">=", "<", ">"):
            self.i += 1
            right = self.add()
            return lambda ev, cx: _compare(tok, left(ev, cx), right(ev, cx))
        return left

    def add(self) -> Evaluator:
        left = self.mul()
        while True:
            kind, tok = self.peek()
            if kind == "op" and tok in ("+", "-"):
                self.i += 1
                right = self.mul()
                left = (lambda o, a, b: lambda ev, cx: _arith(o, a(ev, cx), b(ev, cx)))(
                    tok, left, right
                )
            else:
                return left

    def mul(self) -> Evaluator:
        left = self.unary()
        while True:
            kind, tok = self.peek()
            if kind == "op" and tok in ("*", "/"):
                self.i += 1
                right = self.unary()
                left = (lambda o, a, b: lambda ev, cx: _arith(o, a(ev, cx), b(ev, cx)))(
                    tok, left, right
                )
            else:
                return left

    def unary(self) -> Evaluator:
        if self.accept("-"):
            inner = self.unary()

            def neg(ev: Event, cx: Context) -> Any:
                v = inner(ev, cx)
                return -v if isinstance(v, float) else None

            return neg
        return self.primary()

    def primary(self) -> Evaluator:
        kind, tok = self.take()
        if kind == "num":
            value = float(tok)
            return lambda ev, cx: value
        if kind == "str":
            text = _unescape(tok[1:-1])
            return lambda ev, cx: text
        if kind == "op" and tok == "(":
            inner = self.expr()
            self.expect(")")
            return inner
        if kind != "name":
            raise ConditionError(f"condition {self.src!r}: unexpected {tok!r}")
        if tok == "true":
            return lambda ev, cx: True
        if tok == "false":
            return lambda ev, cx: False
        if tok in ("null", "None"):
            return lambda ev, cx: None
        if self.accept("("):
            return self.call(tok)
        name = tok
        if name in ("ts", "proc_time"):
            self.iterative = True
        return lambda ev, cx: field_of(ev, name)

    def call(self, fn: str) -> Evaluator:
        if fn in ("sum", "count", "first", "last"):
            self.iterative = True
            stage = self.ident()
            self.stages.add(stage)
            if fn == "sum":
                self.expect(".")
                fld = self.ident()
                self.expect(")")

                def total(ev: Event, cx: Context) -> Any:
                    s = 0.0
                    for e in cx.get(stage, ()):
                        v = field_of(e, fld)
                        if isinstance(v, float):
                            s += v
                    return s

                return total
            if fn == "count":
                self.expect(")")
                return lambda ev, cx: float(len(cx.get(stage, ())))
            self.expect(")")
            self.expect(".")
            fld = self.ident()
            pick = 0 if fn == "first" else -1

            def end_field(ev: Event, cx: Context) -> Any:
                taken = cx.get(stage, ())
                return field_of(taken[pick], fld) if taken else None

            return end_field
        if fn in ("startsWith", "contains", "if"):
            args = []
            if not self.accept(")"):
                args.append(self.expr())
                while self.accept(","):
                    args.append(self.expr())
                self.expect(")")
            want = 3 if fn == "if" else 2
            if len(args) != want:
                raise ConditionError(f"condition {self.src!r}: {fn}() takes {want} arguments")
            if fn == "if":
                c, a, b = args
                return lambda ev, cx: a(ev, cx) if truthy(c(ev, cx)) else b(ev, cx)
            s, p = args
            if fn == "startsWith":

                def starts(ev: Event, cx: Context) -> bool:
                    x, y = s(ev, cx), p(ev, cx)
                    return isinstance(x, str) and isinstance(y, str) and x.startswith(y)

                return starts

            def has(ev: Event, cx: Context) -> bool:
                x, y = s(ev, cx), p(ev, cx)
                return isinstance(x, str) and isinstance(y, str) and y in x

            return has
        raise ConditionError(f"condition {self.src!r}: unknown function {fn}")


_CACHE: dict[str, Condition] = {}


def compile_condition(src: str | None) -> Condition:
    """Parses ``src``; ``None`` and ``"true"`` are the condition that always holds."""
    text = "true" if src is None else src
    cached = _CACHE.get(text)
    if cached is not None:
        return cached
    p = _Parser(text)
    ev = p.parse()
    cond = Condition(text, p.iterative, frozenset(p.stages), ev)
    _CACHE[text] = cond
    return cond


TRUE = compile_condition("true")
