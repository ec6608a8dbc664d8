"""The HTTP side of a long run under hostile input, over real 127.0.0.1 sockets: what a
reload may disclose, who may ask for one, which Host and Origin are served, how many
connections and how slow, and how often a reload runs."""

from __future__ import annotations

import http.client
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cep.app.metrics import EngineSnapshot, RunMetrics
from cep.app.ops import TOKEN_ENV, Operations
from cep.app.ops_http import HttpLimits
from cep.app.reload import Control, Reloader
from cep.app.rule_compiler import compile_with_deadline
from cep.operator.versions import ReloadReport
from tests.reload.runner import CepRun, wait_for, write_rule

RULE = "rule r\n  pattern\n    begin a where x == 1\nend\n"
SECRET = "hunter2-in-the-environment"


def test_a_link_to_the_process_environment_is_refused_not_echoed(tmp_path: Path) -> None:
    """D08: a symbolic link in the rule directory to /proc/self/environ (or /etc/passwd) is
    reported by name; its content appears in no answer, no status and no log line."""
    rules, inp = tmp_path / "rules", tmp_path / "in.jsonl"
    rules.mkdir()
    write_rule(rules / "r.cep", RULE)
    inp.touch()
    cep = CepRun(["--rules", str(rules), "--input", str(inp), "--follow", "-o", "/dev/null"],
                 tmp_path / "cep.log", env={"DEMO_SECRET": SECRET})
    try:
        (rules / "env.cep").symlink_to("/proc/self/environ")
        (rules / "passwd.cep").symlink_to("/etc/passwd")
        code, doc = cep.post("/-/reload")
        assert code == 422
        assert sorted(Path(e["file"]).name for e in doc["errors"]) == ["env.cep", "passwd.cep"]
        assert all("outside the rule directories" in e["message"] for e in doc["errors"])
        status = cep.get("/status")[1].decode()
        assert "env.cep" in status
        for shown in (str(doc), status, cep.log()):
            assert SECRET not in shown and "root:x:0:0" not in shown
        assert cep.versions() == {"r": cep.versions()["r"]}  # the running rule stays
    finally:
        cep.kill()


# --------------------------------------------------------------------------- in process


class Served:
    """:class:`Operations` serving real HTTP on ``http``, with a thread standing in for the
    pipeline (it services the control and counts the rule sets applied)."""

    def __init__(self, tmp: Path, http: str = "127.0.0.1:0", token: str | None = None,
                 limits: HttpLimits | None = None, min_interval_s: float = 0.0) -> None:
        rules = tmp / "rules"
        rules.mkdir(exist_ok=True)
        write_rule(rules / "r.cep", RULE)
        self.applied = 0
        self.control = Control()
        self.ops = Operations("file", [str(rules)], [], watch=False, http=http,
                              reload_token=token, http_limits=limits)
        self.ops.bind(self.control, lambda: EngineSnapshot(mode="file", metrics=RunMetrics()),
                      self._apply)
        assert self.ops.reloader is not None
        self.ops.reloader.min_interval_s = min_interval_s
        self.ops.start()
        assert self.ops.server is not None
        self.host, self.port = self.ops.server.address
        self._stop = threading.Event()
        self._pipeline = threading.Thread(target=self._service, daemon=True)
        self._pipeline.start()

    def _apply(self, rules: list[object]) -> ReloadReport:
        self.applied += 1
        return ReloadReport()

    def _service(self) -> None:
        while not self._stop.wait(0.005):
            self.control.service()

    def request(self, method: str, path: str, headers: dict[str, str] | None = None,
                body: bytes | None = None) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def close(self) -> None:
        self.ops.stop()
        self._stop.set()
        self._pipeline.join(2)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Callable[..., Served]]:
    made: list[Served] = []

    def make(**kw: Any) -> Served:
        made.append(Served(tmp_path, **kw))
        return made[-1]

    yield make
    for s in made:
        s.close()


def test_a_bare_port_binds_loopback_and_every_interface_only_when_asked(
        served: Callable[..., Served]) -> None:
    """D12: ``--http :PORT`` served every interface; it is loopback now."""
    assert served(http=":0").host == "127.0.0.1"
    assert served(http="0.0.0.0:0", token="t").host == "0.0.0.0"


