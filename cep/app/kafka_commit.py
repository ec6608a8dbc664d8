"""Tasks and checkpoints of Kafka mode: what one input partition owns, and how its outputs,
snapshot and offsets reach the broker.

Exactly-once, per task, in one transaction of the task's own transactional producer:

1. outputs are sent as soon as they are produced, inside the open transaction;
2. at a checkpoint, the snapshot is taken (consistent with the offsets consumed so far) and the
   remaining outputs, the snapshot's changelog messages and the offsets
   (``send_offsets_to_transaction``) are added; then ``commit_transaction``.

The commit runs in the background while the task keeps processing; outputs produced meanwhile
wait in the task until the commit returns, then open the next transaction.  At-least-once:
outputs are flushed, then snapshots written and flushed, then offsets committed by the consumer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import IllegalOperation, KafkaError, MessageSizeTooLargeError

from cep.checkpoint import encode
from cep.config import KafkaConfig
from cep.io.kafka import Backoff, Changelog, SinkRoutes, encode_record
from cep.operator.cep_operator import CepOperator
from cep.operator.prescan import Prescan

__all__ = ["Task", "Shipped", "Committer", "RunStats", "Stopped", "retry", "quietly"]

log = logging.getLogger("cep.kafka")


@dataclass
class RunStats:
    """Counters of one run: events decoded, dead letters, records per sink, records dropped
    because their sink has no topic, checkpoints committed, tasks restored."""

    events: int = 0
    dead_letters: int = 0
    sinks: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)
    checkpoints: int = 0
    restores: int = 0
    shipped: int = 0


@dataclass(slots=True)
class Shipped:
    """A task output for an explicit topic and partition (a repartition record: an event or a
    marker, :mod:`cep.app.kafka_shuffle`), sent in the task's transaction like any output."""

    topic: str
    partition: int
    value: bytes
    headers: list[tuple[str, bytes]]


Output = tuple[str, dict[str, Any]] | Shipped


class Task:
    """Partition number ``pid`` of one *stage*: ``"source"`` (partition ``pid`` of every source
    topic) or a repartition topic's name (its partition ``pid``).  It holds its operator, its
    transactional producer (exactly-once), outputs not yet sent, the next offset per
    topic-partition, and the commit in flight; a source task feeding repartition topics also
    the largest event time accepted per input (``largest``) and what its last markers said
    (``marked``); a shuffle task its :class:`~cep.app.kafka_shuffle.Merger`."""

    def __init__(self, pid: int, key: str, tps: list[TopicPartition],
                 producer: AIOKafkaProducer | None, stage: str = "source") -> None:
        self.pid = pid
        self.stage = stage
        self.label = f"partition {pid}" if stage == "source" else f"{stage} partition {pid}"
        self.key = key
        self.tps = tps
        self.tp_set = set(tps)
        self.inputs = {tp: f"{tp.topic}/{tp.partition}" for tp in tps}
        self.producer = producer
        self.op: CepOperator = None  # type: ignore[assignment]  # set by the pipeline
        self.out: list[Output] = []
        self.futures: list[asyncio.Future[Any]] = []
        self.offsets: dict[TopicPartition, int] = {}
        self.seq = 0
        self.number = 0
        self.dirty = False
        self.in_txn = False
        self.commit: asyncio.Task[None] | None = None
        self.commit_started = 0.0
        self.commit_warned = False
        self.closed = False
        self.last_seen: dict[str, float] = {}
        self.idle: set[str] = set()
        self.started = time.monotonic()
        self.largest: dict[str, float] = {}
        self.marked: dict[str, tuple[float, bool]] = {}
        self.merger: Any = None
        self.committed: dict[TopicPartition, int] = {}
        self.prescans: dict[TopicPartition, Prescan | None] = {}  # (kafka_feed.prescan_for)

    def emit(self, sink: str, record: dict[str, Any]) -> None:
        self.out.append((sink, record))

    def meta(self) -> dict[str, Any]:
        """The snapshot's ``meta``: offsets by input id, arrival counter, checkpoint number;
        and ``largest`` (source tasks that ship) or ``merge`` (shuffle tasks)."""
        meta = {"task": self.key, "seq": self.seq, "checkpoint": self.number,
                "offsets": {self.inputs[tp]: off for tp, off in self.offsets.items()}}
        if self.largest:
            meta["largest"] = dict(self.largest)
        if self.merger is not None:
            meta["merge"] = self.merger.state()
        return meta

    @property
    def committing(self) -> bool:
        return self.commit is not None and not self.commit.done()

    @property
    def changed(self) -> bool:
        return not self.closed and (self.dirty or bool(self.out) or self.in_txn)


