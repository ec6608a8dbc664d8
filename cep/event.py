"""The event record and field-path access that never raises.

An :class:`Event` is what every layer above the codecs sees: the decoded JSON object, its event
time in epoch milliseconds, and where it came from.  A :class:`HeldEvent` is the same event in
the compact form partial matches keep it in.  Layer 0: imports nothing from the project.
"""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["Event", "HeldEvent", "hold", "get_path", "MISSING"]

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


_loads = orjson.loads
_dumps = orjson.dumps
_STRICT = orjson.OPT_PASSTHROUGH_SUBCLASS  # a subclass of str, int, dict or list: not JSON


class HeldEvent:
    """An event as a partial match holds it once it has waited a while: the same attributes
    as :class:`Event`, with ``data`` kept as its JSON text (UTF-8 bytes, about a third of the
    size of the decoded object) and ``offset`` as its distance from ``seq`` (usually a small,
    shared int).  Made by :func:`hold` only for data that JSON text gives back exactly.

    Reading ``data`` decodes a new dict equal to the original (same keys in the same order,
    same values and types) on every read; a reader that needs it more than once calls
    :meth:`event` once.
    """

    __slots__ = ("ts", "seq", "_text", "source", "_delta", "partition")

    def __init__(self, ev: Event, text: bytes) -> None:
        self.ts = ev.ts
        self.seq = ev.seq
        self._text = text
        self.source = ev.source
        self._delta = ev.offset - ev.seq
        self.partition = ev.partition

    @property
    def data(self) -> Any:
        """The decoded object (a new dict on every read)."""
        return _loads(self._text)

    @property
    def offset(self) -> int:
        """Line number (files, 1-based) or Kafka offset; ``-1`` when unknown."""
        return self.seq + self._delta

    def event(self) -> Event:
        """The plain :class:`Event` (its data decoded once)."""
        return Event(self.ts, self.seq, _loads(self._text), self.source, self.offset,
                     self.partition)

    def __repr__(self) -> str:
        return f"HeldEvent(ts={self.ts}, seq={self.seq}, data={self.data!r})"


def hold(ev: Event) -> Event | HeldEvent:
    """``ev`` in the compact form of :class:`HeldEvent`, or ``ev`` itself when its data would
    not come back from JSON text exactly: a value JSON cannot hold (a tuple, a set, a
    non-finite float, an int outside 64 bits, a non-string key, a lone surrogate, a subclass
    of a JSON type, …) or nesting too deep for the encoder.  Never raises."""
    data = ev.data
    if type(data) is not dict:
        return ev
    try:
        text = _dumps(data, option=_STRICT)
        if _loads(text) != data:
            return ev
    except Exception:  # not encodable, or a comparison that cannot be made
        return ev
    # orjson's bytes keep the whole 4 KiB buffer they were written in: copy to the exact size
    return HeldEvent(ev, memoryview(text).tobytes())


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