def test_a_foreign_host_is_misdirected(served: Callable[..., Served]) -> None:
    """D12: a DNS-rebinding page (Host: rebind.evil.example) cannot read /status."""
    s = served()
    assert s.request("GET", "/status", {"Host": "rebind.evil.example"})[0] == 421
    assert s.request("GET", "/metrics", {"Host": "rebind.evil.example:80"})[0] == 421
    assert s.request("POST", "/-/reload", {"Host": "evil.example"})[0] == 421
    for host in (f"127.0.0.1:{s.port}", f"localhost:{s.port}", "localhost", "[::1]:1",
                 "10.1.2.3:9464"):
        code, body = s.request("GET", "/status", {"Host": host})
        assert code == 200 and b'"mode": "file"' in body, host
    assert s.applied == 0


def test_a_cross_origin_reload_is_refused(served: Callable[..., Served]) -> None:
    """D12: a page elsewhere POSTing a simple form to /-/reload (CSRF) is refused, and no
    reload runs; the server's own origin (or none, as from curl) is served."""
    s = served()
    code, body = s.request("POST", "/-/reload", {
        "Origin": "http://evil.example", "Content-Type": "text/plain"}, b"x")
    assert code == 403 and b"cross-origin" in body
    assert s.request("POST", "/-/reload", {"Origin": "null"})[0] == 403
    assert s.request("POST", "/-/reload", {
        "Origin": f"http://localhost:{s.port + 1}", "Host": f"localhost:{s.port}"})[0] == 403
    assert s.applied == 0
    assert s.request("POST", "/-/reload", {"Origin": f"http://127.0.0.1:{s.port}"})[0] == 200
    assert s.request("POST", "/-/reload")[0] == 200
    assert s.applied == 2


def test_beyond_loopback_a_reload_needs_the_token(served: Callable[..., Served]) -> None:
    open_ = served(http="0.0.0.0:0")
    code, body = open_.request("POST", "/-/reload")
    assert code == 403 and b"CEP_RELOAD_TOKEN" in body
    assert open_.request("GET", "/healthz")[0] == 200  # reading stays open
    guarded = served(http="0.0.0.0:0", token="s3cret-token")
    assert guarded.request("POST", "/-/reload")[0] == 401
    for wrong in ("Bearer s3cret", "Bearer s3cret-token2", "Basic s3cret-token",
                  "s3cret-token"):
        assert guarded.request("POST", "/-/reload", {"Authorization": wrong})[0] == 401, wrong
    assert open_.applied == guarded.applied == 0
    ok = guarded.request("POST", "/-/reload", {"Authorization": "Bearer s3cret-token"})
    assert ok[0] == 200 and guarded.applied == 1


def test_the_token_is_read_from_the_environment_and_required_on_loopback_too(
        served: Callable[..., Served], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, "from-env")
    s = served()
    assert s.request("POST", "/-/reload")[0] == 401
    assert s.request("POST", "/-/reload", {"Authorization": "bearer from-env"})[0] == 200


