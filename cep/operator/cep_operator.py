"""The CEP operator: event time, buffering, lateness, and the dispatch of events to rules.

The path of one event (Flink's ``CepOperator`` in event time):

1. :meth:`CepOperator.on_event` — an event at or below the watermark is *late* and goes to
   the ``late`` sink; otherwise it is buffered and the watermark advances;
2. :meth:`CepOperator.advance` — buffered events the watermark has passed are released in
   (event time, arrival) order; each goes to every rule that reads its source and passes
   the rule's header ``where``; the rule's key store (:mod:`cep.operator.key_store`) steps
   the key: its clock advances to the event's time (windows prune, timeouts fire) and the
   event is matched;
3. timers — a key whose partial matches can expire is woken when the watermark passes the
   earliest expiry, so timeouts and ``not followed by … within`` matches are decided even if
   the key sees no further event.  At end of input the watermark is +∞.

A key whose state holds nothing but the start computation is dropped.  An event that cannot
start a match for a key that has no state is not looked at further (the first stage's
condition is a prefilter).  Outputs go to ``emit(sink_name, record)``.

Events that partial matches have held for a while are kept compactly
(:meth:`~cep.operator.key_store.RuleState.hold_round`): every :attr:`CepOperator.hold_after`
changed keys, the keys changed in the round before are swept.  Short-lived partial matches
are gone by then and cost nothing; only automata whose guards never read the partial match
do this.  A record's ``match`` then shows an equal copy of such an event's object rather than
the object itself.

:meth:`CepOperator.reload` swaps the rule set between two events, by rule version
(:mod:`cep.operator.versions`): a *draining* version holds no start computations, so it only
finishes the partial matches it has; when its last key is gone it is retired.
"""

from __future__ import annotations

import logging
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import repeat
from typing import Any

from sortedcontainers import SortedList

from cep.compiler.compiled import CompiledRule
from cep.event import MAX_EVENT_TIME_MS, MIN_EVENT_TIME_MS, Event
from cep.jsontext import encode_json
from cep.operator.alerting import ALERTING_STATS
from cep.operator.derived import DerivedStreams
from cep.operator.eviction import EvictionLog
from cep.operator.fastpath import Scanner, build_scanner
from cep.operator.key_store import HOLD_AFTER, Emit, HeldKeys, RuleState, StepContext
from cep.operator.records import (
    MAX_EVENTS_PER_MATCH,
    dead_letter_record,
    late_record,
)
from cep.operator.rule_index import RuleIndex
from cep.operator.time_guard import FutureGuard
from cep.operator.versions import ReloadReport, apply_rule_set
from cep.operator.watermark import NEG_INF, POS_INF, WatermarkTracker

__all__ = ["CepOperator", "RuleState", "HeldKeys", "Emit", "Accepted", "HOLD_AFTER"]

log = logging.getLogger("cep.operator")

Accepted = Callable[[dict[str, Any], int, int, int], None]
"""``accepted(obj, event time in ms, arrival number, offset)`` of :meth:`CepOperator.on_batch`:
an event that is neither late nor refused."""

HOLDERS_MIN = 4
"""Rules keyed by the same field from which on they share a set of held keys
(:meth:`CepOperator.share_holders`)."""

@dataclass(frozen=True)
class _Batch:
    """The arguments of one :meth:`CepOperator.on_batch` call (``name``: the watermark
    input)."""

    objs: list[dict[str, Any]]
    source: str
    time_field: str | None
    odd_time: Callable[[dict[str, Any], int], int | None]
    name: str
    partition: int
    offsets: list[int] | None
    accepted: Accepted | None
    partitions: list[int] | None


