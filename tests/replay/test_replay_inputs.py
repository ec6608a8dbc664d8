"""`cep replay` reads inputs as `cep run` does: compressed files, headerless CSV with
--columns, odd timestamps with --time-format (typed as a user would, in a subprocess)."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

RULE = """rule any_x
  key by user
  pattern
    begin a where action == "x"
end
"""


def _replay(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp / "r.cep").write_text(RULE)
    return subprocess.run(
        [sys.executable, "-m", "cep.cli", "replay", str(tmp / "r.cep"), "-o", "-", "-q",
         *args], capture_output=True, text=True)


def test_replay_reads_a_gzip_headerless_csv_with_columns_and_a_time_format(
        tmp_path: Path) -> None:
    rows = "202602010900,alice,x\n202602010901,bob,y\n202602010902,carol,x\n"
    (tmp_path / "in.csv.gz").write_bytes(gzip.compress(rows.encode()))
    for compare in (False, True):
        extra = ["--compare", str(tmp_path / "r.cep"), str(tmp_path / "r.cep"),
                 "--report", str(tmp_path / "report.json")] if compare else []
        args = ["--input", str(tmp_path / "in.csv.gz"), "--columns", "ts,user,action",
                "--time-format", "%Y%m%d%H%M", *extra]
        proc = _replay(tmp_path, *args) if not compare else subprocess.run(
            [sys.executable, "-m", "cep.cli", "replay", "-q", *args],
            capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        if compare:
            report = json.loads((tmp_path / "report.json").read_text())
            assert report["events"] == 3 and report["dead_letters"] == 0
            continue
        alerts = [json.loads(line) for line in proc.stdout.splitlines()]
        assert [(a["key"]["user"], a["start"]) for a in alerts] == [
            ("alice", 1769936400000), ("carol", 1769936520000)]


def test_replay_refuses_a_time_format_strptime_rejects(tmp_path: Path) -> None:
    (tmp_path / "in.jsonl").write_text('{"ts":"x","user":"u","action":"x"}\n')
    proc = _replay(tmp_path, "--input", str(tmp_path / "in.jsonl"), "--time-format", "%Q%Q")
    assert proc.returncode == 2 and "--time-format" in proc.stderr
