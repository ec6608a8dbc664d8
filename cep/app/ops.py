"""Operating a long run: reload triggers, metrics, status, and the HTTP endpoints.

:class:`Operations` gathers what a ``cep run`` that keeps running offers its operators:
the :class:`~cep.app.reload.Reloader` (with its file watcher), the run's
:class:`~cep.app.metrics.RunMetrics` and a per-run Prometheus registry, and an HTTP server
(a daemon thread) with

* ``GET /metrics`` — Prometheus text format;
* ``GET /healthz`` — ``200 ok`` while the run is up;
* ``GET /status`` — JSON: rules with versions, draining versions, the last reload and its
  errors, watermarks per input, events per source, consumer lag (Kafka);
* ``POST /-/reload`` — reload now; ``200`` with the reload report when it was applied, ``422``
  with the errors when the rule files have errors (the running rules stay), ``504`` when the
  pipeline did not get to it within 30 s (it is applied later).

The pipeline binds it with :meth:`Operations.bind`: a function that snapshots its operators and
one that applies a new rule set, both run on the pipeline thread through a
:class:`~cep.app.reload.Control`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST

from cep.app.metrics import (
    EngineCollector,
    EngineSnapshot,
    ReloadState,
    RunMetrics,
    new_registry,
    render,
)
from cep.app.reload import Apply, Control, Reloader, ReloadResult, RuleWatcher
from cep.compiler.compiled import CompiledRule
from cep.errors import ConfigError

__all__ = ["Operations", "OpsServer", "parse_address"]

log = logging.getLogger("cep.ops")


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT``; ``:PORT`` means all interfaces) → ``(host, port)``.
    Raises :class:`ConfigError` for anything else."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"not an HTTP address: {text!r} (use HOST:PORT, e.g. 127.0.0.1:9464)")
    return host.strip("[]") or "0.0.0.0", int(port)


class Operations:
    """The operator-facing side of one run.

    Args:
        mode: ``file`` or ``kafka`` (shown in ``/status``).
        rule_paths: the rule files and directories to reload from.
        rules: the rule set the run starts with.
        watch: reload when a rule file changes.
        http: ``HOST:PORT`` to serve the endpoints on, or ``None``.
        http_required: when the address cannot be bound, fail (``True``, an address the
            user asked for) or log a warning and run without the endpoints (a default).
    """

    def __init__(self, mode: str, rule_paths: list[str], rules: list[CompiledRule],
                 watch: bool = True, http: str | None = None,
                 http_required: bool = True) -> None:
        self.mode = mode
        self.http_required = http_required
        self.rule_paths = list(rule_paths)
        self.rules = list(rules)
        self.watch = watch
        self.http = http
        self.metrics = RunMetrics()
        self.registry = new_registry(EngineCollector(self.observe))
        self.started = time.time()
        self.reloader: Reloader | None = None
        self.control: Control | None = None
        self.server: OpsServer | None = None
        self._watcher: RuleWatcher | None = None
        self._snapshot: Callable[[], EngineSnapshot] | None = None
        self._last_snapshot: EngineSnapshot | None = None
        self._file_of = {r.name: (r.file, r.line) for r in rules}

    # ------------------------------------------------------------------ lifecycle

    def bind(self, control: Control, snapshot: Callable[[], EngineSnapshot],
             apply: Apply) -> None:
        """Connect the pipeline: ``snapshot()`` and ``apply(rules)`` run on its thread
        through ``control``."""
        self.control = control
        self._snapshot = snapshot

        def apply_and_remember(rules: list[CompiledRule]) -> Any:
            report = apply(rules)
            self._file_of = {r.name: (r.file, r.line) for r in rules}
            return report

        self.reloader = Reloader(self.rule_paths, control, apply_and_remember, self.rules)

    def file_of(self, rule: str) -> tuple[str, int]:
        """Where the running version of ``rule`` was defined: ``(file, line)``."""
        return self._file_of.get(rule, ("", 0))

    def start(self) -> None:
        """Start the HTTP server (when ``http``), the reload worker and the file watcher
        (when ``watch``).  Raises :class:`ConfigError` when a required address cannot be
        bound."""
        assert self.reloader is not None, "bind() first"
        if self.http:
            host, port = parse_address(self.http)
            try:
                self.server = OpsServer(host, port, self)
            except OSError as exc:
                if self.http_required:
                    raise ConfigError(f"cannot serve HTTP on {self.http}: {exc}") from None
                log.warning("cannot serve HTTP on %s (%s); running without /metrics, /status "
                            "and /-/reload (set [metrics] http or --http)", self.http, exc)
        if self.server is not None:
            self.server.start()
            log.info("serving /metrics, /healthz, /status and POST /-/reload on http://%s:%d",
                     *self.server.address, extra={"fields": {
                         "event": "http", "host": self.server.address[0],
                         "port": self.server.address[1]}})
        self.reloader.start()
        if self.watch:
            self._watcher = RuleWatcher(self.rule_paths, self.reloader.request)
            self._watcher.start()

    def stop(self) -> None:
        """Stop the server, the watcher and the reload worker."""
        if self.server is not None:
            self.server.stop()
        if self._watcher is not None:
            self._watcher.stop()
        if self.reloader is not None:
            self.reloader.stop()

    def on_sighup(self, *_: Any) -> None:
        """Signal handler: ask for a reload (sets a flag only)."""
        if self.reloader is not None:
            self.reloader.request_from_signal()

    # ------------------------------------------------------------------ views

    def observe(self) -> tuple[EngineSnapshot, ReloadState]:
        """A fresh snapshot from the pipeline thread (the previous one if the pipeline does not
        answer within 2 s: it may be blocked reading standard input)."""
        snap = self._last_snapshot
        if self.control is not None and self._snapshot is not None:
            try:
                snap = self.control.call(self._snapshot, 2.0)
                self._last_snapshot = snap
            except TimeoutError:
                log.debug("the pipeline did not answer a snapshot request within 2 s")
        if snap is None:
            snap = EngineSnapshot(mode=self.mode, metrics=RunMetrics())
        state = self.reloader.state if self.reloader is not None else ReloadState()
        return snap, state

    def metrics_text(self) -> bytes:
        """``/metrics``: the run's registry in Prometheus' text format."""
        return render(self.registry)

    def status(self) -> dict[str, Any]:
        """``/status``: see the module docstring."""
        snap, state = self.observe()
        rl = self.reloader
        last = rl.last if rl is not None else None
        return {
            "mode": self.mode,
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started)),
            "uptime_s": round(time.time() - self.started, 3),
            "rules": [{"name": r["name"], "version": r["version"], "severity": r["severity"],
                       "file": r["file"], "line": r["line"], "keys": r["keys"],
                       "partial_matches": r["partial_matches"]} for r in snap.rules],
            "draining": snap.draining,
            "reload": {
                "ok": state.ok, "failed": state.failed,
                "last": last.as_dict() if last is not None else None,
                "last_success": rl.last_success.as_dict()
                if rl is not None and rl.last_success is not None else None,
                "errors": last.errors if last is not None and not last.ok else [],
            },
            "watermarks": {k: (None if v == float("-inf") else v)
                           for k, v in sorted(snap.watermarks.items())},
            "events_in": dict(snap.metrics.events),
            "lag": {f"{t}/{p}": n for (t, p), n in sorted(snap.lag.items())},
        }

    def reload(self, reason: str, timeout: float = 30.0) -> ReloadResult | None:
        """Reload now and wait for the outcome (``None`` when it took longer than
        ``timeout`` seconds)."""
        assert self.reloader is not None
        return self.reloader.wait(self.reloader.request(reason), timeout)


class OpsServer:
    """The HTTP endpoints of :class:`Operations` on ``host:port`` (port 0: any free port;
    :attr:`address` is the bound one), served by a daemon thread."""

    def __init__(self, host: str, port: int, ops: Operations) -> None:
        self.ops = ops
        self.httpd = ThreadingHTTPServer((host, port), _handler(ops))
        self.httpd.daemon_threads = True
        self.address: tuple[str, int] = self.httpd.server_address[:2]  # type: ignore[assignment]
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Serve in a daemon thread."""
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="cep-http",
                                        kwargs={"poll_interval": 0.2}, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.httpd.shutdown()
        self.httpd.server_close()


def _handler(ops: Operations) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "cep"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            log.debug("http: " + format, *args)

        def _send(self, code: int, body: bytes, ctype: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _json(self, code: int, doc: Any) -> None:
            self._send(code, orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n",
                       "application/json")

        def do_GET(self) -> None:  # noqa: N802
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, ops.metrics_text(), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                self._send(200, b"ok\n", "text/plain; charset=utf-8")
            elif path == "/status":
                self._json(200, ops.status())
            elif path == "/-/reload":
                self._json(405, {"error": "use POST /-/reload"})
            else:
                self._json(404, {"error": f"no such endpoint: {path}",
                                 "endpoints": ["/metrics", "/healthz", "/status",
                                               "POST /-/reload"]})

        def do_POST(self) -> None:  # noqa: N802
            path = self.path.split("?", 1)[0]
            if path != "/-/reload":
                self._json(404, {"error": f"no such endpoint: POST {path}"})
                return
            result = ops.reload("POST /-/reload")
            if result is None:
                self._json(504, {"error": "the pipeline did not apply the reload within "
                                          "30 s; it will be applied"})
            else:
                self._json(200 if result.ok else 422, result.as_dict())

    return Handler
