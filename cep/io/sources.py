"""File-mode sources: lines of a file or of standard input, with their line numbers.

``follow=True`` keeps reading a growing file as ``tail -f`` does, until ``stop()`` is called.
Given a line limit, no reader ever holds a longer line whole (:class:`OversizedLine`).
A compressed file (gzip, bz2, zstd) is recognised by its first bytes and read decompressed
(:func:`open_input`); :func:`threaded` keeps a blocking reader (standard input) off the
thread that must stay responsive.
"""

from __future__ import annotations

import io
import queue
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import BinaryIO, NamedTuple, TypeVar

T = TypeVar("T")

__all__ = ["read_lines", "read_blocks", "read_chunks", "open_input", "OversizedLine",
           "HEAD_BYTES", "compression_of", "threaded"]

_MAGIC = (
    (re.compile(rb"\x1f\x8b\x08"), "gzip"),  # magic and the deflate method (RFC 1952)
    (re.compile(rb"BZh[1-9]1AY&SY|BZh[1-9]\x17rE8P\x90"), "bz2"),  # block or end of stream
    (re.compile(rb"\x28\xb5\x2f\xfd"), "zstd"),  # a zstd frame (RFC 8878)
)
"""How each compressed format :func:`open_input` reads begins: its magic number and the
fixed bytes after it, so that a text file that merely starts with ``BZh`` or two odd bytes is
read as text."""


def compression_of(head: bytes) -> str | None:
    """``gzip``, ``bz2`` or ``zstd`` when ``head`` (a file's first bytes, at least 10) starts
    as that format does; ``None`` for anything else (read as it is)."""
    for magic, name in _MAGIC:
        if magic.match(head):
            return name
    return None


def open_input(path: str) -> BinaryIO:
    """Open ``path`` for binary reading; ``-`` is standard input (read as it is).

    A file compressed with gzip, bz2 or zstd (:func:`compression_of` on its first bytes,
    whatever its name) comes back as a buffered stream of the decompressed bytes, with
    ``read1``, ``readline`` and ``tell`` (in decompressed bytes); closing it closes the file.
    Raises ``OSError`` for a file that cannot be opened; a corrupt compressed stream raises
    ``OSError`` or ``EOFError`` (gzip, bz2) or ``zstandard.ZstdError`` when read."""
    if path == "-":
        return sys.stdin.buffer
    fh = open(path, "rb")  # noqa: SIM115
    try:
        kind = compression_of(fh.peek(10)[:10])
    except BaseException:
        fh.close()
        raise
    if kind is None:
        return fh
    if kind != "zstd":  # gzip and bz2 files are buffered readers themselves
        fh.close()
        if kind == "gzip":
            import gzip

            return gzip.open(path, "rb")  # type: ignore[return-value]
        import bz2

        return bz2.open(path, "rb")  # type: ignore[return-value]
    import zstandard

    reader = zstandard.ZstdDecompressor().stream_reader(fh, closefd=True,
                                                        read_across_frames=True)
    return io.BufferedReader(reader, 1 << 16)  # type: ignore[arg-type]


class OversizedLine(NamedTuple):
    """A line longer than the reader's limit, never held whole: its first
    :data:`HEAD_BYTES` bytes and its length in bytes (without the line ending)."""

    head: bytes
    size: int


HEAD_BYTES = 1024
"""How much of an oversized line is kept (for its dead letter)."""


def read_blocks(fh: BinaryIO, size: int = 1 << 16, max_line: int | None = None
                ) -> Iterator[bytes | OversizedLine]:
    """Yield the whole input as runs of complete lines, about ``size`` bytes each.

    Each run is its lines joined by ``\\n`` without a final newline; every line of the input
    (blank ones included) is in exactly one run, in order, so line numbers are the running
    count.  A last line without a newline ends the last run.  Runs of about 64 KiB keep the
    decoded objects of one run in the CPU caches.  A line longer than ``max_line`` bytes
    (``None``: no limit) is not held: it comes alone as an :class:`OversizedLine` between the
    runs before and after it, and memory stays bounded by ``size + max_line``.
    """
    read = getattr(fh, "read1", fh.read)  # read1: what a pipe has now, not a full block
    rest = b""
    held: list[bytes] = []  # the start of a line longer than one block
    held_n = 0
    skipping: OversizedLine | None = None  # the line being passed over
    while True:
        block = read(size)
        if not block:
            break
        if skipping is not None:  # pass over the rest of an oversized line
            end = block.find(b"\n")
            if end < 0:
                skipping = OversizedLine(skipping.head, skipping.size + len(block))
                continue
            yield OversizedLine(skipping.head, skipping.size + len(block[:end].rstrip(b"\r")))
            skipping = None
            block = block[end + 1:]
            if not block:
                continue
        end = block.rfind(b"\n")
        if end < 0:
            held.append(block)
            held_n += len(block)
            if max_line is not None and len(rest) + held_n > max_line:
                first = rest.rfind(b"\n") + 1 if rest else 0  # start of the long line in rest
                if first:
                    yield rest[:first - 1]
                line_start = rest[first:] + b"".join(held)
                skipping = OversizedLine(line_start[:HEAD_BYTES], len(line_start))
                rest = b""
                held.clear()
                held_n = 0
            continue
        if held:
            rest = rest + b"".join(held)
            held.clear()
            held_n = 0
        chunk = rest + block[:end] if rest else block[:end]
        rest = block[end + 1:]
        if max_line is not None and len(chunk) > max_line:
            yield from _split_oversized(chunk, max_line)
        else:
            yield chunk
    if skipping is not None:
        yield skipping
        return
    if held:
        rest = rest + b"".join(held)
    if rest:
        if max_line is not None and len(rest) > max_line:
            yield from _split_oversized(rest, max_line)
        else:
            yield rest


