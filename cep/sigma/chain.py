"""Sigma correlations over derived streams: aliases that name different fields for different
rules, and chains (a correlation among the ``rules`` of another).

Both need an event to be keyed by what it is to the correlation — the field the alias names
for the rule it matched, or the group of an inner correlation's alert — so they are compiled
onto derived streams (``emit to stream``, docs/rule-language.md): each referenced rule gets a
small *feeder* rule that emits, for every event it matches, a record into the correlation's
input stream ``<name>__events`` carrying the group-by values under their names (the alias
names) and, for ``value_*`` types, the counted field as ``sigma_value``; the correlation rule
reads that stream keyed by ``data.<group-by field>``.  A correlation that another one reads
also emits its alerts into ``<name>__alerts`` (its group-by values and metadata), which the
outer correlation's feeder reads.

=================  =============================================================
referenced rule    feeder
=================  =============================================================
detection          ``pattern begin event where <its condition>``, keyed by the
                   fields the group-by names for it
correlation        ``from <inner>__alerts``, keyed by ``data.<field>``, the
                   inner correlation's group-by field the outer one names for it
=================  =============================================================

Threshold types count an event once per group it falls into: the feeder of a detection rule
leaves out the events that an earlier referenced rule already put into the same group.  The
``temporal`` members are the feeders' records (``this.rule``); an event that matches two
rules is a record of each, as it is a member of both without aliases.

Correlations that need neither are compiled as before (:mod:`cep.sigma.correlation`).
"""

from __future__ import annotations

from dataclasses import dataclass

from sigma.correlations import (
    SigmaCorrelationCondition,
    SigmaCorrelationFieldAliases,
    SigmaCorrelationRule,
    SigmaCorrelationType,
)

from cep.lang import ast
from cep.lang.operators import EQ
from cep.sigma.correlation import (
    ReferencedRule,
    _all_rules_condition,
    _and,
    _key,
    _member_names,
    _or,
    _replace,
    criteria,
    having_condition,
    rule_references,
    to_correlation_rule,
)
from cep.sigma.detection import UnsupportedSigma
from cep.sigma.rule import STAGE, meta_emit, sigma_meta

__all__ = ["CorrelationOutput", "CompiledCorrelation", "compile_correlation",
           "correlation_order", "needs_streams", "VALUE_FIELD"]

VALUE_FIELD = "sigma_value"
"""The field of a feeder's record that holds the value a ``value_*`` correlation reads."""

_AGGREGATING = (SigmaCorrelationType.EVENT_COUNT, SigmaCorrelationType.VALUE_COUNT,
                SigmaCorrelationType.VALUE_SUM, SigmaCorrelationType.VALUE_AVG)


@dataclass(frozen=True)
class CorrelationOutput:
    """A compiled correlation that other correlations read: the stream of its alerts
    (``stream``), whose records hold its group-by values under ``data.<name>`` for each of
    ``group_by``, and its engine name."""

    name: str
    stream: str
    group_by: tuple[str, ...]


@dataclass(frozen=True)
class CompiledCorrelation:
    """The engine rules of one Sigma correlation (feeders first, then the correlation rule,
    then its stream form when ``output`` is set) and what other correlations read of it."""

    rules: tuple[ast.Rule, ...]
    output: CorrelationOutput | None = None


def correlation_order(corrs: list[SigmaCorrelationRule]) -> list[SigmaCorrelationRule]:
    """``corrs`` with every correlation after the correlations it reads (file order
    otherwise); a cycle of references keeps file order for the rest (they are left out
    later, as references to rules not compiled yet)."""
    ids = {id(c) for c in corrs}
    done: set[int] = set()
    out: list[SigmaCorrelationRule] = []
    pending = list(corrs)
    while pending:
        ready = [c for c in pending
                 if all(id(getattr(r, "rule", None)) in done
                        or id(getattr(r, "rule", None)) not in ids
                        for r in (c.referenced_rules or c.rules or []))]
        if not ready:
            ready = pending[:1]
        for c in ready:
            done.add(id(c))
            out.append(c)
        pending = [c for c in pending if id(c) not in done]
    return out


