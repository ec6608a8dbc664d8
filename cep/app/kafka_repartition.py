"""Both ends of the repartition topics: what a source task ships and marks, and how a shuffle
task is fed (the plan is :mod:`cep.app.kafka_plan`; the merge order and the record headers are
:mod:`cep.app.kafka_shuffle`; the pipeline that owns the tasks is
:mod:`cep.app.kafka_pipeline`).

* **Shipping** (a source task): each event the task's operator accepted — neither late nor
  refused, the source task's decision and a deterministic one — is sent, once per repartition
  topic some of whose rules could read it, to partition ``blake2b(key) mod N`` of that topic:
  the source message's value unchanged, with a header naming its topic, partition, offset and
  event time.
* **Markers** (a source task, before each checkpoint): for each input whose largest accepted
  event time or idleness changed, one marker into every partition of every repartition topic
  that reads the input's source, so the shuffle tasks' watermarks follow.
* **Feeding** (a shuffle task): events wait in the task's
  :class:`~cep.app.kafka_shuffle.Merger`, markers move its inputs' event time; whatever the
  merged watermark passed is decoded and fed to the operator in ``(event time, input,
  offset)`` order, and the operator's watermark follows.

Shipped records and markers join the task's outputs, so they commit in the task's
transaction with its snapshot and offsets (:mod:`cep.app.kafka_commit`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from aiokafka import TopicPartition

from cep.app.kafka_commit import Shipped, Task
from cep.app.kafka_feed import feed_batch, feed_released
from cep.app.kafka_plan import Shuffle
from cep.app.kafka_shuffle import Merger, event_header, marker_header, parse_header
from cep.event import Event
from cep.io.kafka import MessageDecoder
from cep.operator.watermark import NEG_INF

__all__ = ["Repartition"]

log = logging.getLogger("cep.kafka")


class Repartition:
    """Shipping, markers and feeding for one pipeline.  ``ships`` maps each source topic to
    the repartition topics that read it (replaced on a reload); ``partitions`` is the count of
    every source and repartition topic; ``dead_letter(task, record)`` takes what does not
    decode."""

    def __init__(self, decoders: dict[str, MessageDecoder], ships: dict[str, list[Shuffle]],
                 dead_letter: Callable[[Task, dict[str, Any]], None]) -> None:
        self.decoders = decoders
        self.ships = ships
        self.partitions = 0
        self.dead_letter = dead_letter

    def ship(self, task: Task, tp: TopicPartition, msgs: list[Any], expected: int) -> int:
        """A source task's messages when repartition topics read its source: decoded and fed
        as a batch (:func:`~cep.app.kafka_feed.feed_batch`), each event the operator
        accepted shipped.  Returns the events fed."""
        input_id = task.inputs[tp]
        ships = self.ships[tp.topic]
        parts = self.partitions
        out = task.out
        pid, topic = tp.partition, tp.topic
        largest = task.largest.get(input_id, NEG_INF)

        def on_accepted(ev: Event, value: bytes) -> None:
            nonlocal largest
            ts = ev.ts
            if ts > largest:
                largest = ts
            headers = None
            for sh in ships:
                if sh.wants(ev):
                    headers = headers or event_header(topic, pid, ev.offset, ts)
                    out.append(Shipped(sh.topic, sh.partition(ev.data, parts), value, headers))

        fed = feed_batch(task.op, self.decoders[topic], msgs, partition=pid, expected=expected,
                         input_name=input_id, seq=task.seq,
                         dead_letter=lambda rec: self.dead_letter(task, rec),
                         on_accepted=on_accepted)
        task.largest[input_id] = largest
        task.seq = fed.seq
        return fed.events

    def mark(self, task: Task) -> None:
        """A source task's markers, before its checkpoint (see the module docstring)."""
        for tp in task.tps:
            ships = self.ships[tp.topic]
            if not ships:
                continue
            name = task.inputs[tp]
            now = (task.largest.get(name, NEG_INF), name in task.idle)
            if task.marked.get(name) == now or now == (NEG_INF, False):
                continue
            task.marked[name] = now
            headers = marker_header(tp.topic, tp.partition, now[0], now[1])
            for sh in ships:
                task.out.extend(Shipped(sh.topic, q, b"", headers)
                                for q in range(self.partitions))

    def feed(self, task: Task, tp: TopicPartition, msgs: list[Any], expected: int) -> int:
        """A shuffle task's records: events wait in the merger and markers move its inputs'
        event time; then what the merged watermark passed is fed (:meth:`release`)."""
        merger: Merger = task.merger
        for msg in msgs:
            if msg.offset < expected:
                continue
            try:
                is_event, name, num, ts = parse_header(msg.headers)
            except ValueError as exc:
                log.warning("%s: offset %d skipped: %s", task.label, msg.offset, exc)
                continue
            if name not in merger.index:
                log.warning("%s: offset %d from an unknown input %s skipped", task.label,
                            msg.offset, name)
                continue
            if is_event:
                merger.add(name, num, int(ts), msg.value)
            else:
                merger.mark(name, ts, bool(num))
        return self.release(task)

    def release(self, task: Task) -> int:
        """Feed the events the shuffle task's merged watermark has passed, in order
        (:func:`~cep.app.kafka_feed.feed_released`: as batches); advance its operator to that
        watermark.  Returns the events fed."""
        merger: Merger = task.merger
        op = task.op
        fed = feed_released(op, self.decoders, merger.release(), input_name="shuffle",
                            seq=task.seq, dead_letter=lambda rec: self.dead_letter(task, rec))
        task.seq = fed.seq
        wm = merger.current
        if wm > op.watermark:
            op.advance(op.watermarks.observe("shuffle", int(wm) + 1))
        return fed.events
