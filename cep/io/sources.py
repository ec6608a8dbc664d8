"""File-mode sources: lines of a file or of standard input, with their line numbers.

``follow=True`` keeps reading a growing file as ``tail -f`` does, until ``stop()`` is called.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from typing import BinaryIO

__all__ = ["read_lines", "read_blocks", "read_chunks", "open_input"]


def open_input(path: str) -> BinaryIO:
    """Open ``path`` for binary reading; ``-`` is standard input."""
    if path == "-":
        return sys.stdin.buffer
    return open(path, "rb")  # noqa: SIM115


def read_blocks(fh: BinaryIO, size: int = 1 << 16) -> Iterator[bytes]:
    """Yield the whole input as runs of complete lines, about ``size`` bytes each (a longer
    line makes a longer run).

    Each run is its lines joined by ``\\n`` without a final newline; every line of the input
    (blank ones included) is in exactly one run, in order, so line numbers are the running
    count.  A last line without a newline ends the last run.  Runs of about 64 KiB keep the
    decoded objects of one run in the CPU caches.
    """
    read = getattr(fh, "read1", fh.read)  # read1: what a pipe has now, not a full block
    rest = b""
    held: list[bytes] = []  # the start of a line longer than one block
    while True:
        block = read(size)
        if not block:
            break
        end = block.rfind(b"\n")
        if end < 0:
            held.append(block)
            continue
        if held:
            rest = rest + b"".join(held)
            held.clear()
        chunk = rest + block[:end] if rest else block[:end]
        rest = block[end + 1:]
        yield chunk
    if held:
        rest = rest + b"".join(held)
    if rest:
        yield rest


def read_chunks(fh: BinaryIO, size: int = 1 << 16) -> Iterator[tuple[bytes, int]]:
    """Yield ``(chunk, lines)``: the runs of :func:`read_blocks` and how many lines each
    holds."""
    for chunk in read_blocks(fh, size):
        yield chunk, chunk.count(b"\n") + 1


def read_lines(
    fh: BinaryIO,
    follow: bool = False,
    should_stop: Callable[[], bool] | None = None,
    poll_s: float = 0.05,
    on_idle: Callable[[], None] | None = None,
) -> Iterator[tuple[int, bytes]]:
    """Yield ``(line_no, line)`` (1-based, without the line ending; blank lines skipped).

    With ``follow``, at end of file wait ``poll_s`` seconds and read again (a partial last
    line is held back until its newline arrives), calling ``on_idle`` while waiting; stop
    when ``should_stop()`` returns true.
    """
    line_no = 0
    if not follow:
        for raw in fh:
            line_no += 1
            line = raw.rstrip(b"\r\n")
            if line.strip():
                yield line_no, line
        return
    pending = b""
    while True:
        raw = fh.readline()
        if raw:
            if not raw.endswith(b"\n"):
                pending += raw
                continue
            raw = pending + raw
            pending = b""
            line_no += 1
            line = raw.rstrip(b"\r\n")
            if line.strip():
                yield line_no, line
            continue
        if should_stop is not None and should_stop():
            if pending.strip():
                line_no += 1
                yield line_no, pending.rstrip(b"\r\n")
            return
        if on_idle is not None:
            on_idle()
        time.sleep(poll_s)
