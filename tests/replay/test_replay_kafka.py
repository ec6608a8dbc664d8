"""``cep replay`` against the real broker: a range by message timestamps and by offsets gives
exactly the alerts of the events in the range, and a live consumer group's committed offsets
are left as they were (no group is joined, nothing is committed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import OffsetAndMetadata

from tests.kafka.kafkautil import bootstrap, create_topics, read_json, run, unique

pytestmark = pytest.mark.kafka

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "tests" / "kafka" / "rules" / "brute_force.cep"
PARTITIONS = 3
# Message timestamps (Kafka's, ms) of the three phases; event times in the data are unrelated.
T_A, T_B, T_C = 1_700_000_000_000, 1_700_000_600_000, 1_700_001_200_000


def _fails(user: str, n: int, first_id: int, ts0: int) -> list[dict[str, Any]]:
    return [{"id": first_id + i, "ts": ts0 + 1000 * i, "user": user, "type": "login",
             "ok": False} for i in range(n)]


def _phases() -> list[tuple[int, list[dict[str, Any]]]]:
    """Phase A: a1, a2 fail 5 times, x 3 times; B: b1..b3 fail 5 times, x twice more (x's
    run of five spans A and B); C: c1 fails 5 times.  Plus successes as noise."""
    a = _fails("a1", 5, 100, 10_000) + _fails("a2", 5, 200, 10_000) + _fails("x", 3, 300, 10_000)
    b = (_fails("b1", 5, 400, 20_000) + _fails("b2", 5, 500, 20_000)
         + _fails("b3", 5, 600, 20_000) + _fails("x", 2, 303, 13_000))
    b += [{"id": 700 + i, "ts": 25_000 + i, "user": f"ok{i}", "type": "login", "ok": True}
          for i in range(10)]
    c = _fails("c1", 5, 800, 30_000)
    # in event-time order, so nothing is late
    return [(t, sorted(p, key=lambda e: (e["ts"], e["id"]))) for t, p in ((T_A, a), (T_B, b),
                                                                          (T_C, c))]


async def _produce(topic: str) -> dict[int, list[int]]:
    """Append the phases with their message timestamps; return each partition's offsets at
    the start of each phase (and its end) as ``partition → [A, B, C, end]``."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap(), linger_ms=5)
    await producer.start()
    marks: dict[int, list[int]] = {p: [] for p in range(PARTITIONS)}
    seen: dict[int, int] = dict.fromkeys(range(PARTITIONS), 0)
    try:
        for ts, events in _phases():
            for p in range(PARTITIONS):
                marks[p].append(seen[p])
            futures = [await producer.send(topic, orjson.dumps(e), key=e["user"].encode(),
                                           timestamp_ms=ts) for e in events]
            await producer.flush()
            for f in futures:
                meta = await f
                seen[meta.partition] = max(seen[meta.partition], meta.offset + 1)
        for p in range(PARTITIONS):
            marks[p].append(seen[p])
    finally:
        await producer.stop()
    return marks


async def _commit(group: str, topic: str, offsets: dict[int, int]) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap(), group_id=group,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in offsets]
        consumer.assign(tps)
        await consumer.commit({TopicPartition(topic, p): OffsetAndMetadata(o, "")
                               for p, o in offsets.items()})
    finally:
        await consumer.stop()


async def _group_state(topic: str, group: str) -> tuple[dict[int, int], set[str]]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap())
    await admin.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        got = await admin.list_consumer_group_offsets(group, partitions=tps)
        groups = {g[0] for g in await admin.list_consumer_groups()}
        return {tp.partition: o.offset for tp, o in got.items()}, groups
    finally:
        await admin.close()


def cep(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cep.cli", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)


def _alerts(records: list[dict[str, Any]]) -> list[tuple[str, list[int]]]:
    """``(user, matched event ids)`` per alert, sorted."""
    out = []
    for r in records:
        assert r["rule"] == "brute_force"
        ids = sorted(e["id"] for evs in r["match"].values() for e in evs)
        assert r["data"] == {"user": r["key"]["user"], "attempts": 5}
        out.append((r["key"]["user"], ids))
    return sorted(out)


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines()]


A_USERS = [("a1", list(range(100, 105))), ("a2", list(range(200, 205)))]
B_USERS = [("b1", list(range(400, 405))), ("b2", list(range(500, 505))),
           ("b3", list(range(600, 605)))]
X = [("x", [300, 301, 302, 303, 304])]
C_USERS = [("c1", list(range(800, 805)))]


