"""The records of a repartition topic, and how a shuffle task turns them back into an ordered,
event-timed stream (Flink's watermark propagation over a ``keyBy`` channel, made
deterministic).

**Records.**  An upstream (source) task writes two kinds of record into partition ``q`` of a
repartition topic, inside its transaction:

* an *event*: the source message's value, unchanged (the downstream decodes it with the same
  decoder, so the event object and event time are exactly the upstream's), with the header
  ``cep-ev: "<source topic> <partition> <offset> <event time ms>"``;
* a *marker*: an empty value with the header ``cep-wm: "<source topic> <partition> <largest
  event time ms or -> <idle 0|1>"`` — the largest event time the upstream has accepted from
  that source topic-partition, and whether it is idle.  Markers go to every partition of the
  topic (Flink broadcasts watermarks over every channel the same way).

**Merging** (:class:`Merger`).  A shuffle task has one *input* per source topic-partition
``"<topic>/<p>"`` (all registered up front, with the source's ``max_out_of_orderness``), so
its watermark ``W = min over inputs not idle of (largest − max_out_of_orderness − 1)`` is
exactly the upstream's own bound: no input decides anything before every upstream partition
has spoken (or gone idle).  Events wait in a heap and are released when ``W`` passes them, in
``(event time, input, offset)`` order — an order fixed by the data, never by how fetches of
different upstream partitions interleave.  The upstream ships only events it did not find
late, and a marker never claims more than the upstream has accepted, so a shipped event is
never at or below ``W`` when it arrives (an event from an input that the upstream had
declared idle can be, as in Flink; it is then released at once and found late).

Pure: no I/O.  Times are epoch milliseconds.
"""

from __future__ import annotations

import heapq
from typing import Any

from cep.operator.watermark import NEG_INF

__all__ = ["EVENT_HEADER", "MARKER_HEADER", "event_header", "marker_header", "parse_header",
           "Merger"]

EVENT_HEADER = "cep-ev"
MARKER_HEADER = "cep-wm"


def event_header(topic: str, partition: int, offset: int, ts: int) -> list[tuple[str, bytes]]:
    """The headers of a shipped event (see the module docstring)."""
    return [(EVENT_HEADER, f"{topic} {partition} {offset} {ts}".encode())]


def marker_header(topic: str, partition: int, largest: float, idle: bool
                  ) -> list[tuple[str, bytes]]:
    """The headers of a marker (``largest`` −∞: nothing accepted yet, written ``-``)."""
    big = "-" if largest == NEG_INF else str(int(largest))
    return [(MARKER_HEADER, f"{topic} {partition} {big} {int(idle)}".encode())]


def parse_header(headers: Any) -> tuple[bool, str, int, float]:
    """``(is_event, input name, offset or idle flag, event time or largest)`` of a
    repartition record.  Raises ``ValueError`` for a record this engine did not write."""
    for name, value in headers or ():
        if name == EVENT_HEADER:
            topic, p, off, ts = value.decode().split(" ")
            return True, f"{topic}/{p}", int(off), int(ts)
        if name == MARKER_HEADER:
            topic, p, big, idle = value.decode().split(" ")
            return False, f"{topic}/{p}", int(idle), NEG_INF if big == "-" else int(big)
    raise ValueError("a repartition record without a cep-ev or cep-wm header")


class Merger:
    """The inputs of one shuffle task: largest event time and idleness per input, the
    watermark they give, and the events waiting for it.

    ``inputs``: input name (``"<topic>/<p>"``) → ``max_out_of_orderness`` (ms).  Pending
    events are ``(event time, input index, offset, value)``; input indexes follow the sorted
    input names."""

    def __init__(self, inputs: dict[str, int]) -> None:
        self.names = sorted(inputs)
        self.index = {n: i for i, n in enumerate(self.names)}
        self.ooo = dict(inputs)
        self.largest: dict[str, float] = {n: NEG_INF for n in self.names}
        self.idle: set[str] = set()
        self.current: float = NEG_INF
        self.pending: list[tuple[int, int, int, bytes]] = []

    def add(self, name: str, offset: int, ts: int, value: bytes) -> None:
        """An event record of input ``name`` (its source offset and event time)."""
        if ts > self.largest[name]:
            self.largest[name] = ts
        self.idle.discard(name)
        heapq.heappush(self.pending, (ts, self.index[name], offset, value))

    def mark(self, name: str, largest: float, idle: bool) -> None:
        """A marker of input ``name``."""
        if largest > self.largest[name]:
            self.largest[name] = largest
        if idle:
            self.idle.add(name)
        else:
            self.idle.discard(name)

    def watermark(self) -> float:
        """The watermark now (never goes back; unchanged while every input is idle)."""
        active = [m - self.ooo[n] - 1 for n, m in self.largest.items() if n not in self.idle]
        if active:
            wm = min(active)
            if wm > self.current:
                self.current = wm
        return self.current

    def release(self) -> list[tuple[int, str, int, bytes]]:
        """Pending events at or below the watermark, in ``(event time, input, offset)``
        order, as ``(event time, input name, offset, value)``."""
        wm = self.watermark()
        out = []
        pending = self.pending
        while pending and pending[0][0] <= wm:
            ts, i, off, value = heapq.heappop(pending)
            out.append((ts, self.names[i], off, value))
        return out

    def state(self) -> dict[str, Any]:
        """Plain data for the task's snapshot ``meta``."""
        return {"largest": {n: (None if m == NEG_INF else m) for n, m in self.largest.items()},
                "idle": sorted(self.idle),
                "wm": None if self.current == NEG_INF else self.current,
                "pending": [[ts, self.names[i], off, v] for ts, i, off, v in
                            sorted(self.pending)]}

    def restore(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state` (inputs no longer configured are ignored)."""
        for n, m in state.get("largest", {}).items():
            if n in self.largest and m is not None:
                self.largest[n] = m
        self.idle = {n for n in state.get("idle", []) if n in self.index}
        wm = state.get("wm")
        self.current = NEG_INF if wm is None else wm
        self.pending = [(ts, self.index[n], off, v) for ts, n, off, v in
                        state.get("pending", []) if n in self.index]
        heapq.heapify(self.pending)
