"""Hot reload in Kafka mode, against the real broker: a ``cep run --config`` member fed at a
steady rate picks up edits within two seconds (alerts of the new version are committed on the
alerts topic), keeps running on a broken edit, drains a changed rule's old version."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest

from cep.event import Event
from cep.io.codecs import DeadLetter, TimeSpec, json_decoder
from cep.operator.cep_operator import CepOperator
from tests.kafka.kafkautil import create_topics, run, unique, write_config
from tests.reload import rules as R
from tests.reload.kafka_feed import Collector, KafkaSink
from tests.reload.runner import CepRun, Feeder, RuleDir, wait_for, write_rule

pytestmark = [
    pytest.mark.kafka,
    pytest.mark.skipif(not os.environ.get("CEP_KAFKA_BOOTSTRAP"),
                       reason="CEP_KAFKA_BOOTSTRAP is not set (scripts/test.sh starts a broker)"),
]

LIMIT_S = 2.0


def test_reloads_in_kafka_mode(tmp_path: Path) -> None:
    topic, alerts, group = unique("reload-in"), unique("reload-alerts"), unique("reload-g")
    run(create_topics([topic, alerts], partitions=2))
    rules = tmp_path / "rules"
    rules.mkdir()
    write_rule(rules / "big.cep", R.big(150))
    write_rule(rules / "win.cep", R.win("low"))
    config = write_config(tmp_path / "cep.toml", topic=topic, group=group, alerts=alerts,
                          rules=[str(rules)])
    sink = KafkaSink(topic)
    feeder = Feeder(tmp_path / "unused", rate=400, sink=sink).start()
    collected = Collector(alerts)
    cep = CepRun(["--config", str(config)], tmp_path / "cep.log")
    timings: dict[str, float] = {}
    try:
        v1 = wait_for(lambda: collected.get("big"), 30, "the first alert")[0]["rule_version"]
        assert cep.status()["mode"] == "kafka"

        # edit a threshold
        t0 = write_rule(rules / "big.cep", R.big(50))
        wait_for(lambda: [a for a in collected.get("big") if a["rule_version"] != v1
                          and a["data"]["amount"] <= 150], LIMIT_S, "an alert of the edit")
        timings["edit"] = time.monotonic() - t0
        v2 = cep.versions()["big"]

        # add a rule
        t0 = write_rule(rules / "tiny.cep", R.tiny())
        wait_for(lambda: collected.get("tiny"), LIMIT_S, "an alert of the added rule")
        timings["add"] = time.monotonic() - t0

        # a broken edit: the error is shown, the running rules go on alerting
        t0 = write_rule(rules / "win.cep", R.BROKEN_PAIR)
        status = wait_for(lambda: (s := cep.status())["reload"]["errors"] and s, LIMIT_S,
                          "the error in /status")
        timings["break"] = time.monotonic() - t0
        (err,) = status["reload"]["errors"]
        assert err["file"].endswith("win.cep") and (err["line"], err["col"]) == R.BROKEN_AT
        n = len(collected.get("big"))
        wait_for(lambda: len(collected.get("big")) > n + 20, 3, "alerts after the error")
        assert {a["rule_version"] for a in collected.get("big")[n:]} == {v2}

        # fix it, with two partial matches of the old version in flight: they drain
        write_rule(rules / "win.cep", R.win("low"))
        wait_for(lambda: cep.status()["reload"]["last"]["ok"], LIMIT_S, "the fix")
        win_v1 = cep.versions()["win"]
        feeder.inject(user="w1", kind="open")
        feeder.inject(user="w2", kind="open")
        wait_for(lambda: {r["name"]: r["partial_matches"] for r in cep.status()["rules"]}
                 ["win"] == 2, 5, "two partial matches")
        write_rule(rules / "win.cep", R.win("medium", edition=2))
        (d,) = wait_for(lambda: cep.status()["draining"], LIMIT_S, "the old version to drain")
        assert (d["rule"], d["version"], d["partial_matches"]) == ("win", win_v1, 2)
        feeder.inject(user="w1", kind="close")
        wait_for(lambda: not cep.status()["draining"], 5, "the old version to disappear")
        wait_for(lambda: len(collected.get("win")) == 2, LIMIT_S, "the drained alerts")
        got = sorted((a["key"]["user"], a["rule_version"], bool(a.get("timed_out")))
                     for a in collected.get("win"))
        assert got == [("w1", win_v1, False), ("w2", win_v1, True)]

        # delete a rule file
        t0 = time.monotonic()
        (rules / "tiny.cep").unlink()
        wait_for(lambda: "tiny" not in cep.versions(), LIMIT_S, "the deleted rule to go")
        timings["delete"] = time.monotonic() - t0
        time.sleep(0.3)  # its last alerts (before the reload) are committed
        gone = len(collected.get("tiny"))
        n = len(collected.get("big"))
        wait_for(lambda: len(collected.get("big")) > n + 30, 3, "more traffic")
        assert len(collected.get("tiny")) == gone

        metrics = cep.metrics()
        assert 'cep_consumer_lag{partition="0",topic="' + topic + '"}' in metrics
        assert 'cep_reloads_total{result="failed"} 1.0' in metrics
        print("\nKafka mode, seconds from the edit: "
              + ", ".join(f"{k} {v:.2f}" for k, v in timings.items()))
    finally:
        feeder.stop()
        rc = cep.terminate(60)
        collected.close()
        sink.close()
    assert rc == 0, cep.log()[-3000:]


def offline_kafka(topic: str, sent: list[tuple[int, int, bytes]], initial: list,
                  reloads: list[tuple[dict[str, int], list]]) -> list[dict]:
    """One operator per partition fed in offset order, switching rule sets at the logged
    positions (an input the reload does not list had no task yet: it starts with that set)."""
    out: list[dict] = []
    decode = json_decoder(TimeSpec())
    for p in sorted({part for part, _, _ in sent}):
        name = f"{topic}/{p}"
        op = CepOperator(initial, lambda sink, rec: out.append(rec), {name: 0})
        pending = [(pos.get(name, 0), rules) for pos, rules in reloads]
        seq = 0
        for _, offset, value in sorted(m for m in sent if m[0] == p):
            while pending and pending[0][0] <= offset:
                op.reload(pending.pop(0)[1])
            res = decode(value)
            assert not isinstance(res, DeadLetter)
            seq += 1
            op.on_event(Event(res[1], seq, res[0], "events", offset, p), name)
        for _, rules in pending:
            op.reload(rules)
    return out


def test_twenty_rapid_reloads_in_kafka_mode_match_the_offline_run(tmp_path: Path) -> None:
    rng = random.Random(4)
    topic, alerts, group = unique("rapid-in"), unique("rapid-alerts"), unique("rapid-g")
    run(create_topics([topic, alerts], partitions=2))
    rules = RuleDir(tmp_path / "rules")
    initial = rules.start()
    compiled = rules.compiled
    config = write_config(tmp_path / "cep.toml", topic=topic, group=group, alerts=alerts,
                          rules=[str(rules.path)])
    sink = KafkaSink(topic)
    feeder = Feeder(tmp_path / "unused", rate=2000, users=20, sink=sink).start()
    collected = Collector(alerts)
    cep = CepRun(["--config", str(config)], tmp_path / "cep.log")
    try:
        wait_for(lambda: collected.get(), 30, "the first alerts")
        for i in range(20):
            rules.edit(i, rng)
            code, doc = cep.post("/-/reload")
            assert code == 200 and doc["ok"], doc
            time.sleep(rng.uniform(0.02, 0.12))
        time.sleep(0.3)
    finally:
        feeder.stop()
    try:
        wait_for(lambda: sum(cep.status()["events_in"].values()) == feeder.n, 15,
                 "the member to consume everything")
        rc = cep.terminate(60)
        assert rc == 0, cep.log()[-3000:]
        applied = [r for r in cep.reloads() if r["ok"]]
        assert len(applied) >= 20 and any(r["drained"] for r in applied)
        schedule = [(r["positions"], [compiled[v] for _, v in sorted(r["versions"].items())])
                    for r in applied]
        want = offline_kafka(topic, sink.sent, initial, schedule)
        wait_for(lambda: len(collected.get()) >= len(want), 10, "every alert")
        time.sleep(0.3)
        got = collected.get()
    finally:
        collected.close()
        sink.close()
    ids = [a["alert_id"] for a in got]
    assert len(ids) == len(set(ids)), "an alert was committed twice"
    assert sorted(got, key=lambda a: a["alert_id"]) == sorted(want, key=lambda a: a["alert_id"])
    assert len({a["rule_version"] for a in got}) >= 8
