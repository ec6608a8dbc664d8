"""Operating a long run: reload triggers, metrics, status, and the HTTP endpoints.

:class:`Operations` gathers what a ``cep run`` that keeps running offers its operators:
the :class:`~cep.app.reload.Reloader` (with its file watcher), the run's
:class:`~cep.app.metrics.RunMetrics` and a per-run Prometheus registry, and an HTTP server
(a daemon thread) with

* ``GET /metrics`` — Prometheus text format;
* ``GET /healthz`` — ``200 ok`` while the run is up;
* ``GET /status`` — JSON: rules with versions, draining versions, the lists and tables they
  read (file, entries), the last reload and its errors, watermarks per input, events per
  source, consumer lag (Kafka);
* ``POST /-/reload`` — reload now; ``200`` with the reload report when it was applied, ``422``
  with the errors when the rule files have errors or did not compile in time (the running
  rules stay), ``504`` when the pipeline did not get to it within 30 s (it is applied later).

The server binds loopback unless an address is given explicitly (``:PORT`` is
``127.0.0.1:PORT``); who may ask what (Host, Origin, the reload token ``CEP_RELOAD_TOKEN``)
and the server's limits are in :mod:`cep.app.ops_http`.

The pipeline binds it with :meth:`Operations.bind`: a function that snapshots its operators and
one that applies a new rule set, both run on the pipeline thread through a
:class:`~cep.app.reload.Control`.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any

from cep.app.metrics import (
    EngineCollector,
    EngineSnapshot,
    ReloadState,
    RunMetrics,
    new_registry,
    render,
)
from cep.app.ops_http import HttpLimits, OpsServer, is_loopback
from cep.app.reload import Apply, Control, Reloader, ReloadResult, RuleWatcher
from cep.compiler.compiled import CompiledRule
from cep.errors import ConfigError
from cep.operator.alerting import ALERTING_STATS

__all__ = ["Operations", "OpsServer", "TOKEN_ENV", "parse_address"]

log = logging.getLogger("cep.ops")

TOKEN_ENV = "CEP_RELOAD_TOKEN"
"""The environment variable holding the token ``POST /-/reload`` needs (see
:mod:`cep.app.ops_http`)."""


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT``) → ``(host, port)``.  ``:PORT`` is ``127.0.0.1:PORT``:
    every interface is served only when asked for by address (``0.0.0.0:PORT``,
    ``[::]:PORT``).  Raises :class:`ConfigError` for anything else."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"not an HTTP address: {text!r} (use HOST:PORT, e.g. 127.0.0.1:9464)")
    return host.strip("[]") or "127.0.0.1", int(port)


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
        reload_token: the token ``POST /-/reload`` needs; by default ``$CEP_RELOAD_TOKEN``
            (unset or empty: none).
        http_limits: the HTTP server's bounds (:class:`~cep.app.ops_http.HttpLimits`).
    """

    def __init__(self, mode: str, rule_paths: list[str], rules: list[CompiledRule],
                 watch: bool = True, http: str | None = None,
                 http_required: bool = True, reload_token: str | None = None,
                 http_limits: HttpLimits | None = None,
                 sigma_pipelines: tuple[str, ...] = ()) -> None:
        self.mode = mode
        self.sigma_pipelines = tuple(sigma_pipelines)
        self.reload_token = reload_token or os.environ.get(TOKEN_ENV) or None
        self.http_limits = http_limits
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

        self.reloader = Reloader(self.rule_paths, control, apply_and_remember, self.rules,
                                 sigma_pipelines=self.sigma_pipelines)

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
                self.server = OpsServer(host, port, self, self.reload_token, self.http_limits)
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
            if not is_loopback(self.server.address[0]) and self.reload_token is None:
                log.warning("serving beyond loopback without %s: POST /-/reload is refused "
                            "(403) until a token is set", TOKEN_ENV)
        self.reloader.start()
        if self.watch:
            self._watcher = RuleWatcher(self.rule_paths, self.reloader.request,
                                        extra=self.reloader.list_files)
            self._watcher.start()

    def stop(self) -> None:
        """Stop the reload worker (which answers the requests waiting for it), the server
        and the watcher."""
        if self.reloader is not None:
            self.reloader.stop()
        if self.server is not None:
            self.server.stop()
        if self._watcher is not None:
            self._watcher.stop()

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
                       "partial_matches": r["partial_matches"],
                       **{k: r[k] for k in ALERTING_STATS}} for r in snap.rules],
            "draining": snap.draining,
            "lists": rl.loaded_lists() if rl is not None else [],
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
            **({"plan": snap.plan} if snap.plan is not None else {}),
        }

    def reload(self, reason: str, timeout: float = 30.0) -> ReloadResult | None:
        """Reload now and wait for the outcome (``None`` when it took longer than
        ``timeout`` seconds)."""
        assert self.reloader is not None
        return self.reloader.wait(self.reloader.request(reason), timeout)
