"""The OTRF PurpleSharp capture, raw and in its real arrival order: the library finds the
password spray, the sprayed account that is also in use (the operator's own, pgustavo) and
the Kerberoasting, once each, and nothing else.

The file is in collector order (``@timestamp``), not event order: hosts forward their logs in
batches, so an event can arrive after events up to 40 s younger than itself (EventTime has
one-second resolution).  ``max_out_of_orderness`` 45 s covers that largest measured disorder
with a margin: no event is late and every window sees its events in event-time order.  With
0 s, the default, 23,450 of the 25,993 events are late and the spray is lost.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from cep.mapping.datasets import windows_raw_events

from .engine_run import dataset, run_mapped

pytestmark = pytest.mark.shared  # the public datasets of ../shared/data

RAW = "windows-security-mordor/purplesharp_ad_playbook_I_2020-10-22042947.json.gz"
LIBRARY = ["login", "fraud"]  # every rule of the library
OOO_MS = 45_000


def _raw_security(event_id: int) -> list[tuple[str, int, dict[str, Any]]]:
    """Independent of the mapping and the engine: the raw Security events with this ID, as
    (EventTime, arrival index, raw record), sorted in event-time order."""
    out = []
    with gzip.open(dataset(RAW), "rt", encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            raw = json.loads(line)
            if raw.get("Channel") == "Security" and raw["EventID"] == event_id:
                out.append((raw["EventTime"], i, raw))
    return sorted(out, key=lambda t: (t[0], t[1]))


def _seconds(event_time: str) -> int:
    """``EventTime`` (``2020-10-22 04:29:53``, one-second resolution) in seconds."""
    from datetime import datetime

    return int(datetime.strptime(event_time, "%Y-%m-%d %H:%M:%S").timestamp())


def _late_count(events: list[dict[str, Any]], ooo_ms: int) -> int:
    """How many events arrive at or below the watermark (largest time so far − ooo − 1)."""
    late, top = 0, None
    for ev in events:
        if top is not None and ev["ts"] <= top - ooo_ms - 1:
            late += 1
        top = ev["ts"] if top is None else max(top, ev["ts"])
    return late


def test_the_library_finds_the_spray_and_the_kerberoast_in_arrival_order(tmp_path: Path) -> None:
    events = list(windows_raw_events(dataset(RAW)))
    alerts, late, summary = run_mapped(LIBRARY, events, tmp_path, OOO_MS)
    assert summary.events == 25_993
    assert summary.late == 0 and late == [] and _late_count(events, OOO_MS) == 0
    assert sorted(a["rule"] for a in alerts) == [
        "kerberoasting", "sprayed_account_in_use", "windows_password_spray"]
    by_rule = {a["rule"]: a for a in alerts}

    in_use = by_rule["sprayed_account_in_use"]
    assert in_use["key"] == {"user.name": "pgustavo"} and in_use["suppressed"] == 0
    assert in_use["data"] == {"user.name": "pgustavo",
                              "workstation": "WORKSTATION5.theshire.local",
                              "domain_controller": "MORDORDC.theshire.local",
                              "logon_host": "MORDORDC.theshire.local"}
    # Independently: of the sprayed accounts (4625 and 4776 in the same second), only
    # pgustavo also has a successful logon (4624) within five minutes of them.
    sprayed = {r["TargetUserName"] for _, _, r in _raw_security(4625)} & {
        r["TargetUserName"] for _, _, r in _raw_security(4776)}
    spray_time = _raw_security(4625)[0][0]
    near = {r["TargetUserName"] for t, _, r in _raw_security(4624)
            if r["TargetUserName"] in sprayed and abs(_seconds(t) - _seconds(spray_time)) < 300}
    assert near == {"pgustavo"}

    spray = by_rule["windows_password_spray"]
    assert spray["key"] == {"source.address": "WORKSTATION5"}
    assert spray["data"] == {"source.address": "WORKSTATION5",
                             "host.name": "WORKSTATION5.theshire.local",
                             "failures": 5, "accounts": 5}
    # Independently: the first five 4625s of the capture in event-time order.
    expected_4625 = _raw_security(4625)
    assert len(expected_4625) == 7
    assert [e["winlog"]["record_id"] for e in spray["match"]["events"]] == [
        r["RecordNumber"] for _, _, r in expected_4625[:5]
    ]
    assert [e["user"]["name"] for e in spray["match"]["events"]] == [
        "lrodriguez", "pgustavo", "sysmonsvc", "sbeavers", "mscott",
    ]

    roast = by_rule["kerberoasting"]
    assert roast["key"] == {"user.name": "pgustavo"}
    assert roast["data"] == {"user.name": "pgustavo", "source.address": "172.18.39.5",
                             "tickets": 4, "services": 4,
                             "first_service": "sysmonsvc", "last_service": "otrsvc"}
    # Independently: the RC4 (0x17) tickets for user accounts, in event-time order.
    rc4 = [r for _, _, r in _raw_security(4769)
           if r["TicketEncryptionType"] == "0x17" and not r["ServiceName"].endswith("$")]
    assert [r["ServiceName"] for r in rc4] == [
        "sysmonsvc", "nxlogsvc", "defensesvc", "otrsvc", "mordorsvc",
    ]
    assert [e["winlog"]["event_data"]["ServiceName"] for e in roast["match"]["tickets"]] == [
        r["ServiceName"] for r in rc4[:4]
    ]


def test_without_tolerance_for_disorder_the_spray_is_lost(tmp_path: Path) -> None:
    events = list(windows_raw_events(dataset(RAW)))
    alerts, late, summary = run_mapped(
        ["login/windows_password_spray.cep", "login/kerberoasting.cep"], events, tmp_path, 0)
    assert summary.late == 23_450 == _late_count(events, 0)
    late_4625 = [r["event"] for r in late if r["event"]["event"].get("code") == "4625"]
    assert len(late_4625) == 7  # every spray failure arrived behind a younger event
    # The first RC4 ticket (sysmonsvc) is late too; the other four still make an alert.
    (roast,) = alerts
    assert roast["rule"] == "kerberoasting"
    assert roast["data"]["first_service"] == "nxlogsvc"
    assert roast["data"]["last_service"] == "mordorsvc"
