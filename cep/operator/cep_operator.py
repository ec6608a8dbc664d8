"""The CEP operator: event time, buffering, lateness, per-key state, timers and caps.

The path of one event (Flink's ``CepOperator`` in event time):

1. :meth:`CepOperator.on_event` — an event at or below the watermark is *late* and goes to
   the ``late`` sink; otherwise it is buffered and the watermark advances;
2. :meth:`CepOperator.advance` — buffered events the watermark has passed are released in
   (event time, arrival) order; each goes to every rule that reads its source and passes
   the rule's header ``where``; the rule's key selects the key's matcher state; the key's
   clock advances to the event's time (windows prune, timeouts fire) and the event is matched;
3. timers — a key whose partial matches can expire is woken when the watermark passes the
   earliest expiry, so timeouts and ``not followed by … within`` matches are decided even if
   the key sees no further event.  At end of input the watermark is +∞.

A key whose state holds nothing but the start computation is dropped.  An event that cannot
start a match for a key that has no state is not looked at further (the first stage's
condition is a prefilter).  Outputs go to ``emit(sink_name, record)``.
"""

from __future__ import annotations

import heapq
import logging
from collections import deque
from collections.abc import Callable, Hashable, Iterable
from typing import Any

import orjson
from sortedcontainers import SortedList

from cep.compiler.compiled import CompiledRule
from cep.event import Event
from cep.nfa.matcher import KeyState, advance_time, is_idle, new_key_state, next_deadline, process
from cep.operator.records import alert_record, late_record
from cep.operator.watermark import NEG_INF, POS_INF, WatermarkTracker

__all__ = ["CepOperator", "RuleState", "Emit"]

log = logging.getLogger("cep.operator")

Emit = Callable[[str, dict[str, Any]], None]


class RuleState:
    """A compiled rule and its keyed matcher state.  ``timers`` holds ``(deadline_ms, n,
    key)``; ``deadline[key]`` is the earliest timer scheduled for that key."""

    __slots__ = ("rule", "keys", "timers", "deadline", "counter", "draining",
                 "matches", "timeouts", "evictions")

    def __init__(self, rule: CompiledRule) -> None:
        self.rule = rule
        self.keys: dict[Hashable, KeyState] = {}
        self.timers: list[tuple[float, int, Hashable]] = []
        self.deadline: dict[Hashable, float] = {}
        self.counter = 0
        self.draining = False
        self.matches = 0
        self.timeouts = 0
        self.evictions = 0

    def partial_matches(self) -> int:
        """Live partial matches over all keys (start computations excluded)."""
        return sum(len(ks.partial.a) - 1 for ks in self.keys.values())


