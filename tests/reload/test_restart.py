"""A restart with changed rules applies the reload policy to the checkpointed state."""

from __future__ import annotations

import msgpack

from cep.checkpoint import decode, encode
from cep.checkpoint.snapshot import payload
from cep.operator.cep_operator import CepOperator
from tests.reload.test_versions import Run, pair


def restart(run: Run, rules: list) -> tuple[Run, object]:
    data = encode(run.op, {"seq": run.seq})
    after = Run(rules)
    report = decode(data, after.op)
    after.seq = run.seq
    return after, report


def test_restart_keeps_unchanged_drains_changed_and_drops_removed_rules() -> None:
    keep, v1, gone = pair("keep"), pair("edit", threshold=0), pair("gone")
    v2 = pair("edit", threshold=1)
    before = Run([keep, v1, gone])
    for user in ("alice", "bob"):
        before.feed(1000, user, "start", amount=5)
    after, report = restart(before, [keep, v2, pair("new")])
    assert report.restored_rules == ["keep"]
    assert report.draining_rules == [("edit", v1.version, v2.version)]
    assert report.dropped_rules == [("gone", gone.version, None)]
    assert report.partial_dropped == 2
    assert [(d["rule"], d["version"]) for d in after.op.stats()["draining"]] == [
        ("edit", v1.version)]

    after.feed(1500, "carol", "start", amount=5)  # only the running versions start matches
    for user in ("alice", "bob", "carol"):
        after.feed(2000, user, "end")
    got = sorted((rule, version, user) for rule, version, user, _ in after.alerts())
    assert got == sorted(
        [("keep", keep.version, u) for u in ("alice", "bob", "carol")]
        + [("edit", v1.version, u) for u in ("alice", "bob")]  # the old version drained
        + [("edit", v2.version, "carol"), ("new", pair("new").version, "carol")])
    assert after.op.stats()["draining"] == []


def test_a_version_draining_at_checkpoint_time_goes_on_draining_after_a_restart() -> None:
    v1, v2 = pair(threshold=0), pair(threshold=1)
    before = Run([v1])
    before.feed(1000, "alice", "start", amount=5)
    before.op.reload([v2])
    after, report = restart(before, [v2])
    assert report.draining_rules == [("pair", v1.version, v2.version)]
    after.feed(2000, "alice", "end")
    assert [(r, v) for r, v, _, _ in after.alerts()] == [("pair", v1.version)]


def test_a_checkpoint_without_rule_text_drops_the_changed_rule() -> None:
    v1, v2 = pair(threshold=0), pair(threshold=1)
    before = Run([v1])
    before.feed(1000, "alice", "start", amount=5)
    doc = msgpack.unpackb(payload(encode(before.op))[0], raw=False, strict_map_key=False)
    for rule in doc["rules"]:
        del rule["text"]  # as written before checkpoints carried rule text
    doc["version"] = 1  # (and before they carried a checksum frame)
    op = CepOperator([v2], lambda s, r: None)
    report = decode(msgpack.packb(doc, use_bin_type=True), op)
    assert report.dropped_rules == [("pair", v1.version, v2.version)]
    assert report.partial_dropped == 1
    assert [rs.rule.version for rs in op.rules] == [v2.version]
