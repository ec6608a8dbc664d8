"""``cep replay --topic`` over rules keyed unlike the topic: a 4-partition
topic whose producer keys events by ``user``, a rule ``key by user`` and a rule ``key by
src_ip``.  Replay reads every partition in one process; the ``src_ip`` rule must see all
partitions' events in one operator, so the replay's alerts equal file mode's over the same
events (by rule, key and matched events), with and without ``partition_key`` declared."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cep.app.replay import co_partitioned
from cep.app.rules import load_rule_set
from cep.config import SourceConfig
from tests.kafka.kafkautil import (
    bootstrap,
    create_topics,
    keyed_json,
    produce,
    run,
    unique,
)

ROOT = Path(__file__).resolve().parents[2]
RULES = Path(__file__).resolve().parent / "rules" / "mixed"


def _events() -> list[dict[str, Any]]:
    """600 logins of 40 users from 6 addresses, one second apart (distinct times, so the
    order of events is the same whichever partition they are read from), mostly failures."""
    rnd = random.Random(19)
    return [{"id": i, "ts": 1_700_000_000_000 + 1000 * i, "user": f"u{rnd.randrange(40)}",
             "src_ip": f"10.0.0.{rnd.randrange(6)}", "type": "login",
             "ok": rnd.random() < 0.25} for i in range(600)]


def _alerts(records: list[dict[str, Any]]) -> list[tuple[str, str, list[int]]]:
    """``(rule, key, matched event ids)`` per alert, sorted."""
    return sorted((r["rule"], json.dumps(r["key"], sort_keys=True),
                   sorted(e["id"] for evs in r["match"].values() for e in evs))
                  for r in records)


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines() if x]


def cep(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cep.cli", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=180)


def test_co_partitioned_needs_a_partition_key_within_the_rule_key() -> None:
    rules = {r.name: r for r in load_rule_set([str(RULES)]).rules}
    by_user = SourceConfig("events", "kafka", topic="t", partition_key=("user",))
    undeclared = SourceConfig("events", "kafka", topic="t")
    assert co_partitioned(rules["brute_force"], [by_user])
    assert not co_partitioned(rules["spray"], [by_user])
    assert not co_partitioned(rules["brute_force"], [undeclared])  # nothing assumed


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory
            ) -> tuple[str, list[tuple[str, str, list[int]]]]:
    """The events in a file run by ``cep run`` (its alerts: the expected ones) and in a
    4-partition topic keyed by user; ``(topic, expected alerts)``."""
    tmp = tmp_path_factory.mktemp("mixed")
    events = _events()
    path = tmp / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    file_out = tmp / "file.jsonl"
    res = cep("run", "-r", str(RULES), "-i", str(path), "-o", str(file_out))
    assert res.returncode == 0, res.stderr
    expected = _alerts(_lines(file_out))
    assert {a[0] for a in expected} == {"brute_force", "spray"}
    assert len([a for a in expected if a[0] == "spray"]) >= 20
    topic = unique("replay-mixed")
    run(create_topics([topic], 4))
    run(produce(topic, keyed_json(events, "user")))
    return topic, expected


@pytest.mark.kafka
def test_replay_without_partition_key_equals_file_mode(
        history: tuple[str, list[tuple[str, str, list[int]]]], tmp_path: Path) -> None:
    """No partition_key known (--topic alone): every rule sees every partition."""
    topic, expected = history
    out = tmp_path / "replay.jsonl"
    res = cep("replay", "-r", str(RULES), "-t", topic, "--bootstrap", bootstrap(),
              "--source", "events", "-o", str(out), "-q")
    assert res.returncode == 0, res.stderr
    assert _alerts(_lines(out)) == expected


@pytest.mark.kafka
def test_replay_with_partition_key_equals_file_mode(
        history: tuple[str, list[tuple[str, str, list[int]]]], tmp_path: Path) -> None:
    """partition_key = ["user"]: brute_force per partition, spray over all of them."""
    topic, expected = history
    config = tmp_path / "cep.toml"
    config.write_text(f'[kafka]\nbootstrap_servers = "{bootstrap()}"\n\n'
                      f'[sources.events]\nkind = "kafka"\ntopic = "{topic}"\n'
                      'partition_key = ["user"]\n')
    out, report = tmp_path / "replay.jsonl", tmp_path / "report.json"
    res = cep("replay", "-r", str(RULES), "-c", str(config), "-o", str(out),
              "--report", str(report))
    assert res.returncode == 0, res.stderr
    assert _alerts(_lines(out)) == expected
    assert json.loads(report.read_text())["all_partitions"] == ["spray"]
    assert "over every partition in one operator (key not among the sources' " \
        "partition_key): spray" in res.stdout
