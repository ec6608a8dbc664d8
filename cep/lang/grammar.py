"""Loading the Lark grammar of rule files, once per process.

The grammar lives in ``grammar/cep.lark`` at the top of the source tree and is shipped as
package data (``cep/grammar`` links to it).
"""

from __future__ import annotations

import functools
import importlib.resources
import re

from lark import Lark
from lark.lexer import PatternRE, PatternStr

__all__ = ["grammar_text", "parser", "terminal_text"]


@functools.cache
def grammar_text() -> str:
    """The text of ``cep.lark`` (read through :mod:`importlib.resources`)."""
    resource = importlib.resources.files("cep") / "grammar" / "cep.lark"
    return resource.read_text(encoding="utf-8")


@functools.cache
def parser() -> Lark:
    """The LALR parser with the contextual lexer and position propagation, built once.

    Raises :class:`lark.exceptions.GrammarError` if the grammar itself is broken.
    """
    return Lark(
        grammar_text(),
        parser="lalr",
        lexer="contextual",
        propagate_positions=True,
        maybe_placeholders=False,
    )


_DESCRIPTIONS = {
    "NAME": "a name",
    "QNAME": "a `quoted` name",
    "TAG": "a tag",
    "STRING": "a string",
    "INT": "a whole number",
    "DECIMAL": "a number",
    "DURATION": "a duration such as 30s or 5m",
    "COMPARE": "a comparison (== != < <= > >=)",
    "$END": "the end of the file",
}


@functools.cache
def terminal_text(name: str) -> str:
    """How to show terminal ``name`` in a message: ``"`followed by`"``, ``"a name"``, …"""
    if name in _DESCRIPTIONS:
        return _DESCRIPTIONS[name]
    try:
        term = parser().get_terminal(name)
    except KeyError:
        return name
    pattern = term.pattern
    if isinstance(pattern, PatternStr):
        return f"`{pattern.value}`"
    if isinstance(pattern, PatternRE):
        words = re.sub(r"\\s\+", " ", pattern.value).replace("\\b", "")
        if re.fullmatch(r"[a-z ]+", words):
            return f"`{words}`"
    return name
