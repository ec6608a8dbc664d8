"""Parsed rule files kept between runs, so that loading unchanged rules needs no Lark.

Parsing a rule file takes Lark: importing it, loading its cached tables and building its
lexer cost about 40 ms of every ``cep`` command, more than the parse itself (a process that
loads ``rules/`` and ``examples/rules``: 0.08 s with this cache, 0.15 s without, 0.25 s
without the grammar's cached tables either).  A file that
parsed without a diagnostic is therefore kept, pickled, in the user's private cache directory
(``$XDG_CACHE_HOME/cep/rules`` or ``~/.cache/cep/rules``, beside the grammar's tables, see
:func:`cep.lang.grammar.parser`) under a hash of everything its parse depends on: the file's
name and text, the grammar, the source of the parser and of the syntax tree, Lark's version
(its ``__init__``) and Python's.  At most :data:`MAX_ENTRIES` files are kept (the least
recently written go first).  Any problem with the cache just means parsing again;
``CEP_NO_GRAMMAR_CACHE`` turns both caches off.

Unpickling runs code, so an entry is read only from a directory that
:mod:`cep.lang.cache_dir` has verified on this very call (the user's own, ``0700``, no
symbolic link on the way) and only when the file is the user's and writable by nobody else.
"""

from __future__ import annotations

import functools
import hashlib
import pickle
import re
import sys
from pathlib import Path

from cep.diagnostics import Diagnostic
from cep.lang.ast import NOWHERE, RuleFile, Span
from cep.lang.cache_dir import CacheDir, base_directory, open_cache

__all__ = ["MAX_ENTRIES", "parse_file"]

MAX_ENTRIES = 256
"""Most parsed files kept; beyond it the least recently written are removed."""

_FORMAT = b"cep-parsed-rules-1"
_LANG = Path(__file__).parent


def parse_file(path: str | Path) -> tuple[RuleFile, list[Diagnostic]]:
    """:func:`cep.lang.parse.parse_file`, from the cache when this text parsed before.

    Returns the :class:`RuleFile` and the parse diagnostics, as the parser does (a file that
    cannot be read included), except for a file that is not a rule file: not UTF-8 text,
    holding control characters (binary data), or not beginning with ``rule`` after blank
    lines and comments.  Such a file (``/etc/passwd``, a process's environment) gets one
    diagnostic that says so without quoting it, and an empty :class:`RuleFile` whose empty
    ``text`` no caret rendering can echo."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError:
        from cep.lang.parse import parse_file as parse

        return parse(path)  # its diagnostic for an unreadable file
    except UnicodeDecodeError:
        return _not_rules(name, "it is not UTF-8 text")
    reason = _not_rule_text(text)
    if reason is not None:
        return _not_rules(name, reason)
    start = _LEADING.match(text)
    at = start.end() if start else 0
    if at < len(text) and not _RULE.match(text, at):
        return _no_rule_keyword(name, text, at)
    key = _key(name, text)
    if key is not None:
        with open_cache("rules") as cache:
            found = _load(cache, key) if cache is not None else None
        if found is not None and found.path == name and found.text == text:
            return found, []
    from cep.lang.parse import parse_text

    rf, diags = parse_text(text, name)
    if key is not None and not diags:
        with open_cache("rules") as cache:
            if cache is not None:
                _save(cache, key, rf)
    return rf, diags


_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")
_LEADING = re.compile(r"(?:\s+|#[^\n]*)*")
_RULE = re.compile(r"(?:rule|list|table)\b")


def _not_rule_text(text: str) -> str | None:
    """Why ``text`` is not a rule file, or ``None`` when it may be one (an empty file is)."""
    if _CONTROL.search(text):
        return "it holds control characters (binary data?)"
    return None


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,31}(?![A-Za-z0-9_])")


def _no_rule_keyword(name: str, text: str, at: int) -> tuple[RuleFile, list[Diagnostic]]:
    """A text that does not begin with ``rule``: one diagnostic at its first token, naming the
    token only when it is a typo of ``rule`` (``rul``, ``Rule``), never quoting the line (the
    file may be anything: its content is not echoed)."""
    line = text.count("\n", 0, at) + 1
    col = at - (text.rfind("\n", 0, at) + 1) + 1
    word = _WORD.match(text, at)
    typo = word is not None and _near_rule(word.group())
    found = f"`{word.group()}`" if word is not None and typo else "something else"
    hint = ("did you mean `rule`?" if typo
            else "a rule file is UTF-8 text of `rule NAME … end` blocks")
    span = Span(line, col, line, col + (len(word.group()) - 1 if word is not None else 0))
    return RuleFile(name, "", ()), [Diagnostic(
        name, span, f"expected `rule`, found {found}; the rest of the file is not read",
        hint=hint)]


def _near_rule(word: str) -> bool:
    """``word`` is one edit from ``rule`` (a typo), case aside."""
    w, r = word.lower(), "rule"
    if w == r:
        return True
    if abs(len(w) - len(r)) > 1:
        return False
    if len(w) == len(r):
        return sum(a != b for a, b in zip(w, r, strict=True)) <= 1
    short, long_ = (w, r) if len(w) < len(r) else (r, w)
    return any(long_[:i] + long_[i + 1:] == short for i in range(len(long_)))


def _not_rules(name: str, reason: str) -> tuple[RuleFile, list[Diagnostic]]:
    return RuleFile(name, "", ()), [Diagnostic(
        name, NOWHERE, f"not a rule file: {reason}; its content is not shown",
        hint="a rule file is UTF-8 text of `rule NAME … end` blocks")]


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
                                       ("grammar/cep.lark", "lang/parse.py", "lang/ast.py",
                                        "lang/operators.py")]
        for file in files:
            h.update(b"\0" + file.read_bytes())
    except Exception:  # noqa: BLE001 - no cache rather than a wrong one
        return None
    return h.digest()


def _key(name: str, text: str) -> str | None:
    """The entry's file name for ``name`` with ``text``; ``None`` when there is no cache."""
    tag = _parser_tag()
    if tag is None or base_directory() is None:
        return None
    h = hashlib.sha256(tag)
    h.update(name.encode("utf-8", "surrogatepass") + b"\0" + text.encode("utf-8"))
    return f"{h.hexdigest()[:32]}.pickle"


def _entry(name: str, text: str) -> Path | None:
    """Where the entry for ``name`` with ``text`` is kept (``None``: no cache)."""
    key, base = _key(name, text), base_directory()
    return None if key is None or base is None else base / "rules" / key


def _load(cache: CacheDir, key: str) -> RuleFile | None:
    data = cache.read(key)
    if data is None:
        return None
    try:
        found = pickle.loads(data)
    except Exception:  # noqa: BLE001 - stale or damaged: parse instead
        return None
    return found if type(found) is RuleFile else None


def _save(cache: CacheDir, key: str, rf: RuleFile) -> None:
    """Write the entry, then keep at most :data:`MAX_ENTRIES`; ignore any failure."""
    try:
        data = pickle.dumps(rf, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # noqa: BLE001 - a cache that cannot be written is no cache
        return
    cache.write(key, data)
    cache.prune(".pickle", MAX_ENTRIES)
