"""Standard input, idle: ``/status`` and ``POST /-/reload`` answer while no line arrives.

``cep run --input -`` is started as a user would, with a pipe on its standard input that
stays open and silent; the input is read by a reader thread, so the pipeline thread keeps
serving status and reloads.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CEP = [sys.executable, "-m", "cep.cli"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _request(url: str, method: str = "GET", timeout: float = 5.0) -> tuple[int, str]:
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return resp.status, resp.read().decode()


def _wait_up(url: str, proc: subprocess.Popen[bytes], deadline_s: float = 20.0) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"cep exited early: {proc.stderr.read().decode()}")  # type: ignore[union-attr]
        try:
            _request(url + "/healthz", timeout=1.0)
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("the HTTP endpoint did not come up")


@pytest.mark.timeout(90)
def test_status_and_reload_answer_while_stdin_is_idle(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "examples" / "rules", rules)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [*CEP, "run", str(rules), "--input", "-", "--output", str(tmp_path / "alerts.jsonl"),
         "--http", f"127.0.0.1:{port}", "--quiet"],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        cwd=ROOT, env={**os.environ, "CEP_RELOAD_TOKEN": ""})
    assert proc.stdin is not None
    try:
        _wait_up(url, proc)
        # one event, then silence: the pipe stays open
        proc.stdin.write(b'{"ts": 1000, "user": "alice", "outcome": "failure"}\n')
        proc.stdin.flush()
        time.sleep(0.3)
        started = time.monotonic()
        status, body = _request(url + "/status")
        assert status == 200 and time.monotonic() - started < 3.0
        assert "login_brute_force" in json.loads(body).__repr__()
        started = time.monotonic()
        status, body = _request(url + "/-/reload", "POST", timeout=10.0)
        assert status == 200 and time.monotonic() - started < 8.0, body
        assert proc.poll() is None
    finally:
        proc.stdin.close()
        try:
            code = proc.wait(20)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert code == 0, proc.stderr.read().decode() if proc.stderr else ""  # type: ignore[union-attr]
