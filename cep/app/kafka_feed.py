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
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cep.event import Event
from cep.io.codecs import DeadLetter
from cep.io.kafka import DecodedRun, MessageDecoder
from cep.operator.cep_operator import Accepted, CepOperator

__all__ = ["Fed", "feed_batch"]


@dataclass(frozen=True)
class Fed:
    """What :func:`feed_batch` did: the last arrival number used and the events fed (dead
    letters not counted)."""

    seq: int
    events: int


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
) -> Fed:
    """Decode and feed the messages of one fetched batch of ``partition`` (``msg.offset``,
    ``msg.value``; offsets increasing) from offset ``expected`` on.

    Events get arrival numbers ``seq + 1, …`` and the operator's watermark input
    ``input_name``; ``dead_letter(record)`` takes each message that is no event, in order.
    ``observe_latency(seconds)`` (metrics) gets the mean engine time per event of each run.
    ``on_accepted(event, message value)`` is told of each event that was neither late nor
    refused, before it is matched (a source task ships those to repartition topics).  Never
    raises on bad messages."""
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
                          _odd_time(decoder, part, partition, dead_letter),
                          input_name=input_name, partition=partition, offsets=part.offsets,
                          accepted=accepted)
        events += seq - seq0
        if observe_latency is not None and seq > seq0:
            observe_latency((time.perf_counter() - t0) / (seq - seq0))
    return Fed(seq, events)


def _odd_time(decoder: MessageDecoder, run: DecodedRun, partition: int,
              dead_letter: Callable[[dict[str, Any]], None]
              ) -> Callable[[dict[str, Any], int], int | None]:
    """The event time of an object of ``run`` whose time is not a valid int of ms, for
    :meth:`CepOperator.on_batch`: converted, or ``None`` after its message went to
    ``dead_letter`` (the decision of :meth:`MessageDecoder.decode`)."""

    def odd_time(data: dict[str, Any], offset: int) -> int | None:
        ts = decoder.event_time(data)
        if type(ts) is DeadLetter:
            dead_letter(decoder.dead_letter(ts, run.value_at(offset), partition, offset))
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
