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

A field alias is replaced by the field it names when it names the same field for every
referenced rule.  Chains (a referenced rule that is a correlation) and aliases naming
different fields for different rules are compiled onto derived streams by
:mod:`cep.sigma.chain`, which calls this module for everything else.
A condition may be a range (``gt: 100`` with ``lte: 200``), as the specification allows and
pySigma does not parse (:func:`take_range_criteria`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sigma.correlations import (
    CorrelationConditionAND,
    SigmaCorrelationCondition,
    SigmaCorrelationConditionOperator,
    SigmaCorrelationFieldAliases,
    SigmaCorrelationRule,
    SigmaCorrelationType,
    SigmaExtendedCorrelationCondition,
    SigmaRuleReference,
)

from cep.lang import ast
from cep.lang.operators import EQ, GE, GT, LE, LT, NE
from cep.sigma.detection import UnsupportedSigma
from cep.sigma.rule import meta_emit, sigma_meta

__all__ = ["ReferencedRule", "to_correlation_rule", "having_condition", "CorrelationThreshold",
           "take_range_criteria", "criteria", "RANGE_KEY"]

_Op = SigmaCorrelationConditionOperator
_OPS = {_Op.GTE: GE.spelling, _Op.GT: GT.spelling, _Op.LTE: LE.spelling, _Op.LT: LT.spelling,
        _Op.EQ: EQ.spelling, _Op.NEQ: NE.spelling}

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


def _and(exprs: list[ast.Expr]) -> ast.Expr:
    out = exprs[0]
    for e in exprs[1:]:
        out = ast.Binary("and", out, e)
    return out


RANGE_KEY = "x-cep-criteria"
"""Key under which :func:`take_range_criteria` keeps every criterion of a condition, in the
``correlation`` mapping (pySigma keeps the mapping in ``custom_attributes``)."""

_WORDS = {op.name.lower(): op for op in _Op}


def take_range_criteria(docs: list[object]) -> None:
    """Let pySigma parse the ranges of the specification: a condition such as ``{gt: 100,
    lte: 200}`` ("To define a range, you can use the conjunction 'AND' in the mapping")
    keeps one criterion for pySigma, which reads exactly one, and all of them under
    :data:`RANGE_KEY`.  Changes ``docs`` (parsed YAML documents) in place; documents that
    are not such correlations are left alone."""
    for doc in docs:
        corr = doc.get("correlation") if isinstance(doc, dict) else None
        cond = corr.get("condition") if isinstance(corr, dict) else None
        if not isinstance(cond, dict):
            continue
        words = [w for w in cond if w in _WORDS]
        if len(words) < 2:
            continue
        assert isinstance(corr, dict)
        corr[RANGE_KEY] = [[w, cond[w]] for w in words]
        corr["condition"] = {k: v for k, v in cond.items() if k not in words[1:]}


def criteria(corr: SigmaCorrelationRule) -> list[tuple[SigmaCorrelationConditionOperator,
                                                       int | float]]:
    """The criteria of a correlation's condition (all of them must hold): the range kept by
    :func:`take_range_criteria`, else pySigma's one criterion.

    Raises:
        UnsupportedSigma: a criterion's value is not a number."""
    raw = corr.custom_attributes.get("correlation")
    kept = raw.get(RANGE_KEY) if isinstance(raw, dict) else None
    if kept is None:
        cond = corr.condition
        assert isinstance(cond, SigmaCorrelationCondition)
        return [(cond.op, cond.count)]
    out = []
    for word, value in kept:
        if type(value) not in (int, float) or value != value or abs(value) == float("inf"):
            raise UnsupportedSigma(f"condition `{word}: {value!r}` is not a number")
        out.append((_WORDS[word], int(value) if float(value).is_integer() else value))
    return out


_HOLDS = {_Op.GTE: lambda a, b: a >= b, _Op.GT: lambda a, b: a > b,
          _Op.LTE: lambda a, b: a <= b, _Op.LT: lambda a, b: a < b,
          _Op.EQ: lambda a, b: a == b, _Op.NEQ: lambda a, b: a != b}
"""Each operator as a test of a value against a number."""


def having_condition(kind: SigmaCorrelationType,
                     crits: list[tuple[SigmaCorrelationConditionOperator, int | float]],
                     field: str | list[str] | None) -> tuple[CorrelationThreshold, ...]:
    """The ``having`` comparisons of a threshold correlation's condition (its criteria, all
    of which must hold).

    ``gte``/``gt`` are accepted for every type; ``lt``/``lte``/``eq`` for ``value_avg`` only:
    an average can rise and fall as events are added, so the average of the window ending
    at an event is decided at that event; a count, a count of distinct values or a sum (of
    amounts, bytes, …) can only be known to stay at or below a bound when the timespan is
    over, while ``having`` decides at events, and as the upper end of a range it would
    never decide anything (a count crosses its lower bound one event at a time).  ``neq``
    has no ``having`` form.

    Raises:
        UnsupportedSigma: an operator is refused for this type (the reason says why), or
            the field is missing or names several fields."""
    aggregate = _AGGREGATE[kind]
    name = kind.name.lower()
    for op_, value in crits:
        word = op_.name.lower()
        if op_ == _Op.NEQ:
            raise UnsupportedSigma(
                f"{name} with `neq: {value}`: the engine's windows compare with >=, >, <=, "
                "< and ==; for a count or a sum, differing from a number holds for a window "
                "without events too, so no event could make it start to hold")
        if op_ in (_Op.LT, _Op.LTE, _Op.EQ) and aggregate in _WHAT:
            raise UnsupportedSigma(
                f"{name} with `{word}: {value}`: {_WHAT[aggregate]} stays "
                f"{'at' if op_ == _Op.EQ else 'below'} a bound only if no further event comes "
                "before the timespan is over, which is known at the window's end, while the "
                "engine alerts at the event that meets a threshold (use gte or gt)")
    if aggregate in _WHAT and all(_HOLDS[op_](0, v) for op_, v in crits):
        written = ", ".join(f"{op_.name.lower()}: {v}" for op_, v in crits)
        raise UnsupportedSigma(
            f"{name} with `{written}` holds for a window without events ({_WHAT[aggregate]} "
            "of 0), so no event can make it hold: it would never fire")
    read: str | None = None
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
        read = field
    return tuple(CorrelationThreshold(aggregate, read, _OPS[op_],
                                      int(v) if isinstance(v, float) and v.is_integer() else v)
                 for op_, v in crits)


def _all_rules_condition(corr: SigmaCorrelationRule, n: int) -> None:
    """Refuse a ``temporal``/``temporal_ordered`` condition that does not mean "all ``n``
    rules": of the counts 0…n of distinct rules seen, it must hold for n alone."""
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
    crits = criteria(corr)
    if [k for k in range(n + 1) if all(_HOLDS[op](k, v) for op, v in crits)] == [n]:
        return
    written = ", ".join(f"{op.name.lower()}: {v}" for op, v in crits)
    raise UnsupportedSigma(
        f"{name} with `{written}` over {n} rules: only the condition that all {n} rules "
        f"occur (gte: {n}, the default) is supported; some of the rules in any combination "
        "is not one set of events")


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


def _unaliased(corr: SigmaCorrelationRule, group_by: list[str] | None,
               aliases: SigmaCorrelationFieldAliases) -> list[str]:
    """The group-by fields with each alias replaced by the one field it names in the events
    of every referenced rule.

    Raises:
        UnsupportedSigma: an alias names different fields for different rules (an event is
            keyed by its group-by fields before any rule is tested on it, so its key cannot
            depend on which rule it matched), or no field for some referenced rule."""
    by_name = {a.alias: a for a in aliases}
    refs = corr.referenced_rules or corr.rules or []
    out = []
    for g in group_by or ():
        alias = by_name.get(g)
        if alias is None:
            out.append(g)
            continue
        by_rule = {ref.reference: f for ref, f in alias.mapping.items()}
        fields_of: list[str] = []
        for ref in refs:  # (an alias names a rule by its name, or by its id)
            rule = getattr(ref, "rule", None)
            names = [ref.reference] + ([str(rule.name), str(rule.id)] if rule else [])
            found = next((by_rule[n] for n in names if n in by_rule), None)
            if found is None:
                raise UnsupportedSigma(f"alias {g!r} names no field for rule "
                                       f"{ref.reference!r}")
            fields_of.append(found)
        fields = sorted(set(fields_of))
        if len(fields) != 1:
            raise UnsupportedSigma(
                f"alias {g!r} names different fields ({', '.join(fields)}) for different "
                "rules: an event is keyed by its group-by fields before any rule is tested "
                "on it, so its key cannot depend on which referenced rule it matched")
        out.append(fields[0])
    return out


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


def rule_references(corr: SigmaCorrelationRule) -> list[SigmaRuleReference]:
    """The references of ``corr`` to the rules it correlates (resolved when the
    collection's references are).

    Raises:
        UnsupportedSigma: it names none."""
    refs = corr.referenced_rules or corr.rules or []
    if not refs:
        raise UnsupportedSigma("a correlation needs the rules it correlates")
    return list(refs)


def _references(corr: SigmaCorrelationRule,
                detections: dict[int, ReferencedRule]) -> list[ReferencedRule]:
    refs = rule_references(corr)
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
                        field: str | list[str] | None = None,
                        aliases: SigmaCorrelationFieldAliases | None = None) -> ast.Rule:
    """The engine rule of a correlation rule.

    Args:
        corr: the correlation, its references resolved (pySigma's
            ``resolve_rule_references``).
        name: the engine rule's name.
        detections: ``id()`` of each compiled detection rule of the file (as pySigma resolved
            the references) → its name and condition.
        group_by: the group-by fields after the processing pipelines (default: the rule's).
        field: the condition's field after the pipelines (default: the rule's).
        aliases: the field aliases after the pipelines (default: the rule's).

    Raises:
        UnsupportedSigma: a type, condition, alias or reference without an exact form here
            (the message says which and why)."""
    refs = _references(corr, detections)
    within = corr.timespan.seconds * 1000
    meta = sigma_meta(corr)
    key = _key(_unaliased(corr, group_by if group_by is not None else corr.group_by,
                          aliases if aliases is not None else corr.aliases))
    emit = meta_emit(meta)
    # an event without a group-by field belongs to no group (as `stats … by` leaves it out)
    present: list[ast.Expr] = [ast.IsNull(ast.Path(("this", *p.parts)), negated=True)
                               for p in key]
    base = ast.Rule(name=name, pattern=(), description=meta.title or None,
                    severity=meta.severity, key_by=key,
                    where=_and(present) if present else None)
    kind = corr.type
    if kind in _AGGREGATE:
        cond = corr.condition
        if not isinstance(cond, SigmaCorrelationCondition):
            raise UnsupportedSigma(f"{kind.name.lower()} needs a threshold condition")
        terms = having_condition(kind, criteria(corr),
                                 field if field is not None else cond.fieldref)
        extra: tuple[tuple[str, ast.Expr], ...] = ()
        if terms[0].aggregate == "count":
            extra = (("count", ast.Call("count", (ast.Path((ast.WINDOW_STAGE,)),))),)
        return _replace(base,
                        where=_and([_or([r.condition for r in refs]), *present]),
                        pattern=(ast.Stage("begin", ast.WINDOW_STAGE, None, ()),),
                        window=ast.Window("having", within, _and([t.expr() for t in terms])),
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
