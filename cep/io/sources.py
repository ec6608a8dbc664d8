"""File-mode sources: lines of a file or of standard input, with their line numbers.

``follow=True`` keeps reading a growing file as ``tail -f`` does, until ``stop()`` is called.
Given a line limit, no reader ever holds a longer line whole (:class:`OversizedLine`).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from typing import BinaryIO, NamedTuple

__all__ = ["read_lines", "read_blocks", "read_chunks", "open_input", "OversizedLine",
           "HEAD_BYTES"]


def open_input(path: str) -> BinaryIO:
    """Open ``path`` for binary reading; ``-`` is standard input."""
    if path == "-":
        return sys.stdin.buffer
    return open(path, "rb")  # noqa: SIM115


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