def _split_oversized(chunk: bytes, max_line: int) -> Iterator[bytes | OversizedLine]:
    """``chunk``'s runs of lines, with each line longer than ``max_line`` on its own as an
    :class:`OversizedLine` (the chunk is at most a block plus one held line long)."""
    n = len(chunk)
    run = start = 0  # where the current run of lines starts; where the current line starts
    while True:
        nl = chunk.find(b"\n", start)
        end = n if nl < 0 else nl
        if end - start > max_line:
            if start > run:
                yield chunk[run:start - 1]
            line = chunk[start:end].rstrip(b"\r")
            yield OversizedLine(line[:HEAD_BYTES], len(line))
            run = end + 1
        if nl < 0:
            break
        start = nl + 1
    if run <= n:
        yield chunk[run:]


def read_chunks(fh: BinaryIO, size: int = 1 << 16) -> Iterator[tuple[bytes, int]]:
    """Yield ``(chunk, lines)``: the runs of :func:`read_blocks` (without a line limit) and
    how many lines each holds."""
    for chunk in read_blocks(fh, size):
        assert isinstance(chunk, bytes)  # (no limit: no OversizedLine)
        yield chunk, chunk.count(b"\n") + 1


def read_lines(
    fh: BinaryIO,
    follow: bool = False,
    should_stop: Callable[[], bool] | None = None,
    poll_s: float = 0.05,
    on_idle: Callable[[], None] | None = None,
    max_line: int | None = None,
    keep_blank: bool = False,
    keep_ends: bool = False,
) -> Iterator[tuple[int, bytes | OversizedLine]]:
    """Yield ``(line_no, line)`` (1-based, without the line ending; blank lines skipped),
    or with ``keep_blank`` every line and with ``keep_ends`` each with its ending.

    A line longer than ``max_line`` bytes (``None``: no limit) is never held whole: it comes
    as an :class:`OversizedLine`, and memory stays bounded by ``max_line``.

    With ``follow``, at end of file wait ``poll_s`` seconds and read again (a partial last
    line is held back until its newline arrives), calling ``on_idle`` while waiting; stop
    when ``should_stop()`` returns true.
    """
    limit = -1 if max_line is None else max_line + 2  # room for "\r\n"
    line_no = 0
    pending = b""
    skipping: OversizedLine | None = None
    while True:
        raw = fh.readline(limit)
        if raw:
            if skipping is not None:  # the rest of an oversized line
                part = raw.rstrip(b"\r\n")
                skipping = OversizedLine(skipping.head, skipping.size + len(part))
                if raw.endswith(b"\n"):
                    line_no += 1
                    yield line_no, skipping
                    skipping = None
                continue
            if not raw.endswith(b"\n"):
                pending += raw
                if max_line is not None and len(pending) > max_line:
                    skipping = OversizedLine(pending[:HEAD_BYTES], len(pending))
                    pending = b""
                elif not follow:  # (a last line without a newline)
                    continue
                continue
            raw = pending + raw
            pending = b""
            line = raw.rstrip(b"\r\n")
            line_no += 1
            if max_line is not None and len(line) > max_line:
                yield line_no, OversizedLine(line[:HEAD_BYTES], len(line))
            elif keep_blank or line.strip():
                yield line_no, raw if keep_ends else line
            continue
        if not follow or (should_stop is not None and should_stop()):
            if skipping is not None:
                line_no += 1
                yield line_no, skipping
            elif pending.strip() or (keep_blank and pending):
                line_no += 1
                yield line_no, pending if keep_ends else pending.rstrip(b"\r\n")
            return
        if on_idle is not None:
            on_idle()
        time.sleep(poll_s)


_END = object()


class _Failed(NamedTuple):
    error: BaseException


def threaded(items: Iterator[T], on_idle: Callable[[], None], poll_s: float = 0.05,
             max_queued: int = 4096) -> Iterator[T]:
    """Yield what ``items`` yields, in order, while a daemon thread pulls it, so a blocking
    read (standard input) never blocks the caller: whenever nothing arrives for ``poll_s``
    seconds ``on_idle()`` runs on the caller's thread (reloads, status requests, flushes).

    At most ``max_queued`` items wait between the threads (the reader waits when the caller
    falls behind: memory stays bounded).  An exception raised by ``items`` is raised here.
    Closing this generator early lets the thread end at its next item (a read that never
    returns leaves a daemon thread parked on it, which does not hold the process)."""
    q: queue.Queue[object] = queue.Queue(max_queued)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def pull() -> None:
        try:
            for item in items:
                if not put(item):
                    return
        except BaseException as exc:  # handed over to the caller's thread
            put(_Failed(exc))
            return
        put(_END)

    thread = threading.Thread(target=pull, name="cep-input-reader", daemon=True)
    thread.start()
    get = q.get
    try:
        while True:
            try:
                item = get(timeout=poll_s)
            except queue.Empty:
                on_idle()
                continue
            if item is _END:
                return
            if type(item) is _Failed:
                raise item.error
            yield item  # type: ignore[misc]
    finally:
        stop.set()
