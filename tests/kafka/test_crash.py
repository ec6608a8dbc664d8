"""Crash safety and scale-out against the real broker: a ``cep run`` killed with SIGKILL at
random moments, or one of two group members killed mid-stream, still yields exactly the alert
set of an uninterrupted run (read with ``read_committed``): nothing lost, nothing duplicated."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest

from tests.kafka.kafkautil import (
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

pytestmark = [pytest.mark.kafka, pytest.mark.shared]

RULES = str(Path(__file__).parent / "rules" / "brute_force.cep")
GEN = Path(__file__).resolve().parents[3] / "shared" / "peers" / "gen_events.py"
EVENTS = 100_000
RESTORED = re.compile(r"restored checkpoint \d+ \((\d+) keys, (\d+) partial matches")
ASSIGNED = re.compile(r"partitions \[([0-9, ]*)\] assigned")


def _events(seed: int = 11) -> list[tuple[bytes, bytes]]:
    if not GEN.exists():
        pytest.skip(f"{GEN} (the peers' event generator) is not available")
    out = subprocess.run([sys.executable, str(GEN), "--events", str(EVENTS), "--users", "5000",
                          "--seed", str(seed)], capture_output=True, check=True).stdout
    return [(orjson.loads(line)["user"].encode(), line)
            for line in out.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def events() -> list[tuple[bytes, bytes]]:
    return _events()


def _alert_ids(topic: str) -> list[str]:
    return [orjson.loads(m.value)["alert_id"] for m in run(read_all(topic, committed=True))]


def _restored(logs: list[str]) -> list[tuple[int, int]]:
    return [(int(k), int(p)) for log in logs for k, p in RESTORED.findall(log)]


def _uninterrupted(tmp_path: Path, topic: str) -> list[str]:
    """Alert ids of one ``cep run`` over the whole topic, never interrupted."""
    group, alerts = unique("g"), unique("alerts")
    run(create_topics([alerts], partitions=4))
    config = write_config(tmp_path / "ref.toml", topic=topic, group=group, alerts=alerts,
                          rules=[RULES])
    proc = CepProcess(config, tmp_path / "ref.log")
    try:
        wait_consumed(group, topic, [proc])
    finally:
        assert proc.terminate() == 0, proc.log()[-3000:]
    return _alert_ids(alerts)


def test_sigkill_at_random_moments_loses_and_duplicates_nothing(
    tmp_path: Path, events: list[tuple[bytes, bytes]]
) -> None:
    seed = int(os.environ.get("CEP_TEST_SEED", time.time()))
    rng = random.Random(seed)
    topic, group, alerts = unique("events"), unique("g"), unique("alerts")
    run(create_topics([topic], partitions=4))
    run(create_topics([alerts], partitions=4))
    config = write_config(tmp_path / "cep.toml", topic=topic, group=group, alerts=alerts,
                          rules=[RULES], kafka_extra=f'group_instance_id = "{group}-a"')
    producing = _produce_in_background(topic, events, per_second=5_000)
    logs, mid_stream = [], 0
    for i in range(6):
        if not producing.is_alive():
            break
        proc = CepProcess(config, tmp_path / f"run{i}.log")
        try:
            base = _committed(group, topic)
            # killed once this process has committed progress of its own, at a random moment
            # (often inside an open transaction), while events are still being appended
            wait_until(lambda b=base: _committed(group, topic) > b or not producing.is_alive(),
                       120, f"run {i} to make progress (seed {seed})", poll_s=0.02)
            time.sleep(rng.uniform(0.0, 0.6))
            mid_stream += producing.is_alive()
        finally:
            proc.kill()
        logs.append(proc.log())
    producing.join(120)
    final = CepProcess(config, tmp_path / "final.log")
    try:
        wait_consumed(group, topic, [final])
    finally:
        assert final.terminate() == 0, final.log()[-3000:]
    logs.append(final.log())
    ids = _alert_ids(alerts)
    dupes = [i for i, n in Counter(ids).items() if n > 1]
    assert not dupes, f"{len(dupes)} duplicated alerts (seed {seed})"
    expected = {r["alert_id"] for r in run(expected_alerts(topic, [RULES]))}
    assert len(expected) > 500  # the stream really produces alerts
    assert set(ids) == expected, (f"lost {len(expected - set(ids))}, extra "
                                  f"{len(set(ids) - expected)} (seed {seed})")
    reference = _uninterrupted(tmp_path, topic)
    assert sorted(reference) == sorted(ids)
    assert mid_stream >= 5, f"only {mid_stream} kills landed mid-stream (seed {seed})"
    assert any(p > 0 for _, p in _restored(logs)), "no restore carried partial matches"


def _committed(group: str, topic: str) -> int:
    return int(run(group_progress(group, topic))[0])


def test_scale_out_member_killed_mid_stream_other_takes_over(
    tmp_path: Path, events: list[tuple[bytes, bytes]]
) -> None:
    topic, group, alerts = unique("events"), unique("g"), unique("alerts")
    run(create_topics([topic], partitions=4))
    run(create_topics([alerts], partitions=4))
    config = write_config(tmp_path / "cep.toml", topic=topic, group=group, alerts=alerts,
                          rules=[RULES])
    a = CepProcess(config, tmp_path / "a.log")
    b = CepProcess(config, tmp_path / "b.log")
    try:
        wait_until(lambda: _split_between(a, b), 60, "both members to own 2 partitions")
        owned_by_a = _last_assignment(a.log())
        producing = _produce_in_background(topic, events)
        wait_until(lambda: _committed(group, topic) >= 0.3 * len(events)
                   or not producing.is_alive(), 120, "30% progress", poll_s=0.02)
        a.kill()
        producing.join(120)
        wait_consumed(group, topic, [b], timeout_s=180)
    finally:
        a.kill()
        rc = b.terminate()
    assert rc == 0, b.log()[-3000:]
    expected = {r["alert_id"] for r in run(expected_alerts(topic, [RULES]))}
    ids = _alert_ids(alerts)
    assert len(ids) == len(set(ids)), "duplicated alerts"
    assert set(ids) == expected
    taken_over = [line for line in b.log().splitlines() if "restored checkpoint" in line
                  and any(f"partition {p}:" in line for p in owned_by_a)]
    assert taken_over, f"b never restored a's partitions {owned_by_a}:\n{b.log()[-3000:]}"
    assert any(p > 0 for _, p in _restored(taken_over)), "a's partial matches were not restored"


def _last_assignment(log: str) -> list[int]:
    found = ASSIGNED.findall(log)
    return [int(x) for x in found[-1].split(",") if x.strip()] if found else []


def _split_between(a: CepProcess, b: CepProcess) -> bool:
    pa, pb = _last_assignment(a.log()), _last_assignment(b.log())
    return len(pa) == 2 and len(pb) == 2 and sorted(pa + pb) == [0, 1, 2, 3]


def _produce_in_background(topic: str, events: list[tuple[bytes, bytes]],
                           per_second: int = 10_000) -> threading.Thread:
    """Append the events from a thread at about ``per_second``, so the topic is consumed
    while it grows (a live stream)."""
    chunk = per_second // 5

    def work() -> None:
        for i in range(0, len(events), chunk):
            began = time.monotonic()
            run(produce(topic, events[i:i + chunk]))
            time.sleep(max(0.0, 0.2 - (time.monotonic() - began)))

    t = threading.Thread(target=work, daemon=True)
    t.start()
    return t


def _restoring_all(log: str) -> bool:
    """The process took every partition and has begun restoring them: the producers of all
    of them have started (they start before any restore), fencing any earlier ones."""
    at = log.find("partitions [0, 1, 2, 3] assigned")
    return at >= 0 and re.search(r"partition \d: (restored|no checkpoint)", log[at:]) is not None


def test_a_paused_member_is_fenced_and_its_work_is_not_duplicated(
    tmp_path: Path, events: list[tuple[bytes, bytes]]
) -> None:
    """A member frozen mid-transaction (SIGSTOP) loses its partitions after the session
    timeout; when it wakes (SIGCONT) its producers are fenced, its open transactions were
    aborted, and the alert set stays exact."""
    topic, group, alerts = unique("events"), unique("g"), unique("alerts")
    run(create_topics([topic], partitions=4))
    run(create_topics([alerts], partitions=4))
    config = write_config(tmp_path / "cep.toml", topic=topic, group=group, alerts=alerts,
                          rules=[RULES])
    a = CepProcess(config, tmp_path / "a.log")
    b: CepProcess | None = None
    producing = _produce_in_background(topic, events[:60_000], per_second=5_000)
    try:
        wait_until(lambda: _committed(group, topic) > 5_000, 60, "a to make progress")
        a.proc.send_signal(signal.SIGSTOP)
        b = CepProcess(config, tmp_path / "b.log")
        wait_until(lambda: _restoring_all(b.log()), 60,  # type: ignore[union-attr]
                   "b to take every partition and fence a's producers")
        a.proc.send_signal(signal.SIGCONT)
        producing.join(120)
        wait_consumed(group, topic, [a, b], timeout_s=180)
    finally:
        a.proc.send_signal(signal.SIGCONT)
        rc_a = a.terminate()
        rc_b = b.terminate() if b is not None else 0
    assert rc_a == 0 and rc_b == 0, a.log()[-3000:]
    ids = _alert_ids(alerts)
    assert len(ids) == len(set(ids)), "duplicated alerts"
    assert set(ids) == {r["alert_id"] for r in run(expected_alerts(topic, [RULES]))}
    # Woken, the member finds its producers fenced: either its next checkpoint fails or
    # its final checkpoint on revocation does; both are logged as a fenced partition.  (A
    # member frozen right after a checkpoint, with nothing uncommitted, commits nothing
    # when it wakes, and so is never told.)
    handed = re.findall(r"revoked: checkpointing \((\d+) with uncommitted work\)", a.log())
    if handed and handed[0] != "0":
        assert re.search(r"partition \d+: fenced", a.log()), a.log()[-3000:]


def test_fenced_partition_that_is_still_assigned_is_restored(
    tmp_path: Path, events: list[tuple[bytes, bytes]]
) -> None:
    """Another producer takes a partition's transactional id (as the broker does when it
    aborts a transaction that outlived transaction_timeout): the member pauses the partition,
    and as it is still assigned after a session timeout, restores it and goes on exactly."""
    from aiokafka import AIOKafkaProducer

    topic, group, alerts = unique("events"), unique("g"), unique("alerts")
    run(create_topics([topic], partitions=4))
    run(create_topics([alerts], partitions=4))
    config = write_config(tmp_path / "cep.toml", topic=topic, group=group, alerts=alerts,
                          rules=[RULES])
    proc = CepProcess(config, tmp_path / "cep.log")
    producing = _produce_in_background(topic, events[:40_000], per_second=5_000)
    try:
        wait_until(lambda: _committed(group, topic) > 5_000, 60, "progress")

        async def fence() -> None:
            intruder = AIOKafkaProducer(bootstrap_servers=bootstrap(),
                                        transactional_id=f"cep-{group}-{topic}-2")
            await intruder.start()  # bumps the epoch: the member's producer is fenced
            await intruder.stop()

        run(fence())
        wait_until(lambda: "partition 2: still assigned here" in proc.log(), 60,
                   "the fenced partition to be restored")
        producing.join(120)
        wait_consumed(group, topic, [proc], timeout_s=120)
    finally:
        rc = proc.terminate()
    assert rc == 0, proc.log()[-3000:]
    assert "partition 2: fenced" in proc.log()
    ids = _alert_ids(alerts)
    assert len(ids) == len(set(ids)), "duplicated alerts"
    assert set(ids) == {r["alert_id"] for r in run(expected_alerts(topic, [RULES]))}
