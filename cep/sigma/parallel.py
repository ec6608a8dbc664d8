"""Compiling many Sigma files on every CPU: forked workers that share the loader's memory.

Loading SigmaHQ's 2,407 Windows rules cold spends two seconds in PyYAML, pySigma and
:mod:`cep.sigma.detection`, one file at a time, while a second core waits.  The files are
independent (a file's engine rules depend on its name, its text and the pipelines only,
which is also what makes :mod:`cep.sigma.cache` possible), so :func:`map_forked` hands a
share of them to forked children: a child inherits the loaded modules and the pipeline
objects as they are (nothing is pickled on the way in), takes chunks of files from a queue
as the calling process does, and sends back each chunk's results — the same
:class:`~cep.sigma.cache.CompiledSigmaFile` values the cache keeps — through a pipe, which
the calling process reads between its own chunks.

A fork is taken only where it is safe and worth it: on a POSIX system, from a process that
runs one thread (a fork copies only the calling thread, and a lock another thread holds
would stay locked in the child forever), with at least :data:`MIN_PER_WORKER` jobs per
process.  A child that fails in any way (an exception, a signal, a result that does not
unpickle) only means that the jobs whose results did not come are computed in the calling
process: the answer is the same, only slower.  A child never returns into the caller's
code: it leaves with ``os._exit``, so no ``atexit`` handler, buffered output or temporary
file of the parent is run or flushed twice.
"""

from __future__ import annotations

import os
import pickle
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
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


