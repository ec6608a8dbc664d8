"""What one rule wants from an event, as one typed record: the IR both fast back ends are
generated from.

A rule wants an event when its header ``where`` holds and either

* the event's key holds state for the rule (*held*) — and, when every partial match of its
  automaton can only move on a TAKE guard (:func:`wake_takes`), one of those *wake* guards
  accepts the event, or (unless expiring says nothing) the key's deadline has come; or
* the event can *start* a partial match: one of the TAKE guards reachable from the start
  state holds (:attr:`cep.nfa.model.NFA.start_take_conds`).

Any other event would only count and advance the largest event time seen.
:func:`gate_of` derives that test once per rule version; the batched loop
(:mod:`cep.operator.fastpath`) renders it as inline Python, the C line scanner's driver
(:mod:`cep.operator.prescan`) as a three-valued predicate program
(:mod:`cep.compiler.predicate`).  Both index rules by the field their guards compare with a
string literal (:func:`eq_literals`).  Layer 3.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cep.compiler.generated import GeneratedCode, code_of
from cep.nfa.model import FINAL, IGNORE, NFA, PROCEED, STOP, TAKE, EdgeCond
from cep.operator.rule_state import RuleState, silent_expiry

__all__ = ["Held", "RuleGate", "gate_of", "wake_takes", "eq_literals"]


class Held(enum.Enum):
    """Which events a key holding state needs."""

    ANY = "every event"
    WAKE = "an event a wake guard accepts"
    WAKE_OR_DUE = "an event a wake guard accepts, or one at or past the key's deadline"


@dataclass(frozen=True)
class RuleGate:
    """One rule's test of an event (see the module docstring).

    Attributes:
        rule: the rule version's state.
        key: the generated key function (``None``: a key made by hand; such a rule is sent
            every event, through :meth:`CepOperator.dispatch_one`).
        key_paths: the key's field paths, one tuple of parts per field (``None``: not plain
            field paths).
        header: the generated header ``where`` (``None`` with ``header_fn``: made by hand).
        header_fn: the compiled header ``where``, ``fn(event) -> bool``; ``None``: none.
        starts: the guards of which one must hold for the event to start a partial match
            (:attr:`NFA.start_take_conds`); ``None``: the rule starts nothing (a draining
            version).
        start_fn: one function testing all of ``starts`` (``fn(event, None)``, the NFA's
            start prefilter); ``None`` when there is none (no start guard, or one is
            constant or reads the partial match): then any event may start a match.
        held: which events a key holding state needs (:class:`Held`).
        wake: the wake guards (empty unless ``held`` is ``WAKE``/``WAKE_OR_DUE``).
    """

    rule: RuleState
    key: GeneratedCode | None
    key_paths: tuple[tuple[str, ...], ...] | None
    header: GeneratedCode | None
    header_fn: Callable[[Any], bool] | None
    starts: tuple[EdgeCond, ...] | None
    start_fn: Callable[..., Any] | None
    held: Held
    wake: tuple[EdgeCond, ...] = ()

    @property
    def start_codes(self) -> list[GeneratedCode | None]:
        """The generated code of each start guard (``None`` where there is none)."""
        return [code_of(c) for c in self.starts or ()]

    @property
    def wake_codes(self) -> list[GeneratedCode | None]:
        """The generated code of each wake guard."""
        return [code_of(c) for c in self.wake]


def gate_of(rs: RuleState) -> RuleGate:
    """The gate of one rule version."""
    rule = rs.rule
    nfa = rule.nfa
    starts = None if rs.draining else tuple(nfa.start_take_conds)
    takes = wake_takes(nfa)
    held = Held.ANY if takes is None else Held.WAKE if silent_expiry(rs) else Held.WAKE_OR_DUE
    return RuleGate(
        rule=rs, key=rule.key_code, key_paths=rule.key_paths, header=rule.header_code,
        header_fn=rule.header_filter, starts=starts,
        start_fn=nfa.start_prefilter.fn if nfa.start_prefilter is not None else None,
        held=held, wake=tuple(takes or ()))


def wake_takes(nfa: NFA) -> list[EdgeCond] | None:
    """The TAKE guards of an automaton whose partial matches only move when one of them
    holds, or ``None`` when it is not such an automaton.

    That is so when every state a partial match can wait in has no PROCEED edge and exactly
    one IGNORE edge, back to itself, guarded by ``not g`` for one of its own TAKE guards
    ``g`` (relaxed contiguity, ``followed by``), and no TAKE guard is constant or reads the
    partial match: an event failing every TAKE guard of the automaton then takes nothing,
    starts nothing and is ignored by every partial match, so
    :func:`cep.nfa.matcher.process` would change nothing.
    """
    waiting = {t.target for s in nfa.states for t in s.transitions
               if t.action in (TAKE, IGNORE) and t.target.kind not in (FINAL, STOP)}
    takes: dict[Any, EdgeCond] = {}  # by function: the first guard of each
    for s in nfa.states:
        own = [t for t in s.transitions if t.action == TAKE]
        for t in own:
            if t.cond.always or t.cond.iterative:
                return None
            takes.setdefault(t.cond.fn, t.cond)
        if s not in waiting:
            continue
        ignores = [t for t in s.transitions if t.action == IGNORE]
        if any(t.action == PROCEED for t in s.transitions) or len(ignores) != 1:
            return None
        ign = ignores[0]
        if ign.target is not s or ign.cond.always:
            return None
        negated = ign.cond.negates
        if negated is None or negated.fn not in [t.cond.fn for t in own]:
            return None
    return list(takes.values()) or None


def eq_literals(codes: Sequence[GeneratedCode | None], fld: str) -> frozenset[str] | None:
    """The values the top-level field ``fld`` must have for one of ``codes`` to hold, when
    each of them carries an equality guard on ``fld`` (:attr:`GeneratedCode.eq_guard`);
    ``None`` otherwise (any value may do)."""
    out = set()
    for code in codes:
        g = code.eq_guard if code is not None else None
        if g is None or g[0] != fld:
            return None
        out.add(g[1])
    return frozenset(out)