class CepOperator:
    """Runs a set of rules over one event-time stream.

    Args:
        rules: compiled rules (each gets its own keyed state).
        emit: ``emit(sink, record)`` receives alerts (sink from the rule), ``late`` records.
        inputs: input name → ``max_out_of_orderness`` in ms (inputs can also be added later
            through :attr:`watermarks`).
        max_partial_matches_per_key: cap per rule and key; the oldest partial matches beyond
            it are evicted, counted and logged.
    """

    def __init__(
        self,
        rules: Iterable[CompiledRule],
        emit: Emit,
        inputs: dict[str, int] | None = None,
        max_partial_matches_per_key: int = 10_000,
    ) -> None:
        self.rules = [RuleState(r) for r in rules]
        self.emit = emit
        self.watermarks = WatermarkTracker(inputs or {"input": 0})
        self.cap = max_partial_matches_per_key
        self._inorder: deque[Event] = deque()
        self._last_ts: float = NEG_INF
        self._ooo: SortedList = SortedList()
        self.events_in = 0
        self.late = 0

    # ------------------------------------------------------------------ input

    @property
    def watermark(self) -> float:
        return self.watermarks.current

    def on_event(self, ev: Event, input_name: str | None = None) -> None:
        """Accept one decoded event; may release buffered events and fire timers."""
        self.events_in += 1
        wm = self.watermarks.current
        if ev.ts <= wm:
            self.late += 1
            self.emit("late", late_record(ev, wm))
            return
        if ev.ts >= self._last_ts:
            self._inorder.append(ev)
            self._last_ts = ev.ts
        else:
            self._ooo.add((ev.ts, ev.seq, ev))
        new_wm = self.watermarks.observe(input_name or ev.source, ev.ts)
        if new_wm > wm:
            self.advance(new_wm)

    def finish(self) -> None:
        """End of a finite input: the watermark becomes +∞; everything pending is decided."""
        self.advance(self.watermarks.finish())

    def advance(self, wm: float) -> None:
        """Release buffered events with event time ≤ ``wm`` in order, then fire timers ≤ ``wm``."""
        inorder, ooo = self._inorder, self._ooo
        dispatch = self._dispatch
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
        for rs in self.rules:
            if rs.timers and rs.timers[0][0] <= wm:
                self._fire_timers(rs, wm)

    # ------------------------------------------------------------------ per event

    def _dispatch(self, ev: Event) -> None:
        for rs in self.rules:
            rule = rs.rule
            if rule.sources is not None and ev.source not in rule.sources:
                continue
            if rule.header_filter is not None and not rule.header_filter(ev):
                continue
            key = rule.key_fn(ev.data)
            try:
                ks = rs.keys.get(key)
            except TypeError:  # an unhashable key value (a list or object)
                key = orjson.dumps(key, option=orjson.OPT_SORT_KEYS).decode()
                ks = rs.keys.get(key)
            nfa = rule.nfa
            if ks is None:
                if rs.draining:
                    continue
                pre = nfa.start_prefilter
                if pre is not None and not pre.fn(ev, None):
                    continue
                ks = new_key_state(nfa)
                ks.clock = ev.ts
                rs.keys[key] = ks
            elif ks.clock < ev.ts:
                self._advance_key(rs, key, ks, ev.ts)
            if rs.draining and ks.partial.a and len(ks.partial.a) == 1 and not ks.completed.a:
                # a draining version starts no new partial matches
                del rs.keys[key]
                continue
            matches = process(nfa, ks, ev)
            if rs.draining:
                ks.partial.remove_if(lambda c: c.node is None)
            for node in matches:
                self._emit_match(rs, key, node)
            self._after_change(rs, key, ks)

    def _after_change(self, rs: RuleState, key: Hashable, ks: KeyState) -> None:
        if len(ks.partial.a) > self.cap + 1:
            self._evict(rs, key, ks)
        if is_idle(ks) or (rs.draining and not ks.partial.a and not ks.completed.a):
            del rs.keys[key]
            rs.deadline.pop(key, None)
            return
        d = next_deadline(rs.rule.nfa, ks)
        if d < rs.deadline.get(key, POS_INF):
            rs.deadline[key] = d
            rs.counter += 1
            heapq.heappush(rs.timers, (d, rs.counter, key))

    def _advance_key(self, rs: RuleState, key: Hashable, ks: KeyState, now: float) -> None:
        matches, timeouts = advance_time(rs.rule.nfa, ks, now)
        for node in matches:
            self._emit_match(rs, key, node)
        for node, ts in timeouts:
            rs.timeouts += 1
            out = alert_record(rs.rule, key, node, timed_out=True, timeout_ts=ts)
            if out is not None:
                self.emit(out[0], out[1])

    def _emit_match(self, rs: RuleState, key: Hashable, node: Any) -> None:
        rs.matches += 1
        out = alert_record(rs.rule, key, node)
        if out is not None:
            self.emit(out[0], out[1])

    def _fire_timers(self, rs: RuleState, wm: float) -> None:
        timers = rs.timers
        while timers and timers[0][0] <= wm:
            d, _, key = heapq.heappop(timers)
            if rs.deadline.get(key) != d:
                continue  # superseded
            del rs.deadline[key]
            ks = rs.keys.get(key)
            if ks is None:
                continue
            self._advance_key(rs, key, ks, wm)
            self._after_change(rs, key, ks)

    def _evict(self, rs: RuleState, key: Hashable, ks: KeyState) -> None:
        over = len(ks.partial.a) - 1 - self.cap
        victims = sorted((c for c in ks.partial.a if c.node is not None), key=lambda c: c.ck)
        doomed = {id(c) for c in victims[:over]}
        ks.partial.remove_if(lambda c: id(c) in doomed)
        rs.evictions += over
        log.warning(
            "rule %s key %r: %d partial matches evicted (max_partial_matches_per_key=%d)",
            rs.rule.name, key, over, self.cap,
        )

    # ------------------------------------------------------------------ checkpoints

    def buffer_state(self) -> tuple[list[Event], float]:
        """Buffered, not yet released events in release order (event time, arrival), and the
        largest event time (ms) appended in order so far.  For checkpoints."""
        events = list(self._inorder) + [e for _, _, e in self._ooo]
        events.sort(key=lambda e: (e.ts, e.seq))
        return events, self._last_ts

    def restore_buffer(self, events: list[Event], last_ts: float) -> None:
        """Replace the buffer with ``events`` (in release order) and the in-order mark
        ``last_ts`` (ms), as returned by :meth:`buffer_state`.  For checkpoint restore."""
        self._inorder = deque(events)
        self._ooo = SortedList()
        self._last_ts = last_ts

    # ------------------------------------------------------------------ introspection

    def stats(self) -> dict[str, Any]:
        """Counters for summaries and metrics."""
        return {
            "events_in": self.events_in,
            "late": self.late,
            "watermark": self.watermarks.current,
            "rules": {
                rs.rule.name: {
                    "version": rs.rule.version,
                    "matches": rs.matches,
                    "timeouts": rs.timeouts,
                    "keys": len(rs.keys),
                    "partial_matches": rs.partial_matches(),
                    "evictions": rs.evictions,
                }
                for rs in self.rules
            },
        }
