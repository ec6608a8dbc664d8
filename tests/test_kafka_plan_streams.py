"""Kafka mode's plan for derived streams (:mod:`cep.app.kafka_streams`): a reader runs in the
tasks of its streams' producers when its key carries their partitioning, and the plan is
refused, saying why, when the records of one reader key could come from different tasks."""

from __future__ import annotations

from pathlib import Path

import pytest

from cep.app.kafka_plan import plan_rules
from cep.app.rules import load_rule_set
from cep.compiler.compiled import CompiledRule
from cep.config import SourceConfig
from cep.errors import ConfigError

SOURCE = SourceConfig("auth", "kafka", topic="auth", partition_key=("user",))


def _rules(tmp_path: Path, text: str) -> list[CompiledRule]:
    path = tmp_path / "r.cep"
    path.write_text(text, encoding="utf-8")
    rs = load_rule_set([str(path)])
    assert rs.ok, rs.diagnostics
    return rs.rules


def _producer(name: str, key: str, emitted: str, stream: str = "s") -> str:
    return (f"rule {name}\n  where kind == \"{name}\"\n  key by {key}\n  pattern begin e\n"
            f"  emit to stream {stream} {{ {emitted} }}\nend\n")


def _reader(key: str, stream: str = "s") -> str:
    return f"rule reader\n  from {stream}\n  key by {key}\n  pattern begin x\n  emit {{ }}\nend\n"


def test_a_reader_runs_where_its_producers_do(tmp_path: Path) -> None:
    direct = _rules(tmp_path, _producer("a", "user", "u: e.user")
                    + _producer("b", "user", "u: e.user") + _reader("data.u"))
    plan = plan_rules([SOURCE], direct, "g")
    assert [r.name for r in plan.direct] == ["a", "b", "reader"]
    assert plan.routes[-1].line() == ("rule reader (key data.u): direct (reads derived "
                                      "stream(s) s in the tasks of a, b)")
    shuffled = _rules(tmp_path, _producer("a", "ip", "addr: e.ip")
                      + _producer("b", "ip", "addr: e.ip") + _reader("data.addr"))
    plan = plan_rules([SOURCE], shuffled, "g")
    [sh] = plan.shuffles
    assert [r.name for r in sh.rules] == ["a", "b", "reader"] and not plan.direct
    # (the record's `key` object carries the producers' key as well)
    by_key = _rules(tmp_path, _producer("a", "ip", "n: 1") + _reader("`key`.ip"))
    assert [r.name for r in plan_rules([SOURCE], by_key, "g").shuffles[0].rules] == \
        ["a", "reader"]


@pytest.mark.parametrize(("text", "reason"), [
    (_producer("a", "user", "u: e.user") + _reader("data.other"),
     "rule reader reads stream s of rule a, whose tasks are decided by user, but its key "
     "does not carry user"),
    (_producer("a", "user", "u: e.user") + _producer("b", "ip", "u: e.ip") + _reader("data.u"),
     "rule reader reads derived streams whose producers run in different tasks (a: direct; "
     "b: g.repartition.ip)"),
    # the specification's aliases, as Sigma compiles them: the same two fields, swapped
    (_producer("a", "src, dst", "x: e.src, y: e.dst")
     + _producer("b", "src, dst", "x: e.dst, y: e.src") + _reader("data.x, data.y"),
     "rule reader reads records whose tasks are decided by different fields of its key (a "
     "by data.y, data.x; b by data.x, data.y)"),
])
def test_plans_that_could_split_a_key_are_refused(tmp_path: Path, text: str,
                                                  reason: str) -> None:
    with pytest.raises(ConfigError, match="derived streams need") as err:
        plan_rules([SOURCE], _rules(tmp_path, text), "g")
    assert reason in str(err.value)


def test_an_alias_across_fields_runs_when_the_partition_key_is_grouped_too(
        tmp_path: Path) -> None:
    """Sigma's form of `group-by: [host, ip]` with `ip` naming `dst` for one rule and `src`
    for the other, on a topic partitioned by host: every record of one (host, ip) is made in
    the task of that host."""
    text = (_producer("a", "host, dst", "host: e.host, ip: e.dst")
            + _producer("b", "host, src", "host: e.host, ip: e.src")
            + _reader("data.host, data.ip"))
    by_host = SourceConfig("auth", "kafka", topic="auth", partition_key=("host",))
    plan = plan_rules([by_host], _rules(tmp_path, text), "g")
    assert [r.name for r in plan.direct] == ["a", "b", "reader"]
    with pytest.raises(ConfigError, match="whose producers run in different tasks"):
        plan_rules([SOURCE], _rules(tmp_path, text), "g")  # (by user: each by its key)
