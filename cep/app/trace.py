"""Why a rule did or did not fire for one key: every event's fate, on ``cep run``'s path.

:func:`trace_key` runs one rule over an input through a :class:`~cep.operator.cep_operator.
CepOperator` exactly as ``cep run`` would (the same decoders, watermark, lateness, future-skew
guard and matching step), and observes it: the operator's :meth:`dispatch` hands every event
to the rule's wrapped :meth:`dispatch_one`, so for every event of the traced key the key's
partial matches are compared before and after its step, and the records the step emitted are
kept.  The operator's start shortcut and compact key forms are turned off for the traced rule
(they are proven equal to the general step, which is easier to observe), and so is skipping a
rule that holds no key for an event its first stage cannot take.  Nothing here matches
anything itself.

A fate is one of ``taken`` (a stage took the event; the partial matches it is now in),
``matched`` (it completed a match: an alert), ``suppressed`` (it completed one whose alert
``suppress for`` held back), ``in window`` (a ``having`` / ``all of`` rule put it into the
key's window without crossing the condition), ``not taken`` (with the stage conditions that
rejected it and the field values they read), ``late`` (with the watermark it missed), ``dead
letter`` (an event time refused), ``filtered`` (the rule's header ``where`` or ``from``), and,
between events, ``expired`` (partial matches of the key gone without a match: a window
passed or contiguity broke).  All times are epoch milliseconds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from cep.compiler.compiled import CompiledRule
from cep.compiler.generated import code_of
from cep.event import Event, get_path
from cep.io.codecs import DeadLetter
from cep.lang import ast
from cep.lang.ast import walk
from cep.nfa.model import TAKE
from cep.operator.cep_operator import CepOperator
from cep.operator.key_store import RuleState
from cep.operator.time_guard import FutureGuard

__all__ = ["Fate", "Trace", "trace_key"]


@dataclass(frozen=True)
class Fate:
    """What happened to one event of the traced key (``line`` its input line, ``ts`` its
    event time, ms), or to the key's partial matches between events (``line`` 0)."""

    line: int
    ts: int | None
    what: str
    detail: str


@dataclass
class Trace:
    """A trace: the fates in input order, the partial matches alive at the end (one line
    each: the stages and event times taken so far), the events of the key seen."""

    fates: list[Fate] = field(default_factory=list)
    alive: list[str] = field(default_factory=list)
    events: int = 0


def trace_key(rule: CompiledRule, key: dict[str, str],
              records: Iterable[tuple[int, bytes, Any]], max_out_of_orderness_ms: int = 0,
              max_future_skew_ms: int | None = None) -> Trace:
    """Trace ``rule`` for the key whose fields (``rule.key_names``) have the values of ``key``
    (compared as text: ``{"user.name": "alice"}``) over ``records``, the decoded lines of an
    input (``(line, raw, (data, ts) | DeadLetter)``, :func:`~cep.io.codecs.decode_lines`).

    Raises:
        ValueError: ``key`` does not name exactly the rule's key fields.
    """
    if set(key) != set(rule.key_names):
        raise ValueError(f"rule {rule.name} is keyed by {', '.join(rule.key_names) or '(none)'}"
                         f"; give --key for each: {' '.join(n + '=…' for n in rule.key_names)}")
    trace = Trace()
    emitted: list[tuple[str, dict[str, Any]]] = []
    op = CepOperator([rule], lambda sink, rec: emitted.append((sink, rec)),
                     {"input": max_out_of_orderness_ms}, future_guard=FutureGuard(
                         max_future_skew_ms))
    rs = op.rules[0]
    rs.shortcut = None  # the general step for every key (see the module docstring)
    rs.compact_after = None
    wanted = tuple(key[n] for n in rule.key_names)
    ours: list[Any] = []  # the traced key as the rule computes it, once seen
    plain = op.dispatch_one

    def observed(rs_: RuleState, ev: Event) -> None:
        if not _is_ours(rule, ev, wanted):
            plain(rs_, ev)
            return
        if not ours:
            ours.append(rule.key_fn(ev.data))
        before = _partials(rs_, ours[0])
        n, made = len(emitted), rs_.matches
        plain(rs_, ev)
        trace.fates.append(_fate(rule, rs_, ours[0], ev, before, emitted[n:],
                                 rs_.matches - made))

    # every event to the rule: the operator's dispatch would not call a rule that holds no
    # key for an event its first stage cannot take (RuleIndex), whose fate is still told
    setattr(op, "dispatch", lambda ev: observed(rs, ev))  # noqa: B010
    seq = 0
    for line, _raw, res in records:
        if isinstance(res, DeadLetter):
            continue
        data, ts = res
        seq += 1
        ev = Event(ts, seq, data, "input", line)
        ours_now = _is_ours(rule, ev, wanted)
        trace.events += ours_now
        before = _partials(rs, ours[0]) if ours else set()
        n, stepped = len(emitted), len(trace.fates)
        op.on_event(ev)
        for sink, rec in emitted[n:]:
            if ours_now and sink == "late":
                trace.fates.append(Fate(line, ts, "late", f"at or below the watermark "
                                                          f"{rec['watermark']}"))
            elif ours_now and sink == "dead_letter":
                trace.fates.append(Fate(line, ts, "dead letter", str(rec.get("reason"))))
        if ours and len(trace.fates) == stepped:  # (a step of the key reports what it ended)
            gone = before - _partials(rs, ours[0])
            if gone:
                trace.fates.append(Fate(0, None, "expired",
                                        f"{len(gone)} partial match(es) ended without a match "
                                        f"as the watermark passed {op.watermark:.0f}"))
    alive: set[int] = set()
    if ours:
        ks = rs.state_of(ours[0])
        trace.alive = [_describe(c.node) for c in (ks.a if ks else ()) if c.node is not None]
        alive = _partials(rs, ours[0])
    n = len(emitted)
    op.finish()
    if alive:
        ended = len(alive - _partials(rs, ours[0]))
        done = sum(1 for _, rec in emitted[n:] if not rec.get("timed_out"))
        trace.fates.append(Fate(0, None, "end", f"the end of input decides the windows: "
                                               f"{done} more alert(s), {ended} of the "
                                               f"{len(alive)} partial match(es) ended"))
    return trace


