"""The LANL fan-out detection on the real authentication slice (shared/data/lanl-auth-sample):
written as the old idiom (`x not in values(s.x) times N`) it finds five users with 48 alerts;
as `having count_distinct(…) >= 10 within 10m` + `suppress for 1h` (rules/login/
lateral_fan_out.cep) it finds the same five users, one alert each (the slice spans 7.9
minutes: one suppression period)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from cep.app.pipeline import FileRunOptions, run_file
from cep.app.rules import load_rule_set
from cep.io.sinks import MemorySink, SinkSet
from cep.mapping.datasets import lanl_events, write_jsonl

from .engine_run import RULES, dataset

pytestmark = pytest.mark.shared

IDIOM = """
rule fan_out_idiom
  where event.action == "login" and event.outcome == "success"
    and user.name matches "^U[0-9]+$" and host.name is not null
  key by user.name
  pattern
    begin first
    followed by more where host.name != first.host.name
                      and host.name not in values(more.host.name) times 9
  within 10m
  after match skip past last event
end
"""


def _run(rule_files: list[str], jsonl: Path) -> list[dict]:
    rs = load_rule_set(rule_files)
    assert rs.ok, rs.diagnostics
    alerts = MemorySink()
    run_file(rs.rules, FileRunOptions(path=str(jsonl), fmt="json"), SinkSet({"alerts": alerts}))
    return alerts.records


def test_count_distinct_with_suppress_finds_the_same_users_once_each(tmp_path: Path) -> None:
    jsonl = tmp_path / "lanl.jsonl"
    with jsonl.open("w", encoding="utf-8") as out:
        write_jsonl(lanl_events(dataset("lanl-auth-sample/lanl_auth_first50k.csv.gz")), out)
    idiom = tmp_path / "idiom.cep"
    idiom.write_text(IDIOM, encoding="utf-8")
    before = Counter(a["key"]["user.name"] for a in _run([str(idiom)], jsonl))
    assert sum(before.values()) == 48 and before["U66"] == 37
    alerts = _run([str(RULES / "login" / "lateral_fan_out.cep")], jsonl)
    after = Counter(a["key"]["user.name"] for a in alerts)
    assert set(after) == set(before) == {"U66", "U22", "U6", "U3", "U4"}
    assert all(n == 1 for n in after.values())
    for a in alerts:
        hosts = {e["host"]["name"] for e in a["match"]["events"]}
        # the crossing: ten distinct hosts with the last event, nine without it
        last = a["match"]["events"][-1]["host"]["name"]
        assert len(hosts) == 10 and a["data"]["hosts"] == 10
        assert last not in {e["host"]["name"] for e in a["match"]["events"][:-1]}
        assert a["aggregates"] == {"count_distinct(host.name)": 10}
        assert a["end"] - a["start"] < 600_000 and a["window"]["exact"]
        assert a["suppressed"] == 0
