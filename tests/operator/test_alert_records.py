"""Alert records and alert ids are pinned: the values below were computed once and must never
change, since consumers deduplicate by ``alert_id`` across replays, restarts and upgrades."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import Any

import orjson
import pytest

from cep.app.rules import load_rule_set
from cep.compiler.compiled import CompiledRule
from cep.event import Event
from cep.operator.cep_operator import CepOperator
from cep.operator.records import alert_id

RULES = """
rule burst
  key by user
  pattern
    begin fail where type == "login" and not ok
    next  more where type == "login" and not ok  times 2 consecutive
  within 1m
  emit { n: count(more), first_ip: fail.ip, last_amount: last(more).amount, \
who: fail.user, tags: more.tags }
end

rule pay_refund
  key by user, dev
  pattern
    begin       pay    where type == "payment"
    followed by refund where type == "refund" and amount <= pay.amount
  within 50ms
  on timeout emit { paid: pay.amount, at: pay.ts }
end

rule anyone
  pattern
    begin a where type == "payment" and amount > 90
    followed by b where type == "login"
  within 30ms
  after match skip past last event
end
"""


@pytest.fixture(scope="module")
def rules(tmp_path_factory: pytest.TempPathFactory) -> list[CompiledRule]:
    path = Path(tmp_path_factory.mktemp("rules")) / "pin.cep"
    path.write_text(RULES)
    rs = load_rule_set([str(path)])
    assert rs.ok, rs.diagnostics
    return rs.rules


def events() -> list[dict[str, Any]]:
    r = random.Random(7)
    out = []
    for i in range(400):
        t = r.choice(["login", "payment", "refund"])
        out.append({"id": i, "ts": 1000 + i * 3 + r.randint(0, 2),
                    "user": r.choice(["ann", "bob", "čeněk", None]),
                    "dev": r.choice([1, 2, "x", None]), "type": t, "ok": r.random() < 0.3,
                    "ip": f"10.0.0.{r.randint(1, 9)}",
                    "amount": r.choice([0, 1.5, 20, 95, 100, -3]),
                    "tags": ["a", {"b": [1, 2.25, None]}]})
    return out


def run(rules: list[CompiledRule], op_setup: Any = None) -> list[tuple[str, dict[str, Any]]]:
    """The stream through an operator: offsets, partitions and missing offsets vary."""
    out: list[tuple[str, dict[str, Any]]] = []
    op = CepOperator(rules, lambda s, rec: out.append((s, rec)))
    if op_setup is not None:
        op_setup(op)
    for seq, e in enumerate(events(), 1):
        op.on_event(Event(e["ts"], seq, e, "input", seq + 10 if seq % 5 else -1,
                          3 if seq % 7 == 0 else -1))
    op.finish()
    return out


def digest(out: list[tuple[str, dict[str, Any]]]) -> str:
    h = hashlib.sha256()
    for sink, rec in out:
        h.update(sink.encode() + b"\n" + orjson.dumps(rec) + b"\n")
    return h.hexdigest()


# Records gained `meta` (the rules' metadata, `{}` here); without it the output hashes to the
# earlier pin, 0e814793aeee80cab4a49c96a8d72a12edbc890a43ebba59370d4c88c7ba46bd: no rule
# version and no alert id changed.
OUTPUT_SHA256 = "b59f78d8fe2393f042ea67327cf1a630fb428d6a31f6964f16208d9937c3a422"


def test_records_are_byte_identical_to_the_pinned_output(rules: list[CompiledRule]) -> None:
    out = run(rules)
    assert len(out) == 159
    assert [rec["alert_id"] for _, rec in out[:3]] == [
        "694d27c41a6b666a3b7efd9e4b2c2996", "564891a05612cd0b4946f0a725e6faa9",
        "bc890e6ec833dc99a477e8fd75687744"]
    assert [rec["alert_id"] for _, rec in out if rec.get("timed_out")][:2] == [
        "dfa6fc4eae4d02b163c788b5e1163f64", "2cc7b4edd707556e99f486b3332df6de"]
    assert out[0] == ("alerts", {
        "rule": "anyone", "rule_version": "64ab96d2475a8cba", "severity": "medium", "meta": {},
        "key": {},
        "start": 1005, "end": 1006,
        "match": {"a": [{"id": 1, "ts": 1005, "user": "ann", "dev": 2, "type": "payment",
                         "ok": True, "ip": "10.0.0.7", "amount": 95,
                         "tags": ["a", {"b": [1, 2.25, None]}]}],
                  "b": [{"id": 2, "ts": 1006, "user": "ann", "dev": None, "type": "login",
                         "ok": True, "ip": "10.0.0.2", "amount": 1.5,
                         "tags": ["a", {"b": [1, 2.25, None]}]}]},
        "data": {}, "alert_id": "694d27c41a6b666a3b7efd9e4b2c2996"})
    assert digest(out) == OUTPUT_SHA256


@pytest.mark.parametrize(("key", "which", "tag", "expected"), [
    ({"user": "ann", "dev": 1}, slice(0, 1), "match", "e055d8c0b20870d71533bd89b23b9e59"),
    ({"user": None, "dev": ("x", 1.5)}, slice(None), "timeout",
     "280e614f25eaf97624bcb4d2bfb69e7b"),
    ({"user": "čeněk", "dev": True}, slice(1, None), "match",
     "30cfa0d6833eb408dc77d6716fcbce52"),
    ({}, slice(None), "match", "f2e3e3c3003f6eac4300bbcc6f957f1e"),
    ({"dev": 2.0, "user": "a'b\"c\\n"}, slice(0, 0), "match",
     "2975d5aeebe303aa1866fb0b6eda7698"),
])
def test_alert_id_values(rules: list[CompiledRule], key: dict[str, Any], which: slice,
                         tag: str, expected: str) -> None:
    rule = rules[1]
    assert (rule.name, rule.version) == ("pay_refund", "3d3fefc550e97661")
    evs = [Event(5, 1, {"a": 1}), Event(7, 2, {}, "events", 41, 0), Event(-3, 9, {}, "in", -1, 2)]
    assert alert_id(rule, key, evs[which], tag) == expected
