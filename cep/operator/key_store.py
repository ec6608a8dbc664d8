"""The KeyStore: a rule's keyed state in an operator, and everything that reads its encodings.

:class:`RuleState` is what an operator keeps per rule version: the compiled rule, a map from
key to :data:`KeyEntry` (the full :class:`~cep.nfa.matcher.KeyState`, or the compact forms
of a key whose partial matches each took one event alone), the timer queue by deadline and
the counters.  This module is the only one that knows those encodings: it steps a key with an
event (:meth:`RuleState.offer`, :meth:`RuleState.step`), fires its timers
(:meth:`RuleState.fire_timers`), unfolds a compact key into its full state
(:meth:`RuleState.state_of`, :meth:`RuleState.unfold_all`), lists and restores the keys for
checkpoints (:meth:`RuleState.key_states`, :meth:`RuleState.restore_key`), holds events
compactly (:meth:`RuleState.hold_round`) and turns a version into a draining one and back
(:meth:`RuleState.start_draining`, :meth:`RuleState.revive`).  What a rule state needs of its
operator — where records go, the cap on partial matches, the hold rounds, the eviction log,
the operator-wide earliest deadline and the retirement of a drained version — is one
:class:`StepContext` the operator shares with all its rule states.

:class:`HeldKeys` is the set of keys that rules keyed by one field share for the file
scanner.  Layer 3: plain data and their methods, no I/O; the operator
(:mod:`cep.operator.cep_operator`), its generated loop (:mod:`cep.operator.fastpath`), the
reload policy (:mod:`cep.operator.versions`), checkpoints and traces use it, and it uses none
of them.
"""

from __future__ import annotations

import heapq
import weakref
from collections.abc import Callable, Hashable, Iterator
from dataclasses import replace
from typing import Any

import orjson

from cep.compiler.compiled import CompiledRule
from cep.event import Event, HeldEvent, hold
from cep.nfa.matcher import (
    START_CK,
    Computation,
    Kept,
    KeyState,
    advance_time,
    expire_silently,
    kept_events_state,
    kept_events_step,
    kept_step,
    new_key_state,
    next_deadline,
    process,
    single_event_stage,
    start_shortcut,
    started_key_state,
)
from cep.nfa.pattern import PartialMatchNode
from cep.operator.alerting import Alerting, alerting_for
from cep.operator.eviction import EvictionLog
from cep.operator.records import MAX_EVENTS_PER_MATCH, AlertBuilder

__all__ = ["RuleState", "HeldKeys", "KeyEntry", "StepContext", "TIMER_GRAINS", "timer_grain",
           "silent_expiry", "Emit", "HOLD_AFTER"]

Emit = Callable[[str, dict[str, Any]], None]
"""``emit(sink_name, record)``: where an operator's records go."""

HOLD_AFTER = 16384
"""Default of :attr:`StepContext.hold_at`: a partial match still alive after one to two
rounds of this many changed keys holds its events compactly."""

KeyEntry = KeyState | Event | HeldEvent | tuple[Any, ...]
"""What :attr:`RuleState.keys` maps a key to: its :class:`~cep.nfa.matcher.KeyState`; or, for
a key whose partial matches each took one event alone, the event that started them, waiting
in the stage after the first (see :attr:`RuleState.compact_after`): that event alone when
there is one and the key's deadline is its own, else ``(deadline_ms, event, ...)``, the
events in start order."""

_INF = float("inf")
_NO_KEY: Any = object()  # no timer at a deadline yet (None is a key like any other)

TIMER_GRAINS = 64
"""A rule whose expiry says nothing has its timers rounded up to 1/64 of its shortest window
(:func:`timer_grain`)."""


def silent_expiry(rs: RuleState) -> bool:
    """Expiring a partial match of this rule says nothing (no timeout output, no pending
    match, no skip strategy holding matches back): its keys' timers can do the expiring at
    the next watermark, unobserved."""
    nfa = rs.rule.nfa
    return rs.rule.timeout_emit_fn is None and not nfa.has_pending and nfa.skip == "no_skip"


