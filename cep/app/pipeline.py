"""File-mode pipeline: read a file or standard input, decode, match, write the outputs.

The path of one line, top to bottom: ``read_lines`` → decoder (or dead letter) →
:class:`~cep.event.Event` → :meth:`CepOperator.on_event` → sinks.  At end of input the
watermark jumps to +∞ (:meth:`CepOperator.finish`) so every window is decided.
"""

from __future__ import annotations

import io
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from cep.compiler.compiled import CompiledRule
from cep.event import Event
from cep.io.codecs import DeadLetter, TimeSpec, csv_rows, json_decoder
from cep.io.sinks import SinkSet
from cep.io.sources import open_input, read_lines
from cep.operator.cep_operator import CepOperator
from cep.operator.records import dead_letter_record

__all__ = ["FileRunOptions", "RunSummary", "run_file"]


@dataclass
class FileRunOptions:
    """How to read one input.  ``path`` ``-`` is standard input; ``fmt`` ``json`` (JSON lines)
    or ``csv``; ``max_out_of_orderness_ms`` feeds the watermark; ``source`` names the source
    for ``from`` clauses; ``follow`` keeps reading a growing file."""

    path: str = "-"
    fmt: str = "json"
    time: TimeSpec = field(default_factory=TimeSpec)
    max_out_of_orderness_ms: int = 0
    source: str = "input"
    follow: bool = False
    max_event_bytes: int = 1 << 20
    max_partial_matches_per_key: int = 10_000
    progress: bool = False


@dataclass
class RunSummary:
    """What a run did: counts per sink, events read, elapsed seconds, operator statistics."""

    events: int = 0
    dead_letters: int = 0
    late: int = 0
    elapsed_s: float = 0.0
    sink_counts: dict[str, int] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def events_per_s(self) -> float:
        return self.events / self.elapsed_s if self.elapsed_s > 0 else 0.0


def _records(
    opts: FileRunOptions, should_stop: Callable[[], bool] | None
) -> Iterator[tuple[int, bytes, tuple[dict[str, Any], int] | DeadLetter]]:
    fh = open_input(opts.path)
    try:
        if opts.fmt == "csv":
            text = io.TextIOWrapper(fh, encoding="utf-8", errors="replace", newline="")
            for line_no, raw, res in csv_rows(text, opts.time):
                yield line_no, raw.encode(), res
            return
        decode = json_decoder(opts.time, opts.max_event_bytes)
        for line_no, raw in read_lines(fh, follow=opts.follow, should_stop=should_stop):
            yield line_no, raw, decode(raw)
    finally:
        if fh is not sys.stdin.buffer:
            fh.close()


def run_file(
    rules: list[CompiledRule],
    opts: FileRunOptions,
    sinks: SinkSet,
    should_stop: Callable[[], bool] | None = None,
    operator: CepOperator | None = None,
) -> RunSummary:
    """Run ``rules`` over one input; returns a :class:`RunSummary`.  Never raises on bad
    input lines: they go to the ``dead_letter`` sink with reason and line number."""
    op = operator or CepOperator(
        rules, sinks.emit, {opts.source: opts.max_out_of_orderness_ms},
        opts.max_partial_matches_per_key,
    )
    source = opts.source
    on_event = op.on_event
    emit = sinks.emit
    progress = _Progress(sys.stderr) if opts.progress else None
    started = time.perf_counter()
    seq = 0
    dead = 0
    for line_no, raw, res in _records(opts, should_stop):
        if type(res) is DeadLetter:
            dead += 1
            emit("dead_letter", dead_letter_record(
                res.reason, res.error, source, raw.decode("utf-8", "replace"), line=line_no))
            continue
        seq += 1
        data, ts = res  # type: ignore[misc]
        on_event(Event(ts, seq, data, source, line_no))
        if progress is not None and not seq & 0x3FFF:
            progress.update(seq, sinks.counts.get("alerts", 0))
    op.finish()
    sinks.flush()
    if progress is not None:
        progress.done(seq, sinks.counts.get("alerts", 0))
    elapsed = time.perf_counter() - started
    return RunSummary(
        events=seq,
        dead_letters=dead,
        late=op.late,
        elapsed_s=elapsed,
        sink_counts=dict(sinks.counts),
        stats=op.stats(),
    )


class _Progress:
    """A single status line on a terminal, rewritten at most twice a second."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.start = time.perf_counter()
        self.last = 0.0

    def update(self, events: int, alerts: int) -> None:
        now = time.perf_counter()
        if now - self.last < 0.5:
            return
        self.last = now
        rate = events / max(now - self.start, 1e-9)
        self.stream.write(f"\r{events:,} events  {rate:,.0f} events/s  {alerts:,} alerts ")
        self.stream.flush()

    def done(self, events: int, alerts: int) -> None:
        self.last = 0.0
        self.update(events, alerts)
        self.stream.write("\n")
        self.stream.flush()