def _field_of(ref: object, alias: SigmaCorrelationFieldAliases | None, g: str) -> str:
    """The field ``g`` (a group-by name) names in the events of the referenced rule ``ref``:
    the alias's field for it, or ``g``."""
    for a in alias or ():
        if a.alias != g:
            continue
        by_rule = {r.reference: f for r, f in a.mapping.items()}
        rule = getattr(ref, "rule", None)
        names = [getattr(ref, "reference", "")] + (
            [str(rule.name), str(rule.id)] if rule is not None else [])
        found = next((by_rule[n] for n in names if n in by_rule), None)
        if found is None:
            raise UnsupportedSigma(f"alias {g!r} names no field for rule "
                                   f"{getattr(ref, 'reference', '?')!r}")
        return found
    return g


def _path(name: str, *prefix: str) -> ast.Path:
    return ast.Path((*prefix, *name.split(".")))


def _not_null(p: ast.Path) -> ast.Expr:
    return ast.IsNull(ast.Path(p.parts if p.parts[0] == "this" else ("this", *p.parts)),
                      negated=True)


@dataclass(frozen=True)
class _Member:
    """One referenced rule as the correlation reads it: its engine name, its condition over
    one event (``None``: an inner correlation's alert), the fields giving each group-by
    value (parallel to the group-by), the stream it comes from (an inner correlation's)."""

    name: str
    condition: ast.Expr | None
    fields: tuple[str, ...]
    stream: str | None


def _members(corr: SigmaCorrelationRule, group_by: list[str],
             aliases: SigmaCorrelationFieldAliases | None,
             detections: dict[int, ReferencedRule],
             outputs: dict[int, CorrelationOutput]) -> list[_Member]:
    refs = rule_references(corr)
    out = []
    for ref in refs:
        rule = getattr(ref, "rule", None)
        fields = tuple(_field_of(ref, aliases, g) for g in group_by)
        if isinstance(rule, SigmaCorrelationRule):
            inner = outputs.get(id(rule))
            if inner is None:
                raise UnsupportedSigma(f"rule {ref.reference!r} is a correlation that is "
                                       "left out or not compiled before this one")
            missing = [f for f in fields if f not in inner.group_by]
            if missing:
                raise UnsupportedSigma(
                    f"group-by field {missing[0]!r} is not among the group-by fields of the "
                    f"correlation {ref.reference!r} ({', '.join(inner.group_by) or 'none'}): "
                    "its alerts carry only those")
            out.append(_Member(inner.name, None, fields, inner.stream))
            continue
        if rule is None or id(rule) not in detections:
            raise UnsupportedSigma(f"rule {ref.reference!r} is not a detection rule compiled "
                                   "from the same file")
        det = detections[id(rule)]
        out.append(_Member(det.name, det.condition, fields, None))
    return out


def needs_streams(corr: SigmaCorrelationRule, group_by: list[str] | None,
                  aliases: SigmaCorrelationFieldAliases | None) -> bool:
    """Whether a correlation reads another one, or has an alias naming different fields
    for different rules (then it is compiled onto derived streams)."""
    refs = corr.referenced_rules or corr.rules or []
    if any(isinstance(getattr(r, "rule", None), SigmaCorrelationRule) for r in refs):
        return True
    for g in group_by or ():
        try:
            if len({_field_of(r, aliases, g) for r in refs}) > 1:
                return True
        except UnsupportedSigma:
            return False  # (the usual compilation says which rule the alias misses)
    return False


