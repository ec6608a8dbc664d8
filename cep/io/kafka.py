"""Kafka plumbing: client settings, decoding messages, routing records to topics, and the
changelog that holds checkpoints.

* :func:`client_options` turns ``[kafka]`` into aiokafka keyword arguments (bootstrap servers,
  SASL, SSL); :func:`describe_options` is the same with secrets masked, for logs.
* :class:`MessageDecoder` decodes one consumed message of a source into an
  :class:`~cep.event.Event` or a dead-letter record (reason, error, source, topic, partition,
  offset, raw value).
* :class:`SinkRoutes` maps a sink name (``alerts``, ``late``, ``dead_letter``, or a name a rule
  uses in ``emit to``) to a topic; :func:`encode_record` gives a message's key and value.
* :class:`Changelog` writes a partition's snapshot as one or more messages of a compacted topic
  and finds the newest complete snapshot again.
* :func:`group_members` describes the consumer group's members with their
  ``group.instance.id`` (DescribeGroups v4, which aiokafka does not build itself).

Nothing here loops or owns a consumer group: :mod:`cep.app.kafka_pipeline` does that.
"""

from __future__ import annotations

import asyncio
import logging
import random
from bisect import bisect_left
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka import errors as kafka_errors
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.records_to_delete import RecordsToDelete
from aiokafka.errors import BrokerResponseError, KafkaError
from aiokafka.helpers import create_ssl_context
from aiokafka.protocol.admin import DescribeGroupsRequest_v3
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import Array, Bytes, Int16, Int32, Schema, String

from cep.config import KafkaConfig, SinkConfig, SourceConfig
from cep.errors import ConfigError
from cep.event import Event
from cep.io.codecs import (
    DeadLetter,
    TimeSpec,
    decode_json_chunk,
    encode_json,
    event_time_of,
    json_decoder,
    msgpack_decoder,
)
from cep.io.offsets import OffsetBound
from cep.operator.records import dead_letter_record

__all__ = [
    "client_options", "describe_options", "MessageDecoder", "DecodedRun", "SinkRoutes",
    "encode_record",
    "Changelog", "Backoff", "ensure_changelog_topic", "topic_partitions",
    "ensure_repartition_topics", "delete_consumed", "GroupMember", "group_members",
    "FencedInstanceIdError",
    "OffsetBound", "resolve_offset_range", "read_offset_range",
]

log = logging.getLogger("cep.kafka")

CHUNK_BYTES = 512 * 1024
"""Largest changelog message value; bigger snapshots are split (brokers default to 1 MB)."""


def client_options(cfg: KafkaConfig) -> dict[str, Any]:
    """Keyword arguments common to aiokafka consumers, producers and admin clients.

    Secrets are revealed here and only here; never log the result (use
    :func:`describe_options`)."""
    opts: dict[str, Any] = {
        "bootstrap_servers": list(cfg.bootstrap_servers),
        "client_id": cfg.client_id,
        "security_protocol": cfg.security_protocol,
    }
    if cfg.security_protocol.startswith("SASL"):
        opts["sasl_mechanism"] = cfg.sasl_mechanism
        if cfg.sasl_plain_username is not None:
            opts["sasl_plain_username"] = cfg.sasl_plain_username
        if cfg.sasl_plain_password is not None:
            opts["sasl_plain_password"] = cfg.sasl_plain_password.reveal()
    if cfg.security_protocol in ("SSL", "SASL_SSL"):
        ctx = create_ssl_context(
            cafile=cfg.ssl_cafile, certfile=cfg.ssl_certfile, keyfile=cfg.ssl_keyfile,
            password=cfg.ssl_password.reveal() if cfg.ssl_password is not None else None,
        )
        ctx.check_hostname = cfg.ssl_check_hostname
        opts["ssl_context"] = ctx
    return opts


def describe_options(opts: dict[str, Any]) -> str:
    """``client_options`` for a log line: passwords masked, the SSL context summarised."""
    shown = []
    for k, v in sorted(opts.items()):
        if "password" in k:
            v = "***"
        elif k == "ssl_context":
            v = "<ssl>"
        shown.append(f"{k}={v}")
    return " ".join(shown)


# ----------------------------------------------------------------------------- decoding


TOMBSTONE = DeadLetter("malformed", "the message has no value (a tombstone)")
"""Why a message without a value is no event."""


