"""Rule text → :class:`~cep.lang.ast.RuleFile`, with every syntax error of the file reported.

On a syntax error the parser reports it, keeps the rules that parsed before it and starts
again at the next line that begins with ``rule``, so a file with three broken rules yields
three diagnostics.  Friendly messages come from :mod:`cep.lang.syntax_errors`.  Each attempt
starts where the previous one stopped (the parser reads the text in place, its line count
carried over), so the work is linear in the size of the file however many rules are broken;
past :data:`~cep.lang.limits.MAX_SYNTAX_ERRORS` the errors are only counted.

The limits of :mod:`cep.lang.limits` that concern single tokens are enforced here: the file
size (before anything is parsed), string literals and backquoted names, whole numbers,
decimals, durations, and the nesting of groups (a rule nested too deeply is left out, so no
later pass recurses through it).
"""

from __future__ import annotations

import codecs
import io
import os
import re
from bisect import bisect_left
from dataclasses import dataclass, field, replace
from pathlib import Path as FsPath
from typing import Any

from lark import Lark, Token, Transformer_NonRecursive, Tree, v_args
from lark.exceptions import UnexpectedInput
from lark.lexer import LexerState, LexerThread, LineCounter
from lark.tree import Meta
from lark.utils import TextSlice

from cep.diagnostics import Diagnostic
from cep.lang.ast import (
    NOWHERE,
    WINDOW_STAGE,
    Attr,
    Binary,
    Call,
    Emit,
    Expr,
    IsNull,
    ListDecl,
    ListLit,
    Lit,
    Lookup,
    Modifier,
    Path,
    Rule,
    RuleFile,
    Skip,
    Span,
    Stage,
    Suppress,
    Unary,
    Window,
)
from cep.lang.grammar import parser
from cep.lang.limits import (
    MAX_DURATION_MS,
    MAX_FILE_BYTES,
    MAX_GROUP_DEPTH,
    MAX_INT,
    MAX_LITERAL_CHARS,
    MAX_SYNTAX_ERRORS,
)
from cep.lang.operators import OPERATORS, OperatorTable

__all__ = ["parse_text", "parse_file", "unquote_string"]

_RULE_LINE = re.compile(r"^[ \t]*(rule)\b", re.MULTILINE)

_CONTIGUITY = {
    "BEGIN": "begin", "NEXT": "next", "FOLLOWED_BY": "followed_by",
    "FOLLOWED_BY_ANY": "followed_by_any", "NOT_NEXT": "not_next",
    "NOT_FOLLOWED_BY": "not_followed_by",
}
_SKIP = {
    "NO_SKIP": "no_skip", "SKIP_TO_NEXT": "skip_to_next",
    "SKIP_PAST_LAST_EVENT": "skip_past_last_event", "SKIP_TO_FIRST": "skip_to_first",
    "SKIP_TO_LAST": "skip_to_last",
}
_DURATION_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\", '"': '"', "'": "'"}
_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|.)", re.DOTALL)


def unquote_string(token: str) -> str:
    """Decode a string literal as written (quotes included).

    Known escapes are ``\\n \\t \\r \\0 \\\\ \\" \\'``, ``\\uXXXX`` and ``\\UXXXXXXXX``; any
    other backslash pair is kept as written, so ``"\\d+"`` is the regex ``\\d+``.
    """

    def decode(m: re.Match[str]) -> str:
        esc = m.group(1)
        if len(esc) > 1:
            return chr(int(esc[1:], 16)) if int(esc[1:], 16) <= 0x10FFFF else m.group(0)
        return _ESCAPES.get(esc, m.group(0))

    return _ESCAPE.sub(decode, token[1:-1])


def _tok_span(tok: Token) -> Span:
    return Span(tok.line or 0, tok.column or 0, tok.end_line or 0, (tok.end_column or 1) - 1)


def _meta_span(meta: Meta) -> Span:
    if getattr(meta, "empty", True):
        return NOWHERE
    return Span(meta.line, meta.column, meta.end_line, meta.end_column - 1)


def _join(start: Span, end: Span) -> Span:
    return Span(start.line, start.col, end.end_line, end.end_col)


def _shown(text: str) -> str:
    """A number as written, shortened when long: ``12345678901234567890…`` (5,000 digits)."""
    return text if len(text) <= 24 else f"{text[:20]}… ({len(text):,} characters)"


