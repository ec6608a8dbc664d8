"""Library rules over real public logs (shared/data): each finds exactly the known incident."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cep.app.pipeline import FileRunOptions, run_file
from cep.app.rules import load_rule_set
from cep.io.codecs import TimeSpec
from cep.io.sinks import MemorySink, SinkSet

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"

def _run(rule: str, data: Path, event_time: str) -> tuple[list[dict[str, Any]], Any, SinkSet]:
    if not data.exists():
        pytest.skip(f"dataset not present: {data}")
    rs = load_rule_set([str(ROOT / "rules" / "login" / rule)])
    assert rs.ok, rs.diagnostics
    alerts = MemorySink()
    sinks = SinkSet({"alerts": alerts})
    opts = FileRunOptions(path=str(data), fmt="csv", time=TimeSpec(event_time, "iso"))
    summary = run_file(rs.rules, opts, sinks)
    return alerts.records, summary, sinks


def test_ssh_brute_force_then_success_finds_the_elastic_host_compromise() -> None:
    alerts, summary, sinks = _run(
        "ssh_brute_force_then_success.cep", DATA / "ssh-auth-logs" / "events.csv", "ts"
    )
    assert summary.events == 11_113
    # The loghub Linux rows (2005) arrive after the 2017 rows: late by construction.
    assert summary.late == 1_992
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert["rule"] == "ssh_brute_force_then_success"
    assert alert["key"] == {"src_ip": "24.151.103.17", "user": "elastic_user_0"}
    assert alert["data"] == {
        "src_ip": "24.151.103.17",
        "user": "elastic_user_0",
        "failures": 147,
        "first_failure": 1490889259000,  # 2017-03-30T15:54:19
        "accepted_at": 1490889696000,  # 2017-03-30T16:01:36
    }
    (success,) = alert["match"]["success"]
    assert success["line_no"] == 3180 and success["event"] == "ACCEPTED"
    assert [e["line_no"] for e in alert["match"]["failures"]][:3] == [2731, 2734, 2737]


def test_windows_password_spray_finds_the_labelled_incident() -> None:
    alerts, summary, _ = _run(
        "windows_password_spray.cep",
        DATA / "windows-security-mordor" / "security_auth_events.csv",
        "event_time_local",
    )
    assert summary.events == 203 and summary.late == 0
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert["key"] == {"host": "WORKSTATION5.theshire.local"}
    failures = alert["match"]["failures"]
    assert all(e["label"] == "T1110.003_password_spray" for e in failures)
    assert [e["TargetUserName"] for e in failures] == [
        "lrodriguez", "pgustavo", "sysmonsvc", "sbeavers", "mscott",
    ]
    assert alert["data"] == {"host": "WORKSTATION5.theshire.local", "failures": 5, "accounts": 5}
