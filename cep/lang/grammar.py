"""Loading the Lark grammar of rule files, once per process.

The grammar lives in ``grammar/cep.lark`` at the top of the source tree and is shipped as
package data (``cep/grammar`` links to it).  The comparison, membership, text and matching
operators are not written there: the lines ``// @operators: …`` stand where
:mod:`cep.lang.operators` writes their alternatives of ``predicate`` and their terminals, from
the table the parser is built for.
"""

from __future__ import annotations

import functools
import hashlib
import io
import re
import sys
from pathlib import Path

import lark
from lark import Lark
from lark.lexer import PatternRE, PatternStr

from cep.lang.cache_dir import open_cache
from cep.lang.operators import (
    COMPARE_TERMINAL,
    OPERATORS,
    OperatorTable,
    grammar_alternatives,
    grammar_terminals,
)

__all__ = ["grammar_text", "parser", "terminal_text"]


_ALTERNATIVES = "// @operators: the operators' alternatives"
_TERMINALS = "// @operators: terminals"


@functools.cache
def grammar_file() -> str:
    """The text of ``cep.lark`` as written (package data: ``cep/grammar/cep.lark``)."""
    return (Path(__file__).parent.parent / "grammar" / "cep.lark").read_text(encoding="utf-8")


@functools.cache
def grammar_text(operators: OperatorTable = OPERATORS) -> str:
    """The grammar: ``cep.lark`` with the operators of ``operators`` written in where its
    ``// @operators: …`` lines stand (each must be there exactly once)."""
    out = []
    for line in grammar_file().split("\n"):
        if line.strip().startswith(_ALTERNATIVES):
            out.append(grammar_alternatives(operators))
        elif line.strip().startswith(_TERMINALS):
            out.append(grammar_terminals(operators))
        else:
            out.append(line)
    marked = [line.strip() for line in grammar_file().split("\n")
              if line.strip().startswith("// @operators:")]
    if len(marked) != 2 or not (marked[0].startswith(_ALTERNATIVES)
                                and marked[1].startswith(_TERMINALS)):
        raise lark.exceptions.GrammarError("cep.lark must hold each `// @operators:` line once")
    return "\n".join(out)


@functools.cache
def parser(operators: OperatorTable = OPERATORS) -> Lark:
    """The LALR parser with the contextual lexer and position propagation, built once.

    Building the LALR tables takes about 0.15 s, a good part of a short ``cep run``; the
    built parser is therefore kept in the user's private cache directory
    (``$XDG_CACHE_HOME/cep`` or ``~/.cache/cep``, verified by :mod:`cep.lang.cache_dir`
    before anything in it is unpickled), under a name holding the hash of the grammar and
    the Lark and Python versions, and loaded from there when it is present.  Any problem
    with the cache just means building the parser again.

    ``operators``: the operators it reads (a table other than the language's is for tests).

    Raises :class:`lark.exceptions.GrammarError` if the grammar itself is broken.
    """
    text = grammar_text(operators)
    name = _cache_name(text)
    with open_cache() as cache:
        data = cache.read(name) if cache is not None else None
    if data is not None:
        try:
            return Lark.load(io.BytesIO(data))
        except Exception:  # noqa: BLE001 - a stale or damaged cache: build instead
            pass
    built = Lark(
        text,
        parser="lalr",
        lexer="contextual",
        propagate_positions=True,
        maybe_placeholders=False,
    )
    with open_cache() as cache:
        if cache is not None:
            buf = io.BytesIO()
            built.save(buf)
            cache.write(name, buf.getvalue())
    return built


def _cache_name(text: str) -> str:
    tag = hashlib.sha256(f"{text}\0{lark.__version__}\0{sys.version}".encode()).hexdigest()
    return f"grammar-{tag[:24]}.lark"


_DESCRIPTIONS = {
    "NAME": "a name",
    "QNAME": "a `quoted` name",
    "TAG": "a tag",
    "STRING": "a string",
    "INT": "a whole number",
    "DECIMAL": "a number",
    "DURATION": "a duration such as 30s or 5m",
    COMPARE_TERMINAL: "a comparison (" + " ".join(
        op.spelling for op in OPERATORS if op.terminal == COMPARE_TERMINAL) + ")",
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
