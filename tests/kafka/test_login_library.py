"""The shipped ``rules/login`` over real logs in Kafka mode (against the real broker): a
4-partition ``auth-events`` topic whose producer keys by ``user.name``, fed the
``ssh-auth-logs`` and ``windows-security-mordor`` datasets of ``shared/data`` mapped to the
library schema (``cep map ssh``, ``cep map windows-csv``).  ``rules/login`` keys by
``user.name`` (direct), ``source.address`` (through ``<group>.repartition.source.address``)
and ``(source.address, user.name)`` (direct: the key holds the partition key).  Kafka mode
must give exactly file mode's alert set, compared by (rule, key, matched events): one
process, then two processes sharing the group.  Skipped when the datasets are absent.

As in ``test_repartition.py`` (read its docstring), the input is put in event-time order and
each partition ends with a sentinel event two days after the last real one (the longest
window, ``impossible_travel``, is 23 h), which no rule reads: every watermark then passes
every window in both modes.  The logs have many events in the same second, so the order
between equal times is made the same in both modes: file mode's input is sorted by (event
time, partition, original order) — the order in which a shuffle task merges its upstream
partitions.  The datasets span 2005 to 2020, so ``max_future_skew`` is off in both modes (a
jump of years is the data, not a clock error).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from cep.mapping.datasets import ssh_events, windows_csv_events
from tests.kafka.kafkautil import (
    ROOT,
    CepProcess,
    create_topics,
    produce,
    read_json,
    run,
    unique,
    wait_until,
    write_config,
)
from tests.realdata.engine_run import dataset

pytestmark = pytest.mark.kafka

RULES = str(ROOT / "rules" / "login")
PARTITIONS = 4
DAY_MS = 86_400_000
STATE = '[state]\nmax_future_skew = "off"\n'


def _user(e: dict[str, Any]) -> str:
    return str((e.get("user") or {}).get("name", ""))


def _partition(user: str) -> int:
    return int.from_bytes(hashlib.blake2b(user.encode(), digest_size=4).digest(), "big") \
        % PARTITIONS


@pytest.fixture(scope="module")
def events() -> list[dict[str, Any]]:
    """Both datasets mapped, in (event time, partition, original order) order, then one
    sentinel per partition."""
    raw = [*ssh_events(dataset("ssh-auth-logs/events.csv")),
           *windows_csv_events(dataset("windows-security-mordor/security_auth_events.csv"))]
    order = sorted(range(len(raw)), key=lambda i: (raw[i]["ts"], _partition(_user(raw[i])), i))
    out = [raw[i] for i in order]
    end = out[-1]["ts"] + 2 * DAY_MS
    for p in range(PARTITIONS):
        user = next(f"sentinel{i}" for i in range(1000) if _partition(f"sentinel{i}") == p)
        out.append({"ts": end + p, "event": {"dataset": "cep.sentinel"}, "user": {"name": user}})
    return out


def _content(alert: dict[str, Any]) -> bytes:
    return orjson.dumps([alert["rule"], alert["key"], alert["match"]],
                        option=orjson.OPT_SORT_KEYS)


@pytest.fixture(scope="module")
def expected(events: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory
             ) -> Counter[bytes]:
    d = tmp_path_factory.mktemp("file")
    src, out = d / "events.jsonl", d / "alerts.jsonl"
    src.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    subprocess.run([sys.executable, "-m", "cep.cli", "run", RULES, "--input", str(src),
                    "--output", str(out), "--max-future-skew", "off"],
                   check=True, cwd=ROOT, capture_output=True)
    got = Counter(_content(orjson.loads(line)) for line in out.read_bytes().splitlines())
    by_rule = Counter(orjson.loads(k)[0] for k in got.elements())
    # direct (user.name; source.address + user.name) and shuffled (source.address) rules
    assert by_rule["brute_force_single_account"] > 20 and by_rule["windows_password_spray"] >= 5
    assert by_rule["ssh_brute_force_then_success"] >= 1, by_rule
    return got


def _setup(tmp_path: Path, events: list[dict[str, Any]]) -> tuple[str, str, str, Path]:
    topic, group = unique("auth-events"), unique("g")
    alerts, late = unique("alerts"), unique("late")
    run(create_topics([topic, alerts, late], partitions=PARTITIONS))
    config = write_config(tmp_path / "cep.toml", topic=topic, group=group, alerts=alerts,
                          late=late, rules=[RULES], partition_key="user.name", extra=STATE)
    return topic, group, alerts, config


def _produce(topic: str, events: list[dict[str, Any]]) -> None:
    by: dict[int, list[tuple[bytes, bytes]]] = {p: [] for p in range(PARTITIONS)}
    for e in events:
        by[_partition(_user(e))].append((_user(e).encode(), orjson.dumps(e)))

    async def go() -> None:
        for p, msgs in by.items():
            await produce(topic, msgs, partition=p)
    run(go())


def _check(alerts: str, expected: Counter[bytes], procs: list[CepProcess]) -> None:
    want = sum(expected.values())

    def done() -> bool:
        for p in procs:
            assert p.alive(), f"cep exited early:\n{p.log()[-3000:]}"
        return len(run(read_json(alerts))) >= want
    wait_until(done, 120, f"{want} alerts in {alerts}", poll_s=0.5)
    time.sleep(1.5)  # anything extra would show up now
    got = run(read_json(alerts))
    ids = Counter(a["alert_id"] for a in got)
    assert not [i for i, n in ids.items() if n > 1], "duplicated alerts"
    content = Counter(_content(a) for a in got)
    lost, extra = expected - content, content - expected
    assert not lost and not extra, (f"lost {sum(lost.values())}, extra {sum(extra.values())}: "
                                    f"{list(lost)[:2]} {list(extra)[:2]}")


def test_login_library_one_process_gives_file_mode_alerts(
    tmp_path: Path, events: list[dict[str, Any]], expected: Counter[bytes]
) -> None:
    topic, group, alerts, config = _setup(tmp_path, events)
    _produce(topic, events)
    proc = CepProcess(config, tmp_path / "cep.log")
    try:
        _check(alerts, expected, [proc])
    finally:
        assert proc.terminate() == 0, proc.log()[-3000:]
    log = proc.log()
    assert (f"plan: rule windows_password_spray (key source.address): via "
            f"{group}.repartition.source.address") in log
    assert "plan: rule ssh_brute_force_then_success (key source.address, user.name): direct" \
        in log


def test_login_library_two_processes_give_file_mode_alerts(
    tmp_path: Path, events: list[dict[str, Any]], expected: Counter[bytes]
) -> None:
    topic, _, alerts, config = _setup(tmp_path, events)
    a = CepProcess(config, tmp_path / "a.log")
    b = CepProcess(config, tmp_path / "b.log")
    try:
        wait_until(lambda: "assigned" in a.log() and "assigned" in b.log(), 60,
                   "both members to own partitions")
        _produce(topic, events)
        _check(alerts, expected, [a, b])
    finally:
        rc_a, rc_b = a.terminate(), b.terminate()
    assert rc_a == 0 and rc_b == 0, a.log()[-3000:] + b.log()[-3000:]
