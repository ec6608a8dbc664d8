"""The limits of the rule language, in one place.

Each bound keeps one cost of a rule file in proportion: reading and parsing it, checking and
compiling it, running it and checkpointing its state.  Text beyond a limit is a diagnostic at
the offending place (``file:line:col``), never an exception.  ``docs/rule-language.md``
(section "Limits") lists them for rule authors.

Layer 1, importing nothing: lower layers of the engine may read these too.
"""

from __future__ import annotations

__all__ = [
    "MAX_FILE_BYTES", "MAX_LITERAL_CHARS", "MAX_INT", "MAX_DURATION_MS", "MAX_TIMES",
    "MAX_PATTERN_STEPS", "MAX_GROUP_DEPTH", "MAX_EXPR_DEPTH", "MAX_SYNTAX_ERRORS",
]

MAX_FILE_BYTES = 1 << 20
"""Largest rule file, in bytes of UTF-8 (1 MiB); a larger file is not parsed at all."""

MAX_LITERAL_CHARS = 1 << 16
"""Longest string literal or backquoted name, in characters between its quotes (65,536)."""

MAX_INT = (1 << 63) - 1
"""Largest magnitude of a whole-number literal: a signed 64-bit integer, as in JSON output
and checkpoints.  Decimal literals must be finite doubles (``1e999`` is out of range)."""

MAX_DURATION_MS = (1 << 53) - 1
"""Longest duration anywhere in a rule (``within``, a stage's ``within``, a duration literal
such as ``5m``), in milliseconds (about 285,616 years).  Event times are bounded by the same
number, so an event time plus a window always fits in 64 bits."""

MAX_TIMES = 10_000
"""Largest count in ``times N``, ``times N to M`` and ``times N or more``: the automaton has
a state (two for the optional ones) for each counted event."""

MAX_PATTERN_STEPS = 20_000
"""Most events one pattern may count through, stage by stage: a stage counts as its largest
``times`` bound (1 without), a group as that bound times the sum of its stages.  This bounds
the automaton's size, which counts inside nested groups would otherwise multiply."""

MAX_GROUP_DEPTH = 32
"""Deepest nesting of groups (``begin g ( … )`` inside another group)."""

MAX_EXPR_DEPTH = 150
"""Deepest nesting of an expression (a literal or a field is depth 1); checking, formatting
and compiling expressions recurse."""

MAX_SYNTAX_ERRORS = 100
"""Syntax errors reported per file; the rest are counted in one last diagnostic."""
