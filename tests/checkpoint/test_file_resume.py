"""File-mode checkpoints: a ``cep run`` killed with SIGKILL at random moments and rerun with
the same command ends with output files byte-identical to those of an uninterrupted run."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "tests" / "kafka" / "rules" / "brute_force.cep"


def _events(path: Path, n: int, users: int, seed: int) -> None:
    """Failed and successful logins; each user's failures come in runs long enough to cross
    checkpoints, so restored partial matches matter."""
    rng = random.Random(seed)
    with open(path, "wb") as fh:
        for i in range(n):
            ev = {"ts": 1_700_000_000_000 + i * 50, "user": f"u{rng.randrange(users)}",
                  "type": "login", "ok": rng.random() < 0.3}
            if i % 10_007 == 5:
                fh.write(b"{not json\n")  # dead letters are part of the exact output too
            fh.write(orjson.dumps(ev) + b"\n")


def _cmd(tmp: Path, out: str, checkpoints: bool = True) -> list[str]:
    rules = ["--config", str(tmp / "cep.toml")] if checkpoints else ["--rules", str(RULES)]
    return [sys.executable, "-m", "cep.cli", "run", *rules,
            "--input", str(tmp / "events.jsonl"), "--output", str(tmp / out),
            "--dead-letter", str(tmp / f"dead-{out}"), "-q"]


def test_killed_runs_resume_to_byte_identical_outputs(tmp_path: Path) -> None:
    _events(tmp_path / "events.jsonl", 150_000, 400, seed=3)
    (tmp_path / "cep.toml").write_text(
        f'[state]\ncheckpoint_dir = "{tmp_path / "ckpt"}"\ncheckpoint_interval = "50ms"\n'
        f'[rules]\npaths = ["{RULES}"]\n')
    # the reference: one uninterrupted run without checkpoints
    subprocess.run(_cmd(tmp_path, "ref.jsonl", checkpoints=False), cwd=ROOT, check=True)
    reference = (tmp_path / "ref.jsonl").read_bytes()
    assert reference.count(b"\n") > 100

    seed = int(os.environ.get("CEP_TEST_SEED", time.time()))
    rng = random.Random(seed)
    ckpt_dir = tmp_path / "ckpt"
    mid_run = 0
    for _ in range(6):
        proc = subprocess.Popen(_cmd(tmp_path, "out.jsonl"), cwd=ROOT)
        before = _newest(ckpt_dir)
        deadline = time.monotonic() + 60
        while proc.poll() is None and _newest(ckpt_dir) == before:  # wait for progress
            assert time.monotonic() < deadline, "no checkpoint written"
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.25))
        if proc.poll() is None:
            mid_run += 1
            proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    final = subprocess.run(_cmd(tmp_path, "out.jsonl"), cwd=ROOT)
    assert final.returncode == 0
    assert mid_run >= 3, f"only {mid_run} kills landed mid-run (seed {seed})"
    assert (tmp_path / "out.jsonl").read_bytes() == reference, f"seed {seed}"
    assert (tmp_path / "dead-out.jsonl").read_bytes() == \
        (tmp_path / "dead-ref.jsonl").read_bytes()
    # and a rerun of a finished run changes nothing
    again = subprocess.run(_cmd(tmp_path, "out.jsonl"), cwd=ROOT)
    assert again.returncode == 0
    assert (tmp_path / "out.jsonl").read_bytes() == reference


def test_a_truncated_input_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    _events(tmp_path / "events.jsonl", 2_000, 20, seed=4)
    (tmp_path / "cep.toml").write_text(
        f'[state]\ncheckpoint_dir = "{tmp_path / "ckpt"}"\n[rules]\npaths = ["{RULES}"]\n')
    assert subprocess.run(_cmd(tmp_path, "out.jsonl"), cwd=ROOT).returncode == 0
    (tmp_path / "events.jsonl").write_bytes(b'{"ts": 1, "user": "x"}\n')
    r = subprocess.run(_cmd(tmp_path, "out.jsonl"), cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 2
    assert "replaced or truncated" in r.stderr and "to start over" in r.stderr


def test_standard_input_cannot_be_checkpointed(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "cep.cli", "run", "--rules", str(RULES),
                        "--checkpoint-dir", str(tmp_path / "c")], cwd=ROOT, input="",
                       capture_output=True, text=True)
    assert r.returncode == 2 and "standard input" in r.stderr


def _newest(directory: Path) -> float:
    try:
        return max((p.stat().st_mtime_ns for p in directory.iterdir()), default=0)
    except FileNotFoundError:
        return 0


@pytest.fixture(autouse=True)
def _no_kafka_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CEP_KAFKA_BOOTSTRAP", raising=False)
