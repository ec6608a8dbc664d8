"""``having``, ``all of`` and ``suppress for`` compiled to plain data for the operator.

A rule with a window compiles to an automaton of one single-event stage (every event of the
rule completes a one-event match at once; for ``all of`` the stage's condition is the
members' conditions joined by ``or``, so the prefilters and the line scanner skip the events
no member wants) and a :class:`WindowSpec` that the operator's window
(:mod:`cep.operator.window`) applies to those one-event matches.  ``suppress for`` becomes a
:class:`SuppressSpec` (:mod:`cep.operator.suppression`).  Layer 2.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from cep.compiler.codegen import EMPTY_SCOPE, compile_condition, compile_key, key_names
from cep.lang import ast
from cep.lang.format import format_expr
from cep.lang.window_check import having_terms

__all__ = ["AggregateTerm", "WindowSpec", "SuppressSpec", "window_spec", "suppress_spec",
           "members_condition"]


@dataclass(frozen=True)
class AggregateTerm:
    """One comparison of a ``having`` condition.

    Attributes:
        func: ``count``, ``count_distinct``, ``sum``, ``avg``, ``min`` or ``max``.
        label: the aggregate as written canonically (``count_distinct(dst_host)``): its name
            in the alert's ``aggregates``.
        value: ``fn(data) -> value`` of the field the aggregate reads (``None`` for
            ``count()``); list and object values come back hashable.
        op: ``<``, ``<=``, ``>``, ``>=`` or ``==``.
        threshold: the number compared with.
    """

    func: str
    label: str
    value: Callable[[dict[str, Any]], Any] | None
    op: str
    threshold: int | float


@dataclass(frozen=True)
class WindowSpec:
    """A rule's sliding window (docs/rule-language.md).

    Attributes:
        kind: ``having`` or ``all_of``.
        within_ms: the window: an event ``x`` is in the window at ``e`` when
            ``e.ts - x.ts < within_ms``.
        terms: the comparisons of a ``having`` condition, all of which must hold.
        members: the members of ``all of``, each ``(name, fn(event, None) -> bool)``.
    """

    kind: str
    within_ms: int
    terms: tuple[AggregateTerm, ...] = ()
    members: tuple[tuple[str, Callable[[Any, Any], bool]], ...] = ()


@dataclass(frozen=True)
class SuppressSpec:
    """``suppress for``: the period (ms) and the group of an alert: ``group(data)`` of the
    match's latest event, or ``None`` for the rule's key; ``names`` the ``by`` fields."""

    period_ms: int
    group: Callable[[dict[str, Any]], Hashable] | None = None
    names: tuple[str, ...] = ()


def members_condition(members: tuple[ast.Stage, ...]) -> ast.Expr | None:
    """The members' conditions joined by ``or`` (``None``: some member accepts every event,
    so the one stage of the automaton does too)."""
    conds = [m.condition for m in members]
    if not conds or any(c is None for c in conds):
        return None
    out = conds[0]
    assert out is not None
    for c in conds[1:]:
        assert c is not None
        out = ast.Binary("or", out, c, c.span)
    return out


def window_spec(rule: ast.Rule) -> WindowSpec | None:
    """The window of a checked rule, ``None`` without ``having`` / ``all of``."""
    w = rule.window
    if w is None:
        return None
    if w.kind == "having":
        assert w.condition is not None
        terms, _ = having_terms(w.condition)
        return WindowSpec("having", w.within_ms, tuple(
            AggregateTerm(t.func, format_expr(t.call),
                          compile_key((t.path,)).fn if t.path is not None else None,
                          t.op, t.threshold)
            for t in terms))
    members = tuple(
        (m.name, compile_condition(m.condition, EMPTY_SCOPE, format_expr(m.condition)).fn
         if m.condition is not None else _always)
        for m in rule.pattern)
    return WindowSpec("all_of", w.within_ms, members=members)


def _always(ev: Any, pm: Any) -> bool:
    return True


def suppress_spec(rule: ast.Rule) -> SuppressSpec | None:
    """``suppress for`` of a checked rule, ``None`` without it."""
    s = rule.suppress
    if s is None:
        return None
    if not s.by:
        return SuppressSpec(s.period_ms)
    return SuppressSpec(s.period_ms, compile_key(s.by).fn, key_names(s.by))
