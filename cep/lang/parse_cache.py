"""Parsed rule files kept between runs, so that loading unchanged rules needs no Lark.

Parsing a rule file takes Lark: importing it, loading its cached tables and building its
lexer cost about 40 ms of every ``cep`` command, more than the parse itself.  A file that
parsed without a diagnostic is therefore kept, pickled, in the user's cache directory
(``$XDG_CACHE_HOME/cep/rules`` or ``~/.cache/cep/rules``, beside the grammar's tables, see
:func:`cep.lang.grammar.parser`) under a hash of everything its parse depends on: the file's
name and text, the grammar, the source of the parser and of the syntax tree, Lark's version
(its ``__init__``) and Python's.  At most :data:`MAX_ENTRIES` files are kept (the least
recently written go first).  Any problem with the cache just means parsing again;
``CEP_NO_GRAMMAR_CACHE`` turns both caches off.  The cache is the user's own directory (mode
0700) and holds only what this module wrote there — the same trust as the grammar's tables,
which Lark also unpickles.
"""

from __future__ import annotations

import functools
import hashlib
import os
import pickle
import sys
import tempfile
from pathlib import Path

from cep.diagnostics import Diagnostic
from cep.lang.ast import RuleFile

__all__ = ["MAX_ENTRIES", "parse_file"]

MAX_ENTRIES = 256
"""Most parsed files kept; beyond it the least recently written are removed."""

_FORMAT = b"cep-parsed-rules-1"
_LANG = Path(__file__).parent


def parse_file(path: str | Path) -> tuple[RuleFile, list[Diagnostic]]:
    """:func:`cep.lang.parse.parse_file`, from the cache when this text parsed before.

    Returns the :class:`RuleFile` and the parse diagnostics, exactly as the parser does
    (a file that cannot be read or decoded included)."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError):
        from cep.lang.parse import parse_file as parse

        return parse(path)  # its diagnostic for an unreadable file
    entry = _entry(name, text)
    if entry is not None:
        found = _load(entry)
        if found is not None and found.path == name and found.text == text:
            return found, []
    from cep.lang.parse import parse_text

    rf, diags = parse_text(text, name)
    if entry is not None and not diags:
        _save(rf, entry)
    return rf, diags


@functools.cache
def _directory() -> Path | None:
    if os.environ.get("CEP_NO_GRAMMAR_CACHE"):
        return None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    if not os.path.isabs(base):
        return None
    return Path(base) / "cep" / "rules"


@functools.cache
def _parser_tag() -> bytes | None:
    """A hash of what every parse depends on besides the text; ``None`` when unreadable."""
    h = hashlib.sha256(_FORMAT)
    h.update(f"\0{sys.version}\0".encode())
    try:
        import importlib.util

        spec = importlib.util.find_spec("lark")  # its __init__ names its version
        assert spec is not None and spec.origin is not None
        files = [Path(spec.origin)] + [_LANG.parent / part for part in
                                       ("grammar/cep.lark", "lang/parse.py", "lang/ast.py")]
        for file in files:
            h.update(b"\0" + file.read_bytes())
    except Exception:  # noqa: BLE001 - no cache rather than a wrong one
        return None
    return h.digest()


def _entry(name: str, text: str) -> Path | None:
    directory = _directory()
    tag = _parser_tag()
    if directory is None or tag is None:
        return None
    h = hashlib.sha256(tag)
    h.update(name.encode("utf-8", "surrogatepass") + b"\0" + text.encode("utf-8"))
    return directory / f"{h.hexdigest()[:32]}.pickle"


def _load(entry: Path) -> RuleFile | None:
    try:
        with entry.open("rb") as fh:
            found = pickle.load(fh)
    except Exception:  # noqa: BLE001 - missing, stale or damaged: parse instead
        return None
    return found if type(found) is RuleFile else None


def _save(rf: RuleFile, entry: Path) -> None:
    """Write atomically (a temporary file renamed into place), then keep at most
    :data:`MAX_ENTRIES`; ignore any failure."""
    try:
        entry.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=entry.parent, prefix=".rules-")
        try:
            with os.fdopen(fd, "wb") as fh:
                pickle.dump(rf, fh, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, entry)
        except BaseException:
            os.unlink(tmp)
            raise
        names = [e for e in os.scandir(entry.parent) if e.name.endswith(".pickle")]
        if len(names) > MAX_ENTRIES:
            names.sort(key=lambda e: e.stat().st_mtime)
            for old in names[: len(names) - MAX_ENTRIES]:
                os.unlink(old.path)
    except Exception:  # noqa: BLE001 - a cache that cannot be written is no cache
        pass
