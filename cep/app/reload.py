"""Hot reload of rule files: triggers, all-or-nothing compilation, hand-over to the pipeline.

Threads and who does what:

* **triggers** — a change under a rule path (:class:`RuleWatcher`, a thread running
  ``watchfiles``), SIGHUP (:meth:`Reloader.request_from_signal`, which only sets a flag), and
  ``POST /-/reload`` (:mod:`cep.app.ops`) — each *ask* for a reload;
* **the reload worker** (:meth:`Reloader.run`, one thread) coalesces requests (one that
  arrives while a reload waits to start joins it), starts at most one reload per
  ``min_interval_s`` (so a flood of requests cannot eat the pipeline's time), compiles every
  rule file off the pipeline thread — checked first by a child process that is killed when it
  takes longer than ``compile_deadline_s`` (:mod:`cep.app.rule_compiler`), so no rule file
  can wedge the worker — and on success hands the compiled rules to the pipeline through a
  :class:`Control`;
* **the pipeline thread** runs the hand-over between two events (file mode: it checks
  :attr:`Control.pending` before each event and while waiting for input; Kafka mode: the
  function runs on the event loop under the pipeline's lock, between two batches), so no
  event is skipped or seen twice by one rule version.

A rule set with any error is not applied: the running rules stay in force, each diagnostic is
logged as ``file:line:col: error: message`` and kept for ``/status`` and the metrics.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from cep.app.metrics import ReloadState
from cep.app.rule_compiler import DEFAULT_DEADLINE_S, compile_with_deadline
from cep.app.rules import RuleSet, source_texts
from cep.compiler.compiled import CompiledRule
from cep.diagnostics import render
from cep.operator.versions import ReloadReport

__all__ = ["Control", "AsyncControl", "ReloadResult", "Reloader", "RuleWatcher"]

log = logging.getLogger("cep.reload")

T = TypeVar("T")
Apply = Callable[[list[CompiledRule]], ReloadReport]


class Control:
    """Functions other threads want run on the pipeline thread, between two events.

    The pipeline reads :attr:`pending` (a plain attribute: one load per event) and calls
    :meth:`service` when it is true.  :meth:`call` blocks the calling thread until the
    function has run there (or raises ``TimeoutError``)."""

    def __init__(self) -> None:
        self.pending = False
        self.closed = False
        self._q: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()

    def call(self, fn: Callable[[], T], timeout: float | None = 10.0) -> T:
        """Run ``fn()`` on the pipeline thread and return its result (its exception is
        raised here).  Raises ``TimeoutError`` when the pipeline does not get to it within
        ``timeout`` seconds (``None``: wait as long as it takes), ``RuntimeError`` when the
        pipeline has stopped (:meth:`close`)."""
        fut: Future[T] = Future()
        self._q.put((fn, fut))
        self.pending = True
        if self.closed:
            self.close()
        try:
            return fut.result(timeout)
        except TimeoutError:
            fut.cancel()  # not run later if it has not started
            raise

    def close(self) -> None:
        """The pipeline has stopped: every queued call and every later one raises
        ``RuntimeError`` instead of waiting for it."""
        self.closed = True
        while True:
            try:
                _, fut = self._q.get_nowait()
            except queue.Empty:
                return
            if fut.set_running_or_notify_cancel():
                fut.set_exception(RuntimeError("the pipeline has stopped"))

    def service(self) -> None:
        """Run every queued function (called by the pipeline thread only)."""
        self.pending = False
        while True:
            try:
                fn, fut = self._q.get_nowait()
            except queue.Empty:
                return
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn())
            except BaseException as exc:  # handed to the caller, who re-raises it
                fut.set_exception(exc)


class AsyncControl(Control):
    """:class:`Control` for a pipeline that runs on an asyncio loop: ``fn`` runs on the loop
    while holding ``lock`` (the pipeline holds it while it processes a batch)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, lock: asyncio.Lock) -> None:
        super().__init__()
        self.loop = loop
        self.lock = lock

    def call(self, fn: Callable[[], T], timeout: float | None = 10.0) -> T:
        async def locked() -> T:
            async with self.lock:
                return fn()

        fut = asyncio.run_coroutine_threadsafe(locked(), self.loop)
        try:
            return fut.result(timeout)
        except TimeoutError:
            fut.cancel()
            raise


