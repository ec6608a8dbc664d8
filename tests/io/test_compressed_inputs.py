"""Inputs as an analyst has them: compressed files, headerless CSV, odd timestamps, files
that are not what the flags say, and the shipped schema mappings — through ``cep``."""

from __future__ import annotations

import bz2
import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import zstandard

from cep.io.codecs import DeadLetter, parse_event_time, time_spec
from cep.io.sources import open_input, read_blocks, read_lines
from tests.realdata.engine_run import dataset

ROOT = Path(__file__).resolve().parents[2]
RULES = str(ROOT / "examples" / "rules")
EVENTS = ROOT / "examples" / "logins.jsonl"
COMPRESS = {"gz": gzip.compress, "bz2": bz2.compress,
            "zst": lambda b: zstandard.ZstdCompressor().compress(b)}


def cep(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "cep.cli", *args], capture_output=True,
                          cwd=ROOT, input=stdin, timeout=120, env={**os.environ, "COLUMNS": "80"})


def alerts_of(out: bytes) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


@pytest.mark.parametrize("kind", sorted(COMPRESS))
def test_compressed_input_gives_the_same_alerts(tmp_path: Path, kind: str) -> None:
    plain = cep("run", RULES, "-i", str(EVENTS), "-q")
    packed = tmp_path / f"events.{kind}"  # the name says nothing: the first bytes do
    packed.write_bytes(COMPRESS[kind](EVENTS.read_bytes()))
    out = cep("run", RULES, "-i", str(packed), "-q")
    assert out.returncode == 0, out.stderr
    assert alerts_of(out.stdout) == alerts_of(plain.stdout) and alerts_of(out.stdout)
    out = cep("replay", RULES, "-i", str(packed), "-q", "-o", "-")
    assert out.returncode == 0, out.stderr
    assert len(alerts_of(out.stdout)) == len(alerts_of(plain.stdout))


@pytest.mark.parametrize("kind", sorted(COMPRESS))
def test_line_readers_and_oversized_lines_on_compressed_streams(tmp_path: Path,
                                                                kind: str) -> None:
    lines = [b'{"ts": 1}', b"x" * 5000, b'{"ts": 2}', b""]
    path = tmp_path / "f"
    path.write_bytes(COMPRESS[kind](b"\n".join(lines)))
    with open_input(str(path)) as fh:
        got = [n for n, _ in read_lines(fh, max_line=1000)]
    assert got == [1, 2, 3]
    with open_input(str(path)) as fh:
        blocks = list(read_blocks(fh, size=64, max_line=1000))
    assert [type(b).__name__ for b in blocks].count("OversizedLine") == 1


def test_truncated_gzip_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "cut.gz"
    path.write_bytes(gzip.compress(EVENTS.read_bytes())[:200])
    out = cep("run", RULES, "-i", str(path), "-q")
    assert out.returncode == 2 and b"cannot read" in out.stderr


def test_headerless_csv_with_columns_and_a_strptime_time(tmp_path: Path) -> None:
    rows = [f"2024010100{i:02d},alice,login,failure" for i in range(5)]
    path = tmp_path / "logins.txt.gz"
    path.write_bytes(gzip.compress(("\n".join(rows) + "\n").encode()))
    args = ["run", RULES, "-i", str(path), "--columns", "when,user,action,outcome",
            "--event-time", "when", "--time-format", "%Y%m%d%H%M", "-q"]
    out = cep(*args)
    assert out.returncode == 0, out.stderr
    (alert,) = [a for a in alerts_of(out.stdout) if a["rule"] == "login_brute_force"]
    assert alert["key"] == {"user": "alice"}
    out = cep(*args[:-1], "--input-format", "json")
    assert out.returncode == 2 and b"--columns" in out.stderr
    out = cep("run", RULES, "-i", str(path), "--time-format", "%Q")
    assert out.returncode == 2 and b"%Q" in out.stderr


def test_a_file_of_dead_letters_exits_3_with_the_first_reasons(tmp_path: Path) -> None:
    rows = "\n".join(f"2024010100{i:02d},alice,login,failure" for i in range(9)) + "\n"
    path = tmp_path / "nasdaq.txt"
    path.write_text(rows)
    out = cep("run", RULES, "-i", str(path))
    assert out.returncode == 3
    err = out.stderr.decode()
    assert "no event read" in err and "line 1: malformed" in err
    assert err.count("malformed") == 5  # the first few, not all nine
    (tmp_path / "empty.jsonl").write_bytes(b"")
    assert cep("run", RULES, "-i", str(tmp_path / "empty.jsonl"), "-q").returncode == 0


