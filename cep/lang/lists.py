"""Lists and lookup tables read from files (``list NAME from "PATH"``,
``table NAME from "PATH" key COLUMN``; docs/rule-language.md, *Lists and lookup tables*).

* :func:`check_declarations` — what can be told from the rule file alone: a name declared
  twice, a name that is also a stage, ``NAME[…]`` of something that is no table, a path that
  is absolute or leaves the rule file's directory.
* :func:`load_lists` — every list and table a parsed rule file declares, read from disk, or
  the diagnostics (``file:line:col`` in the list file, or at the declaration) that say why
  not.  Nothing is half loaded: a caller gets all of them or errors.
* :class:`ListData` — one list or table in memory: a ``frozenset`` of its values or a ``dict``
  of its rows by key, so a membership test or a look-up is one hash, whatever the size.  The
  compiled rules read it through its bound methods; a reload that keeps a rule version hands
  the running object the new contents (:meth:`ListData.take`).

Values are text: a string is looked up as it is, a whole number (not a bool) as its decimal
digits; anything else is in no list.
"""

from __future__ import annotations

import csv
import gc
import io
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from cep.diagnostics import Diagnostic
from cep.lang.ast import (
    NOWHERE,
    Binary,
    Expr,
    ListDecl,
    Lookup,
    Rule,
    RuleFile,
    Span,
    Stage,
    walk,
)
from cep.lang.ast import (
    Path as ExprPath,
)
from cep.lang.operators import OPERATORS

__all__ = ["ListData", "check_declarations", "load_lists", "resolve_path", "list_names_used"]

_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?\Z")
_NUMBER_START = frozenset("-0123456789")


def _text_key(x: Any) -> str | None:
    """The text under which ``x`` is looked up: a string as is, an int as its digits."""
    t = type(x)
    if t is str:
        return x  # type: ignore[no-any-return]
    if t is int:
        return str(x)
    return None


class ListData:
    """One loaded list (``keys`` a frozenset of its values) or table (``keys`` a dict from
    key text to the row's cells as written, in the order of ``columns``), declared by
    ``decl``; ``source`` is the file it was read from.

    The ``test*`` methods implement ``in``, ``not in``, ``in~`` and ``not in~`` (the
    case-folded set is built on first use); :meth:`row` implements ``NAME[x]`` and
    :meth:`cell` ``NAME[x].column``.  Cells are typed when they are read (:func:`_cell`), so
    loading a table costs one dict entry per row.  None raises.
    """

    __slots__ = ("decl", "name", "kind", "source", "keys", "columns", "_index", "_folded")

    def __init__(self, decl: ListDecl, source: str,
                 keys: frozenset[str] | dict[str, tuple[str, ...]],
                 columns: tuple[str, ...] = ()) -> None:
        self.decl = decl
        self.name = decl.name
        self.kind = decl.kind
        self.source = source
        self.keys = keys
        self.columns = columns
        self._index = {c: i for i, c in enumerate(columns)}
        self._folded: frozenset[str] | None = None

    def __len__(self) -> int:
        return len(self.keys)

    def test(self, x: Any) -> bool:
        """``x in NAME``."""
        k = _text_key(x)
        return k is not None and k in self.keys

    def test_not(self, x: Any) -> bool:
        """``x not in NAME``: false for null."""
        return x is not None and not self.test(x)

    def test_folded(self, x: Any) -> bool:
        """``x in~ NAME``: strings compared after :meth:`str.casefold`."""
        k = _text_key(x)
        if k is None:
            return False
        folded = self._folded
        if folded is None:
            folded = self._folded = frozenset(v.casefold() for v in self.keys)
        return k.casefold() in folded

    def test_folded_not(self, x: Any) -> bool:
        """``x not in~ NAME``: false for null."""
        return x is not None and not self.test_folded(x)

    def row(self, x: Any) -> dict[str, Any] | None:
        """``NAME[x]``: the table's row whose key is ``x`` as an object of its columns,
        or ``None``."""
        keys = self.keys
        k = _text_key(x)
        if k is None or type(keys) is not dict:
            return None
        cells = keys.get(k)
        if cells is None:
            return None
        return {c: _cell(v) for c, v in zip(self.columns, cells, strict=True)}

    def cell(self, x: Any, column: str) -> Any:
        """``NAME[x].column``: one cell of the row whose key is ``x``, or ``None``."""
        keys = self.keys
        k = _text_key(x)
        if k is None or type(keys) is not dict:
            return None
        cells = keys.get(k)
        i = self._index.get(column)
        return None if cells is None or i is None else _cell(cells[i])

    def take(self, other: ListData) -> None:
        """Hold ``other``'s contents from now on (a reload that keeps the rule version)."""
        self.decl, self.kind, self.source = other.decl, other.kind, other.source
        self.keys, self.columns, self._index = other.keys, other.columns, other._index
        self._folded = other._folded

    def __repr__(self) -> str:
        return f"ListData({self.kind} {self.name}: {len(self.keys):,} entries from {self.source})"


