"""Checks of the clauses that replace or follow a pattern: ``having``, ``all of`` and
``suppress for`` (docs/rule-language.md, *Suppression, aggregate thresholds and unordered
sets*).  One pass of :func:`cep.lang.check.check_rule`; layer 1, plain functions over the AST.
"""

from __future__ import annotations

from collections.abc import Iterator

from cep.diagnostics import Diagnostic
from cep.lang.ast import (
    AGGREGATES,
    WINDOW_AGGREGATES,
    Binary,
    Call,
    Expr,
    Lit,
    Path,
    Rule,
    Span,
    walk,
)
from cep.lang.operators import OPERATORS

__all__ = ["check_window_clauses", "having_terms", "HavingTerm"]

_SHRINKING = frozenset({"count", "count_distinct"})
"""Aggregates that adding an event never lowers: compared with ``<`` / ``<=`` they can only
stop holding when an event is added, never start."""


class HavingTerm:
    """One comparison of a ``having`` condition: ``func(path) op threshold`` (``path``
    ``None`` for ``count()``)."""

    __slots__ = ("func", "path", "op", "threshold", "call")

    def __init__(self, func: str, path: Path | None, op: str, threshold: int | float,
                 call: Call) -> None:
        self.func = func
        self.path = path
        self.op = op
        self.threshold = threshold
        self.call = call


def _conjuncts(expr: Expr) -> Iterator[Expr]:
    todo = [expr]
    while todo:
        e = todo.pop()
        if isinstance(e, Binary) and e.op == "and":
            todo += [e.right, e.left]
        else:
            yield e


def having_terms(expr: Expr) -> tuple[list[HavingTerm], list[tuple[Span, str, str]]]:
    """The comparisons of a ``having`` condition in written order, and the problems found:
    ``(span, message, hint)`` for each part that is not ``AGGREGATE OP NUMBER``."""
    terms: list[HavingTerm] = []
    problems: list[tuple[Span, str, str]] = []
    shape = "`count()`, `count_distinct(f)`, `sum(f)`, `avg(f)`, `min(f)` or `max(f)`"
    for e in _conjuncts(expr):
        spec = OPERATORS.get(e.op) if isinstance(e, Binary) else None
        if not (spec is not None and spec.having and isinstance(e, Binary)
                and isinstance(e.left, Call)):
            problems.append((e.span, "a `having` condition compares aggregates with numbers, "
                             "joined by `and`", f"write e.g. `count_distinct(host) >= 10`; "
                             f"the aggregates are {shape}"))
            continue
        call, lit = e.left, e.right
        if call.func not in WINDOW_AGGREGATES:
            problems.append((call.span, f"`{call.func}` is not an aggregate of `having`",
                             f"use {shape}"))
            continue
        if not (isinstance(lit, Lit) and type(lit.value) in (int, float) and not lit.duration):
            problems.append((lit.span, "a `having` threshold is a number literal",
                             "compare with a number, e.g. `>= 10`"))
            continue
        arity = 0 if call.func == "count" else 1
        if len(call.args) != arity or not all(isinstance(a, Path) for a in call.args):
            want = "no argument" if arity == 0 else "one field path"
            problems.append((call.span, f"`{call.func}` takes {want} in `having`",
                             "`count()` counts events; the others read one field of each"))
            continue
        path = call.args[0] if call.args else None
        assert path is None or isinstance(path, Path)
        terms.append(HavingTerm(call.func, path, e.op, lit.value,  # type: ignore[arg-type]
                                call))
    return terms, problems


def _diag(file: str, rule: Rule, span: Span, message: str, hint: str | None = None
          ) -> Diagnostic:
    return Diagnostic(file, span, f"rule `{rule.name}`: {message}", "error", hint)


def check_window_clauses(rule: Rule, file: str) -> list[Diagnostic]:
    """Errors of ``having``, ``all of`` and ``suppress for`` in ``rule`` (none for a rule
    without them)."""
    out: list[Diagnostic] = []
    sup = rule.suppress
    if sup is not None and sup.period_ms <= 0:
        out.append(_diag(file, rule, sup.span, "`suppress for` needs a period above 0",
                         "e.g. `suppress for 1h`"))
    window = rule.window
    if window is None:
        return out
    what = "`having`" if window.kind == "having" else "`all of`"
    if window.within_ms <= 0:
        out.append(_diag(file, rule, window.span, f"the window of {what} must be above 0: "
                         "a window of 0 holds no event", "e.g. `within 10m`"))
    if rule.skip.kind != "no_skip" or dict(rule.spans).get("after match") is not None:
        out.append(_diag(file, rule, rule.skip.span, f"`after match` has no meaning with "
                         f"{what}: an alert consumes no events",
                         "an alert fires where the threshold is crossed; add `suppress for` "
                         "to bound alerts per period"))
    if rule.timeout_emit is not None:
        out.append(_diag(file, rule, rule.timeout_emit.span,
                         f"`on timeout emit` has no meaning with {what}: nothing times out",
                         "remove it"))
    if window.kind == "having" and window.condition is not None:
        terms, problems = having_terms(window.condition)
        out += [_diag(file, rule, span, msg, hint) for span, msg, hint in problems]
        if terms and not problems and all(t.func in _SHRINKING and OPERATORS[t.op].below
                                          for t in terms):
            out.append(_diag(file, rule, window.condition.span,
                             "this `having` condition never fires: adding an event can only "
                             "make it false", "an alert fires at the event that makes the "
                             "condition hold; use `>=`, `>` or `==`"))
    else:
        names = {st.name for st in rule.pattern}
        for st in rule.pattern:
            if st.condition is None:
                continue
            for node in walk(st.condition):
                if isinstance(node, Call) and node.func in AGGREGATES:
                    out.append(_diag(file, rule, node.span, "a member of `all of` reads the "
                                     "event alone: no aggregates in its condition"))
                elif isinstance(node, Path) and node.parts[0] in names:
                    out.append(_diag(file, rule, node.span, f"a member of `all of` reads the "
                                     f"event alone, not member `{node.parts[0]}`",
                                     f"write `this.{'.'.join(node.parts)}` for a field"))
    return out
