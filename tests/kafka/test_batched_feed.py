"""On a real broker, Kafka mode's batched feed commits exactly what feeding the same messages
one by one emits: the same alerts (byte for byte, ``alert_id`` included), late events and dead
letters — with malformed, tombstoned, late and oddly timed messages inside the fetched
batches — and commits every offset.

The reference decodes the messages read back from the input topic one by one and hands each
event to a :class:`CepOperator` per partition (:meth:`~CepOperator.on_event`), the
message-by-message path; ``tests/io/test_kafka_batch_feed.py`` compares the two paths record by
record and checkpoint by checkpoint without a broker.

``cep replay`` of such a topic takes the same batched path for rules that run per partition,
and must emit what feeding its messages one by one emits.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from cep.app.replay import ReplayOptions, replay_kafka
from cep.app.rules import load_rule_set
from cep.config import KafkaConfig, SourceConfig, load_config
from cep.event import Event
from cep.io.kafka import MessageDecoder, OffsetBound, SinkRoutes, encode_record
from cep.io.sinks import SinkSet
from cep.jsontext import encode_json
from cep.operator.cep_operator import CepOperator
from cep.operator.time_guard import FutureGuard
from tests.kafka.kafkautil import (
    CepProcess,
    bootstrap,
    create_topics,
    produce,
    read_all,
    run,
    unique,
    wait_consumed,
    write_config,
)

pytestmark = pytest.mark.kafka

RULES = Path(__file__).parent / "rules"
RULE_FILES = [str(RULES / "pairs.cep"), str(RULES / "brute_force.cep")]
T = 1_700_000_000_000
PARTITIONS = 2


def _messages(rng: random.Random, n: int) -> list[tuple[bytes | None, bytes | None]]:
    """``(key, value)``: logins of a few users, some late, and hostile messages among them."""
    out: list[tuple[bytes | None, bytes | None]] = []
    ts = T
    for i in range(n):
        ts += rng.choice([0, 200, 1000, 5000, 40_000])
        user = rng.choice(["ann", "ben", "cid", "dan", "eve", "fay"])
        d: dict[str, Any] = {"id": i, "ts": ts, "user": user, "action": "login",
                             "type": "login", "outcome": rng.choice(["failure", "success"])}
        d["ok"] = d["outcome"] == "success"
        r = rng.random()
        key = user.encode()
        if r < 0.05:
            d["ts"] = ts - rng.randint(1_000, 120_000)  # late, unless it is the first
        elif r < 0.06:
            d["ts"] = "yesterday"
        elif r < 0.07:
            d["ts"] = str(ts)
        elif r < 0.075:
            d["ts"] = 2 ** 60
        elif r < 0.08:
            out.append((key, b'{"ts": ' + str(ts).encode() + b', "user": '))  # malformed
            continue
        elif r < 0.085:
            out.append((key, None))  # a tombstone
            continue
        elif r < 0.09:
            out.append((key, b'["not", "an", "object"]'))
            continue
        out.append((key, orjson.dumps(d)))
    return out


def _expected(config: Path, topic: str, msgs: list[Any]) -> dict[str, Counter[bytes]]:
    """Message by message: what each partition's operator emits, as message values per
    output topic."""
    cfg = load_config(config)
    (source,) = cfg.kafka_sources
    routes = SinkRoutes(cfg.sinks)
    decoder = MessageDecoder(source, cfg.kafka.max_event_bytes)  # type: ignore[union-attr]
    rules = load_rule_set(RULE_FILES).rules
    out: dict[str, Counter[bytes]] = {}

    def emit(sink: str, rec: dict[str, Any]) -> None:
        topic = routes.topic_for(sink)
        if topic is not None:
            out.setdefault(topic, Counter())[encode_record(sink, rec)[1]] += 1

    for p in range(PARTITIONS):
        name = f"{topic}/{p}"
        op = CepOperator(rules, emit, {name: source.max_out_of_orderness_ms},
                         cfg.state.max_partial_matches_per_key,
                         FutureGuard(cfg.state.max_future_skew_ms, time.time),
                         max_events_per_match=cfg.state.max_events_per_match)
        seq = 0
        for m in sorted((m for m in msgs if m.partition == p), key=lambda m: m.offset):
            res = decoder.decode(m.value, p, m.offset, seq + 1)
            if type(res) is Event:
                seq += 1
                op.on_event(res, name)
            else:
                emit("dead_letter", res)  # type: ignore[arg-type]
    return out


@pytest.mark.parametrize("ooo", ["0ms", "30s"])
def test_batched_feed_commits_what_message_by_message_emits(tmp_path: Path, ooo: str) -> None:
    topic, alerts, late, dead = (unique(n) for n in ("in", "alerts", "late", "dead"))
    group = unique("g")
    run(create_topics([topic], partitions=PARTITIONS))
    run(create_topics([alerts, late, dead], partitions=1))
    run(produce(topic, _messages(random.Random(ooo), 4000)))  # type: ignore[arg-type]
    config = write_config(tmp_path / "cep.toml", topic=topic, group=group, alerts=alerts,
                          late=late, dead=dead, rules=RULE_FILES,
                          source_extra=f'max_out_of_orderness = "{ooo}"\n')
    proc = CepProcess(config, tmp_path / "cep.log")
    try:
        wait_consumed(group, topic, [proc])
    except BaseException:
        proc.kill()
        raise
    assert proc.terminate() == 0, proc.log()[-3000:]
    expected = _expected(config, topic, run(read_all(topic)))
    got = {t: Counter(m.value for m in run(read_all(t))) for t in (alerts, late, dead)}
    for t in (alerts, late, dead):
        assert sum(expected.get(t, Counter()).values()) > 0, t
        assert got[t] == expected.get(t, Counter()), t
    reasons = Counter(orjson.loads(v)["reason"] for v in got[dead].elements())
    assert set(reasons) == {"malformed", "not_an_object", "bad_event_time"}


class _Kept:
    """An in-memory sink: each record as JSON, counted."""

    def __init__(self) -> None:
        self.records: Counter[bytes] = Counter()

    def write(self, record: dict[str, Any]) -> None:
        self.records[encode_json(record, newline=False)] += 1

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def _replayed_one_by_one(source: SourceConfig, msgs: list[Any], skew_ms: int | None
                         ) -> dict[str, Counter[bytes]]:
    """What a replay emits, message by message: per partition an operator fed each decoded
    message, then finished (the end of the range)."""
    decoder = MessageDecoder(source, KafkaConfig().max_event_bytes)
    rules = load_rule_set(RULE_FILES).rules
    out: dict[str, Counter[bytes]] = {"alerts": Counter(), "late": Counter(),
                                      "dead_letter": Counter()}

    def emit(sink: str, rec: dict[str, Any]) -> None:
        out["alerts" if sink not in out else sink][encode_json(rec, newline=False)] += 1

    for p in range(PARTITIONS):
        name = f"{source.topic}/{p}"
        op = CepOperator(rules, emit, {name: source.max_out_of_orderness_ms}, 10_000,
                         FutureGuard(skew_ms))
        seq = 0
        for m in sorted((m for m in msgs if m.partition == p), key=lambda m: m.offset):
            res = decoder.decode(m.value, p, m.offset, seq + 1)
            if type(res) is Event:
                seq += 1
                op.on_event(res, name)
            else:
                emit("dead_letter", res)  # type: ignore[arg-type]
        op.finish()
    return out


@pytest.mark.parametrize("ooo", [0, 30_000])
def test_replay_of_a_topic_emits_what_message_by_message_emits(ooo: int) -> None:
    topic = unique("in")
    run(create_topics([topic], partitions=PARTITIONS))
    run(produce(topic, _messages(random.Random(ooo + 1), 4000)))  # type: ignore[arg-type]
    # (keyed by user, which the rules are keyed by: every rule runs per partition)
    source = SourceConfig("events", "kafka", topic=topic, max_out_of_orderness_ms=ooo,
                          partition_key=("user",))
    kept = {name: _Kept() for name in ("alerts", "late", "dead_letter")}
    opts = ReplayOptions([load_rule_set(RULE_FILES).rules], sinks=SinkSet(dict(kept)),
                         max_future_skew_ms=3_600_000)
    summary = replay_kafka(KafkaConfig(bootstrap_servers=(bootstrap(),)), [source], opts,
                           OffsetBound(offset=0), OffsetBound())
    assert summary.all_partitions == []
    expected = _replayed_one_by_one(source, run(read_all(topic)), 3_600_000)
    for name, sink in kept.items():
        assert sum(expected[name].values()) > 0, name
        assert sink.records == expected[name], name
