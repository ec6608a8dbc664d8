"""Which fields of a derived stream's records carry the producing rule's key.

A rule keyed by ``user`` that emits ``emit to stream s { who: e.user }`` writes its key's value
into ``data.who`` of every record (every event of a keyed match has the key's values).  Kafka
mode's plan (:mod:`cep.app.kafka_plan`) reads this to decide whether the rules reading ``s``
see, in one task, every record of each of their keys.

Layer 2: pure functions over the AST.
"""

from __future__ import annotations

from cep.compiler.codegen import key_names
from cep.lang import ast

__all__ = ["carried_keys"]


def _whole_stages(rule: ast.Rule) -> set[str]:
    """The stages every match of ``rule`` has an event in (not negated, not optional,
    not repeated zero times)."""
    if rule.window is not None and rule.window.kind == "having":
        return {ast.WINDOW_STAGE}
    out = set()
    for st in rule.pattern:
        if st.contiguity in ("not_next", "not_followed_by") or st.group is not None:
            continue
        if any(m.kind == "optional" or (m.kind in ("times", "times_range", "times_or_more")
                                        and m.n == 0)
               for m in st.modifiers):
            continue
        out.add(st.name)
    return out


def carried_keys(rule: ast.Rule) -> tuple[tuple[str, str], ...]:
    """``(emitted field, key name)`` for each field of ``rule``'s stream emit that is a key
    field read from a stage every match has (``who: e.user`` with ``key by user``); ``()``
    when the rule emits to no stream.  Key names are those of the alert's ``key`` object
    (:func:`~cep.compiler.codegen.key_names`)."""
    emit = rule.match_emit
    if emit is None or not emit.stream or not rule.key_by:
        return ()
    names = key_names(rule.key_by)
    by_parts = {}
    for path, name in zip(rule.key_by, names, strict=True):
        parts = path.parts[1:] if len(path.parts) > 1 and path.parts[0] == "this" else path.parts
        by_parts[tuple(parts)] = name
    stages = _whole_stages(rule)
    out = []
    for field, expr in emit.fields:
        if (isinstance(expr, ast.Path) and len(expr.parts) > 1 and expr.parts[0] in stages
                and tuple(expr.parts[1:]) in by_parts):
            out.append((field, by_parts[tuple(expr.parts[1:])]))
    return tuple(out)
