"""What a file run says about its input at the end (as a user types it): the disorder late
events show and the --max-out-of-orderness that would have matched them, a dead-letter
ratio that fails the run, rules whose first stage took nothing."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from cep.app.pipeline import InputHealth

RULE = """rule pairs
  key by user
  pattern
    begin a where action == "x"
    followed by b where action == "y"
  within 1h
end

rule never
  key by user
  pattern
    begin a where action == "no such action"
    followed by b where action == "y"
  within 1h
end
"""
T0 = 1_767_225_600_000


def _cep(tmp: Path, lines: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    (tmp / "r.cep").write_text(RULE)
    (tmp / "in.jsonl").write_text("\n".join(lines) + "\n")
    return subprocess.run([sys.executable, "-m", "cep.cli", "run", str(tmp / "r.cep"),
                           "--input", str(tmp / "in.jsonl"), "-o", "-", *args],
                          capture_output=True, text=True)


def _disordered(n: int) -> list[str]:
    """Pairs x, y per user, a second apart; every other pair's x arrives 500 ms behind the
    largest time seen (late with no out-of-orderness: its pair is then lost)."""
    out = []
    for i in range(n):
        ts = T0 + i * 1000 - (1500 if i % 4 == 2 else 0)
        out.append(json.dumps({"ts": ts, "user": f"u{i // 2}",
                               "action": "x" if i % 2 == 0 else "y"}))
    return out


def test_late_events_get_a_suggested_out_of_orderness_that_then_matches_them(
        tmp_path: Path) -> None:
    lines = _disordered(1200)
    first = _cep(tmp_path, lines)
    assert first.returncode == 0, first.stderr
    m = re.search(r"--max-out-of-orderness (\S+) would have matched 99.9 % of them",
                  first.stderr)
    assert m is not None, first.stderr
    again = _cep(tmp_path, lines, "--max-out-of-orderness", m.group(1))
    assert " 0 late" in again.stderr and "warning" not in again.stderr
    assert len(again.stdout.splitlines()) > len(first.stdout.splitlines())
    assert "the first stage of never took none of the 1,200 events" in first.stderr


def test_a_dead_letter_ratio_above_the_limit_fails_the_run(tmp_path: Path) -> None:
    lines = [*_disordered(8)[::4], "{not json", "{not json"]
    ok = _cep(tmp_path, lines, "--max-dead-letter-ratio", "0.5")
    assert ok.returncode == 0 and "dead letters; the first: line 3: malformed" in ok.stderr
    bad = _cep(tmp_path, lines, "--max-dead-letter-ratio", "0.2")
    assert bad.returncode == 4 and "50.0% of the input went to the dead letters" in bad.stderr


def test_the_disorder_quantile_is_an_upper_bound_within_a_factor_of_two() -> None:
    got: list[tuple[str, dict[str, object]]] = []
    health = InputHealth(lambda name, rec: got.append((name, rec)), 1000)
    assert health.disorder_quantile(0.999) is None
    for gap in [1, 5, 5, 300, 2500]:  # largest time seen minus the event's (ms)
        health.emit("late", {"watermark": 10_000 - 1000 - 1, "event_time": 10_000 - gap})
    assert health.disorder_quantile(0.5) == 7 and health.disorder_quantile(1.0) == 4095
    assert len(got) == 5
