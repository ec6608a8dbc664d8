"""Sigma correlation rules (specification v2) → engine patterns, keyed by ``group-by``.

* ``event_count`` with ``condition: {gte: N}`` (``gt: N`` is ``gte: N + 1``)::

      key by GROUP-BY
      pattern
        begin first where RULE
        followed by more where RULE times N-1
      within TIMESPAN
      after match skip past last event

  An alert when N events of the referenced rule(s) of one group fall within the timespan
  (the last less than TIMESPAN after the first, Flink's ``within``); counting then starts
  again after the alert's last event.
* ``temporal_ordered``: one stage per referenced rule, in the order listed, each ``followed
  by`` the next, ``within TIMESPAN``, ``skip past last event``.

The referenced rules' own detections are the stages' conditions (several rules: ``or``).
Other types (``value_count``, ``temporal``, ``value_sum``, ``value_avg``, …), other condition
operators, field aliases and correlations of correlations are refused with a reason
(:class:`~cep.sigma.detection.UnsupportedSigma`).
"""

from __future__ import annotations

from sigma.correlations import (
    SigmaCorrelationCondition,
    SigmaCorrelationConditionOperator,
    SigmaCorrelationRule,
    SigmaCorrelationType,
)

from cep.lang import ast
from cep.sigma.detection import UnsupportedSigma
from cep.sigma.rule import meta_emit, sigma_meta

__all__ = ["to_correlation_rule"]


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


def to_correlation_rule(corr: SigmaCorrelationRule, name: str,
                        conditions: dict[int, ast.Expr],
                        group_by: list[str] | None = None) -> ast.Rule:
    """The engine rule of a correlation rule; ``conditions`` maps ``id()`` of each compiled
    detection rule (as pySigma resolved the references) to its condition; ``group_by``: the
    group-by fields after the pipelines (default: the rule's own).

    Raises:
        UnsupportedSigma: an unsupported type, condition, alias or reference."""
    refs = corr.rules or []
    if not refs:
        raise UnsupportedSigma("a correlation needs the rules it correlates")
    if corr.aliases.aliases:
        raise UnsupportedSigma("field aliases of correlations are not supported yet")
    conds = []
    for ref in refs:
        rule = getattr(ref, "rule", None)
        if rule is None or id(rule) not in conditions:
            raise UnsupportedSigma(f"rule {ref.reference!r} is not a detection rule compiled "
                                   "from the same file (correlations of correlations and "
                                   "references across files are not supported yet)")
        conds.append(conditions[id(rule)])
    within = corr.timespan.seconds * 1000
    meta = sigma_meta(corr)
    key = _key(group_by if group_by is not None else corr.group_by)
    if corr.type == SigmaCorrelationType.EVENT_COUNT:
        n = _at_least(corr.condition)
        cond = _or(conds)
        stages = [ast.Stage("begin", "first", cond, ())]
        if n > 1:
            stages.append(ast.Stage("followed_by", "more", cond,
                                    (ast.Modifier("times", n=n - 1),)))
        counted: ast.Expr = (ast.Binary("+", ast.Lit(1), ast.Call("count", (ast.Path(("more",)),)))
                             if n > 1 else ast.Lit(1))
        extra: tuple[tuple[str, ast.Expr], ...] = (("count", counted),)
    elif corr.type == SigmaCorrelationType.TEMPORAL_ORDERED:
        if isinstance(corr.condition, SigmaCorrelationCondition) and not (
                corr.condition.op == SigmaCorrelationConditionOperator.GTE
                and corr.condition.count == len(refs)):
            raise UnsupportedSigma("temporal_ordered supports only the condition that all "
                                   f"{len(refs)} rules occur (gte: {len(refs)})")
        stages = [ast.Stage("begin" if i == 0 else "followed_by", f"rule{i + 1}", c, ())
                  for i, c in enumerate(conds)]
        extra = ()
    else:
        raise UnsupportedSigma(f"correlation type {corr.type.name.lower()} is not supported yet")
    emit = meta_emit(meta)
    return ast.Rule(
        name=name,
        pattern=tuple(stages),
        description=meta.title or None,
        severity=meta.severity,
        key_by=key,
        within_ms=within,
        skip=ast.Skip("skip_past_last_event"),
        emits=(ast.Emit(fields=emit.fields + extra),),
    )


def _at_least(cond: object) -> int:
    """N of an ``event_count`` condition ``gte: N`` / ``gt: N - 1``."""
    if not isinstance(cond, SigmaCorrelationCondition):
        raise UnsupportedSigma("extended correlation conditions are not supported yet")
    count = cond.count
    if isinstance(count, float) and not count.is_integer():
        raise UnsupportedSigma(f"a count of {count} events")
    n = int(count)
    if cond.op == SigmaCorrelationConditionOperator.GTE:
        return max(n, 1)
    if cond.op == SigmaCorrelationConditionOperator.GT:
        return max(n + 1, 1)
    raise UnsupportedSigma(f"event_count supports gte and gt conditions, not "
                           f"{cond.op.name.lower()} (a pattern completes when a count is "
                           "reached; an upper bound needs the window's end)")
