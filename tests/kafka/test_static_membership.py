"""Two processes started with one ``group_instance_id`` (against the real broker): the second
stops with a clear error and status 2; the first keeps its partitions and its work.  A member
restarted after SIGKILL under the same id — static membership's purpose — is not refused,
although the broker still lists its predecessor when it starts."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.kafka.kafkautil import (
    CepProcess,
    create_topics,
    expected_alerts,
    keyed_json,
    produce,
    read_json,
    run,
    unique,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.kafka

RULES = str(Path(__file__).parent / "rules" / "brute_force.cep")


def _events(n: int, start: int) -> list[dict[str, object]]:
    return [{"ts": 1_700_000_000_000 + (start + i) * 100, "user": f"u{i % 20}", "type": "login",
             "ok": False, "ip": "10.0.0.1"} for i in range(n)]


def _assignments(log: str) -> list[str]:
    return re.findall(r"partitions (\[[\d, ]*\]) assigned", log)


def test_second_member_with_the_same_group_instance_id_is_stopped(tmp_path: Path) -> None:
    topic, group, alerts = unique("events"), unique("g"), unique("alerts")
    instance = unique("member")
    run(create_topics([topic, alerts], partitions=4))
    config = write_config(tmp_path / "cep.toml", topic=topic, group=group, alerts=alerts,
                          rules=[RULES], kafka_extra=f'group_instance_id = "{instance}"')
    first = CepProcess(config, tmp_path / "first.log")
    try:
        wait_until(lambda: "[0, 1, 2, 3] assigned" in first.log(), 60, "the first member")
        second = CepProcess(config, tmp_path / "second.log")
        rc = second.proc.wait(60)
        log = second.log()
        assert rc == 2, log[-3000:]
        assert (f"error: group_instance_id '{instance}' of group {group} is used by another "
                f"live process, member {instance}-") in log
        assert "client id 'cep', host 127.0.0.1" in log and "its own [kafka] group_instance_id" \
            in log
        # The first keeps running, owns every partition again, and does its work.
        time.sleep(8)  # more than two heartbeats: a member still fighting would show it
        assert first.alive(), first.log()[-3000:]
        settled = first.log()
        assert _assignments(settled)[-1] == "[0, 1, 2, 3]"
        assert settled.count("was taken by") <= 2, settled[-3000:]
        run(produce(topic, keyed_json(_events(600, 0))))
        want = run(expected_alerts(topic, [RULES]))
        assert want
        wait_until(lambda: len(run(read_json(alerts))) >= len(want), 60, "the first's alerts")
    finally:
        first.kill()  # a crash: its session (6 s) stays open in the broker
    # Restarted at once under the same id: the broker still lists the killed member, but
    # nobody takes the id back, so this member stays.
    again = CepProcess(config, tmp_path / "again.log")
    try:
        wait_until(lambda: "assigned" in again.log(), 60, "the restarted member")
        assert "is held by member" in again.log()
        time.sleep(14)  # past the guard's two session timeouts
        assert again.alive(), again.log()[-3000:]
        run(produce(topic, keyed_json(_events(600, 600))))
        want = run(expected_alerts(topic, [RULES]))
        wait_until(lambda: len(run(read_json(alerts))) >= len(want), 60, "all alerts")
        time.sleep(1.5)
    finally:
        assert again.terminate() == 0, again.log()[-3000:]
    got = sorted(a["alert_id"] for a in run(read_json(alerts)))
    assert got == sorted(a["alert_id"] for a in want)
