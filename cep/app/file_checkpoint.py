"""Checkpoints of a file-mode run: resume a killed run where it stopped, outputs exact.

A run over a file input with ``[state] checkpoint_dir`` (or ``--checkpoint-dir``) saves, every
``checkpoint_interval`` ms or ``checkpoint_records`` events, and once more before the end of
the input decides the last windows:

* the operator's state (:func:`cep.checkpoint.snapshot.encode`: partial matches, buffered
  events, watermarks, rule versions),
* how far the input was read (lines, bytes, the last event's arrival number),
* the length of every output file, after flushing it.

The checkpoint is one file in the directory, replaced atomically
(:class:`~cep.checkpoint.store.DirectoryStore`), named after the input's absolute path, with a
SHA-256 of its content checked on load.  When a run starts on the same input with a checkpoint
present, :meth:`FileCheckpoints.truncate_outputs` cuts every output file *this run writes*
back to its recorded length, the state is restored, and the lines already read are skipped.
A checkpoint's ``meta`` is validated before it is used (:func:`validate_meta`: types and
shapes, the input it names); an output it names that this run does not write is left alone
(and logged), so a crafted checkpoint cannot truncate an arbitrary file.

What was written after the checkpoint came from lines that are read again, so it is written
again, identically: no output line is lost or doubled (the two-phase idea of Flink's file
sink, here with truncation instead of pending files).  An output on
standard output cannot be truncated; its records after the last checkpoint repeat (each has the
same ``alert_id``).

Errors: :class:`~cep.checkpoint.snapshot.CheckpointError` (exit status 2) for a checkpoint that
cannot be read, is damaged (checksum), has a malformed ``meta`` or names another input, or an
input shorter than the checkpoint says it was (replaced or truncated).
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cep.checkpoint.snapshot import CheckpointError, decode, encode, read_meta
from cep.checkpoint.store import DirectoryStore
from cep.io.sinks import SinkSet
from cep.operator.cep_operator import CepOperator

__all__ = ["FileCheckpoints", "Position", "validate_meta"]

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


_COUNTS = ("lines", "seq", "dead", "input_bytes")


def validate_meta(meta: dict[str, Any], input_path: str, where: str) -> dict[str, Any]:
    """``meta`` of a file-mode checkpoint, checked: ``input`` the absolute path of
    ``input_path``; ``lines``, ``seq``, ``dead``, ``input_bytes`` integers ≥ 0; ``outputs``
    a map of file names to sizes in bytes (integers ≥ 0).  Returns ``meta``.  Raises
    :class:`CheckpointError` naming the checkpoint file ``where`` otherwise."""
    def bad(what: str) -> CheckpointError:
        return CheckpointError(f"checkpoint {where}: {what}; remove it to start over")

    for name in _COUNTS:
        value = meta.get(name, 0)
        if type(value) is not int or value < 0:
            raise bad(f"meta.{name} is not a count")
    outputs = meta.get("outputs", {})
    if not isinstance(outputs, dict) or not all(
            isinstance(k, str) and k and type(v) is int and v >= 0 for k, v in outputs.items()):
        raise bad("meta.outputs is not a map of file names to sizes")
    saved_input = meta.get("input")
    if saved_input is not None and saved_input != os.path.abspath(input_path):
        raise bad(f"it was written for another input, not {os.path.abspath(input_path)}")
    return meta


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
        """The saved checkpoint's ``meta`` (see the module docstring), validated
        (:func:`validate_meta`), or ``None``.  Raises :class:`CheckpointError`."""
        data = self.store.load(self.name)
        if data is None:
            return None
        return validate_meta(read_meta(data), self.input_path, str(self.store.path(self.name)))

    def truncate_outputs(self, meta: dict[str, Any], outputs: Iterable[str]) -> list[str]:
        """Cut each of this run's output files (``outputs``; ``-`` is standard output) back
        to its length recorded in ``meta`` (before the sinks are opened, in append mode).  A
        file ``meta`` records that is not one of ``outputs`` is left alone and logged.
        Returns the paths truncated."""
        own = {os.path.abspath(p): p for p in outputs if p and p != "-"}
        cut = []
        for saved, size in meta.get("outputs", {}).items():
            path = own.get(os.path.abspath(saved))
            if path is None:
                log.warning("checkpoint %s records output %s, which this run does not write: "
                            "left alone", self.store.path(self.name), saved)
                continue
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
        meta = validate_meta(report.meta, self.input_path, str(self.store.path(self.name)))
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
        outputs = {os.path.abspath(path): os.path.getsize(path)
                   for path in self._sink_paths.values() if os.path.exists(path)}
        meta = {"input": os.path.abspath(self.input_path), "lines": pos.lines, "seq": pos.seq,
                "dead": pos.dead, "input_bytes": pos.bytes,
                "outputs": outputs}
        self.store.save(self.name, encode(op, meta))
        self.saved += 1
        self._next_seq = pos.seq + self.records
        self._next_at = time.monotonic() + self.interval_ms / 1000