class MessageDecoder:
    """Decodes the values of one source's topic.

    ``decode(value, partition, offset, seq)`` returns an :class:`Event` (event time in ms,
    ``source`` the source's name, Kafka ``partition`` and ``offset``) or a dead-letter record
    ``{"reason", "error", "source", "raw", "topic", "partition", "offset"}`` for a value that
    does not decode, is not an object, has no parsable event time, or exceeds ``max_bytes``.
    """

    def __init__(self, source: SourceConfig, max_bytes: int) -> None:
        self.source = source.name
        self.topic = source.topic or ""
        self.time = TimeSpec(source.event_time, source.event_time_unit)
        """Where the event time is and its unit."""
        self.time_field = self.time.field if self.time.unit == "ms" else None
        """The field holding the event time as an int number of ms (``None``: another unit,
        every time goes through :meth:`event_time`)."""
        self.max_bytes = max_bytes
        self.json = source.format != "msgpack"
        make = json_decoder if self.json else msgpack_decoder
        self._decode = make(self.time, max_bytes)

    def decode(self, value: bytes | None, partition: int, offset: int, seq: int
               ) -> Event | dict[str, Any]:
        if value is None:
            res: Any = TOMBSTONE
        else:
            res = self._decode(value)
        if type(res) is DeadLetter:
            return self.dead_letter(res, value or b"", partition, offset)
        data, ts = res
        return Event(ts, seq, data, self.source, offset, partition)

    def decode_batch(self, msgs: list[Any], partition: int, expected: int
                     ) -> list[DecodedRun | dict[str, Any]]:
        """The messages of one fetched batch of ``partition`` (``msg.offset``, ``msg.value``,
        offsets increasing) from offset ``expected`` on, in order: runs of consecutive
        messages that decoded to objects, and between them the dead-letter record of each
        message that did not (as :meth:`decode` gives it).

        A JSON batch is decoded by one call when that certainly gives what decoding each
        message alone gives (:func:`~cep.io.codecs.decode_json_chunk`: every value an
        object within the size and nesting limits, no value holding a newline); otherwise,
        and for msgpack, message by message.  The event times are not looked at here: the
        operator reads them (:attr:`time_field`, else :meth:`event_time`)."""
        if msgs and msgs[0].offset < expected:
            msgs = [m for m in msgs if m.offset >= expected]
        if not msgs:
            return []
        values = [m.value for m in msgs]
        offsets = [m.offset for m in msgs]
        objs = self._at_once(values)
        if objs is not None:
            return [DecodedRun(objs, offsets, values)]  # type: ignore[arg-type]
        out: list[DecodedRun | dict[str, Any]] = []
        run: DecodedRun | None = None
        decode = self._decode
        for value, offset in zip(values, offsets, strict=True):
            res = decode(value) if value is not None else TOMBSTONE
            if type(res) is DeadLetter:
                out.append(self.dead_letter(res, value or b"", partition, offset))
                run = None
                continue
            if run is None:
                run = DecodedRun([], [], [])
                out.append(run)
            run.objects.append(res[0])  # type: ignore[index]
            run.offsets.append(offset)
            run.values.append(value)  # type: ignore[arg-type]
        return out

    def _at_once(self, values: Sequence[bytes | None]) -> list[dict[str, Any]] | None:
        """The objects of JSON ``values`` decoded by one call, or ``None`` where that might
        differ from decoding each alone (see :meth:`decode_batch`)."""
        if not self.json or None in values:
            return None
        present = cast(list[bytes], values)
        if max(map(len, present)) > self.max_bytes:
            return None
        chunk = b"\n".join(present)
        if chunk.count(b"\n") != len(values) - 1:
            return None
        return decode_json_chunk(chunk, len(values))

    def decode_all(self, values: Sequence[bytes | None]) -> list[dict[str, Any]] | None:
        """The objects of ``values`` when every one decodes to an object (at once where
        :meth:`decode_batch` would), else ``None`` (the caller then decodes each with
        :meth:`decode` for its dead-letter record).  Event times are not looked at."""
        if not values:
            return []
        objs = self._at_once(values)
        if objs is not None:
            return objs
        decode = self._decode
        out = []
        for value in values:
            res = decode(value) if value is not None else TOMBSTONE
            if type(res) is DeadLetter:
                return None
            out.append(res[0])  # type: ignore[index]
        return out

    def event_time(self, data: dict[str, Any]) -> int | DeadLetter:
        """The event time (ms) of a decoded object, or why it has none: the decision of
        :meth:`decode`."""
        return event_time_of(data, self.time)

    def dead_letter(self, dl: DeadLetter, raw: bytes, partition: int, offset: int
                    ) -> dict[str, Any]:
        """The dead-letter record; ``raw`` is the value as text (invalid UTF-8 is replaced,
        and the exact bytes are added as ``raw_hex``)."""
        try:
            text = raw.decode("utf-8")
            exact = True
        except UnicodeDecodeError:
            text = raw.decode("utf-8", "replace")
            exact = False
        if len(text) > 65536:
            text = text[:65536]
        rec = dead_letter_record(dl.reason, dl.error, self.source, text, topic=self.topic,
                                 partition=partition, offset=offset)
        if not exact:
            rec["raw_hex"] = raw[:32768].hex()
        return rec