class Committer:
    """Sends outputs and commits checkpoints for tasks (see the module docstring)."""

    def __init__(self, k: KafkaConfig, changelog: Changelog, routes: SinkRoutes,
                 stats: RunStats) -> None:
        self.k = k
        self.changelog = changelog
        self.routes = routes
        self.stats = stats
        self.producer: AIOKafkaProducer | None = None  # at-least-once: one for all tasks
        self.consumer: AIOKafkaConsumer | None = None

    async def send_outputs(self, tasks: list[Task]) -> list[tuple[Task, BaseException]]:
        """Send pending outputs, except for tasks whose commit is in flight; returns the
        tasks whose producer refused (to be recovered like a failed commit)."""
        failed: list[tuple[Task, BaseException]] = []
        for task in tasks:
            if task.out and not task.committing and not task.closed:
                out, task.out = task.out, []
                try:
                    await self._send(task, out)
                except (KafkaError, IllegalOperation) as exc:
                    failed.append((task, exc))
        return failed

    async def _send(self, task: Task, out: list[Output]) -> None:
        producer = task.producer or self.producer
        assert producer is not None
        if task.producer is not None and not task.in_txn:
            await producer.begin_transaction()
            task.in_txn = True
        batches: dict[tuple[str, int], Any] = {}  # shipped records, by topic-partition
        for item in out:
            if type(item) is Shipped:
                # Appended to record batches, not sent one by one (producer.send costs
                # ~15 us a record: benchmarks/kafka_repartition.py, docs/performance.md);
                # each partition's batches are queued in order, so its records stay in order.
                where = (item.topic, item.partition)
                batch = batches.get(where)
                if batch is None:
                    batch = batches[where] = producer.create_batch()
                if batch.append(timestamp=None, key=None, value=item.value,
                                headers=item.headers) is None:  # full
                    _track(task, await producer.send_batch(batch, item.topic,
                                                           partition=item.partition))
                    batch = batches[where] = producer.create_batch()
                    batch.append(timestamp=None, key=None, value=item.value,
                                 headers=item.headers)
                self.stats.shipped += 1
                continue
            sink, record = item  # type: ignore[misc]
            topic = self.routes.topic_for(sink)
            if topic is None:
                self.stats.dropped[sink] += 1
                continue
            key, value = encode_record(sink, record)
            try:
                future = await producer.send(topic, value, key=key)
            except MessageSizeTooLargeError:
                value = _shrunk(record, len(value))
                future = await producer.send(topic, value, key=key)
            _track(task, future)
            self.stats.sinks[sink] += 1
        for (topic, partition), batch in batches.items():
            batch.close()
            _track(task, await producer.send_batch(batch, topic, partition=partition))

    def start(self, task: Task) -> None:
        """Exactly-once: snapshot now (with the offsets and the outputs produced so far) and
        commit it in the background; later outputs wait for the next transaction."""
        task.number += 1
        snapshot = encode(task.op, task.meta())
        offsets = dict(task.offsets)
        out, task.out = task.out, []
        task.dirty = False
        task.commit_started, task.commit_warned = time.monotonic(), False
        task.commit = asyncio.create_task(self._commit_txn(task, snapshot, offsets, out))

    async def _commit_txn(self, task: Task, snapshot: bytes, offsets: dict[TopicPartition, int],
                          out: list[Output]) -> None:
        producer = task.producer
        assert producer is not None
        await self._send(task, out)
        if not task.in_txn:
            await producer.begin_transaction()
            task.in_txn = True
        part = self.changelog.partition_of(task.pid)
        for key, value, headers in Changelog.messages(task.key, task.number, snapshot):
            _track(task, await producer.send(
                self.changelog.topic, value, key=key, partition=part, headers=headers))
        if offsets:
            await producer.send_offsets_to_transaction(offsets, self.k.group_id)
        await asyncio.wait_for(producer.commit_transaction(),
                               self.k.transaction_timeout_ms / 1000)
        task.in_txn = False
        await _settle(task)
        task.committed = offsets
        self.stats.checkpoints += 1
        if task.out:  # produced while committing: open the next transaction now
            out, task.out = task.out, []
            await self._send(task, out)

    async def reap(self, tasks: list[Task]) -> list[tuple[Task, BaseException]]:
        """Collect finished background commits; return the failed ones.  A commit that has
        waited for the broker for more than 5 s is reported once."""
        failed = []
        now = time.monotonic()
        for task in tasks:
            if task.committing and not task.commit_warned and now - task.commit_started > 5:
                task.commit_warned = True
                log.warning("%s: checkpoint %d has waited %.0f s for the broker; "
                            "outputs are held until it answers", task.label, task.number,
                            now - task.commit_started)
            if task.commit is not None and task.commit.done():
                exc = task.commit.exception()
                task.commit = None
                if exc is not None:
                    failed.append((task, exc))
                elif task.commit_warned:
                    log.warning("%s: checkpoint %d committed after %.1f s", task.label,
                                task.number, now - task.commit_started)
        return failed

    async def checkpoint(self, tasks: list[Task], wait: bool
                         ) -> list[tuple[Task, BaseException]]:
        """Checkpoint every changed task; returns failures.

        Exactly-once: starts a background commit per changed task that has none in flight;
        with ``wait`` (rebalance, shutdown) waits for every commit, in flight or new.
        At-least-once: always synchronous."""
        if not self.k.exactly_once:
            changed = [t for t in tasks if t.changed]
            try:
                if changed:
                    await self._commit_at_least_once(changed)
                return []
            except (TimeoutError, KafkaError) as exc:
                return [(t, exc) for t in changed]
        failed: list[tuple[Task, BaseException]] = []
        if wait:
            await asyncio.gather(*(t.commit for t in tasks if t.commit is not None),
                                 return_exceptions=True)
            failed += await self.reap(tasks)
        for task in tasks:
            if task.changed and not task.committing and task not in (f[0] for f in failed):
                self.start(task)
        if wait:
            await asyncio.gather(*(t.commit for t in tasks if t.commit is not None),
                                 return_exceptions=True)
            failed += await self.reap(tasks)
        return failed

    async def _commit_at_least_once(self, tasks: list[Task]) -> None:
        producer, consumer = self.producer, self.consumer
        assert producer is not None and consumer is not None
        for _, exc in await self.send_outputs(tasks):
            raise exc
        await producer.flush()
        offsets: dict[TopicPartition, int] = {}
        for task in tasks:
            task.number += 1
            snapshot = encode(task.op, task.meta())
            part = self.changelog.partition_of(task.pid)
            for key, value, headers in Changelog.messages(task.key, task.number, snapshot):
                task.futures.append(await producer.send(
                    self.changelog.topic, value, key=key, partition=part, headers=headers))
            offsets.update(task.offsets)
        await producer.flush()
        for task in tasks:
            await _settle(task)
            task.dirty = False
        if offsets:
            await consumer.commit(offsets)
        for task in tasks:
            task.committed = {tp: offsets[tp] for tp in task.tps if tp in offsets}
        self.stats.checkpoints += len(tasks)


