"""Rule text → :class:`~cep.lang.ast.RuleFile`, with every syntax error of the file reported.

On a syntax error the parser reports it, keeps the rules that parsed before it and starts
again at the next line that begins with ``rule``, so a file with three broken rules yields
three diagnostics.  Friendly messages come from :mod:`cep.lang.syntax_errors`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path as FsPath
from typing import Any

from lark import Token, Transformer_NonRecursive, Tree, v_args
from lark.exceptions import UnexpectedInput
from lark.tree import Meta

from cep.diagnostics import Diagnostic
from cep.lang.ast import (
    NOWHERE,
    Attr,
    Binary,
    Call,
    Emit,
    Expr,
    IsNull,
    ListLit,
    Lit,
    Modifier,
    Path,
    Rule,
    RuleFile,
    Skip,
    Span,
    Stage,
    Unary,
)
from cep.lang.grammar import parser

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


def _seg(tok: Token) -> str:
    return tok.value[1:-1] if tok.type == "QNAME" else tok.value


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


@v_args(meta=True)
class _Builder(Transformer_NonRecursive[Token, list[Rule]]):
    """Lark tree → AST, without recursion (expressions may nest deeply).

    Duplicate header clauses are reported in ``diagnostics``.
    """

    def __init__(self, text: str, path: str) -> None:
        super().__init__()
        self.lines = text.split("\n")
        self.file = path
        self.diagnostics: list[Diagnostic] = []

    # ------------------------------------------------------------------ rules

    def start(self, meta: Meta, children: list[Rule]) -> list[Rule]:
        return list(children)

    def rule(self, meta: Meta, children: list[Any]) -> Rule:
        name = children[0]
        assert isinstance(name, Token)
        seen: dict[str, _Clause] = {}
        emits: list[Emit] = []
        stages: tuple[Stage, ...] = ()
        within: _Clause | None = None
        for child in children[1:]:
            if isinstance(child, tuple):
                stages, within = child
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
            sources=value("from", ()),
            where=value("where", None),
            key_by=value("key by", ()),
            within_ms=value("within", None),
            skip=value("after match", Skip()),
            emits=tuple(sorted(emits, key=lambda e: e.on_timeout)),
            spans=tuple((k, c.span) for k, c in clauses.items()),
        )

    def description(self, meta: Meta, ch: list[Token]) -> _Clause:
        return _Clause("description", unquote_string(ch[1].value), _meta_span(meta))

    def severity(self, meta: Meta, ch: list[Token]) -> _Clause:
        return _Clause("severity", ch[1].value, _meta_span(meta))

    def tags(self, meta: Meta, ch: list[Token]) -> _Clause:
        return _Clause("tags", tuple(t.value for t in ch[1:]), _meta_span(meta))

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
        n = int(ch[-1].value)
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
        return Modifier("within", _meta_span(meta), ms=_duration_ms(ch[1].value))

    # ------------------------------------------------------------------ after the pattern

    def skip(self, meta: Meta, ch: list[Token]) -> _Clause:
        stage = ch[2].value if len(ch) > 2 else None
        span = _meta_span(meta)
        return _Clause("after match", Skip(_SKIP[ch[1].type], stage, span), span)

    def emit(self, meta: Meta, ch: list[Any]) -> Emit:
        sink = str(ch[2]) if len(ch) == 4 else "alerts"
        body = ch[-1]
        assert isinstance(body, tuple)
        return Emit(tuple((name, expr) for name, expr, _ in body), sink=sink, on_timeout=False,
                    span=_meta_span(meta), field_spans=tuple(span for _, _, span in body))

    def timeout_emit(self, meta: Meta, ch: list[Any]) -> Emit:
        return replace(self.emit(meta, ch), on_timeout=True)

    def emit_body(self, meta: Meta, ch: list[tuple[str, Expr, Span]]
                  ) -> tuple[tuple[str, Expr, Span], ...]:
        return tuple(ch)

    def emit_field(self, meta: Meta, ch: list[Any]) -> tuple[str, object, Span]:
        key = ch[0]
        assert isinstance(key, Token)
        name = unquote_string(key.value) if key.type == "STRING" else _seg(key)
        return name, ch[1], _tok_span(key)

    # ------------------------------------------------------------------ expressions

    def binary(self, meta: Meta, ch: list[Any]) -> Binary:
        op = ch[1]
        assert isinstance(op, Token)
        text = op.value if op.type == "COMPARE" or len(op.value) == 1 else " ".join(op.split())
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
        parts = tuple(_seg(t) for t in ch[1:])
        return Attr(ch[0], parts, _meta_span(meta))

    def call(self, meta: Meta, ch: list[Any]) -> Call:
        name = ch[0]
        assert isinstance(name, Token)
        return Call(name.value, tuple(ch[1:]), _meta_span(meta))

    def path(self, meta: Meta, ch: list[Token]) -> Path:
        return Path(tuple(_seg(t) for t in ch), _meta_span(meta))

    def list_lit(self, meta: Meta, ch: list[Expr]) -> ListLit:
        return ListLit(tuple(ch), _meta_span(meta))

    def string(self, meta: Meta, ch: list[Token]) -> Lit:
        return Lit(unquote_string(ch[0].value), _meta_span(meta))

    def integer(self, meta: Meta, ch: list[Token]) -> Lit:
        return Lit(int(ch[0].value), _meta_span(meta))

    def decimal(self, meta: Meta, ch: list[Token]) -> Lit:
        return Lit(float(ch[0].value), _meta_span(meta))

    def duration(self, meta: Meta, ch: list[Token]) -> Lit:
        return Lit(_duration_ms(ch[0].value), _meta_span(meta), duration=True)

    def true(self, meta: Meta, ch: list[Token]) -> Lit:
        return Lit(True, _meta_span(meta))

    def false(self, meta: Meta, ch: list[Token]) -> Lit:
        return Lit(False, _meta_span(meta))

    def null(self, meta: Meta, ch: list[Token]) -> Lit:
        return Lit(None, _meta_span(meta))


def _duration_ms(text: str) -> int:
    m = re.fullmatch(r"(\d+)(ms|s|m|h|d)", text)
    assert m is not None, text
    return int(m.group(1)) * _DURATION_UNITS[m.group(2)]


# ---------------------------------------------------------------------- driving the parser


def _blank_before(text: str, pos: int) -> str:
    """``text`` with everything before ``pos`` turned into spaces (newlines kept), so that
    positions reported by the parser stay those of the original text."""
    if pos == 0:
        return text
    return re.sub(r"[^\n]", " ", text[:pos]) + text[pos:]


def _error_offset(err: UnexpectedInput, text: str) -> int:
    token = getattr(err, "token", None)
    if isinstance(token, Token) and token.type == "$END":
        return len(text)
    pos = err.pos_in_stream
    return len(text) if pos is None else pos


def _build(tree: Tree[Token], text: str, path: str) -> tuple[list[Rule], list[Diagnostic]]:
    builder = _Builder(text, path)
    rules = builder.transform(tree)
    return rules, builder.diagnostics


def _parse_segment(text: str, start: int, stop: int, path: str
                   ) -> tuple[list[Rule], list[Diagnostic]]:
    """Rules between two rule starts that already parsed once (empty if they somehow don't)."""
    try:
        tree = parser().parse(_blank_before(text[:stop], start))
    except UnexpectedInput:
        return [], []
    return _build(tree, text, path)


def parse_text(text: str, path: str = "<string>") -> tuple[RuleFile, list[Diagnostic]]:
    """Parse the text of a rule file.

    Returns the :class:`RuleFile` holding every rule that parsed, and the diagnostics: one per
    syntax error (the parser resumes at the next line starting with ``rule``) plus clauses
    given twice.  Never raises on bad input; semantic checks are :mod:`cep.lang.check`'s job.
    """
    starts = [m.start(1) for m in _RULE_LINE.finditer(text)]
    rules: list[Rule] = []
    diags: list[Diagnostic] = []
    pos = 0
    while True:
        try:
            tree = parser().parse(_blank_before(text, pos))
        except UnexpectedInput as err:
            from cep.lang.syntax_errors import explain

            err_pos = _error_offset(err, text)
            diags.append(explain(err, text, path, err_pos))
            failing = max((s for s in starts if pos <= s < err_pos), default=pos)
            if failing > pos:
                seg_rules, seg_diags = _parse_segment(text, pos, failing, path)
                rules.extend(seg_rules)
                diags.extend(seg_diags)
            resume = next((s for s in starts if s >= err_pos and s > pos), None)
            if resume is None:
                break
            pos = resume
            continue
        seg_rules, seg_diags = _build(tree, text, path)
        rules.extend(seg_rules)
        diags.extend(seg_diags)
        break
    diags.sort(key=lambda d: (d.span.line, d.span.col))
    return RuleFile(path, text, tuple(rules)), diags


def parse_file(path: str | FsPath) -> tuple[RuleFile, list[Diagnostic]]:
    """Read a UTF-8 rule file (a leading byte-order mark is ignored) and :func:`parse_text` it.

    A file that cannot be read or decoded yields an empty :class:`RuleFile` and one
    diagnostic without a position (no exception).
    """
    name = str(path)
    try:
        text = FsPath(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        return RuleFile(name, "", ()), [Diagnostic(name, NOWHERE, f"cannot read file: {exc}")]
    return parse_text(text, name)