def compile_correlation(corr: SigmaCorrelationRule, name: str,
                        detections: dict[int, ReferencedRule],
                        outputs: dict[int, CorrelationOutput],
                        group_by: list[str] | None = None,
                        field: str | list[str] | None = None,
                        aliases: SigmaCorrelationFieldAliases | None = None,
                        read_by_others: bool = False) -> CompiledCorrelation:
    """The engine rules of a correlation (see the module).

    Args:
        corr: the correlation, its references resolved.
        name: the engine name of the correlation rule (feeders and streams are named after
            it: ``<name>__<member>``, ``<name>__events``, ``<name>__alerts``).
        detections: ``id()`` of each compiled detection rule of the file → its name and
            condition.
        outputs: ``id()`` of each correlation of the file compiled so far that others read →
            its :class:`CorrelationOutput`.
        group_by, field, aliases: after the processing pipelines (default: the rule's).
        read_by_others: another correlation reads this one: it also emits its alerts into
            ``<name>__alerts``; its own alerts are then written only when ``generate``
            (pySigma's output flag) asks for them.

    Raises:
        UnsupportedSigma: a type, condition, alias or reference without an exact form here."""
    gb = list(group_by if group_by is not None else corr.group_by or [])
    al = aliases if aliases is not None else corr.aliases
    cond = corr.condition
    fld = field if field is not None else (
        cond.fieldref if isinstance(cond, SigmaCorrelationCondition) else None)
    if not needs_streams(corr, gb, al):
        rule = to_correlation_rule(corr, name, detections, gb, fld, al)
        key_paths = rule.key_by
        rules: tuple[ast.Rule, ...] = (rule,)
    else:
        members = _members(corr, gb, al, detections, outputs)
        feeders, rule = _derived(corr, name, members, gb, fld)
        key_paths = rule.key_by
        rules = (*feeders, rule)
    if not read_by_others:
        return CompiledCorrelation(rules)
    chained = _alerts_to_stream(rule, name, tuple(gb), key_paths,
                                keep_name=not getattr(corr, "_output", True))
    kept = rules if getattr(corr, "_output", True) else rules[:-1]
    output = CorrelationOutput(name, f"{name}__alerts", tuple(gb))
    return CompiledCorrelation((*kept, chained), output)


def _first_stage(rule: ast.Rule) -> str:
    return rule.pattern[0].name


def _alerts_to_stream(rule: ast.Rule, name: str, group_by: tuple[str, ...],
                      key_paths: tuple[ast.Path, ...], keep_name: bool) -> ast.Rule:
    """``rule`` (a correlation) emitting its alerts into ``<name>__alerts``: its metadata,
    and each group-by value under the group-by's name (read from its first stage, whose
    events all have the key's values)."""
    stage = _first_stage(rule)
    emit = rule.match_emit
    assert emit is not None
    values = tuple((g, ast.Path((stage, *p.parts))) for g, p in
                   zip(group_by, key_paths, strict=True))
    return _replace(rule, name=name if keep_name else f"{name}__chained",
                    emits=(ast.Emit(fields=values + emit.fields, sink=f"{name}__alerts",
                                    stream=True),))


def _feeder(corr_name: str, member: _Member, member_name: str, group_by: list[str],
            value_field: str | None, exclude: ast.Expr | None) -> ast.Rule:
    """The rule putting ``member``'s events (or its inner correlation's alerts) into the
    correlation's input stream."""
    def read(f: str, *prefix: str) -> ast.Path:
        # an event's field path, or a field of an inner correlation's record (flat names)
        return _path(f, *prefix) if member.stream is None else ast.Path((*prefix, "data", f))

    key = tuple(read(f) for f in member.fields)
    if any(p.parts == ("ts",) for p in key):
        raise UnsupportedSigma("group-by field 'ts' cannot be a key")
    out: list[tuple[str, ast.Expr]] = [(g, read(f, STAGE))
                                       for g, f in zip(group_by, member.fields, strict=True)]
    if value_field is not None:
        if member.stream is not None and value_field not in member.fields:
            raise UnsupportedSigma(f"field {value_field!r} is not among the group-by fields "
                                   f"of the correlation {member.name!r}: its alerts carry "
                                   "only those")
        out.append((VALUE_FIELD, read(value_field, STAGE)))
    out.append(("sigma_rule", ast.Lit(member.name)))
    cond = member.condition
    if exclude is not None and cond is not None:
        cond = ast.Binary("and", cond, ast.Unary("not", exclude))
    present = [_not_null(p) for p in key]
    return ast.Rule(
        name=f"{corr_name}__{member_name}",
        pattern=(ast.Stage("begin", STAGE, cond, ()),),
        sources=(member.stream,) if member.stream is not None else (),
        where=_and(present) if present else None,
        key_by=key,
        emits=(ast.Emit(fields=tuple(out), sink=f"{corr_name}__events", stream=True),))


