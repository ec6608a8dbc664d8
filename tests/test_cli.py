"""The command line end to end, as a user runs it (subprocesses)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

GOOD = """\
rule pairs
  key by user
  pattern
    begin a where kind == "a"
    next  b where kind == "b"
  within 1m
  emit { user: a.user, gap: b.ts - a.ts }
end
"""

BROKEN = """\
rule one
  pattern
    begin a where kind = "a"
end

rule two
  pattern
    begin a where kind == "a"
    next  a where kind == "b"
end
"""


def cep(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cep.cli", *args], input=stdin,
                          capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_run_on_a_file_writes_alerts_and_dead_letters(tmp_path: Path) -> None:
    out, dead = tmp_path / "alerts.jsonl", tmp_path / "dead.jsonl"
    res = cep("run", "--rules", str(EXAMPLES / "rules"), "--input", str(EXAMPLES / "logins.jsonl"),
              "--output", str(out), "--dead-letter", str(dead))
    assert res.returncode == 0, res.stderr
    alerts = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(a["rule"] for a in alerts) == ["login_brute_force", "login_failures_then_success"]
    brute = next(a for a in alerts if a["rule"] == "login_brute_force")
    assert brute["key"] == {"user": "alice"} and brute["data"]["attempts"] == 5
    assert len(brute["match"]["fail"]) == 1 and len(brute["match"]["again"]) == 4
    dead_letters = [json.loads(line) for line in dead.read_text().splitlines()]
    assert [(d["reason"], d["line"]) for d in dead_letters] == [
        ("bad_event_time", 51), ("malformed", 52)]
    assert dead_letters[1]["raw"] == "this line is not JSON"
    assert "2 alerts" in res.stderr and "2 dead letters" in res.stderr


def test_run_reads_stdin_and_matches_as_without_the_bad_lines(tmp_path: Path) -> None:
    rules = tmp_path / "pairs.cep"
    rules.write_text(GOOD)
    lines = [
        {"ts": 1000, "user": "u", "kind": "a"},
        "{not json",
        [1, 2, 3],
        {"user": "u", "kind": "b"},
        {"ts": 1500, "user": "u", "kind": "b"},
    ]
    text = "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n"
    res = cep("run", "--rules", str(rules), "--dead-letter", str(tmp_path / "d.jsonl"),
              stdin=text)
    assert res.returncode == 0, res.stderr
    alerts = [json.loads(line) for line in res.stdout.splitlines()]
    assert len(alerts) == 1 and alerts[0]["data"] == {"user": "u", "gap": 500}
    reasons = [json.loads(x)["reason"] for x in (tmp_path / "d.jsonl").read_text().splitlines()]
    assert reasons == ["malformed", "not_an_object", "no_event_time"]


def test_run_with_csv_and_iso_time(tmp_path: Path) -> None:
    rules = tmp_path / "pairs.cep"
    rules.write_text(GOOD)
    data = tmp_path / "e.csv"
    data.write_text("when,user,kind\n2026-01-01T00:00:00Z,u,a\n2026-01-01T00:00:02Z,u,b\n")
    res = cep("run", "--rules", str(rules), "--input", str(data), "--format", "csv",
              "--event-time", "when", "--time-unit", "iso")
    assert res.returncode == 0, res.stderr
    (alert,) = [json.loads(line) for line in res.stdout.splitlines()]
    assert alert["start"] == 1767225600000 and alert["data"]["gap"] == 2000


def test_late_events_go_to_the_late_output(tmp_path: Path) -> None:
    rules = tmp_path / "pairs.cep"
    rules.write_text(GOOD)
    events = [{"ts": 5000, "user": "u", "kind": "a"}, {"ts": 1000, "user": "u", "kind": "b"},
              {"ts": 5001, "user": "u", "kind": "b"}]
    res = cep("run", "--rules", str(rules), "--late", str(tmp_path / "late.jsonl"),
              "--max-out-of-orderness", "1s",
              stdin="\n".join(json.dumps(e) for e in events) + "\n")
    assert res.returncode == 0, res.stderr
    (late,) = [json.loads(x) for x in (tmp_path / "late.jsonl").read_text().splitlines()]
    assert late["reason"] == "late" and late["watermark"] == 3999 and late["event"]["ts"] == 1000
    assert len(res.stdout.splitlines()) == 1


def test_check_reports_every_error_with_location_and_exit_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.cep"
    bad.write_text(BROKEN)
    res = cep("check", str(bad))
    assert res.returncode == 1
    assert f"{bad}:3:" in res.stderr  # `=` instead of `==`
    assert f"{bad}:9:" in res.stderr  # stage name used twice
    assert "^" in res.stderr
    good = tmp_path / "good.cep"
    good.write_text(GOOD)
    ok = cep("check", str(good))
    assert ok.returncode == 0 and "1 rule(s)" in ok.stdout


def test_run_refuses_broken_rules_without_processing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.cep"
    bad.write_text(BROKEN)
    res = cep("run", "--rules", str(bad), stdin='{"ts": 1, "kind": "a"}\n')
    assert res.returncode == 1
    assert res.stdout == ""
    assert "no events processed" in res.stderr


def test_explain_prints_states_and_edges(tmp_path: Path) -> None:
    rules = tmp_path / "pairs.cep"
    rules.write_text(GOOD)
    res = cep("explain", str(rules))
    assert res.returncode == 0, res.stderr
    assert "state a  [start]" in res.stdout
    assert 'take    -> b' in res.stdout and 'kind == "a"' in res.stdout
    assert "window: 60000 ms" in res.stdout


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    rules = tmp_path / "pairs.cep"
    rules.write_text(GOOD)
    assert cep("run", "--rules", str(rules), "--input", str(tmp_path / "missing")).returncode == 2
    assert cep("run", "--rules", str(rules), "--time-unit", "weeks").returncode == 2
    assert cep("check", str(tmp_path / "nope.cep")).returncode == 2


LOOPING = """\
rule k
  key by user
  pattern
    begin a where t == "a"
    followed by b where t == "b" one or more
    followed by c where t == "end"
  within 1h
end
"""


def test_max_events_per_match_from_the_flag_or_the_config(tmp_path: Path) -> None:
    rules, events = tmp_path / "k.cep", tmp_path / "in.jsonl"
    rules.write_text(LOOPING)
    lines = [{"ts": 0, "user": "x", "t": "a"}, *({"ts": i, "user": "x", "t": "b"}
                                                 for i in range(1, 21)),
             {"ts": 50, "user": "x", "t": "end"}]
    events.write_text("".join(json.dumps(e) + "\n" for e in lines))
    conf = tmp_path / "cep.toml"
    conf.write_text("[state]\nmax_events_per_match = 4\n")
    for extra, limit in (([], 1_000), (["--max-events-per-match", "6"], 6),
                         (["--config", str(conf)], 4),
                         (["--config", str(conf), "--max-events-per-match", "6"], 6)):
        res = cep("run", "--rules", str(rules), "--input", str(events), *extra)
        assert res.returncode == 0, res.stderr
        alerts = [json.loads(line) for line in res.stdout.splitlines()]
        assert len(alerts) == 20
        for a in alerts:
            shown = sum(len(v) for v in a["match"].values())
            omitted = a.get("events_omitted", {})
            assert shown == min(limit, shown + sum(omitted.values()))
        assert max(sum(a.get("events_omitted", {}).values()) for a in alerts) == max(
            0, 22 - limit)
    assert cep("run", "--rules", str(rules), "--input", str(events),
               "--max-events-per-match", "0").returncode == 2