def map_forked(fn: Callable[[J], R | None], jobs: Sequence[J], workers: int | None = None,
               taken: Callable[[R], None] | None = None) -> list[R | None]:
    """``[fn(j) for j in jobs]``, computed by ``workers`` processes (default
    :func:`worker_count`; a caller that passes it has made sure that a fork is safe).

    The jobs are cut into chunks of neighbouring jobs whose numbers wait in a pipe: each
    process (the caller too) reads the next number when it is free, so all finish within
    about one chunk of each other however unequal the jobs.  A child sends each chunk's
    results as one pickle as soon as it has them, and the caller takes them in between
    its own chunks, so that little is left to unpickle once the last chunk is done.
    ``fn``'s results must pickle; a job whose child failed is computed here.  Exceptions
    of ``fn`` in the caller's jobs propagate.

    ``taken``: called in the calling process with each result that is not ``None``, once,
    as soon as this process has it (its own at once, a child's when its chunk's frame is
    read), in no particular order: work on the results that the calling process does while
    the children still compute (its exceptions propagate as ``fn``'s do)."""
    n = max(1, min(workers if workers is not None else worker_count(len(jobs)), len(jobs)))
    if n == 1:
        return [_taken(fn(j), taken) for j in jobs]
    size = max(1, -(-len(jobs) // (n * _CHUNKS_PER_WORKER)))
    queue = _chunk_queue(len(jobs), size)
    children: list[_Results] = []
    for _ in range(1, n):
        read, write = os.pipe()
        _widen(write)
        pid = os.fork()
        if pid == 0:  # the child: compute, send, leave
            os.close(read)
            _child(fn, jobs, queue, size, write)
        os.close(write)
        children.append(_Results(pid, read))
    out: list[Any] = [_MISSING] * len(jobs)
    try:
        try:
            for chunk in _chunks(queue, size, len(jobs)):
                for i in chunk:
                    out[i] = _taken(fn(jobs[i]), taken)
                for child in children:
                    child.take(out, taken, wait=False)
        finally:
            os.close(queue)
        for child in children:
            child.take(out, taken, wait=True)
    except BaseException:
        for child in children:  # (no child outlives the failed call, none left a zombie)
            child.abandon()
        raise
    return [_taken(fn(jobs[i]), taken) if r is _MISSING else r for i, r in enumerate(out)]


def _taken(result: R | None, taken: Callable[[R], None] | None) -> R | None:
    """``result``, given to ``taken`` first (see :func:`map_forked`) unless it is ``None``."""
    if taken is not None and result is not None:
        taken(result)
    return result


_CHUNKS_PER_WORKER = 24
"""Chunks per process: enough for the last ones to even out unequal jobs, few enough that
taking one costs nothing."""

_MISSING = object()
_TOKEN = 4  # (bytes per chunk number in the queue: a pipe hands each read its own bytes)
_LENGTH = 4  # (bytes of a result frame's length: a frame is its length, then one pickle)
_PIPE_BYTES = 1 << 20
"""The result pipe's capacity asked for (Linux; the default is 64 KiB): a child seldom
waits for the caller, busy with its own chunk, to take its results."""


def _widen(fd: int) -> None:
    """Ask for a pipe of :data:`_PIPE_BYTES` (where the system allows; else as it is)."""
    try:
        import fcntl

        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
    except (ImportError, AttributeError, OSError):
        pass


def _chunk_queue(jobs: int, size: int) -> int:
    """The read end of a pipe holding the first job of every chunk of ``size`` of ``jobs``
    jobs, its write end closed: reading ``_TOKEN`` bytes takes the next chunk, end of file
    means none is left."""
    read, write = os.pipe()
    with os.fdopen(write, "wb") as pipe:  # (a few kilobytes: within the pipe's buffer)
        pipe.write(b"".join(i.to_bytes(_TOKEN, "little") for i in range(0, jobs, size)))
    return read


def _chunks(queue: int, size: int, jobs: int) -> Iterator[range]:
    """The job numbers of each chunk this process takes from ``queue``, one chunk at a
    time."""
    while len(token := os.read(queue, _TOKEN)) == _TOKEN:
        first = int.from_bytes(token, "little")
        yield range(first, min(first + size, jobs))


def _child(fn: Callable[[J], R | None], jobs: Sequence[J], queue: int, size: int,
           write: int) -> None:
    """A forked child's whole life: the chunks it takes from ``queue``, each chunk's
    ``[(job number, result), …]`` sent as one frame into ``write``."""
    status = 1
    try:
        with os.fdopen(write, "wb") as pipe:
            for chunk in _chunks(queue, size, len(jobs)):
                data = pickle.dumps([(i, fn(jobs[i])) for i in chunk],
                                    protocol=pickle.HIGHEST_PROTOCOL)
                pipe.write(len(data).to_bytes(_LENGTH, "little"))
                pipe.write(data)
                pipe.flush()
        status = 0
    finally:
        os._exit(status)


class _Results:
    """The results a forked child sends: its frames as they come through the pipe ``read``
    (non-blocking), then, at the end, the rest and its exit.  A frame that does not
    unpickle, or is not a list of ``(job number, result)``, ends the taking: what came
    before it stands, the child's other jobs are computed by the caller."""

    def __init__(self, pid: int, read: int) -> None:
        self.pid = pid
        self.read = read
        self.buffer = bytearray()
        self.broken = False
        self.reaped = False
        os.set_blocking(read, False)

    def take(self, out: list[Any], taken: Callable[[Any], None] | None, *, wait: bool
             ) -> None:
        """Put the results received so far into ``out`` (by job number), each given to
        ``taken`` (see :func:`map_forked`); ``wait``: read to the end of the child's output,
        then reap it."""
        if wait:
            os.set_blocking(self.read, True)
        while True:
            try:
                data = os.read(self.read, _PIPE_BYTES)
            except BlockingIOError:
                break
            if not data:
                break
            self.buffer += data
        try:
            self._frames(out, taken)
        finally:
            if wait:
                os.close(self.read)
                os.waitpid(self.pid, 0)
                self.reaped = True

    def abandon(self) -> None:
        """Stop the child (its results are not wanted any more) and reap it, unless
        :meth:`take` has reaped it already."""
        if self.reaped:
            return
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.close(self.read)
        os.waitpid(self.pid, 0)

    def _frames(self, out: list[Any], taken: Callable[[Any], None] | None) -> None:
        buf = self.buffer
        while not self.broken and len(buf) >= _LENGTH:
            end = _LENGTH + int.from_bytes(buf[:_LENGTH], "little")
            if len(buf) < end:
                return
            try:
                pairs = pickle.loads(buf[_LENGTH:end])
            except Exception:  # noqa: BLE001 - a damaged answer: compute its jobs here
                pairs = None
            del buf[:end]
            if type(pairs) is not list or not all(
                    type(p) is tuple and len(p) == 2 and type(p[0]) is int
                    and 0 <= p[0] < len(out) for p in pairs):
                self.broken = True
                return
            for i, r in pairs:
                out[i] = _taken(r, taken)
