"""File-mode pipeline: read a file or standard input, decode, match, write the outputs.

The path of one line, top to bottom: ``read_lines`` → decoder (or dead letter) →
:class:`~cep.event.Event` → :meth:`CepOperator.on_event` → sinks.  At end of input the
watermark jumps to +∞ (:meth:`CepOperator.finish`) so every window is decided.

With :class:`~cep.app.ops.Operations` (a long run: ``--follow``, standard input, ``--http``)
the loop checks :attr:`Control.pending <cep.app.reload.Control.pending>` before each event
and while waiting for input, and runs reloads and snapshot requests there: between two
events, on this thread.  While waiting for input it also flushes the sinks, so a followed
file's alerts reach their files promptly.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cep.compiler.compiled import CompiledRule
from cep.event import Event
from cep.io.codecs import (
    DeadLetter,
    TimeSpec,
    decode_json_chunk,
    decode_lines,
    event_time_of,
    json_decoder,
    too_large,
)
from cep.io.sinks import SinkSet
from cep.io.sources import OversizedLine, open_input, read_blocks, threaded
from cep.operator.cep_operator import CepOperator
from cep.operator.prescan import Prescan
from cep.operator.records import MAX_EVENTS_PER_MATCH, dead_letter_record
from cep.operator.time_guard import DEFAULT_MAX_SKEW_MS, FutureGuard

SAMPLE_MASK = 0xFF  # with metrics, one event in 256 is timed (cep.app.metrics.SAMPLE_MASK)
FIRST_DEAD_LETTERS = 5  # how many dead letters a RunSummary describes

if TYPE_CHECKING:
    from cep.app.file_checkpoint import FileCheckpoints, Position
    from cep.app.metrics import EngineSnapshot, RunMetrics
    from cep.app.ops import Operations
    from cep.app.reload import Control

__all__ = ["FileRunOptions", "RunSummary", "run_chunks", "run_file", "serve_file"]


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
    max_events_per_match: int = MAX_EVENTS_PER_MATCH
    """The most events an alert's ``match`` shows (:class:`~cep.operator.records.AlertBuilder`)."""
    progress: bool = False
    max_future_skew_ms: int | None = DEFAULT_MAX_SKEW_MS
    """The future-skew guard's bound (:mod:`cep.operator.time_guard`); with ``follow`` the
    wall clock bounds event times too."""
    columns: tuple[str, ...] | None = None
    """The column names of a headerless CSV input (``None``: the first row is the header)."""


@dataclass
class RunSummary:
    """What a run did: counts per sink, events read, elapsed seconds, operator statistics."""

    events: int = 0
    dead_letters: int = 0
    late: int = 0
    elapsed_s: float = 0.0
    sink_counts: dict[str, int] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    resumed_after: int = 0  # the input line a checkpoint let this run start after
    first_dead_letters: list[str] = field(default_factory=list)
    """``line N: reason: error`` of the first :data:`FIRST_DEAD_LETTERS` dead letters."""
    suggested_out_of_orderness_ms: int | None = None
    """With late events: a ``max_out_of_orderness`` that would have matched 99.9 % of them
    (:class:`InputHealth`)."""
    idle_rules: list[str] = field(default_factory=list)
    """Rules with a window whose first stage took no event (no partial match ever started;
    such a rule schedules a timer for every start, so its counters tell)."""

    @property
    def events_per_s(self) -> float:
        return self.events / self.elapsed_s if self.elapsed_s > 0 else 0.0


def _records(
    opts: FileRunOptions, should_stop: Callable[[], bool] | None,
    on_idle: Callable[[], None] | None = None,
) -> Iterator[tuple[int, bytes, tuple[dict[str, Any], int] | DeadLetter]]:
    """The decoded lines of ``opts.path``.  Standard input with ``on_idle`` (a run that
    serves reloads and status) is read and decoded by a reader thread
    (:func:`~cep.io.sources.threaded`): while no line comes, ``on_idle`` runs here."""
    fh = open_input(opts.path)
    try:
        follow = {} if opts.fmt == "csv" else {
            "follow": opts.follow, "should_stop": should_stop, "on_idle": on_idle}
        if fh is sys.stdin.buffer and on_idle is not None:
            follow = {}
        records = decode_lines(fh, opts.fmt, opts.time, opts.max_event_bytes, opts.columns,
                               **follow)
        if fh is sys.stdin.buffer and on_idle is not None:
            records = threaded(records, on_idle)
        yield from records
    finally:
        if fh is not sys.stdin.buffer:
            fh.close()


