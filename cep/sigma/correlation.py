"""Sigma correlation rules (specification v2) → engine rules keyed by ``group-by``.

Each correlation becomes one engine rule over the events of the rules it references (their
detections, compiled by :mod:`cep.sigma.rule`), keyed by its ``group-by`` fields, with its
``timespan`` as the window (event time, milliseconds):

=================  ==============================================================
type               engine rule
=================  ==============================================================
event_count        ``where R1 or R2 … having count() OP N within T``
value_count        ``where … having count_distinct(F) OP N within T``
value_sum          ``where … having sum(F) OP N within T``
value_avg          ``where … having avg(F) OP N within T``
temporal           ``all of (r1 where R1, r2 where R2, …) within T``
temporal_ordered   ``pattern begin r1 where R1 followed by r2 where R2 … within T``,
                   ``after match skip past last event``
=================  ==============================================================

``having`` and ``all of`` alert at the event that makes the condition hold over the window
ending at it (docs/rule-language.md); which condition operators each type accepts, and why
the others are refused, is :func:`having_condition` (docs/sigma.md, *Correlation rules*).

A referenced rule may itself be a correlation (a chain) only where the chain has an exact
form: see :func:`to_correlation_rule`.  Field ``aliases`` are refused: an event is keyed
before any rule's condition is tested, so its key cannot depend on which rule it matched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sigma.correlations import (
    CorrelationConditionAND,
    SigmaCorrelationCondition,
    SigmaCorrelationConditionOperator,
    SigmaCorrelationRule,
    SigmaCorrelationType,
    SigmaExtendedCorrelationCondition,
    SigmaRuleReference,
)

from cep.lang import ast
from cep.sigma.detection import UnsupportedSigma
from cep.sigma.rule import meta_emit, sigma_meta

__all__ = ["ReferencedRule", "to_correlation_rule", "having_condition", "CorrelationThreshold"]

_Op = SigmaCorrelationConditionOperator
_OPS = {_Op.GTE: ">=", _Op.GT: ">", _Op.LTE: "<=", _Op.LT: "<", _Op.EQ: "==", _Op.NEQ: "!="}

_AGGREGATE = {
    SigmaCorrelationType.EVENT_COUNT: "count",
    SigmaCorrelationType.VALUE_COUNT: "count_distinct",
    SigmaCorrelationType.VALUE_SUM: "sum",
    SigmaCorrelationType.VALUE_AVG: "avg",
}
"""The ``having`` aggregate of each threshold type."""

_WHAT = {"count": "an event count", "count_distinct": "a count of distinct values",
         "sum": "a sum"}
"""Aggregates that only grow as events are added (values summed are counts, bytes, …)."""

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_KEYWORDS = frozenset(
    "rule end pattern description severity tags list table key references author from where "
    "begin next times to optional greedy consecutive until within emit or and not in contains "
    "like matches true false null this having by followed is starts ends one allow after skip "
    "on suppress all of ts events".split())
"""Words a member name must not be (keywords of the rule language, ``ts``)."""


@dataclass(frozen=True)
class ReferencedRule:
    """A detection rule a correlation can read: its engine rule's name and its condition
    over one event."""

    name: str
    condition: ast.Expr


@dataclass(frozen=True)
class CorrelationThreshold:
    """One comparison of a threshold correlation: ``aggregate(field) op value``.

    Attributes:
        aggregate: ``count``, ``count_distinct``, ``sum`` or ``avg`` (the ``having``
            aggregate).
        field: the field's name (``None`` for ``count``).
        op: ``>=``, ``>``, ``<=``, ``<`` or ``==``.
        value: the number compared with.
    """

    aggregate: str
    field: str | None
    op: str
    value: int | float

    def expr(self) -> ast.Expr:
        """The comparison as a ``having`` term."""
        args: tuple[ast.Expr, ...] = ()
        if self.field is not None:
            args = (ast.Path(tuple(self.field.split("."))),)
        return ast.Binary(self.op, ast.Call(self.aggregate, args), ast.Lit(self.value))


def _key(group_by: list[str] | None) -> tuple[ast.Path, ...]:
    out = []
    for f in group_by or ():
        parts = tuple(f.split("."))
        if any(p == "" for p in parts) or parts == ("ts",):
            raise UnsupportedSigma(f"group-by field {f!r} cannot be a key")
        out.append(ast.Path(parts))
    return tuple(out)


def _or(exprs: list[ast.Expr]) -> ast.Expr:
    out = exprs[0]
    for e in exprs[1:]:
        out = ast.Binary("or", out, e)
    return out


def having_condition(kind: SigmaCorrelationType, cond: SigmaCorrelationCondition,
                     field: str | list[str] | None) -> CorrelationThreshold:
    """The ``having`` comparison of a threshold correlation's condition.

    ``gte``/``gt`` are accepted for every type; ``lt``/``lte``/``eq`` for ``value_avg`` only:
    an average can rise and fall as events are added, so the average of the window ending
    at an event is decided at that event; a count, a count of distinct values or a sum can
    only be known to stay at or below a bound when the timespan is over, and ``having``
    decides at events.  ``neq`` has no ``having`` form.

    Raises:
        UnsupportedSigma: the operator is refused for this type (the reason says why), or
            the field is missing or names several fields."""
    aggregate = _AGGREGATE[kind]
    name = kind.name.lower()
    op = _OPS[cond.op]
    word = cond.op.name.lower()
    if cond.op == _Op.NEQ:
        raise UnsupportedSigma(
            f"{name} with `neq: {cond.count}`: a value that differs from a number holds for "
            "windows of every size, so no event can be said to make it hold; the window "
            "conditions of the engine compare with >=, >, <=, < and ==")
    if op in ("<", "<=", "==") and aggregate in _WHAT:
        raise UnsupportedSigma(
            f"{name} with `{word}: {cond.count}`: {_WHAT[aggregate]} stays "
            f"{'at' if op == '==' else 'below'} a bound only if no further event comes before "
            "the timespan is over, which is known at the window's end, while the engine "
            "alerts at the event that meets a threshold (use gte or gt)")
    if aggregate != "count":
        if isinstance(field, list):
            if len(field) != 1:
                raise UnsupportedSigma(f"{name} reads one field, not {field!r}")
            field = field[0]
        if not field:
            raise UnsupportedSigma(f"{name} needs the condition's `field`")
        parts = field.split(".")
        if any(p == "" for p in parts) or parts == ["ts"]:
            raise UnsupportedSigma(f"field {field!r} of {name} is not a field path")
        read: str | None = field
    else:
        read = None
    value = cond.count
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return CorrelationThreshold(aggregate, read, op, value)


def _all_rules_condition(corr: SigmaCorrelationRule, n: int) -> None:
    """Refuse a ``temporal``/``temporal_ordered`` condition other than "all ``n`` rules"."""
    cond = corr.condition
    name = corr.type.name.lower()
    if isinstance(cond, SigmaExtendedCorrelationCondition):
        refs = _conjunction(cond.parsed)
        if refs is None or len(set(refs)) != n:
            raise UnsupportedSigma(
                f"{name} with the condition {cond.expression!r}: only a conjunction of every "
                "referenced rule (`a and b and …`) has an exact form (an unordered or ordered "
                "set of events)")
        return
    k = cond.count
    if (cond.op == _Op.GTE and k == n) or (cond.op == _Op.GT and k == n - 1) or (
            cond.op == _Op.EQ and k == n):
        return
    raise UnsupportedSigma(
        f"{name} with `{cond.op.name.lower()}: {k}` over {n} rules: only the condition that "
        f"all {n} rules occur (gte: {n}, the default) is supported; some of the rules in any "
        "combination is not one set of events")


def _conjunction(node: object) -> list[str] | None:
    """The rule names of an extended condition that is an ``and`` of names, else None."""
    if isinstance(node, SigmaRuleReference):
        return [node.reference]
    if isinstance(node, CorrelationConditionAND):
        out: list[str] = []
        for a in node.args:
            sub = _conjunction(a)
            if sub is None:
                return None
            out += sub
        return out
    return None


def _member_names(refs: list[ReferencedRule]) -> list[str]:
    """Distinct stage / member names, one per referenced rule: its engine name where that
    is a name of the rule language, else ``ruleN``."""
    out: list[str] = []
    for i, r in enumerate(refs):
        name = r.name if _NAME.match(r.name) and r.name not in _KEYWORDS else f"rule{i + 1}"
        while name in out:
            name = f"{name}_{i + 1}"
        out.append(name)
    return out


def _references(corr: SigmaCorrelationRule,
                detections: dict[int, ReferencedRule]) -> list[ReferencedRule]:
    refs = corr.referenced_rules or corr.rules or []
    if not refs:
        raise UnsupportedSigma("a correlation needs the rules it correlates")
    out = []
    for ref in refs:
        rule = getattr(ref, "rule", None)
        if isinstance(rule, SigmaCorrelationRule):
            raise UnsupportedSigma(
                f"rule {ref.reference!r} is a correlation: the engine's rules read events, "
                "not the alerts of other rules, so a chain of correlations has no exact form "
                "here (write the chain as one .cep pattern)")
        if rule is None or id(rule) not in detections:
            raise UnsupportedSigma(f"rule {ref.reference!r} is not a detection rule compiled "
                                   "from the same file")
        out.append(detections[id(rule)])
    return out


def to_correlation_rule(corr: SigmaCorrelationRule, name: str,
                        detections: dict[int, ReferencedRule],
                        group_by: list[str] | None = None,
                        field: str | list[str] | None = None) -> ast.Rule:
    """The engine rule of a correlation rule.

    Args:
        corr: the correlation, its references resolved (pySigma's
            ``resolve_rule_references``).
        name: the engine rule's name.
        detections: ``id()`` of each compiled detection rule of the file (as pySigma resolved
            the references) → its name and condition.
        group_by: the group-by fields after the processing pipelines (default: the rule's).
        field: the condition's field after the pipelines (default: the rule's).

    Raises:
        UnsupportedSigma: a type, condition, alias or reference without an exact form here
            (the message says which and why)."""
    if corr.aliases.aliases:
        raise UnsupportedSigma(
            "field aliases: an event is keyed by its group-by fields before any rule is "
            "tested on it, so its key cannot depend on which referenced rule it matched")
    refs = _references(corr, detections)
    within = corr.timespan.seconds * 1000
    meta = sigma_meta(corr)
    key = _key(group_by if group_by is not None else corr.group_by)
    emit = meta_emit(meta)
    base = ast.Rule(name=name, pattern=(), description=meta.title or None,
                    severity=meta.severity, key_by=key)
    kind = corr.type
    if kind in _AGGREGATE:
        cond = corr.condition
        if not isinstance(cond, SigmaCorrelationCondition):
            raise UnsupportedSigma(f"{kind.name.lower()} needs a threshold condition")
        threshold = having_condition(kind, cond, field if field is not None else cond.fieldref)
        extra: tuple[tuple[str, ast.Expr], ...] = ()
        if threshold.aggregate == "count":
            extra = (("count", ast.Call("count", (ast.Path((ast.WINDOW_STAGE,)),))),)
        return _replace(base,
                        where=_or([r.condition for r in refs]),
                        pattern=(ast.Stage("begin", ast.WINDOW_STAGE, None, ()),),
                        window=ast.Window("having", within, threshold.expr()),
                        emits=(ast.Emit(fields=emit.fields + extra),))
    names = _member_names(refs)
    if kind == SigmaCorrelationType.TEMPORAL:
        _all_rules_condition(corr, len(refs))
        members = tuple(ast.Stage("begin", n, r.condition, ())
                        for n, r in zip(names, refs, strict=True))
        return _replace(base, pattern=members, window=ast.Window("all_of", within),
                        emits=(emit,))
    if kind == SigmaCorrelationType.TEMPORAL_ORDERED:
        _all_rules_condition(corr, len(refs))
        stages = tuple(ast.Stage("begin" if i == 0 else "followed_by", n, r.condition, ())
                       for i, (n, r) in enumerate(zip(names, refs, strict=True)))
        return _replace(base, pattern=stages, within_ms=within,
                        skip=ast.Skip("skip_past_last_event"), emits=(emit,))
    raise UnsupportedSigma(f"correlation type {kind.name.lower()} has no form in the engine's "
                           "windows (they keep counts, distinct values, sums, averages, "
                           "minima and maxima, not percentiles or medians)")


def _replace(rule: ast.Rule, **changes: object) -> ast.Rule:
    fields = {f: getattr(rule, f) for f in rule.__dataclass_fields__}
    fields.update(changes)
    return ast.Rule(**fields)  # type: ignore[arg-type]
