"""Derived events: the match records of a rule with ``emit to stream NAME`` are events of
the internal stream ``NAME``, matched by the rules that read ``from NAME``.

A derived event is dispatched within the operator at once, while the event that produced it
(its *origin*) is being matched: before the origin goes on to the rules after the producer,
and before any later event or timer.  So which derived events exist, and in which order the
readers see them, follows from the input alone, as alerts do: replays, checkpoints (taken
between events, when no derived event is in flight) and restarts give the same ones.

A derived event has the origin's event time (ms), the stream's name as its source, the
origin's partition and offset (so the alerts it takes part in have the ids a replay of the
input gives them, :func:`~cep.operator.records.alert_id`), and an arrival number that orders
it after every derived event of an earlier origin and after the earlier ones of its own
origin: ``(root << ORIGIN_BITS) | n``, where ``root`` is the arrival number of the input event
at the start of the chain and ``n`` counts the derived events made since it (1, 2, …).  Its
data is the producer's whole match record (``rule``, ``key``, ``start``, ``end``, ``match``,
``data``, ``alert_id``, …).

Layer 3.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from cep.event import Event

__all__ = ["DerivedStreams", "ORIGIN_BITS"]

ORIGIN_BITS = 20
"""Bits of a derived event's arrival number that count the derived events of one origin."""

_MAX_PER_ORIGIN = (1 << ORIGIN_BITS) - 1


class DerivedStreams:
    """Makes derived events and hands each to the rules reading its stream.

    Args:
        dispatch: ``dispatch(stream, event)`` — the derived ``event`` to every rule that
            reads ``stream`` (the operator's rules as they are at that moment).
        is_stream: whether a source name is a derived stream of the current rule set.

    Both are bound methods of the operator, held weakly (the operator holds this object:
    a strong reference back would make it a reference cycle, freed only by the cyclic
    collector).

    Attributes:
        made: derived events made so far (cumulative).

    Raises (from :meth:`derive`):
        OverflowError: one input event produced more than ``2**ORIGIN_BITS - 1`` derived
            events.
    """

    __slots__ = ("_dispatch", "_is_stream", "_root", "_n", "made")

    def __init__(self, dispatch: Callable[[str, Event], None],
                 is_stream: Callable[[str], bool]) -> None:
        self._dispatch = weakref.WeakMethod(dispatch)  # type: ignore[arg-type]
        self._is_stream = weakref.WeakMethod(is_stream)  # type: ignore[arg-type]
        self._root = -1
        self._n = 0
        self.made = 0

    def derive(self, stream: str, record: dict[str, Any], origin: Event) -> None:
        """``record`` (a match record of a rule emitting to ``stream``, made at ``origin``,
        the last event of its match) as an event of ``stream``, dispatched now."""
        is_stream, dispatch = self._is_stream(), self._dispatch()
        assert is_stream is not None and dispatch is not None  # (the operator is alive)
        root = origin.seq >> ORIGIN_BITS if is_stream(origin.source) else origin.seq
        if root != self._root:
            self._root = root
            self._n = 0
        n = self._n = self._n + 1
        if n > _MAX_PER_ORIGIN:
            raise OverflowError(f"one event produced more than {_MAX_PER_ORIGIN} derived "
                                "events")
        self.made += 1
        dispatch(stream, Event(origin.ts, (root << ORIGIN_BITS) | n, record, stream,
                               origin.offset, origin.partition))