def test_named_time_formats_and_the_valid_domain() -> None:
    assert time_spec("t", "ms", "epoch_s").unit == "s"
    assert time_spec("t", "ms", "iso").unit == "iso"
    spec = time_spec("t", "ms", "%Y%m%d%H%M")
    assert parse_event_time(200802010900, spec.unit, spec.pattern) == 1201856400000
    assert parse_event_time("200802010900", spec.unit, spec.pattern) == 1201856400000
    for bad in ("2008", None, 1.5, True, "x" * 100, [1]):
        assert isinstance(parse_event_time(bad, spec.unit, spec.pattern), DeadLetter)
    with pytest.raises(ValueError):
        time_spec("t", "ms", "yyyymmdd")


def test_test_yaml_with_compressed_headerless_input(tmp_path: Path) -> None:
    (tmp_path / "r.cep").write_text((ROOT / "examples/rules/login.cep").read_text())
    rows = [f"2024010100{i:02d},alice,login,failure" for i in range(5)]
    (tmp_path / "in.csv.zst").write_bytes(
        zstandard.ZstdCompressor().compress(("\n".join(rows) + "\n").encode()))
    (tmp_path / "r.test.yaml").write_text(
        "time_format: '%Y%m%d%H%M'\n"
        "event_time: when\n"
        "tests:\n"
        "  - name: five failures\n"
        "    input_file: in.csv.zst\n"
        "    columns: [when, user, action, outcome]\n"
        "    expect: [{rule: login_brute_force, key: {user: alice}}]\n"
        "    expect_timeouts: []\n")
    out = cep("test", str(tmp_path))
    assert out.returncode == 0, out.stdout + out.stderr


def test_config_columns_and_time_format(tmp_path: Path) -> None:
    rows = [f"2024010100{i:02d},alice,login,failure" for i in range(5)]
    (tmp_path / "in.txt").write_text("\n".join(rows) + "\n")
    (tmp_path / "cep.toml").write_text(
        f'[rules]\npaths = ["{RULES}"]\n'
        '[sources.logins]\nkind = "file"\npath = "in.txt"\nformat = "csv"\n'
        'columns = ["when", "user", "action", "outcome"]\nevent_time = "when"\n'
        'time_format = "%Y%m%d%H%M"\n')
    out = cep("run", "-c", str(tmp_path / "cep.toml"), "-q")
    assert out.returncode == 0, out.stderr
    assert any(a["rule"] == "login_brute_force" for a in alerts_of(out.stdout))
    from cep.config import parse_config
    from cep.errors import ConfigError

    with pytest.raises(ConfigError, match="columns is for CSV"):
        parse_config('[sources.a]\nkind = "file"\npath = "x"\ncolumns = ["a"]\n')
    with pytest.raises(ConfigError, match="time_format"):
        parse_config('[sources.a]\nkind = "file"\npath = "x"\ntime_format = "daily"\n')


@pytest.mark.shared
def test_cep_map_keeps_the_sysmon_process_fields(tmp_path: Path) -> None:
    raw = dataset("windows-security-mordor/purplesharp_ad_playbook_I_2020-10-22042947.json.gz")
    out = cep("map", "windows-raw", str(raw), "-o", str(tmp_path / "w.jsonl"))
    assert out.returncode == 0, out.stderr
    events = [json.loads(line) for line in (tmp_path / "w.jsonl").open()]
    sysmon = [e for e in events if e["winlog"].get("event_id") == 1
              and "sysmon" in e["event"]["dataset"]]
    assert sysmon
    data = sysmon[0]["winlog"]["event_data"]
    assert {"Image", "ParentImage", "CommandLine"} <= set(data)
    out = cep("map", "nope", str(raw))
    assert out.returncode == 2 and b"ssh" in out.stderr


@pytest.mark.shared
def test_cep_map_pipes_into_cep_run() -> None:
    src = dataset("ssh-auth-logs/events.csv")
    mapped = cep("map", "ssh", str(src))
    assert mapped.returncode == 0
    first = json.loads(mapped.stdout.splitlines()[0])
    assert first["ts"] > 0 and first["log"]["file"]["line"] == 1
    out = cep("run", "rules/login", "--input", "-", "-q", stdin=mapped.stdout)
    assert out.returncode == 0 and alerts_of(out.stdout)
