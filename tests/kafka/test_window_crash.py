"""``having`` windows and ``suppress for`` under SIGKILL against the real broker: a
``cep run`` killed at random moments yields exactly the alerts of an offline run over the
same topic — each with the same ``suppressed`` count — nothing lost, nothing duplicated
(their state is in every checkpoint, committed with the alerts and offsets)."""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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

RULES = str(Path(__file__).parent / "rules" / "window_burst.cep")


@dataclass
class KilledRun:
    """A ``cep run`` over ``rules`` killed three times at random moments (``seed``), then run
    to the end: its committed alerts (``got``, none duplicated) and an offline run's over the
    same topic (``expected``)."""

    got: list[dict[str, Any]]
    expected: list[dict[str, Any]]
    seed: int
    topic: str = ""


def sigkilled_run(tmp_path: Path, rules: str,
                  complete: Callable[[str], int] | None = None) -> KilledRun:
    """:class:`KilledRun` of ``rules`` over the peers' events, produced while it runs
    (``CEP_TEST_SEED`` draws the same kill moments again).  ``complete(topic)``: how many
    alerts a complete run commits, for rules shuffled through a repartition topic (their
    task may still be behind when the source topic is consumed): the last run is stopped
    once that many are committed (and a moment later, for any extra to show)."""
    events = _events()
    seed = int(os.environ.get("CEP_TEST_SEED", time.time()))
    rng = random.Random(seed)
    topic, group, alerts = unique("events"), unique("g"), unique("alerts")
    run(create_topics([topic], partitions=4))
    run(create_topics([alerts], partitions=4))
    config = write_config(tmp_path / "cep.toml", topic=topic, group=group, alerts=alerts,
                          rules=[rules], kafka_extra=f'group_instance_id = "{group}-a"')
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
        if complete is not None:
            want = complete(topic)
            wait_until(lambda: len(run(read_all(alerts, committed=True))) >= want, 120,
                       f"{want} alerts in {alerts} (seed {seed})", poll_s=0.5)
            time.sleep(1.5)
    finally:
        assert final.terminate() == 0, final.log()[-3000:]
    got = [orjson.loads(m.value) for m in run(read_all(alerts, committed=True))]
    dupes = [i for i, n in Counter(r["alert_id"] for r in got).items() if n > 1]
    assert not dupes, f"{len(dupes)} duplicated alerts (seed {seed})"
    return KilledRun(got, run(expected_alerts(topic, [rules])), seed, topic)


def test_windows_and_suppression_survive_sigkill_exactly_once(tmp_path: Path) -> None:
    killed = sigkilled_run(tmp_path, RULES)
    expected = {r["alert_id"]: r["suppressed"] for r in killed.expected}
    assert len(expected) > 500 and sum(expected.values()) > 20  # both clauses at work
    assert {r["alert_id"]: r["suppressed"] for r in killed.got} == expected, \
        f"seed {killed.seed}"