# --------------------------------------------------------------------------- checks


def _rule_exprs(rule: Rule) -> Iterator[Expr]:
    if rule.where is not None:
        yield rule.where
    todo: list[Stage] = list(rule.pattern)
    while todo:
        st = todo.pop()
        if st.group is not None:
            todo.extend(st.group)
        if st.condition is not None:
            yield st.condition
        yield from (m.expr for m in st.modifiers if m.expr is not None)
    for emit in rule.emits:
        yield from (e for _, e in emit.fields)


def _stage_names(stages: tuple[Stage, ...]) -> Iterator[Stage]:
    todo = list(stages)
    while todo:
        st = todo.pop()
        yield st
        if st.group is not None:
            todo.extend(st.group)


def list_names_used(rule: Rule, declared: Mapping[str, Any] | frozenset[str]) -> set[str]:
    """The declared names ``rule`` uses: right of a membership operator, or looked up."""
    used: set[str] = set()
    stages = {st.name for st in _stage_names(rule.pattern)}
    for expr in _rule_exprs(rule):
        for node in walk(expr):
            if isinstance(node, Lookup) and node.table in declared:
                used.add(node.table)
            elif (isinstance(node, Binary) and _tests_lists(node.op)
                  and isinstance(node.right, ExprPath) and len(node.right.parts) == 1
                  and node.right.parts[0] in declared and node.right.parts[0] not in stages):
                used.add(node.right.parts[0])
    return used


def _tests_lists(op: str) -> bool:
    """Whether a declared list may stand right of ``op`` (``in``, ``not in``, ``in~``…)."""
    spec = OPERATORS.get(op)
    return spec is not None and spec.list_test is not None


def resolve_path(decl: ListDecl, rule_file: str) -> Path | str:
    """The file a declaration names, or why it may not be read: an absolute path, or one
    that leads (links followed) out of the rule file's directory."""
    written = Path(decl.path)
    if written.is_absolute() or not decl.path:
        return "the path must be relative to the rule file's directory"
    base = Path(rule_file).resolve().parent
    target = (base / written).resolve()
    if not target.is_relative_to(base):
        return "the path leads out of the rule file's directory"
    return target


def check_declarations(rf: RuleFile) -> list[Diagnostic]:
    """Errors about the lists and tables of ``rf`` that need no file read: a name declared
    twice, a declared name that is also a stage name of one of the file's rules, ``NAME[…]``
    where ``NAME`` is no table of the file, and a path that is absolute or leaves the file's
    directory."""
    out: list[Diagnostic] = []
    seen: dict[str, ListDecl] = {}
    for decl in rf.lists:
        if decl.name in seen:
            out.append(Diagnostic(rf.path, decl.name_span,
                                  f"`{decl.name}` is declared twice in this file",
                                  hint=f"the first is on line {seen[decl.name].span.line}"))
            continue
        seen[decl.name] = decl
        if rf.path and not rf.path.startswith("<"):
            where = resolve_path(decl, rf.path)
            if isinstance(where, str):
                out.append(Diagnostic(rf.path, decl.span, f"{decl.kind} `{decl.name}`: {where}",
                                      hint="keep lists beside the rules, as "
                                           "`lists/admins.txt`"))
    for rule in rf.rules:
        for st in _stage_names(rule.pattern):
            if st.name in seen:
                out.append(Diagnostic(rf.path, st.name_span,
                                      f"rule `{rule.name}`: stage `{st.name}` has the name of "
                                      f"the {seen[st.name].kind} declared on line "
                                      f"{seen[st.name].span.line}", hint="rename the stage"))
        for expr in _rule_exprs(rule):
            for node in walk(expr):
                if not isinstance(node, Lookup):
                    continue
                found = seen.get(node.table)
                if found is None:
                    names = ", ".join(d.name for d in seen.values() if d.kind == "table")
                    out.append(Diagnostic(
                        rf.path, node.span, f"rule `{rule.name}`: `{node.table}` is not a "
                        "table of this file",
                        hint=(f"the tables are: {names}" if names else
                              f'declare it: `table {node.table} from "lists/{node.table}.csv" '
                              "key COLUMN`")))
                elif found.kind != "table":
                    out.append(Diagnostic(
                        rf.path, node.span, f"rule `{rule.name}`: `{node.table}` is a list: it "
                        "has no rows to look up", hint=f"test membership: `x in {node.table}`"))
    return out


