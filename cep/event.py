"""The event record and field-path access that never raises.

An :class:`Event` is what every layer above the codecs sees: the decoded JSON object, its event
time in epoch milliseconds, and where it came from.  A :class:`HeldEvent` is the same event in
the compact form partial matches keep it in.  Layer 0: imports nothing from the project.
"""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["Event", "HeldEvent", "hold", "get_path", "MISSING", "MAX_EVENT_TIME_MS",
           "MIN_EVENT_TIME_MS", "MAX_EVENT_DEPTH", "nesting_within", "too_deep"]

MAX_EVENT_TIME_MS = (1 << 53) - 1
"""The largest valid event time, epoch milliseconds (about the year 287,396).  Every decoder
dead-letters a time outside ``[MIN_EVENT_TIME_MS, MAX_EVENT_TIME_MS]`` as ``bad_event_time``,
so an event time, a window end (time + a rule duration, itself at most this) and anything
derived from them fit a signed 64-bit integer, a msgpack int and a double exactly."""

MIN_EVENT_TIME_MS = -MAX_EVENT_TIME_MS
"""The smallest valid event time, epoch milliseconds."""

MAX_EVENT_DEPTH = 128
"""The deepest nesting of objects and arrays an event may have (the event object itself is
level 1).  Deeper events are dead-lettered as ``too_deep`` at decode: the JSON and msgpack
writers of alerts and checkpoints, and the key of a rule, then never meet one they cannot
handle."""

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
        text: every string of ``data`` joined by newlines, once some rule's keyword search
            has read it (:func:`cep.compiler.runtime.ev_text`), else ``None``: the text is
            built once per event however many rules search it.
    """

    __slots__ = ("ts", "seq", "data", "source", "offset", "partition", "text")

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
        self.text: str | None = None

    def plain(self) -> Event:
        """This event (:meth:`HeldEvent.plain` decodes a held one): a record builder reads
        every event of a match through it, whichever form a partial match keeps it in."""
        return self

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

    plain = event  # (what Event.plain is for an event that is not held)

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


_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def nesting_within(raw: bytes, limit: int = MAX_EVENT_DEPTH) -> bool:
    """True when the JSON text ``raw`` (one value, or several on lines of their own) certainly
    nests objects and arrays at most ``limit`` deep; False when that is not certain (brackets
    inside strings can make it so: then ask :func:`too_deep` of the decoded value).

    Works on the brackets alone: every round of removing the innermost ``{}`` and ``[]``
    pairs takes one level off, so text that is empty after ``limit`` rounds is shallow
    enough.  Costs a few passes over the bytes in C and no decoding."""
    s = raw.translate(None, _NOT_BRACKETS)
    for _ in range(limit):
        if not s:
            return True
        t = s.replace(b"{}", b"").replace(b"[]", b"")
        if len(t) == len(s):
            return False  # unbalanced (a bracket in a string): not decided here
        s = t
    return not s


def too_deep(value: Any, limit: int = MAX_EVENT_DEPTH) -> bool:
    """Whether ``value`` nests dicts, lists and tuples more than ``limit`` deep (``value``
    itself is level 1).  Iterative: any depth is measured without recursion."""
    stack = [(value, 1)]
    while stack:
        v, d = stack.pop()
        if d > limit:
            return True
        t = type(v)
        if t is dict:
            stack.extend((x, d + 1) for x in v.values() if type(x) in _CONTAINERS)
        elif t is list or t is tuple:
            stack.extend((x, d + 1) for x in v if type(x) in _CONTAINERS)
    return False


_CONTAINERS = (dict, list, tuple)
