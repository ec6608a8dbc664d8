"""On a real broker, Kafka mode's batched feed commits exactly what feeding the same messages
one by one emits: the same alerts (byte for byte, ``alert_id`` included), late events and dead
letters — with malformed, tombstoned, late and oddly timed messages inside the fetched
batches — and commits every offset.

The reference decodes the messages read back from the input topic one by one and hands each
event to a :class:`CepOperator` per partition (:meth:`~CepOperator.on_event`), the
message-by-message path; ``tests/io/test_kafka_batch_feed.py`` compares the two paths record by
record and checkpoint by checkpoint without a broker.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from cep.app.rules import load_rule_set
from cep.config import load_config
from cep.event import Event
from cep.io.kafka import MessageDecoder, SinkRoutes, encode_record
from cep.operator.cep_operator import CepOperator
from cep.operator.time_guard import FutureGuard
from tests.kafka.kafkautil import (
    CepProcess,
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