def _is_ours(rule: CompiledRule, ev: Event, wanted: tuple[str, ...]) -> bool:
    key: Any = rule.key_fn(ev.data)
    values = (key,) if len(wanted) == 1 else tuple(key)
    return tuple(_text(v) for v in values) == wanted


def _text(v: Any) -> str:
    return "null" if v is None else str(v).lower() if isinstance(v, bool) else str(v)


def _partials(rs: RuleState, key: Any) -> set[int]:
    """Identities of the key's live partial matches (their newest nodes)."""
    ks = rs.state_of(key)
    if ks is None:
        return set()
    return {id(c.node) for c in ks.a if c.node is not None}


def _fate(rule: CompiledRule, rs: RuleState, key: Any, ev: Event, before: set[int],
          emitted: list[tuple[str, dict[str, Any]]], made: int = 0) -> Fate:
    line, ts = ev.offset, ev.ts
    if rule.sources is not None and ev.source not in rule.sources:
        return Fate(line, ts, "filtered", "the rule reads other sources")
    if rule.header_filter is not None and not rule.header_filter(ev):
        return Fate(line, ts, "filtered", "the rule's header where is false")
    alerts = [rec for sink, rec in emitted if not rec.get("timed_out")]
    if any(_has_event(rec, ev) for rec in alerts):
        return Fate(line, ts, "matched", f"completed a match: an alert ({len(alerts)} now)")
    if made and rs.alerting is not None:
        return Fate(line, ts, "suppressed", "completed a match; its alert was held back by "
                                            "`suppress for`")
    window = rs.alerting.window if rs.alerting is not None else None
    if window is not None:
        w = window.windows.get(key)
        if w is not None and w.events and w.events[-1].seq == ev.seq:
            return Fate(line, ts, "in window", f"{len(w.events)} event(s) in the key's window; "
                                               "the condition was not crossed")
    ks = rs.state_of(key)
    live = [c.node for c in (ks.a if ks is not None else ()) if c.node is not None]
    took = sorted({node.stage for node in live if node.event.seq == ev.seq})
    after = _with_ancestors(live)
    ended = len(before - after)
    tail = f"; {ended} partial match(es) ended" if ended else ""
    if took:
        return Fate(line, ts, "taken", f"by stage {', '.join(took)} "
                                       f"({len(live)} partial match(es) live){tail}")
    return Fate(line, ts, "not taken", _rejections(rule, ev) + tail)


def _with_ancestors(nodes: list[Any]) -> set[int]:
    """Identities of ``nodes`` and of every node before them (a partial match that took an
    event continues the one it grew from)."""
    out: set[int] = set()
    for node in nodes:
        while node is not None and id(node) not in out:
            out.add(id(node))
            node = node.prev
    return out


def _has_event(rec: dict[str, Any], ev: Event) -> bool:
    return any(e == ev.data for evs in rec.get("match", {}).values() for e in evs)


def _rejections(rule: CompiledRule, ev: Event) -> str:
    """The stage conditions false for ``ev`` (evaluated alone: a condition that reads the
    partial match is shown as such) with the field values they read."""
    out = []
    seen: set[str] = set()
    for state in rule.nfa.states:
        for t in state.transitions:
            if t.action != TAKE or t.cond.always or t.source.stage in seen:
                continue
            seen.add(t.source.stage)
            code = code_of(t.cond)
            if t.cond.iterative:
                out.append(f"{t.source.stage}: `{t.cond.label}` reads the partial match")
            elif not t.cond.fn(ev, None):
                out.append(f"{t.source.stage}: `{t.cond.label}` is false"
                           + _values(code.ast if code is not None else None, ev))
    return "; ".join(out) or "no stage condition rejected it (contiguity or the window)"


def _values(expr: ast.Expr | None, ev: Event) -> str:
    paths = sorted({".".join(map(str, p.parts)) for p in (
        node for node in (walk(expr) if expr is not None else ()) if isinstance(node, ast.Path))})
    if not paths:
        return ""
    shown = ", ".join(f"{p}={get_path(ev.data, tuple(p.split('.')))!r}" for p in paths)
    return f" ({shown})"


def _describe(node: Any) -> str:
    parts = []
    while node is not None:
        parts.append(f"{node.stage}@{node.event.ts}")
        node = node.prev
    return " ".join(reversed(parts))
