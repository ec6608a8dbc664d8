"""``cep replay --input`` runs on ``cep run``'s batched path: the same
alerts as ``cep run`` over the peers' generated events, whole or split into files read one
after the other, with the progress bar drawn; and the replay really goes through
:func:`cep.app.pipeline.run_chunks`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cep.app import pipeline
from cep.app.replay import ReplayOptions, replay_files
from cep.app.rules import load_rule_set

pytestmark = pytest.mark.shared  # the public datasets of ../shared/data

ROOT = Path(__file__).resolve().parents[2]
PEERS = ROOT.parent / "shared" / "peers"


def cep(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cep.cli", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=300)


def _alerts(path: Path) -> list[tuple[str, str, str]]:
    """``(rule, key, matched events)`` per alert, sorted (alert ids hold line numbers, which
    restart with each file)."""
    out = []
    for line in path.read_text().splitlines():
        r: dict[str, Any] = json.loads(line)
        out.append((r["rule"], json.dumps(r["key"], sort_keys=True),
                    json.dumps(r["match"], sort_keys=True)))
    return sorted(out)


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (PEERS / "gen_events.py").exists():
        pytest.skip("the peers' event generator is not present")
    out = tmp_path_factory.mktemp("ev") / "events.jsonl"
    subprocess.run([sys.executable, str(PEERS / "gen_events.py"), "--events", "60000",
                    "--users", "2000", "--seed", "7", "--out", str(out)], check=True,
                   capture_output=True, timeout=300)
    return out


def test_replay_of_files_equals_cep_run(events: Path, tmp_path: Path) -> None:
    rules = str(PEERS / "patterns.cep")
    run_out, replay_out = tmp_path / "run.jsonl", tmp_path / "replay.jsonl"
    res = cep("run", "-r", rules, "-i", str(events), "-o", str(run_out))
    assert res.returncode == 0, res.stderr
    expected = _alerts(run_out)
    assert len({a[0] for a in expected}) >= 3 and len(expected) > 100

    res = cep("replay", "-r", rules, "-i", str(events), "-o", str(replay_out), "--progress")
    assert res.returncode == 0, res.stderr
    assert _alerts(replay_out) == expected
    assert "events/s" in res.stderr and "100%" in res.stderr  # the bar, drawn to the end
    assert "60,000 events" in res.stdout  # the summary

    # the same events as two files, read one after the other as one source
    lines = events.read_bytes().splitlines(keepends=True)
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    first.write_bytes(b"".join(lines[:25_000]))
    second.write_bytes(b"".join(lines[25_000:]))
    split_out = tmp_path / "split.jsonl"
    res = cep("replay", "-r", rules, "-i", str(first), "-i", str(second),
              "-o", str(split_out), "-q")
    assert res.returncode == 0, res.stderr
    assert _alerts(split_out) == expected


def test_replay_of_json_lines_uses_the_chunk_loop(events: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = pipeline.run_chunks

    def spy(*args: Any, **kwargs: Any) -> tuple[int, int]:
        calls.append(args[1].path)
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "run_chunks", spy)
    rules = load_rule_set([str(PEERS / "patterns.cep")]).rules
    s = replay_files([str(events)], ReplayOptions([rules]))
    assert calls == [str(events)] and s.events == 60_000
