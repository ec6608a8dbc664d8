"""Rules keyed unlike the topic, against the real broker: a 4-partition topic whose producer
keys events by ``user``, one rule ``key by user`` (read directly) and two ``key by src_ip``
(through the repartition topic ``<group>.repartition.src_ip``).  Kafka mode must give exactly
the alert set of file mode over the same events — one process, two processes sharing the
group, and a process killed with SIGKILL at random moments across both hops — compared by
content (rule, key, matched events), with no alert duplicated.

**Why the end compares exactly.**  File mode decides everything at end of input (the
watermark jumps to +∞); a stream has no end.  So each partition ends with a *sentinel* event
ten minutes after the last real one, which no rule reads: it moves every watermark past the
windows (5 min at most) of every real event, in both modes, so both decide the same things,
and file mode's end-of-input flush has nothing left to decide but partial matches that
expire silently.  (``idle_timeout`` would also unblock the watermark of a silent partition,
but when it fires depends on the wall clock: the sentinel makes the comparison exact.)  Event
times are unique, so no order between equal times is involved.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.kafka.kafkautil import (
    ROOT,
    CepProcess,
    bootstrap,
    create_topics,
    group_progress,
    produce,
    read_json,
    run,
    unique,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.kafka

RULES_DIR = Path(__file__).parent / "rules"
RULES = [str(RULES_DIR / n) for n in ("brute_force.cep", "spray_by_ip.cep",
                                       "fail_then_ok_by_ip.cep")]
PARTITIONS = 4
EVENTS = 12_000


def _partition(user: str) -> int:
    return int.from_bytes(hashlib.blake2b(user.encode(), digest_size=4).digest(), "big") \
        % PARTITIONS


def _events(seed: int = 19, n: int = EVENTS) -> list[dict[str, Any]]:
    """Logins in event-time order, unique times; each partition ends with a sentinel."""
    rng = random.Random(seed)
    out, ts = [], 1_700_000_000_000
    for _ in range(n):
        ts += rng.randint(1, 40)
        user, ip = f"u{rng.randint(0, 150)}", f"10.0.0.{rng.randint(0, 40)}"
        ok = rng.random() < 0.25
        out.append({"ts": ts, "type": "login" if rng.random() < 0.9 else "logout",
                    "user": user, "src_ip": ip, "ok": ok})
    for p in range(PARTITIONS):
        user = next(f"s{i}" for i in range(1000) if _partition(f"s{i}") == p)
        out.append({"ts": ts + 600_000 + p, "type": "tick", "user": user,
                    "src_ip": "0.0.0.0", "ok": True})
    return out


@pytest.fixture(scope="module")
def events() -> list[dict[str, Any]]:
    return _events()


@pytest.fixture(scope="module")
def expected(events: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory
             ) -> Counter[bytes]:
    """File mode's alerts over the same events, in the same order."""
    d = tmp_path_factory.mktemp("file")
    src, out = d / "events.jsonl", d / "alerts.jsonl"
    src.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    subprocess.run([sys.executable, "-m", "cep.cli", "run", *RULES, "--input", str(src),
                    "--output", str(out)], check=True, cwd=ROOT, capture_output=True)
    got = Counter(_content(orjson.loads(line)) for line in out.read_bytes().splitlines())
    by_rule = Counter(orjson.loads(k)[0] for k in got.elements())
    assert all(by_rule[r] > 30 for r in ("brute_force", "spray_by_ip", "fail_then_ok_by_ip")), \
        by_rule
    return got


def _content(alert: dict[str, Any]) -> bytes:
    """(rule, key, matched events by stage): what an alert is, whatever its coordinates."""
    return orjson.dumps([alert["rule"], alert["key"], alert["match"]],
                        option=orjson.OPT_SORT_KEYS)


def _keyed(events: list[dict[str, Any]]) -> dict[int, list[tuple[bytes, bytes]]]:
    by: dict[int, list[tuple[bytes, bytes]]] = {p: [] for p in range(PARTITIONS)}
    for e in events:
        by[_partition(e["user"])].append((e["user"].encode(), orjson.dumps(e)))
    return by