class CepOperator:
    """Runs a set of rules over one event-time stream.

    Args:
        rules: compiled rules (each gets its own keyed state).
        emit: ``emit(sink, record)`` receives alerts (sink from the rule), ``late`` records.
        inputs: input name → ``max_out_of_orderness`` in ms (inputs can also be added later
            through :attr:`watermarks`).
        max_partial_matches_per_key: cap per rule and key (at least 1); beyond it whole
            cohorts of partial matches are evicted from the middle of start order
            (:mod:`cep.nfa.cohorts`), counted, logged, and the key's next alerts say how
            many (``"evicted_partial_matches"``).
        future_guard: the :class:`~cep.operator.time_guard.FutureGuard` events pass before
            they may move the watermark (default: none with a bound; event times outside the
            valid domain, ``MIN_EVENT_TIME_MS`` … ``MAX_EVENT_TIME_MS``, are refused either
            way).  Refused events go to ``emit("dead_letter", …)`` and are counted in
            :attr:`refused`, not in :attr:`events_in`; they still used an arrival number.
        max_events_per_match: the most events an alert's ``match`` shows (at least 1; default
            :data:`~cep.operator.records.MAX_EVENTS_PER_MATCH`); a longer match is emitted
            cut down, with ``"events_omitted"`` (:class:`~cep.operator.records.AlertBuilder`).
            ``None``: no limit (backtests, which identify alerts by all their events).

    Raises:
        ValueError: ``max_partial_matches_per_key`` or ``max_events_per_match`` is below 1.

    The in-order fast paths (the generated loop of :mod:`cep.operator.fastpath` and the C
    line scanner's driver, :mod:`cep.operator.prescan`) work through this public protocol:
    :attr:`largest_ts` (the largest event time seen, ms; they advance it for what they pass
    over), :attr:`context` (the :class:`~cep.operator.key_store.StepContext` whose
    ``next_due`` the rule states' steps lower), :attr:`next_due` and :meth:`refresh_due` (a
    lower bound of every timer's deadline), :attr:`buffered`, :attr:`events_in`,
    :meth:`scanner`, :meth:`dispatch_one` and :meth:`dispatch_key` (an event to one rule;
    with its key, a rule state's own :meth:`~cep.operator.key_store.RuleState.step`),
    :meth:`tick_in_order` (a new largest time past a deadline), :meth:`late_in_order` and
    :meth:`admit_ahead` (the future-skew guard and the valid domain).
    """

    def __init__(
        self,
        rules: Iterable[CompiledRule],
        emit: Emit,
        inputs: dict[str, int] | None = None,
        max_partial_matches_per_key: int = 10_000,
        future_guard: FutureGuard | None = None,
        *,
        max_events_per_match: int | None = MAX_EVENTS_PER_MATCH,
    ) -> None:
        if max_partial_matches_per_key < 1:
            raise ValueError("max_partial_matches_per_key must be at least 1, got "
                             f"{max_partial_matches_per_key}")
        if max_events_per_match is not None and max_events_per_match < 1:
            raise ValueError("max_events_per_match must be at least 1, got "
                             f"{max_events_per_match}")
        self.id_parts: dict[Any, str] = {}  # the alert builders' shared cache (AlertBuilder)
        self.max_events_per_match = max_events_per_match
        self.emit = emit
        # what the rule states share with the operator (their key store's step and timers
        # read it); its next_due is a lower bound of every rule's earliest timer deadline,
        # kept by the steps and by advance, which passes over the rules while the watermark
        # is below it; -inf after timers were set from outside (state_changed)
        self.context = StepContext(emit, max_partial_matches_per_key, EvictionLog(log),
                                   self._retire)
        self._readers: tuple[list[RuleState], dict[str, list[RuleState]]] | None = None
        self.derived = DerivedStreams(self._to_readers, self._is_stream)
        self.context.derive = self.derived.derive
        self.rules = [self.rule_state(r) for r in rules]
        self.watermarks = WatermarkTracker(inputs or {"input": 0})
        self._inorder: deque[Event] = deque()
        self.largest_ts: float = NEG_INF
        """The largest event time seen (ms; -inf before the first)."""
        self._ooo: SortedList = SortedList()
        self.events_in = 0
        self.late = 0
        self.guard = future_guard if future_guard is not None else FutureGuard(None)
        self.refused = 0  # events dead-lettered here: bad or far-future event times
        # counters of rule versions that are gone (drained, changed away, removed), by rule
        # name: [matches, timeouts, evictions, truncated]; keeps totals monotonic across
        # reloads
        self.retired: dict[str, list[int]] = {}
        self.dropped_partial_matches = 0
        self._scan: tuple[list[RuleState], tuple[bool, ...], tuple[str, bool, bool, bool],
                          Scanner] | None = None
        self._rule_index: tuple[list[RuleState], RuleIndex] | None = None
        self.hold_after = HOLD_AFTER
        self._holders: list[HeldKeys] = []

    @property
    def cap(self) -> int:
        """The most partial matches per rule and key (``max_partial_matches_per_key``)."""
        return self.context.cap

    @property
    def eviction_log(self) -> EvictionLog:
        """Where evictions are counted and logged (rate-limited per rule)."""
        return self.context.eviction_log

    @eviction_log.setter
    def eviction_log(self, value: EvictionLog) -> None:
        self.context.eviction_log = value

    @property
    def next_due(self) -> float:
        """A lower bound of every rule's earliest timer deadline (ms; stale timers count)."""
        return self.context.next_due

    @next_due.setter
    def next_due(self, value: float) -> None:
        self.context.next_due = value

    @property
    def hold_after(self) -> int | None:
        """Changed keys per round of holding events compactly
        (:meth:`~cep.operator.key_store.RuleState.hold_round`; default
        :data:`HOLD_AFTER`): each round holds the events of the keys changed in the round
        before compactly.  ``None``: events are never held, and the ``match`` lists of the
        records hold the very objects that arrived (for callers that find them by identity);
        otherwise an event held compactly appears as an equal copy.  Setting a number below 1
        raises :class:`ValueError`."""
        return self._hold_after

    @hold_after.setter
    def hold_after(self, n: int | None) -> None:
        if n is not None and n < 1:
            raise ValueError(f"hold_after must be at least 1, not {n}")
        self._hold_after = n
        self.context.holding = n is not None
        self.context.hold_at = HOLD_AFTER if n is None else n

    # ------------------------------------------------------------------ input

    @property
    def buffered(self) -> bool:
        """Whether events wait in the buffer for the watermark (then no fast path applies)."""
        return bool(self._inorder or self._ooo)

    @property
    def watermark(self) -> float:
        return self.watermarks.current

    @property
    def paced(self) -> bool:
        """Whether the watermark is right below the largest event time seen (ms), as
        :meth:`on_event` keeps it for a sole input in order: only then do the in-order fast
        paths, which find an event late by the largest time, decide as :meth:`on_event`
        does.  (A shuffle task's merger moves its watermark past the largest time.)"""
        return self.watermarks.current == self.largest_ts - 1

    def on_event(self, ev: Event, input_name: str | None = None) -> None:
        """Accept one decoded event; may release buffered events and fire timers.

        In-order fast path: when nothing is buffered and the event sits right above the new
        watermark (``ts == watermark + 1``, as every in-order event does with
        ``max_out_of_orderness`` 0), it is matched at once instead of waiting in the buffer
        for the next larger event time.  The outputs and their order are the same: timers up
        to the new watermark fire first, as ``advance`` would before buffering it, and events
        of one event time are still matched in arrival order before any timer above them.
        """
        self.events_in += 1
        ts = ev.ts
        guard = self.guard  # (the guard's limit, inline: a comparison, not a call, per event)
        if ((not MIN_EVENT_TIME_MS <= ts <= guard.cap or ts - self.largest_ts > guard.skew)
                and not self._admit(ev, ts)):
            return
        wm = self.watermarks.current
        if ts <= wm:
            self.late += 1
            self.emit("late", late_record(ev, wm))
            return
        new_wm = self.watermarks.observe(input_name or ev.source, ts)
        if ts >= self.largest_ts:
            if ts == new_wm + 1 and not self._inorder and not self._ooo:
                self.largest_ts = ts
                if new_wm > wm:
                    self.advance(new_wm)
                self.dispatch(ev)
                return
            self._inorder.append(ev)
            self.largest_ts = ts
        else:
            self._ooo.add((ts, ev.seq, ev))
        if new_wm > wm:
            self.advance(new_wm)

    def on_batch(
        self,
        objs: list[dict[str, Any]],
        source: str,
        time_field: str | None,
        seq: int,
        offset: int,
        odd_time: Callable[[dict[str, Any], int], int | None],
        *,
        input_name: str | None = None,
        partition: int = -1,
        offsets: list[int] | None = None,
        accepted: Accepted | None = None,
        partitions: list[int] | None = None,
    ) -> tuple[int, int]:
        """Accept decoded objects in arrival order: ``objs[i]`` is line ``offset + 1 + i``
        of ``source`` and gets arrival number ``seq + 1 + …``; its event time is the
        int ``time_field`` (ms) or, otherwise (and always when ``time_field`` is None),
        ``odd_time(obj, line)`` (``None``: the object was routed as a dead letter and is
        skipped).  Returns the last ``(seq, offset)`` used.

        Kafka messages of one partition: ``offsets`` gives each object's offset (increasing;
        ``offset`` is then ignored and the last offset used is returned), ``partition`` the
        partition, ``input_name`` the watermark input (default ``source``); an int event time
        outside the valid domain goes to ``odd_time`` too, as decoding one message does.
        ``accepted(obj, event time, arrival number, offset)`` is called for each event that
        is neither late nor refused, before it is matched (a Kafka source task ships those).
        ``partitions`` (with ``offsets``; a shuffle task's merged stream of several source
        partitions) gives each object's partition instead of ``partition``; the offsets need
        not increase then.

        Same outputs as calling :meth:`on_event` for each object; with one input of
        ``max_out_of_orderness`` 0 it runs the generated loop of :mod:`cep.operator.fastpath`.
        """
        batch = _Batch(objs, source, time_field, odd_time,
                       source if input_name is None else input_name, partition, offsets,
                       accepted, partitions)
        start = 0
        while start < len(objs):
            # (a merged stream resumes after a stop by position, which the loop does not
            # report: while a version drains, and so the loop can stop, it goes event by
            # event)
            if (self.buffered or not self.watermarks.is_sole_in_order(batch.name)
                    or partitions is not None and any(rs.draining for rs in self.rules)):
                return self._batch_slow(batch, start, seq, offset)
            if not self.paced:  # one event the usual way paces the watermark again
                seq, offset = self._batch_slow(batch, start, seq, offset, start + 1)
                start += 1
                continue
            seq, offset, start = self._batch_fast(batch, start, seq, offset)
        return seq, offset

    def _batch_fast(self, b: _Batch, start: int, seq: int, offset: int
                    ) -> tuple[int, int, int]:
        """:meth:`on_batch`'s generated loop over ``b``'s objects from ``start`` on; returns
        the last ``(seq, offset)`` and where to go on (the end unless the loop stopped)."""
        scan = self.scanner(b.source, b.offsets is not None, b.accepted is not None,
                            b.partitions is not None)
        seq0, off0, n = seq, offset, len(b.objs)
        objs, offsets = b.objs, b.offsets
        part = objs if start == 0 else objs[start:]
        offs = None if offsets is None else offsets if start == 0 else offsets[start:]
        pids = (None if b.partitions is None else
                b.partitions if start == 0 else b.partitions[start:])
        seq, offset, last, stopped = scan(part, self, self.rules, b.source, b.time_field, seq,
                                          offset, self.largest_ts, b.odd_time, None,
                                          b.partition, offs, b.name, b.accepted, pids)
        if offsets is None:
            start += offset - off0
        elif pids is None and stopped:
            start = bisect_right(offsets, offset)
        else:
            start = n  # (a merged stream never stops: see on_batch)
        self.events_in += seq - seq0
        self.largest_ts = last
        if last > NEG_INF:
            self.watermarks.observe(b.name, last)  # type: ignore[arg-type]
        return seq, offset, start

    def _batch_slow(self, b: _Batch, start: int, seq: int, offset: int,
                    end: int | None = None) -> tuple[int, int]:
        """:meth:`on_batch` event by event for ``b``'s objects from ``start`` to ``end``
        (default: the last)."""
        on_event = self.on_event
        source, time_field, odd_time, name, accepted = (b.source, b.time_field, b.odd_time,
                                                        b.name, b.accepted)
        part = b.objs[start:end] if start or end is not None else b.objs
        if b.offsets is None:
            for d in part:
                offset += 1
                ts = d.get(time_field) if time_field is not None else None
                if type(ts) is not int:
                    ts = odd_time(d, offset)
                    if ts is None:
                        continue
                seq += 1
                if accepted is None:
                    on_event(Event(ts, seq, d, source, offset), name)
                else:
                    self._one(Event(ts, seq, d, source, offset), name, accepted)
            return seq, offset
        lo, hi = MIN_EVENT_TIME_MS, MAX_EVENT_TIME_MS
        pids = repeat(b.partition) if b.partitions is None else b.partitions[start:end]
        for d, offset, pid in zip(part, b.offsets[start:end], pids, strict=False):
            ts = d.get(time_field) if time_field is not None else None
            if type(ts) is not int or not lo <= ts <= hi:
                ts = odd_time(d, offset)
                if ts is None:
                    continue
            seq += 1
            if accepted is None:
                on_event(Event(ts, seq, d, source, offset, pid), name)
            else:
                self._one(Event(ts, seq, d, source, offset, pid), name, accepted)
        return seq, offset

    def _one(self, ev: Event, name: str, accepted: Accepted) -> None:
        """:meth:`on_event`, telling ``accepted`` when the event was neither late nor
        refused."""
        dropped = self.late + self.refused
        self.on_event(ev, name)
        if self.late + self.refused == dropped:
            accepted(ev.data, ev.ts, ev.seq, ev.offset)

    def scanner(self, source: str, offsets: bool = False, accepting: bool = False,
                partitions: bool = False) -> Scanner:
        """The generated loop of :func:`~cep.operator.fastpath.build_scanner` for the rule
        set as it is now, reading ``source`` (``offsets``: Kafka messages; ``accepting``:
        telling which events were accepted; ``partitions``: a partition per message), built
        once and cached until the rules change."""
        rules = self.rules
        flags = tuple(rs.draining for rs in rules)
        cached = self._scan
        shape = (source, offsets, accepting, partitions)
        if (cached is not None and cached[0] is rules and cached[1] == flags
                and cached[2] == shape):
            return cached[3]
        scan = build_scanner(rules, source, offsets, accepting, self.rule_index(), partitions)
        self._scan = (rules, flags, shape, scan)
        return scan

    def refresh_due(self) -> float:
        """Set :attr:`next_due` to the earliest timer (ms) over every rule, exactly (stale
        timers count), and return it; ``inf`` when no timer is scheduled."""
        due = POS_INF
        for rs in self.rules:
            if rs.timers and rs.timers[0] < due:
                due = rs.timers[0]
        self.context.next_due = due
        return due

    def state_changed(self) -> None:
        """The rule list or the rules' keyed state changed other than by matching (a reload,
        a checkpoint restore): the next :meth:`advance` looks at every rule's timers again,
        and the rules no longer share held keys until :meth:`share_holders` is called again
        (the file scanner does, for the program it builds)."""
        self.next_due = NEG_INF
        self.unshare_holders()

    def unshare_holders(self) -> None:
        """No rule shares held keys any more (:meth:`share_holders`)."""
        for rs in self.rules:
            rs.holders = None
        self._holders = []

    @property
    def holder_groups(self) -> list[HeldKeys]:
        """The shared sets of held keys and their rules (:meth:`share_holders`); a new list
        object whenever sharing is set up or given up."""
        return self._holders

    def share_holders(self) -> None:
        """Give the active rules keyed by the same one field, when there are at least
        :data:`HOLDERS_MIN` of them, one set of the keys any of them holds state for
        (:attr:`RuleState.holders`): the file scanner then looks a key up once, not once per
        rule, to find that none holds it.  The set is kept a superset: a key joins it when a
        rule's state for it is made, and it is rebuilt from the rules' keys when it has grown
        far past them (:class:`HeldKeys`).  Until :meth:`state_changed` or
        :meth:`unshare_holders`."""
        groups: dict[tuple[str, ...], list[RuleState]] = {}
        for rs in self.rules:
            rs.holders = None
            paths = rs.rule.key_paths
            if not rs.draining and paths is not None and len(paths) == 1:
                groups.setdefault(paths[0], []).append(rs)
        self._holders = [HeldKeys(group) for group in groups.values()
                         if len(group) >= HOLDERS_MIN]
        for held in self._holders:
            for rs in held.rules:
                rs.holders = held

    def tick_in_order(self, ts: int, input_name: str) -> float:
        """The fast path saw a new largest event time ``ts`` (ms) of watermark input
        ``input_name`` that passes a timer's deadline; returns the next deadline."""
        wm = self.watermarks.current
        new_wm = self.watermarks.observe(input_name, ts)
        if new_wm > wm:
            self.advance(new_wm)
            due = self.context.next_due
            if due > new_wm:
                return due  # advance looked at every rule's timers
        return self.refresh_due()

    def admit_ahead(self, ts: int, data: dict[str, Any], source: str, offset: int,
                    last: float, partition: int = -1) -> bool:
        """The fast path saw an event time above :meth:`FutureGuard.limit` of ``last`` (the
        largest event time accepted): whether it may go on (else it was dead-lettered)."""
        self.largest_ts = last
        return self._admit(Event(ts, 0, data, source, offset, partition), ts)

    def _admit(self, ev: Event, ts: int) -> bool:
        """Whether an event time above the guard's limit is accepted; a refused event goes
        to the dead-letter output as ``bad_event_time`` (outside the valid domain) or
        ``future_event_time`` (:mod:`cep.operator.time_guard`)."""
        if not MIN_EVENT_TIME_MS <= ts <= MAX_EVENT_TIME_MS:
            self._refuse(ev, "bad_event_time", f"event time {ts} is outside the valid range")
            return False
        if self.guard.admits(ts, self.largest_ts, ev.source, ev.partition, ev.offset):
            return True
        self._refuse(ev, "future_event_time", self.guard.reason(ts, self.largest_ts))
        return False

    def _refuse(self, ev: Event, reason: str, error: str) -> None:
        """Send ``ev`` to the dead-letter output: it is counted in :attr:`refused` and no
        longer in :attr:`events_in` (every path counts an event in first)."""
        self.refused += 1
        self.events_in -= 1
        line = ev.offset if ev.partition < 0 and ev.offset >= 0 else None
        raw = encode_json(ev.data, newline=False).decode()
        rec = dead_letter_record(reason, error, ev.source, raw, line=line)
        if ev.partition >= 0:
            rec["partition"] = ev.partition
            rec["offset"] = ev.offset
        self.emit("dead_letter", rec)

    def late_in_order(self, ev: Event, last: int, input_name: str | None = None) -> None:
        """The fast path saw an event below the largest event time ``last`` of watermark
        input ``input_name`` (default ``ev.source``): it is late."""
        self.watermarks.observe(input_name or ev.source, last)
        self.late += 1
        self.emit("late", late_record(ev, self.watermarks.current))

    def finish(self) -> None:
        """End of a finite input: the watermark becomes +∞; everything pending is decided."""
        self.advance(self.watermarks.finish())

    def advance(self, wm: float) -> None:
        """Release buffered events with event time ≤ ``wm`` in order, then fire timers ≤ ``wm``."""
        inorder, ooo = self._inorder, self._ooo
        dispatch = self.dispatch
        while True:
            if inorder and inorder[0].ts <= wm:
                if ooo:
                    head = ooo[0]
                    first = inorder[0]
                    if (head[0], head[1]) < (first.ts, first.seq):
                        ooo.pop(0)
                        dispatch(head[2])
                        continue
                dispatch(inorder.popleft())
            elif ooo and ooo[0][0] <= wm:
                dispatch(ooo.pop(0)[2])
            else:
                break
        ctx = self.context
        if wm < ctx.next_due:
            return  # no timer is due (``next_due`` is a lower bound of every rule's earliest)
        due = POS_INF
        for rs in self.rules:
            timers = rs.timers
            if timers:
                if timers[0] <= wm:
                    rs.fire_timers(wm)  # (schedules only this rule's timers)
                    if not timers:
                        continue
                if timers[0] < due:
                    due = timers[0]
        ctx.next_due = due

    # ------------------------------------------------------------------ per event

    def dispatch(self, ev: Event) -> None:
        """``ev`` to every rule it can concern (:meth:`rule_index`): the rules that are not
        indexed, in rule order, then the indexed rules whose requirement it meets."""
        index = self.rule_index()
        dispatch_one = self.dispatch_one
        # A rule that holds no key and whose start test fails would do nothing with ``ev``
        # (see RuleIndex.gated_candidates): one call of the test instead of the whole path.
        for rs, start in index.always_gated:
            if start is None or rs.keys or start(ev, None):
                dispatch_one(rs, ev)
        if index.indexed:
            for rs, start in index.gated_candidates(ev.data, ev):
                if start is None or rs.keys or start(ev, None):
                    dispatch_one(rs, ev)

    def rule_index(self) -> RuleIndex:
        """The :class:`~cep.operator.rule_index.RuleIndex` of the current rule list (made
        again when the list is rebound: reload, retirement, restore)."""
        cached = self._rule_index
        if cached is None or cached[0] is not self.rules:
            cached = self._rule_index = (self.rules, RuleIndex(self.rules))
        return cached[1]

    def dispatch_one(self, rs: RuleState, ev: Event) -> None:
        """One rule's part of :meth:`dispatch`: source, header ``where``, key; then the rule's
        :meth:`~cep.operator.key_store.RuleState.offer`."""
        rule = rs.rule
        if rule.sources is not None and ev.source not in rule.sources:
            return
        if rule.header_filter is not None and not rule.header_filter(ev):
            return
        rs.offer(ev, rule.key_fn(ev.data))

    def dispatch_key(self, rs: RuleState, ev: Event, key: Any, starts: int = 0) -> None:
        """:meth:`dispatch_one` for an event the rule reads, with its key (the value of the
        rule's ``key_fn``; ``starts``: the caller knows the first stage takes it):
        :meth:`~cep.operator.key_store.RuleState.offer`."""
        rs.offer(ev, key, starts)

    # ------------------------------------------------------------------ derived streams

    def stream_readers(self) -> dict[str, list[RuleState]]:
        """Each derived stream of the current rule list (``emit to stream``) → the rule
        states that read it, in rule order (made again when the list is rebound)."""
        cached = self._readers
        if cached is None or cached[0] is not self.rules:
            rules = self.rules
            streams = {rs.rule.sink for rs in rules if rs.rule.stream}
            readers: dict[str, list[RuleState]] = {s: [] for s in streams}
            for rs in rules:
                for src in rs.rule.sources or ():
                    if src in readers:
                        readers[src].append(rs)
            cached = self._readers = (rules, readers)
        return cached[1]

    def _is_stream(self, source: str) -> bool:
        return source in self.stream_readers()

    def _to_readers(self, stream: str, ev: Event) -> None:
        """A derived event (:mod:`cep.operator.derived`) to the rules reading its stream."""
        dispatch_one = self.dispatch_one
        for rs in self.stream_readers().get(stream, ()):
            dispatch_one(rs, ev)

    # ------------------------------------------------------------------ rule versions

    def rule_state(self, rule: CompiledRule) -> RuleState:
        """A new, empty :class:`RuleState` for ``rule`` in this operator: its alert builder
        shares the operator's id cache and record limit.  Every rule state of the operator is
        made here (construction, reload, checkpoint restore)."""
        return RuleState(rule, self.context, self.id_parts, self.max_events_per_match)

    def reload(self, rules: Iterable[CompiledRule]) -> ReloadReport:
        """Replace the rule set between two events: unchanged rule versions keep their state,
        a changed rule's old version drains (finishes the partial matches it holds, starts no
        new ones), added rules start empty, removed rules' state is dropped.  Returns the
        :class:`~cep.operator.versions.ReloadReport`."""
        self.rules, report = apply_rule_set(self.rules, rules, self.rule_state,
                                            self.retire_counters, self.events_in)
        self.state_changed()
        self.dropped_partial_matches += report.partial_dropped
        return report

    def retire_counters(self, rs: RuleState) -> None:
        """Fold the counters of a rule version that is going away into :attr:`retired`."""
        acc = self.retired.setdefault(rs.rule.name, [0, 0, 0, 0, 0])
        acc[0] += rs.matches
        acc[1] += rs.timeouts
        acc[2] += rs.evictions
        acc[3] += rs.alerts.truncated
        acc[4] += rs.alerting.stats()["suppressed"] if rs.alerting is not None else 0

    def _retire(self, rs: RuleState) -> None:
        """A draining version holds nothing any more: it disappears.  The rule list is
        rebound, never mutated, so loops over the old list finish safely."""
        self.rules = [r for r in self.rules if r is not rs]
        self.retire_counters(rs)
        log.info("rule %s: version %s finished draining", rs.rule.name, rs.rule.version)

    # ------------------------------------------------------------------ checkpoints

    def buffer_state(self) -> tuple[list[Event], float]:
        """Buffered, not yet released events in release order (event time, arrival), and the
        largest event time (ms) appended in order so far.  For checkpoints."""
        events = list(self._inorder) + [e for _, _, e in self._ooo]
        events.sort(key=lambda e: (e.ts, e.seq))
        return events, self.largest_ts

    def restore_buffer(self, events: list[Event], last_ts: float) -> None:
        """Replace the buffer with ``events`` (in release order) and the in-order mark
        ``last_ts`` (ms), as returned by :meth:`buffer_state`.  For checkpoint restore."""
        self._inorder = deque(events)
        self._ooo = SortedList()
        self.largest_ts = last_ts

    # ------------------------------------------------------------------ introspection

    def stats(self) -> dict[str, Any]:
        """Counters for summaries and metrics.  ``rules`` maps each active rule's name to its
        version, severity, ``keys`` and ``partial_matches`` (draining versions of the rule
        included) and cumulative ``matches``, ``timeouts``, ``evictions``, ``truncated``
        (records cut down to ``max_events_per_match``; over every version the operator
        ran), and for rules with a window or ``suppress for`` (0 otherwise) ``suppressed``
        (cumulative), ``suppression_groups``, ``window_keys``, ``window_events``,
        ``window_evictions`` (:meth:`Alerting.stats`); ``draining`` lists each draining
        version with its state sizes."""
        rules: dict[str, dict[str, Any]] = {}
        draining: list[dict[str, Any]] = []
        for rs in self.rules:
            if not rs.draining:
                rules[rs.rule.name] = {"version": rs.rule.version, "severity": rs.rule.severity,
                                       "matches": 0, "timeouts": 0, "evictions": 0,
                                       "truncated": 0, "keys": 0, "partial_matches": 0,
                                       **dict.fromkeys(ALERTING_STATS, 0)}
        for name, (matches, timeouts, evictions, truncated, suppressed) in self.retired.items():
            entry = rules.get(name)
            if entry is not None:
                entry["matches"] += matches
                entry["timeouts"] += timeouts
                entry["evictions"] += evictions
                entry["truncated"] += truncated
                entry["suppressed"] += suppressed
        for rs in self.rules:
            partial = rs.partial_matches()
            entry = rules.get(rs.rule.name)
            if entry is not None:
                entry["matches"] += rs.matches
                entry["timeouts"] += rs.timeouts
                entry["evictions"] += rs.evictions
                entry["truncated"] += rs.alerts.truncated
                entry["keys"] += len(rs.keys)
                entry["partial_matches"] += partial
                if rs.alerting is not None:
                    for k, v in rs.alerting.stats().items():
                        entry[k] += v
            if rs.draining:
                draining.append({"rule": rs.rule.name, "version": rs.rule.version,
                                 "keys": len(rs.keys), "partial_matches": partial})
        return {
            "events_in": self.events_in,
            "late": self.late,
            "refused": self.refused,
            "watermark": self.watermarks.current,
            "rules": rules,
            "draining": draining,
            "dropped_partial_matches": self.dropped_partial_matches,
        }
