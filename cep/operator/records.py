"""Output records: alerts, timed-out partial matches, late events, dead letters.

Every record is a plain ``dict`` ready for JSON; the shapes are the contract's *Outputs*.
"""

from __future__ import annotations

import hashlib
from typing import Any

from cep.compiler.compiled import CompiledRule
from cep.event import Event
from cep.nfa.pattern import PartialMatchNode

__all__ = ["alert_record", "late_record", "dead_letter_record", "alert_id"]


def _chain(node: PartialMatchNode | None) -> list[PartialMatchNode]:
    out = []
    while node is not None:
        out.append(node)
        node = node.prev
    out.reverse()
    return out


def alert_id(rule: CompiledRule, key_obj: dict[str, Any], events: list[Event], tag: str) -> str:
    """A deterministic id: hash of rule version, key and the matched events' source
    coordinates (source, partition, offset, event time, arrival number when there is no
    offset).  Replays and restarts produce the same id, so consumers can deduplicate."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{rule.name}\x00{rule.version}\x00{tag}\x00{sorted(key_obj.items())!r}".encode())
    for ev in events:
        coord = ev.offset if ev.offset >= 0 else ev.seq
        h.update(f"\x01{ev.source}\x00{ev.partition}\x00{coord}\x00{ev.ts}".encode())
    return h.hexdigest()


def alert_record(
    rule: CompiledRule,
    key: Any,
    node: PartialMatchNode,
    timed_out: bool = False,
    timeout_ts: int | None = None,
) -> tuple[str, dict[str, Any]] | None:
    """Build ``(sink, record)`` for a match (or a timed-out partial match) ending at ``node``.

    ``match`` maps each stage to its events' original objects in match order.  Returns
    ``None`` for a timeout when the rule has no ``on timeout emit``.
    """
    if timed_out and rule.timeout_emit_fn is None:
        return None
    chain = _chain(node)
    by_stage: dict[str, list[Event]] = {}
    for n in chain:
        by_stage.setdefault(n.stage, []).append(n.event)
    events = [n.event for n in chain]
    key_obj = rule.key_object(key)
    fn = rule.timeout_emit_fn if timed_out else rule.emit_fn
    data = fn(by_stage) if fn is not None else {}
    rec: dict[str, Any] = {
        "rule": rule.name,
        "rule_version": rule.version,
        "severity": rule.severity,
        "key": key_obj,
        "start": min(e.ts for e in events),
        "end": max(e.ts for e in events),
        "match": {stage: [e.data for e in evs] for stage, evs in by_stage.items()},
        "data": data,
        "alert_id": alert_id(rule, key_obj, events, "timeout" if timed_out else "match"),
    }
    if timed_out:
        rec["timed_out"] = True
        rec["timeout_at"] = timeout_ts
        return rule.timeout_sink, rec
    return rule.sink, rec


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
