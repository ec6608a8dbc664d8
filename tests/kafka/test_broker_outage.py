"""A broker that goes away and comes back: the running ``cep run`` retries with backoff, logs
what it is waiting for, and once the broker is back the alert set is exact (read_committed):
nothing lost, nothing duplicated.

The broker is killed with SIGKILL (as in a crash: connections are refused, open transactions
are left to the restarted broker to abort) and restarted on its own data with
``runtime/kafka/up.sh --keep-data``.  Needs the broker started by ``scripts/test.sh`` (its pid
file is found under the data directory of its port); skipped otherwise.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import orjson
import pytest

from tests.kafka.kafkautil import (
    ROOT,
    CepProcess,
    bootstrap,
    create_topics,
    expected_alerts,
    group_progress,
    produce,
    read_all,
    run,
    unique,
    wait_consumed,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.kafka

RULES = str(Path(__file__).parent / "rules" / "brute_force.cep")


def _broker_pid_file() -> Path:
    port = bootstrap().rsplit(":", 1)[1]
    home = os.environ.get("CEP_KAFKA_HOME", f"/tmp/cep-kafka-{port}")
    return Path(home) / "kafka.pid"


def _events(n: int, users: int = 50) -> list[tuple[bytes, bytes]]:
    """``n`` failed logins over ``users`` users, one per 100 ms of event time, so every user
    keeps reaching the brute-force threshold and partial matches span the outage."""
    out = []
    for i in range(n):
        user = f"u{i % users}"
        ev = {"ts": 1_700_000_000_000 + i * 100, "user": user, "type": "login", "ok": False,
              "ip": f"10.0.{i % 7}.1"}
        out.append((user.encode(), orjson.dumps(ev)))
    return out


def test_broker_killed_and_restarted_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    pid_file = _broker_pid_file()
    if not pid_file.exists():
        pytest.skip(f"no broker pid file at {pid_file} (broker not started by up.sh)")
    port = bootstrap().rsplit(":", 1)[1]
    topic, group, alerts = unique("events"), unique("g"), unique("alerts")
    run(create_topics([topic], partitions=2))
    run(create_topics([alerts], partitions=2))
    events = _events(6_000)
    first, second = events[:3_000], events[3_000:]
    config = write_config(tmp_path / "cep.toml", topic=topic, group=group, alerts=alerts,
                          rules=[RULES])
    run(produce(topic, first))
    proc = CepProcess(config, tmp_path / "cep.log")
    try:
        wait_until(lambda: run(group_progress(group, topic))[0] >= len(first), 90,
                   "the first half to be consumed")
        os.kill(int(pid_file.read_text().strip()), signal.SIGKILL)
        time.sleep(4)  # the engine meets refused connections meanwhile
        assert proc.alive(), proc.log()[-3000:]
        subprocess.run(["bash", str(ROOT / "runtime/kafka/up.sh"), "--port", port,
                        "--keep-data"], check=True, capture_output=True, timeout=180)
        run(produce(topic, second))
        wait_consumed(group, topic, [proc], timeout_s=180)
        wait_until(lambda: "answers again" in proc.log(), 20, "the engine to see the broker back")
    finally:
        rc = proc.terminate()
    log = proc.log()
    assert rc == 0, log[-3000:]
    ids = [orjson.loads(m.value)["alert_id"] for m in run(read_all(alerts, committed=True))]
    assert len(ids) == len(set(ids)), "duplicated alerts"
    expected = {r["alert_id"] for r in run(expected_alerts(topic, [RULES]))}
    assert len(expected) > 100
    lost, extra = len(expected - set(ids)), len(set(ids) - expected)
    assert set(ids) == expected, f"lost {lost}, extra {extra}"
    # the outage was noticed and retried with a delay, in words an operator can act on
    assert "is unreachable" in log and "answers again" in log, log[-3000:]
    assert "Unable connect" not in log  # aiokafka's per-attempt errors are condensed
