"""Sigma correlation rules (``value_sum``, ``temporal``, ``event_count``) under SIGKILL
against the real broker: a ``cep run`` over a Sigma file, killed at random moments, yields
exactly the alerts of an offline run over the same topic — nothing lost, nothing duplicated
(the correlations' windows are in every checkpoint, committed with the alerts and offsets)."""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest

from tests.kafka.kafkautil import (
    CepProcess,
    create_topics,
    expected_alerts,
    read_all,
    run,
    unique,
    wait_consumed,
    wait_until,
    write_config,
)
from tests.kafka.test_crash import _committed, _events, _produce_in_background

pytestmark = [pytest.mark.kafka, pytest.mark.shared]

RULES = str(Path(__file__).parent / "rules" / "sigma_correlations.yml")


def test_sigma_correlations_survive_sigkill_exactly_once(tmp_path: Path) -> None:
    events = _events()
    seed = int(os.environ.get("CEP_TEST_SEED", time.time()))
    rng = random.Random(seed)
    topic, group, alerts = unique("events"), unique("g"), unique("alerts")
    run(create_topics([topic], partitions=4))
    run(create_topics([alerts], partitions=4))
    config = write_config(tmp_path / "cep.toml", topic=topic, group=group, alerts=alerts,
                          rules=[RULES], kafka_extra=f'group_instance_id = "{group}-a"')
    producing = _produce_in_background(topic, events, per_second=10_000)
    for i in range(3):
        if not producing.is_alive():
            break
        proc = CepProcess(config, tmp_path / f"run{i}.log")
        try:
            base = _committed(group, topic)
            wait_until(lambda b=base: _committed(group, topic) > b or not producing.is_alive(),
                       120, f"run {i} to make progress (seed {seed})", poll_s=0.02)
            time.sleep(rng.uniform(0.0, 0.6))
        finally:
            proc.kill()
    producing.join(120)
    final = CepProcess(config, tmp_path / "final.log")
    try:
        wait_consumed(group, topic, [final])
    finally:
        assert final.terminate() == 0, final.log()[-3000:]
    got = [orjson.loads(m.value) for m in run(read_all(alerts, committed=True))]
    ids = [r["alert_id"] for r in got]
    dupes = [i for i, n in Counter(ids).items() if n > 1]
    assert not dupes, f"{len(dupes)} duplicated alerts (seed {seed})"
    expected = run(expected_alerts(topic, [RULES]))
    by_rule = Counter(r["rule"] for r in expected)
    assert all(by_rule[r] > 50 for r in ("payment_total", "login_pay_refund", "payment_burst")), \
        by_rule
    assert sorted(ids) == sorted(r["alert_id"] for r in expected), f"seed {seed}"
    assert {r["data"]["author"] for r in got} == {"cep tests"}
    print(f"\n{dict(by_rule)} alerts after 3 kills, none lost or repeated (seed {seed})")