def run_file(
    rules: list[CompiledRule],
    opts: FileRunOptions,
    sinks: SinkSet,
    should_stop: Callable[[], bool] | None = None,
    operator: CepOperator | None = None,
    ops: Operations | None = None,
    checkpoints: FileCheckpoints | None = None,
) -> RunSummary:
    """Run ``rules`` over one input; returns a :class:`RunSummary`.  Never raises on bad
    input lines: they go to the ``dead_letter`` sink with reason and line number.

    With ``ops`` the run serves reloads, metrics and status (see the module docstring): it
    binds and starts ``ops`` before the first event and stops it after the last.  Raises
    :class:`~cep.errors.ConfigError` when ``ops`` cannot serve its HTTP address.

    With ``checkpoints`` the run resumes from the input's checkpoint, if there is one, and
    checkpoints as it goes and before the end of input (:mod:`cep.app.file_checkpoint`);
    the output files must then be opened in append mode, after
    :meth:`~cep.app.file_checkpoint.FileCheckpoints.truncate_outputs`."""
    metrics = ops.metrics if ops is not None else None
    health = InputHealth(metrics.counting(sinks.emit) if metrics is not None else sinks.emit,
                         opts.max_out_of_orderness_ms)
    emit = health.emit
    op = operator or _operator(rules, opts, emit)
    progress = _Progress(sys.stderr) if opts.progress else None
    started = time.perf_counter()
    at = None
    if checkpoints is not None:
        at = checkpoints.resume(op)
        checkpoints.bind_outputs(sinks)
    line = _LineRun(op, opts, emit, sinks, at, checkpoints, metrics, progress)
    on_idle = _serve(ops, op, sinks, line) if ops is not None else None
    try:
        # a plain finite JSON-lines input: chunks decoded in one call, matched in batches
        if ops is None and checkpoints is None and not opts.follow and opts.fmt == "json":
            on_chunk = None if progress is None else (
                lambda events, _bytes: progress.update(events, sinks.counts.get("alerts", 0)))
            line.seq, line.dead = run_chunks(op, opts, emit, on_chunk=on_chunk)
        else:
            line.run(_records(opts, should_stop, on_idle))
        if checkpoints is not None:  # before the end of input decides the last windows
            checkpoints.save(op, sinks, line.position())
        op.finish()
        sinks.flush()
    finally:
        if ops is not None:
            ops.stop()
    if progress is not None:
        progress.done(line.seq, sinks.counts.get("alerts", 0))
    return _summary(op, sinks, health, line, time.perf_counter() - started)


def _operator(rules: list[CompiledRule], opts: FileRunOptions,
              emit: Callable[[str, dict[str, Any]], None]) -> CepOperator:
    """The operator of a file run: one input (``opts.source``) with its out-of-orderness, the
    caps, and the future-skew guard (against the wall clock too when following a file)."""
    return CepOperator(
        rules, emit, {opts.source: opts.max_out_of_orderness_ms},
        opts.max_partial_matches_per_key,
        FutureGuard(opts.max_future_skew_ms, time.time if opts.follow else None),
        max_events_per_match=opts.max_events_per_match,
    )


def _serve(ops: Operations, op: CepOperator, sinks: SinkSet,
           line: _LineRun) -> Callable[[], None]:
    """Bind ``ops`` to the run (reloads, snapshots for status) and start serving; returns what
    runs while no input line comes (pending requests served, the sinks flushed)."""
    from cep.app.reload import Control  # asyncio and the rule compiler: long runs only

    control = Control()
    ops.bind(control, lambda: _snapshot(op, ops, line.opts.source), op.reload)
    line.control = control
    service = control.service
    flush = sinks.flush

    def on_idle() -> None:
        service()
        flush()

    ops.start()
    return on_idle