def timer_grain(rs: RuleState) -> int:
    """The granularity (ms) of the rule's timers: 1 (exact) unless expiring a partial match
    of this rule says nothing — no ``on timeout emit``, no ``not followed by … within`` at
    the end, no skip strategy holding matches back — in which case a timer only frees state
    and is rounded up to a multiple of 1/:data:`TIMER_GRAINS` of the shortest window (pattern
    or stage).  Keys whose deadlines fall in one such interval are then woken together, by
    one timer, instead of one wake-up (and one stop of the file scanner) per deadline; a
    key's state outlives its deadline by less than the grain, which no output can tell,
    since an event for that key first advances its clock (:meth:`CepOperator.step_key`).  The
    matches are those of exact timers; the ``timeouts`` counter and the live partial matches
    lag by up to the grain."""
    if not silent_expiry(rs):
        return 1
    nfa = rs.rule.nfa
    windows = [w for w in (nfa.window_ms, *(s.window_ms for s in nfa.states)) if w]
    return max(1, min(windows) // TIMER_GRAINS) if windows else 1


class HeldKeys(set):  # type: ignore[type-arg]
    """A set of keys shared by ``rules`` (:meth:`CepOperator.share_holders`): at least every
    key any of them holds state for.  Keys join it as their state is made and leave it only
    when it is rebuilt, once it holds more than ``limit`` keys (:meth:`tidy`).

    The file scanner looks a line's key up here first and in each rule's keys only when it is
    found, so the fewer keys it holds that no rule holds any more, the fewer lines cost a
    lookup per rule."""

    __slots__ = ("rules", "limit")

    def __init__(self, rules: list[RuleState]) -> None:
        super().__init__()
        self.rules = rules
        self.limit = -1
        self.tidy()

    def tidy(self) -> None:
        """Rebuild from the rules' keys; the next rebuild comes once as many keys again have
        joined, and at least 1,024 or an eighth of the rules' keys (a key several rules hold
        counts once per rule): a rebuild inserts every rule's keys, so that bounds its cost
        to 8 insertions per key joining."""
        self.clear()
        live = 0
        for rs in self.rules:
            live += len(rs.keys)
            self.update(rs.keys)
        held = len(self)
        self.limit = held + max(held, live // 8, 1024)




class StepContext:
    """What the rule states of one operator share with it (one object per operator).

    Attributes:
        emit: ``emit(sink, record)`` for alerts and timeout records.
        cap: the most partial matches per rule and key (at least 1); beyond it the oldest
            are evicted (:meth:`RuleState.after_change`).
        eviction_log: where evictions are counted and logged, rate-limited.
        holding: whether events are held compactly at all (:meth:`RuleState.hold_round`).
        hold_at: changed keys per round of holding.
        next_due: a lower bound (ms) of every rule state's earliest timer deadline: a step
            that schedules an earlier timer lowers it; the operator raises it when it has
            looked at every rule's timers.
        derive: ``derive(stream, record, origin)`` for the match records of a rule that
            emits to a derived stream (:mod:`cep.operator.derived`); ``None``: the operator
            runs no such rule.

    ``retire`` (a bound method of the operator) is called, through :meth:`retire`, with a
    draining version once its last key is gone.  It is held weakly: the operator holds its
    rule states and they hold this context, so a strong reference back would make every
    operator a reference cycle, freed only by the cyclic collector (which would then walk
    all of its keyed state) instead of as soon as it is dropped.
    """

    __slots__ = ("emit", "cap", "eviction_log", "holding", "hold_at", "next_due", "_retire",
                 "derive")

    def __init__(self, emit: Emit, cap: int, eviction_log: EvictionLog,
                 retire: Callable[[RuleState], None]) -> None:
        self.emit = emit
        self.cap = cap
        self.eviction_log = eviction_log
        self.holding = True
        self.hold_at = HOLD_AFTER
        self.next_due: float = _INF
        self._retire = weakref.WeakMethod(retire)  # type: ignore[arg-type]
        self.derive: Callable[[str, dict[str, Any], Event], None] | None = None

    def retire(self, rs: RuleState) -> None:
        """Tell the operator that the draining version ``rs`` holds no key any more."""
        fn = self._retire()
        if fn is not None:
            fn(rs)


def _hold_key_state(ks: KeyState) -> None:
    """Keep the events of the key's partial and held-back matches in their compact form
    (:func:`cep.event.hold`): each node's event is replaced by its
    :class:`~cep.event.HeldEvent`, one per event, shared by every node that took it.

    Only for an automaton whose guards never read the partial match
    (:attr:`~cep.nfa.model.NFA.reads_partial` false): matching never reads these events
    again, and the records built from them are the same.  A chain is walked back until a node
    that already holds its event compactly (every older node has been through this).
    """
    made: dict[Any, Any] = {}
    for heap in (ks.a, ks.completed.a):
        for cs in heap:
            node: PartialMatchNode | None = cs.node
            while node is not None:
                ev = node.event
                if type(ev) is HeldEvent:
                    break
                held = made.get(ev)
                if held is None:
                    held = made[ev] = hold(ev)
                node.event = held
                node = node.prev


def _drainable(window_ms: int, cs: Computation) -> bool:
    """A partial match a draining version keeps: a real one, bounded by some ``within``."""
    if cs.ck is START_CK or cs.state.is_start:
        return False
    return window_ms > 0 or bool(cs.state.window_ms)


class RuleState:
    """A compiled rule and its keyed matcher state.

    Attributes:
        keys: key → :data:`KeyEntry`; a key's ``deadline`` is the earliest deadline scheduled
            for it (ms).  With :attr:`compact_after`, a key whose only partial match is the
            one its first event started maps to that event instead, and a key whose partial
            matches each took one event alone to ``(deadline, events…)`` (:meth:`state_of`
            gives the state they stand for).  Read them only through this class's methods.
        timers: a heap of the distinct times (ms) timers are scheduled at: the deadlines
            rounded up to a multiple of ``grain`` (:func:`timer_grain`; 1: exact); ``due``
            maps each to its key, or to a list of its keys in the order they were scheduled.
            With exact timers, a timer whose key no longer has that deadline is stale and
            skipped; with rounded ones, a key whose deadline has not passed.
        counter: timers scheduled so far.
        shortcut: the automaton's :func:`~cep.nfa.matcher.start_shortcut`, or ``None``.
        compact_after: for a rule with a start shortcut whose new partial match can expire and
            whose timers are rounded (its expiry says nothing), the time (ms) from the event
            that starts a partial match to its deadline; the key is then kept as that event
            alone — no state objects, one timer — until an event changes it
            (:func:`~cep.nfa.matcher.kept_step`: a match, a discarded partial match, or a
            second one, when the key becomes ``(deadline, event, event)``; else it is
            unfolded) or it expires.  Such a tuple is stepped by
            :func:`~cep.nfa.matcher.kept_events_step` and loses its expired events to its
            timer.  ``None``: keys always hold a :class:`~cep.nfa.matcher.KeyState`.
        holders: a set of keys shared by the rules keyed by the same field, holding at least
            every key any of them holds state for (or ``None``: not shared); see
            :meth:`CepOperator.share_holders`.
        young, mature: keys changed in this round and in the last one, for
            :meth:`hold_round` (``None`` when the automaton reads partial matches, so nothing
            is held compactly).
        alerts: the :class:`~cep.operator.records.AlertBuilder` of the rule (given
            ``id_parts``, the cache it shares with the operator's other rules, and
            ``max_events``, the most events a record's ``match`` shows; ``None``: all).
        alerting: the rule's :class:`~cep.operator.alerting.Alerting` (window of ``having`` /
            ``all of``, ``suppress for``) that decides which matches become alerts; ``None``
            when every match does.  Then ``matches`` counts the alerts it made.
        single: the stage of a pattern whose every match is one event
            (:func:`~cep.nfa.matcher.single_event_stage`; ``having`` and ``all of`` rules
            compile to one): such a key never holds state, each event the caller let through
            is emitted as its match at once.  ``None`` otherwise.
        ctx: the :class:`StepContext` shared with the operator.
    """

    __slots__ = ("rule", "keys", "timers", "due", "counter", "draining", "alerting", "single",
                 "matches", "timeouts", "evictions", "alerts", "young", "mature", "grain",
                 "shortcut", "holders", "compact_after", "ctx", "_bucket_lo", "_bucket")

    def __init__(self, rule: CompiledRule, ctx: StepContext,
                 id_parts: dict[Any, str] | None = None,
                 max_events: int | None = MAX_EVENTS_PER_MATCH) -> None:
        self.rule = rule
        self.ctx = ctx
        self.alerts = AlertBuilder(rule, id_parts, max_events)
        self.alerting: Alerting | None = alerting_for(rule, self.alerts)
        self.single = single_event_stage(rule.nfa)
        self.keys: dict[Hashable, KeyEntry] = {}
        self.timers: list[float] = []
        self.due: dict[float, Any] = {}
        self.counter = 0
        self.draining = False
        self.matches = 0
        self.timeouts = 0
        self.evictions = 0
        self.young: list[Hashable] | None = None if rule.nfa.reads_partial else []
        self.mature: list[Hashable] = []
        self.grain = timer_grain(self)
        # the last rounded timer and the deadlines that round to it, (_bucket_lo, _bucket]
        self._bucket_lo: float = 0
        self._bucket: float = 0
        self.shortcut = start_shortcut(rule.nfa)
        sc = self.shortcut
        self.compact_after = sc[2] if sc is not None and self.grain != 1 else None
        self.holders: HeldKeys | None = None

    # ------------------------------------------------------------------ reading the keys

    def adopt(self, rule: CompiledRule) -> None:
        """Run ``rule``, a compilation of this state's rule version (same name, same
        ``version``: its metadata or, for lists, the contents loaded may differ), keeping every
        partial match: the automaton the partial matches wait in stays, everything else
        (metadata, emit, key and filter code) is ``rule``'s."""
        if rule is self.rule:
            return
        assert rule.name == self.rule.name and rule.version == self.rule.version
        old = self.rule
        fresh = dict(rule.lists)
        for name, data in old.lists:  # what the automaton's conditions read
            if name in fresh:
                data.take(fresh[name])
        self.rule = replace(rule, nfa=old.nfa, lists=old.lists)
        self.alerts.rebind(self.rule)

    def add_key(self, key: Hashable, ks: KeyEntry) -> None:
        """Keep the state ``ks`` of a key that had none (and the key in the shared
        :attr:`holders`, which may then tidy itself)."""
        self.keys[key] = ks
        held = self.holders
        if held is not None:
            held.add(key)
            if len(held) > held.limit:
                held.tidy()

    def partial_matches(self) -> int:
        """Live partial matches over all keys (start computations excluded; a draining
        version has none)."""
        # (a key kept as its event alone: its start computation and one partial match; as
        # (deadline, events…): the start computation and a partial match per event)
        n = sum(len(ks.a) if type(ks) is KeyState else len(ks) if type(ks) is tuple else 2
                for ks in self.keys.values())
        return n if self.draining else n - len(self.keys)

    def _unfolded(self, entry: KeyEntry) -> KeyState:
        """The :class:`~cep.nfa.matcher.KeyState` a key entry stands for: the entry itself,
        or for events kept alone (:attr:`compact_after`) the state they stand for — not
        stored."""
        if type(entry) is KeyState:
            return entry
        assert self.shortcut is not None and self.compact_after is not None
        if type(entry) is tuple:
            ks = kept_events_state(self.rule.nfa, self.shortcut, entry[1:])
            ks.deadline = entry[0]
            return ks
        ks = started_key_state(self.rule.nfa, self.shortcut, entry)
        ks.deadline = entry.ts + self.compact_after  # type: ignore[union-attr]
        return ks

    def state_of(self, key: Hashable) -> KeyState | None:
        """The full state of ``key`` (``None``: it holds none), unfolded from a compact form
        when it is kept so — a copy then, not stored: for reading only (traces,
        checkpoints, tests)."""
        entry = self.keys.get(key)
        return None if entry is None else self._unfolded(entry)

    def key_states(self) -> Iterator[tuple[Hashable, KeyState]]:
        """Every key with its full state (:meth:`state_of`), in the order the keys were
        made.  For checkpoints; the states of compact keys are copies."""
        unfolded = self._unfolded
        for key, entry in self.keys.items():
            yield key, unfolded(entry)

    def _unfold(self, key: Hashable, entry: KeyEntry) -> KeyState:
        """:meth:`_unfolded`, stored as ``key``'s state (its timer, already scheduled at the
        event's deadline, is the state's)."""
        ks = self._unfolded(entry)
        if ks is not entry:
            self.keys[key] = ks
        return ks

    def unfold_all(self) -> None:
        """Store the full state of every key kept as an event alone (before a version
        drains: a draining version's keys are all :class:`~cep.nfa.matcher.KeyState`)."""
        for key, entry in self.keys.items():  # (values replaced, no key added or removed)
            self._unfold(key, entry)

    @property
    def always_full(self) -> bool:
        """Whether every key entry is a :class:`~cep.nfa.matcher.KeyState` (no
        :attr:`compact_after`): then generated code may read an entry's ``deadline``."""
        return self.compact_after is None

    def restore_key(self, key: Hashable, ks: KeyState) -> None:
        """Keep ``ks`` as ``key``'s state (checkpoint restore: timers come with
        :meth:`restore_timers`, deadlines with :meth:`restore_deadline`); its events are held
        compactly after the next two rounds, as those of a key that just changed."""
        self.keys[key] = ks
        if self.young is not None:
            self.young.append(key)

    def restore_deadline(self, key: Hashable, d: float) -> None:
        """Set the deadline (ms) of a restored key (one the snapshot lists; a key that is
        gone is passed over)."""
        entry = self.keys.get(key)
        if type(entry) is KeyState:
            entry.deadline = d

    # ------------------------------------------------------------------ the step of one key

    def offer(self, ev: Event, key: Any, starts: int = 0) -> None:
        """An event the rule reads, with its key (the value of the rule's ``key_fn``; an
        unhashable one, a list or an object, stands as its sorted JSON text): for a key
        without state, the prefilter (unless ``starts``: the caller knows the first stage
        takes it), then the key's first partial match when the rule has a start shortcut;
        else :meth:`step`.  A draining version makes no new key."""
        keys = self.keys
        try:
            known = key in keys
        except TypeError:  # an unhashable key value (a list or object)
            key = orjson.dumps(key, option=orjson.OPT_SORT_KEYS).decode()
            known = key in keys
        if not known:
            if self.draining:
                return
            pre = self.rule.nfa.start_prefilter
            if pre is not None and not starts and not pre.fn(ev, None):
                return
            if self.shortcut is not None:
                self._start(key, ev)  # (what step would do, one call sooner)
                return
        self.step(key, ev)

    def step(self, key: Hashable, ev: Event) -> None:
        """Match ``ev`` for ``key``: a key without state is created (the caller checked that
        the event can start a match), a key kept as its event(s) alone is stepped in place
        where that decides (else unfolded), a key whose clock is behind advances it
        (windows, timeouts; skipped when no deadline of the key has passed, which changes
        nothing), then the NFA step (:func:`~cep.nfa.matcher.process`), the matches, and the
        key's timer or removal (:meth:`after_change`)."""
        single = self.single
        if single is not None and not self.draining:
            # a one-event match (the caller checked the start guard): no key state
            self.emit_match(key, PartialMatchNode(single, ev, None))
            return
        nfa = self.rule.nfa
        ts = ev.ts
        entry = self.keys.get(key)
        fresh = entry is None
        if entry is None:
            if self.shortcut is not None and not self.draining:
                self._start(key, ev)
                return
            ks = new_key_state(nfa)
            ks.clock = ts
            self.add_key(key, ks)
        else:
            if type(entry) is KeyState:
                ks = entry
            else:  # kept as its event(s) alone (so the rule has compact_after, shortcut)
                if (self._step_kept(key, entry, ev) if type(entry) is tuple
                        else self._step_kept_event(key, entry, ev)):
                    return
                ks = self._unfold(key, entry)
            if ks.clock < ts:
                if ks.deadline <= ts:
                    self._advance_key(key, ks, ts)
                    fresh = True  # the key may have become idle: let after_change look
                else:
                    ks.clock = ts
        before = ks.a
        matches = process(nfa, ks, ev)
        if matches:
            self._emit_matches(key, ks, matches)
        if ks.a is not before:
            self.after_change(key, ks)
            self._changed(key)
        elif fresh or ks.completed.a:
            self.after_change(key, ks)
        # else: the event left every partial match where it was (process kept the heap):
        # same deadline, same size, not idle (it was not before), so nothing to do

    def _step_kept_event(self, key: Hashable, kept: Any, ev: Event) -> bool:
        """:meth:`step` for a key kept as its event alone when
        :func:`~cep.nfa.matcher.kept_step` decides, ``ev`` inside the partial match's window:
        the match emitted and the key gone, the key gone, unchanged, or kept as ``(deadline,
        kept, ev)`` (a second partial match, when the cap allows two).  Returns False when
        the caller must unfold the key and take the general step."""
        deadline = kept.ts + self.compact_after  # (the kept key's timer's)
        if deadline <= ev.ts:
            return False
        got = kept_step(self.rule.nfa, self.shortcut, kept, ev)  # type: ignore[arg-type]
        if got is None or (got is Kept.STARTED and self.ctx.cap < 2):
            return False  # (with a cap of one, the older of two is evicted the usual way)
        if got is Kept.KEPT:
            return True
        if got is Kept.STARTED:
            self.keys[key] = (deadline, kept, ev)
        else:
            del self.keys[key]  # idle
            if got is not Kept.DROPPED:
                self.emit_match(key, got)
        self._changed(key)
        return True

    def _step_kept(self, key: Hashable, kept: tuple[Any, ...], ev: Event) -> bool:
        """:meth:`step` for a key kept as ``(deadline, events…)`` (:data:`KeyEntry`) when
        :func:`~cep.nfa.matcher.kept_events_step` decides: ``ev`` inside the first event's
        window, room for one more partial match under the cap.  The matches are emitted and
        the key keeps the events left (or goes); when its first event has changed, its timer
        is the one already scheduled (``deadline`` stays), as for the state it stands for.
        Returns False when the caller must unfold the key and take the general step."""
        after: Any = self.compact_after
        if kept[1].ts + after <= ev.ts or len(kept) > self.ctx.cap:
            return False
        got = kept_events_step(self.rule.nfa, self.shortcut, kept[1:], ev)  # type: ignore[arg-type]
        if got is None:
            return False
        if got is Kept.KEPT:
            return True
        left, matches = got
        if not left:
            del self.keys[key]  # idle
        else:
            d = kept[0]
            self.keys[key] = left[0] if len(left) == 1 and d == left[0].ts + after else (
                d, *left)
        self._changed(key)
        for node in matches:
            self.emit_match(key, node)
        return True

    def _start(self, key: Hashable, ev: Event) -> None:
        """:meth:`step` for a key without state, when its automaton has a start shortcut
        (:func:`~cep.nfa.matcher.start_shortcut`): the key's first partial match and timer,
        as the matching step and :meth:`after_change` would make them — or, with
        :attr:`compact_after`, the event alone and the same timer."""
        after = self.compact_after
        d: float = _INF
        if after is not None:
            self.add_key(key, ev)
            d = ev.ts + after
            self.add_timer(key, d)
        else:
            sc: Any = self.shortcut
            ks = started_key_state(self.rule.nfa, sc, ev)
            self.add_key(key, ks)
            offset = sc[2]
            if offset is not None:
                d = ev.ts + offset
                self.schedule(key, ks, d)
        ctx = self.ctx
        if d < ctx.next_due:
            ctx.next_due = d
        young = self.young  # (_changed, inlined: every start passes here)
        if young is not None:
            young.append(key)
            if len(young) >= ctx.hold_at:
                self.hold_round()

    def _changed(self, key: Hashable) -> None:
        """Note that ``key``'s state changed in this round: it is held compactly after the
        next two rounds (:meth:`hold_round`)."""
        young = self.young
        if young is not None:
            young.append(key)
            if len(young) >= self.ctx.hold_at:
                self.hold_round()

    def after_change(self, key: Hashable, ks: KeyState) -> None:
        """``key``'s full state ``ks`` changed: evict beyond the cap, drop the key when it
        holds nothing any more (and retire a draining version left without keys), else
        schedule its timer at its new earliest deadline when that came nearer."""
        a = ks.a
        limit = self.ctx.cap if self.draining else self.ctx.cap + 1  # (+ the start)
        if len(a) > limit:
            self._evict(key, ks, len(a) - limit)
            a = ks.a
        # is_idle(ks), inlined: only the start computation is left
        idle = len(a) == 1 and a[0].ck is START_CK and not ks.completed.a
        if idle or (self.draining and not a and not ks.completed.a):
            del self.keys[key]
            if self.draining and not self.keys:
                self.ctx.retire(self)
            return
        d = next_deadline(self.rule.nfa, ks)
        if d < ks.deadline:
            self.schedule(key, ks, d)
            ctx = self.ctx
            if d < ctx.next_due:
                ctx.next_due = d

    def _advance_key(self, key: Hashable, ks: KeyState, now: float) -> None:
        """Advance ``key``'s clock to ``now`` (ms): its released matches and timeouts."""
        matches, timeouts = advance_time(self.rule.nfa, ks, now)
        if matches:
            self._emit_matches(key, ks, matches)
        alerts = self.alerts
        emit = self.ctx.emit
        if timeouts:
            self.timeouts += len(timeouts)
            if alerts.timeouts:
                for node, ts in timeouts:
                    rec = alerts.timeout(key, node, ts)
                    if rec is not None:
                        emit(alerts.timeout_sink, rec)

    def _emit_matches(self, key: Hashable, ks: KeyState, matches: list[Any]) -> None:
        """Emit a key's matches (:meth:`emit_match`); when it evicted partial matches since
        its last match, each alert says how many (``"evicted_partial_matches": N``, so that
        counts over the match are known to be lower bounds), and the key's count starts
        again from 0."""
        evicted = ks.evicted
        if evicted:
            ks.evicted = 0
        for node in matches:
            self.emit_match(key, node, evicted)

    def emit_match(self, key: Hashable, node: Any, evicted: int = 0) -> None:
        """One completed match of ``key``: its alert, unless the rule's alerting (window,
        suppression) holds it back; ``evicted``: the key's evictions since its last match."""
        alerting = self.alerting
        if alerting is None:
            self.matches += 1
            rec: dict[str, Any] | None = self.alerts.match(key, node)
        else:
            made = alerting.produced
            rec = alerting.offer(key, node)
            self.matches += alerting.produced - made
            if rec is None:
                return
        assert rec is not None
        if evicted:
            rec["evicted_partial_matches"] = evicted
        if self.rule.stream:
            derive = self.ctx.derive
            assert derive is not None  # (the operator sets it up for every rule set)
            derive(self.alerts.sink, rec, node.event.plain())
            return
        self.ctx.emit(self.alerts.sink, rec)

    def _evict(self, key: Hashable, ks: KeyState, over: int) -> None:
        """Drop whole cohorts of ``key`` holding at least ``over`` partial matches, from the
        middle of start order outward (:meth:`~cep.nfa.matcher.KeyState.evict_cohorts`: one
        pass over the key's partial matches and a sort of its cohorts' first events, never
        of all its partial matches); counted in :attr:`evictions` and in the key's next
        alerts, and logged at most every few seconds per rule
        (:attr:`StepContext.eviction_log`)."""
        n = ks.evict_cohorts(over)
        self.evictions += n
        ctx = self.ctx
        ctx.eviction_log.note(self.rule.name, key, n, ctx.cap)

    def hold_round(self) -> None:
        """A round of holding events compactly (when the context is
        :attr:`~StepContext.holding`): the keys changed in the last round (still alive) hold
        their events compactly, whatever their encoding; this round's keys wait for the
        next."""
        if self.ctx.holding:
            keys = self.keys
            for key in self.mature:
                entry = keys.get(key)
                if type(entry) is KeyState:
                    _hold_key_state(entry)
                elif type(entry) is Event:
                    keys[key] = hold(entry)  # a key kept as its event alone
                elif type(entry) is tuple:  # (deadline, events…)
                    keys[key] = (entry[0], *[hold(e) if type(e) is Event else e
                                             for e in entry[1:]])
        self.mature = self.young or []
        self.young = []

    # ------------------------------------------------------------------ timers

    def fire_timers(self, wm: float) -> None:
        """Fire the timers at or below the watermark ``wm`` (ms): each key whose deadline has
        passed advances its clock to ``wm`` (windows, timeouts) and is looked at again
        (:meth:`after_change`).  A key's new timer after firing is past ``wm``, so each
        deadline's keys fire together, in the order they were scheduled.  With rounded
        timers, :meth:`_expire`."""
        if self.grain != 1:
            d = self._expire(wm)
            ctx = self.ctx
            if d < ctx.next_due:
                ctx.next_due = d
            return
        timers = self.timers
        due = self.due
        keys = self.keys
        while timers and timers[0] <= wm:
            d = heapq.heappop(timers)
            got = due.pop(d)
            for key in got if type(got) is list else (got,):
                entry = keys.get(key)
                if entry is None:
                    continue  # the key is gone
                ks = entry if type(entry) is KeyState else self._unfold(key, entry)
                if ks.deadline != d:
                    continue  # superseded
                ks.deadline = _INF
                self._advance_key(key, ks, wm)
                self.after_change(key, ks)

    def _expire(self, wm: float) -> float:
        """:meth:`fire_timers` for a rule with rounded timers (:func:`timer_grain`: its expiry
        says nothing): each key whose deadline has passed loses its expired partial matches,
        silently (counted in :attr:`timeouts`), and goes when nothing else is left; a key
        whose full state changed goes to :meth:`after_change`.  Returns the earliest deadline
        (ms) scheduled here for a key kept as its events, ``inf`` if none."""
        timers = self.timers
        due = self.due
        keys = self.keys
        nfa = self.rule.nfa
        w = nfa.window_ms
        earliest = _INF
        # a key kept as its event alone has expired when its event is at or before `kept_by`
        kept_by = wm - (self.compact_after or 0)  # (no key is kept so without compact_after)
        while timers and timers[0] <= wm:
            got = due.pop(heapq.heappop(timers))
            for key in got if type(got) is list else (got,):
                ks = keys.get(key)
                if type(ks) is not KeyState:
                    if ks is None:
                        continue
                    if type(ks) is tuple:
                        if ks[0] <= wm:  # (else woken earlier and due later)
                            d = self._expire_kept(key, ks, kept_by)
                            if d < earliest:
                                earliest = d
                    elif ks.ts <= kept_by:  # type: ignore[union-attr]
                        self.timeouts += 1  # a key kept as its event alone: its deadline passed
                        del keys[key]
                    continue
                if ks.deadline > wm:
                    continue  # woken earlier and due later
                a = ks.a
                if len(a) == 2 and w > 0:
                    # (a heap of two with the start computation: the partial match is the root)
                    cs = a[0]
                    if a[1].ck is START_CK and wm - cs.ck[0] >= w and not cs.state.is_start:
                        self.timeouts += 1  # its one partial match is outside the window
                        del keys[key]
                        continue
                ks.deadline = _INF
                self.timeouts += expire_silently(nfa, ks, wm)
                a = ks.a
                if len(a) == 1 and a[0].ck is START_CK:
                    del keys[key]  # idle (what after_change would find)
                else:
                    self.after_change(key, ks)
        return earliest

    def _expire_kept(self, key: Hashable, kept: tuple[Any, ...], kept_by: float) -> float:
        """:meth:`_expire` for a key kept as ``(deadline, events…)`` whose deadline has passed:
        the events at or before ``kept_by`` (ms) time out (counted); the key goes when none is
        left, else its timer is scheduled at its first event's deadline (as the operator
        schedules the state it stands for).  Returns that deadline, ``inf`` when the key
        went."""
        n = 1
        end = len(kept)
        while n < end and kept[n].ts <= kept_by:
            n += 1
        self.timeouts += n - 1
        if n == end:
            del self.keys[key]
            return _INF
        d: float = kept[n].ts + self.compact_after  # type: ignore[operator]
        self.keys[key] = kept[n] if n == end - 1 else (d, *kept[n:])
        self.add_timer(key, d)
        return d

    def schedule(self, key: Hashable, ks: KeyState, d: float) -> None:
        """Set ``key``'s deadline to ``d`` (ms) and schedule its timer (at ``d`` rounded up to
        a multiple of :attr:`grain`)."""
        ks.deadline = d
        self.add_timer(key, d)

    def add_timer(self, key: Hashable, d: float) -> None:
        """Schedule a timer for ``key`` at ``d`` (ms) rounded up to a multiple of
        :attr:`grain` (the key's ``deadline`` is the caller's)."""
        self.counter += 1
        g = self.grain
        if g != 1:
            if self._bucket_lo < d <= self._bucket:
                d = self._bucket  # (deadlines come mostly in order: the last one's rounding)
            else:
                d = self._bucket = -(-d // g) * g
                self._bucket_lo = d - g
        due = self.due
        got = due.get(d, _NO_KEY)
        if got is _NO_KEY:
            due[d] = key
            heapq.heappush(self.timers, d)
        elif type(got) is list:
            got.append(key)
        else:
            due[d] = [got, key]

    def timer_entries(self) -> list[tuple[float, int, Hashable]]:
        """Every scheduled timer, stale ones included, as ``(deadline_ms, n, key)`` in firing
        order (``n`` numbers them from 0).  For checkpoints."""
        out: list[tuple[float, int, Hashable]] = []
        for d in sorted(self.timers):
            got = self.due[d]
            for key in got if type(got) is list else (got,):
                out.append((d, len(out), key))
        return out

    def restore_timers(self, entries: list[tuple[float, int, Hashable]]) -> None:
        """Replace the timers by ``(deadline_ms, n, key)`` entries (fired in ``(deadline,
        n)`` order), as :meth:`timer_entries` returns them.  For checkpoint restore."""
        self.timers = []
        self.due = {}
        for d, _, key in sorted(entries, key=lambda e: (e[0], e[1])):
            got = self.due.get(d, _NO_KEY)
            if got is _NO_KEY:
                self.due[d] = key
                self.timers.append(d)
            elif type(got) is list:
                got.append(key)
            else:
                self.due[d] = [got, key]
        heapq.heapify(self.timers)

    # ------------------------------------------------------------------ versions

    def start_draining(self) -> tuple[int, int, int]:
        """Make this a draining version: every key's start computation goes (so no new
        partial match begins), and so do the partial matches no window bounds; keys left
        empty go.  Returns ``(kept, dropped, keys_dropped)`` partial-match and key counts."""
        window = self.rule.nfa.window_ms
        kept = dropped = keys_dropped = 0
        self.unfold_all()
        keys = self.keys
        for key in list(keys):
            ks: Any = keys[key]  # (a KeyState: unfold_all)
            before = len(ks.a) - 1  # the start computation is always there when active
            ks.remove_if(lambda c: not _drainable(window, c))
            left = len(ks.a)
            kept += left
            dropped += before - left
            if not left and not ks.completed.a:
                del keys[key]
                keys_dropped += 1
        self.draining = True
        return kept, dropped, keys_dropped

    def revive(self) -> None:
        """Make a draining version active again: each of its keys gets its start computation
        back, and new keys may be made again."""
        start = self.rule.nfa.start
        for ks in self.keys.values():  # (a draining version's keys hold full state)
            ks.offer(Computation(start, None, START_CK))  # type: ignore[union-attr]
        self.draining = False