def _shrunk(record: dict[str, Any], size: int) -> bytes:
    """A record too large for the broker, without its matched events: each stage's list is
    replaced by its length and ``"truncated": true`` is added (``alert_id``, ``key`` and
    ``data`` are kept, so the alert still counts and deduplicates)."""
    log.warning("a %s record of %d bytes exceeds the producer's request size; sending it "
                "without its matched events", record.get("rule", "side-output"), size)
    small = dict(record)
    if isinstance(small.get("match"), dict):
        small["match"] = {stage: len(evs) for stage, evs in small["match"].items()}
    elif "event" in small:
        small["event"] = None
    elif "raw" in small:
        small["raw"] = str(small["raw"])[:1000]
        small.pop("raw_hex", None)
    small["truncated"] = True
    return encode_record("", small)[1]


def _track(task: Task, future: asyncio.Future[Any]) -> None:
    """Keep a send's future; its failure is read by :func:`_settle` or, when the task is
    dropped first (fenced, revoked), marked as seen so asyncio does not report it."""
    future.add_done_callback(_seen)
    task.futures.append(future)


def _seen(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


async def _settle(task: Task) -> None:
    """Raise the first failure among the task's sent records (all are complete by now)."""
    futures, task.futures = task.futures, []
    for res in await asyncio.gather(*futures, return_exceptions=True):
        if isinstance(res, BaseException):
            raise res


class Stopped(Exception):
    """SIGTERM arrived while waiting for the broker."""


async def retry(what: str, fn: Any, stopping: asyncio.Event | None = None) -> Any:
    """Await ``fn()`` until it succeeds, logging each failure and backing off (0.5 s → 30 s).
    Raises :class:`Stopped` when ``stopping`` is set while waiting."""
    backoff = Backoff()
    while True:
        try:
            return await fn()
        except (TimeoutError, KafkaError, OSError) as exc:
            delay = backoff.next_delay()
            log.warning("could not %s (%s: %s); retrying in %.1f s", what,
                        type(exc).__name__, exc, delay)
            await sleep(delay, stopping)


async def sleep(seconds: float, stopping: asyncio.Event | None) -> None:
    """Sleep, but raise :class:`Stopped` as soon as ``stopping`` is set."""
    if stopping is None:
        await asyncio.sleep(seconds)
        return
    try:
        await asyncio.wait_for(stopping.wait(), seconds)
    except TimeoutError:
        return
    raise Stopped()


async def quietly(aw: Any, timeout: float = 10.0) -> None:
    """Await a close/stop, ignoring its failure (used after something already failed)."""
    try:
        await asyncio.wait_for(aw, timeout)
    except Exception as exc:  # closing after a failure: nothing more to do
        log.debug("ignored while closing: %s", exc)