class _LineRun:
    """The line-by-line path of a file run, and where it is: lines read, events and dead
    letters numbered, bytes consumed (a checkpoint's :class:`Position`).  Used for CSV, a
    followed file or standard input, a run that serves operations or checkpoints."""

    def __init__(self, op: CepOperator, opts: FileRunOptions,
                 emit: Callable[[str, dict[str, Any]], None], sinks: SinkSet,
                 at: Position | None,
                 checkpoints: FileCheckpoints | None, metrics: RunMetrics | None,
                 progress: _Progress | None) -> None:
        self.op, self.opts, self.emit, self.sinks = op, opts, emit, sinks
        self.checkpoints, self.metrics, self.progress = checkpoints, metrics, progress
        self.control: Control | None = None
        self.skip = self.line_no = at.lines if at is not None else 0
        self.seq, self.dead, self.nbytes = (at.seq, at.dead, at.bytes) if at is not None else (
            0, 0, 0)
        self.first_seq, self.first_dead = self.seq, self.dead  # (where a resumed run began)

    def position(self) -> Position:
        """Where the run is: the last line handled, the last event and dead-letter numbers."""
        from cep.app.file_checkpoint import Position  # only runs that checkpoint need it

        return Position(self.line_no, self.seq, self.dead, self.nbytes)

    def run(self, records: Iterator[tuple[int, bytes, tuple[dict[str, Any], int] | DeadLetter]]
            ) -> None:
        """Each decoded line in turn: pending operations served, a checkpoint when one is due
        (lines up to the resumed position skipped), a dead letter written, or an event
        numbered and handed to the operator."""
        control, checkpoints, metrics, progress = (
            self.control, self.checkpoints, self.metrics, self.progress)
        on_event, emit, source, skip = self.op.on_event, self.emit, self.opts.source, self.skip
        seq, dead, nbytes, line_no = self.seq, self.dead, self.nbytes, self.line_no
        if checkpoints is not None:
            from cep.app.file_checkpoint import Position  # only runs that checkpoint need it
        try:
            for line_no, raw, res in records:
                if control is not None and control.pending:
                    control.service()
                if checkpoints is not None:
                    if line_no <= skip:
                        continue
                    if checkpoints.due(seq):
                        checkpoints.save(self.op, self.sinks,
                                         Position(line_no - 1, seq, dead, nbytes))
                    nbytes += len(raw) + 1
                if type(res) is DeadLetter:
                    dead += 1
                    _dead_letter(emit, res, source, raw, line_no)
                    continue
                seq += 1
                data, ts = res  # type: ignore[misc]
                if metrics is not None and not seq & SAMPLE_MASK:
                    t0 = time.perf_counter()
                    on_event(Event(ts, seq, data, source, line_no))
                    metrics.observe_latency(time.perf_counter() - t0)
                else:
                    on_event(Event(ts, seq, data, source, line_no))
                if progress is not None and not seq & 0x3FFF:
                    progress.update(seq, self.sinks.counts.get("alerts", 0))
        finally:
            self.seq, self.dead, self.nbytes, self.line_no = seq, dead, nbytes, line_no


def _summary(op: CepOperator, sinks: SinkSet, health: InputHealth, line: _LineRun,
             elapsed_s: float) -> RunSummary:
    """The :class:`RunSummary` of a finished run (a resumed run counts only what it read
    itself)."""
    return RunSummary(
        events=line.seq - line.first_seq - op.refused,
        dead_letters=line.dead - line.first_dead + op.refused,
        late=op.late,
        elapsed_s=elapsed_s,
        sink_counts=dict(sinks.counts),
        stats=op.stats(),
        resumed_after=line.skip,
        first_dead_letters=health.first_dead_letters,
        suggested_out_of_orderness_ms=health.disorder_quantile(0.999),
        idle_rules=[rs.rule.name for rs in op.rules
                    if not rs.draining and rs.rule.nfa.window_ms and not (
                        rs.counter or rs.matches or rs.timeouts or rs.evictions or rs.keys)],
    )