@dataclass
class DecodedRun:
    """Consecutive messages of one partition that decoded to objects: ``objects[i]`` is the
    value ``values[i]`` of the message at offset ``offsets[i]`` (offsets increasing)."""

    objects: list[dict[str, Any]]
    offsets: list[int]
    values: list[bytes]

    def value_at(self, offset: int) -> bytes:
        """The value of the message at ``offset`` (one of :attr:`offsets`)."""
        return self.values[bisect_left(self.offsets, offset)]


# ----------------------------------------------------------------------------- sinks


class SinkRoutes:
    """Sink name → topic.

    A name without a ``[sinks.NAME]`` goes to the ``alerts`` topic, except ``late`` and
    ``dead_letter``, which are dropped (and counted by the caller) when not configured.
    """

    SIDE_OUTPUTS = ("late", "dead_letter")

    def __init__(self, sinks: dict[str, SinkConfig]) -> None:
        self.topics = {name: s.topic for name, s in sinks.items() if s.topic}
        self.fallback = self.topics.get("alerts")

    def topic_for(self, sink: str) -> str | None:
        topic = self.topics.get(sink)
        if topic is None and sink not in self.SIDE_OUTPUTS:
            return self.fallback
        return topic


def encode_record(sink: str, record: dict[str, Any]) -> tuple[bytes | None, bytes]:
    """``(key, value)`` of the message for ``record``: an alert's key is its ``key`` object as
    JSON (so one key's alerts stay in order on one partition); side outputs have no key."""
    value = encode_json(record, newline=False)
    key_obj = record.get("key") if sink not in SinkRoutes.SIDE_OUTPUTS else None
    key = encode_json(key_obj, newline=False) if isinstance(key_obj, dict) else None
    return key, value


# ----------------------------------------------------------------------------- changelog

Header = tuple[str, bytes]


