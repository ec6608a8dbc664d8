"""Library rules over real public logs (shared/data), mapped to the library schema
(docs/schema.md): each finds exactly the known incident."""

from __future__ import annotations

from pathlib import Path

import pytest

from cep.mapping.datasets import ssh_events, windows_csv_events

from .engine_run import dataset, run_mapped

pytestmark = pytest.mark.shared  # the public datasets of ../shared/data


def test_ssh_brute_force_then_success_finds_the_elastic_host_compromise(tmp_path: Path) -> None:
    events = ssh_events(dataset("ssh-auth-logs/events.csv"))
    alerts, _, summary = run_mapped(["login/ssh_brute_force_then_success.cep"], events, tmp_path)
    # The loghub OpenSSH rows (December 2017) follow the Elastic rows (April 2017): the first
    # two of them are more than the default max_future_skew (1d) ahead and go to the dead
    # letters as future_event_time; the third confirms the jump (docs/semantics.md).
    assert summary.events == 11_111 and summary.dead_letters == 2
    # The loghub Linux rows (2005) arrive after the 2017 rows: late by construction.
    assert summary.late == 1_992
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert["rule"] == "ssh_brute_force_then_success"
    assert alert["key"] == {"source.address": "24.151.103.17", "user.name": "elastic_user_0"}
    assert alert["data"] == {
        "source.address": "24.151.103.17",
        "user.name": "elastic_user_0",
        "failures": 147,
        "first_failure": 1490889259000,  # 2017-03-30T15:54:19
        "accepted_at": 1490889696000,  # 2017-03-30T16:01:36
    }
    (success,) = alert["match"]["success"]
    assert success["log"]["file"]["line"] == 3180 and success["event"]["code"] == "ACCEPTED"
    assert [e["log"]["file"]["line"] for e in alert["match"]["failures"]][:3] == [2731, 2734, 2737]


def test_windows_password_spray_finds_the_labelled_incident(tmp_path: Path) -> None:
    events = windows_csv_events(dataset("windows-security-mordor/security_auth_events.csv"))
    alerts, _, summary = run_mapped(["login/windows_password_spray.cep"], events, tmp_path)
    assert summary.events == 203 and summary.late == 0
    assert len(alerts) == 1
    alert = alerts[0]
    # A local LogonUser spray: the 4625s carry no IP, the client is the workstation itself.
    assert alert["key"] == {"source.address": "WORKSTATION5"}
    failures = alert["match"]["events"]
    assert all(e["labels"]["technique"] == "T1110.003_password_spray" for e in failures)
    assert [e["user"]["name"] for e in failures] == [
        "lrodriguez", "pgustavo", "sysmonsvc", "sbeavers", "mscott",
    ]
    assert alert["data"] == {
        "source.address": "WORKSTATION5",
        "host.name": "WORKSTATION5.theshire.local",
        "failures": 5,
        "accounts": 5,
    }