@dataclass
class _Clause:
    keyword: str
    value: object
    span: Span


@dataclass
class _StageParts:
    """A stage before assembly: the trailing line-start ``within`` may still move out."""

    contiguity: str
    name: Token
    start: Span
    head_end: Span
    condition: Expr | None = None
    modifiers: list[Modifier] = field(default_factory=list)
    group: tuple[Stage, ...] | None = None

    def build(self, modifiers: list[Modifier] | None = None) -> Stage:
        mods = self.modifiers if modifiers is None else modifiers
        end = mods[-1].span if mods else self.head_end
        return Stage(self.contiguity, self.name.value, self.condition, tuple(mods),
                     span=_join(self.start, end), name_span=_tok_span(self.name),
                     group=self.group)


@dataclass
class _WindowParts:
    """``having …`` or ``all of (…)``: the stages it stands for and the window."""

    stages: tuple[Stage, ...]
    window: Window


@v_args(meta=True)
class _Builder(Transformer_NonRecursive[Token, list[Rule | ListDecl]]):
    """Lark tree → AST, without recursion (expressions may nest deeply).

    ``lines`` is the text of the whole file split at newlines.  Duplicate header clauses and
    tokens beyond the limits of :mod:`cep.lang.limits` are reported in ``diagnostics``; a
    rule whose groups nest too deeply is left out of the result.
    """

    def __init__(self, lines: list[str], path: str) -> None:
        super().__init__()
        self.lines = lines
        self.file = path
        self.diagnostics: list[Diagnostic] = []

    def _error(self, span: Span, message: str, hint: str | None = None) -> None:
        self.diagnostics.append(Diagnostic(self.file, span, message, hint=hint))

    # ------------------------------------------------------------------ tokens within limits

    def _string(self, tok: Token) -> str:
        """A string literal's value; ``""`` (and a diagnostic at its opening quote) when it is
        longer than :data:`MAX_LITERAL_CHARS`."""
        if len(tok.value) - 2 > MAX_LITERAL_CHARS:
            self._error(_first_char(tok),
                        f"string literal of {len(tok.value) - 2:,} characters; the limit is "
                        f"{MAX_LITERAL_CHARS:,}")
            return ""
        return unquote_string(tok.value)

    def _seg(self, tok: Token) -> str:
        """A path segment: a name, or a backquoted name without its quotes."""
        if tok.type != "QNAME":
            return tok.value
        if len(tok.value) - 2 > MAX_LITERAL_CHARS:
            self._error(_first_char(tok),
                        f"quoted name of {len(tok.value) - 2:,} characters; the limit is "
                        f"{MAX_LITERAL_CHARS:,}")
            return "_"
        return tok.value[1:-1]

    def _whole(self, tok: Token) -> int:
        """An INT token's value; 0 (and a diagnostic) above :data:`MAX_INT`."""
        digits = tok.value.lstrip("0")
        if len(digits) > len(str(MAX_INT)) or (digits and int(digits) > MAX_INT):
            self._error(_tok_span(tok), f"number out of range: {_shown(tok.value)}",
                        f"whole numbers are at most {MAX_INT:,} (2**63 - 1) in magnitude")
            return 0
        return int(digits or "0")

    def _decimal(self, tok: Token) -> float:
        """A DECIMAL token's value; 0.0 (and a diagnostic) when it is not a finite double."""
        value = float(tok.value)
        if value in (float("inf"), float("-inf")):
            self._error(_tok_span(tok), f"number out of range: {_shown(tok.value)}",
                        "decimals are at most about 1.8e308 in magnitude")
            return 0.0
        return value

    def _duration(self, tok: Token) -> int:
        """A DURATION token in milliseconds; :data:`MAX_DURATION_MS` (and a diagnostic) above
        it."""
        m = re.fullmatch(r"0*(\d+)(ms|s|m|h|d)", tok.value)
        assert m is not None, tok.value
        digits, unit = m.groups()
        scale = _DURATION_UNITS[unit]
        if len(digits) <= len(str(MAX_DURATION_MS)) and int(digits) * scale <= MAX_DURATION_MS:
            return int(digits) * scale
        self._error(_tok_span(tok), f"duration out of range: {_shown(tok.value)}",
                    f"a duration is at most {MAX_DURATION_MS:,} ms (2**53 - 1, about "
                    f"{MAX_DURATION_MS // 86_400_000 // 365:,} years)")
        return MAX_DURATION_MS

    # ------------------------------------------------------------------ rules

    def start(self, meta: Meta, children: list[Rule | ListDecl | None]
              ) -> list[Rule | ListDecl]:
        return [r for r in children if r is not None]

    def list_decl(self, meta: Meta, ch: list[Token]) -> ListDecl:
        return ListDecl("list", ch[1].value, self._string(ch[3]), None, _meta_span(meta),
                        _tok_span(ch[1]))

    def table_decl(self, meta: Meta, ch: list[Token]) -> ListDecl:
        col = self._string(ch[5]) if ch[5].type == "STRING" else ch[5].value
        return ListDecl("table", ch[1].value, self._string(ch[3]), col, _meta_span(meta),
                        _tok_span(ch[1]))

    def lookup(self, meta: Meta, ch: list[Any]) -> Lookup:
        return Lookup(ch[0].value, ch[1], _meta_span(meta))

    def rule(self, meta: Meta, children: list[Any]) -> Rule | None:
        name = children[0]
        assert isinstance(name, Token)
        for child in children[1:]:
            if isinstance(child, tuple) and self._too_deep(child[0]):
                return None
        seen: dict[str, _Clause] = {}
        emits: list[Emit] = []
        stages: tuple[Stage, ...] = ()
        within: _Clause | None = None
        window: Window | None = None
        for child in children[1:]:
            if isinstance(child, tuple):
                stages, within = child
            elif isinstance(child, _WindowParts):
                stages, window = child.stages, child.window
            elif isinstance(child, Emit):
                emits.append(child)
            elif isinstance(child, _Clause):
                if child.keyword in seen:
                    first = seen[child.keyword].span
                    self.diagnostics.append(Diagnostic(
                        self.file, child.span,
                        f"rule `{name}`: `{child.keyword}` is given twice",
                        hint=f"the first `{child.keyword}` is on line {first.line}"))
                else:
                    seen[child.keyword] = child
        clauses = dict(seen)
        if within is not None:
            clauses["within"] = within

        def value(key: str, default: Any) -> Any:
            return clauses[key].value if key in clauses else default

        return Rule(
            name=name.value, pattern=stages, span=_meta_span(meta), name_span=_tok_span(name),
            description=value("description", None),
            severity=value("severity", "medium"),
            tags=value("tags", ()),
            references=value("references", ()),
            author=value("author", None),
            sources=value("from", ()),
            where=value("where", None),
            key_by=value("key by", ()),
            within_ms=value("within", None),
            skip=value("after match", Skip()),
            emits=tuple(sorted(emits, key=lambda e: e.on_timeout)),
            spans=tuple((k, c.span) for k, c in clauses.items()),
            window=window,
            suppress=value("suppress for", None),
        )

    def _too_deep(self, stages: tuple[Stage, ...]) -> bool:
        """Report the first group nested deeper than :data:`MAX_GROUP_DEPTH` (walked without
        recursion); true when there is one."""
        todo = [(st, 1) for st in reversed(stages)]
        while todo:
            st, depth = todo.pop()
            if st.group is None:
                continue
            if depth > MAX_GROUP_DEPTH:
                self._error(Span(st.span.line, st.span.col, st.name_span.end_line,
                                 st.name_span.end_col),
                            f"groups nested more than {MAX_GROUP_DEPTH} deep",
                            "write the inner stages into the enclosing group")
                return True
            todo.extend((inner, depth + 1) for inner in reversed(st.group))
        return False

    def description(self, meta: Meta, ch: list[Token]) -> _Clause:
        return _Clause("description", self._string(ch[1]), _meta_span(meta))

    def severity(self, meta: Meta, ch: list[Token]) -> _Clause:
        return _Clause("severity", ch[1].value, _meta_span(meta))

    def tags(self, meta: Meta, ch: list[Token]) -> _Clause:
        return _Clause("tags", tuple(t.value for t in ch[1:]), _meta_span(meta))

    def references(self, meta: Meta, ch: list[Token]) -> _Clause:
        return _Clause("references", tuple(self._string(t) for t in ch[1:]), _meta_span(meta))

    def author(self, meta: Meta, ch: list[Token]) -> _Clause:
        return _Clause("author", self._string(ch[1]), _meta_span(meta))

    def sources(self, meta: Meta, ch: list[Token]) -> _Clause:
        return _Clause("from", tuple(t.value for t in ch[1:]), _meta_span(meta))

    def filter(self, meta: Meta, ch: list[Any]) -> _Clause:
        return _Clause("where", ch[1], _meta_span(meta))

    def key_by(self, meta: Meta, ch: list[Any]) -> _Clause:
        return _Clause("key by", tuple(ch[1:]), _meta_span(meta))

    # ------------------------------------------------------------------ pattern

    def pattern(
        self, meta: Meta, parts: list[_StageParts]
    ) -> tuple[tuple[Stage, ...], _Clause | None]:
        stages = [p.build() for p in parts[:-1]]
        last = parts[-1]
        mods = last.modifiers
        within: _Clause | None = None
        if mods and mods[-1].kind == "within" and self._starts_line(mods[-1].span):
            within = _Clause("within", mods[-1].ms, mods[-1].span)
            mods = mods[:-1]
        stages.append(last.build(mods))
        return tuple(stages), within

    def having(self, meta: Meta, ch: list[Any]) -> _WindowParts:
        span = _meta_span(meta)
        stage = Stage("begin", WINDOW_STAGE, None, (), span=span, name_span=_tok_span(ch[0]))
        return _WindowParts((stage,), Window("having", self._duration(ch[-1]), ch[1], span))

    def all_of(self, meta: Meta, ch: list[Any]) -> _WindowParts:
        members = tuple(c for c in ch if isinstance(c, Stage))
        return _WindowParts(members, Window("all_of", self._duration(ch[-1]), None,
                                            _meta_span(meta)))

    def member(self, meta: Meta, ch: list[Any]) -> Stage:
        name = ch[0]
        assert isinstance(name, Token)
        cond = ch[1][0] if len(ch) > 1 else None
        return Stage("begin", name.value, cond, (), span=_meta_span(meta),
                     name_span=_tok_span(name))

    def _starts_line(self, span: Span) -> bool:
        line = self.lines[span.line - 1] if 0 < span.line <= len(self.lines) else ""
        return line[: span.col - 1].strip() == ""

    def stage(self, meta: Meta, ch: list[Any]) -> _StageParts:
        contiguity, name = ch[0], ch[1]
        assert isinstance(contiguity, Token) and isinstance(name, Token)
        parts = _StageParts(_CONTIGUITY[contiguity.type], name, _tok_span(contiguity),
                            _tok_span(name))
        for c in ch[2:]:
            if isinstance(c, Modifier):
                parts.modifiers.append(c)
            elif isinstance(c, tuple):
                parts.condition, parts.head_end = c
        return parts

    def group(self, meta: Meta, ch: list[Any]) -> _StageParts:
        contiguity, name = ch[0], ch[1]
        assert isinstance(contiguity, Token) and isinstance(name, Token)
        parts = _StageParts(_CONTIGUITY[contiguity.type], name, _tok_span(contiguity),
                            _tok_span(name))
        inner: list[Stage] = []
        for c in ch[2:]:
            if isinstance(c, _StageParts):
                inner.append(c.build())
            elif isinstance(c, Token):
                parts.head_end = _tok_span(c)
            elif isinstance(c, Modifier):
                parts.modifiers.append(c)
        parts.group = tuple(inner)
        return parts

    def contiguity(self, meta: Meta, ch: list[Token]) -> Token:
        return ch[0]

    def condition(self, meta: Meta, ch: list[Any]) -> tuple[object, Span]:
        return ch[1], _meta_span(meta)

    def int_lit(self, meta: Meta, ch: list[Token]) -> int:
        n = self._whole(ch[-1])
        return -n if len(ch) == 2 else n

    def times(self, meta: Meta, ch: list[Any]) -> Modifier:
        return Modifier("times", _meta_span(meta), n=ch[1])

    def times_range(self, meta: Meta, ch: list[Any]) -> Modifier:
        return Modifier("times_range", _meta_span(meta), n=ch[1], m=ch[3])

    def times_or_more(self, meta: Meta, ch: list[Any]) -> Modifier:
        return Modifier("times_or_more", _meta_span(meta), n=ch[1])

    def one_or_more(self, meta: Meta, ch: list[Any]) -> Modifier:
        return Modifier("one_or_more", _meta_span(meta))

    def optional(self, meta: Meta, ch: list[Any]) -> Modifier:
        return Modifier("optional", _meta_span(meta))

    def greedy(self, meta: Meta, ch: list[Any]) -> Modifier:
        return Modifier("greedy", _meta_span(meta))

    def consecutive(self, meta: Meta, ch: list[Any]) -> Modifier:
        return Modifier("consecutive", _meta_span(meta))

    def allow_combinations(self, meta: Meta, ch: list[Any]) -> Modifier:
        return Modifier("allow_combinations", _meta_span(meta))

    def until(self, meta: Meta, ch: list[Any]) -> Modifier:
        return Modifier("until", _meta_span(meta), expr=ch[1])

    def within(self, meta: Meta, ch: list[Token]) -> Modifier:
        return Modifier("within", _meta_span(meta), ms=self._duration(ch[1]))

    # ------------------------------------------------------------------ after the pattern

    def skip(self, meta: Meta, ch: list[Token]) -> _Clause:
        stage = ch[2].value if len(ch) > 2 else None
        span = _meta_span(meta)
        return _Clause("after match", Skip(_SKIP[ch[1].type], stage, span), span)

    def suppress(self, meta: Meta, ch: list[Any]) -> _Clause:
        span = _meta_span(meta)
        by = tuple(c for c in ch[3:] if isinstance(c, Path))
        return _Clause("suppress for", Suppress(self._duration(ch[1]), by, span), span)

    def emit(self, meta: Meta, ch: list[Any]) -> Emit:
        sink = str(ch[2]) if len(ch) == 4 else "alerts"
        stream = len(ch) == 4 and getattr(ch[1], "type", "") == "TO_STREAM"
        body = ch[-1]
        assert isinstance(body, tuple)
        return Emit(tuple((name, expr) for name, expr, _ in body), sink=sink, on_timeout=False,
                    span=_meta_span(meta), field_spans=tuple(span for _, _, span in body),
                    stream=stream)

    def timeout_emit(self, meta: Meta, ch: list[Any]) -> Emit:
        return replace(self.emit(meta, ch), on_timeout=True)

    def emit_body(self, meta: Meta, ch: list[tuple[str, Expr, Span]]
                  ) -> tuple[tuple[str, Expr, Span], ...]:
        return tuple(ch)

    def emit_field(self, meta: Meta, ch: list[Any]) -> tuple[str, object, Span]:
        key = ch[0]
        assert isinstance(key, Token)
        name = self._string(key) if key.type == "STRING" else self._seg(key)
        return name, ch[1], _tok_span(key)

    # ------------------------------------------------------------------ expressions

    def binary(self, meta: Meta, ch: list[Any]) -> Binary:
        op = ch[1]
        assert isinstance(op, Token)
        text = " ".join(op.split())  # an operator's words joined by one space: its spelling
        return Binary(text, ch[0], ch[2], _meta_span(meta))

    def unary(self, meta: Meta, ch: list[Any]) -> Expr:
        op, operand = ch
        assert isinstance(op, Token)
        span = _meta_span(meta)
        if (op.type == "MINUS" and isinstance(operand, Lit)
                and isinstance(operand.value, int | float)
                and not isinstance(operand.value, bool)):
            return Lit(-operand.value, span, duration=operand.duration)
        return Unary("not" if op.type == "NOT" else "-", operand, span)

    def is_null(self, meta: Meta, ch: list[Any]) -> IsNull:
        op = ch[1]
        assert isinstance(op, Token)
        return IsNull(ch[0], op.type == "IS_NOT_NULL", _meta_span(meta))

    def attr(self, meta: Meta, ch: list[Any]) -> Attr:
        parts = tuple(self._seg(t) for t in ch[1:])
        return Attr(ch[0], parts, _meta_span(meta))

    def call(self, meta: Meta, ch: list[Any]) -> Call:
        name = ch[0]
        assert isinstance(name, Token)
        return Call(name.value, tuple(ch[1:]), _meta_span(meta))

    def path(self, meta: Meta, ch: list[Token]) -> Path:
        return Path(tuple(self._seg(t) for t in ch), _meta_span(meta))

    def list_lit(self, meta: Meta, ch: list[Expr]) -> ListLit:
        return ListLit(tuple(ch), _meta_span(meta))

    def string(self, meta: Meta, ch: list[Token]) -> Lit:
        return Lit(self._string(ch[0]), _meta_span(meta))

    def integer(self, meta: Meta, ch: list[Token]) -> Lit:
        return Lit(self._whole(ch[0]), _meta_span(meta))

    def decimal(self, meta: Meta, ch: list[Token]) -> Lit:
        return Lit(self._decimal(ch[0]), _meta_span(meta))

    def duration(self, meta: Meta, ch: list[Token]) -> Lit:
        return Lit(self._duration(ch[0]), _meta_span(meta), duration=True)

    def true(self, meta: Meta, ch: list[Token]) -> Lit:
        return Lit(True, _meta_span(meta))

    def false(self, meta: Meta, ch: list[Token]) -> Lit:
        return Lit(False, _meta_span(meta))

    def null(self, meta: Meta, ch: list[Token]) -> Lit:
        return Lit(None, _meta_span(meta))


