"""Backtest (``cep replay --compare``) of a threshold change on real sshd logs, checked
against an independent computation, and file replays' summaries."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cep.app.replay import ReplayOptions, replay_files
from cep.app.rules import load_rule_set
from cep.io.codecs import TimeSpec
from cep.io.sinks import MemorySink, SinkSet

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
SSH = ROOT.parent / "shared" / "data" / "ssh-auth-logs" / "events.csv"
OLD, NEW = HERE / "rules" / "old", HERE / "rules" / "new"
BRUTE, SCAN = "ssh_brute_force_then_success", "ssh_invalid_user_scan"


def _rules(path: Path) -> list[Any]:
    rs = load_rule_set([str(path)])
    assert rs.ok, rs.diagnostics
    return rs.rules


@pytest.fixture(scope="module")
def ssh() -> Path:
    if not SSH.exists():
        pytest.skip(f"dataset not present: {SSH}")
    return SSH


# ----------------------------------------------------------------------------- independent


def _in_order(path: Path) -> list[tuple[int, int, dict[str, str]]]:
    """Rows that are not late (ts below the largest seen so far, no disorder allowed), in
    event-time order, ties by arrival; each ``(ts_ms, csv_line, row)``."""
    out, top = [], None
    with path.open(newline="") as fh:
        for i, row in enumerate(csv.DictReader(fh)):
            ts = round(datetime.fromisoformat(row["ts"]).replace(tzinfo=UTC).timestamp() * 1000)
            if top is not None and ts < top:
                continue
            top = ts
            out.append((ts, i + 2, row))  # line 1 is the header
    return sorted(out, key=lambda t: (t[0], t[1]))


def _brute_force_alerts(rows: list[Any], threshold: int) -> set[tuple[Any, ...]]:
    """Per (src_ip, user): an accepted login preceded, within 15 minutes of the first, by at
    least ``threshold`` failed passwords not used by an earlier alert (skip past last event)
    → one alert with all of them."""
    pending: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
    out = set()
    for ts, line, row in rows:
        key = (row["src_ip"], row["user"])
        if row["event"] == "FAILED_PASSWORD":
            pending[key].append((ts, line))
        elif row["event"] == "ACCEPTED":
            fails = [f for f in pending[key] if ts - f[0] < 15 * 60_000]
            if len(fails) >= threshold:
                out.add((key, tuple(sorted([ln for _, ln in fails] + [line]))))
                pending[key] = []
    return out


def _scan_alerts(rows: list[Any]) -> set[tuple[Any, ...]]:
    """Per src_ip: ten invalid-user probes within 10 minutes of the first → one alert;
    the run starts afresh after it."""
    run: dict[str, list[tuple[int, int]]] = defaultdict(list)
    out = set()
    for ts, line, row in rows:
        if row["event"] != "INVALID_USER":
            continue
        probes = [p for p in run[row["src_ip"]] if ts - p[0] < 10 * 60_000] + [(ts, line)]
        run[row["src_ip"]] = probes
        if len(probes) == 10:
            out.add((row["src_ip"], tuple(ln for _, ln in probes)))
            run[row["src_ip"]] = []
    return out


# ----------------------------------------------------------------------------- tests


@pytest.mark.shared
def test_backtest_of_a_lower_threshold_on_sshd_logs(ssh: Path) -> None:
    summary = replay_files([str(ssh)], ReplayOptions([_rules(OLD), _rules(NEW)]), fmt="csv",
                           time_spec=TimeSpec("ts", "iso"))
    assert summary.events == 11_113 and summary.late == 1_992
    c = summary.compare
    assert c is not None
    brute, scan = c.rules[BRUTE], c.rules[SCAN]
    # Lowering the threshold from 5 to 2 failures keeps the one known compromise and adds
    # two short runs of an admin address; the unchanged scan rule is identical.
    assert (len(brute.only_old), len(brute.only_new), brute.both) == (0, 2, 1)
    assert (len(scan.only_old), len(scan.only_new), scan.both) == (0, 0, 13)
    assert [a["key"] for a in brute.only_new] == [
        {"src_ip": "85.245.107.41", "user": "elastic_user_8"}] * 2
    assert [a["data"]["failures"] for a in brute.only_new] == [2, 2]
    (kept,) = brute.both_examples
    assert kept["key"] == {"src_ip": "24.151.103.17", "user": "elastic_user_0"}
    assert kept["data"]["failures"] == 147

    # The same numbers, computed without the engine.
    rows = _in_order(ssh)
    old, new = _brute_force_alerts(rows, 5), _brute_force_alerts(rows, 2)
    assert (len(old - new), len(new - old), len(old & new)) == (0, 2, 1)
    engine_new = {((a["key"]["src_ip"], a["key"]["user"]), tuple(ln for _, ln in a["_coords"]))
                  for a in brute.only_new + brute.both_examples}
    assert engine_new == new
    scans = _scan_alerts(rows)
    assert len(scans) == 13
    assert summary.counts[0][SCAN].alerts == summary.counts[1][SCAN].alerts == 13


@pytest.mark.shared
def test_backtest_from_the_command_line(ssh: Path, tmp_path: Path) -> None:
    report = tmp_path / "diff.json"
    res = subprocess.run(
        [sys.executable, "-m", "cep.cli", "replay", "--compare", str(OLD), str(NEW),
         "-i", str(ssh), "--format", "csv", "--time-unit", "iso", "--report", str(report)],
        capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.returncode == 0, res.stderr
    diff = json.loads(report.read_text())["compare"]
    # The headline, by key: the lower threshold adds one key (two alerts) and loses none;
    # the kept compromise and the unchanged scan rule's four addresses are unchanged.
    brute = diff[BRUTE]
    assert brute["alerts"] == {"old": 1, "new": 3}
    assert [(k["key"], k["old"], k["new"]) for k in brute["new_keys"]] == [
        ({"src_ip": "85.245.107.41", "user": "elastic_user_8"}, 0, 2)]
    assert brute["new_keys"][0]["new_windows"] == [[1490787411000, 1490787470000],
                                                   [1490887757000, 1490887760000]]
    assert (brute["lost_keys"], brute["changed_keys"], brute["unchanged_keys"]) == ([], [], 1)
    assert (diff[SCAN]["new_keys"], diff[SCAN]["lost_keys"], diff[SCAN]["changed_keys"],
            diff[SCAN]["unchanged_keys"]) == ([], [], [], 4)
    # The detail, by matched events.
    assert {k: (v["events"]["only_old"], v["events"]["only_new"], v["events"]["both"])
            for k, v in diff.items()} == {BRUTE: (0, 2, 1), SCAN: (0, 0, 13)}
    assert brute["events"]["only_new_alerts"][0]["events"][0] == [str(ssh), 1660]
    out = res.stdout
    assert "backtest by key: old vs new rules" in out
    assert (f"{BRUTE}: new keys alerting: 85.245.107.41 / elastic_user_8 (2); none lost"
            in out)
    assert not any(line.startswith(f"{SCAN}:") for line in out.splitlines())  # no change
    assert f"{BRUTE} only in new (2), e.g.:" in out
    assert "events.csv:1660, events.csv:1684, events.csv:1685" in out
    assert "1 → 3" in out and "13 → 13" in out


def test_keys_pair_by_overlapping_time_not_by_events() -> None:
    from cep.app.backtest import diff_by_key

    def a(key: str, start: int, end: int, rule: str = "r", **kw: Any) -> dict[str, Any]:
        return {"rule": rule, "key": {"user": key}, "start": start, "end": end, **kw}

    old = [a("same", 0, 10), a("moved", 100, 200), a("fewer", 0, 10), a("fewer", 50, 60),
           a("gone", 5, 6), a("t", 0, 9, timed_out=True)]
    new = [a("same", 0, 10), a("moved", 150, 260), a("fewer", 2, 10), a("fresh", 1, 2),
           a("t", 0, 9)]  # a match where the old version timed out: a different outcome
    (rep,) = diff_by_key(old, new).values()
    assert [(d.key["user"], d.timed_out) for d in rep.new_keys] == [("fresh", False),
                                                                     ("t", False)]
    assert [(d.key["user"], d.timed_out) for d in rep.lost_keys] == [("gone", False),
                                                                      ("t", True)]
    changed = {d.key["user"]: d.as_dict() for d in rep.changed_keys}
    assert set(changed) == {"moved", "fewer"} and rep.unchanged_keys == 1
    assert changed["moved"]["moved"] == [[[100, 200], [150, 260]]]
    assert (changed["fewer"]["old"], changed["fewer"]["new"]) == (2, 1)
    assert changed["fewer"]["only_old_windows"] == [[50, 60]]
    # an alert that does not overlap the other version's is not paired with it
    (rep,) = diff_by_key([a("k", 0, 10)], [a("k", 11, 20)]).values()
    assert rep.changed_keys[0].paired == []


def test_file_replay_counts_late_events_dead_letters_and_alerts(tmp_path: Path) -> None:
    rules = tmp_path / "r.cep"
    rules.write_text('rule pair\n  severity low\n  key by user\n  pattern\n'
                     '    begin a where kind == "a"\n    next b where kind == "b"\n'
                     '  within 1m\n  on timeout emit { user: a.user }\nend\n')
    events = tmp_path / "e.jsonl"
    events.write_text("\n".join([
        '{"ts": 1000, "user": "u", "kind": "a"}',
        '{"ts": 2000, "user": "u", "kind": "b"}',
        '{"ts": 3000, "user": "v", "kind": "a"}',
        '{"ts": 500, "user": "w", "kind": "a"}',    # late
        'not json',                                # dead letter
        '{"user": "w", "kind": "a"}',              # no event time: dead letter
    ]) + "\n")
    more = tmp_path / "f.jsonl"
    more.write_text('{"ts": 4000, "user": "w", "kind": "a"}\n'
                    '{"ts": 4001, "user": "w", "kind": "b"}\n')
    alerts, late, dead = MemorySink(), MemorySink(), MemorySink()
    sinks = SinkSet({"alerts": alerts, "late": late, "dead_letter": dead})
    s = replay_files([str(events), str(more)], ReplayOptions([_rules(rules)], sinks=sinks))
    assert (s.events, s.late, s.dead_letters) == (6, 1, 2)
    counts = s.counts[0]["pair"]
    assert (counts.severity, counts.alerts, counts.timeouts) == ("low", 2, 1)
    assert counts.peak_partial_matches >= 1  # v's request is open before the end
    assert sorted((a["key"]["user"], bool(a.get("timed_out"))) for a in alerts.records) == [
        ("u", False), ("v", True), ("w", False)]
    assert [d["reason"] for d in dead.records] == ["malformed", "no_event_time"]
    assert late.records[0]["event"]["user"] == "w"

    # --keep-open: the open request is not decided at the end of the files
    s = replay_files([str(events), str(more)], ReplayOptions([_rules(rules)], keep_open=True))
    assert (s.counts[0]["pair"].alerts, s.counts[0]["pair"].timeouts) == (2, 0)
