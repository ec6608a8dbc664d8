"""Compiling many Sigma files on every CPU: forked workers that share the loader's memory.

Loading SigmaHQ's 2,407 Windows rules cold spends two seconds in PyYAML, pySigma and
:mod:`cep.sigma.detection`, one file at a time, while a second core waits.  The files are
independent (a file's engine rules depend on its name, its text and the pipelines only,
which is also what makes :mod:`cep.sigma.cache` possible), so :func:`map_forked` hands a
share of them to forked children: a child inherits the loaded modules and the pipeline
objects as they are (nothing is pickled on the way in), computes its share, and sends back
one pickle of its results — the same :class:`~cep.sigma.cache.CompiledSigmaFile` values the
cache keeps — through a pipe; the calling process computes its own share meanwhile.

A fork is taken only where it is safe and worth it: on a POSIX system, from a process that
runs one thread (a fork copies only the calling thread, and a lock another thread holds
would stay locked in the child forever), with at least :data:`MIN_PER_WORKER` jobs per
process.  A child that fails in any way (an exception, a signal, a result that does not
unpickle) only means that its share is computed in the calling process: the answer is the
same, only slower.  A child never returns into the caller's code: it leaves with
``os._exit``, so no ``atexit`` handler, buffered output or temporary file of the parent is
run or flushed twice.
"""

from __future__ import annotations

import os
import pickle
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

__all__ = ["MIN_PER_WORKER", "MAX_WORKERS", "map_forked", "run_behind", "worker_count"]

J = TypeVar("J")
R = TypeVar("R")

MIN_PER_WORKER = 64
"""Fewest jobs per process for a fork to pay (a fork, a pipe and a pickle cost milliseconds;
compiling one Sigma file about one)."""

MAX_WORKERS = 8
"""Most processes (the caller included) one call uses."""


def _cpus() -> int:
    """The CPUs this process may run on; 1 where a fork is not safe (no ``os.fork``, or
    other threads running)."""
    if not hasattr(os, "fork") or threading.active_count() > 1:
        return 1
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def worker_count(jobs: int) -> int:
    """How many processes (the caller included) :func:`map_forked` would use for ``jobs``
    jobs here: 1 without ``os.fork``, with other threads running, on one CPU, or for fewer
    than ``2 * MIN_PER_WORKER`` jobs."""
    return max(1, min(_cpus(), MAX_WORKERS, jobs // MIN_PER_WORKER))


def run_behind(fn: Callable[[], object]) -> bool:
    """Run ``fn`` in a detached process (a forked grandchild, so nobody has to wait for it
    and it leaves no zombie) while the caller goes on, on another CPU; ``False``, having
    run nothing, where that is not possible (one CPU, no safe fork): the caller runs
    ``fn`` itself.  For work whose result only a later run reads (writing a cache); its
    failure is not reported."""
    if _cpus() < 2:
        return False
    try:
        pid = os.fork()
    except OSError:
        return False
    if pid == 0:  # the child: fork the grandchild and leave at once
        try:
            if os.fork() == 0:
                try:
                    fn()
                finally:
                    os._exit(0)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    return True


def map_forked(fn: Callable[[J], R | None], jobs: Sequence[J], workers: int | None = None
               ) -> list[R | None]:
    """``[fn(j) for j in jobs]``, computed by ``workers`` processes (default
    :func:`worker_count`; a caller that passes it has made sure that a fork is safe).

    The jobs are cut into chunks of neighbouring jobs whose numbers wait in a pipe: each
    process (the caller too) reads the next number when it is free, so all finish within
    about one chunk of each other however unequal the jobs.  ``fn``'s results must pickle;
    a job whose child failed is computed here.  Exceptions of ``fn`` in the caller's jobs
    propagate."""
    n = max(1, min(workers if workers is not None else worker_count(len(jobs)), len(jobs)))
    if n == 1:
        return [fn(j) for j in jobs]
    size = max(1, -(-len(jobs) // (n * _CHUNKS_PER_WORKER)))
    queue = _chunk_queue(len(jobs), size)
    children: list[tuple[int, int]] = []  # (pid, read end)
    for _ in range(1, n):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: compute, send, leave
            os.close(read)
            _child(fn, jobs, queue, size, write)
        os.close(write)
        children.append((pid, read))
    out: list[Any] = [_MISSING] * len(jobs)
    for i, r in _work(fn, jobs, queue, size):
        out[i] = r
    os.close(queue)
    for pid, read in children:
        for i, r in _collect(pid, read):
            out[i] = r
    return [fn(jobs[i]) if r is _MISSING else r for i, r in enumerate(out)]


_CHUNKS_PER_WORKER = 24
"""Chunks per process: enough for the last ones to even out unequal jobs, few enough that
taking one costs nothing."""

_MISSING = object()
_TOKEN = 4  # (bytes per chunk number in the queue: a pipe hands each read its own bytes)


def _chunk_queue(jobs: int, size: int) -> int:
    """The read end of a pipe holding the first job of every chunk of ``size`` of ``jobs``
    jobs, its write end closed: reading ``_TOKEN`` bytes takes the next chunk, end of file
    means none is left."""
    read, write = os.pipe()
    with os.fdopen(write, "wb") as pipe:  # (a few kilobytes: within the pipe's buffer)
        pipe.write(b"".join(i.to_bytes(_TOKEN, "little") for i in range(0, jobs, size)))
    return read


def _work(fn: Callable[[J], R | None], jobs: Sequence[J], queue: int, size: int
          ) -> list[tuple[int, R | None]]:
    """``(job number, result)`` of every chunk this process takes from ``queue``."""
    done: list[tuple[int, R | None]] = []
    while len(token := os.read(queue, _TOKEN)) == _TOKEN:
        first = int.from_bytes(token, "little")
        done += [(i, fn(jobs[i])) for i in range(first, min(first + size, len(jobs)))]
    return done


def _child(fn: Callable[[J], R | None], jobs: Sequence[J], queue: int, size: int,
           write: int) -> None:
    """A forked child's whole life: the results of the chunks it takes, one pickle, into
    ``write``."""
    status = 1
    try:
        data = pickle.dumps(_work(fn, jobs, queue, size), protocol=pickle.HIGHEST_PROTOCOL)
        with os.fdopen(write, "wb") as pipe:
            pipe.write(data)
        status = 0
    finally:
        os._exit(status)


def _collect(pid: int, read: int) -> list[tuple[int, Any]]:
    """The ``(job number, result)`` pairs a child sent through ``read``, once it has exited
    cleanly; none for anything else (its jobs are then computed by the caller)."""
    with os.fdopen(read, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        return []
    try:
        got = pickle.loads(data)
    except Exception:  # noqa: BLE001 - a damaged answer: compute its jobs here
        return []
    if type(got) is not list or not all(type(p) is tuple and len(p) == 2 for p in got):
        return []
    return got
