"""The matching operators on the raw OTRF PurpleSharp capture: mixed-case Windows paths
(``C:\\windows\\…`` and ``C:\\Windows\\…``), IPv4 addresses written plainly and as IPv4-mapped
IPv6 (``::ffff:172.18.39.5``), user names in several cases.  Every count is checked against
an independent pass over the raw file with ``fnmatch`` / ``ipaddress`` / ``str.casefold``, and
the run goes the way ``cep run`` goes (the line scanner included where it is built)."""

from __future__ import annotations

import fnmatch
import gzip
import ipaddress
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from cep.app.pipeline import FileRunOptions, run_file
from cep.app.rules import load_rule_set
from cep.io.sinks import MemorySink, SinkSet

from .engine_run import dataset

pytestmark = pytest.mark.shared  # the public datasets of ../shared/data

RAW = "windows-security-mordor/purplesharp_ad_playbook_I_2020-10-22042947.json.gz"

RULES = r'''
rule powershell_image
  pattern
    begin p where Image like~ "*\\powershell.exe"
  emit { image: p.Image }
end

rule logon_from_lab_subnet
  where EventID in [4624, 4625, 4769]
  pattern
    begin l where IpAddress in cidr("172.18.39.0/24")
  emit { ip: l.IpAddress }
end

rule logon_from_elsewhere
  where EventID in [4624, 4625, 4769]
  pattern
    begin l where IpAddress not in cidr("172.18.39.0/24", "::1/128")
  emit { ip: l.IpAddress }
end

rule spray_accounts
  pattern
    begin u where TargetUserName in~ ["LRODRIGUEZ", "PGustavo", "sysmonsvc"] and EventID =~ 4625
end

rule exact_system_image
  pattern
    begin s where Image like ["C:\\windows\\system32\\lsass.exe",
                              "C:\\Windows\\System32\\lsass.exe"]
end
'''


def _raw() -> list[dict[str, Any]]:
    with gzip.open(dataset(RAW), "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def _in_lab(ip: Any, blocks: list[str]) -> bool:
    try:
        addr = ipaddress.ip_address(ip)
    except (ValueError, TypeError):
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return any(addr in ipaddress.ip_network(b) for b in blocks)


def test_matching_operators_count_what_an_independent_pass_counts(tmp_path: Path) -> None:
    raw = _raw()
    events = tmp_path / "events.jsonl"
    with events.open("w", encoding="utf-8") as out:
        for i, r in enumerate(raw):  # arrival order as event time: no event is late
            out.write(json.dumps({**r, "ts": i}) + "\n")
    rules = tmp_path / "matching.cep"
    rules.write_text(RULES, encoding="utf-8")
    rs = load_rule_set([str(rules)])
    assert rs.ok, rs.diagnostics
    alerts = MemorySink()
    summary = run_file(rs.rules, FileRunOptions(path=str(events), fmt="json"),
                       SinkSet({"alerts": alerts, "late": MemorySink()}))
    assert summary.events == len(raw) == 25_993
    got = Counter(a["rule"] for a in alerts.records)

    logons = [r for r in raw if r.get("EventID") in (4624, 4625, 4769)]
    expected = {
        "powershell_image": sum(
            1 for r in raw if isinstance(r.get("Image"), str)
            and fnmatch.fnmatchcase(r["Image"].casefold(), "*\\powershell.exe")),
        "logon_from_lab_subnet": sum(
            1 for r in logons if _in_lab(r.get("IpAddress"), ["172.18.39.0/24"])),
        "logon_from_elsewhere": sum(
            1 for r in logons if r.get("IpAddress") is not None
            and not _in_lab(r.get("IpAddress"), ["172.18.39.0/24", "::1/128"])),
        "spray_accounts": sum(
            1 for r in raw if r.get("EventID") == 4625
            and str(r.get("TargetUserName")).casefold() in ("lrodriguez", "pgustavo",
                                                            "sysmonsvc")),
        "exact_system_image": sum(
            1 for r in raw if r.get("Image") in ("C:\\windows\\system32\\lsass.exe",
                                                 "C:\\Windows\\System32\\lsass.exe")),
    }
    assert dict(got) == expected
    # the capture really exercises what the operators are for
    assert expected["powershell_image"] == 2274 + 347  # two spellings of one path
    mapped = [a for a in alerts.records if a["rule"] == "logon_from_lab_subnet"
              and a["data"]["ip"].startswith("::ffff:")]
    assert mapped, "IPv4-mapped addresses were matched against an IPv4 block"
    assert expected["spray_accounts"] == 3
    # 42 logons without an address ("-": not in the blocks), 172.18.38.6 plain and mapped
    assert expected["logon_from_elsewhere"] == 42 + 2 + 1
    assert expected["logon_from_lab_subnet"] == 7 + 2 + 2 + 14 + 1 + 1
