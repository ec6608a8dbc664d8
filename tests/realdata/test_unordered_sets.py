"""``all of`` (rules/login/sprayed_account_in_use.cep) on the labelled Windows password spray
(shared/data/windows-security-mordor):
for one account, a failed logon at the workstation (4625), a failed credential validation at
the domain controller (4776) and a successful logon (4624) within five minutes, in whatever
order they come — a sprayed account that is also in use.  The alerts equal the brute-force
reference of tests/windows/reference.py over the same mapped events: one account,
pgustavo, whose successful logons came *before* the spray."""

from __future__ import annotations

from pathlib import Path

import pytest

from cep.mapping.datasets import windows_csv_events
from tests.windows import reference as ref

from .engine_run import dataset, run_mapped

pytestmark = pytest.mark.shared

MEMBERS = [lambda e, c=code: e.get("event", {}).get("code") == c
           for code in ("4625", "4776", "4624")]


def test_all_of_on_the_mordor_spray_equals_the_reference(tmp_path: Path) -> None:
    events = list(windows_csv_events(
        dataset("windows-security-mordor/security_auth_events.csv")))
    alerts, late, summary = run_mapped(["login/sprayed_account_in_use.cep"], events,
                                       tmp_path)
    assert summary.late == 0 and not late
    tagged = [dict(e, id=i, k=e.get("user", {}).get("name")) for i, e in enumerate(events)]
    crossings = ref.all_of_alerts(tagged, MEMBERS, 300_000)
    emitted = ref.suppress([(k, tagged[ids[-1]]["ts"]) for k, ids in crossings], 3_600_000)
    want = [(crossings[i][0], crossings[i][1], n) for i, n in emitted]
    got = []
    for a in alerts:
        recs = [e for evs in a["match"].values() for e in evs]
        ids = sorted({next(t["id"] for t in tagged if t["winlog"] == e["winlog"])
                      for e in recs})
        got.append((a["key"]["user.name"], ids, a["suppressed"]))
    assert got == want
    (alert,) = alerts
    assert alert["key"] == {"user.name": "pgustavo"} and alert["suppressed"] == 0
    assert alert["data"] == {"user.name": "pgustavo",
                             "workstation": "WORKSTATION5.theshire.local",
                             "domain_controller": "MORDORDC.theshire.local",
                             "logon_host": "MORDORDC.theshire.local"}
    match = alert["match"]
    assert list(match) == ["logon", "failed_logon", "failed_validation"]  # as they came
    assert match["logon"][0]["ts"] <= match["failed_logon"][0]["ts"]
