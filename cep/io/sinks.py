"""Output sinks for file mode: JSON lines to a file or standard output.

A :class:`SinkSet` routes records by sink name (``alerts``, ``late``, ``dead_letter`` or a
name a rule uses in ``emit to``) and counts what each received, including records sent to a
sink that has no destination (they are counted, not written).
"""

from __future__ import annotations

import sys
from collections import Counter
from typing import Any, BinaryIO, Protocol

from cep.io.codecs import encode_json

__all__ = ["Sink", "JsonLinesSink", "MemorySink", "SinkSet"]


class Sink(Protocol):
    """Where records go.  ``write`` takes one record; ``flush`` makes written records durable
    (for files: flushed to the OS); ``close`` releases the destination."""

    def write(self, record: dict[str, Any]) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class JsonLinesSink:
    """Writes one JSON object per line to ``path`` (``-`` = standard output)."""

    def __init__(self, path: str, append: bool = False) -> None:
        self.path = path
        self._own = path != "-"
        self._fh: BinaryIO = (
            open(path, "ab" if append else "wb", buffering=1 << 16)  # noqa: SIM115
            if self._own
            else sys.stdout.buffer
        )

    def write(self, record: dict[str, Any]) -> None:
        self._fh.write(encode_json(record))

    def flush(self) -> None:
        self._fh.flush()

    def close(self) -> None:
        self._fh.flush()
        if self._own:
            self._fh.close()


class MemorySink:
    """Keeps records in a list (tests, rule tests, replays into memory)."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def write(self, record: dict[str, Any]) -> None:
        self.records.append(record)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class SinkSet:
    """Named sinks.  ``fallback`` (usually the alerts sink) receives records for names that
    have no sink of their own, except ``late`` and ``dead_letter``, which are only counted
    when they have no destination."""

    SIDE_OUTPUTS = ("late", "dead_letter")

    def __init__(self, sinks: dict[str, Sink], fallback: str | None = "alerts") -> None:
        self.sinks = sinks
        self.fallback = fallback
        self.counts: Counter[str] = Counter()

    def emit(self, name: str, record: dict[str, Any]) -> None:
        """Route one record to the sink called ``name``."""
        self.counts[name] += 1
        sink = self.sinks.get(name)
        if sink is None:
            if name in self.SIDE_OUTPUTS or self.fallback is None:
                return
            sink = self.sinks.get(self.fallback)
            if sink is None:
                return
        sink.write(record)

    def flush(self) -> None:
        for s in self.sinks.values():
            s.flush()

    def close(self) -> None:
        for s in self.sinks.values():
            s.close()