@dataclass
class Changelog:
    """The compacted topic of checkpoints.

    The snapshot of task ``T`` (key ``<group>/<topics>/<partition>``) is written to changelog
    partition ``partition % partitions`` as ``n`` messages: chunk 0 keyed ``T``, chunk ``i``
    keyed ``T#i``, each with headers ``cep-checkpoint`` (a per-task counter) and
    ``cep-chunk`` (``i/n``).  Compaction keeps the newest message per key, so the chunks of
    the newest checkpoint always survive.
    """

    topic: str
    partitions: int

    def partition_of(self, pid: int) -> int:
        return pid % max(1, self.partitions)

    @staticmethod
    def messages(task_key: str, number: int, snapshot: bytes
                 ) -> list[tuple[bytes, bytes, list[Header]]]:
        """``(key, value, headers)`` for each chunk of one checkpoint, in write order."""
        chunks = [snapshot[i:i + CHUNK_BYTES] for i in range(0, len(snapshot), CHUNK_BYTES)]
        chunks = chunks or [b""]
        n = len(chunks)
        out = []
        for i, chunk in enumerate(chunks):
            key = task_key if i == 0 else f"{task_key}#{i}"
            headers = [("cep-checkpoint", str(number).encode()),
                       ("cep-chunk", f"{i}/{n}".encode())]
            out.append((key.encode(), chunk, headers))
        return out

    async def read_latest(self, consumer: AIOKafkaConsumer, task_key: str, pid: int
                          ) -> bytes | None:
        """The newest complete snapshot of ``task_key`` (committed data only: ``consumer``
        must use ``isolation_level="read_committed"`` and no group), or ``None``.

        Reads backwards from the end of the partition in growing windows, so a restore
        reads about one checkpoint, not the topic's history.  The partition is unassigned
        afterwards: an assigned partition is fetched in the background for as long as it
        stays assigned (here: every snapshot written to it, at least every 20 ms)."""
        tp = TopicPartition(self.topic, self.partition_of(pid))
        consumer.assign([tp])
        try:
            start = await consumer.beginning_offsets([tp])
            end = await consumer.end_offsets([tp])
            lo, hi = start[tp], end[tp]
            window = 64
            while hi > lo:
                first = max(lo, hi - window)
                found = await self._scan(consumer, tp, first, hi, task_key)
                if found is not None:
                    return found
                if first == lo:
                    break
                window *= 8
            return None
        finally:
            consumer.unsubscribe()

    async def _scan(self, consumer: AIOKafkaConsumer, tp: TopicPartition, first: int,
                    end: int, task_key: str) -> bytes | None:
        consumer.seek(tp, first)
        chunks: dict[tuple[int, int], bytes] = {}  # (checkpoint, index) → value
        newest: tuple[int, int] | None = None  # (offset, checkpoint) of the latest chunk
        totals: dict[int, int] = {}
        base, prefix = task_key.encode(), (task_key + "#").encode()
        while await consumer.position(tp) < end:
            batch = await consumer.getmany(tp, timeout_ms=100)
            for msg in batch.get(tp, []):
                key = msg.key or b""
                if key != base and not key.startswith(prefix):
                    continue
                headers = dict(msg.headers or ())
                number = int(headers.get("cep-checkpoint", b"0"))
                idx, n = (int(x) for x in headers.get("cep-chunk", b"0/1").split(b"/"))
                chunks[(number, idx)] = msg.value or b""
                totals[number] = n
                if newest is None or msg.offset > newest[0]:
                    newest = (msg.offset, number)
        if newest is None:
            return None
        number = newest[1]
        parts = [chunks.get((number, i)) for i in range(totals[number])]
        if any(p is None for p in parts):
            return None  # the window starts inside this checkpoint: widen it
        return b"".join(p for p in parts if p is not None)


async def ensure_changelog_topic(cfg: KafkaConfig, partitions: int) -> int:
    """Create the changelog topic (compacted) when it does not exist; return its partition
    count.  Replication is ``min(3, brokers)``.  Raises ``KafkaError`` when the broker
    refuses."""
    admin = AIOKafkaAdminClient(**client_options(cfg))
    await admin.start()
    try:
        topic = cfg.changelog
        # list first: a metadata request naming a missing topic may auto-create it
        if topic not in await admin.list_topics():
            brokers = len((await admin.describe_cluster())["brokers"])
            configs = {"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.1",
                       "segment.ms": "600000", "segment.bytes": str(64 << 20)}
            resp = await admin.create_topics([NewTopic(topic, partitions, min(3, brokers),
                                                       topic_configs=configs)])
            for t in resp.to_object().get("topic_errors", []):
                if t.get("error_code") not in (0, 36):  # 36: created concurrently
                    raise KafkaError(f"cannot create changelog topic {topic}: "
                                     f"{t.get('error_message') or t.get('error_code')}")
            log.info("created changelog topic %s (%d partitions, compacted)", topic, partitions)
        for _ in range(50):
            for t in await admin.describe_topics([topic]):
                if t.get("topic") == topic and t.get("error_code") == 0 and t.get("partitions"):
                    return len(t["partitions"])
            await asyncio.sleep(0.1)
        raise KafkaError(f"changelog topic {topic} did not become available")
    finally:
        await admin.close()


