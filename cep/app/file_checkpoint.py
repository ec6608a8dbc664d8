"""Checkpoints of a file-mode run: resume a killed run where it stopped, outputs exact.

A run over a file input with ``[state] checkpoint_dir`` (or ``--checkpoint-dir``) saves, every
``checkpoint_interval`` ms or ``checkpoint_records`` events, and once more before the end of
the input decides the last windows:

* the operator's state (:func:`cep.checkpoint.snapshot.encode`: partial matches, buffered
  events, watermarks, rule versions),
* how far the input was read (lines, bytes, the last event's arrival number),
* the length of every output file, after flushing it.

The checkpoint is one file in the directory, replaced atomically
(:class:`~cep.checkpoint.store.DirectoryStore`), named after the input's absolute path.  When a
run starts on the same input with a checkpoint present, :meth:`FileCheckpoints.resume`
truncates every output file back to its recorded length, the state is restored, and the lines
already read are skipped.  What was written after the checkpoint came from lines that are read
again, so it is written again, identically: no output line is lost or doubled (the two-phase
idea of Flink's file sink, here with truncation instead of pending files).  An output on
standard output cannot be truncated; its records after the last checkpoint repeat (each has the
same ``alert_id``).

Errors: :class:`~cep.checkpoint.snapshot.CheckpointError` (exit status 2) for a checkpoint that
cannot be read, or an input shorter than the checkpoint says it was (replaced or truncated).
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cep.checkpoint.snapshot import CheckpointError, decode, encode, read_meta
from cep.checkpoint.store import DirectoryStore
from cep.io.sinks import SinkSet
from cep.operator.cep_operator import CepOperator

__all__ = ["FileCheckpoints", "Position"]

log = logging.getLogger("cep.checkpoint")


@dataclass
class Position:
    """How far a file-mode run has read: ``lines`` read (1-based number of the last line),
    ``seq`` the last event's arrival number, ``dead`` dead letters so far, ``bytes`` a lower
    bound of the bytes read (line terminators counted as one byte)."""

    lines: int = 0
    seq: int = 0
    dead: int = 0
    bytes: int = 0


@dataclass
class FileCheckpoints:
    """Checkpoints of one input file in ``directory``.

    Args:
        directory: where checkpoint files live (created on first save).
        input_path: the input file (standard input cannot be checkpointed).
        interval_ms: time between checkpoints, in milliseconds of wall-clock time.
        records: events between checkpoints, whichever comes first.
    """

    directory: str
    input_path: str
    interval_ms: int = 1000
    records: int = 10_000
    saved: int = 0
    _next_at: float = 0.0
    _next_seq: int = 0
    _sink_paths: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.store = DirectoryStore(self.directory)
        absolute = os.path.abspath(self.input_path)
        digest = hashlib.blake2b(absolute.encode(), digest_size=8).hexdigest()
        self.name = f"file-{Path(absolute).name}-{digest}"

    # ------------------------------------------------------------------ resume

    def pending(self) -> dict[str, Any] | None:
        """The saved checkpoint's ``meta`` (see the module docstring), or ``None``."""
        data = self.store.load(self.name)
        return None if data is None else read_meta(data)

    def truncate_outputs(self, meta: dict[str, Any]) -> list[str]:
        """Cut every output file recorded in ``meta`` back to its length at the checkpoint
        (before the sinks are opened, in append mode).  Returns the paths truncated."""
        cut = []
        for path, size in meta.get("outputs", {}).items():
            try:
                if os.path.getsize(path) > size:
                    os.truncate(path, size)
                    cut.append(path)
            except FileNotFoundError:
                if size:
                    raise CheckpointError(f"{path}: the output file of the checkpointed run "
                                          "is gone; remove the checkpoint "
                                          f"{self.store.path(self.name)} to start over") from None
        return cut

    def resume(self, op: CepOperator) -> Position:
        """Restore the saved state into ``op`` and return where to go on reading (a zero
        :class:`Position` when there is no checkpoint)."""
        data = self.store.load(self.name)
        if data is None:
            return Position()
        report = decode(data, op)
        meta = report.meta
        size = os.path.getsize(self.input_path)
        if size < meta.get("input_bytes", 0):
            raise CheckpointError(
                f"{self.input_path} has {size:,} bytes but the checkpoint read "
                f"{meta['input_bytes']:,}: the input was replaced or truncated; remove "
                f"{self.store.path(self.name)} to start over")
        pos = Position(meta.get("lines", 0), meta.get("seq", 0), meta.get("dead", 0),
                       meta.get("input_bytes", 0))
        log.info("resuming %s after line %d from checkpoint %s (%d keys, %d partial matches)",
                 self.input_path, pos.lines, self.store.path(self.name), report.keys,
                 report.partial_matches)
        for name, old, new in report.dropped_rules:
            log.warning("rule %s changed (%s -> %s) since the checkpoint: its saved state is "
                        "dropped", name, old, new)
        self._next_seq = pos.seq + self.records
        return pos

    # ------------------------------------------------------------------ save

    def bind_outputs(self, sinks: SinkSet) -> None:
        """Remember which sinks are files whose lengths the checkpoints record."""
        paths = {name: getattr(s, "path", None) for name, s in sinks.sinks.items()}
        self._sink_paths = {n: p for n, p in paths.items() if isinstance(p, str) and p != "-"}
        self._next_at = time.monotonic() + self.interval_ms / 1000

    def due(self, seq: int) -> bool:
        """Whether a checkpoint is due after event ``seq`` (cheap; called per event: the
        clock is read every 256 events)."""
        return seq >= self._next_seq or (not seq & 0xFF and time.monotonic() >= self._next_at)

    def save(self, op: CepOperator, sinks: SinkSet, pos: Position) -> None:
        """Flush the outputs and write a checkpoint at ``pos``.  Raises OSError or
        :class:`CheckpointError`."""
        sinks.flush()
        outputs = {path: os.path.getsize(path) for path in self._sink_paths.values()
                   if os.path.exists(path)}
        meta = {"input": os.path.abspath(self.input_path), "lines": pos.lines, "seq": pos.seq,
                "dead": pos.dead, "input_bytes": pos.bytes,
                "outputs": outputs}
        self.store.save(self.name, encode(op, meta))
        self.saved += 1
        self._next_seq = pos.seq + self.records
        self._next_at = time.monotonic() + self.interval_ms / 1000

