"""Output records: alerts, timed-out partial matches, late events, dead letters.

Every record is a plain ``dict`` ready for JSON; the shapes are the contract's *Outputs*.

A match of more than ``max_events_per_match`` events (a looping stage without a skip strategy
makes one alert per event, each holding every event so far: output quadratic in the input)
is still emitted, its ``match`` lists cut down (:func:`truncate_match`) and the events left
out counted per stage in ``"events_omitted"``.
"""

from __future__ import annotations

import hashlib
import sys
from typing import Any

from cep.compiler.compiled import CompiledRule, EmitFn
from cep.event import Event
from cep.nfa.pattern import PartialMatchNode

__all__ = ["AlertBuilder", "late_record", "dead_letter_record", "alert_id",
           "truncate_match", "MAX_EVENTS_PER_MATCH"]

MAX_EVENTS_PER_MATCH = 1_000
"""Default of the run option ``max_events_per_match``: the most events an alert's ``match``
shows (:func:`truncate_match`)."""


def alert_id(rule: CompiledRule, key_obj: dict[str, Any], events: list[Event], tag: str) -> str:
    """A deterministic id: hash of rule version, key and the matched events' source
    coordinates (source, partition, offset, event time, arrival number when there is no
    offset).  Replays and restarts produce the same id, so consumers can deduplicate.

    ``key_obj`` is the alert's ``key`` object, ``events`` the matched events in match order,
    ``tag`` ``"match"`` or ``"timeout"``.  Returns 32 hex digits (BLAKE2b, 16 bytes).
    :class:`AlertBuilder` computes the same bytes faster."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{rule.name}\x00{rule.version}\x00{tag}\x00{sorted(key_obj.items())!r}".encode())
    for ev in events:
        coord = ev.offset if ev.offset >= 0 else ev.seq
        h.update(f"\x01{ev.source}\x00{ev.partition}\x00{coord}\x00{ev.ts}".encode())
    return h.hexdigest()


class AlertBuilder:
    """The records of one rule version: matches and timed-out partial matches.

    Everything constant per rule is prepared once: the sinks, the BLAKE2b state after the
    ``name\\0version\\0tag\\0`` prefix of the alert id (the rest of the input of
    :func:`alert_id` is fed in one piece, which hashes to the same digest) and, for a key of
    one field, the ``repr`` of its name.  The chain of a match is walked once.  The id input of
    the last 1,024 or so events is remembered in ``id_parts`` (an event is often in several
    matches in a row, of one rule or of several: the rules of an operator share it); a
    compactly held event (:class:`~cep.event.HeldEvent`) is decoded once per record.  The ids
    are those :func:`alert_id` computes.

    A record of more than ``max_events`` events has its ``match`` lists cut down to that many
    (:func:`truncate_match`) and an ``"events_omitted"`` field, ``{stage: events left out}``;
    its ``start``, ``end``, ``data`` and ``alert_id`` are those of the whole match.
    ``None``: no limit.

    Attributes:
        sink: sink of match records; ``timeout_sink`` that of timed-out partial matches.
        timeouts: whether timed-out partial matches produce a record (``on timeout emit``).
        truncated: records built so far with ``"events_omitted"``.
    """

    __slots__ = ("rule", "sink", "timeout_sink", "timeouts", "truncated", "_emit",
                 "_timeout_emit", "_match_h", "_timeout_h", "_names", "_kpre", "_seen",
                 "_limit", "_meta")

    def __init__(self, rule: CompiledRule, id_parts: dict[Any, str] | None = None,
                 max_events: int | None = MAX_EVENTS_PER_MATCH) -> None:
        if max_events is not None and max_events < 1:
            raise ValueError(f"max_events_per_match must be at least 1, got {max_events}")
        self.rule = rule
        self.truncated = 0
        self._limit = sys.maxsize if max_events is None else max_events
        self.rebind(rule)
        head = f"{rule.name}\x00{rule.version}\x00"
        self._match_h = hashlib.blake2b(f"{head}match\x00".encode(), digest_size=16)
        self._timeout_h = hashlib.blake2b(f"{head}timeout\x00".encode(), digest_size=16)
        self._names = rule.key_names
        # event → its part of the id input (the same for every rule)
        self._seen: dict[Any, str] = {} if id_parts is None else id_parts
        # one key field: the key's part of the id input is ``[(name, key)]`` written by repr
        self._kpre = f"[({rule.key_names[0]!r}, " if len(rule.key_names) == 1 else ""

    def rebind(self, rule: CompiledRule) -> None:
        """Build records for ``rule`` from now on: what is not part of the rule version
        (metadata, emitted objects' own code) is taken from it; the version, hence the alert
        ids, must be the one this builder was made for."""
        self.rule = rule
        self.sink = rule.sink
        self.timeout_sink = rule.timeout_sink
        self.timeouts = rule.timeout_emit_fn is not None
        self._emit = rule.emit_fn
        self._timeout_emit = rule.timeout_emit_fn
        self._meta = rule.meta  # shared by the records of this version: never mutated

    def match(self, key: Any, node: PartialMatchNode) -> dict[str, Any]:
        """The alert record of a match ending at ``node`` (its last event) for ``key``:
        ``{"rule", "rule_version", "severity", "meta", "key", "start", "end" (event times, ms),
        "match" ({stage: [event objects]}), "data", "alert_id"}``."""
        return self._record(key, node, self._emit, self._match_h)

    def timeout(self, key: Any, node: PartialMatchNode, timeout_ts: int) -> dict[str, Any] | None:
        """The record of a partial match ending at ``node`` that timed out at ``timeout_ts``
        (ms): :meth:`match`'s fields plus ``"timed_out": True`` and ``"timeout_at"``; ``None``
        when the rule has no ``on timeout emit``."""
        if self._timeout_emit is None:
            return None
        rec = self._record(key, node, self._timeout_emit, self._timeout_h)
        rec["timed_out"] = True
        rec["timeout_at"] = timeout_ts
        return rec

    def _record(self, key: Any, node: PartialMatchNode, fn: EmitFn | None,
                base: Any) -> dict[str, Any]:
        chain = []
        at: PartialMatchNode | None = node
        while at is not None:
            chain.append(at)
            at = at.prev
        chain.reverse()
        match: dict[str, list[Any]] = {}
        by_stage: dict[str, list[Event]] = {}
        parts = []
        seen = self._seen
        if len(seen) > 1024:
            seen.clear()
        lo = hi = chain[0].event.ts
        for n in chain:
            ev = n.event
            ts = ev.ts
            if ts < lo:
                lo = ts
            elif ts > hi:
                hi = ts
            part = seen.get(ev)
            if part is None:
                off = ev.offset
                part = seen[ev] = (f"\x01{ev.source}\x00{ev.partition}\x00"
                                   f"{off if off >= 0 else ev.seq}\x00{ts}")
            parts.append(part)
            ev = ev.plain()  # (a held event decoded once per record)
            stage = n.stage
            datas = match.get(stage)
            if datas is None:
                match[stage] = [ev.data]
                if fn is not None:
                    by_stage[stage] = [ev]
            else:
                datas.append(ev.data)
                if fn is not None:
                    by_stage[stage].append(ev)
        names = self._names
        if self._kpre:
            key_obj = {names[0]: key}
            kid = f"{self._kpre}{key!r})]"
        elif names:
            key_obj = dict(zip(names, key, strict=False))
            kid = repr(sorted(key_obj.items()))
        else:
            key_obj = {}
            kid = "[]"
        h = base.copy()
        h.update((kid + "".join(parts)).encode())
        rec = {
            "rule": self.rule.name,
            "rule_version": self.rule.version,
            "severity": self.rule.severity,
            "meta": self._meta,
            "key": key_obj,
            "start": lo,
            "end": hi,
            "match": match,
            "data": fn(by_stage) if fn is not None else {},
            "alert_id": h.hexdigest(),
        }
        if len(chain) > self._limit:
            self.truncated += 1
            rec["events_omitted"] = truncate_match(match, self._limit)
        return rec


def truncate_match(match: dict[str, list[Any]], limit: int) -> dict[str, int]:
    """Cut the lists of ``match`` (stage → events) down to ``limit`` events in all, in place;
    return ``{stage: events left out}`` for each stage cut (``{}`` when there are at most
    ``limit`` events).

    The stages share ``limit`` evenly: a stage keeps all its events when it has at most the
    share, the share is the largest that fits, and what is left of ``limit`` goes one event
    each to the longer stages in stage order.  A stage cut down to ``q`` events keeps its
    first ``ceil(q / 2)`` and its last ``floor(q / 2)``: the events that began and ended
    it.  So a looping stage is cut before a stage of one event, and with ``limit`` at least
    twice the number of stages every stage keeps its first and last event."""
    sizes = [len(evs) for evs in match.values()]
    total = sum(sizes)
    if total <= limit:
        return {}
    rest, left = limit, len(sizes)
    share, extra = 0, 0
    for n in sorted(sizes):
        if n * left > rest:
            share, extra = divmod(rest, left)
            break
        rest -= n
        left -= 1
    omitted: dict[str, int] = {}
    for stage, evs in match.items():
        n = len(evs)
        if n <= share:
            continue
        q = share
        if extra:
            q += 1
            extra -= 1
        if q < n:
            head = (q + 1) // 2
            match[stage] = evs[:head] + evs[n - (q - head):]
            omitted[stage] = n - q
    return omitted


def late_record(ev: Event, watermark: float) -> dict[str, Any]:
    """``{"reason": "late", "source", "watermark", "event"}`` for an event at or below the
    watermark on arrival."""
    rec: dict[str, Any] = {
        "reason": "late",
        "source": ev.source,
        "watermark": int(watermark),
        "event_time": ev.ts,
        "event": ev.data,
    }
    if ev.partition >= 0:
        rec["partition"] = ev.partition
    if ev.offset >= 0:
        rec["offset"] = ev.offset
    return rec


def dead_letter_record(
    reason: str,
    error: str,
    source: str,
    raw: str,
    *,
    line: int | None = None,
    topic: str | None = None,
    partition: int | None = None,
    offset: int | None = None,
) -> dict[str, Any]:
    """``{"reason", "error", "source", "raw"}`` plus the line number (files) or Kafka topic,
    partition and offset where there is one."""
    rec: dict[str, Any] = {"reason": reason, "error": error, "source": source, "raw": raw}
    if line is not None:
        rec["line"] = line
    if topic is not None:
        rec["topic"] = topic
        rec["partition"] = partition
        rec["offset"] = offset
    return rec