async def ensure_repartition_topics(cfg: KafkaConfig, topics: list[str], partitions: int
                                    ) -> None:
    """Create the internal repartition topics that do not exist: ``partitions`` partitions,
    replication ``min(3, brokers)``, ``cleanup.policy=delete``, ``retention.ms`` from
    ``[kafka] repartition_retention`` (consumed records are also deleted explicitly:
    :func:`delete_consumed`).  Raises :class:`~cep.errors.ConfigError` for an existing one
    with another partition count, ``KafkaError`` when the broker refuses."""
    if not topics:
        return
    admin = AIOKafkaAdminClient(**client_options(cfg))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if missing:
            brokers = len((await admin.describe_cluster())["brokers"])
            configs = {"cleanup.policy": "delete",
                       "retention.ms": str(cfg.repartition_retention_ms),
                       "segment.bytes": str(64 << 20)}
            resp = await admin.create_topics([NewTopic(t, partitions, min(3, brokers),
                                                       topic_configs=configs) for t in missing])
            for t in resp.to_object().get("topic_errors", []):
                if t.get("error_code") not in (0, 36):  # 36: created concurrently
                    raise KafkaError(f"cannot create repartition topic {t.get('name')}: "
                                     f"{t.get('error_message') or t.get('error_code')}")
            log.info("created repartition topic(s) %s (%d partitions)", ", ".join(missing),
                     partitions)
        for _ in range(50):
            found = {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics(topics)
                     if t.get("error_code") == 0 and t.get("partitions")}
            if len(found) == len(topics):
                wrong = {t: n for t, n in found.items() if n != partitions}
                if wrong:
                    raise ConfigError("repartition topics must have as many partitions as the "
                                      f"source topics ({partitions}): " + ", ".join(
                                          f"{t} has {n}" for t, n in sorted(wrong.items())))
                return
            await asyncio.sleep(0.1)
        raise KafkaError(f"repartition topics {', '.join(topics)} did not become available")
    finally:
        await admin.close()


async def delete_consumed(cfg: KafkaConfig, offsets: dict[TopicPartition, int]) -> None:
    """Delete the records of repartition partitions below ``offsets`` (committed positions:
    Kafka Streams' ``deleteRecords`` after a commit).  Raises ``KafkaError``."""
    if not offsets:
        return
    admin = AIOKafkaAdminClient(**client_options(cfg))
    await admin.start()
    try:
        await admin.delete_records({tp: RecordsToDelete(off) for tp, off in offsets.items()},
                                   timeout_ms=10_000)
    finally:
        await admin.close()


async def topic_partitions(cfg: KafkaConfig, topics: list[str]) -> dict[str, int]:
    """Partition count of each topic that exists (missing topics are left out; they are not
    auto-created by asking)."""
    admin = AIOKafkaAdminClient(**client_options(cfg))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [t for t in topics if t in existing]
        out = {}
        if wanted:
            for t in await admin.describe_topics(wanted):
                if t.get("error_code") == 0 and t.get("partitions"):
                    out[t["topic"]] = len(t["partitions"])
        return out
    finally:
        await admin.close()


class FencedInstanceIdError(BrokerResponseError):  # type: ignore[misc]
    """Error 82: another member joined with this member's ``group.instance.id``.  aiokafka
    0.14 has no class for it (it would surface as ``UnknownError``), so it is registered here
    and errors that carry it name it."""

    errno = 82
    message = "FENCED_INSTANCE_ID"
    description = "another member joined with this member's group.instance.id"


kafka_errors.kafka_errors.setdefault(FencedInstanceIdError.errno, FencedInstanceIdError)


class _DescribeGroupsResponseV4(Response):  # type: ignore[misc]
    API_KEY = 15
    API_VERSION = 4
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("groups", Array(
            ("error_code", Int16), ("group", String("utf-8")), ("state", String("utf-8")),
            ("protocol_type", String("utf-8")), ("protocol", String("utf-8")),
            ("members", Array(
                ("member_id", String("utf-8")), ("group_instance_id", String("utf-8")),
                ("client_id", String("utf-8")), ("client_host", String("utf-8")),
                ("member_metadata", Bytes), ("member_assignment", Bytes))),
            ("authorized_operations", Int32))))


class _DescribeGroupsRequestV4(RequestStruct):  # type: ignore[misc]
    API_KEY = 15
    API_VERSION = 4
    RESPONSE_TYPE = _DescribeGroupsResponseV4
    SCHEMA = DescribeGroupsRequest_v3.SCHEMA


class _DescribeGroups(Request[_DescribeGroupsRequestV4]):  # type: ignore[misc]
    """DescribeGroups v4 (KIP-345: members carry their ``group_instance_id``)."""

    API_KEY = 15

    def __init__(self, groups: list[str]) -> None:
        self._groups = groups

    def build(self, request_struct_class: type[_DescribeGroupsRequestV4]
              ) -> _DescribeGroupsRequestV4:
        return request_struct_class(self._groups, False)


@dataclass(frozen=True)
class GroupMember:
    """A member of a consumer group as the group coordinator describes it."""

    member_id: str
    instance_id: str | None
    client_id: str
    host: str


