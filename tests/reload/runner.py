"""Helpers for end-to-end reload and operations tests: a running ``cep run`` child process
with its HTTP endpoints, a steady writer of events, and atomic rule-file edits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from tests.reload import rules as R

ROOT = Path(__file__).resolve().parents[2]


def write_rule(path: Path, text: str) -> float:
    """Replace ``path`` atomically (as editors do); returns the time of the rename."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return time.monotonic()


def wait_for(predicate: Callable[[], Any], timeout_s: float, what: str,
             poll_s: float = 0.02) -> Any:
    """Poll until ``predicate()`` is truthy; return its value.  Fails after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(poll_s)


def json_lines(path: Path) -> list[dict[str, Any]]:
    """Complete JSON lines of a file another process is still writing."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    end = data.rfind(b"\n")
    return [orjson.loads(line) for line in data[: end + 1].splitlines() if line.strip()]


class Feeder:
    """Appends events to a file at a steady rate from a thread: ``{"ts": <now ms>, "user":
    "u<n % users>", "kind": "tick", "amount": n * 37 % 200, "n": n}``; :meth:`inject` adds
    chosen events (stamped with the current time) to the next write."""

    def __init__(self, path: Path, rate: int = 500, users: int = 10,
                 sink: Callable[[list[bytes]], None] | None = None) -> None:
        self.path = path
        self.rate = rate
        self.users = users
        self.n = 0
        self.sink = sink
        self._extra: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="feeder", daemon=True)
        self.last_ts = 0

    def start(self) -> Feeder:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def inject(self, **event: Any) -> None:
        with self._lock:
            self._extra.append(event)

    def _next_ts(self) -> int:
        ts = max(int(time.time() * 1000), self.last_ts)
        self.last_ts = ts
        return ts

    def _run(self) -> None:
        started = time.monotonic()
        fh = None if self.sink is not None else open(self.path, "ab")  # noqa: SIM115
        try:
            while not self._stop.is_set():
                due = int((time.monotonic() - started) * self.rate)
                lines = []
                with self._lock:
                    extra, self._extra = self._extra, []
                for e in extra:
                    lines.append(orjson.dumps({"ts": self._next_ts(), **e}))
                while self.n < due:
                    n = self.n
                    lines.append(orjson.dumps({
                        "ts": self._next_ts(), "user": f"u{n % self.users}", "kind": "tick",
                        "amount": n * 37 % 200, "n": n}))
                    self.n += 1
                if lines:
                    if self.sink is not None:
                        self.sink(lines)
                    else:
                        assert fh is not None
                        fh.write(b"\n".join(lines) + b"\n")
                        fh.flush()
                time.sleep(0.01)
        finally:
            if fh is not None:
                fh.close()


class CepRun:
    """``cep run … --http 127.0.0.1:0 --log-format json`` as a child process; its log
    (standard error) goes to ``log``; the bound HTTP address is read from the log."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log_path = log
        self._log = open(log, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cep.cli", "run", *args, "--http", "127.0.0.1:0",
             "--log-format", "json"],
            stdout=subprocess.DEVNULL, stderr=self._log, cwd=ROOT,
            env={**os.environ, **(env or {})})
        self.base = wait_for(self._address, 30, "the HTTP endpoints")

    def _address(self) -> str | None:
        assert self.proc.poll() is None, f"cep exited early:\n{self.log()[-3000:]}"
        for rec in self.records():
            if rec.get("event") == "http":
                return f"http://{rec['host']}:{rec['port']}"
        return None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def records(self) -> list[dict[str, Any]]:
        """The JSON log records written so far (other lines skipped)."""
        out = []
        for line in self.log().splitlines():
            if line.startswith("{"):
                try:
                    out.append(orjson.loads(line))
                except orjson.JSONDecodeError:
                    continue
        return out

    def reloads(self) -> list[dict[str, Any]]:
        return [r for r in self.records() if r.get("event") == "reload"]

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.base + path, timeout=10) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    def post(self, path: str) -> tuple[int, dict[str, Any]]:
        req = urllib.request.Request(self.base + path, method="POST", data=b"")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, orjson.loads(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, orjson.loads(err.read())

    def status(self) -> dict[str, Any]:
        code, body = self.get("/status")
        assert code == 200, body
        doc: dict[str, Any] = orjson.loads(body)
        return doc

    def versions(self) -> dict[str, str]:
        return {r["name"]: r["version"] for r in self.status()["rules"]}

    def metrics(self) -> str:
        code, body = self.get("/metrics")
        assert code == 200, body
        return body.decode()

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def terminate(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self._log.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()


class RuleDir:
    """A directory of rule files edited as editors do, with every version written compiled
    (``compiled``: rule version → rule), for computing offline what a run should emit."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir()
        self.compiled: dict[str, Any] = {}

    def put(self, name: str, text: str) -> None:
        rule = R.compile_rule(text)
        self.compiled[rule.version] = rule
        write_rule(self.path / f"{name}.cep", text)

    def start(self) -> list[Any]:
        """The initial set: ``big`` and ``burst``; returns their compiled rules."""
        self.put("big", R.big(100))
        self.put("burst", R.burst(150))
        return list(self.compiled.values())

    def edit(self, i: int, rng: Any) -> None:
        """Edit round ``i``: new thresholds for ``big`` and ``burst``; ``tiny`` added in
        rounds 1, 5, 9 … and deleted in rounds 3, 7, 11 …"""
        self.put("big", R.big(rng.choice([60, 100, 140, 180])))
        self.put("burst", R.burst(rng.choice([100, 150, 170, 190])))
        if i % 4 == 1:
            self.put("tiny", R.tiny())
        elif i % 4 == 3:
            (self.path / "tiny.cep").unlink()
