"""Lists and tables on the real SSH authentication logs (``ssh-auth-logs``): a block list of
the addresses with the most failures, a table of labels for them and a list of privileged
account names matched case-insensitively.  Counts and labels are checked against an
independent pass over the CSV; the run goes the way ``cep run`` goes."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest

from cep.app.pipeline import FileRunOptions, run_file
from cep.app.rules import load_rule_set
from cep.io.sinks import MemorySink, SinkSet

from .engine_run import dataset

pytestmark = pytest.mark.shared  # the public datasets of ../shared/data

FAILURES = ("FAILED_PASSWORD", "AUTH_FAILURE", "INVALID_USER")
PRIVILEGED = ["ROOT", "Admin", "oracle", "postgres", "test"]

RULES = '''
list blocklist from "lists/blocklist.txt"
table owners from "lists/owners.csv" key ip
list privileged from "lists/privileged.txt"

rule failure_from_blocklisted
  where event in ["FAILED_PASSWORD", "AUTH_FAILURE", "INVALID_USER"]
  pattern
    begin f where src_ip in blocklist
  emit { ip: f.src_ip, label: owners[f.src_ip].label, rank: owners[f.src_ip].rank }
end

rule privileged_name_tried
  pattern
    begin f where invalid_user in~ privileged
                  or (event == "FAILED_PASSWORD" and user in~ privileged)
end
'''


def test_lists_and_tables_on_ssh_logs(tmp_path: Path) -> None:
    with dataset("ssh-auth-logs/events.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    failures = Counter(r["src_ip"] for r in rows if r["event"] in FAILURES and r["src_ip"])
    top = [ip for ip, _ in failures.most_common(4)]
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "blocklist.txt").write_text(
        "# the four addresses with the most failures\n" + "\n".join(top) + "\n")
    (tmp_path / "lists" / "owners.csv").write_text(
        "ip,label,rank\n" + "".join(f"{ip},\"scanner {i}, ssh\",{i}\n"
                                    for i, ip in enumerate(top, 1)))
    (tmp_path / "lists" / "privileged.txt").write_text("\n".join(PRIVILEGED) + "\n")
    (tmp_path / "ssh.cep").write_text(RULES)
    events = tmp_path / "events.jsonl"
    with events.open("w", encoding="utf-8") as out:
        for i, r in enumerate(rows):
            out.write(json.dumps({**{k: v for k, v in r.items() if v != ""}, "ts": i}) + "\n")

    rs = load_rule_set([str(tmp_path / "ssh.cep")])
    assert rs.ok, rs.diagnostics
    alerts = MemorySink()
    summary = run_file(rs.rules, FileRunOptions(path=str(events), fmt="json"),
                       SinkSet({"alerts": alerts, "late": MemorySink()}))
    assert summary.events == len(rows)

    blocked = [a for a in alerts.records if a["rule"] == "failure_from_blocklisted"]
    assert Counter(a["data"]["ip"] for a in blocked) == {ip: failures[ip] for ip in top}
    assert {(a["data"]["ip"], a["data"]["label"], a["data"]["rank"]) for a in blocked} == {
        (ip, f"scanner {i}, ssh", i) for i, ip in enumerate(top, 1)}
    folded = {p.casefold() for p in PRIVILEGED}
    expected = sum(1 for r in rows if r["invalid_user"].casefold() in folded
                   or (r["event"] == "FAILED_PASSWORD" and r["user"].casefold() in folded))
    got = sum(1 for a in alerts.records if a["rule"] == "privileged_name_tried")
    assert got == expected and expected > 100  # the logs are full of `root` and `admin`
