"""A rule's keyed state in an operator: the key entries, their timers, the shared held keys.

:class:`RuleState` is what an operator keeps per rule version: the compiled rule, a map from
key to :data:`KeyEntry` (the full :class:`~cep.nfa.matcher.KeyState`, or the compact forms
of a key whose partial matches each took one event alone), the timer queue by deadline and
the counters.  :class:`HeldKeys` is the set of keys that rules keyed by one field share for
the file scanner.  Layer 3: plain data and their methods, no I/O; the operator
(:mod:`cep.operator.cep_operator`), its generated loop (:mod:`cep.operator.fastpath`) and
the reload policy (:mod:`cep.operator.versions`) use it, and it uses none of them.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Hashable
from typing import Any

from cep.compiler.compiled import CompiledRule
from cep.event import Event, HeldEvent
from cep.event import hold as hold_event
from cep.nfa.matcher import (
    START_CK,
    KeyState,
    expire_silently,
    hold_events,
    kept_events_state,
    single_event_stage,
    start_shortcut,
    started_key_state,
)
from cep.operator.alerting import Alerting, alerting_for
from cep.operator.records import MAX_EVENTS_PER_MATCH, AlertBuilder

__all__ = ["RuleState", "HeldKeys", "KeyEntry", "TIMER_GRAINS", "timer_grain",
           "silent_expiry"]

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


class RuleState:
    """A compiled rule and its keyed matcher state.

    Attributes:
        keys: key → :class:`~cep.nfa.matcher.KeyState`; a key's ``deadline`` is the earliest
            deadline scheduled for it (ms).  With :attr:`compact_after`, a key whose only
            partial match is the one its first event started maps to that event instead,
            and a key whose partial matches each took one event alone to ``(deadline,
            events…)`` (:data:`KeyEntry`; :meth:`unfold` makes the state they stand for).
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
            second one, when the key becomes ``(deadline, event, event)``; else
            :meth:`unfold`) or it expires.  Such a tuple is stepped by
            :func:`~cep.nfa.matcher.kept_events_step` and loses its expired events to its
            timer (:meth:`CepOperator._expire_kept`).  ``None``: keys always hold a
            :class:`~cep.nfa.matcher.KeyState`.
        holders: a set of keys shared by the rules keyed by the same field, holding at least
            every key any of them holds state for (or ``None``: not shared); see
            :meth:`CepOperator.share_holders`.
        young, mature: keys changed in this round and in the last one, for :func:`hold_events`
            (``None`` when the automaton reads partial matches, so nothing is held compactly).
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
    """

    __slots__ = ("rule", "keys", "timers", "due", "counter", "draining", "alerting", "single",
                 "matches", "timeouts", "evictions", "alerts", "young", "mature", "grain",
                 "shortcut", "holders", "compact_after", "_bucket_lo", "_bucket")

    def __init__(self, rule: CompiledRule, id_parts: dict[Any, str] | None = None,
                 max_events: int | None = MAX_EVENTS_PER_MATCH) -> None:
        self.rule = rule
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

    def unfolded(self, entry: KeyEntry) -> KeyState:
        """The :class:`~cep.nfa.matcher.KeyState` a key entry stands for: the entry itself,
        or for events kept alone (:attr:`compact_after`) the state :meth:`unfold` makes —
        not stored."""
        if isinstance(entry, KeyState):
            return entry
        assert self.shortcut is not None and self.compact_after is not None
        if isinstance(entry, tuple):
            ks = kept_events_state(self.rule.nfa, self.shortcut, entry[1:])
            ks.deadline = entry[0]
            return ks
        ks = started_key_state(self.rule.nfa, self.shortcut, entry)
        ks.deadline = entry.ts + self.compact_after
        return ks

    def unfold(self, key: Hashable, entry: KeyEntry) -> KeyState:
        """:meth:`unfolded`, stored as ``key``'s state (its timer, already scheduled at the
        event's deadline, is the state's)."""
        ks = self.unfolded(entry)
        if ks is not entry:
            self.keys[key] = ks
        return ks

    def unfold_all(self) -> None:
        """Store the full state of every key kept as an event alone (before a version
        drains: a draining version's keys are all :class:`~cep.nfa.matcher.KeyState`)."""
        for key, entry in self.keys.items():  # (values replaced, no key added or removed)
            self.unfold(key, entry)

    def hold_round(self, hold: bool) -> None:
        """A round of :func:`~cep.nfa.matcher.hold_events`: with ``hold``, the keys changed in
        the last round (still alive) hold their events compactly, whatever their encoding;
        this round's keys wait for the next."""
        if hold:
            keys = self.keys
            for key in self.mature:
                entry = keys.get(key)
                if type(entry) is KeyState:
                    hold_events(entry)
                elif type(entry) is Event:
                    keys[key] = hold_event(entry)  # a key kept as its event alone
                elif type(entry) is tuple:  # (deadline, events…)
                    keys[key] = (entry[0], *[hold_event(e) if type(e) is Event else e
                                             for e in entry[1:]])
        self.mature = self.young or []
        self.young = []

    def expire(self, wm: float,
               after_change: Callable[[RuleState, Hashable, KeyState], None]) -> float:
        """Fire the timers at or below the watermark ``wm`` (ms) of a rule with rounded
        timers (:func:`timer_grain`: its expiry says nothing): each key whose deadline has
        passed loses its expired partial matches, silently (counted in :attr:`timeouts`),
        and goes when nothing else is left; a key whose full state changed is handed to
        ``after_change(self, key, state)`` (the operator's caps and timers).  Returns the
        earliest deadline (ms) scheduled here for a key kept as its events, ``inf`` if none."""
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
                if not isinstance(ks, KeyState):
                    if ks is None:
                        continue
                    if isinstance(ks, tuple):
                        if ks[0] <= wm:  # (else woken earlier and due later)
                            d = self._expire_kept(key, ks, kept_by)
                            if d < earliest:
                                earliest = d
                    elif ks.ts <= kept_by:
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
                    after_change(self, key, ks)
        return earliest

    def _expire_kept(self, key: Hashable, kept: tuple[Any, ...], kept_by: float) -> float:
        """:meth:`expire` for a key kept as ``(deadline, events…)`` whose deadline has passed:
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
