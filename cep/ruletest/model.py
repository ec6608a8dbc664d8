"""The parsed form of a rule-test file (``*.test.yaml``).

A test file names the rule files it exercises and lists tests; each test is an input (events
in arrival order, inline or from a file), an optional arrival order with explicit watermark
steps, and expectations: alerts, timed-out partial matches, late events and dead letters.
Every object keeps the line it was written on, so failures point back into the file.
All times are epoch milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cep.io.codecs import TimeSpec

__all__ = [
    "InputItem", "WatermarkStep", "Step", "AlertExpectation", "SideExpectation", "RuleTest",
    "TestFile", "TestFileError",
]


class TestFileError(Exception):
    """A test file that cannot be used: bad YAML, an unknown key, a wrong type.

    ``str()`` is ``file:line: error: message``, or ``file:line:col: error: message`` when the
    column (1-based) is known, followed by ``\n  hint: …`` when there is a hint."""

    __test__ = False  # not a pytest class

    def __init__(self, path: str, line: int, message: str, col: int | None = None,
                 hint: str | None = None) -> None:
        self.path = path
        self.line = line
        self.col = col
        self.message = message
        self.hint = hint
        where = f"{path}:{line}" + (f":{col}" if col is not None else "")
        super().__init__(f"{where}: error: {message}" + (f"\n  hint: {hint}" if hint else ""))


@dataclass
class InputItem:
    """One input as written: a mapping (an event, JSON-encoded before decoding) or a string
    (the raw line, for malformed input).  ``line`` is its line in the test file or input
    file (1-based)."""

    value: Any
    line: int


@dataclass(frozen=True)
class WatermarkStep:
    """An explicit watermark in the arrival order: the watermark moves to ``at_ms`` (it
    never moves back) and everything buffered at or below it is released."""

    at_ms: int
    line: int


Step = int | WatermarkStep
"""An arrival step: the 0-based index of an input, or a watermark."""


@dataclass
class AlertExpectation:
    """An expected alert (or, with ``timed_out``, an expected timed-out partial match).

    ``None`` fields are not checked.  ``data`` and ``meta`` are subsets: only the fields
    listed must be equal.  ``match`` maps every stage of the match to the 0-based input
    indices of its events, in match order, and must be complete.  ``written`` is the entry
    as it appears in the file, for messages."""

    line: int
    rule: str | None = None
    key: dict[str, Any] | None = None
    data: dict[str, Any] | None = None
    meta: dict[str, Any] | None = None
    match: dict[str, list[int]] | None = None
    severity: str | None = None
    sink: str | None = None
    timed_out: bool = False
    written: dict[str, Any] = field(default_factory=dict)


@dataclass
class SideExpectation:
    """An expected late event or dead letter: an input index, or a mapping of fields that
    must be present and equal (for late events, fields of the event; for dead letters,
    ``reason``, ``error`` (a substring of the message), ``raw``, ``line`` and ``input``)."""

    line: int
    index: int | None = None
    fields: dict[str, Any] | None = None


@dataclass
class RuleTest:
    """One test of a test file.

    Attributes:
        name, file, line: its name and where it is written.
        inputs: the input items in the order they are listed (indices are positions here).
        input_file: the file the inputs were read from, when ``input_file`` was used.
        input_format: ``json`` (JSON lines) or ``csv`` for an input file.
        columns: the column names of a headerless CSV input file (``None``: a header row).
        arrival: the order inputs arrive in (with watermark steps), or ``None`` for list order.
        max_out_of_orderness_ms: the source's bound on disorder (ms).
        source: the source name the events carry (for rules' ``from``).
        time: where the event time is and how it is written (unit or time format).
        end_of_input: at the end the watermark jumps to +∞ (windows close, timeouts fire).
        expect: expected alerts and timed-out partial matches; every emitted one must be listed.
        expect_late, expect_dead_letters: ``None`` when not checked; a list when every late
            event / dead letter must be listed.
    """

    __test__ = False  # not a pytest class

    name: str
    file: str
    line: int
    inputs: list[InputItem] = field(default_factory=list)
    input_file: str | None = None
    input_format: str = "json"
    columns: tuple[str, ...] | None = None
    arrival: list[Step] | None = None
    max_out_of_orderness_ms: int = 0
    source: str = "input"
    time: TimeSpec = field(default_factory=TimeSpec)
    end_of_input: bool = True
    expect: list[AlertExpectation] = field(default_factory=list)
    expect_late: list[SideExpectation] | None = None
    expect_dead_letters: list[SideExpectation] | None = None


@dataclass
class TestFile:
    """A loaded test file: the rule files it names (resolved paths) and its tests."""

    __test__ = False  # not a pytest class

    path: str
    rule_files: list[str] = field(default_factory=list)
    tests: list[RuleTest] = field(default_factory=list)