def _produce_all(topic: str, events: list[dict[str, Any]]) -> None:
    async def go() -> None:
        for p, msgs in _keyed(events).items():
            await produce(topic, msgs, partition=p)
    run(go())


def _setup(tmp_path: Path, name: str = "cep.toml", kafka_extra: str = "", extra: str = ""
           ) -> tuple[str, str, str, str, Path]:
    topic, group, alerts, late = unique("logins"), unique("g"), unique("alerts"), unique("late")
    run(create_topics([topic, alerts, late], partitions=PARTITIONS))
    config = write_config(tmp_path / name, topic=topic, group=group, alerts=alerts, late=late,
                          rules=RULES, kafka_extra=kafka_extra, extra=extra)
    return topic, group, alerts, late, config


def _wait_alerts(alerts: str, want: int, procs: list[CepProcess], timeout_s: float = 90
                 ) -> None:
    def done() -> bool:
        for p in procs:
            assert p.alive(), f"cep exited early:\n{p.log()[-3000:]}"
        return len(run(read_json(alerts))) >= want
    wait_until(done, timeout_s, f"{want} alerts in {alerts}", poll_s=0.5)
    time.sleep(1.5)  # anything extra would show up now


def _check(alerts: str, late: str, expected: Counter[bytes], note: str = "") -> None:
    """The committed alerts are file mode's, none twice, and no event was late; ``note``
    ends each failure message (a run's seed)."""
    got = run(read_json(alerts))
    ids = Counter(a["alert_id"] for a in got)
    twice = [a for a in got if ids[a["alert_id"]] > 1]
    assert not twice, (f"{len(twice) - len({a['alert_id'] for a in twice})} duplicated alerts, "
                       f"by rule {dict(Counter(a['rule'] for a in twice))}: "
                       f"{[_content(a) for a in twice[:2]]}{note}")
    content = Counter(_content(a) for a in got)
    lost, extra = expected - content, content - expected
    assert not lost and not extra, (f"lost {sum(lost.values())}, extra {sum(extra.values())}: "
                                    f"{list(lost)[:2]} {list(extra)[:2]}{note}")
    assert run(read_json(late)) == [], f"no event is late in an event-time-ordered input{note}"


def _test_seed() -> int:
    """The seed of a run's random moments: ``$CEP_TEST_SEED``, else the clock.  Printed (and
    so shown with a failure's captured output) and named in the failure messages, so that a
    failing run's moments can be drawn again."""
    seed = int(os.environ.get("CEP_TEST_SEED") or time.time())
    print(f"CEP_TEST_SEED={seed}")
    return seed


def test_mixed_keys_one_process_gives_file_mode_alerts(
    tmp_path: Path, events: list[dict[str, Any]], expected: Counter[bytes]
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    topic, group, alerts, late, config = _setup(
        tmp_path, extra=f'[metrics]\nhttp = "127.0.0.1:{port}"\n')
    _produce_all(topic, events)
    proc = CepProcess(config, tmp_path / "cep.log")
    try:
        _wait_alerts(alerts, sum(expected.values()), [proc])
        status = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/status",
                                                   timeout=10).read())
    finally:
        assert proc.terminate() == 0, proc.log()[-3000:]
    _check(alerts, late, expected)
    log = proc.log()
    shuffle = f"{group}.repartition.src_ip"
    assert "plan: rule brute_force (key user): direct" in log
    assert f"plan: rule spray_by_ip (key src_ip): via {shuffle}" in log
    assert f"plan: rule fail_then_ok_by_ip (key src_ip): via {shuffle}" in log
    assert status["plan"]["rules"]["spray_by_ip"]["path"] == shuffle
    assert status["plan"]["rules"]["brute_force"]["path"] == "direct"
    assert status["plan"]["repartition_topics"][shuffle]["rules"] == [
        "spray_by_ip", "fail_then_ok_by_ip"]