@pytest.fixture(scope="module")
def history() -> tuple[str, dict[int, list[int]], str, dict[int, int]]:
    topic = unique("replay-src")
    run(create_topics([topic], PARTITIONS))
    marks = run(_produce(topic))
    group = unique("live-group")
    committed = {p: m[1] for p, m in marks.items()}  # the live group is at phase B
    run(_commit(group, topic, committed))
    return topic, marks, group, committed


def test_replay_by_time_range_gives_exactly_the_alerts_in_range(
        history: tuple[str, dict[int, list[int]], str, dict[int, int]],
        tmp_path: Path) -> None:
    topic, marks, group, committed = history
    before_offsets, before_groups = run(_group_state(topic, group))
    assert before_offsets == committed
    out, report = tmp_path / "alerts.jsonl", tmp_path / "report.json"
    res = cep("replay", "-r", str(RULES), "-t", topic, "--bootstrap", bootstrap(),
              "--from", str(T_B), "--to", "2023-11-14T22:33:20Z",  # = T_C
              "-o", str(out), "--report", str(report), "--progress")
    assert res.returncode == 0, res.stderr
    assert _alerts(_lines(out)) == B_USERS  # x has only 2 failures in B; C is excluded
    rep = json.loads(report.read_text())
    assert rep["events"] == 27 and rep["late"] == 0 and rep["dead_letters"] == 0
    assert rep["rules"][0]["brute_force"]["alerts"] == 3
    assert rep["ranges"] == {f"{topic}/{p}": [m[1], m[2]] for p, m in marks.items()}
    assert "brute_force" in res.stdout and "27 events" in res.stdout
    assert "events/s" in res.stderr  # the progress bar

    after_offsets, after_groups = run(_group_state(topic, group))
    assert after_offsets == committed
    assert after_groups == before_groups  # no group was created by the replay


def test_replay_by_offsets_and_to_a_topic(
        history: tuple[str, dict[int, list[int]], str, dict[int, int]],
        tmp_path: Path) -> None:
    topic, marks, group, committed = history
    # From the beginning up to the end of phase B, partition by partition.
    to = ",".join(f"{p}:{m[2]}" for p, m in marks.items())
    alerts_topic = unique("replay-alerts")
    res = cep("replay", "-r", str(RULES), "-t", topic, "--bootstrap", bootstrap(),
              "--to-offset", to, "--output-topic", alerts_topic, "-q")
    assert res.returncode == 0, res.stderr
    assert _alerts(run(read_json(alerts_topic))) == sorted(A_USERS + B_USERS + X)

    # Phase C alone: every partition from its phase-C offset.
    start = ",".join(f"{p}:{m[2]}" for p, m in marks.items())
    out = tmp_path / "c.jsonl"
    res = cep("replay", "-r", str(RULES), "-t", topic, "--bootstrap", bootstrap(),
              "--from-offset", start, "-o", str(out), "-q")
    assert res.returncode == 0, res.stderr
    assert _alerts(_lines(out)) == C_USERS

    # The whole topic, in process, through the library call.
    from cep.app.replay import ReplayOptions, replay_kafka
    from cep.app.rules import load_rule_set
    from cep.config import KafkaConfig, SourceConfig
    from cep.io.kafka import OffsetBound
    from cep.io.sinks import MemorySink, SinkSet

    sink = MemorySink()
    rs = load_rule_set([str(RULES)])
    summary = replay_kafka(KafkaConfig(bootstrap_servers=(bootstrap(),)),
                           [SourceConfig("events", "kafka", topic=topic)],
                           ReplayOptions([rs.rules], sinks=SinkSet({"alerts": sink})),
                           OffsetBound(), OffsetBound())
    assert _alerts(sink.records) == sorted(A_USERS + B_USERS + X + C_USERS)
    assert summary.events == 13 + 27 + 5
    assert {r["match"]["fail"][0]["id"] for r in sink.records} >= {100, 300, 800}

    after_offsets, _ = run(_group_state(topic, group))
    assert after_offsets == committed


def test_replay_usage_errors_exit_2(history: tuple[str, dict[int, list[int]], str,
                                                   dict[int, int]]) -> None:
    topic = history[0]
    res = cep("replay", "-r", str(RULES), "-t", topic, "--bootstrap", bootstrap(),
              "--from", "yesterday")
    assert res.returncode == 2 and "not a time: 'yesterday'" in res.stderr
    res = cep("replay", "-r", str(RULES), "-t", "no-such-topic-" + topic,
              "--bootstrap", bootstrap())
    assert res.returncode == 2 and "no such topic" in res.stderr
