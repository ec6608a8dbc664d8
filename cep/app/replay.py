"""Replay history through rules (``cep replay``) and backtest rule changes (``--compare``).

The input is a range of Kafka topics — by message timestamps (``offsets_for_times``) or by
offsets, every partition assigned by hand (no consumer group, nothing committed, so a live
group's offsets are untouched) — or files.  Event time comes from the data, as in a live
run, and events flow through the same decoders and the same
:class:`~cep.operator.cep_operator.CepOperator`: one operator per partition number of the
source topics, exactly as :mod:`cep.app.kafka_pipeline` runs them, or one for files.  Rules
not co-partitioned with the topics (a source without ``partition_key``, or one whose
producers key by fields outside the rule's ``key by``: :func:`co_partitioned`) run instead
in one operator that reads every partition, its watermark the minimum over them — what a
live run reaches through its repartition topics.  When a
partition reaches the end of its range it counts as idle; at the end of the range the
watermark jumps to +∞ so every window is decided (``keep_open`` leaves them open, as a live
run would be at that point).

**Backtest.**  With two rule sets, every event is decoded once and fed to an operator of
each set.  The headline is by entity (:mod:`cep.app.backtest`): per rule, keys that alert
only in the new version, keys that stop alerting, keys whose alerts changed in count or
window — alerts paired by rule, key and overlapping ``[start, end]``.  As detail, alerts are
also paired by rule name, key, timed-out flag and the source coordinates (topic, partition,
offset — or file and line) of their matched events, not by ``alert_id``, which includes the
rule version.  All times are epoch milliseconds; durations are seconds where named ``_s``.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from cep.app.backtest import CompareResult, RuleDiff, compare, compare_json, render_compare
from cep.app.gc_policy import collect_less
from cep.app.settings import ReplayPlan, SettingsError
from cep.compiler.compiled import CompiledRule
from cep.config import KafkaConfig, SourceConfig
from cep.event import Event
from cep.io.codecs import (
    DeadLetter,
    TimeSpec,
    decode_lines,
    encode_json,
    json_decoder,
    msgpack_decoder,
)
from cep.io.sinks import SinkSet
from cep.io.sources import open_input
from cep.operator.cep_operator import CepOperator
from cep.operator.prescan import Prescan
from cep.operator.records import MAX_EVENTS_PER_MATCH, dead_letter_record
from cep.operator.time_guard import DEFAULT_MAX_SKEW_MS, FutureGuard

__all__ = [
    "ReplayOptions", "ReplaySummary", "RuleCounts", "CompareResult", "RuleDiff",
    "replay_files", "replay_kafka", "run_request", "render_summary",
    "render_compare", "compare_json", "co_partitioned",
]

Coord = tuple[Any, ...]
Signature = tuple[Any, ...]


@dataclass
class ReplayOptions:
    """How to run.  ``rule_sets`` holds one rule set (a replay) or two (old, new: a
    backtest).  ``max_out_of_orderness_ms`` applies to file inputs (Kafka sources carry
    their own).  ``sinks`` receives the outputs of the (first) rule set: alerts, ``late``,
    ``dead_letter``; ``alert_topic`` sends alerts to a Kafka topic instead.  ``progress``
    draws a progress bar on standard error.  ``max_events_per_match`` cuts long alerts down
    (not in a backtest, which pairs alerts by all their events)."""

    rule_sets: list[list[CompiledRule]]
    sinks: SinkSet | None = None
    alert_topic: str | None = None
    max_out_of_orderness_ms: int = 0
    max_partial_matches_per_key: int = 10_000
    max_future_skew_ms: int | None = DEFAULT_MAX_SKEW_MS
    max_events_per_match: int = MAX_EVENTS_PER_MATCH
    keep_open: bool = False
    progress: bool = False
    sample_every_s: float = 0.25


@dataclass
class RuleCounts:
    """Per rule of one rule set: alerts (matches), timed-out partial matches, and the peak
    number of live partial matches seen (sampled every ``sample_every_s`` — less often when
    a sample takes over 1 % of that time — and before the end, summed over partitions)."""

    severity: str
    alerts: int = 0
    timeouts: int = 0
    peak_partial_matches: int = 0


@dataclass
class ReplaySummary:
    """What a replay did.  ``counts[i]`` is rule name → :class:`RuleCounts` for rule set
    ``i``; ``ranges`` is ``"topic/partition" → (first, end)`` offsets for Kafka;
    ``all_partitions`` names the rules that ran in one operator over every partition (not
    co-partitioned with the topics), the others ran per partition."""

    events: int = 0
    dead_letters: int = 0
    late: int = 0
    elapsed_s: float = 0.0
    counts: list[dict[str, RuleCounts]] = field(default_factory=list)
    ranges: dict[str, tuple[int, int]] = field(default_factory=dict)
    compare: CompareResult | None = None
    all_partitions: list[str] = field(default_factory=list)

    @property
    def events_per_s(self) -> float:
        return self.events / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def alerts(self) -> int:
        return sum(c.alerts + c.timeouts for c in self.counts[0].values()) if self.counts else 0


# ----------------------------------------------------------------------------- engine


class _Engine:
    """Operators per partition number and rule set, the emit functions, the counting, and
    (for a backtest) the signatures of every alert.

    ``inputs_of(pid)`` is ``input name → max out-of-orderness (ms)`` of partition number
    ``pid``.  Rules for which ``co_partitioned(rule)`` holds run in one operator per
    partition number (as a live run's source tasks do); every other rule runs in one
    operator per rule set that reads every input of ``all_inputs`` (its watermark the
    minimum over them), since the events of one of its keys may lie in any partition."""

    def __init__(self, opts: ReplayOptions, inputs_of: Callable[[int], dict[str, int]],
                 all_inputs: dict[str, int] | None = None,
                 co_partitioned: Callable[[CompiledRule], bool] | None = None) -> None:
        self.opts = opts
        self.inputs_of = inputs_of
        self.compare = len(opts.rule_sets) > 1
        split = co_partitioned or (lambda _rule: True)
        self.direct = [[r for r in rules if split(r)] for rules in opts.rule_sets]
        merged = [[r for r in rules if not split(r)] for rules in opts.rule_sets]
        self.ops: dict[int, list[CepOperator]] = {}
        self.made: list[tuple[int, CepOperator]] = []  # (rule set, operator), every one
        self.counts = [{r.name: RuleCounts(r.severity) for r in rules}
                       for rules in opts.rule_sets]
        self.late = 0
        self.dead = 0
        self.pending: list[tuple[str, dict[str, Any]]] = []  # for a Kafka alert topic
        self.signed: list[list[tuple[Signature, dict[str, Any]]]] = [[] for _ in opts.rule_sets]
        self.coords: dict[int, tuple[Coord, dict[str, Any]]] = {}
        self._since_prune = 0
        self._baseline = _pin_refcount()
        self._next_sample = 0.0
        self.merged = [self._operator(i, rules, all_inputs or {})
                       for i, rules in enumerate(merged) if rules]

    def operators(self, pid: int) -> list[CepOperator]:
        """The operators an event of partition number ``pid`` goes to: the partition's own
        (created on first use) and the merged ones."""
        ops = self.ops.get(pid)
        if ops is None:
            ops = self.ops[pid] = [self._operator(i, rules, self.inputs_of(pid))
                                   for i, rules in enumerate(self.direct) if rules]
            ops += self.merged
        return ops

    def _operator(self, i: int, rules: list[CompiledRule], inputs: dict[str, int]
                  ) -> CepOperator:
        op = CepOperator(rules, self._emitter(i), inputs,
                         self.opts.max_partial_matches_per_key,
                         FutureGuard(self.opts.max_future_skew_ms),
                         # (a backtest pairs alerts by all their events)
                         max_events_per_match=None if self.compare
                         else self.opts.max_events_per_match)
        self.made.append((i, op))
        if self.compare:  # signatures find matched events by identity (remember)
            op.hold_after = None
        return op


    def _emitter(self, i: int) -> Callable[[str, dict[str, Any]], None]:
        counts = self.counts[i]
        sinks = self.opts.sinks if i == 0 and not self.compare else None
        to_topic = self.opts.alert_topic is not None and i == 0 and not self.compare
        signed = self.signed[i] if self.compare else None
        pending = self.pending

        def emit(sink: str, rec: dict[str, Any]) -> None:
            if sink == "late" or sink == "dead_letter":  # (refused event times)
                if i == 0:
                    if sink == "late":
                        self.late += 1
                    else:
                        self.dead += 1
                    if sinks is not None:
                        sinks.emit(sink, rec)
                return
            c = counts.get(rec["rule"])
            if c is None:
                c = counts[rec["rule"]] = RuleCounts(rec.get("severity", ""))
            if rec.get("timed_out"):
                c.timeouts += 1
            else:
                c.alerts += 1
            if signed is not None:
                signed.append((self._signature(rec), rec))
            elif to_topic:
                pending.append((sink, rec))
            elif sinks is not None:
                sinks.emit(sink, rec)

        return emit

    def dead_letter(self, rec: dict[str, Any]) -> None:
        self.dead += 1
        if self.opts.sinks is not None:
            self.opts.sinks.emit("dead_letter", rec)

    # --- backtest signatures

    def remember(self, ev: Event, coord: Coord) -> None:
        """Record where an event came from (backtests only); forget events nobody holds."""
        self.coords[id(ev.data)] = (coord, ev.data)
        self._since_prune += 1
        if self._since_prune >= 65_536:
            self._since_prune = 0
            base = self._baseline
            getrc = sys.getrefcount
            dead = [k for k, v in self.coords.items() if getrc(v[1]) <= base]
            for k in dead:
                del self.coords[k]

    def _signature(self, rec: dict[str, Any]) -> Signature:
        coords = sorted(self.coords[id(e)][0] for evs in rec["match"].values() for e in evs)
        key = orjson.dumps(rec["key"], option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS,
                           default=str)
        rec["_coords"] = coords
        return (rec["rule"], key, bool(rec.get("timed_out")), tuple(coords))

    # --- sampling and the end

    def sample(self, force: bool = False) -> None:
        """Count the live partial matches (a walk over every key), at most every
        ``sample_every_s`` and at most 1 % of the time: the next sample waits at least 100
        times as long as this one took."""
        now = time.monotonic()
        if not force and now < self._next_sample:
            return
        live: list[Counter[str]] = [Counter() for _ in self.counts]
        for i, op in self.made:
            for rs in op.rules:
                live[i][rs.rule.name] += rs.partial_matches()
        for i, counts in enumerate(self.counts):
            for name, n in live[i].items():
                c = counts.get(name)
                if c is not None and n > c.peak_partial_matches:
                    c.peak_partial_matches = n
        took = time.monotonic() - now
        self._next_sample = now + max(self.opts.sample_every_s, 100 * took)

    def input_done(self, pid: int, input_id: str) -> None:
        """An input's range is exhausted: it is idle, so the other inputs of the partition's
        operators (and of the merged ones) alone move their watermarks."""
        for op in self.operators(pid):
            before = op.watermark
            wm = op.watermarks.set_idle(input_id)
            if wm > before:
                op.advance(wm)

    def finish(self) -> None:
        self.sample(force=True)
        if not self.opts.keep_open:
            for _i, op in self.made:
                op.finish()

    def compare_result(self) -> CompareResult:
        return compare(self.signed[0], self.signed[1],
                       [name for counts in self.counts for name in counts])

    def summary(self, events: int, elapsed_s: float) -> ReplaySummary:
        return ReplaySummary(
            events=events, dead_letters=self.dead, late=self.late, elapsed_s=elapsed_s,
            counts=self.counts, compare=self.compare_result() if self.compare else None)


def _pin_refcount() -> int:
    """The reference count of an event object that only the coordinate table holds (how
    :meth:`_Engine.remember` tells a forgotten event)."""
    probe: dict[int, tuple[Coord, dict[str, Any]]] = {}
    probe[0] = ((), {})
    return sys.getrefcount(probe[0][1])


class _Bar:
    """A rich progress bar on standard error: events, events/s, ETA.  ``total`` is in the
    unit the caller advances by (messages or bytes).  Redrawn by :meth:`update` at most
    every ``every_s`` seconds, on the caller's thread: rich's own refresh thread cost 6 %
    of a file replay's CPU time (five rules, 1 M events), this costs none measurable."""

    def __init__(self, show: bool, total: int | None, what: str, every_s: float = 0.5) -> None:
        self.show = show
        self.started = time.perf_counter()
        self.every_s = every_s
        self.next_draw = 0.0
        if not show:
            return
        from rich.progress import (  # (only with a bar: the import costs 10 ms)
            BarColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn(),
            TextColumn("{task.fields[events]:>12,} events"),
            TextColumn("{task.fields[rate]:>9,.0f} events/s"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            console=Console(stderr=True), transient=False, auto_refresh=False)
        self.progress.start()
        self.task = self.progress.add_task(what, total=total, events=0, rate=0.0)

    def update(self, completed: int, events: int, force: bool = False) -> None:
        if not self.show:
            return
        now = time.perf_counter()
        if now < self.next_draw and not force:
            return
        self.next_draw = now + self.every_s
        rate = events / max(now - self.started, 1e-9)
        self.progress.update(self.task, completed=completed, events=events, rate=rate,
                             refresh=True)

    def close(self, completed: int, events: int) -> None:
        if self.show:
            self.update(completed, events, force=True)
            self.progress.stop()


# ----------------------------------------------------------------------------- files


def replay_files(paths: list[str], opts: ReplayOptions, fmt: str = "json",
                 time_spec: TimeSpec | None = None, source: str = "input",
                 columns: tuple[str, ...] | None = None) -> ReplaySummary:
    """Replay JSON-lines (or CSV: ``columns`` for headerless files) files, plain or
    compressed (:func:`~cep.io.sources.open_input`), read one after the other as one source
    named ``source``; line numbers restart with each file, arrival numbers run on.

    A replay of JSON lines with one rule set runs on ``cep run``'s batched path
    (:func:`~cep.app.pipeline.run_chunks`: chunks decoded at once, the generated loop, the
    C scanner when built), so it goes as fast and raises the same alerts.  A backtest (two
    operators fed each event, and every event's ``(file, line)`` remembered for the
    event-level detail) and CSV go line by line through the same decoders.  Raises
    ``OSError`` for an unreadable file and ``ValueError`` when ``opts.alert_topic`` is
    set."""
    if opts.alert_topic is not None:
        raise ValueError("alerts of a file replay go to files (--output), not to a topic")
    spec = time_spec or TimeSpec()
    eng = _Engine(opts, lambda pid: {source: opts.max_out_of_orderness_ms})
    ops = eng.operators(0)
    total = sum(Path(p).stat().st_size for p in paths)
    bar = _Bar(opts.progress, total, "replay")
    started = time.perf_counter()
    seq = 0
    done_bytes = 0
    for path in paths:
        if fmt == "json" and len(ops) == 1:
            seq = _chunked_file(eng, ops[0], path, spec, source, seq, bar, done_bytes)
        else:
            seq = _file_lines(eng, ops, path, fmt, spec, source, seq, bar, done_bytes,
                              columns)
        done_bytes += Path(path).stat().st_size
    eng.finish()
    if opts.sinks is not None:
        opts.sinks.flush()
    bar.close(done_bytes, seq)
    return eng.summary(seq, time.perf_counter() - started)


def _chunked_file(eng: _Engine, op: CepOperator, path: str, spec: TimeSpec, source: str,
                  seq: int, bar: _Bar, done_bytes: int) -> int:
    """One JSON-lines file through ``cep run``'s chunk loop; dead letters reach the
    engine's emitter (counted there).  Returns the last arrival number."""
    from cep.app.pipeline import FileRunOptions, run_chunks

    run = FileRunOptions(path=path, fmt="json", time=spec, source=source,
                         max_out_of_orderness_ms=eng.opts.max_out_of_orderness_ms)
    sample, update = eng.sample, bar.update

    def on_chunk(events: int, nbytes: int) -> None:
        sample()
        update(done_bytes + nbytes, events)

    seq, _dead = run_chunks(op, run, op.emit, seq, on_chunk)
    return seq


def _file_lines(eng: _Engine, ops: list[CepOperator], path: str, fmt: str, spec: TimeSpec,
                source: str, seq: int, bar: _Bar, done_bytes: int,
                columns: tuple[str, ...] | None = None) -> int:
    """One file line by line, each event to every operator (a backtest remembers its
    ``(file, line)``).  Returns the last arrival number."""
    (op, *others) = ops
    on_event = op.on_event
    remember = eng.remember if eng.compare else None
    with open_input(path) as fh:
        for line_no, raw, res in decode_lines(fh, fmt, spec, columns=columns):
            if type(res) is DeadLetter:
                eng.dead_letter(dead_letter_record(
                    res.reason, res.error, source, raw.decode("utf-8", "replace"),
                    line=line_no))
                continue
            seq += 1
            data, ts = res  # type: ignore[misc]
            ev = Event(ts, seq, data, source, line_no)
            if remember is not None:
                remember(ev, (path, line_no))
            on_event(ev)
            for other in others:
                other.on_event(ev)
            if not seq & 0x1FFF:
                eng.sample()
                bar.update(done_bytes + fh.tell(), seq)
    return seq


# ----------------------------------------------------------------------------- Kafka


def replay_kafka(kafka: KafkaConfig, sources: list[SourceConfig], opts: ReplayOptions,
                 start: Any, end: Any) -> ReplaySummary:
    """Replay a range of the Kafka ``sources``' topics (``start``/``end`` are
    :class:`~cep.io.kafka.OffsetBound`).  The topics must be co-partitioned, as in a live run.
    Raises ``KafkaError`` (the broker) and ``ValueError`` (a topic that does not exist, or
    topics with different partition counts)."""
    import asyncio  # (Kafka only: a file replay starts 18 ms sooner without it)

    return asyncio.run(_replay_kafka(kafka, sources, opts, start, end))


async def _replay_kafka(kafka: KafkaConfig, sources: list[SourceConfig], opts: ReplayOptions,
                        start: Any, end: Any) -> ReplaySummary:
    """:func:`replay_kafka` on the event loop: resolve the range, feed every fetched batch
    (:class:`_KafkaFeed`), send alerts to ``opts.alert_topic`` as they come, and decide what
    is left at the end (unless ``keep_open``)."""
    from aiokafka import AIOKafkaConsumer

    from cep.io.kafka import client_options, resolve_offset_range

    by_topic = {s.topic or "": s for s in sources}
    tps = await _topic_partitions(kafka, by_topic)
    options = client_options(kafka)
    consumer = AIOKafkaConsumer(
        enable_auto_commit=False, group_id=None, isolation_level="read_committed",
        fetch_max_bytes=64 << 20, max_partition_fetch_bytes=16 << 20, **options)
    await consumer.start()
    out = _AlertOut(opts.alert_topic)
    try:
        ranges = await resolve_offset_range(consumer, tps, start, end)
        live = {tp: r for tp, r in ranges.items() if r[1] > r[0]}
        eng = _kafka_engine(opts, by_topic, live, sources)
        if not eng.compare:
            await out.start(options)
        feed = _KafkaFeed(eng, by_topic, kafka.max_event_bytes)
        bar = _Bar(opts.progress, sum(b - a for a, b in live.values()), "replay")
        started = time.perf_counter()
        await _consume(consumer, live, feed, bar, out)
        eng.finish()
        await out.finish(eng.pending)
        if opts.sinks is not None:
            opts.sinks.flush()
        bar.close(feed.consumed, feed.seq)
        summary = eng.summary(feed.seq, time.perf_counter() - started)
        summary.ranges = {f"{tp.topic}/{tp.partition}": r for tp, r in sorted(ranges.items())}
        summary.all_partitions = sorted({rs.rule.name for op in eng.merged for rs in op.rules})
        return summary
    finally:
        await consumer.stop()
        await out.stop()


async def _topic_partitions(kafka: KafkaConfig, by_topic: dict[str, SourceConfig]
                            ) -> list[Any]:
    """Every ``TopicPartition`` of the source topics, by topic then partition.  Raises
    ``ValueError`` for a topic that does not exist or topics with different partition
    counts, ``KafkaError`` when the broker does not answer."""
    from aiokafka import TopicPartition

    from cep.io.kafka import topic_partitions

    sizes = await topic_partitions(kafka, list(by_topic))
    missing = [t for t in by_topic if t not in sizes]
    if missing:
        raise ValueError(f"no such topic: {', '.join(missing)}")
    if len(set(sizes.values())) > 1:
        raise ValueError("the topics must be co-partitioned (same partition count): "
                         + ", ".join(f"{t} has {n}" for t, n in sorted(sizes.items())))
    return [TopicPartition(t, p) for t in sorted(by_topic) for p in range(sizes[t])]


def _kafka_engine(opts: ReplayOptions, by_topic: dict[str, SourceConfig],
                  live: dict[Any, tuple[int, int]], sources: list[SourceConfig]) -> _Engine:
    """The engine over the partitions with a non-empty range: one watermark input
    ``"<topic>/<partition>"`` per partition, with its source's ``max_out_of_orderness``."""

    def ooo(tp: Any) -> int:
        return by_topic[tp.topic].max_out_of_orderness_ms

    def inputs_of(pid: int) -> dict[str, int]:
        return {f"{tp.topic}/{pid}": ooo(tp) for tp in live if tp.partition == pid}

    every = {f"{tp.topic}/{tp.partition}": ooo(tp) for tp in live}
    return _Engine(opts, inputs_of, every, lambda rule: co_partitioned(rule, sources))


async def _consume(consumer: Any, live: dict[Any, tuple[int, int]], feed: _KafkaFeed,
                   bar: _Bar, out: _AlertOut) -> None:
    """Read every partition's range to its end (:func:`~cep.io.kafka.read_offset_range`),
    feeding each fetched batch; a partition whose range is done becomes idle."""
    from cep.io.kafka import read_offset_range

    eng = feed.eng
    async for batch, finished in read_offset_range(consumer, live):
        for tp, msgs in batch.items():
            feed.feed(tp, msgs)
        for tp in finished:
            if tp in live:
                eng.input_done(tp.partition, f"{tp.topic}/{tp.partition}")
        eng.sample()
        bar.update(feed.consumed, feed.seq)
        await out.send(eng.pending)


class _KafkaFeed:
    """Fetched messages to the engine's operators.  A partition whose events go to one
    operator (a replay whose rules all run per partition) takes the batched path of a live
    source task (:func:`~cep.app.kafka_feed.feed_batch`: decoded at once, the generated
    loop); otherwise each message is decoded once and fed to every operator in turn (a
    backtest remembers where each event came from), so that the operators' outputs
    interleave as the events do.  ``seq`` is the last arrival number used, ``consumed`` the
    messages read."""

    def __init__(self, eng: _Engine, by_topic: dict[str, SourceConfig], max_bytes: int
                 ) -> None:
        from cep.io.kafka import MessageDecoder

        self.eng = eng
        self.decoders = {t: MessageDecoder(s, max_bytes) for t, s in by_topic.items()}
        # (the message-by-message loop calls the codec MessageDecoder wraps: one call less)
        self.codecs = {t: (msgpack_decoder if s.format == "msgpack" else json_decoder)(
            TimeSpec(s.event_time, s.event_time_unit), max_bytes) for t, s in by_topic.items()}
        self.seq = 0
        self.consumed = 0
        self.prescans: dict[str, Prescan | None] = {}  # by input

    def feed(self, tp: Any, msgs: list[Any]) -> None:
        """The messages of one fetched batch of topic-partition ``tp``, in offset order."""
        from cep.app.kafka_feed import feed_batch, prescan_for

        ops = self.eng.operators(tp.partition)
        input_id = f"{tp.topic}/{tp.partition}"
        if len(ops) == 1 and not self.eng.compare:
            decoder = self.decoders[tp.topic]
            if input_id not in self.prescans:
                self.prescans[input_id] = prescan_for(ops[0], decoder, input_id)
            self.seq = feed_batch(ops[0], decoder, msgs, partition=tp.partition, expected=-1,
                                  input_name=input_id, seq=self.seq,
                                  dead_letter=self.eng.dead_letter,
                                  prescan=self.prescans[input_id]).seq
        else:
            self._each(ops, tp, msgs, input_id)
        self.consumed += len(msgs)

    def _each(self, ops: list[CepOperator], tp: Any, msgs: list[Any], input_id: str) -> None:
        """Message by message, each event to every operator of ``ops`` in turn."""
        (op, *others) = ops
        on_event = op.on_event
        decode, mdec = self.codecs[tp.topic], self.decoders[tp.topic]
        remember = self.eng.remember if self.eng.compare else None
        name, pid, seq = mdec.source, tp.partition, self.seq
        for msg in msgs:
            value = msg.value
            res = decode(value) if value is not None else None
            if type(res) is not tuple:  # the live decoder builds the dead-letter record
                self.eng.dead_letter(mdec.decode(value, pid, msg.offset, seq + 1))  # type: ignore[arg-type]
                continue
            seq += 1
            ev = Event(res[1], seq, res[0], name, msg.offset, pid)
            if remember is not None:
                remember(ev, (tp.topic, pid, msg.offset))
            on_event(ev, input_id)
            for other in others:
                other.on_event(ev, input_id)
        self.seq = seq


class _AlertOut:
    """Alerts to a Kafka topic (``topic`` None: nowhere), sent after each fetched batch and
    waited for at the end."""

    def __init__(self, topic: str | None) -> None:
        self.topic = topic
        self.producer: Any = None
        self.futures: list[Any] = []

    async def start(self, options: dict[str, Any]) -> None:
        """Start the producer (idempotent) when there is a topic."""
        from aiokafka import AIOKafkaProducer

        if self.topic is not None:
            self.producer = AIOKafkaProducer(linger_ms=20, enable_idempotence=True, **options)
            await self.producer.start()

    async def send(self, pending: list[tuple[str, dict[str, Any]]]) -> None:
        """Send and clear ``pending`` ``(sink, record)`` pairs (kept when there is no
        producer: a backtest or a replay into files)."""
        from cep.io.kafka import encode_record

        if self.producer is not None and pending:
            self.futures += await _send(self.producer, self.topic or "", pending,
                                        encode_record)

    async def finish(self, pending: list[tuple[str, dict[str, Any]]]) -> None:
        """Send the rest and wait until every alert is acknowledged."""
        if self.producer is None:
            return
        await self.send(pending)
        await self.producer.flush()
        for f in self.futures:
            await f

    async def stop(self) -> None:
        if self.producer is not None:
            await self.producer.stop()


def co_partitioned(rule: CompiledRule, sources: list[SourceConfig]) -> bool:
    """Whether ``rule`` reads the ``sources`` directly in a live run — every source it reads
    declares a ``partition_key`` whose fields are all among the rule's ``key by`` fields
    (:func:`~cep.app.kafka_plan.plan_rules` decides; a source without ``partition_key``
    assumes nothing) — so that an operator per partition number sees each key whole."""
    from cep.app.kafka_plan import plan_rules

    return bool(plan_rules(sources, [rule], "replay").direct)


async def _send(producer: Any, topic: str, pending: list[tuple[str, dict[str, Any]]],
                encode: Callable[[str, dict[str, Any]], tuple[bytes | None, bytes]]
                ) -> list[Any]:
    futures = []
    for sink, rec in pending:
        key, value = encode(sink, rec)
        futures.append(await producer.send(topic, value, key=key))
    pending.clear()
    return futures


# ----------------------------------------------------------------------------- reports


def render_summary(s: ReplaySummary, console: Console, labels: tuple[str, ...] = ("",)
                   ) -> None:
    """The end-of-run table: per rule and severity, alerts, timeouts and peak partial
    matches (for a backtest, ``old → new``), then the totals."""
    table = Table(title="replay summary", title_justify="left")
    for col in ("rule", "severity", "alerts", "timeouts", "peak partial matches"):
        table.add_column(col, justify="left" if col in ("rule", "severity") else "right")
    names = sorted({n for counts in s.counts for n in counts})
    for name in names:
        sev = next(c[name].severity for c in s.counts if name in c)
        cells: list[list[str]] = [[], [], []]
        for counts in s.counts:
            c = counts.get(name)
            values = (c.alerts, c.timeouts, c.peak_partial_matches) if c else (None,) * 3
            for cell, v in zip(cells, values, strict=True):
                cell.append("-" if v is None else f"{v:,}")
        table.add_row(name, sev, *(" → ".join(c) for c in cells))
    if len(labels) > 1:
        table.caption = " → ".join(labels)
    console.print(table)
    console.print(f"{s.events:,} events in {s.elapsed_s:.2f} s ({s.events_per_s:,.0f} events/s)"
                  f", {s.late:,} late, {s.dead_letters:,} dead letters", highlight=False)
    if s.all_partitions:
        console.print("over every partition in one operator (key not among the sources' "
                      "partition_key): " + ", ".join(s.all_partitions), highlight=False,
                      markup=False)


def write_json(path: str, value: Any) -> None:
    """Write ``value`` as one JSON document.  Raises ``OSError``."""
    with open(path, "wb") as fh:
        fh.write(encode_json(value))


# ----------------------------------------------------------------------------- command


def run_request(plan: ReplayPlan, console: Console,
                load: Callable[[list[str]], list[CompiledRule] | None]) -> int:
    """Run a checked replay or backtest (:func:`cep.app.settings.resolve_replay`) and print
    its summary; return the exit status (0 done, 1 rule errors).  ``load`` compiles rule
    paths (printing diagnostics) and returns ``None`` on rule errors.

    Raises:
        SettingsError: a rule path holds no rules, or the Kafka range cannot be resolved.
    """
    from cep.io.sinks import JsonLinesSink, Sink

    rule_sets = []
    for group in plan.rule_groups:
        rules = load(list(group))
        if rules is None:
            return 1
        if not rules:
            raise SettingsError("no rules found under " + ", ".join(group))
        rule_sets.append(rules)
    collect_less()  # freeze the rules just made, as cep run does (cep.app.gc_policy)
    sinks: dict[str, Sink] = {}
    if not plan.is_backtest and not plan.output_topic:
        sinks["alerts"] = (JsonLinesSink(plan.output or "-") if plan.output or plan.inputs
                           else _Discard())
    if plan.late:
        sinks["late"] = JsonLinesSink(plan.late)
    if plan.dead_letter:
        sinks["dead_letter"] = JsonLinesSink(plan.dead_letter)
    sink_set = SinkSet(sinks)
    opts = ReplayOptions(rule_sets, sinks=sink_set, alert_topic=plan.output_topic,
                         max_out_of_orderness_ms=plan.max_out_of_orderness_ms,
                         max_partial_matches_per_key=plan.max_partial_matches_per_key,
                         max_events_per_match=plan.max_events_per_match,
                         max_future_skew_ms=plan.max_future_skew_ms,
                         keep_open=plan.keep_open, progress=plan.progress)
    try:
        if plan.kafka is not None:
            try:
                summary = replay_kafka(plan.kafka, list(plan.sources), opts, plan.start,
                                       plan.end)
            except ValueError as exc:
                raise SettingsError(str(exc)) from None
        else:
            summary = replay_files(list(plan.inputs), opts, plan.fmt, plan.time, plan.source,
                                   plan.columns)
    finally:
        sink_set.close()
    if plan.report:
        write_json(plan.report, _report(summary))
    if not plan.quiet:
        render_summary(summary, console, ("old", "new") if plan.is_backtest else ("",))
        if summary.compare is not None:
            render_compare(summary.compare, console)
    return 0


def _report(summary: ReplaySummary) -> dict[str, Any]:
    """The ``--report`` JSON of a replay (and a backtest's comparison)."""
    report: dict[str, Any] = {
        "events": summary.events, "late": summary.late,
        "dead_letters": summary.dead_letters, "elapsed_s": round(summary.elapsed_s, 3),
        "rules": [{n: vars(c) for n, c in counts.items()} for counts in summary.counts],
        "ranges": {k: list(v) for k, v in summary.ranges.items()},
        "all_partitions": summary.all_partitions,
    }
    if summary.compare is not None:
        report["compare"] = compare_json(summary.compare)
    return report


class _Discard:
    """A sink that drops what it gets (alerts of a Kafka replay with no output: counted
    only)."""

    def write(self, record: dict[str, Any]) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass
