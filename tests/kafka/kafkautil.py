"""Helpers for the Kafka integration tests: topics, producing, reading back, running ``cep``."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

ROOT = Path(__file__).resolve().parents[2]


def bootstrap() -> str:
    return os.environ["CEP_KAFKA_BOOTSTRAP"]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def create_topics(names: Iterable[str], partitions: int = 4) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap())
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, partitions, 1) for n in names])
        for _ in range(100):
            described = await admin.describe_topics(list(names))
            if all(t["error_code"] == 0 and len(t["partitions"]) == partitions
                   for t in described):
                return
            await asyncio.sleep(0.05)
    finally:
        await admin.close()


async def partition_count(topic: str) -> int:
    """Partitions of ``topic`` (0 when it does not exist; it is not auto-created)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap())
    await admin.start()
    try:
        if topic not in await admin.list_topics():
            return 0
        (described,) = await admin.describe_topics([topic])
        return len(described["partitions"])
    finally:
        await admin.close()


async def produce(topic: str, values: Iterable[tuple[bytes | None, bytes]],
                  partition: int | None = None) -> None:
    """Append ``(key, value)`` messages (keyed by the default partitioner)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap(), linger_ms=20,
                                max_batch_size=256 * 1024)
    await producer.start()
    try:
        futures = [await producer.send(topic, v, key=k, partition=partition) for k, v in values]
        await producer.flush()
        for f in futures:
            await f
    finally:
        await producer.stop()


def keyed_json(events: Iterable[dict[str, Any]], key: str = "user"
               ) -> list[tuple[bytes | None, bytes]]:
    return [(str(e[key]).encode(), orjson.dumps(e)) for e in events]


async def read_all(topic: str, committed: bool = True, timeout_s: float = 30.0
                   ) -> list[Any]:
    """Every message of ``topic`` up to its current end, as ``ConsumerRecord``s."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap(), enable_auto_commit=False,
        isolation_level="read_committed" if committed else "read_uncommitted")
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(await partition_count(topic))]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        out: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while [tp for tp in tps if await consumer.position(tp) < end[tp]]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic} did not reach its end")
            batch = await consumer.getmany(timeout_ms=200)
            for msgs in batch.values():
                out.extend(msgs)
        return out
    finally:
        await consumer.stop()


async def read_json(topic: str, committed: bool = True) -> list[dict[str, Any]]:
    return [orjson.loads(m.value) for m in await read_all(topic, committed)]


async def group_progress(group: str, topic: str) -> tuple[int, int]:
    """``(committed, end)`` summed over the topic's partitions for a consumer group."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap())
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap())
    await admin.start()
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(await partition_count(topic))]
        end = await consumer.end_offsets(tps)
        try:
            offsets = await admin.list_consumer_group_offsets(group, partitions=tps)
        except KafkaError:  # the group (or its coordinator) does not exist yet
            return 0, sum(end.values())
        done = sum(max(0, o.offset) for tp, o in offsets.items() if tp in end)
        return done, sum(end.values())
    finally:
        await consumer.stop()
        await admin.close()


def write_config(path: Path, *, topic: str, group: str, alerts: str, rules: list[str],
                 late: str | None = None, dead: str | None = None, extra: str = "",
                 kafka_extra: str = "", source_extra: str = "",
                 partition_key: str | None = "user") -> Path:
    """A ``cep.toml`` for one Kafka source ``events``; its producers key by
    ``partition_key`` (``None``: the source declares none)."""
    if partition_key is not None:
        source_extra = f'partition_key = ["{partition_key}"]\n{source_extra}'

    sinks = f'[sinks.alerts]\nkind = "kafka"\ntopic = "{alerts}"\n'
    if late:
        sinks += f'[sinks.late]\nkind = "kafka"\ntopic = "{late}"\n'
    if dead:
        sinks += f'[sinks.dead_letter]\nkind = "kafka"\ntopic = "{dead}"\n'
    rule_list = ", ".join(f'"{r}"' for r in rules)
    path.write_text(
        f'[kafka]\nbootstrap_servers = "{bootstrap()}"\ngroup_id = "{group}"\n'
        f'session_timeout = "6s"\n{kafka_extra}\n'
        f'[sources.events]\nkind = "kafka"\ntopic = "{topic}"\n{source_extra}\n'
        f'{sinks}\n[rules]\npaths = [{rule_list}]\n{extra}\n')
    return path


class CepProcess:
    """``cep run --config`` as a child process, its log in a file."""

    def __init__(self, config: Path, log: Path) -> None:
        self.log_path = log
        self._log = open(log, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cep.cli", "run", "--config", str(config)],
            stdout=self._log, stderr=subprocess.STDOUT, cwd=ROOT)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        self._log.close()

    def terminate(self, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout)
        self._log.close()
        return rc

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


async def expected_alerts(topic: str, rule_paths: list[str], source: str = "events",
                          ooo_ms: int = 0) -> list[dict[str, Any]]:
    """What an uninterrupted run emits, computed in this process: one operator per partition
    fed the partition's messages in offset order (no end-of-input flush: a stream has none)."""
    from cep.app.rules import load_rule_set
    from cep.event import Event
    from cep.io.codecs import DeadLetter, TimeSpec, json_decoder
    from cep.operator.cep_operator import CepOperator

    decode = json_decoder(TimeSpec())

    rs = load_rule_set(rule_paths)
    assert rs.ok, rs.diagnostics
    out: list[dict[str, Any]] = []
    by_partition: dict[int, list[Any]] = {}
    for m in await read_all(topic, committed=True):
        by_partition.setdefault(m.partition, []).append(m)
    for p, msgs in by_partition.items():
        op = CepOperator(rs.rules, lambda sink, rec: out.append(rec), {f"{topic}/{p}": ooo_ms})
        seq = 0
        for m in sorted(msgs, key=lambda m: m.offset):
            res = decode(m.value)
            if isinstance(res, DeadLetter):
                continue
            seq += 1
            op.on_event(Event(res[1], seq, res[0], source, m.offset, p), f"{topic}/{p}")
    return out


def wait_until(predicate: Any, timeout_s: float, what: str, poll_s: float = 0.1) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(poll_s)


def wait_consumed(group: str, topic: str, procs: list[CepProcess], timeout_s: float = 120
                  ) -> None:
    """Wait until the group has committed every offset of ``topic``."""

    def done() -> bool:
        for p in procs:
            assert p.alive() or p.proc.returncode == 0, f"cep exited early:\n{p.log()[-3000:]}"
        committed, end = run(group_progress(group, topic))
        return end > 0 and committed >= end

    wait_until(done, timeout_s, f"group {group} to consume {topic}", poll_s=0.2)
