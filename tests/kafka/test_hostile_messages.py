"""Hostile messages on a real broker: every one is an event or a dead letter with its reason,
nothing stops the partition, and one forged far-future time does not blind the rules."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.kafka.kafkautil import (
    CepProcess,
    create_topics,
    produce,
    read_json,
    run,
    unique,
    wait_consumed,
    write_config,
)

pytestmark = pytest.mark.kafka

RULES = Path(__file__).parent / "rules"
T = 1_700_000_000_000


def login(ts_s: float, user: str, outcome: str) -> bytes:
    return orjson.dumps({"ts": T + int(ts_s * 1000), "user": user, "action": "login",
                         "outcome": outcome})


def test_hostile_messages_are_dead_letters_and_the_rules_keep_matching(tmp_path: Path) -> None:
    topic, alerts, late, dead = (unique(n) for n in ("in", "alerts", "late", "dead"))
    group = unique("g")
    run(create_topics([topic], partitions=1))
    run(create_topics([alerts, late, dead], partitions=1))
    year_ahead = int(time.time() * 1000) + 365 * 86_400_000
    hostile = [
        b'{"ts":9223372036854775808,"user":"h1","action":"login","outcome":"failure"}',
        b'{"ts":1e308,"user":"h2","action":"login","outcome":"failure"}',
        json.dumps({"ts": T + 1, "user": "h3", "action": "login", "outcome": "failure",
                    "d": json.loads("[" * 300 + "]" * 300)}).encode(),
        b'{"ts":' + str(T + 2).encode() + b',"user":' + b"[" * 500 + b"]" * 500 + b"}",
        orjson.dumps({"ts": year_ahead, "user": "h5", "action": "login",
                      "outcome": "failure"}),
        orjson.dumps({"ts": 253_402_300_799_999, "user": "h6", "action": "login",
                      "outcome": "failure"}),
    ]
    good = [login(0, "alice", "failure"), login(10, "alice", "success")]
    tail = [login(20, "bob", "failure"), login(30, "bob", "success")]
    messages: list[tuple[bytes | None, bytes]] = [(None, m) for m in good + hostile + tail]
    run(produce(topic, messages))
    config = write_config(tmp_path / "cep.toml", topic=topic, group=group, alerts=alerts,
                          late=late, dead=dead, rules=[str(RULES / "pairs.cep")])
    proc = CepProcess(config, tmp_path / "cep.log")
    try:
        wait_consumed(group, topic, [proc])
    except BaseException:
        proc.kill()
        raise
    assert proc.terminate() == 0, proc.log()[-3000:]
    records: list[dict[str, Any]] = run(read_json(alerts))
    assert sorted(r["key"]["user"] for r in records if not r.get("timed_out")) == ["alice", "bob"]
    dead_letters = sorted(run(read_json(dead)), key=lambda r: r["offset"])
    assert [(d["offset"], d["reason"]) for d in dead_letters] == [
        (2, "bad_event_time"), (3, "bad_event_time"), (4, "too_deep"), (5, "too_deep"),
        (6, "future_event_time"), (7, "future_event_time")]
    assert "wall clock" in dead_letters[4]["error"]
    assert run(read_json(late)) == []