def _first_char(tok: Token) -> Span:
    return Span(tok.line or 0, tok.column or 0, tok.line or 0, tok.column or 0)


# ---------------------------------------------------------------------- driving the parser


class _Cursor:
    """Where a parse attempt starts: an offset of ``text``, its 1-based line and the offset
    that line starts at.  It only moves forward, counting the newlines it passes over."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.line = 1
        self.line_start = 0

    def advance(self, pos: int) -> None:
        newlines = self.text.count("\n", self.pos, pos)
        if newlines:
            self.line += newlines
            self.line_start = self.text.rfind("\n", self.pos, pos) + 1
        self.pos = pos


def _parse_range(cursor: _Cursor, stop: int, built: Lark) -> Tree[Token]:
    """Parse ``text[cursor.pos:stop]`` with positions as in the whole text.

    Lark reads the range in place (a ``TextSlice``) and counts lines from the cursor's; its
    public ``parse`` would count them again from the start of the text, which made recovering
    from N errors cost N passes over the file.  Raises :class:`UnexpectedInput`.
    """
    front = built.parser
    lines = LineCounter("\n")
    lines.char_pos, lines.line, lines.line_start_pos = cursor.pos, cursor.line, cursor.line_start
    lines.column = cursor.pos - cursor.line_start + 1
    state = LexerState(TextSlice(cursor.text, cursor.pos, stop), lines)
    tree: Tree[Token] = front.parser.parse(LexerThread(front.lexer, state), "start")
    return tree


def _error_offset(err: UnexpectedInput, text: str) -> int:
    token = getattr(err, "token", None)
    if isinstance(token, Token) and token.type == "$END":
        return len(text)
    pos = err.pos_in_stream
    return len(text) if pos is None else pos


def _build(tree: Tree[Token], lines: list[str], path: str
           ) -> tuple[list[Rule | ListDecl], list[Diagnostic]]:
    builder = _Builder(lines, path)
    rules = builder.transform(tree)
    return rules, builder.diagnostics


def _parse_segment(cursor: _Cursor, stop: int, lines: list[str], path: str, built: Lark
                   ) -> tuple[list[Rule | ListDecl], list[Diagnostic]]:
    """Rules between two rule starts that already parsed once (empty if they somehow don't)."""
    try:
        tree = _parse_range(cursor, stop, built)
    except UnexpectedInput:
        return [], []
    return _build(tree, lines, path)


def _unparsable(text: str, path: str) -> Diagnostic | None:
    """Why ``text`` is not parsed at all: more than :data:`MAX_FILE_BYTES` of UTF-8, or a lone
    surrogate (a ``str`` that is no Unicode text, which no file decodes to); else ``None``."""
    if len(text) * 4 <= MAX_FILE_BYTES and text.isascii():
        return None
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:
        line = text.count("\n", 0, exc.start) + 1
        col = exc.start - text.rfind("\n", 0, exc.start)
        return Diagnostic(path, Span(line, col, line, col),
                          f"character U+{ord(text[exc.start]):04X} is a lone surrogate, not text")
    return _too_large(path, size) if size > MAX_FILE_BYTES else None


def _too_large(path: str, size: int) -> Diagnostic:
    return Diagnostic(path, Span(1, 1, 1, 1),
                      f"file of {size:,} bytes; a rule file holds at most {MAX_FILE_BYTES:,} "
                      "bytes (1 MiB)", hint="split the rules over several files")


def parse_text(text: str, path: str = "<string>", operators: OperatorTable = OPERATORS
               ) -> tuple[RuleFile, list[Diagnostic]]:
    """Parse the text of a rule file.

    Returns the :class:`RuleFile` holding every rule that parsed, and the diagnostics: one per
    syntax error (the parser resumes at the next line starting with ``rule``; after
    :data:`MAX_SYNTAX_ERRORS` of them one more diagnostic counts the rest), tokens beyond the
    limits, clauses given twice.  A text over :data:`MAX_FILE_BYTES` gets one diagnostic at
    1:1 and no parse.  Never raises on bad input; semantic checks are :mod:`cep.lang.check`'s
    job.  Time and memory are linear in the length of ``text``.  ``operators``: the
    comparison operators the grammar reads (a table other than the language's is for tests).
    """
    unparsable = _unparsable(text, path)
    if unparsable is not None:
        return RuleFile(path, text, ()), [unparsable]
    from cep.lang.syntax_errors import explain

    lines = text.split("\n")
    starts = [m.start(1) for m in _RULE_LINE.finditer(text)]
    rules: list[Rule | ListDecl] = []
    diags: list[Diagnostic] = []
    cursor = _Cursor(text)
    built = parser(operators)
    errors, first_unshown = 0, None
    while True:
        try:
            tree = _parse_range(cursor, len(text), built)
        except UnexpectedInput as err:
            err_pos = _error_offset(err, text)
            errors += 1
            if errors <= MAX_SYNTAX_ERRORS or first_unshown is None:
                diag = explain(err, text, path, err_pos, cursor.line_start, cursor.line)
                if errors <= MAX_SYNTAX_ERRORS:
                    diags.append(diag)
                else:
                    first_unshown = diag.span
            k = bisect_left(starts, err_pos)  # the rule that failed starts before starts[k]
            failing = starts[k - 1] if k and starts[k - 1] >= cursor.pos else cursor.pos
            if failing > cursor.pos:
                seg_rules, seg_diags = _parse_segment(cursor, failing, lines, path, built)
                rules.extend(seg_rules)
                diags.extend(seg_diags)
            k = bisect_left(starts, max(err_pos, cursor.pos + 1))
            if k == len(starts):
                break
            cursor.advance(starts[k])
            continue
        seg_rules, seg_diags = _build(tree, lines, path)
        rules.extend(seg_rules)
        diags.extend(seg_diags)
        break
    if first_unshown is not None:
        diags.append(Diagnostic(
            path, first_unshown, f"… and {errors - MAX_SYNTAX_ERRORS:,} more syntax error(s), "
            f"the first of them here (only the first {MAX_SYNTAX_ERRORS} are described)"))
    diags.sort(key=lambda d: (d.span.line, d.span.col))
    return RuleFile(path, text, tuple(r for r in rules if isinstance(r, Rule)),
                    tuple(d for d in rules if isinstance(d, ListDecl))), diags


def parse_file(path: str | FsPath) -> tuple[RuleFile, list[Diagnostic]]:
    """Read a UTF-8 rule file (a leading byte-order mark is ignored) and :func:`parse_text` it.

    A file that cannot be read or decoded yields an empty :class:`RuleFile` and one
    diagnostic without a position (no exception); one larger than :data:`MAX_FILE_BYTES`
    is not read beyond the limit (one diagnostic at 1:1).
    """
    name = str(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_FILE_BYTES + len(codecs.BOM_UTF8) + 1)
            size = max(os.fstat(fh.fileno()).st_size, len(data))
        if data.startswith(codecs.BOM_UTF8):
            size, data = size - len(codecs.BOM_UTF8), data[len(codecs.BOM_UTF8):]
        if len(data) > MAX_FILE_BYTES:
            return RuleFile(name, "", ()), [_too_large(name, size)]
        text = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8").read()  # as read_text
    except (OSError, UnicodeDecodeError) as exc:
        return RuleFile(name, "", ()), [Diagnostic(name, NOWHERE, f"cannot read file: {exc}")]
    return parse_text(text, name)
