"""Diagnostics: a message tied to a region of a file, rendered as compilers do.

``render`` produces::

    rules/login.cep:7:22: error: rule `brute`: unknown function `trim`
        next again where trim(outcome) == "failure"
                         ^~~~~~~~~~~~~
      hint: the functions are: …

Layer 0: imports nothing from the project; a span is anything with 1-based inclusive
``line``, ``col``, ``end_line`` and ``end_col`` (such as :class:`cep.lang.ast.Span`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

__all__ = ["Diagnostic", "SpanLike", "render", "render_all", "has_errors"]


class SpanLike(Protocol):
    """A region of a file: 1-based line and column of its first and last character."""

    @property
    def line(self) -> int: ...
    @property
    def col(self) -> int: ...
    @property
    def end_line(self) -> int: ...
    @property
    def end_col(self) -> int: ...


@dataclass(frozen=True)
class Diagnostic:
    """One problem found in a file.

    ``span`` is 1-based and inclusive (usually a :class:`cep.lang.ast.Span`); line 0 means
    the problem concerns the file as a whole.  ``severity`` is ``"error"`` or ``"warning"``.
    """

    file: str
    span: SpanLike
    message: str
    severity: str = "error"
    hint: str | None = None

    @property
    def is_error(self) -> bool:
        """True for errors, false for warnings."""
        return self.severity == "error"


def _caret_line(source_line: str, span: SpanLike) -> str:
    col = max(span.col, 1)
    prefix = "".join("\t" if ch == "\t" else " " for ch in source_line[: col - 1])
    if span.end_line == span.line:
        last = max(span.end_col, col)
    else:
        last = max(len(source_line), col)
    return prefix + "^" + "~" * (last - col)


def render(diag: Diagnostic, source_text: str | None) -> str:
    """Render one diagnostic: ``file:line:col: severity: message``, the source line, a caret
    line (``^`` under the column, ``~`` up to the span's end on that line) and ``  hint: …``.

    Without a position (line 0) or without ``source_text`` (``None`` or empty: a file whose
    content is not to be shown) only the first line (``file:`` or ``file:line:col:``) and the
    hint are produced.  The result has no trailing newline.
    """
    span = diag.span
    if span.line <= 0:
        out = [f"{diag.file}: {diag.severity}: {diag.message}"]
    else:
        out = [f"{diag.file}:{span.line}:{span.col}: {diag.severity}: {diag.message}"]
        if source_text:
            lines = source_text.split("\n")
            if span.line <= len(lines):
                source_line = lines[span.line - 1].rstrip("\r")
                out.append(source_line)
                out.append(_caret_line(source_line, span))
    if diag.hint:
        out.append(f"  hint: {diag.hint}")
    return "\n".join(out)


def render_all(diags: Iterable[Diagnostic], sources: dict[str, str] | None = None) -> str:
    """Render several diagnostics separated by newlines; ``sources`` maps a file to its text.

    Diagnostics are rendered in the order given; the result ends with a newline unless empty.
    """
    sources = sources or {}
    parts = [render(d, sources.get(d.file)) for d in diags]
    return "".join(p + "\n" for p in parts)


def has_errors(diags: Iterable[Diagnostic]) -> bool:
    """True when at least one diagnostic is an error (warnings do not count)."""
    return any(d.severity == "error" for d in diags)
