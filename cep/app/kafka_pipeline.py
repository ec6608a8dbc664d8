"""Kafka mode: consume → decode → operator → produce, as a consumer-group member.

**One operator per input partition.**  Every Kafka source must be keyed by the rules' key and
all source topics must have the same number of partitions (*co-partitioning*, as Kafka Streams
and Flink's keyed state require): then all events of one key live in partition ``p`` of their
topics and a *task* — partition number ``p`` of every source topic — owns that key's state.
Each task has its own :class:`~cep.operator.cep_operator.CepOperator` (its own watermark: the
minimum over the task's topic-partitions that are not idle), so state moves with the partition
on a rebalance and a restart reproduces exactly what an uninterrupted run does.

**Exactly-once** (``exactly_once = true``, the default): each task has a transactional producer
whose ``transactional_id`` is ``cep-<group>-<topics>-<p>`` — stable for the partition, so a new
owner fences the old one (a zombie can no longer commit).  Every ``checkpoint_interval`` (or
``checkpoint_records`` records) each changed task commits ONE transaction holding its outputs,
its snapshot on the compacted changelog and its consumed offsets (the order is written out in
:mod:`cep.app.kafka_commit`).  A crash before the commit aborts all of it; the new owner's
producer start fences the old producer and completes its transaction, then the newest committed
snapshot is read (``read_committed``) and the partition is re-read from the snapshot's offsets.
With ``exactly_once = false`` the same happens at least once (``alert_id`` dedups).

**Keys the topics are not partitioned by** (:mod:`cep.app.kafka_plan`): a rule whose key
does not include every source's ``partition_key`` runs in a second stage.  Source task ``p``
ships each event it accepted (not late) that such a rule could read to partition
``hash(rule key) mod N`` of an internal repartition topic, in its own transaction, together
with watermark markers (:mod:`cep.app.kafka_repartition` ships, marks and feeds;
:mod:`cep.app.kafka_shuffle` merges); *shuffle* task ``(topic, q)`` reads
partition ``q`` of that topic (``read_committed``), merges the upstream partitions in a
deterministic order under their common watermark, and commits its alerts, changelog snapshot
and repartition offsets in its own transactions.  Consumed repartition records are deleted
once committed.

**Reload** (:mod:`cep.app.reload`): a new rule set is applied on the event loop under the
pipeline's lock, between two batches, to every task's operator; tasks opened later (a
rebalance, a recovery) start with it, and restoring a checkpoint taken with other rule
versions applies the same policy (:mod:`cep.checkpoint.snapshot`).  The reload marks every
task changed, so the next checkpoint records the new versions.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import (
    InvalidProducerEpoch,
    KafkaError,
    ProducerFenced,
    TransactionalIdAuthorizationFailed,
)

from cep.app.broker_link import BrokerLink
from cep.app.kafka_commit import (
    Committer,
    RunStats,
    Stopped,
    Task,
    quietly,
    retry,
    sleep,
)
from cep.app.kafka_feed import feed_batch, prescan_for
from cep.app.kafka_members import InstanceGuard
from cep.app.kafka_plan import KafkaPlan, Shuffle, plan_rules
from cep.app.kafka_repartition import Repartition
from cep.app.kafka_shuffle import Merger
from cep.app.metrics import EngineSnapshot, RunMetrics, operator_snapshot
from cep.app.reload import AsyncControl
from cep.checkpoint import CheckpointError, decode
from cep.compiler.compiled import CompiledRule
from cep.config import Config, KafkaConfig, SourceConfig
from cep.errors import ConfigError
from cep.io.kafka import (
    Backoff,
    Changelog,
    FencedInstanceIdError,
    MessageDecoder,
    SinkRoutes,
    client_options,
    delete_consumed,
    describe_options,
    ensure_changelog_topic,
    ensure_repartition_topics,
    topic_partitions,
)
from cep.operator.cep_operator import CepOperator, Emit
from cep.operator.time_guard import FutureGuard
from cep.operator.versions import ReloadReport

if TYPE_CHECKING:
    from cep.app.ops import Operations

__all__ = ["KafkaPipeline", "KafkaRunStats", "run_kafka"]

log = logging.getLogger("cep.kafka")

FENCED = (ProducerFenced, InvalidProducerEpoch, TransactionalIdAuthorizationFailed)
MAX_POLL_RECORDS = 5000
DELETE_EVERY_S = 30.0  # how often consumed repartition records are deleted
SOURCE = "source"  # the stage of the tasks that read the source topics
KafkaRunStats = RunStats
TaskId = tuple[str, int]  # (stage, partition): stage "source" or a repartition topic


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, pipeline: KafkaPipeline) -> None:
        self.pipeline = pipeline

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        try:
            await self.pipeline.on_revoked(revoked)
        except Stopped:
            return
        except Exception as exc:  # the consumer would only log it: stop the run instead
            self.pipeline._fail(exc)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        try:
            await self.pipeline.on_assigned(assigned)
        except Stopped:
            return
        except Exception as exc:
            self.pipeline._fail(exc)


class KafkaPipeline:
    """A consumer-group member running ``rules`` over the Kafka sources of ``config``.

    Raises :class:`ConfigError` for a configuration Kafka mode cannot run (no ``[kafka]``,
    file sinks, two sources on one topic, topics with different partition counts, a rule
    that needs a repartition topic with ``repartition = false``) and
    :class:`CheckpointError` for a changelog snapshot it must not read.
    """

    def __init__(self, config: Config, rules: list[CompiledRule],
                 ops: Operations | None = None) -> None:
        if config.kafka is None:
            raise ConfigError(f"{config.path}: Kafka sources need a [kafka] table")
        self.cfg = config
        self.k: KafkaConfig = config.kafka
        self.rules = rules
        self.sources: dict[str, SourceConfig] = {}
        for s in config.kafka_sources:
            if s.topic in self.sources:
                raise ConfigError(f"{config.path}: sources {self.sources[s.topic].name} and "
                                  f"{s.name} read the same topic {s.topic}")
            self.sources[s.topic or ""] = s
        bad = [n for n, s in config.sinks.items() if s.kind != "kafka"]
        if bad:
            raise ConfigError(f"{config.path}: with Kafka sources every sink must be a Kafka "
                              f"topic (file sinks: {', '.join(sorted(bad))})")
        self.topics = sorted(self.sources)
        self.decoders = {t: MessageDecoder(s, self.k.max_event_bytes)
                         for t, s in self.sources.items()}
        self.routes = SinkRoutes(config.sinks)
        self.plan: KafkaPlan = plan_rules(config.kafka_sources, rules, self.k.group_id,
                                          self.k.repartition)
        self.shuffles: dict[str, Shuffle] = self.plan.by_topic()
        self.ships: dict[str, list[Shuffle]] = {t: self.plan.for_source(s.name)
                                                for t, s in self.sources.items()}
        self.partitions = 0  # of every source topic (and repartition topic), known at start
        self.repartition = Repartition(self.decoders, self.ships, self._dead_letter)
        self.last_delete = time.monotonic()
        self.deleting: asyncio.Task[None] | None = None
        self.tasks: dict[TaskId, Task] = {}
        self.lock = asyncio.Lock()
        self.stopping = asyncio.Event()
        self.stats = RunStats()
        self.changelog = Changelog(self.k.changelog, 1)
        self.committer = Committer(self.k, self.changelog, self.routes, self.stats)
        self.opts = client_options(self.k)
        self.consumer: AIOKafkaConsumer | None = None
        self.restorer: AIOKafkaConsumer | None = None
        self.since_checkpoint = 0
        self.fatal: BaseException | None = None
        self.fenced: dict[TaskId, float] = {}  # task → when it was fenced
        self.ops = ops
        self.metrics: RunMetrics | None = ops.metrics if ops is not None else None
        self.link = BrokerLink(",".join(self.k.bootstrap_servers))
        self.guard = InstanceGuard(self.k)

    # ----------------------------------------------------------------- lifecycle

    def stop(self) -> None:
        """Ask the run to drain, checkpoint and return (signal-safe)."""
        self.stopping.set()

    async def run(self) -> KafkaRunStats:
        """Join the group and process until :meth:`stop`; returns the run's counters."""
        if self.ops is not None:
            self.ops.bind(AsyncControl(asyncio.get_running_loop(), self.lock), self.snapshot,
                          self.apply_rules)
            self.ops.start()
        handlers = logging.getLogger().handlers
        for h in handlers:
            h.addFilter(self.link)
        try:
            await self._start()
            await self._loop()
            if self.fatal is None:
                async with self.lock:
                    await self._checkpoint(list(self.tasks.values()), final=True)
        except Stopped:
            log.info("stopped while waiting for the broker")
        finally:
            await self._close()
            if self.ops is not None:
                await asyncio.to_thread(self.ops.stop)
            for h in handlers:
                h.removeFilter(self.link)
        if self.fatal is not None:
            raise self.fatal
        return self.stats

    def _fail(self, exc: BaseException) -> None:
        """An error the run cannot continue after (raised from :meth:`run`)."""
        log.error("%s: %s", type(exc).__name__, exc)
        if self.fatal is None:
            self.fatal = exc
        self.stopping.set()

    async def _start(self) -> None:
        log.info("connecting to Kafka: %s; group %s; exactly_once=%s",
                 describe_options(self.opts), self.k.group_id, self.k.exactly_once)
        self.consumer = AIOKafkaConsumer(
            group_id=self.k.group_id, group_instance_id=self.k.group_instance_id,
            enable_auto_commit=False, auto_offset_reset=self.k.auto_offset_reset,
            isolation_level="read_committed",
            partition_assignment_strategy=(RangePartitionAssignor,),
            session_timeout_ms=self.k.session_timeout_ms,
            heartbeat_interval_ms=max(100, min(3000, self.k.session_timeout_ms // 3)),
            # (a partition that is behind comes in fewer, larger fetches: less broker CPU)
            max_partition_fetch_bytes=self.k.max_partition_fetch_bytes,
            **self.opts)
        await retry("start the consumer", self.consumer.start, self.stopping)
        for line in self.plan.lines():
            log.info("plan: %s", line)
        partitions = self.partitions = await self._partition_count()
        self.repartition.partitions = partitions
        if self.shuffles:
            want = self.k.repartition_partitions
            if want is not None and want != partitions:
                raise ConfigError(f"{self.cfg.path}: [kafka].repartition_partitions is {want}, "
                                  f"but it must equal the source partition count ({partitions})"
                                  ": a shuffle task q reads partition q of each repartition "
                                  "topic next to source partition q")
            await retry("create the repartition topics", lambda: ensure_repartition_topics(
                self.k, sorted(self.shuffles), partitions), self.stopping)
        self.changelog.partitions = await retry(
            "create the changelog topic", lambda: ensure_changelog_topic(self.k, partitions),
            self.stopping)
        self.restorer = AIOKafkaConsumer(
            isolation_level="read_committed", enable_auto_commit=False, fetch_max_wait_ms=20,
            **self.opts)
        await retry("start the changelog reader", self.restorer.start, self.stopping)
        self.committer.consumer = self.consumer
        if not self.k.exactly_once:
            producer = AIOKafkaProducer(enable_idempotence=True, linger_ms=5, **self.opts)
            await retry("start the producer", producer.start, self.stopping)
            self.committer.producer = producer
        await self.guard.before_join()
        self.consumer.subscribe(self.topics + sorted(self.shuffles), listener=_Listener(self))

    async def _partition_count(self) -> int:
        """Partitions per source topic (waits for missing topics); all must be equal."""
        backoff = Backoff()
        while True:
            sizes = await retry("describe the source topics",
                                 lambda: topic_partitions(self.k, self.topics), self.stopping)
            missing = [t for t in self.topics if t not in sizes]
            if not missing:
                break
            delay = backoff.next_delay()
            log.warning("waiting for topic(s) %s to exist; retrying in %.1f s",
                        ", ".join(missing), delay)
            await sleep(delay, self.stopping)
        if len(set(sizes.values())) > 1:
            raise ConfigError("Kafka sources must be co-partitioned (same partition count): "
                              + ", ".join(f"{t} has {n}" for t, n in sorted(sizes.items())))
        return max(sizes.values())

    async def _close(self) -> None:
        if self.deleting is not None:
            await quietly(self.deleting)
        if self.consumer is not None:
            await quietly(self.consumer.stop())
        for task in list(self.tasks.values()):
            await self._close_task(task)
        self.tasks.clear()
        if self.restorer is not None:
            await quietly(self.restorer.stop())
        if self.committer.producer is not None:
            await quietly(self.committer.producer.stop())
        log.info("stopped: %d events, %d dead letters, %s, %d checkpoints",
                 self.stats.events, self.stats.dead_letters, dict(self.stats.sinks),
                 self.stats.checkpoints)

    # ----------------------------------------------------------------- rebalancing

    def _stage(self, tp: TopicPartition) -> str:
        return SOURCE if tp.topic in self.sources else tp.topic

    def _task_ids(self, tps: set[TopicPartition]) -> list[TaskId]:
        """The tasks the topic-partitions belong to, source tasks first."""
        ids = {(self._stage(tp), tp.partition) for tp in tps
               if tp.topic in self.sources or tp.topic in self.shuffles}
        return sorted(ids, key=lambda t: (t[0] != SOURCE, t))

    def _member_id(self) -> str | None:
        """The member id the consumer holds now (empty after the broker forgot it)."""
        return getattr(getattr(self.consumer, "_coordinator", None), "member_id", None)

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        """Checkpoint the revoked tasks, then drop them (their new owner restores them).
        A static member that lost its membership first checks that no other live process
        took its ``group_instance_id`` (:class:`~cep.app.kafka_members.InstanceGuard`)."""
        if not self._member_id():
            await self.guard.check(self._member_id())
        async with self.lock:
            ids = self._task_ids(revoked)
            tasks = [self.tasks.pop(t) for t in ids if t in self.tasks]
            if tasks:
                log.info("partitions %s revoked: checkpointing (%d with uncommitted work) "
                         "and handing over", _describe(ids), sum(t.changed for t in tasks))
                await self._checkpoint(tasks, final=True)
            for task in tasks:
                await self._close_task(task)

    async def on_assigned(self, assigned: set[TopicPartition]) -> None:
        """Open a task per newly assigned (stage, partition): fence its previous owner,
        restore its newest checkpoint, and position its topic-partitions at the checkpoint's
        offsets."""
        if self.fatal is not None:
            return  # stopping (e.g. a duplicate group_instance_id): take nothing more
        self.guard.assigned()
        async with self.lock:
            ids = self._task_ids(assigned)
            for stage, pid in ids:
                missing = [t for t in self.topics if TopicPartition(t, pid) not in assigned]
                if stage == SOURCE and missing:
                    log.error("partition %d of %s not assigned with the others: sources are "
                              "not co-partitioned", pid, ", ".join(missing))
            new = [t for t in ids if t not in self.tasks]
            if new:
                log.info("partitions %s assigned: restoring", _describe(new))
            producers = await asyncio.gather(*(self._task_producer(t) for t in new))
            try:
                for tid, producer in zip(new, producers, strict=True):
                    self.tasks[tid] = await self._open_task(tid, producer)
            except BaseException:
                owned = {id(t.producer) for t in self.tasks.values()}
                for producer in producers:
                    if producer is not None and id(producer) not in owned:
                        await quietly(producer.stop())
                raise

    def _task_key(self, tid: TaskId) -> str:
        stage, pid = tid
        if stage == SOURCE:
            return f"{self.k.group_id}/{'+'.join(self.topics)}/{pid}"
        return f"{self.k.group_id}/{stage}/{pid}"

    async def _task_producer(self, tid: TaskId) -> AIOKafkaProducer | None:
        """The task's transactional producer, started: its start fences any earlier producer
        with the same id and completes that producer's open transaction.  The id is
        ``cep-<task key with - for />``: stable per task, distinct between stages."""
        if not self.k.exactly_once:
            return None
        tid_ = "cep-" + self._task_key(tid).replace("/", "-")
        producer = AIOKafkaProducer(
            transactional_id=tid_, transaction_timeout_ms=self.k.transaction_timeout_ms,
            linger_ms=5, retry_backoff_ms=10, **self.opts)
        await retry(f"start the producer for {_label(tid)}", producer.start,
                    self.stopping)
        return producer

    def _new_task(self, tid: TaskId, producer: AIOKafkaProducer | None) -> Task:
        """A fresh task: a source task runs the direct rules over partition ``p`` of every
        source topic (one watermark input per topic-partition); a shuffle task runs its
        topic's rules over one input, ``"shuffle"``, fed in order by its
        :class:`~cep.app.kafka_shuffle.Merger` (one merger input per source topic-partition
        the topic carries)."""
        stage, pid = tid
        guard = FutureGuard(self.cfg.state.max_future_skew_ms, time.time)  # live: wall clock
        if stage == SOURCE:
            task = Task(pid, self._task_key(tid), [TopicPartition(t, pid) for t in self.topics],
                        producer)
            rules = self.plan.direct
            inputs = {task.inputs[tp]: self.sources[tp.topic].max_out_of_orderness_ms
                      for tp in task.tps}
        else:
            task = Task(pid, self._task_key(tid), [TopicPartition(stage, pid)], producer, stage)
            sh = self.shuffles[stage]
            rules, inputs = sh.rules, {"shuffle": 0}
            guard = FutureGuard(None)  # the source task already applied it
            task.merger = Merger({f"{t}/{p}": s.max_out_of_orderness_ms
                                  for t, s in self.sources.items() if s.name in sh.sources
                                  for p in range(self.partitions)})
        task.op = CepOperator(rules, self._emit(task), inputs,
                              self.cfg.state.max_partial_matches_per_key, guard,
                              max_events_per_match=self.cfg.state.max_events_per_match)
        return task

    async def _open_task(self, tid: TaskId, producer: AIOKafkaProducer | None) -> Task:
        """Build the task's operator from its newest committed checkpoint (or empty) and seek
        each of its topic-partitions to the checkpoint's offset, else the group's committed
        offset, else per ``auto_offset_reset`` (a repartition topic: its beginning)."""
        assert self.restorer is not None and self.consumer is not None
        task = self._new_task(tid, producer)
        pid = task.pid
        data = await retry(f"read the changelog for {task.label}",
                            lambda: self.changelog.read_latest(self.restorer, task.key, pid),
                            self.stopping)
        if data is not None:
            self._restore(task, data)
        else:
            log.info("%s: no checkpoint; starting empty at the committed offsets", task.label)
        for tp in task.tps:
            # Always an explicit seek: records fetched meanwhile are re-read from here, and
            # the offset guard in _process drops what was fetched before it.
            if tp not in task.offsets:
                task.offsets[tp] = await self._start_offset(tp)
            self.consumer.seek(tp, task.offsets[tp])
        self.consumer.resume(*[tp for tp in task.tps if tp in self.consumer.assignment()])
        self.fenced.pop(tid, None)
        return task

    async def _start_offset(self, tp: TopicPartition) -> int:
        """Where a partition without a checkpoint starts: the group's committed offset, else
        the beginning or end (``auto_offset_reset``; always the beginning of a repartition
        topic, whose records were all written for this group)."""
        assert self.consumer is not None
        committed = await self.consumer.committed(tp)
        if committed is not None:
            return int(committed)
        if self.k.auto_offset_reset == "earliest" or tp.topic in self.shuffles:
            return int((await self.consumer.beginning_offsets([tp]))[tp])
        return int((await self.consumer.end_offsets([tp]))[tp])

    def _restore(self, task: Task, data: bytes) -> None:
        """Restore a checkpoint into a fresh task.  Raises :class:`CheckpointError`."""
        report = decode(data, task.op)
        meta = report.meta
        task.seq, task.number = meta["seq"], meta["checkpoint"]
        by_input = {v: tp for tp, v in task.inputs.items()}
        for name, off in meta["offsets"].items():
            if name in by_input:
                task.offsets[by_input[name]] = off
        task.largest = {n: t for n, t in meta.get("largest", {}).items() if n in by_input}
        if task.merger is not None and "merge" in meta:
            task.merger.restore(meta["merge"])
        self.stats.restores += 1
        log.info("%s: restored checkpoint %d (%d keys, %d partial matches, "
                 "%d buffered events) at offsets %s", task.label, task.number, report.keys,
                 report.partial_matches, report.buffered, meta["offsets"])
        for name, old, new in report.dropped_rules:
            log.warning("%s: rule %s %s: its saved state (version %s) is dropped",
                        task.label, name, f"changed to version {new}" if new else "is gone", old)
        for name, old, new in report.draining_rules:
            log.info("%s: rule %s changed (%s -> %s): the saved version drains",
                     task.label, name, old, new)

    async def _close_task(self, task: Task) -> None:
        task.closed = True
        if task.producer is not None:
            await quietly(task.producer.stop())

    # ----------------------------------------------------------------- main loop

    async def _loop(self) -> None:
        assert self.consumer is not None
        interval = self.cfg.state.checkpoint_interval_ms / 1000
        last = time.monotonic()
        backoff = Backoff()
        while not self.stopping.is_set():
            wait = max(0.005, min(0.2, last + interval - time.monotonic()))
            try:
                batch = await self.consumer.getmany(timeout_ms=int(wait * 1000),
                                                    max_records=MAX_POLL_RECORDS)
            except KafkaError as exc:
                if isinstance(exc, FencedInstanceIdError) or "FENCED_INSTANCE_ID" in str(exc):
                    await self.guard.check(self._member_id())
                delay = backoff.next_delay()
                log.warning("fetch failed (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                continue
            self.link.tick()
            async with self.lock:
                if batch:
                    self._process(batch)
                self._check_idle()
                await self._recover_all(await self.committer.reap(list(self.tasks.values())))
                if self.fenced:
                    await self._reopen_fenced()
                await self._recover_all(await self.committer.send_outputs(
                    list(self.tasks.values())))
                tasks = list(self.tasks.values())  # after recovery replaced any
                now = time.monotonic()
                if (now - last >= interval
                        or self.since_checkpoint >= self.cfg.state.checkpoint_records):
                    self.since_checkpoint = 0
                    last = now
                    await self._checkpoint(tasks)
                if (self.shuffles and now - self.last_delete >= DELETE_EVERY_S
                        and (self.deleting is None or self.deleting.done())):
                    self.last_delete = now
                    self.deleting = asyncio.create_task(self._delete_consumed())
            backoff.reset()

    def _process(self, batch: dict[TopicPartition, list[Any]]) -> None:
        """Decode and feed one fetched batch; dead letters join the task's outputs."""
        now = time.monotonic()
        for tp, msgs in batch.items():
            task = self.tasks.get((self._stage(tp), tp.partition))
            if task is None or tp not in task.tp_set or not msgs:
                continue
            expected = task.offsets.get(tp, -1)
            if task.merger is not None:
                n = self.repartition.feed(task, tp, msgs, expected)
            elif self.ships[tp.topic]:
                n = self.repartition.ship(task, tp, msgs, expected)
                if self.metrics is not None:
                    self.metrics.events[self.sources[tp.topic].name] += n
            else:
                n = self._feed(task, tp, msgs, expected)
            task.offsets[tp] = max(expected, msgs[-1].offset + 1)
            task.dirty = True
            task.last_seen[task.inputs[tp]] = now
            task.idle.discard(task.inputs[tp])
            self.stats.events += n
            self.since_checkpoint += len(msgs)

    def _feed(self, task: Task, tp: TopicPartition, msgs: list[Any], expected: int) -> int:
        """A source task's messages when no repartition topic reads the source: decoded and
        fed as a batch (:func:`~cep.app.kafka_feed.feed_batch`).  Returns the events fed."""
        metrics = self.metrics
        decoder = self.decoders[tp.topic]
        if tp not in task.prescans:
            task.prescans[tp] = prescan_for(task.op, decoder, task.inputs[tp])
        fed = feed_batch(task.op, decoder, msgs, partition=tp.partition,
                         expected=expected, input_name=task.inputs[tp], seq=task.seq,
                         dead_letter=lambda rec: self._dead_letter(task, rec),
                         observe_latency=metrics.observe_latency if metrics else None,
                         prescan=task.prescans[tp])
        if metrics is not None:
            metrics.events[self.sources[tp.topic].name] += fed.events
        task.seq = fed.seq
        return fed.events

    def _dead_letter(self, task: Task, rec: dict[str, Any]) -> None:
        task.out.append(("dead_letter", rec))
        self.stats.dead_letters += 1
        if self.metrics is not None:
            self.metrics.count_record("dead_letter", rec)

    def _check_idle(self) -> None:
        """Mark topic-partitions silent for longer than their ``idle_timeout`` idle, so the
        task's other inputs can advance its watermark (and, for a source that repartition
        topics read, so the next markers tell the shuffle tasks to stop waiting for it)."""
        now = time.monotonic()
        for task in self.tasks.values():
            if task.stage != SOURCE:
                continue
            if len(task.tps) < 2 and not self.ships[task.tps[0].topic]:
                continue
            for tp in task.tps:
                limit = self.sources[tp.topic].idle_timeout_ms
                name = task.inputs[tp]
                if limit is None or name in task.idle:
                    continue
                if now - task.last_seen.get(name, task.started) > limit / 1000:
                    task.idle.add(name)
                    before = task.op.watermark
                    wm = task.op.watermarks.set_idle(name)
                    log.info("%s: %s idle for %d ms", task.label, name, limit)
                    if wm > before:
                        task.op.advance(wm)
                    task.dirty = True

    async def _delete_consumed(self) -> None:
        """Delete repartition records below the committed offsets of this member's shuffle
        tasks (in the background, every :data:`DELETE_EVERY_S`; a failure is retried then)."""
        offsets = {tp: off for t in self.tasks.values() if t.merger is not None
                   for tp, off in t.committed.items()}
        try:
            await delete_consumed(self.k, offsets)
        except (KafkaError, OSError, TimeoutError) as exc:
            log.debug("could not delete consumed repartition records: %s", exc)

    # ----------------------------------------------------------------- operations

    def _emit(self, task: Task) -> Emit:
        return self.metrics.counting(task.emit) if self.metrics is not None else task.emit

    def apply_rules(self, rules: list[CompiledRule]) -> ReloadReport:
        """Switch every task to ``rules`` (on the loop, under the lock, between batches);
        tasks opened later use them too.  Returns the merged report, with each input's next
        offset in ``positions``.  Raises :class:`ConfigError` when the new rules would change
        the plan (a rule's path, a repartition topic or the sources it carries): that needs a
        restart of the members."""
        plan = plan_rules(self.cfg.kafka_sources, list(rules), self.k.group_id,
                          self.k.repartition)
        old = {r.rule: r.topic for r in self.plan.routes}
        moved = [r.rule for r in plan.routes if r.rule in old and old[r.rule] != r.topic]
        topics = {s.topic: s.sources for s in plan.shuffles}
        if moved or topics != {s.topic: s.sources for s in self.plan.shuffles}:
            raise ConfigError("the new rules change the Kafka plan (" + (
                f"rules {', '.join(moved)} change path" if moved else
                "the repartition topics change") + "); restart the members to apply them")
        self.rules = list(rules)
        self.plan, self.shuffles = plan, plan.by_topic()
        self.ships = {t: plan.for_source(s.name) for t, s in self.sources.items()}
        self.repartition.ships = self.ships
        report = ReloadReport(versions={r.name: r.version for r in rules})
        for tid in sorted(self.tasks):
            task = self.tasks[tid]
            stage_rules = plan.direct if task.stage == SOURCE else self.shuffles[task.stage].rules
            part = task.op.reload(stage_rules)
            part.positions = {task.inputs[tp]: off for tp, off in task.offsets.items()}
            report.merge(part)
            task.dirty = True
        return report

    def snapshot(self) -> EngineSnapshot:
        """Rules, state sizes, watermarks and consumer lag of every task (on the loop)."""
        tasks = [self.tasks[t] for t in sorted(self.tasks)]
        snap = operator_snapshot([t.op for t in tasks], "kafka", self.metrics or RunMetrics(),
                                 self.ops.file_of if self.ops is not None else None)
        snap.plan = self.plan.as_dict()
        if self.consumer is not None:
            for task in tasks:
                for tp in task.tps:
                    high = self.consumer.highwater(tp)
                    if high is not None and tp in task.offsets:
                        snap.lag[(tp.topic, tp.partition)] = max(0, high - task.offsets[tp])
        return snap

    # ----------------------------------------------------------------- checkpoints

    async def _checkpoint(self, tasks: list[Task], final: bool = False) -> None:
        """Checkpoint changed tasks (in the background unless ``final``: before a hand-over
        or shutdown every commit is waited for)."""
        for task in tasks:
            if task.stage == SOURCE and not task.closed:
                self.repartition.mark(task)
        failed = await self.committer.checkpoint(tasks, wait=final)
        if not final:
            await self._recover_all(failed)
            return
        for task, err in failed:
            if isinstance(err, CheckpointError):
                raise err
            if isinstance(err, FENCED):
                log.warning("%s: fenced by its new owner; its uncommitted work is "
                            "discarded (the new owner resumes from the last checkpoint)",
                            task.label)
            else:
                log.warning("%s: final checkpoint failed (%s: %s); the next owner "
                            "resumes from the previous one", task.label, type(err).__name__, err)

    async def _recover_all(self, failed: list[tuple[Task, BaseException]]) -> None:
        for task, err in failed:
            if isinstance(err, CheckpointError):
                raise err
            if self.tasks.get((task.stage, task.pid)) is task:
                await self._recover(task, err)

    async def _recover(self, task: Task, exc: BaseException) -> None:
        """After a failed checkpoint the task is rebuilt from its newest committed checkpoint
        and its partitions re-read from there, after a backoff.  A fenced task (a newer
        producer took its id) is paused instead: usually another member owns it now and a
        rebalance is coming; if the partition is still ours after a session timeout (the
        broker aborted a transaction that outlived ``transaction_timeout``) it is rebuilt."""
        assert self.consumer is not None
        tid = (task.stage, task.pid)
        self.tasks.pop(tid, None)
        await self._close_task(task)
        if isinstance(exc, FENCED):
            log.warning("%s: fenced (%s): another member took it over or the broker "
                        "aborted a transaction that outlived transaction_timeout; paused",
                        task.label, type(exc).__name__)
            self.consumer.pause(*[tp for tp in task.tps if tp in self.consumer.assignment()])
            self.fenced[tid] = time.monotonic()
            return
        delay = Backoff(1.0).next_delay()
        log.warning("%s: checkpoint failed (%s: %s); restoring the last committed "
                    "checkpoint in %.1f s", task.label, type(exc).__name__, exc, delay)
        await sleep(delay, self.stopping)
        self.tasks[tid] = await self._open_task(tid, await self._task_producer(tid))

    async def _reopen_fenced(self) -> None:
        """Rebuild fenced tasks whose partitions are still assigned after a session timeout."""
        assert self.consumer is not None
        wait = self.k.session_timeout_ms / 1000 + 1
        for tid, since in list(self.fenced.items()):
            if time.monotonic() - since < wait:
                continue
            del self.fenced[tid]
            stage, pid = tid
            topic = self.topics[0] if stage == SOURCE else stage
            if tid in self.tasks or TopicPartition(topic, pid) not in self.consumer.assignment():
                continue
            log.warning("%s: still assigned here after being fenced; restoring it",
                        _label(tid))
            self.tasks[tid] = await self._open_task(tid, await self._task_producer(tid))


def _describe(ids: list[TaskId]) -> str:
    """``[0, 1]`` for source tasks (the log lines operators know), then ``T partition q``
    for shuffle tasks: ``"[0, 1]; T [2]"``."""
    by: dict[str, list[int]] = {}
    for stage, pid in ids:
        by.setdefault(stage, []).append(pid)
    parts = [str(by.pop(SOURCE))] if SOURCE in by else []
    parts += [f"{stage} {pids}" for stage, pids in sorted(by.items())]
    return "; ".join(parts)


def _label(tid: TaskId) -> str:
    """``partition 3`` (a source task) or ``T partition 3`` (a shuffle task), as Task.label."""
    return f"partition {tid[1]}" if tid[0] == SOURCE else f"{tid[0]} partition {tid[1]}"


def _loop_exception(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """Unread failures inside a fenced or stopped Kafka client (its futures and tasks
    outlive the task that owned them) are expected after a hand-over: log them at debug
    level; report anything else as asyncio does."""
    exc = context.get("exception")
    origin = repr(context.get("future") or context.get("task") or "")
    if "never retrieved" in context.get("message", "") and (
            isinstance(exc, KafkaError) or "aiokafka" in origin):
        log.debug("ignored after a hand-over: %r", exc)
        return
    loop.default_exception_handler(context)


def run_kafka(config: Config, rules: list[CompiledRule],
              ops: Operations | None = None) -> KafkaRunStats:
    """Run until SIGTERM/SIGINT, then drain, checkpoint and return the counters.  With
    ``ops``, SIGHUP reloads the rules and the endpoints of :mod:`cep.app.ops` are served.
    Raises :class:`ConfigError` (and :class:`CheckpointError`) as :class:`KafkaPipeline`."""

    async def main() -> KafkaRunStats:
        pipeline = KafkaPipeline(config, rules, ops)
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(_loop_exception)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, pipeline.stop)
        if ops is not None:
            loop.add_signal_handler(signal.SIGHUP, ops.on_sighup)
        return await pipeline.run()

    return asyncio.run(main())
