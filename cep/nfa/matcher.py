"""The matching step: one event (or one advance of time) against one key's partial matches.

This follows Flink CEP's ``NFA.doProcess`` / ``computeNextStates`` / ``advanceTime`` /
``processMatchesAccordingToSkipStrategy``:

* every partial match (a *computation*: NFA state, the events taken so far, first-event and
  previous-event time, first-event id) evaluates all edges reachable through PROCEEDs; each
  TAKE or IGNORE edge whose guard holds yields a new computation, so one partial match may fork;
* a TAKE that lands where FINAL is reachable through PROCEEDs holding for the event completes
  a match; a branch that reaches a STOP state discards *every* non-final branch its partial
  match produced on that event;
* the start computation never ignores and is re-created after every event;
* completed matches are queued by first event and, under a skip strategy, released only when
  no partial match that started earlier is alive; releasing one prunes partial and completed
  matches per the strategy (Flink's ``AfterMatchSkipStrategy.prune``);
* time advances prune partial matches outside the pattern window (``now - first >= window``)
  or a stage window (``now - previous >= window``), report them as timed out, and release
  PENDING matches (patterns ending in ``not followed by … within``);
* under ``skip past last event`` (when the automaton allows it), the partial matches of one
  cohort (same first event) waiting in one absorbing state are merged into the first in array
  order, which cannot change a match (docs/semantics.md, *Cohorts under skip past last
  event*).

Partial matches share their event history through :class:`~cep.nfa.pattern.PartialMatchNode`
chains (the shared buffer); Flink's Dewey-number versioning is unnecessary because each
computation points at its own chain.  Computation queues order ties exactly as Java's
``PriorityQueue`` (:mod:`cep.nfa.heap`).

Per-key state is kept small, since a run may hold millions of keys: a key's partial matches
are a tuple in heap-array order held by the :class:`KeyState` itself, a computation stores
only what cannot be derived (its first and latest event times are read from its order key and
its last event), and the events of long-lived partial matches may be swapped for their
compact form (:class:`cep.event.HeldEvent`) by whoever keeps the key.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from cep.nfa.cohorts import evict_cohorts
from cep.nfa.heap import JavaHeap, heapify
from cep.nfa.heap import offer as _heap_offer
from cep.nfa.model import (
    FINAL,
    IGNORE,
    NFA,
    PENDING,
    PROCEED,
    STOP,
    TAKE,
    State,
)
from cep.nfa.pattern import PartialMatchNode

__all__ = ["Computation", "KeyState", "new_key_state", "start_shortcut", "started_key_state",
           "single_event_stage",
           "process", "advance_time", "expire_silently", "is_idle", "next_deadline",
           "kept_step", "kept_events_step", "kept_events_state",
           "Kept"]

_INF = float("inf")
START_CK = (_INF, _INF)
_UNKNOWN = object()  # (a cache miss, where None is a value)


class Computation:
    """One partial match: waiting in ``state`` with the events of ``node`` taken so far.

    ``ck`` = ``(first event ts, first event seq)`` orders computations (:data:`START_CK`,
    +∞, for the start computation, which has no ``node``).  Immutable.
    """

    __slots__ = ("state", "node", "ck")

    def __init__(self, state: State, node: PartialMatchNode | None, ck: Any) -> None:
        self.state = state
        self.node = node
        self.ck = ck

    @property
    def start_ts(self) -> Any:
        """Event time (ms) of the first event; -1 for the start computation."""
        return -1 if self.ck is START_CK else self.ck[0]

    @property
    def prev_ts(self) -> Any:
        """Event time (ms) of the latest event taken; -1 for the start computation."""
        return -1 if self.node is None else self.node.event.ts

    def __repr__(self) -> str:
        return f"Computation({self.state.name}, start={self.ck})"


class KeyState:
    """Per-key matcher state.

    Attributes:
        a: the live partial matches (computations), a tuple in the array order of Java's
            ``PriorityQueue`` by ``ck``; a new tuple whenever they change.
        completed: completed matches held back by the skip strategy's ordering rule (a
            :class:`~cep.nfa.heap.JavaHeap`; the shared empty :data:`NO_COMPLETED` when none).
        clock: the last time advanced to (ms).
        deadline: the earliest timer the operator has scheduled for the key (ms; +∞: none).
        evicted: partial matches the per-key cap evicted since the key's last match (the
            operator marks the key's next alerts with it, then sets it back to 0).

    ``partial`` is the key itself, as a heap of its partial matches (:meth:`offer`,
    :meth:`remove_if`).
    """

    __slots__ = ("a", "completed", "clock", "deadline", "evicted")

    def __init__(self, a: tuple[Computation, ...], completed: JavaHeap, clock: float,
                 deadline: float = _INF) -> None:
        self.a = a
        self.completed = completed
        self.clock = clock
        self.deadline = deadline
        self.evicted = 0

    @property
    def partial(self) -> KeyState:
        """The live partial matches as a heap (this object: ``partial.a`` is :attr:`a`)."""
        return self

    def offer(self, c: Computation) -> None:
        """Add a computation (Java's ``PriorityQueue.offer``)."""
        a = list(self.a)
        _heap_offer(a, c)
        self.a = tuple(a)

    def remove_if(self, pred: Callable[[Computation], bool]) -> bool:
        """Drop the computations ``pred`` holds for (Java's ``removeIf``); True if any."""
        heap = JavaHeap()
        heap.a = list(self.a)
        if not heap.remove_if(pred):
            return False
        self.a = tuple(heap.a)
        return True

    def evict_cohorts(self, n: int) -> int:
        """Drop whole cohorts (partial matches that started at one event) holding at least
        ``n`` partial matches, from the middle of start order outward, never the start
        computation (:func:`cep.nfa.cohorts.evict_cohorts`); add the number dropped to
        :attr:`evicted` and return it.  O(len(a) + cohorts · log cohorts), no sort of the
        partial matches."""
        a, dropped = evict_cohorts(self.a, n)
        if dropped:
            self.a = tuple(a)
            self.evicted += dropped
        return dropped


# Computations are never changed once made, so every key of an automaton shares one start
# computation (``NFA.start_computation``), and every key without held-back completed matches
# this one empty heap, a constant that is never filled (:func:`_release` swaps in a heap of
# the key's own first): about 170 bytes less per key.
NO_COMPLETED = JavaHeap()


def _start_computation(nfa: NFA) -> Computation:
    """The automaton's one start computation (made on first use)."""
    start = nfa.start_computation
    if start is None:
        start = nfa.start_computation = Computation(nfa.start, None, START_CK)
    return start


def new_key_state(nfa: NFA) -> KeyState:
    """A key with only the start computation."""
    return KeyState((_start_computation(nfa),), NO_COMPLETED, -_INF)


Waits = tuple[Any, str, Any, bool, bool]
"""``(take, take_stage, begin, ignores, reads)``: see :func:`start_shortcut`."""

Shortcut = tuple[State, str, "int | None", "Waits | None"]
"""``(target, stage, offset_ms, waits)``: see :func:`start_shortcut`."""


def single_event_stage(nfa: NFA) -> str | None:
    """The stage of a pattern whose every match is one event: the start state's one TAKE
    edge leads to FINAL, no PROCEED edge leaves the start, and the TAKE guard is the start
    prefilter or always true.  An event that passes the prefilter for a key without state
    is then a whole match by itself (the one-event chain under that stage, found by
    :func:`process` with nothing left behind), so the operator need not build the key's
    state.  ``None`` for any other pattern."""
    edges = nfa.start.transitions
    takes = [t for t in edges if t.action == TAKE]
    if len(takes) != 1 or any(t.action == PROCEED for t in edges):
        return None
    t = takes[0]
    if t.target.kind != FINAL or not (t.cond is nfa.start_prefilter or t.cond.always):
        return None
    return t.source.stage


def start_shortcut(nfa: NFA) -> Shortcut | None:
    """What every event that passes the start prefilter makes of a key without state, when
    there is one way only: the start state's one TAKE edge has the prefilter's own guard and
    leads to a state that waits (not FINAL or STOP, no PROCEED edge out of it), and the start
    has no PROCEED edge (its IGNORE edges do not count: the start computation never ignores).

    Returns ``(target, stage, offset_ms, waits)``: the key then holds its start computation
    and one partial match, in ``target`` with the event taken by ``stage``, whose first
    deadline is ``offset_ms`` after the event (the pattern window or the target's stage
    window, whichever is shorter; ``None`` when there is neither) — what :func:`process` and
    :func:`next_deadline` find, without evaluating the guard again.  ``None`` when the start
    is not that simple (:func:`process` decides).

    ``waits`` describes, for :func:`kept_step` and :func:`kept_events_step`, a target whose
    only ways out are a TAKE to FINAL on a guard ``take`` (stage ``take_stage``, no PROCEED
    after it) and, when ``ignores``, an IGNORE back to the target on ``not take`` — the last
    stage of ``followed by`` / ``next`` — so that one test of ``take`` decides what the
    decision graph would: ``(take, take_stage, begin, ignores, reads)``, with ``begin`` the
    start's TAKE guard (``None``: always true) and ``reads`` whether a guard reads the
    partial match (else ``take`` is given ``None`` for it).  ``None`` for any other target.
    """
    pre = nfa.start_prefilter
    edges = nfa.start.transitions
    takes = [t for t in edges if t.action == TAKE]
    if pre is None or len(takes) != 1 or any(t.action == PROCEED for t in edges):
        return None
    t = takes[0]
    target = t.target
    if (t.cond is not pre or target.kind == FINAL or target.kind == STOP
            or any(u.action == PROCEED for u in target.transitions)):
        return None
    offsets = [w for w in (nfa.window_ms, target.window_ms) if w]
    return target, t.source.stage, min(offsets) if offsets else None, _waits(nfa, target, pre)


def _waits(nfa: NFA, target: State, pre: Any) -> Waits | None:
    """The ``waits`` of :func:`start_shortcut` for ``target``, or ``None``."""
    plan = target.plan or _plan(target)
    rows, has_proceed = plan.rows, plan.has_proceed
    takes = [r for r in rows if r.action == TAKE]
    ignores = [r for r in rows if r.action == IGNORE]
    if has_proceed or len(takes) != 1 or len(ignores) + 1 != len(rows) or len(ignores) > 1:
        return None
    take = takes[0]
    if take.fn is None or take.kind != FINAL or take.proceeds:
        return None
    if ignores and (ignores[0].target is not target or ignores[0].inner is not take.fn):
        return None  # (not an IGNORE back to the target on ``not take``)
    return take.fn, take.stage, None if pre.always else pre.fn, bool(ignores), nfa.reads_partial


def started_key_state(nfa: NFA, shortcut: Shortcut, ev: Any) -> KeyState:
    """A key without state after ``ev`` (``ev.ts`` ms, ``ev.seq``), which passed the start
    prefilter of an automaton with a :func:`start_shortcut`: the same state
    :func:`new_key_state` and :func:`process` make, its clock at ``ev.ts``."""
    target, stage, _, _ = shortcut
    ts = ev.ts
    return KeyState((Computation(target, PartialMatchNode(stage, ev, None), (ts, ev.seq)),
                     _start_computation(nfa)), NO_COMPLETED, ts)


class Kept(enum.Enum):
    """What :func:`kept_step` (and, ``KEPT`` only, :func:`kept_events_step`) decided, other
    than a completed match."""

    KEPT = "kept"
    """The event leaves the key as it was."""
    DROPPED = "dropped"
    """The key's one partial match is discarded (the key is idle)."""
    STARTED = "started"
    """The event starts a second partial match while the kept one waits: the key's partial
    matches are then those of its two events, the kept one first."""



def kept_step(nfa: NFA, shortcut: Shortcut, kept: Any, ev: Any
              ) -> Kept | PartialMatchNode | None:
    """:func:`process` for a key whose state is its start computation and one partial match
    that took ``kept`` alone, waiting in the :func:`start_shortcut`'s target (a key kept as
    its event alone), when that takes no lists or heaps.  ``ev`` (``ev.ts`` ms, ``ev.seq``)
    either starts no partial match and leaves the partial match where it waits
    (:attr:`Kept.KEPT`), discards it (:attr:`Kept.DROPPED`: no edge holds), or completes it
    on a TAKE to FINAL (the match's :class:`PartialMatchNode`; the key is then idle: with
    nothing else alive every skip strategy releases the match at once and prunes nothing);
    or it starts a partial match while the kept one waits (:attr:`Kept.STARTED`; ``ev``
    comes after ``kept`` in start order — else ``None``).  ``None`` when the general step
    must decide.  The caller checks that ``ev`` is inside the partial match's window."""
    target, stage, _, waits = shortcut
    node = PartialMatchNode(stage, kept, None)
    if waits is not None:  # (one test of the target's guard decides)
        take, take_stage, begin, ignores, reads = waits
        starts = begin is None or begin(ev, None)
        if take(ev, node if reads else None):
            return None if starts else PartialMatchNode(take_stage, ev, node)
        if not ignores:
            return None if starts else Kept.DROPPED
        if not starts:
            return Kept.KEPT
        if ev.ts > kept.ts or (ev.ts == kept.ts and ev.seq > kept.seq):
            return Kept.STARTED
        return None
    edges = _edges(target.plan or _plan(target), ev, node)  # (the partial match first)
    start = nfa.start
    starts = False
    for e in _edges(start.plan or _plan(start), ev, None):
        if e.action != IGNORE:
            starts = True  # (the shortcut's one TAKE: to the target, stage ``stage``)
            break
    if not edges:
        return None if starts else Kept.DROPPED
    if len(edges) == 1:
        e = edges[0]
        to, to_stage, kind, proceeds = e.target, e.stage, e.kind, e.proceeds
        if e.action == IGNORE:
            if to is target and kind != FINAL and kind != STOP:
                if not starts:
                    return Kept.KEPT
                if ev.ts > kept.ts or (ev.ts == kept.ts and ev.seq > kept.seq):
                    return Kept.STARTED
        elif kind == FINAL and not proceeds and not starts:
            return PartialMatchNode(to_stage, ev, node)
    return None


def kept_events_step(nfa: NFA, shortcut: Shortcut, kept: Sequence[Any], ev: Any
                     ) -> Literal[Kept.KEPT] | tuple[list[Any], list[PartialMatchNode]] | None:
    """:func:`process` for a key whose state is its start computation and partial matches
    that each took one event of ``kept`` alone (in start order: ``(ts, seq)`` ascending), all
    waiting in the :func:`start_shortcut`'s target, for an automaton without a skip strategy
    or pending matches (so every match is released at once, in start order).

    Each partial match is left where it waits, discarded (no edge holds) or completed on a
    TAKE to FINAL, and ``ev`` (``ev.ts`` ms, ``ev.seq``) may start a partial match after them.
    Returns :attr:`Kept.KEPT` when nothing changes, else ``(left, matches)``: the events whose
    partial matches still wait (``ev`` last when it started one; empty when the key is idle)
    and the matches' :class:`PartialMatchNode` in emission order.  ``None`` when the general
    step must decide: another way out of the target (a PROCEED, a branch, a STOP), or ``ev``
    starting a partial match before the last one in start order.  The caller checks that
    ``ev`` is inside the first partial match's window (so inside every one's)."""
    target, stage, _, waits = shortcut
    left: list[Any] | None = None  # once a partial match has gone
    matches: list[PartialMatchNode] = []
    if waits is not None:  # (one test of the target's guard decides)
        take, take_stage, begin, ignores, reads = waits
        for i, e in enumerate(kept):
            if reads:
                node = PartialMatchNode(stage, e, None)
                taken = take(ev, node)
            else:
                taken = take(ev, None)
            if taken:
                if not reads:
                    node = PartialMatchNode(stage, e, None)
                matches.append(PartialMatchNode(take_stage, ev, node))
            elif ignores:
                if left is not None:
                    left.append(e)
                continue
            if left is None:  # (discarded or completed)
                left = list(kept[:i])
        starts = begin is None or begin(ev, None)
    else:
        left, matches, starts = _kept_events_edges(nfa, shortcut, kept, ev)  # type: ignore[misc]
        if starts is None:
            return None
    if starts:
        last = kept[-1]
        if ev.ts < last.ts or (ev.ts == last.ts and ev.seq <= last.seq):
            return None
        if left is None:
            left = list(kept)
        left.append(ev)
    if left is None:
        return Kept.KEPT
    return left, matches


def _kept_events_edges(nfa: NFA, shortcut: Shortcut, kept: Sequence[Any], ev: Any
                       ) -> tuple[list[Any] | None, list[PartialMatchNode], bool | None]:
    """:func:`kept_events_step`'s loop through the decision graph (a target without
    ``waits``): ``(left or None when none has gone, matches, whether ev starts)``, or
    ``(None, [], None)`` when the general step must decide."""
    target, stage, _, _ = shortcut
    plan = target.plan or _plan(target)
    left: list[Any] | None = None
    matches: list[PartialMatchNode] = []
    for i, e in enumerate(kept):
        node = PartialMatchNode(stage, e, None)
        edges = _edges(plan, ev, node)
        if edges:
            if len(edges) != 1:
                return None, [], None
            row = edges[0]
            to, to_stage, kind, proceeds = row.target, row.stage, row.kind, row.proceeds
            if row.action == IGNORE:
                if to is not target or kind == FINAL or kind == STOP:
                    return None, [], None
                if left is not None:
                    left.append(e)
                continue
            if kind != FINAL or proceeds:
                return None, [], None
            matches.append(PartialMatchNode(to_stage, ev, node))
        if left is None:  # (discarded or completed)
            left = list(kept[:i])
    start = nfa.start
    # (the shortcut's one TAKE: to the target, stage ``stage``)
    starts = any(r.action != IGNORE for r in _edges(start.plan or _plan(start), ev, None))
    return left, matches, starts


def kept_events_state(nfa: NFA, shortcut: Shortcut, kept: Sequence[Any]) -> KeyState:
    """The state of a key whose partial matches each took one event of ``kept`` alone (in
    start order), waiting in the :func:`start_shortcut`'s target: the state :func:`process`
    makes of them (clock at the last event's time, ``deadline`` the caller's)."""
    target, stage, _, _ = shortcut
    a = [Computation(target, PartialMatchNode(stage, e, None), (e.ts, e.seq)) for e in kept]
    a.append(_start_computation(nfa))  # (ascending, then +inf: already a heap's array)
    return KeyState(tuple(a), NO_COMPLETED, kept[-1].ts)


def is_idle(ks: KeyState) -> bool:
    """True when the key holds nothing but the start computation (its state can be dropped)."""
    return len(ks.a) == 1 and not ks.completed.a and ks.a[0].ck is START_CK


def next_deadline(nfa: NFA, ks: KeyState) -> float:
    """Earliest event time (ms) at which advancing time would change this key: a window
    expiring or a pending match being released.  +∞ when nothing can time out.

    Without stage windows and pending states only the pattern window counts, and the
    partial match that started first is the heap's root: O(1).  Else one pass."""
    w = nfa.window_ms
    if not nfa.has_stage_windows and not nfa.has_pending:
        if w <= 0 or not ks.a:
            return _INF
        ck = ks.a[0].ck
        return _INF if ck is START_CK else ck[0] + w
    best = _INF
    for cs in ks.a:
        ck = cs.ck
        if ck is START_CK:
            continue
        if w > 0:
            d = ck[0] + w
            if d < best:
                best = d
        wp = cs.state.window_ms
        if wp:
            d = cs.node.event.ts + wp  # type: ignore[union-attr]  # a real match has events
            if d < best:
                best = d
    return best


@dataclass(frozen=True, slots=True)
class _Row:
    """One transition of a state as the matching step reads it (see :func:`_plan`): its
    ``action`` (TAKE, IGNORE, PROCEED), ``target`` state, guard ``fn`` (``None``: always
    true), the ``stage`` of its source, the target's ``kind``, whether the target has PROCEED
    edges (``proceeds``) and, when the guard is ``not inner``, ``inner`` (else ``None``).
    Slotted: reading an attribute costs what indexing a tuple does."""

    action: int
    target: State
    fn: Callable[[Any, PartialMatchNode | None], Any] | None
    stage: str
    kind: int
    proceeds: bool
    inner: Callable[[Any, PartialMatchNode | None], Any] | None


@dataclass(frozen=True, slots=True)
class _Plan:
    """A state's transitions for the matching step (``rows``, in the state's order) and
    whether one of them is a PROCEED.  Kept on the state itself (``State.plan``); a state is
    immutable once its NFA is built."""

    rows: tuple[_Row, ...]
    has_proceed: bool


def _plan(state: State) -> _Plan:
    """The :class:`_Plan` of ``state`` for :func:`process` (made once, then kept on it)."""
    got: _Plan | None = state.plan
    if got is None:
        rows = tuple(
            _Row(t.action, t.target, None if t.cond.always else t.cond.fn, t.source.stage,
                 t.target.kind, any(u.action == PROCEED for u in t.target.transitions),
                 None if t.cond.always or t.cond.negates is None else t.cond.negates.fn)
            for t in state.transitions
        )
        got = state.plan = _Plan(rows, any(r.action == PROCEED for r in rows))
    return got


def _edges(plan: _Plan, ev: Any, pm: PartialMatchNode | None) -> list[_Row]:
    """The TAKE and IGNORE rows whose guards hold, PROCEED edges followed (Flink's decision
    graph).  A guard ``not c`` right after ``c`` reuses ``c``'s result: both read the same
    event and partial match."""
    edges: list[_Row] = []
    last_fn: Any = None
    last = False
    has_proceed = plan.has_proceed
    todo = [plan.rows]
    while todo:
        for row in todo.pop():
            fn = row.fn
            if fn is not None:
                inner = row.inner
                if inner is not None:
                    if inner is not last_fn:
                        last = inner(ev, pm)
                        last_fn = inner
                    if last:
                        continue
                elif fn is last_fn:
                    if not last:
                        continue
                else:
                    last = fn(ev, pm)
                    last_fn = fn
                    if not last:
                        continue
            if row.action == PROCEED:
                if has_proceed:
                    todo.append(_plan(row.target).rows)
            else:
                edges.append(row)
    return edges


def process(nfa: NFA, ks: KeyState, ev: Any) -> list[PartialMatchNode]:
    """Feed one event (``ev.ts`` ms, ``ev.seq``) to a key; return completed matches (each the
    :class:`PartialMatchNode` of its last event) in emission order.  Mutates ``ks``.

    Flink's ``computeNextStates`` for every computation, in the heap's array order: the
    decision graph from its state (PROCEED edges followed on the same event), then one new
    computation per TAKE/IGNORE edge whose guard holds (:func:`_next_computations` is the
    plain form of this loop).  Guards come from per-state plans; when the event leaves every
    computation where it was (each only ignores it, or it cannot start a match), nothing is
    allocated and ``ks.a`` stays the same object, which tells the caller that nothing
    changed.  The decision graph of a state none of whose guards reads the partial match is
    evaluated once per state for the event, not once per computation (its outcome depends on
    the event alone).  With :attr:`~cep.nfa.model.NFA.cohort_pruning`, a cohort's
    computations waiting in one absorbing state are merged after the step
    (:func:`_merge_cohorts`).
    """
    old = ks.a
    na: list[Computation] | None = None  # the new heap's array, once something changed
    potential: list[Computation] | None = None
    ts = ev.ts
    ahead: list[_Row] | None = None  # the next computation's edges, when already known
    # the edges of states whose decision graph does not read the partial match, once per
    # state for this event (for keys of more than three computations)
    known: dict[State, list[_Row]] | None = None
    last_state: State | None = None
    last_edges: list[_Row] = []
    finals: dict[State, Any] | None = None  # _final_after_proceed of pure targets
    absorbed = False  # a new computation entered an absorbing state (cohort pruning)
    many = len(old) > 3
    for i, cs in enumerate(old):
        state = cs.state
        pm = cs.node
        if ahead is not None:
            edges, ahead = ahead, None
        elif state is last_state:
            edges = last_edges
        elif state.reads_partial or not many:
            edges = _edges(state.plan or _plan(state), ev, pm)
        else:
            if known is None:
                known = {}
                got = None
            else:
                got = known.get(state)
            if got is None:
                got = known[state] = _edges(state.plan or _plan(state), ev, None)
            edges = last_edges = got
            last_state = state
        is_start = cs.ck is START_CK
        if not edges:
            if is_start:
                if na is not None:
                    _heap_offer(na, cs)
            elif na is None:
                na = list(old[:i])  # (offering a heap's array in order rebuilds it as it is)
            continue
        if na is None:
            if is_start:
                for e in edges:
                    if e.action != IGNORE:
                        break
                else:
                    continue  # the start computation never ignores: unchanged
                if len(old) == 1 and len(edges) == 1 and not ks.completed.a:
                    e = edges[0]
                    kind = e.kind
                    if kind != FINAL and kind != STOP and not e.proceeds:
                        # a key with only the start computation takes the event on one edge
                        # to a waiting state: what the loop below makes, without its lists
                        ks.a = (Computation(e.target, PartialMatchNode(e.stage, ev, None),
                                            (ts, ev.seq)), cs)
                        return []
            elif len(edges) == 1:
                e = edges[0]
                if e.action == IGNORE:
                    if e.target is state and e.kind != FINAL and e.kind != STOP:
                        continue  # ignored where it waits: unchanged
                elif e.kind == FINAL and not e.proceeds and len(old) == 2 and not ks.completed.a:
                    start = old[1]  # (a heap of two: the partial match is the root)
                    if start.ck is START_CK:
                        ahead = _edges(start.state.plan or _plan(start.state), ev, None)
                        for e2 in ahead:
                            if e2.action != IGNORE:
                                break
                        else:
                            # the key's one partial match completes and the event starts
                            # nothing: what the loop and _release below make, without their
                            # lists and heaps (with nothing else alive, every skip strategy
                            # releases the match at once and prunes nothing)
                            ks.a = (start,)
                            return [PartialMatchNode(e.stage, ev, pm)]
        elif len(edges) == 1 and not is_start:
            e = edges[0]
            if e.action == IGNORE and e.target is state and e.kind != FINAL and e.kind != STOP:
                # ignored where it waits, after a change: re-offered as it is (the loop
                # below without its list; Java's siftUp, inline)
                k = len(na)
                na.append(cs)
                key = cs.ck
                while k:
                    parent = (k - 1) >> 1
                    up = na[parent]
                    if key >= up.ck:
                        break
                    na[k] = up
                    k = parent
                na[k] = cs
                continue
        retain: list[Computation] = []
        discard = False
        for e in edges:
            target = e.target
            kind = e.kind
            take = e.action != IGNORE
            if take:
                node = PartialMatchNode(e.stage, ev, pm)
                ck = (ts, ev.seq) if is_start else cs.ck
                nxt = Computation(target, node, ck)
            elif is_start:
                continue
            else:
                nxt = cs if target is state else Computation(target, pm, cs.ck)
            if kind == FINAL:
                potential = potential or []
                potential.append(nxt)
            elif kind == STOP:
                discard = True
            else:
                retain.append(nxt)
                if target.absorbing and nxt is not cs:
                    absorbed = True
            if take and e.proceeds:
                if target.reads_partial:
                    final = _final_after_proceed(target, ev, pm)
                else:  # (its outcome depends on the event alone: once per target)
                    if finals is None:
                        finals = {}
                    final = finals.get(target, _UNKNOWN)
                    if final is _UNKNOWN:
                        final = finals[target] = _final_after_proceed(target, ev, None)
                if final is not None:
                    potential = potential or []
                    potential.append(Computation(final, node, ck))
        if is_start:
            retain.append(cs)
        if na is None:
            na = list(old[:i])  # (offering a heap's array in order rebuilds it as it is)
        if not discard:
            for nxt in retain:
                _heap_offer(na, nxt)
    same = na is None and potential is None
    if na is None:
        if potential is None:
            # every computation stays as it was; an unchanged heap array is its own re-heap
            if not ks.completed.a:
                return []
            na = list(old)
        else:
            na = list(old)  # (offering a heap's array in order rebuilds it as it is)
    elif potential is None and not ks.completed.a:
        # nothing completed, nothing held back: no release
        ks.a = tuple(_merge_cohorts(na) if absorbed else na)
        return []
    new_partial = JavaHeap()
    new_partial.a = na
    pot = JavaHeap()
    for c in potential or ():
        _heap_offer(pot.a, c)
    results: list[PartialMatchNode] = []
    _release(nfa, ks, pot, new_partial, results)
    if absorbed:
        new_partial.a = _merge_cohorts(new_partial.a)
    if not same or len(new_partial.a) != len(old):  # (pruning only removes)
        ks.a = tuple(new_partial.a)
    return results


def _merge_cohorts(a: list[Computation]) -> list[Computation]:
    """Cohort pruning (:attr:`~cep.nfa.model.NFA.cohort_pruning`): of the computations of
    the heap array ``a`` that wait in one absorbing state with one first event (``ck``), keep
    the first in array order.  The survivors keep their array order and are re-heapified, as
    Java's ``removeIf`` leaves them; ``a`` itself when nothing goes.  One pass, O(len(a))."""
    seen: set[tuple[State, Any]] = set()
    kept: list[Computation] | None = None
    for i, c in enumerate(a):
        st = c.state
        if st.absorbing:
            k = (st, c.ck)
            if k in seen:
                if kept is None:
                    kept = a[:i]
                continue
            seen.add(k)
        if kept is not None:
            kept.append(c)
    if kept is None:
        return a
    heapify(kept)
    return kept


def advance_time(
    nfa: NFA, ks: KeyState, now: float
) -> tuple[list[PartialMatchNode], list[tuple[PartialMatchNode, int]]]:
    """Advance a key's clock to ``now`` (ms; may be +∞ at end of input).

    Returns ``(matches, timeouts)``: matches released (pending ``not followed by`` matches and
    completed matches freed by a timeout), and timed-out partial matches as ``(node,
    timeout_ts)`` with ``timeout_ts = first + window`` or ``previous + stage window``.
    """
    ks.clock = now
    w = nfa.window_ms
    keep: list[Computation] = []  # the new heap's array
    pending: list[Computation] | None = None
    timeouts: list[tuple[PartialMatchNode, int]] = []
    for cs in ks.a:
        st = cs.state
        ck = cs.ck
        if ck is START_CK or st.is_start:
            _heap_offer(keep, cs)
            continue
        node = cs.node
        assert node is not None
        wp = st.window_ms
        by_prev = bool(wp) and now - node.event.ts >= wp  # type: ignore[operator]
        by_first = w > 0 and now - ck[0] >= w
        if by_prev or by_first:
            if st.kind == PENDING:
                if pending is None:
                    pending = []
                _heap_offer(pending, cs)
                continue
            timeouts.append((node, node.event.ts + wp if by_prev else ck[0] + w))
        else:
            _heap_offer(keep, cs)
    results: list[PartialMatchNode] = []
    if pending is not None or ks.completed.a:
        partial = JavaHeap()
        partial.a = keep
        potential = JavaHeap()
        potential.a = pending or []
        _release(nfa, ks, potential, partial, results)
        keep = partial.a
    ks.a = tuple(keep)
    return results, timeouts


def expire_silently(nfa: NFA, ks: KeyState, now: float) -> int:
    """:func:`advance_time` for an automaton whose expiry says nothing (no ``not followed
    by … within`` at its end, no skip strategy, so no completed match is ever held back):
    prune the key's partial matches outside a window at ``now`` (ms) and return how many
    timed out.  The heap is rebuilt only when one did."""
    ks.clock = now
    w = nfa.window_ms
    a = ks.a
    keep: list[Computation] | None = None
    n = 0
    for i, cs in enumerate(a):
        ck = cs.ck
        st = cs.state
        if ck is not START_CK and not st.is_start:
            wp = st.window_ms
            if (w > 0 and now - ck[0] >= w) or (
                    wp and now - cs.node.event.ts >= wp):  # type: ignore[union-attr]
                if keep is None:
                    keep = []
                    for c in a[:i]:
                        _heap_offer(keep, c)
                n += 1
                continue
        if keep is not None:
            _heap_offer(keep, cs)
    if keep is not None:
        ks.a = tuple(keep)
    return n


def _next_computations(cs: Computation, ev: Any) -> list[Computation]:
    """Flink's ``computeNextStates``: the decision graph from ``cs.state`` on ``ev``."""
    state = cs.state
    pm = cs.node
    edges = []
    stack = [state]
    while stack:
        s = stack.pop()
        for t in s.transitions:
            c = t.cond
            if c.always or c.fn(ev, pm):
                if t.action == PROCEED:
                    stack.append(t.target)
                else:
                    edges.append(t)
    is_start = cs.ck is START_CK
    out: list[Computation] = []
    for t in edges:
        if t.action == IGNORE:
            if is_start:
                continue
            if t.target is state:
                out.append(cs)
            else:
                out.append(Computation(t.target, pm, cs.ck))
        else:  # TAKE
            node = PartialMatchNode(t.source.stage, ev, pm)
            ck = (ev.ts, ev.seq) if is_start else cs.ck
            target = t.target
            out.append(Computation(target, node, ck))
            final = _final_after_proceed(target, ev, pm)
            if final is not None:
                out.append(Computation(final, node, ck))
    if is_start:
        out.append(cs)
    return out


def _final_after_proceed(state: State, ev: Any, pm: PartialMatchNode | None) -> State | None:
    """Flink's ``findFinalStateAfterProceed``: FINAL reachable from ``state`` by PROCEED edges
    whose guards hold for ``ev`` (evaluated against the partial match *before* ``ev``)."""
    stack = [state]
    while stack:
        s = stack.pop()
        for t in s.transitions:
            if t.action == PROCEED:
                c = t.cond
                if c.always or c.fn(ev, pm):
                    if t.target.kind == FINAL:
                        return t.target
                    stack.append(t.target)
    return None


def _release(
    nfa: NFA,
    ks: KeyState,
    potential: JavaHeap,
    partial: JavaHeap,
    results: list[PartialMatchNode],
) -> None:
    """Flink's ``processMatchesAccordingToSkipStrategy``."""
    completed = ks.completed
    if potential.a:
        if completed is NO_COMPLETED:
            completed = ks.completed = JavaHeap()
        for c in potential.a:
            completed.offer(c)
    if not completed.a:
        return
    skipping = nfa.skip != "no_skip"
    while completed.a:
        earliest = completed.a[0]
        if skipping:
            first_partial = partial.peek()
            if first_partial is not None and not earliest.ck <= first_partial.ck:
                break
        completed.poll()
        node = earliest.node
        if skipping:
            pid = _pruning_id(nfa, node)
            if pid is not None:
                inclusive = nfa.skip in ("skip_to_next", "skip_past_last_event")
                _prune(partial, pid, inclusive)
                _prune(completed, pid, inclusive)
        results.append(node)
    if not completed.a:
        ks.completed = NO_COMPLETED


def _prune(heap: JavaHeap, pid: tuple[int, int], inclusive: bool) -> None:
    if inclusive:
        heap.remove_if(lambda c: c.ck is not START_CK and c.ck <= pid)
    else:
        heap.remove_if(lambda c: c.ck is not START_CK and c.ck < pid)


def _pruning_id(nfa: NFA, node: PartialMatchNode | None) -> tuple[int, int] | None:
    """The event id a released match prunes against (Flink's ``getPruningId``)."""
    ids = []
    skip_stage = nfa.skip_stage
    while node is not None:
        if skip_stage is None or node.stage == skip_stage:
            ids.append((node.event.ts, node.event.seq))
        node = node.prev
    if not ids:
        return None
    skip = nfa.skip
    if skip == "skip_to_next":
        return min(ids)
    if skip == "skip_past_last_event":
        return max(ids)
    if skip == "skip_to_first":
        return ids[-1]  # the chain is newest first: the stage's first event is last here
    return ids[0]  # skip_to_last
