"""Suggestions for misspelt names: the closest of the known names to the one written.

Used by the checker (stages, functions, fields), the syntax-error messages (keywords) and
the rule-test loader (test-file keys).  Pure functions over strings; no state.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["closest", "did_you_mean"]


def closest(word: str, known: Iterable[str], cutoff: float = 0.75) -> str | None:
    """The name of ``known`` most like ``word`` (``difflib`` ratio at least ``cutoff``,
    compared case-insensitively), or ``None``.  ``word`` itself is never suggested."""
    names = {name.lower(): name for name in known if name != word}
    found = difflib.get_close_matches(word.lower(), list(names), n=1, cutoff=cutoff)
    return names[found[0]] if found else None


def did_you_mean(word: str, known: Iterable[str], cutoff: float = 0.75) -> str | None:
    """``"did you mean `NAME`?"`` for the closest known name, or ``None`` when none is close."""
    name = closest(word, known, cutoff)
    return f"did you mean `{name}`?" if name is not None else None
