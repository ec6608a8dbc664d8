"""A small writer of Python source: lines at the current indentation, blocks opened and closed.

Generated code (:mod:`cep.operator.fastpath`) is written statement by statement with
:meth:`CodeWriter.line`, inside blocks opened by :meth:`CodeWriter.block` (or
:meth:`CodeWriter.indent` / :meth:`CodeWriter.outdent`), the way template compilers such as
Jinja's ``CodeGenerator`` emit Python: the structure of the generated code follows the
structure of the generating code, and no text is patched after it was written.  Layer 2: no
imports from the project.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["CodeWriter"]

INDENT = "    "
"""One level of indentation: four spaces."""


class CodeWriter:
    """Python source under construction.

    ``level`` is the current indentation (levels of :data:`INDENT`); :attr:`count` is the
    number of lines written so far (a block that wrote none needs a ``pass``:
    :meth:`pass_if_empty`).

    Raises:
        ValueError: :meth:`outdent` below level 0.
    """

    __slots__ = ("_lines", "level")

    def __init__(self, level: int = 0) -> None:
        self._lines: list[str] = []
        self.level = level

    @property
    def count(self) -> int:
        """Lines written so far."""
        return len(self._lines)

    def line(self, text: str) -> None:
        """Write one line (a statement or a block header) at the current level."""
        self._lines.append(INDENT * self.level + text)

    def indent(self) -> None:
        """One level deeper for the lines that follow."""
        self.level += 1

    def outdent(self, levels: int = 1) -> None:
        """``levels`` levels back out."""
        if levels > self.level:
            raise ValueError(f"cannot outdent {levels} levels from level {self.level}")
        self.level -= levels

    @contextmanager
    def block(self, header: str) -> Iterator[None]:
        """Write ``header`` (``"if x:"``, ``"for y in z:"``, …) and indent what is written
        inside the ``with``; a block left empty gets a ``pass``."""
        self.line(header)
        self.indent()
        start = self.count
        yield
        self.pass_if_empty(start)
        self.outdent()

    def pass_if_empty(self, start: int) -> None:
        """Write ``pass`` when nothing was written since line ``start`` (:attr:`count`)."""
        if self.count == start:
            self.line("pass")

    def source(self) -> str:
        """The source written so far, one line per line, ending in a newline."""
        return "\n".join(self._lines) + "\n"
