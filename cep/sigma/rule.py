"""One processed Sigma detection rule → one engine rule (:class:`cep.lang.ast.Rule`).

The engine rule has one stage, ``begin event where <detection>`` (a detection rule fires on
each event its condition holds for), no key, and an ``emit`` block that carries the Sigma
rule's metadata into every alert's ``data``: ``sigma_id``, ``title``, ``level``, ``author``
(the Detection Rule License requires it in alerts), ``tags`` and ``references``.  The
rule's ``level`` is also its severity (``informational`` → ``info``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sigma.correlations import SigmaCorrelationRule
from sigma.rule import SigmaRule

from cep.lang import ast
from cep.sigma.detection import UnsupportedSigma, detection_expr

__all__ = ["SigmaMeta", "rule_name", "sigma_meta", "to_engine_rule", "STAGE"]

STAGE = "event"
"""The name of the single stage of a compiled detection rule (``match.event`` in alerts)."""

_SEVERITY = {"informational": "info", "low": "low", "medium": "medium", "high": "high",
             "critical": "critical"}


@dataclass(frozen=True)
class SigmaMeta:
    """What an alert of a Sigma rule carries of it: ``sigma_id`` (the rule's UUID, or ``""``),
    ``title``, ``level`` (Sigma's word), ``severity`` (the engine's), ``author``, ``tags``,
    ``references``."""

    sigma_id: str
    title: str
    level: str
    severity: str
    author: str
    tags: tuple[str, ...]
    references: tuple[str, ...]


def sigma_meta(rule: SigmaRule | SigmaCorrelationRule) -> SigmaMeta:
    """The metadata of a Sigma rule (missing attributes as empty values, level ``medium``)."""
    level = str(rule.level.name).lower() if rule.level is not None else "medium"
    return SigmaMeta(
        sigma_id=str(rule.id) if rule.id is not None else "",
        title=rule.title or "",
        level=level,
        severity=_SEVERITY.get(level, "medium"),
        author=rule.author or "",
        tags=tuple(str(t) for t in rule.tags),
        references=tuple(str(r) for r in rule.references),
    )


_NOT_NAME = re.compile(r"[^A-Za-z0-9_]+")


def rule_name(stem: str, rule: SigmaRule | SigmaCorrelationRule) -> str:
    """The engine's name of a Sigma rule: its ``name`` attribute if it has one, else the
    file's stem (SigmaHQ names each file after its rule), made an identifier (runs of other
    characters become ``_``; a leading digit gets ``sigma_`` before it)."""
    base = rule.name or stem
    name = _NOT_NAME.sub("_", base).strip("_") or "sigma_rule"
    if name[0].isdigit():
        name = "sigma_" + name
    return name


def _str_list(items: tuple[str, ...]) -> ast.ListLit:
    return ast.ListLit(tuple(ast.Lit(s) for s in items))


def meta_emit(meta: SigmaMeta) -> ast.Emit:
    """The ``emit`` block of a Sigma rule's alerts: its metadata as literal fields."""
    return ast.Emit(fields=(
        ("sigma_id", ast.Lit(meta.sigma_id)),
        ("title", ast.Lit(meta.title)),
        ("level", ast.Lit(meta.level)),
        ("author", ast.Lit(meta.author)),
        ("tags", _str_list(meta.tags)),
        ("references", _str_list(meta.references)),
    ))


def to_engine_rule(rule: SigmaRule, name: str) -> ast.Rule:
    """The engine rule of a processed Sigma detection rule (conditions ``or``-ed when a rule
    lists several).

    Raises:
        UnsupportedSigma: a construct of the detection has no exact counterpart."""
    conds = [detection_expr(c.parsed) for c in rule.detection.parsed_condition]
    cond = conds[0]
    for c in conds[1:]:
        cond = ast.Binary("or", cond, c)
    meta = sigma_meta(rule)
    return ast.Rule(
        name=name,
        pattern=(ast.Stage("begin", STAGE, cond, ()),),
        description=meta.title or None,
        severity=meta.severity,
        emits=(meta_emit(meta),),
    )


__all__ += ["UnsupportedSigma", "meta_emit"]
