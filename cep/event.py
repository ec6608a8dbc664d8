"""The event record and field-path access that never raises.

An :class:`Event` is what every layer above the codecs sees: the decoded JSON object, its event
time in epoch milliseconds, and where it came from.  Layer 0: imports nothing from the project.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Event", "get_path", "MISSING"]

MISSING: Any = None
"""Value of an absent field: missing and ``null`` are the same to rules."""


class Event:
    """One input event.

    Attributes:
        ts: event time, epoch **milliseconds** (int).
        seq: arrival number, strictly increasing over the whole run; ties in ``ts`` are
            broken by it (Flink's per-timestamp event counter plays the same role).
        data: the decoded object exactly as it arrived (a ``dict``).
        source: name of the source it came from (``"input"`` for ``cep run --input``).
        offset: line number (files, 1-based) or Kafka offset; ``-1`` when unknown.
        partition: Kafka partition, or ``-1`` for files.
    """

    __slots__ = ("ts", "seq", "data", "source", "offset", "partition")

    def __init__(
        self,
        ts: int,
        seq: int,
        data: dict[str, Any],
        source: str = "input",
        offset: int = -1,
        partition: int = -1,
    ) -> None:
        self.ts = ts
        self.seq = seq
        self.data = data
        self.source = source
        self.offset = offset
        self.partition = partition

    def __repr__(self) -> str:
        return f"Event(ts={self.ts}, seq={self.seq}, data={self.data!r})"


def get_path(data: Any, path: tuple[str, ...]) -> Any:
    """Return ``data[p0][p1]…`` or ``None`` when any step is missing or not an object.

    Never raises: a rule reading ``geo.country`` from an event whose ``geo`` is a string
    simply sees ``null``.
    """
    for part in path:
        if type(data) is not dict:
            return None
        data = data.get(part)
    return data