@dataclass
class ReloadResult:
    """One reload attempt: when it finished (epoch seconds), why it ran, whether it was
    applied, its report (when applied) and its errors (each ``{"file", "line", "col",
    "message", "text"}``, ``text`` the rendered diagnostic with line and caret)."""

    at: float
    reason: str
    ok: bool
    report: ReloadReport | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    duration_ms: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """Plain data for ``/status`` and ``POST /-/reload``."""
        return {
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.at)),
            "at_unix": self.at, "reason": self.reason, "ok": self.ok,
            "duration_ms": round(self.duration_ms, 3),
            "report": self.report.as_dict() if self.report else None,
            "errors": self.errors,
        }


def _errors(rs: RuleSet) -> list[dict[str, Any]]:
    text_of = source_texts(rs)
    out = []
    for d in rs.errors:
        text = text_of(d.file)
        out.append({"file": d.file, "line": d.span.line, "col": d.span.col,
                     "message": d.message, "text": render(d, text)})
    return out


MIN_INTERVAL_S = 0.25
"""Least time between the end of one reload and the start of the next, in seconds."""


class Reloader:
    """Compiles the rule files under ``paths`` on request and applies them with ``apply``
    (run on the pipeline thread through ``control``).

    ``rules`` is the rule set the run started with.  :attr:`last` is the newest attempt,
    :attr:`last_success` the newest applied one, :attr:`history` the last 20; :attr:`state`
    feeds the metrics.  The hand-over waits for the pipeline as long as it takes
    (``apply_timeout_s`` ``None``): a pipeline waiting for input applies it with the next
    event.  A reload starts at least ``min_interval_s`` seconds after the previous one ended;
    its compilation is given ``compile_deadline_s`` seconds."""

    def __init__(self, paths: Iterable[str], control: Control, apply: Apply,
                 rules: list[CompiledRule], apply_timeout_s: float | None = None,
                 min_interval_s: float = MIN_INTERVAL_S,
                 compile_deadline_s: float = DEFAULT_DEADLINE_S,
                 sigma_pipelines: tuple[str, ...] = ()) -> None:
        self.paths = list(paths)
        self.sigma_pipelines = tuple(sigma_pipelines)
        self.control = control
        self.apply = apply
        self.apply_timeout_s = apply_timeout_s
        self.min_interval_s = min_interval_s
        self.compile_deadline_s = compile_deadline_s
        self._next_start = 0.0  # time.monotonic() before which no reload starts
        self.versions = {r.name: r.version for r in rules}
        self._running = {r.name: r for r in rules}  # reused by the next compile if unchanged
        self.last: ReloadResult | None = None
        self.last_success: ReloadResult | None = None
        self.history: deque[ReloadResult] = deque(maxlen=20)
        self.state = ReloadState()
        self._cond = threading.Condition()
        self._requested = 0
        self._done = 0
        self._reason = ""
        self._signalled = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ requests

    def request(self, reason: str) -> int:
        """Ask for a reload; returns a ticket for :meth:`wait`.  Requests that arrive while a
        reload is being compiled are served by one more reload after it; requests that
        arrive while one waits to start join it."""
        with self._cond:
            self._requested += 1
            self._reason = reason
            self._cond.notify_all()
            return self._requested

    def request_from_signal(self) -> None:
        """Ask for a reload from a signal handler: sets a flag only (no lock is taken); the
        worker notices it within 100 ms."""
        self._signalled = True

    def wait(self, ticket: int, timeout: float = 30.0) -> ReloadResult | None:
        """Wait until the reload that serves ``ticket`` is done; its result, or ``None`` on
        timeout or when the worker stops first."""
        with self._cond:
            self._cond.wait_for(lambda: self._done >= ticket or self._stop.is_set(), timeout)
            return self.last if self._done >= ticket else None

    # ------------------------------------------------------------------ worker

    def start(self) -> None:
        """Start the worker thread (a daemon)."""
        self._thread = threading.Thread(target=self.run, name="cep-reload", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the worker thread: a reload waiting for the pipeline (which has stopped) is
        not applied; one still compiling finishes first (at most its deadline)."""
        self._stop.set()
        self.control.close()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(5)

    def run(self) -> None:
        """The worker loop: wait for a request, reload, record the result."""
        while not self._stop.is_set():
            with self._cond:
                self._cond.wait_for(lambda: self._requested > self._done or self._signalled
                                    or self._stop.is_set(), 0.1)
                if self._stop.is_set():
                    return
                if self._signalled:
                    self._signalled = False
                    self._requested += 1
                    self._reason = "SIGHUP"
                if self._requested <= self._done:
                    continue
                wait = self._next_start - time.monotonic()
                if wait > 0:  # too soon after the last one: later requests join this one
                    self._cond.wait_for(self._stop.is_set, wait)
                    if self._stop.is_set():
                        return
                ticket, reason = self._requested, self._reason
            try:
                result = self.reload_now(reason)
            except Exception as exc:  # never let the worker die: report and go on
                if self._stop.is_set():  # the pipeline stopped before it could apply it
                    return
                log.exception("reload failed unexpectedly")
                result = ReloadResult(time.time(), reason, False,
                                      errors=[{"file": "", "line": 0, "col": 0,
                                               "message": str(exc), "text": str(exc)}])
                self._record(result)
            with self._cond:
                self._done = ticket
                self._next_start = time.monotonic() + self.min_interval_s
                self._cond.notify_all()

    def loaded_lists(self) -> list[dict[str, Any]]:
        """The lists and tables the running rules read, for ``/status``: ``{"name", "kind",
        "file", "entries", "rules"}`` each (one entry per file and name)."""
        found: dict[tuple[str, str], dict[str, Any]] = {}
        for rule in list(self._running.values()):
            for name, data in rule.lists:
                entry = found.setdefault((data.source, name), {
                    "name": name, "kind": data.kind, "file": data.source,
                    "entries": len(data), "rules": []})
                entry["rules"].append(rule.name)
        return [found[k] for k in sorted(found)]

    def list_files(self) -> list[str]:
        """The list and table files the running rules read (resolved paths)."""
        return sorted({data.source for rule in list(self._running.values())
                       for _, data in rule.lists})

    def reload_now(self, reason: str) -> ReloadResult:
        """Compile every rule file; apply the rules when there is no error, otherwise keep the
        running ones and log each diagnostic.  Runs on the calling thread (the pipeline
        part through :attr:`control`)."""
        started = time.perf_counter()
        rs = compile_with_deadline(self.paths, self.compile_deadline_s, self._running,
                                   self.sigma_pipelines)
        errors = _errors(rs)
        if not errors and not rs.rules:
            errors = [{"file": ", ".join(self.paths), "line": 0, "col": 0,
                       "message": "no rules found", "text": "no rules found under "
                       + ", ".join(self.paths)}]
        if errors:
            for e in errors:
                log.error("%s", e["text"], extra={"fields": {
                    "event": "rule_error", "file": e["file"], "line": e["line"],
                    "col": e["col"], "error": e["message"]}})
            result = ReloadResult(time.time(), reason, False, errors=errors,
                                  duration_ms=(time.perf_counter() - started) * 1000)
            log.error("reload (%s) failed with %d error(s); the running rules stay in force",
                      reason, len(errors), extra={"fields": {
                          "event": "reload", "ok": False, "reason": reason,
                          "errors": len(errors)}})
            self._record(result)
            return result
        rules = rs.rules
        report = self.control.call(lambda: self.apply(rules), self.apply_timeout_s)
        self.versions = dict(report.versions)
        self._running = {r.name: r for r in rules}
        result = ReloadResult(time.time(), reason, True, report=report,
                              duration_ms=(time.perf_counter() - started) * 1000)
        d = report.as_dict()
        log.info("rules reloaded (%s): added %s, changed %s, draining %s, removed %s; "
                 "partial matches kept %d, dropped %d", reason, d["added"], d["changed"],
                 d["drained"], d["removed"], report.partial_kept, report.partial_dropped,
                 extra={"fields": {"event": "reload", "ok": True, "reason": reason, **d}})
        self._record(result)
        return result

    def _record(self, result: ReloadResult) -> None:
        st = self.state
        if result.ok:
            st.ok += 1
            st.errors_by_file = {}
            self.last_success = result
        else:
            st.failed += 1
            by_file: dict[str, int] = {}
            for e in result.errors:
                by_file[e["file"]] = by_file.get(e["file"], 0) + 1
            st.errors_by_file = by_file
        st.last_ok = result.ok
        st.last_at = result.at
        self.history.append(result)
        self.last = result


class RuleWatcher:
    """Watches rule paths (files, or directories of ``*.cep`` files) and calls
    ``on_change(description)`` after each settled burst of changes (grouped over ``step_ms``,
    at most ``debounce_ms``).

    The files' sizes and modification times are noted when the watcher is made (right after
    the rules were loaded); once the watch is in place they are compared again, so an edit
    made while the watch was being set up is not missed."""

    def __init__(self, paths: Iterable[str], on_change: Callable[[str], Any],
                 debounce_ms: int = 400, step_ms: int = 50,
                 extra: Callable[[], Iterable[str]] | None = None) -> None:
        self.extra = extra or (lambda: ())
        self.files: set[Path] = set()
        self.dirs: set[Path] = set()
        for p in paths:
            path = Path(p).resolve()
            (self.dirs if path.is_dir() else self.files).add(path)
        self.on_change = on_change
        self.debounce_ms = debounce_ms
        self.step_ms = step_ms
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._initial = self.fingerprint()

    def fingerprint(self) -> dict[Path, tuple[int, int]]:
        """``(mtime_ns, size)`` of every watched rule file and list file that exists."""
        out: dict[Path, tuple[int, int]] = {}
        for path in [*self.files, *(p for d in self.dirs for p in d.rglob("*.cep")),
                     *(Path(p) for p in self.extra())]:
            try:
                st = path.stat()
            except OSError:
                continue
            out[path] = (st.st_mtime_ns, st.st_size)
        return out

    def relevant(self, path: str) -> bool:
        """A change to ``path`` matters: a watched file, a ``.cep`` file under a watched
        directory, or a list or table file the running rules read (``extra``; always under
        the directory of the rule file that declares it, hence under a watched root)."""
        p = Path(path)
        if p in self.files or path in self.extra():
            return True
        return p.suffix == ".cep" and any(d == p.parent or d in p.parents for d in self.dirs)

    def start(self) -> None:
        """Start watching in a daemon thread."""
        self._thread = threading.Thread(target=self._run, name="cep-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop watching (returns within a few milliseconds)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)

    def _run(self) -> None:
        import watchfiles

        roots = sorted({str(d) for d in self.dirs} | {str(f.parent) for f in self.files})
        first = True
        try:
            for changes in watchfiles.watch(
                    *roots, watch_filter=lambda _c, path: self.relevant(path),
                    debounce=self.debounce_ms, step=self.step_ms, stop_event=self._stop,
                    rust_timeout=200, yield_on_timeout=True, raise_interrupt=False):
                if first:  # the watch is in place: catch up with edits made before
                    first = False
                    if not changes and self.fingerprint() != self._initial:
                        self.on_change("file change while starting")
                if not changes:
                    continue
                names = sorted({Path(p).name for _, p in changes})
                self.on_change("file change: " + ", ".join(names))
        except Exception as exc:  # a watched directory vanished, inotify limits, …
            if not self._stop.is_set():
                log.error("watching rule files stopped (%s: %s); SIGHUP and POST /-/reload "
                          "still reload", type(exc).__name__, exc)
