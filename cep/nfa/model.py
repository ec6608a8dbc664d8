"""The compiled automaton: states, transitions and edge conditions.  Immutable once built.

The shape is Flink CEP's (``nfa/State.java``, ``StateTransition.java``): every state has TAKE
(consume the event, move to the target), IGNORE (skip the event, move to the target without
consuming) and PROCEED (epsilon move, evaluated on the same event) transitions, each guarded by
a condition.  STOP states kill a branch (negated stages); PENDING states hold matches of
patterns ending in ``not followed by … within`` until time passes; FINAL is the accept state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cep.nfa.pattern import Condition, PartialMatchNode

__all__ = [
    "TAKE", "IGNORE", "PROCEED", "NORMAL", "FINAL", "STOP", "PENDING",
    "EdgeCond", "Transition", "State", "NFA", "absorbing", "cond_true", "cond_of", "cond_not",
    "cond_and",
]

TAKE, IGNORE, PROCEED = 0, 1, 2
ACTION_NAMES = ("take", "ignore", "proceed")
NORMAL, FINAL, STOP, PENDING = 0, 1, 2, 3
KIND_NAMES = ("normal", "final", "stop", "pending")

EdgeFn = Callable[[Any, "PartialMatchNode | None"], bool]


class EdgeCond:
    """A transition guard: ``fn(event, partial) -> bool`` with a readable ``label``.

    ``always`` marks the constant-true guard (its ``fn`` is never called on the hot path);
    ``iterative`` marks a guard that reads the partial match.  ``origin`` is the stage
    :class:`~cep.nfa.pattern.Condition` the guard is exactly (:func:`cond_of`), ``negates``
    the guard it is the negation of (:func:`cond_not`); both ``None`` for other guards.
    """

    __slots__ = ("fn", "label", "always", "iterative", "origin", "negates")

    def __init__(self, fn: EdgeFn, label: str, always: bool = False, iterative: bool = False,
                 origin: Condition | None = None, negates: EdgeCond | None = None):
        self.fn = fn
        self.label = label
        self.always = always
        self.iterative = iterative
        self.origin = origin
        self.negates = negates

    def __repr__(self) -> str:
        return self.label


def _true(ev: Any, pm: PartialMatchNode | None) -> bool:
    return True


_TRUE = EdgeCond(_true, "true", always=True)


def cond_true() -> EdgeCond:
    """The guard that always holds (Flink's ``BooleanConditions.trueFunction``)."""
    return _TRUE


def cond_of(c: Condition) -> EdgeCond:
    """Wrap a stage :class:`~cep.nfa.pattern.Condition` as a guard."""
    if c.always:
        return _TRUE
    return EdgeCond(c.fn, c.label, False, c.iterative, origin=c)


def cond_not(c: EdgeCond) -> EdgeCond:
    """``not c`` (Flink's ``RichNotCondition``)."""
    f = c.fn
    if c.always:
        return EdgeCond(lambda ev, pm: False, "false", False, False)
    return EdgeCond(lambda ev, pm: not f(ev, pm), f"not ({c.label})", False, c.iterative,
                    negates=c)


def cond_and(a: EdgeCond, b: EdgeCond) -> EdgeCond:
    """``a and b`` (Flink's ``RichAndCondition``), short-circuit left to right."""
    if a.always:
        return b
    if b.always:
        return a
    fa, fb = a.fn, b.fn
    return EdgeCond(
        lambda ev, pm: fa(ev, pm) and fb(ev, pm),
        f"({a.label}) and ({b.label})",
        False,
        a.iterative or b.iterative,
    )


class Transition:
    """One edge: ``action`` (TAKE/IGNORE/PROCEED) from ``source`` to ``target`` under ``cond``."""

    __slots__ = ("action", "source", "target", "cond")

    def __init__(self, action: int, source: State, target: State, cond: EdgeCond) -> None:
        self.action = action
        self.source = source
        self.target = target
        self.cond = cond

    def __repr__(self) -> str:
        return f"{ACTION_NAMES[self.action]} {self.source.name} -> {self.target.name} [{self.cond}]"


class State:
    """An NFA state.  ``name`` is unique in the NFA (``stage``, ``stage:0``, …); ``stage`` is
    the pattern stage it belongs to (the name events taken here are recorded under).
    ``window_ms`` is a stage-level (PREVIOUS_AND_CURRENT) window for partial matches waiting
    here, or ``None``.  ``plan`` is the matcher's flattened copy of ``transitions``, made on
    first use once the NFA is built (``None`` before).  Set by :class:`NFA` once built:
    ``reads_partial``, whether a guard of the decision graph from here (PROCEED edges
    followed) reads the partial match — else the graph's outcome depends on the event alone;
    ``absorbing``, whether the members of one cohort waiting here may be merged
    (:attr:`NFA.cohort_pruning`)."""

    __slots__ = ("name", "stage", "kind", "transitions", "is_start", "window_ms", "index",
                 "plan", "reads_partial", "absorbing")

    def __init__(self, name: str, stage: str, kind: int) -> None:
        self.name = name
        self.stage = stage
        self.kind = kind
        self.transitions: list[Transition] = []
        self.is_start = False
        self.window_ms: int | None = None
        self.index = -1
        self.plan: Any = None
        self.reads_partial = True
        self.absorbing = False

    @property
    def is_final(self) -> bool:
        return self.kind == FINAL

    @property
    def is_stop(self) -> bool:
        return self.kind == STOP

    @property
    def is_pending(self) -> bool:
        return self.kind == PENDING

    def add(self, action: int, target: State | None, cond: EdgeCond | None) -> None:
        """Add a transition; ``target=None`` means a self-loop (Flink's ``addTake(cond)``)."""
        self.transitions.append(
            Transition(action, self, self if target is None else target, cond or _TRUE)
        )

    def __repr__(self) -> str:
        return f"State({self.name}, {KIND_NAMES[self.kind]})"


class NFA:
    """An immutable compiled pattern, shared by all keys of a rule version.

    Attributes:
        states: every state, start state first.
        start: the start state.
        window_ms: the pattern window (FIRST_AND_LAST) in ms; 0 means none.
        skip: after-match skip strategy name; ``skip_stage`` for ``skip_to_first/last``.
        stage_names: event-bearing stage names in pattern order (groups flattened).
        start_take_conds: guards of every TAKE reachable from the start state through
            PROCEEDs — an event failing all of them cannot start a partial match.
        has_pending: the pattern ends in ``not followed by … within``.
        reads_partial: some guard reads the partial match (an aggregate or a stage
            reference); when none does, the events a partial match holds are read only when
            it is emitted, so they may be kept compactly (:class:`cep.event.HeldEvent`).
        start_computation: the matcher's start computation, made once and shared by every
            key of the automaton (it is never changed); ``None`` until the first key.
        has_stage_windows: some state has a stage (PREVIOUS_AND_CURRENT) window.
        cohort_pruning: the matching step keeps one partial match per cohort (partial
            matches that started at the same event) and absorbing state, the first in the
            heap's array order: asked for (``prune_cohorts``, what the rule compiler asks
            unless timed-out partial matches are reported) and sound here — skip strategy
            ``skip_past_last_event``, no PENDING state.  A state is absorbing
            (:func:`absorbing`) when its only ways out are TAKE to FINAL and IGNORE to itself
            on guards that do not read the partial match, with no stage window.  The argument
            is in docs/semantics.md (*Cohorts under skip past last event*).
    """

    __slots__ = (
        "states", "start", "window_ms", "skip", "skip_stage", "stage_names",
        "start_take_conds", "has_pending", "start_prefilter", "start_computation",
        "reads_partial", "has_stage_windows", "cohort_pruning",
    )

    def __init__(
        self,
        states: list[State],
        start: State,
        window_ms: int,
        skip: str,
        skip_stage: str | None,
        stage_names: tuple[str, ...],
        prune_cohorts: bool = False,
    ) -> None:
        self.states = states
        self.start = start
        self.window_ms = window_ms
        self.skip = skip
        self.skip_stage = skip_stage
        self.stage_names = stage_names
        self.has_pending = any(s.kind == PENDING for s in states)
        self.reads_partial = any(t.cond.iterative for s in states for t in s.transitions)
        self.start_computation: Any = None
        self.has_stage_windows = any(s.window_ms for s in states)
        self.cohort_pruning = (prune_cohorts and skip == "skip_past_last_event"
                               and not self.has_pending)
        for i, s in enumerate(states):
            s.index = i
            s.reads_partial = _graph_reads_partial(s)
            s.absorbing = self.cohort_pruning and absorbing(s)
        self.start_take_conds = _start_take_conds(start)
        conds = self.start_take_conds
        self.start_prefilter: EdgeCond | None = None
        if conds and not any(c.iterative or c.always for c in conds):
            if len(conds) == 1:
                self.start_prefilter = conds[0]
            else:
                fns = tuple(c.fn for c in conds)
                self.start_prefilter = EdgeCond(
                    lambda ev, pm: any(f(ev, None) for f in fns), "any start condition"
                )


def absorbing(s: State) -> bool:
    """Whether ``s`` is absorbing: a waiting (NORMAL, not start) state without a stage
    window whose transitions are TAKEs to FINAL and IGNOREs back to itself only (at least one
    TAKE), none of whose guards reads the partial match.  Two partial matches waiting in
    such a state with the same first event have the same future: on every event both take
    it into a match or neither does, both stay or neither does, and both leave the pattern
    window at once."""
    if s.kind != NORMAL or s.is_start or s.window_ms:
        return False
    takes = 0
    for t in s.transitions:
        if t.cond.iterative:
            return False
        if t.action == TAKE and t.target.kind == FINAL:
            takes += 1
        elif t.action != IGNORE or t.target is not s:
            return False
    return takes > 0


def _graph_reads_partial(s: State) -> bool:
    """Whether a guard of the decision graph from ``s`` (its transitions, PROCEED edges
    followed) reads the partial match."""
    seen: set[int] = set()
    stack = [s]
    while stack:
        st = stack.pop()
        if id(st) in seen:
            continue
        seen.add(id(st))
        for t in st.transitions:
            if t.cond.iterative:
                return True
            if t.action == PROCEED:
                stack.append(t.target)
    return False


def _start_take_conds(start: State) -> list[EdgeCond]:
    """TAKE guards reachable from ``start`` by PROCEED edges (ignoring the PROCEED guards,
    which can only narrow: a superset of what can start a match)."""
    seen: set[int] = set()
    stack = [start]
    out: list[EdgeCond] = []
    while stack:
        s = stack.pop()
        if id(s) in seen:
            continue
        seen.add(id(s))
        for t in s.transitions:
            if t.action == TAKE:
                out.append(t.cond)
            elif t.action == PROCEED and t.target.kind in (NORMAL, PENDING):
                stack.append(t.target)
    return out