async def group_members(cfg: KafkaConfig) -> list[GroupMember]:
    """The members of ``cfg.group_id`` now (none when the group does not exist or is empty).
    Raises ``KafkaError`` (also when the broker does not speak DescribeGroups v4)."""
    admin = AIOKafkaAdminClient(**client_options(cfg))
    await admin.start()
    try:
        node = await admin.find_coordinator(cfg.group_id)
        resp = await admin._client.send(node, _DescribeGroups([cfg.group_id]))
    finally:
        await admin.close()
    out = []
    for group in resp.groups:
        code, members = group[0], group[5]
        if code:
            raise kafka_errors.for_code(code)(f"describing group {cfg.group_id}")
        out += [GroupMember(m[0], m[1], m[2], m[3]) for m in members]
    return out


class Backoff:
    """Exponential backoff with jitter: 0.5 s, 1 s, 2 s … capped at ``cap_s`` seconds."""

    def __init__(self, first_s: float = 0.5, cap_s: float = 30.0) -> None:
        self.first_s = first_s
        self.cap_s = cap_s
        self.attempt = 0

    def next_delay(self) -> float:
        delay = min(self.cap_s, self.first_s * (2 ** self.attempt))
        self.attempt += 1
        return delay * (0.8 + 0.4 * random.random())

    def reset(self) -> None:
        self.attempt = 0


# ----------------------------------------------------------------------------- history


async def resolve_offset_range(
    consumer: AIOKafkaConsumer, tps: list[TopicPartition], start: OffsetBound, end: OffsetBound
) -> dict[TopicPartition, tuple[int, int]]:
    """``tp → (first offset, end offset (exclusive))`` for a range of history.

    Timestamps use ``offsets_for_times`` (a time after the last message resolves to the
    partition's end); offsets are clamped to what the partition still holds.  The consumer
    needs no group and nothing is committed.  Raises ``KafkaError`` from the broker."""
    first = await consumer.beginning_offsets(tps)
    last = await consumer.end_offsets(tps)

    async def place(bound: OffsetBound, default: dict[TopicPartition, int]
                    ) -> dict[TopicPartition, int]:
        if bound.time_ms is not None:
            found = await consumer.offsets_for_times({tp: bound.time_ms for tp in tps})
            return {tp: (found[tp].offset if found.get(tp) is not None else last[tp])
                    for tp in tps}
        if bound.offset is not None:
            return {tp: bound.offset for tp in tps}
        if bound.offsets is not None:
            return {tp: bound.offsets.get(tp.partition, default[tp]) for tp in tps}
        return dict(default)

    lo = await place(start, first)
    hi = await place(end, last)
    out = {}
    for tp in tps:
        a = min(max(lo[tp], first[tp]), last[tp])
        b = min(max(hi[tp], first[tp]), last[tp])
        out[tp] = (a, max(a, b))
    return out


async def read_offset_range(
    consumer: AIOKafkaConsumer, ranges: dict[TopicPartition, tuple[int, int]],
    max_records: int = 20_000, timeout_ms: int = 200,
) -> AsyncIterator[tuple[dict[TopicPartition, list[Any]], list[TopicPartition]]]:
    """Yield ``(batch, finished)`` until every partition of ``ranges`` reaches its end:
    ``batch`` maps partitions to fetched records (in offset order, each below its partition's
    end), ``finished`` lists the partitions that have just reached their end (partitions
    with an empty range are reported in the first item).

    Partitions are assigned manually (no consumer group, no commits: a live group's
    offsets are untouched) and paused as they finish.  Control records of transactions take
    offsets without being returned, so completion is judged by the consumer's position."""
    pending = {tp for tp, (a, b) in ranges.items() if b > a}
    consumer.assign(list(ranges))
    for tp, (a, _) in ranges.items():
        consumer.seek(tp, a)
    finished = [tp for tp in ranges if tp not in pending]
    if finished:
        consumer.pause(*finished)
        yield {}, finished
    while pending:
        batch = await consumer.getmany(*pending, timeout_ms=timeout_ms, max_records=max_records)
        out: dict[TopicPartition, list[Any]] = {}
        for tp, msgs in batch.items():
            end = ranges[tp][1]
            if msgs and msgs[-1].offset >= end:
                msgs = [m for m in msgs if m.offset < end]
            if msgs:
                out[tp] = msgs
        finished = []
        for tp in list(pending):
            if await consumer.position(tp) >= ranges[tp][1]:
                pending.discard(tp)
                consumer.pause(tp)
                finished.append(tp)
        if out or finished:
            yield out, finished
