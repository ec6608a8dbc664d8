"""Alerts, timed-out matches, late events and dead letters arrive on their Kafka topics with
the documented shapes; bad input never stops a partition."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgpack
import orjson
import pytest

from tests.kafka.kafkautil import (
    CepProcess,
    create_topics,
    expected_alerts,
    keyed_json,
    produce,
    read_all,
    read_json,
    run,
    unique,
    wait_consumed,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.kafka

RULES = Path(__file__).parent / "rules"
T = 1_700_000_000_000


def login(ts_s: float, user: str, outcome: str) -> dict[str, Any]:
    return {"ts": T + int(ts_s * 1000), "user": user, "action": "login", "outcome": outcome}


def run_to_end(tmp_path: Path, topic: str, group: str, config: Path) -> CepProcess:
    proc = CepProcess(config, tmp_path / f"{group}.log")
    try:
        wait_consumed(group, topic, [proc])
    except BaseException:
        proc.kill()
        raise
    assert proc.terminate() == 0, proc.log()[-3000:]
    return proc


def test_alerts_timeouts_late_and_dead_letters_have_the_documented_shapes(
    tmp_path: Path,
) -> None:
    topic, alerts, late, dead, timeouts = (unique(n) for n in
                                           ("in", "alerts", "late", "dead", "timeouts"))
    group = unique("g")
    run(create_topics([topic], partitions=1))
    run(create_topics([alerts, late, dead, timeouts], partitions=2))
    good = [login(0, "alice", "failure"), login(10, "alice", "success"),
            login(20, "bob", "failure"), login(5, "carol", "failure")]
    poison = [b"{not json", b"[1, 2]", orjson.dumps({"user": "x"}),
              orjson.dumps({"ts": T, "pad": "x" * 5000}), b"\xff\xfe"]
    tail = [login(100, "dave", "failure"), login(101, "dave", "success"),
            {"ts": T + 102_000, "user": "zed", "action": "view"}]
    messages = keyed_json(good) + [(None, p) for p in poison] + keyed_json(tail)
    run(produce(topic, messages))
    config = write_config(
        tmp_path / "cep.toml", topic=topic, group=group, alerts=alerts, late=late, dead=dead,
        rules=[str(RULES / "pairs.cep")], kafka_extra="max_event_bytes = 4096",
        extra=f'[sinks.timeouts]\nkind = "kafka"\ntopic = "{timeouts}"\n')
    run_to_end(tmp_path, topic, group, config)

    alert_msgs = run(read_all(alerts))
    records = sorted((orjson.loads(m.value) for m in alert_msgs), key=lambda r: r["start"])
    assert [r["key"] for r in records] == [{"user": "alice"}, {"user": "dave"}]
    first = records[0]
    assert set(first) == {"rule", "rule_version", "severity", "meta", "key", "start", "end",
                          "match", "data", "alert_id"}
    assert first["rule"] == "fail_then_ok" and first["severity"] == "high"
    assert first["meta"] == {}
    assert first["start"] == T and first["end"] == T + 10_000
    assert first["match"] == {"fail": [good[0]], "ok": [good[1]]}
    assert first["data"] == {"user": "alice", "gap": 10_000}
    keys = {orjson.loads(m.key)["user"] for m in alert_msgs}
    assert keys == {"alice", "dave"}  # message key = the alert's key object as JSON

    (timed_out,) = run(read_json(timeouts))
    assert timed_out["timed_out"] is True and timed_out["key"] == {"user": "bob"}
    assert timed_out["timeout_at"] == T + 80_000 and timed_out["data"] == {"user": "bob"}

    (late_rec,) = run(read_json(late))
    assert late_rec["reason"] == "late" and late_rec["source"] == "events"
    assert late_rec["event"] == good[3] and late_rec["watermark"] == T + 20_000 - 1
    assert late_rec["partition"] == 0 and late_rec["offset"] == 3

    dead_recs = sorted(run(read_json(dead)), key=lambda r: r["offset"])
    assert [r["reason"] for r in dead_recs] == [
        "malformed", "not_an_object", "no_event_time", "too_large", "malformed"]
    assert [r["offset"] for r in dead_recs] == [4, 5, 6, 7, 8]
    assert all(r["topic"] == topic and r["partition"] == 0 and r["source"] == "events"
               for r in dead_recs)
    assert dead_recs[0]["raw"] == "{not json" and dead_recs[1]["raw"] == "[1, 2]"
    assert dead_recs[4]["raw_hex"] == "fffe" and dead_recs[3]["error"]


def test_poison_message_goes_to_dead_letters_and_the_partition_keeps_alerting(
    tmp_path: Path,
) -> None:
    topic, alerts, dead, group = unique("in"), unique("alerts"), unique("dead"), unique("g")
    run(create_topics([topic], partitions=4))
    run(create_topics([alerts, dead], partitions=1))
    users = ["u1", "u2", "u3", "u4", "u5", "u6"]
    # a poison message in every partition, then each user fails and succeeds
    poison = [(u.encode(), b'{"ts": "yesterday", "user": "' + u.encode() + b'"}')
              for u in users]
    later = keyed_json([login(i, u, "failure") for i, u in enumerate(users)]
                       + [login(30 + i, u, "success") for i, u in enumerate(users)]
                       + [login(90, u, "none") for u in users])
    run(produce(topic, poison + later))
    config = write_config(tmp_path / "cep.toml", topic=topic, group=group, alerts=alerts,
                          dead=dead, rules=[str(RULES / "pairs.cep")])
    run_to_end(tmp_path, topic, group, config)
    dead_recs = run(read_json(dead))
    assert sorted(r["raw"] for r in dead_recs) == sorted(v.decode() for _, v in poison)
    assert {r["reason"] for r in dead_recs} == {"bad_event_time"}
    assert sorted(r["key"]["user"] for r in run(read_json(alerts))) == users
    expected = run(expected_alerts(topic, [str(RULES / "pairs.cep")]))
    assert sorted(r["alert_id"] for r in run(read_json(alerts))) == sorted(
        r["alert_id"] for r in expected if not r.get("timed_out"))


def test_msgpack_source_joined_with_a_co_partitioned_json_source(tmp_path: Path) -> None:
    logins, results, alerts, group = unique("a"), unique("b"), unique("alerts"), unique("g")
    run(create_topics([logins, results], partitions=2))
    run(create_topics([alerts], partitions=1))
    users = ["ann", "ben", "cid"]
    run(produce(logins, keyed_json([login(i, u, "failure") for i, u in enumerate(users)]
                                   + [login(200, u, "none") for u in users])))
    run(produce(results, [(u.encode(), msgpack.packb(login(20 + i, u, "success")))
                          for i, u in enumerate(users)]
                + [(u.encode(), msgpack.packb(login(200, u, "none"))) for u in users]))
    config = tmp_path / "cep.toml"
    write_config(config, topic=logins, group=group, alerts=alerts,
                 rules=[str(RULES / "pairs.cep")],
                 extra=f'[sources.results]\nkind = "kafka"\ntopic = "{results}"\n'
                       'format = "msgpack"\n')
    proc = CepProcess(config, tmp_path / "cep.log")
    try:
        wait_consumed(group, results, [proc])
        wait_consumed(group, logins, [proc])
    finally:
        assert proc.terminate() == 0, proc.log()[-3000:]
    recs = run(read_json(alerts))
    assert sorted(r["key"]["user"] for r in recs) == users
    assert all(r["data"]["gap"] == 20_000 for r in recs)


def test_at_least_once_mode_delivers_every_alert(tmp_path: Path) -> None:
    topic, alerts, group = unique("in"), unique("alerts"), unique("g")
    run(create_topics([topic], partitions=2))
    run(create_topics([alerts], partitions=1))
    events = [login(i * 5, f"u{i % 7}", "failure" if i % 3 else "success") for i in range(300)]
    run(produce(topic, keyed_json(events)))
    config = write_config(tmp_path / "cep.toml", topic=topic, group=group, alerts=alerts,
                          rules=[str(RULES / "pairs.cep")], kafka_extra="exactly_once = false")
    run_to_end(tmp_path, topic, group, config)
    got = [r["alert_id"] for r in run(read_json(alerts)) if not r.get("timed_out")]
    expected = run(expected_alerts(topic, [str(RULES / "pairs.cep")]))
    want = sorted(r["alert_id"] for r in expected if not r.get("timed_out"))
    assert want and sorted(got) == want


def test_secrets_stay_out_of_the_logs_when_the_broker_refuses(tmp_path: Path) -> None:
    """SASL settings reach the client; the password never appears in the log, even in the
    retry lines of a failing connection; SIGTERM while waiting exits 0."""
    config = write_config(
        tmp_path / "cep.toml", topic=unique("in"), group=unique("g"), alerts=unique("alerts"),
        rules=[str(RULES / "pairs.cep")],
        kafka_extra='security_protocol = "SASL_PLAINTEXT"\nsasl_mechanism = "PLAIN"\n'
                    'sasl_plain_username = "cep"\nsasl_plain_password = "s3cr3t-Pa55w0rd"\n')
    proc = CepProcess(config, tmp_path / "cep.log")
    try:
        wait_until(lambda: "could not" in proc.log() or not proc.alive(), 60,
                   "a failed connection attempt to be logged")
    finally:
        rc = proc.terminate()
    log = proc.log()
    assert rc == 0, log[-3000:]
    assert "could not start the consumer" in log and "retrying in" in log
    assert "SASL_PLAINTEXT" in log and "sasl_plain_password=***" in log
    assert "s3cr3t" not in log


def test_a_checkpoint_of_a_newer_format_is_refused_not_misread(tmp_path: Path) -> None:
    topic, alerts, group = unique("in"), unique("alerts"), unique("g")
    run(create_topics([topic], partitions=1))
    run(create_topics([f"{group}.changelog"], partitions=1))
    future = msgpack.packb({"format": "cep.checkpoint", "version": 99, "meta": {}})
    run(produce(f"{group}.changelog", [(f"{group}/{topic}/0".encode(), future)]))
    run(produce(topic, keyed_json([login(0, "ann", "failure")])))
    config = write_config(tmp_path / "cep.toml", topic=topic, group=group, alerts=alerts,
                          rules=[str(RULES / "pairs.cep")])
    proc = CepProcess(config, tmp_path / "cep.log")
    try:
        rc = proc.proc.wait(60)
    finally:
        proc.kill()
    log = proc.log()
    assert rc == 2, log[-3000:]
    assert "checkpoint format version 99 is newer than this engine reads" in log


def test_an_alert_too_large_for_a_message_is_sent_without_its_events(tmp_path: Path) -> None:
    topic, alerts, group = unique("in"), unique("alerts"), unique("g")
    run(create_topics([topic, alerts], partitions=1))
    pad = "x" * 20_000
    events = [{"ts": T + i, "user": "ann", "kind": "big", "pad": pad} for i in range(60)]
    events.append({"ts": T + 1000, "user": "ann", "kind": "end"})
    run(produce(topic, keyed_json(events)))
    config = write_config(tmp_path / "cep.toml", topic=topic, group=group, alerts=alerts,
                          rules=[str(RULES / "big.cep")])
    proc = run_to_end(tmp_path, topic, group, config)
    (alert,) = run(read_json(alerts))
    assert alert["truncated"] is True and alert["match"] == {"big": 60}
    assert alert["data"] == {"user": "ann", "n": 60} and alert["key"] == {"user": "ann"}
    assert "without its matched events" in proc.log()