def serve_file(
    rules: list[CompiledRule], opts: FileRunOptions, sinks: SinkSet, ops: Operations | None,
    checkpoints: FileCheckpoints | None = None,
) -> RunSummary:
    """:func:`run_file` as the main job of a process: on the main thread SIGHUP asks ``ops``
    for a reload and, with ``opts.follow``, SIGTERM ends the run at the end of what has been
    written so far (every window decided, sinks flushed).  The previous handlers are put
    back afterwards."""
    stop = threading.Event()
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        if ops is not None and hasattr(signal, "SIGHUP"):
            previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, ops.on_sighup)
        if opts.follow:
            previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        return run_file(rules, opts, sinks, should_stop=stop.is_set, ops=ops,
                        checkpoints=checkpoints)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_chunks(
    op: CepOperator, opts: FileRunOptions, emit: Callable[[str, dict[str, Any]], None],
    seq: int = 0, on_chunk: Callable[[int, int], None] | None = None,
) -> tuple[int, int]:
    """Read a finite JSON-lines input (``opts.path``) in chunks of whole lines: decode each
    chunk with one call (:func:`~cep.io.codecs.decode_json_chunk`) and hand the objects to
    :meth:`CepOperator.on_batch`; a chunk that cannot be decoded at once (a bad line in it)
    goes line by line.  Arrival numbers continue from ``seq``; line numbers start at 1.
    ``on_chunk(last arrival number, bytes read)`` is called after each chunk (a progress
    display).  Does not finish ``op`` (more input may follow: ``cep replay`` of several
    files).  Returns ``(last arrival number, dead letters)``.  Raises ``OSError``."""
    source = opts.source
    spec = opts.time
    max_bytes = opts.max_event_bytes
    time_field = spec.field if spec.unit == "ms" else None  # None: every time via odd_time
    decode = json_decoder(spec, max_bytes)
    on_event = op.on_event
    dead = line = nbytes = 0

    def one_line(raw: bytes, line_no: int, seq: int) -> int:
        """Decode and handle line ``line_no`` alone; returns the last arrival number."""
        nonlocal dead
        if not raw.strip():
            return seq
        res = decode(raw)
        if type(res) is DeadLetter:
            dead += 1
            _dead_letter(emit, res, source, raw, line_no)
            return seq
        seq += 1
        on_event(Event(res[1], seq, res[0], source, line_no))  # type: ignore[index]
        return seq

    # lines no rule wants passed over undecoded, in C, when the extension is built
    prescan = Prescan(op, source, time_field, max_bytes) if time_field is not None else None
    fh = open_input(opts.path)
    try:
        for chunk in read_blocks(fh, max_line=max_bytes):
            if type(chunk) is OversizedLine:
                line += 1
                dead += 1
                _dead_letter(emit, too_large(chunk, max_bytes), source, chunk.head, line)
                continue
            assert type(chunk) is bytes
            program = prescan.program() if prescan is not None else None
            if program is not None:
                seq, line = prescan.run(program, chunk, seq, line, one_line)  # type: ignore[union-attr]
                if on_chunk is not None:
                    nbytes += len(chunk) + 1
                    on_chunk(seq, nbytes)
                continue
            n = chunk.count(b"\n") + 1
            objs = decode_json_chunk(chunk, n) if len(chunk) <= max_bytes else None
            if objs is not None:
                base = line

                def odd_time(data: dict[str, Any], line_no: int, chunk: bytes = chunk,
                             base: int = base) -> int | None:
                    nonlocal dead
                    ts = event_time_of(data, spec)
                    if type(ts) is DeadLetter:
                        dead += 1
                        raw = chunk.split(b"\n")[line_no - base - 1].rstrip(b"\r")
                        _dead_letter(emit, ts, source, raw, line_no)
                        return None
                    return ts  # type: ignore[return-value]

                seq, line = op.on_batch(objs, source, time_field, seq, line, odd_time)
            else:
                for raw in chunk.split(b"\n"):
                    line += 1
                    seq = one_line(raw.rstrip(b"\r"), line, seq)
            if on_chunk is not None:
                nbytes += len(chunk) + 1
                on_chunk(seq, nbytes)
    finally:
        if fh is not sys.stdin.buffer:
            fh.close()
    return seq, dead


class InputHealth:
    """What a run saw of its input's quality, from the records it emits: the first dead
    letters described (``line N: reason: error``) and how out of order the late events were.

    A late event's *disorder* is the largest event time seen before it minus its own (ms):
    the ``--max-out-of-orderness`` that would have matched it.  Disorders are counted in
    powers-of-two buckets (bucket ``i`` holds ``[2^(i-1), 2^i)``), so memory is constant and
    a quantile is an upper bound within a factor of two.

    Args:
        emit: the emit to wrap (:meth:`emit` passes every record on to it).
        ooo_ms: the run's ``max_out_of_orderness`` (a late record's watermark is the largest
            time seen − this − 1).
    """

    def __init__(self, emit: Callable[[str, dict[str, Any]], None], ooo_ms: int) -> None:
        self._emit = emit
        self._ooo = ooo_ms
        self.first_dead_letters: list[str] = []
        self.disorder = [0] * 64

    def emit(self, name: str, record: dict[str, Any]) -> None:
        """Note a dead letter or a late event, then pass the record on."""
        if name == "late":
            gap = int(record.get("watermark", 0)) + self._ooo + 1 - int(record["event_time"])
            self.disorder[min(max(gap, 1).bit_length(), 63)] += 1
        elif name == "dead_letter" and len(self.first_dead_letters) < FIRST_DEAD_LETTERS:
            where = f"line {record['line']}: " if "line" in record else ""
            self.first_dead_letters.append(f"{where}{record.get('reason')}: "
                                           f"{record.get('error')}")
        self._emit(name, record)

    def disorder_quantile(self, q: float) -> int | None:
        """An upper bound (ms) of the ``q`` quantile of the late events' disorder; ``None``
        without late events."""
        total = sum(self.disorder)
        if not total:
            return None
        need, seen = q * total, 0
        for i, n in enumerate(self.disorder):
            seen += n
            if seen >= need:
                return (1 << i) - 1 if i else 0
        return (1 << 63) - 1


def _dead_letter(emit: Callable[[str, dict[str, Any]], None], bad: DeadLetter, source: str,
                 raw: bytes, line: int) -> None:
    """Send an input line that could not become an event to the ``dead_letter`` sink."""
    emit("dead_letter", dead_letter_record(bad.reason, bad.error, source,
                                           raw.decode("utf-8", "replace"), line=line))


def _snapshot(op: CepOperator, ops: Operations, source: str) -> EngineSnapshot:
    from cep.app.metrics import operator_snapshot

    ops.metrics.events[source] = op.events_in
    return operator_snapshot([op], "file", ops.metrics, ops.file_of)


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