def test_mixed_keys_two_processes_give_file_mode_alerts(
    tmp_path: Path, events: list[dict[str, Any]], expected: Counter[bytes]
) -> None:
    topic, _, alerts, late, config = _setup(tmp_path)
    a = CepProcess(config, tmp_path / "a.log")
    b = CepProcess(config, tmp_path / "b.log")
    try:
        wait_until(lambda: "assigned" in a.log() and "assigned" in b.log(), 60,
                   "both members to own partitions")
        _produce_all(topic, events)
        _wait_alerts(alerts, sum(expected.values()), [a, b])
    finally:
        rc_a, rc_b = a.terminate(), b.terminate()
    assert rc_a == 0 and rc_b == 0, a.log()[-3000:] + b.log()[-3000:]
    _check(alerts, late, expected)


def _committed(group: str, topic: str) -> int:
    return int(run(group_progress(group, topic))[0])


def _sigkills(tmp_path: Path, events: list[dict[str, Any]], expected: Counter[bytes],
              kills: int, rebalance_at: int | None = None, restart_at: int | None = None
              ) -> None:
    """``kills`` runs, each SIGKILLed at a random moment after it made progress, while the
    events are appended (paced so that the stream outlasts the kills); during run
    ``rebalance_at`` a second member joins, makes progress and leaves (SIGTERM), and during
    run ``restart_at`` the broker is stopped and restarted on its data (no append is in flight
    then).  A last run finishes; the alerts, read with ``read_committed``, must be file mode's.
    The kill moments come from ``$CEP_TEST_SEED`` (else the clock; printed, and named in every
    failure message) — the broker's and the processes' timing still varies between runs."""
    seed = _test_seed()
    rng = random.Random(seed)
    topic, group, alerts, late, config = _setup(tmp_path)
    by = _keyed(events)
    longest = max(len(v) for v in by.values())
    per_chunk = max(10, -(-longest // (kills * 14)))  # about 3 s of stream per kill
    gate = threading.Lock()  # held while the broker restarts

    def work() -> None:  # a live stream: each partition appended in order, in chunks
        for i in range(0, longest, per_chunk):
            async def go(i: int = i) -> None:
                for p, msgs in by.items():
                    if msgs[i:i + per_chunk]:
                        await produce(topic, msgs[i:i + per_chunk], partition=p)
            with gate:
                run(go())
            time.sleep(0.2)

    producing = threading.Thread(target=work, daemon=True)
    producing.start()
    shuffle = f"{group}.repartition.src_ip"

    def progress() -> int:
        return _committed(group, topic) + _committed(group, shuffle)

    def wait_progress(what: str, timeout_s: float = 60, base: int | None = None) -> None:
        start = progress() if base is None else base
        wait_until(lambda: progress() > start, timeout_s, f"{what} (seed {seed})",
                   poll_s=0.02)

    mid_stream = 0
    for i in range(kills):
        proc = CepProcess(config, tmp_path / f"run{i}.log")
        try:
            wait_progress(f"run {i} to make progress")
            if i == rebalance_at:
                other = CepProcess(config, tmp_path / "member.log")
                try:
                    wait_until(lambda o=other: "assigned" in o.log(), 60, "the second member")
                    wait_progress("the two members to make progress")
                finally:
                    assert other.terminate() == 0, other.log()[-3000:]
                assert "revoked" in proc.log(), "the join and the leave rebalance the group"
            if i == restart_at:
                with gate:  # (the producer waits here, between two appends)
                    _restart_broker()
                    assert proc.alive(), proc.log()[-3000:]
                    streaming = producing.is_alive()
                    base = progress()
                # More of the stream follows: its next append must be read and committed.
                # (A stream that ended before the restart may have been committed whole
                # already: then no progress can come, and the last run checks the alerts.)
                if streaming:
                    wait_progress("progress after the broker restart", 300, base)
            time.sleep(rng.uniform(0.0, 0.8))
            mid_stream += producing.is_alive()
        finally:
            proc.kill()
    producing.join(300)
    final = CepProcess(config, tmp_path / "final.log")
    try:
        _wait_alerts(alerts, sum(expected.values()), [final], timeout_s=120)
    finally:
        assert final.terminate() == 0, final.log()[-3000:]
    _check(alerts, late, expected, f" (CEP_TEST_SEED={seed})")
    assert mid_stream >= kills // 2, f"only {mid_stream} kills landed mid-stream (seed {seed})"
    restored = final.log()
    assert f"{shuffle} partition" in restored and "restored checkpoint" in restored


def _restart_broker() -> None:
    """Stop the test broker (controlled shutdown) and start it again on its data directory
    (``down.sh --keep-data``, ``up.sh --keep-data``): its topics, offsets and transactions
    come back.  Skips when the broker was not started by ``up.sh``."""
    port = bootstrap().rsplit(":", 1)[1]
    home = Path(os.environ.get("CEP_KAFKA_HOME", f"/tmp/cep-kafka-{port}"))
    if not (home / "kafka.pid").exists():
        pytest.skip(f"no broker pid file under {home} (broker not started by up.sh)")
    for script in ("down.sh", "up.sh"):
        subprocess.run(["bash", str(ROOT / "runtime/kafka" / script), "--port", port,
                        "--keep-data"], check=True, capture_output=True, timeout=180)


def test_sigkill_across_both_hops_loses_and_duplicates_nothing(
    tmp_path: Path, events: list[dict[str, Any]], expected: Counter[bytes]
) -> None:
    _sigkills(tmp_path, events, expected, kills=5)


@pytest.mark.slow
def test_twenty_sigkills_across_both_hops(
    tmp_path: Path, events: list[dict[str, Any]], expected: Counter[bytes]
) -> None:
    _sigkills(tmp_path, _events(seed=23, n=40_000), _file_mode(tmp_path, 23, 40_000), kills=20)


@pytest.mark.slow
def test_sigkills_a_rebalance_and_a_broker_restart_across_both_hops(tmp_path: Path) -> None:
    """The long run: ≥ 20 SIGKILLs at random moments across both hops, plus one
    rebalance (a second member joins and leaves) and one broker restart."""
    _sigkills(tmp_path, _events(seed=29, n=40_000), _file_mode(tmp_path, 29, 40_000),
              kills=20, rebalance_at=6, restart_at=13)


def _file_mode(tmp_path: Path, seed: int, n: int) -> Counter[bytes]:
    src, out = tmp_path / "events.jsonl", tmp_path / "alerts.jsonl"
    src.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in _events(seed, n)))
    subprocess.run([sys.executable, "-m", "cep.cli", "run", *RULES, "--input", str(src),
                    "--output", str(out)], check=True, cwd=ROOT, capture_output=True)
    return Counter(_content(orjson.loads(line)) for line in out.read_bytes().splitlines())


def test_plan_in_cep_check_and_repartition_off_is_a_start_error(tmp_path: Path) -> None:
    config = write_config(tmp_path / "cep.toml", topic="t", group="gp", alerts="a",
                          rules=RULES, kafka_extra="repartition = false")
    cli = [sys.executable, "-m", "cep.cli"]
    res = subprocess.run([*cli, "check", "--config", str(config)], cwd=ROOT,
                         capture_output=True, text=True)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "repartition = false" in res.stderr and "rule spray_by_ip (key src_ip)" in res.stderr
    res = subprocess.run([*cli, "run", "--config", str(config)], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "rule fail_then_ok_by_ip (key src_ip) reads events (partitioned by user)" \
        in res.stderr
    config = write_config(tmp_path / "on.toml", topic="t", group="gp", alerts="a",
                          rules=RULES)
    res = subprocess.run([*cli, "check", "--config", str(config)], cwd=ROOT,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "plan: rule brute_force (key user): direct" in res.stdout
    assert "plan: rule spray_by_ip (key src_ip): via gp.repartition.src_ip" in res.stdout