# --------------------------------------------------------------------------- loading


def _cell(text: str) -> Any:
    """A table cell: empty → null, a JSON number → that number, else the text."""
    if not text:
        return None
    if text[0] not in _NUMBER_START:
        return text
    m = _JSON_NUMBER.match(text)
    if m is None:
        return text
    if m.group(1) is None and m.group(2) is None:
        return int(text)
    value = float(text)
    return value if value not in (float("inf"), float("-inf")) else text


def _read_text(path: Path) -> str:
    with open(path, "rb") as fh:
        data = fh.read()
    return data.decode("utf-8-sig")


def _load_list(decl: ListDecl, path: Path) -> ListData:
    values = frozenset(s for raw in _read_text(path).splitlines()
                       if (s := raw.strip()) and s[0] != "#")
    return ListData(decl, str(path), values)


class _TableError(ValueError):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line


def _load_table(decl: ListDecl, path: Path) -> ListData:
    text = _read_text(path)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise _TableError(1, "the file is empty: its first row must name the columns") from None
    if decl.key not in header:
        raise _TableError(1, f"no column `{decl.key}` (the columns are: {', '.join(header)})")
    at = header.index(decl.key or "")
    width = len(header)
    rows: dict[str, tuple[str, ...]] = {}
    line = reader.line_num
    for cells in reader:
        if len(cells) != width:
            start = line + 1
            line = reader.line_num
            if not cells:
                continue  # an empty line
            raise _TableError(start, f"{len(cells)} cells where the header has {width}")
        key = cells[at]
        if key in rows:
            raise _TableError(line + 1, f"the key {key!r} is given twice (first on line "
                                        f"{_line_of(text, key, at, line + 1)})")
        rows[key] = tuple(cells)  # tuples of strings: left alone by the cyclic collector
        line = reader.line_num
    return ListData(decl, str(path), rows, tuple(header))


def _line_of(text: str, key: str, at: int, before: int) -> int:
    """The line (before ``before``) of the first row of ``text`` whose key is ``key``: read
    again only to name it in an error."""
    reader = csv.reader(io.StringIO(text, newline=""))
    line = 0
    for cells in reader:
        if line and len(cells) > at and cells[at] == key:
            return line + 1
        line = reader.line_num
        if line >= before:
            break
    return 0


def load_lists(rf: RuleFile) -> tuple[dict[str, ListData], list[Diagnostic]]:
    """Read every list and table ``rf`` declares (paths relative to ``rf.path``'s directory).

    Returns name → :class:`ListData`, or (with an empty mapping) the diagnostics: a file that
    cannot be read or is no UTF-8 text (at the declaration), a CSV row that is malformed, has
    the wrong number of cells or repeats a key, a key column the header lacks (at
    ``list_file:line:1``).  Time and memory linear in the files' sizes."""
    loaded: dict[str, ListData] = {}
    diags: list[Diagnostic] = []
    for decl in rf.lists:
        if decl.name in loaded:
            continue  # declared twice: check_declarations' error
        where = resolve_path(decl, rf.path)
        if isinstance(where, str):
            diags.append(Diagnostic(rf.path, decl.span, f"{decl.kind} `{decl.name}`: {where}"))
            continue
        paused = gc.isenabled()
        gc.disable()  # a million rows are a million new lists: no collection pass per 700
        try:
            data = _load_list(decl, where) if decl.kind == "list" else _load_table(decl, where)
        except _TableError as exc:
            diags.append(Diagnostic(str(where), Span(exc.line, 1, exc.line, 1),
                                    f"table `{decl.name}`: {exc}"))
            continue
        except csv.Error as exc:
            diags.append(Diagnostic(str(where), NOWHERE,
                                    f"table `{decl.name}`: not valid CSV: {exc}"))
            continue
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else (
                "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else str(exc))
            diags.append(Diagnostic(rf.path, decl.span,
                                    f"{decl.kind} `{decl.name}`: cannot read {decl.path}: "
                                    f"{reason}"))
            continue
        finally:
            if paused:
                gc.enable()
        loaded[decl.name] = data
    return ({} if diags else loaded), diags