def _same_group(earlier: _Member, later: _Member) -> ast.Expr:
    """An event that ``earlier`` matched and put into the group ``later`` puts it in."""
    terms: list[ast.Expr] = [earlier.condition or ast.Lit(True)]
    for a, b in zip(earlier.fields, later.fields, strict=True):
        if a != b:
            terms.append(ast.Binary(EQ.spelling, _path(a, "this"), _path(b, "this")))
    return _and(terms)


def _derived(corr: SigmaCorrelationRule, name: str, members: list[_Member], group_by: list[str],
             fld: str | list[str] | None) -> tuple[list[ast.Rule], ast.Rule]:
    """The feeders and the correlation rule reading ``<name>__events``."""
    within = corr.timespan.seconds * 1000
    meta = sigma_meta(corr)
    names = _member_names([ReferencedRule(m.name, ast.Lit(True)) for m in members])
    kind = corr.type
    key = tuple(ast.Path(("data", g)) for g in group_by)
    _key(group_by)  # (the usual checks of group-by names)
    emit = meta_emit(meta)
    base = ast.Rule(name=name, pattern=(), description=meta.title or None,
                    severity=meta.severity, key_by=key, sources=(f"{name}__events",))
    if kind in _AGGREGATING:
        cond = corr.condition
        if not isinstance(cond, SigmaCorrelationCondition):
            raise UnsupportedSigma(f"{kind.name.lower()} needs a threshold condition")
        value_field = None
        if kind != SigmaCorrelationType.EVENT_COUNT:
            fields = fld if isinstance(fld, list) else [fld] if fld else []
            if len(fields) != 1:
                having_condition(kind, criteria(corr), fld)  # (raises, saying why)
            value_field = fields[0]
        terms = having_condition(kind, criteria(corr),
                                 f"data.{VALUE_FIELD}" if value_field is not None else None)
        feeders = []
        for i, (m, n) in enumerate(zip(members, names, strict=True)):
            earlier = [_same_group(e, m) for e in members[:i]
                       if e.stream is None and m.stream is None]
            feeders.append(_feeder(name, m, n, group_by, value_field,
                                   _or(earlier) if earlier else None))
        extra: tuple[tuple[str, ast.Expr], ...] = ()
        if terms[0].aggregate == "count":
            extra = (("count", ast.Call("count", (ast.Path((ast.WINDOW_STAGE,)),))),)
        return feeders, _replace(
            base, pattern=(ast.Stage("begin", ast.WINDOW_STAGE, None, ()),),
            window=ast.Window("having", within, _and([t.expr() for t in terms])),
            emits=(ast.Emit(fields=emit.fields + extra),))
    feeders = [_feeder(name, m, n, group_by, None, None)
               for m, n in zip(members, names, strict=True)]
    is_member = [ast.Binary(EQ.spelling, ast.Path(("this", "rule")), ast.Lit(f.name))
                 for f in feeders]
    if kind == SigmaCorrelationType.TEMPORAL:
        _all_rules_condition(corr, len(members))
        return feeders, _replace(
            base, pattern=tuple(ast.Stage("begin", n, c, ())
                                for n, c in zip(names, is_member, strict=True)),
            window=ast.Window("all_of", within), emits=(emit,))
    if kind == SigmaCorrelationType.TEMPORAL_ORDERED:
        _all_rules_condition(corr, len(members))
        stages = tuple(ast.Stage("begin" if i == 0 else "followed_by", n, c, ())
                       for i, (n, c) in enumerate(zip(names, is_member, strict=True)))
        return feeders, _replace(base, pattern=stages, within_ms=within,
                                 skip=ast.Skip("skip_past_last_event"), emits=(emit,))
    raise UnsupportedSigma(f"correlation type {kind.name.lower()} has no form in the engine's "
                           "windows")
