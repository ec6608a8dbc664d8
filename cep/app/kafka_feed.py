"""A source task's fetched messages of one partition, fed to its operator as a batch.

:func:`feed_batch` is Kafka mode's half of file mode's batched path
(:func:`cep.app.pipeline.run_chunks`): the messages are decoded together where one call gives
what decoding each alone gives (:meth:`~cep.io.kafka.MessageDecoder.decode_batch`), and each
run of decoded objects goes to :meth:`CepOperator.on_batch
<cep.operator.cep_operator.CepOperator.on_batch>` with its Kafka offsets — the rule set's
generated loop (:mod:`cep.operator.fastpath`) where the task has one input in order, else
:meth:`~cep.operator.cep_operator.CepOperator.on_event` per object.  The outputs, their
order, the arrival numbers and so the task's checkpoint are those of decoding and feeding
message by message: dead letters come out between the runs (a message that does not decode)
or from inside a run, in place (an event time that is not a valid int of ms).

With a :class:`~cep.operator.prescan.Prescan` (:func:`prescan_for`) the batch first goes to
file mode's C line scanner, its values being the lines of one chunk (:func:`_prescanned`).
A shuffle task's merged releases are fed by :func:`feed_released`: runs of one source topic,
each record with its own partition, through the same generated loop.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass
from itertools import groupby
from typing import Any

from cep.event import Event
from cep.io.codecs import DeadLetter
from cep.io.kafka import DecodedRun, MessageDecoder
from cep.operator.cep_operator import Accepted, CepOperator
from cep.operator.prescan import MessageLines, Prescan

__all__ = ["Fed", "Released", "feed_batch", "feed_released", "prescan_for"]

Released = tuple[int, str, int, bytes]
"""A record a shuffle task's merger released: ``(event time in ms, input name
"<topic>/<partition>", source offset, message value)`` (:meth:`Merger.release
<cep.app.kafka_shuffle.Merger.release>`)."""


@dataclass(frozen=True)
class Fed:
    """What :func:`feed_batch` did: the last arrival number used and the events fed (dead
    letters not counted; events the scanner passed over counted); ``seconds`` the engine
    time when measured as a whole."""

    seq: int
    events: int
    seconds: float = 0.0


def feed_batch(
    op: CepOperator,
    decoder: MessageDecoder,
    msgs: list[Any],
    *,
    partition: int,
    expected: int,
    input_name: str,
    seq: int,
    dead_letter: Callable[[dict[str, Any]], None],
    observe_latency: Callable[[float], None] | None = None,
    on_accepted: Callable[[Event, bytes], None] | None = None,
    prescan: Prescan | None = None,
) -> Fed:
    """Decode and feed the messages of one fetched batch of ``partition`` (``msg.offset``,
    ``msg.value``; offsets increasing) from offset ``expected`` on.

    Events get arrival numbers ``seq + 1, …`` and the operator's watermark input
    ``input_name``; ``dead_letter(record)`` takes each message that is no event, in order.
    ``observe_latency(seconds)`` (metrics) gets the mean engine time per event of each run.
    ``on_accepted(event, message value)`` is told of each event that was neither late nor
    refused, before it is matched (a source task ships those to repartition topics).
    ``prescan`` (:func:`prescan_for` this operator and input; not with ``on_accepted``) lets
    the C line scanner pass over the messages no rule wants without decoding them, as file
    mode does (:func:`_prescanned`).  Never raises on bad messages."""
    if prescan is not None and on_accepted is None:
        fed = _prescanned(op, decoder, msgs, prescan, partition, expected, seq, dead_letter)
        if fed is not None:
            if observe_latency is not None and fed.events:
                observe_latency(fed.seconds / fed.events)
            return fed
    on_batch = op.on_batch
    source, time_field = decoder.source, decoder.time_field
    events = 0
    for part in decoder.decode_batch(msgs, partition, expected):
        if type(part) is not DecodedRun:
            dead_letter(part)  # type: ignore[arg-type]
            continue
        seq0 = seq
        t0 = time.perf_counter() if observe_latency is not None else 0.0
        accepted = (None if on_accepted is None else
                    _accepted(part, source, partition, on_accepted))
        seq, _ = on_batch(part.objects, source, time_field, seq, -1,
                          _odd_time(decoder, part.value_at, partition, dead_letter),
                          input_name=input_name, partition=partition, offsets=part.offsets,
                          accepted=accepted)
        events += seq - seq0
        if observe_latency is not None and seq > seq0:
            observe_latency((time.perf_counter() - t0) / (seq - seq0))
    return Fed(seq, events)


def prescan_for(op: CepOperator, decoder: MessageDecoder, input_name: str) -> Prescan | None:
    """A :class:`~cep.operator.prescan.Prescan` of ``op`` for the messages of ``decoder``'s
    source read as watermark input ``input_name``, to keep and hand to :func:`feed_batch`
    with each batch of that input; ``None`` when the source is not JSON with event times in
    ms (the scanner reads neither msgpack nor other units)."""
    if not decoder.json or decoder.time_field is None:
        return None
    return Prescan(op, decoder.source, decoder.time_field, decoder.max_bytes, input_name)


def _prescanned(op: CepOperator, decoder: MessageDecoder, msgs: list[Any], prescan: Prescan,
                partition: int, expected: int, seq: int,
                dead_letter: Callable[[dict[str, Any]], None]) -> Fed | None:
    """The batch through the C line scanner (:class:`~cep.operator.prescan.Prescan`, file
    mode's: the same program, from the same rule gates), its message values being the lines
    of one chunk: a message no rule can want is passed over undecoded, counted as an event
    and its event time taken as the largest seen, as file mode does with such a line; every
    other message is decoded and handled as :meth:`MessageDecoder.decode` and
    :meth:`CepOperator.on_event` would.  ``None`` (nothing done) when the scanner cannot be
    used now (see :meth:`Prescan.program`), the source is not JSON with event times in ms,
    or a value is missing (a tombstone) or holds a newline."""
    program = prescan.program() if decoder.json and decoder.time_field is not None else None
    if program is None:
        return None
    if msgs and msgs[0].offset < expected:
        msgs = [m for m in msgs if m.offset >= expected]
    values = [m.value for m in msgs]
    if not values or None in values:
        return None
    chunk = b"\n".join(values)
    if chunk.count(b"\n") != len(values) - 1:
        return None
    offsets = [m.offset for m in msgs]
    name, on_event = prescan.input, op.on_event

    def handle(_raw: bytes, line: int, seq: int) -> int:
        """Message number ``line`` (1-based) alone."""
        res = decoder.decode(values[line - 1], partition, offsets[line - 1], seq + 1)
        if type(res) is not Event:
            dead_letter(res)  # type: ignore[arg-type]
            return seq
        on_event(res, name)
        return seq + 1

    def value_at(offset: int) -> bytes:
        return values[bisect_left(offsets, offset)]

    lines = MessageLines(offsets, partition,
                         _odd_time(decoder, value_at, partition, dead_letter))
    t0 = time.perf_counter()
    last, _ = prescan.run(program, chunk, seq, 0, handle, lines)
    return Fed(last, last - seq, time.perf_counter() - t0)


def _odd_time(decoder: MessageDecoder, value_at: Callable[[int], bytes], partition: int,
              dead_letter: Callable[[dict[str, Any]], None]
              ) -> Callable[[dict[str, Any], int], int | None]:
    """The event time of a decoded object whose time is not a valid int of ms, for
    :meth:`CepOperator.on_batch`: converted, or ``None`` after its message (its value
    ``value_at(offset)``) went to ``dead_letter`` (the decision of
    :meth:`MessageDecoder.decode`)."""

    def odd_time(data: dict[str, Any], offset: int) -> int | None:
        ts = decoder.event_time(data)
        if type(ts) is DeadLetter:
            dead_letter(decoder.dead_letter(ts, value_at(offset), partition, offset))
            return None
        return ts  # type: ignore[return-value]

    return odd_time


def _accepted(run: DecodedRun, source: str, partition: int,
              on_accepted: Callable[[Event, bytes], None]) -> Accepted:
    """:data:`~cep.operator.cep_operator.Accepted` for ``run``: the event and its message's
    value to ``on_accepted``."""

    def accepted(data: dict[str, Any], ts: int, seq: int, offset: int) -> None:
        on_accepted(Event(ts, seq, data, source, offset, partition), run.value_at(offset))

    return accepted


def feed_released(
    op: CepOperator,
    decoders: dict[str, MessageDecoder],
    released: list[Released],
    *,
    input_name: str,
    seq: int,
    dead_letter: Callable[[dict[str, Any]], None],
) -> Fed:
    """Feed a shuffle task's released records, in their order, to its operator's watermark
    input ``input_name`` (the task's one in-order input): each run of consecutive records of
    one source topic is decoded together (:meth:`MessageDecoder.decode_all`) and handed to
    :meth:`CepOperator.on_batch` with each record's partition and offset, so the generated
    loop matches the merged stream.  A run some record of which does not decode alone (the
    source task decoded it, so this does not happen) goes record by record, exactly as
    :meth:`MessageDecoder.decode` and :meth:`CepOperator.on_event` do.  Events get arrival
    numbers ``seq + 1, …``.  Returns what was fed; never raises on bad records."""
    events = 0
    split = _InputNames()
    for topic, group in groupby(released, key=lambda rec: split.topic(rec[1])):
        recs = list(group)
        decoder = decoders[topic]
        values = [rec[3] for rec in recs]
        objs = decoder.decode_all(values)
        seq0 = seq
        if objs is None:
            seq = _one_by_one(op, decoder, recs, split, input_name, seq, dead_letter)
        else:
            pids = [split.partition(rec[1]) for rec in recs]
            offsets = [rec[2] for rec in recs]
            seq, _ = op.on_batch(objs, decoder.source, decoder.time_field, seq, -1,
                                 _odd_merged_time(decoder, objs, values, pids, dead_letter),
                                 input_name=input_name, offsets=offsets, partitions=pids)
        events += seq - seq0
    return Fed(seq, events)


class _InputNames:
    """Topic and partition of merger input names (``"<topic>/<partition>"``), parsed once
    per name."""

    def __init__(self) -> None:
        self.parsed: dict[str, tuple[str, int]] = {}

    def _parse(self, name: str) -> tuple[str, int]:
        got = self.parsed.get(name)
        if got is None:
            topic, _, p = name.rpartition("/")
            got = self.parsed[name] = (topic, int(p))
        return got

    def topic(self, name: str) -> str:
        return self._parse(name)[0]

    def partition(self, name: str) -> int:
        return self._parse(name)[1]


def _one_by_one(op: CepOperator, decoder: MessageDecoder, recs: list[Released],
                split: _InputNames, input_name: str, seq: int,
                dead_letter: Callable[[dict[str, Any]], None]) -> int:
    """Released records decoded and fed one at a time; returns the last arrival number."""
    for _ts, name, offset, value in recs:
        res = decoder.decode(value, split.partition(name), offset, seq + 1)
        if type(res) is not Event:
            dead_letter(res)  # type: ignore[arg-type]
            continue
        seq += 1
        op.on_event(res, input_name)
    return seq


def _odd_merged_time(decoder: MessageDecoder, objs: list[dict[str, Any]], values: list[bytes],
                     pids: list[int], dead_letter: Callable[[dict[str, Any]], None]
                     ) -> Callable[[dict[str, Any], int], int | None]:
    """:func:`_odd_time` for a merged run (``objs[i]`` decoded from ``values[i]`` of
    partition ``pids[i]``): the message of a dead letter is found by its object."""

    def odd_time(data: dict[str, Any], offset: int) -> int | None:
        ts = decoder.event_time(data)
        if type(ts) is DeadLetter:
            i = next(i for i, obj in enumerate(objs) if obj is data)
            dead_letter(decoder.dead_letter(ts, values[i], pids[i], offset))
            return None
        return ts  # type: ignore[return-value]

    return odd_time
