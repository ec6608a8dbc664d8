"""Kafka ends of the end-to-end reload tests: a producer fed from another thread and a
``read_committed`` collector of an output topic, each on its own event loop thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from tests.kafka.kafkautil import bootstrap, partition_count


class _LoopThread:
    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class KafkaSink(_LoopThread):
    """``sink(lines)`` sends JSON lines to ``topic`` keyed by their ``user`` and waits until
    the broker has them (a :class:`~tests.reload.runner.Feeder` sink)."""

    def __init__(self, topic: str) -> None:
        super().__init__("kafka-sink")
        self.topic = topic
        self.sent: list[tuple[int, int, bytes]] = []  # (partition, offset, value)
        self.producer: AIOKafkaProducer = self.run(self._start())

    async def _start(self) -> AIOKafkaProducer:  # clients are made on their loop
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap(), linger_ms=2)
        await producer.start()
        return producer

    def __call__(self, lines: list[bytes]) -> None:
        self.run(self._send(lines))

    async def _send(self, lines: list[bytes]) -> None:
        futures = [await self.producer.send(
            self.topic, line, key=str(orjson.loads(line)["user"]).encode()) for line in lines]
        for line, fut in zip(lines, futures, strict=True):
            md = await fut
            self.sent.append((md.partition, md.offset, line))

    def close(self) -> None:
        self.run(self.producer.stop())
        super().close()


class Collector(_LoopThread):
    """Reads every committed record of ``topic`` as it arrives into :attr:`records`."""

    def __init__(self, topic: str) -> None:
        super().__init__("kafka-collector")
        self.records: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.consumer: AIOKafkaConsumer = self.run(self._start(topic))
        self._task = asyncio.run_coroutine_threadsafe(self._poll(), self.loop)

    async def _start(self, topic: str) -> AIOKafkaConsumer:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap(),
                                    isolation_level="read_committed", enable_auto_commit=False)
        await consumer.start()
        tps = [TopicPartition(topic, p) for p in range(await partition_count(topic))]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        return consumer

    async def _poll(self) -> None:
        while True:
            batch = await self.consumer.getmany(timeout_ms=50)
            with self._lock:
                for msgs in batch.values():
                    self.records.extend(orjson.loads(m.value) for m in msgs)

    def get(self, rule: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [r for r in self.records if rule is None or r.get("rule") == rule]

    def close(self) -> None:
        self._task.cancel()
        self.run(self.consumer.stop())
        super().close()
