"""The reload machinery in process: the pipeline hand-over, the all-or-nothing reloader, the
file watcher, the HTTP server's address handling and the log formats."""

from __future__ import annotations

import io
import logging
import socket
import threading
import time
from pathlib import Path

import orjson
import pytest

from cep.app.logs import setup_logging
from cep.app.ops import Operations, parse_address
from cep.app.reload import Control, Reloader, RuleWatcher
from cep.compiler.compiled import CompiledRule
from cep.errors import ConfigError
from cep.operator.versions import ReloadReport
from tests.reload import rules as R
from tests.reload.runner import wait_for, write_rule


def test_control_runs_requests_on_the_servicing_thread_only() -> None:
    control = Control()
    seen: list[str] = []
    result: list[int] = []
    caller = threading.Thread(target=lambda: result.append(
        control.call(lambda: seen.append(threading.current_thread().name) or 7)))
    caller.start()
    wait_for(lambda: control.pending, 2, "the request")
    assert seen == []  # nothing runs until the pipeline services it
    control.service()
    caller.join(2)
    assert seen == [threading.current_thread().name] and result == [7]
    assert not control.pending


def test_a_request_that_timed_out_is_not_run_later() -> None:
    control = Control()
    ran: list[int] = []
    with pytest.raises(TimeoutError):
        control.call(lambda: ran.append(1), timeout=0.05)
    control.service()
    assert ran == []


class Recorder:
    """A pipeline stand-in: applies rule sets on a servicing thread and remembers them."""

    def __init__(self) -> None:
        self.control = Control()
        self.applied: list[list[str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            if self.control.pending:
                self.control.service()
            time.sleep(0.005)

    def apply(self, rules: list[CompiledRule]) -> ReloadReport:
        self.applied.append(sorted(r.version for r in rules))
        return ReloadReport(versions={r.name: r.version for r in rules})

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)


def test_a_broken_rule_set_is_not_applied_and_its_errors_are_kept(tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture
                                                                   ) -> None:
    write_rule(tmp_path / "big.cep", R.big(10))
    write_rule(tmp_path / "pair.cep", R.BROKEN_PAIR)
    pipe = Recorder()
    reloader = Reloader([str(tmp_path)], pipe.control, pipe.apply, [])
    try:
        with caplog.at_level(logging.ERROR, logger="cep.reload"):
            result = reloader.reload_now("test")
        assert not result.ok and pipe.applied == []
        (err,) = result.errors
        assert (Path(err["file"]).name, err["line"], err["col"]) == ("pair.cep", *R.BROKEN_AT)
        assert any(m.startswith(f"{err['file']}:5:27: error:") for m in caplog.messages)
        assert reloader.state.failed == 1 and not reloader.state.last_ok
        assert reloader.state.errors_by_file == {err["file"]: 1}

        write_rule(tmp_path / "pair.cep", R.pair())
        result = reloader.reload_now("test")
        assert result.ok and len(pipe.applied) == 1 and reloader.state.errors_by_file == {}
        assert reloader.last_success is result

        for f in tmp_path.glob("*.cep"):
            f.unlink()
        result = reloader.reload_now("test")
        assert not result.ok and result.errors[0]["message"] == "no rules found"
        assert len(pipe.applied) == 1
    finally:
        pipe.stop()


def test_requests_are_coalesced_and_signals_are_picked_up(tmp_path: Path) -> None:
    write_rule(tmp_path / "big.cep", R.big(10))
    pipe = Recorder()
    reloader = Reloader([str(tmp_path)], pipe.control, pipe.apply, [])
    reloader.start()
    try:
        tickets = [reloader.request(f"r{i}") for i in range(5)]
        result = reloader.wait(tickets[-1], 5)
        assert result is not None and result.ok
        assert 1 <= len(pipe.applied) <= 2  # one reload serves requests made meanwhile
        n = len(pipe.applied)
        reloader.request_from_signal()
        wait_for(lambda: reloader.last is not None and reloader.last.reason == "SIGHUP", 2,
                 "the signalled reload")
        assert len(pipe.applied) == n + 1
    finally:
        reloader.stop()
        pipe.stop()


def test_the_watcher_reacts_to_rule_files_only_and_catches_up_on_startup(
        tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    (rules / "sub").mkdir(parents=True)
    write_rule(rules / "a.cep", "x")
    changes: list[str] = []
    watcher = RuleWatcher([str(rules)], changes.append)
    write_rule(rules / "a.cep", "changed before the watch was in place")
    watcher.start()
    try:
        wait_for(lambda: changes, 2, "the startup catch-up")
        assert changes == ["file change while starting"]
        (rules / "notes.txt").write_text("not a rule file")
        write_rule(rules / "sub" / "b.cep", "y")
        wait_for(lambda: len(changes) == 2, 2, "the change")
        assert changes[1] == "file change: b.cep"
        (rules / "sub" / "b.cep").unlink()
        wait_for(lambda: len(changes) == 3, 2, "the deletion")
        time.sleep(0.3)
        assert len(changes) == 3
    finally:
        watcher.stop()


def test_a_single_rule_file_is_watched_through_its_directory(tmp_path: Path) -> None:
    rule = tmp_path / "one.cep"
    write_rule(rule, "x")
    changes: list[str] = []
    watcher = RuleWatcher([str(rule)], changes.append)
    watcher.start()
    try:
        time.sleep(0.3)
        write_rule(tmp_path / "other.cep", "not watched")
        write_rule(rule, "y")
        wait_for(lambda: changes, 2, "the change")
        time.sleep(0.2)
        assert changes == ["file change: one.cep"]
    finally:
        watcher.stop()


def test_http_addresses(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert parse_address("127.0.0.1:9464") == ("127.0.0.1", 9464)
    assert parse_address(":80") == ("127.0.0.1", 80)  # every interface only when asked for
    assert parse_address("0.0.0.0:80") == ("0.0.0.0", 80)
    assert parse_address("[::1]:9") == ("::1", 9)
    with pytest.raises(ConfigError):
        parse_address("localhost")
    write_rule(tmp_path / "big.cep", R.big(1))
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    address = f"127.0.0.1:{busy.getsockname()[1]}"
    try:
        for required in (True, False):
            ops = Operations("file", [str(tmp_path)], [], watch=False, http=address,
                             http_required=required)
            ops.bind(Control(), lambda: None, lambda rules: ReloadReport())  # type: ignore
            if required:
                with pytest.raises(ConfigError, match="cannot serve HTTP"):
                    ops.start()
            else:
                with caplog.at_level(logging.WARNING, logger="cep.ops"):
                    ops.start()
                assert ops.server is None and "cannot serve HTTP" in caplog.text
            ops.stop()
    finally:
        busy.close()


def test_log_formats() -> None:
    root, cep_logger = logging.getLogger(), logging.getLogger("cep")
    saved = (root.handlers[:], root.level, cep_logger.level)
    stream = io.StringIO()
    setup_logging("json", logging.INFO, stream)
    try:
        logging.getLogger("cep.test").info("hello %s", "there", extra={"fields": {"x": 1}})
        doc = orjson.loads(stream.getvalue())
        assert doc["message"] == "hello there" and doc["x"] == 1
        assert doc["level"] == "info" and doc["logger"] == "cep.test"
        assert doc["ts"].endswith("Z")
        stream.truncate(0)
        stream.seek(0)
        setup_logging("text", logging.INFO, stream)
        logging.getLogger("cep.test").warning("plain")
        assert stream.getvalue().rstrip().endswith("WARNING cep.test: plain")
        with pytest.raises(ValueError):
            setup_logging("xml")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        cep_logger.setLevel(saved[2])
