"""Loading the Lark grammar of rule files, once per process.

The grammar lives in ``grammar/cep.lark`` at the top of the source tree and is shipped as
package data (``cep/grammar`` links to it).
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import sys
import tempfile
from pathlib import Path

import lark
from lark import Lark
from lark.lexer import PatternRE, PatternStr

__all__ = ["grammar_text", "parser", "terminal_text"]


@functools.cache
def grammar_text() -> str:
    """The text of ``cep.lark`` (package data: ``cep/grammar/cep.lark``)."""
    return (Path(__file__).parent.parent / "grammar" / "cep.lark").read_text(encoding="utf-8")


@functools.cache
def parser() -> Lark:
    """The LALR parser with the contextual lexer and position propagation, built once.

    Building the LALR tables takes about 0.15 s, a good part of a short ``cep run``; the
    built parser is therefore kept in the user's cache directory (``$XDG_CACHE_HOME/cep`` or
    ``~/.cache/cep``, under a name holding the hash of the grammar and the Lark and Python
    versions) and loaded from there when it is present.  Any problem with the cache just
    means building the parser again.

    Raises :class:`lark.exceptions.GrammarError` if the grammar itself is broken.
    """
    text = grammar_text()
    path = _cache_path(text)
    if path is not None and path.is_file():
        try:
            with path.open("rb") as fh:
                return Lark.load(fh)
        except Exception:  # noqa: BLE001 - a stale or damaged cache: build instead
            pass
    built = Lark(
        text,
        parser="lalr",
        lexer="contextual",
        propagate_positions=True,
        maybe_placeholders=False,
    )
    if path is not None:
        _save(built, path)
    return built


def _cache_path(text: str) -> Path | None:
    if os.environ.get("CEP_NO_GRAMMAR_CACHE"):
        return None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    if not os.path.isabs(base):
        return None
    tag = hashlib.sha256(f"{text}\0{lark.__version__}\0{sys.version}".encode()).hexdigest()
    return Path(base) / "cep" / f"grammar-{tag[:24]}.lark"


def _save(built: Lark, path: Path) -> None:
    """Write atomically (a temporary file renamed into place); ignore any failure."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".grammar-")
        try:
            with os.fdopen(fd, "wb") as fh:
                built.save(fh)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except Exception:  # noqa: BLE001 - read-only home, full disk: no cache, no harm
        pass


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