def test_half_open_connections_cost_no_thread_and_are_closed(
        served: Callable[..., Served]) -> None:
    """D12: 300 connections that never finish their request made 300 threads; now they
    cost a socket each (at most ``connections`` accepted), and idle ones are closed."""
    s = served(limits=HttpLimits(connections=32, idle_timeout_s=1, cleanup_interval_s=1))
    before = threading.active_count()
    socks = []
    for i in range(300):
        sock = socket.create_connection(("127.0.0.1", s.port), timeout=5)
        if i % 2:
            sock.sendall(b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never ends
        socks.append(sock)
    time.sleep(0.5)
    assert threading.active_count() <= before + 1
    first = socks[0]
    first.settimeout(5)
    started = time.monotonic()
    assert first.recv(1) == b""  # closed by the server after its idle timeout
    assert time.monotonic() - started < 4.5
    for sock in socks:
        sock.close()
    code, _ = s.request("GET", "/healthz")
    assert code == 200


def test_a_flood_of_reload_requests_is_coalesced(served: Callable[..., Served]) -> None:
    """D12: 40 POST /-/reload from 8 clients run a handful of reloads, at most one per
    ``min_interval_s``; every request gets the answer of the reload that served it."""
    s = served(min_interval_s=0.3)
    codes: list[int] = []
    lock = threading.Lock()

    def client() -> None:
        for _ in range(5):
            code = s.request("POST", "/-/reload")[0]
            with lock:
                codes.append(code)

    started = time.monotonic()
    clients = [threading.Thread(target=client) for _ in range(8)]
    for c in clients:
        c.start()
    for c in clients:
        c.join(60)
    elapsed = time.monotonic() - started
    assert codes == [200] * 40
    assert s.applied <= elapsed / 0.3 + 1
    assert s.applied < 15


# --------------------------------------------------------------------------- the reload worker


def test_a_reload_that_never_ends_is_stopped_and_later_reloads_work(tmp_path: Path) -> None:
    """D06: a reload stuck compiling (here: reading a named pipe nobody writes) no longer
    wedges the worker for good; its compiler is killed at the deadline and the next reload
    is applied."""
    rules, stuck = tmp_path / "rules", tmp_path / "stuck.cep"
    rules.mkdir()
    write_rule(rules / "r.cep", RULE)
    os.mkfifo(stuck)
    control, applied = Control(), []
    reloader = Reloader([str(rules), str(stuck)], control,
                        lambda rules: applied.append(rules) or ReloadReport(), [],
                        min_interval_s=0.0, compile_deadline_s=1.5)
    stop = threading.Event()
    pipeline = threading.Thread(target=lambda: [control.service() for _ in iter(
        lambda: stop.wait(0.005), True)], daemon=True)
    pipeline.start()
    reloader.start()
    try:
        started = time.monotonic()
        result = reloader.wait(reloader.request("test"), 10)
        assert result is not None and not result.ok
        assert time.monotonic() - started < 5
        (err,) = result.errors
        assert "took longer than 1.5 s" in err["message"] and applied == []
        stuck.unlink()
        write_rule(stuck, RULE.replace("rule r", "rule s"))
        result = reloader.wait(reloader.request("test"), 10)
        assert result is not None and result.ok
        assert sorted(r.name for r in applied[0]) == ["r", "s"]
    finally:
        reloader.stop()
        stop.set()


def test_a_rule_with_a_huge_times_cannot_hold_a_reload_past_its_deadline(
        tmp_path: Path) -> None:
    """D06: ``times 1000000`` took O(N²) to compile; a reload of it ends by the deadline
    (as an error, or as whatever the compiler makes of it if it is quick)."""
    (tmp_path / "t.cep").write_text(
        "rule t\n  pattern\n    begin a where x == 1 times 1000000\nend\n")
    started = time.monotonic()
    rs = compile_with_deadline([str(tmp_path)], deadline_s=2.0)
    assert time.monotonic() - started < 4
    if not rs.ok:
        assert rs.errors and all(d.file for d in rs.errors)


def test_stopping_while_reloads_wait_for_the_pipeline_ends_at_once(tmp_path: Path) -> None:
    """A flood of reloads at the end of a run: the pipeline has stopped servicing requests,
    so the reload waiting to be applied is dropped and its waiters answered, instead of
    holding the end of the run for the worker's and the server's timeouts."""
    rules = tmp_path / "rules"
    rules.mkdir()
    write_rule(rules / "r.cep", RULE)
    ops = Operations("file", [str(rules)], [], watch=False, http="127.0.0.1:0")
    ops.bind(Control(), lambda: EngineSnapshot(mode="file", metrics=RunMetrics()),
             lambda rules: ReloadReport())  # nobody services this control: it never applies
    ops.start()
    assert ops.server is not None and ops.reloader is not None
    port = ops.server.address[1]
    answers: list[int] = []

    def post() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("POST", "/-/reload")
        answers.append(conn.getresponse().status)

    tickets: list[int] = []
    request = ops.reloader.request

    def counted(reason: str) -> int:  # each client's request, once the server has taken it
        tickets.append(request(reason))
        return tickets[-1]

    ops.reloader.request = counted  # type: ignore[method-assign]
    clients = [threading.Thread(target=post) for _ in range(4)]
    for c in clients:
        c.start()
    wait_for(lambda: len(tickets) == 4 and ops.reloader is not None
             and ops.reloader.control.pending, 10,
             "four requests taken and a reload waiting for the pipeline")
    started = time.monotonic()
    ops.stop()
    for c in clients:
        c.join(5)
    assert time.monotonic() - started < 2
    assert answers == [504] * 4
