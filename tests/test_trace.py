"""`cep explain --trace`: every event of one key and what became of it, on cep run's path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cep.app.rules import load_rule_set
from cep.app.trace import trace_key
from cep.io.codecs import TimeSpec, decode_lines

ROOT = Path(__file__).resolve().parents[1]
SSH = ROOT.parent / "shared" / "data" / "ssh-auth-logs" / "events.csv"

RULE = """rule fail_then_ok
  key by user
  pattern
    begin fail where action == "login" and outcome == "failure"
    followed by ok where action == "login" and outcome == "success"
  within 10s
end
"""


def _trace(tmp: Path, events: list[dict[str, object]], ooo: int = 0) -> list[tuple[int, str]]:
    (tmp / "r.cep").write_text(RULE)
    (rule,) = load_rule_set([str(tmp / "r.cep")]).rules
    data = tmp / "in.jsonl"
    data.write_text("".join(json.dumps(e) + "\n" for e in events))
    with data.open("rb") as fh:
        got = trace_key(rule, {"user": "alice"}, decode_lines(fh, "json", TimeSpec()), ooo)
    return [(f.line, f"{f.what}: {f.detail}") for f in got.fates]


def test_each_event_of_the_key_has_its_fate(tmp_path: Path) -> None:
    def e(ts: int, user: str, action: str, outcome: str) -> dict[str, object]:
        return {"ts": ts, "user": user, "action": action, "outcome": outcome}

    fates = _trace(tmp_path, [
        e(1000, "alice", "login", "failure"),     # 1 taken
        e(2000, "bob", "login", "failure"),       # 2 another key: not traced
        e(3000, "alice", "logout", "success"),    # 3 not taken (values shown)
        e(20000, "bob", "login", "failure"),      # 4 the watermark passes alice's window
        e(1500, "alice", "login", "success"),     # 5 late
        e(21000, "alice", "login", "failure"),    # 6 taken
        e(22000, "alice", "login", "success"),    # 7 matched
    ])
    assert [line for line, _ in fates] == [1, 3, 0, 5, 6, 7]
    assert fates[0][1] == "taken: by stage fail (1 partial match(es) live)"
    assert fates[1][1].startswith("not taken: fail: `action == \"login\" and outcome == "
                                  "\"failure\"` is false (action='logout', outcome='success')")
    assert fates[2][1].startswith("expired: 1 partial match(es) ended without a match")
    assert fates[3][1] == "late: at or below the watermark 19999"
    assert fates[4][1].startswith("taken: by stage fail")
    assert fates[5][1].startswith("matched: completed a match")


def test_a_key_that_does_not_name_the_rule_key_fields_is_refused(tmp_path: Path) -> None:
    (tmp_path / "r.cep").write_text(RULE)
    (rule,) = load_rule_set([str(tmp_path / "r.cep")]).rules
    with pytest.raises(ValueError, match="keyed by user"):
        trace_key(rule, {"user.name": "alice"}, [])


@pytest.mark.shared
def test_trace_of_the_elastic_ssh_attack_from_the_command_line(tmp_path: Path) -> None:
    if not SSH.exists():
        pytest.skip(f"dataset not present: {SSH}")
    mapped = tmp_path / "ssh.jsonl"
    subprocess.run([sys.executable, "-m", "cep.cli", "map", "ssh", str(SSH), "-o", str(mapped)],
                   check=True, capture_output=True)
    lines = mapped.read_text().splitlines()[2699:3200]  # the attack of 2017-03-30
    (tmp_path / "slice.jsonl").write_text("\n".join(lines) + "\n")
    out = subprocess.run(
        [sys.executable, "-m", "cep.cli", "explain", str(ROOT / "rules" / "login"), "--trace",
         "ssh_brute_force_then_success", "--key", "source.address=24.151.103.17",
         "--key", "user.name=elastic_user_0", "--input", str(tmp_path / "slice.jsonl")],
        capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    rows = [r.split() for r in out.stdout.splitlines() if r.startswith("line")]
    fates = [r[4] for r in rows]
    assert out.stdout.splitlines()[0].endswith(": 295 event(s)")
    # every event of the key once: 147 failed passwords taken, the login-less records
    # filtered by the header where, the accepted password completing the match
    assert len(rows) == 295 and len({r[1] for r in rows}) == 295
    assert fates.count("taken") == 147 and fates.count("filtered") == 147
    assert fates[-1] == "matched" and fates.count("matched") == 1
    assert "alive at the end: 0 partial match(es)" in out.stdout
