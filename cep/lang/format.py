"""Canonical text of a rule, and the rule version derived from it.

``format_rule`` writes a rule with fixed clause order, two-space indentation, one stage per
line, canonical durations (the largest exact unit), double-quoted strings and parentheses only
where precedence needs them.  Parsing the result gives back an equal AST (spans aside), so
comments, spacing and other cosmetic choices never change :func:`rule_version`.
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from collections.abc import Mapping

from cep.lang.ast import (
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
    Stage,
    Unary,
)
from cep.lang.operators import OPERATORS

__all__ = ["format_rule", "format_rules", "format_expr", "format_duration", "format_modifier",
           "rule_version", "matching_text", "format_list_decl", "quote_string", "quote_name"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_RESERVED = frozenset(
    "rule end description severity tags references author from where pattern begin next times "
    "to optional "
    "greedy consecutive until within emit or and not true false null this having by".split()
) | {op.spelling for op in OPERATORS if op.spelling.isalpha()}
"""Words read as keywords where a name could stand (the operators of one word among them)."""
_UNITS = (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000))
_CONTIGUITY = {
    "begin": "begin", "next": "next", "followed_by": "followed by",
    "followed_by_any": "followed by any", "not_next": "not next",
    "not_followed_by": "not followed by",
}
_SKIP = {
    "skip_to_next": "skip to next", "skip_past_last_event": "skip past last event",
    "skip_to_first": "skip to first", "skip_to_last": "skip to last", "no_skip": "no skip",
}

# Binding strength: higher binds tighter.  Every binary operator but the logical and the
# arithmetic ones is one of cep.lang.operators, and all of those bind as comparisons ("cmp").
_PREC = {"or": 1, "and": 2, "not": 3, "cmp": 4, "+": 5, "-": 5, "*": 6, "/": 6, "%": 6,
         "neg": 7, "atom": 8}
_BINARY = frozenset({"or", "and", "+", "-", "*", "/", "%"})


def format_duration(ms: int) -> str:
    """``300000`` → ``"5m"``: the largest unit that divides exactly, else milliseconds."""
    sign = "-" if ms < 0 else ""
    ms = abs(ms)
    for unit, size in _UNITS:
        if ms and ms % size == 0:
            return f"{sign}{ms // size}{unit}"
    return f"{sign}{ms}ms"


_PLAIN = re.compile(r'[ !#-\[\]-~]*')
"""Printable ASCII but ``"`` and backslash: written as it is."""


def quote_string(value: str) -> str:
    """A double-quoted string literal that parses back to ``value``."""
    if _PLAIN.fullmatch(value):
        return f'"{value}"'
    if value.isprintable():  # no control, separator or surrogate character: two escapes
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    out = ['"']
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp") or ch == "\x85":
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def quote_name(name: str, first: bool = True) -> str:
    """A path segment as written: bare when it is a plain name, else in backquotes.

    ``first`` segments also backquote keywords (after a dot every name is a field).
    """
    if _NAME.match(name) and not (first and name in _RESERVED and name != "this"):
        return name
    return f"`{name}`"


def _lit(value: object, duration: bool) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return format_duration(value) if duration else str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value} has no literal form")
        text = repr(value)
        return text if any(c in text for c in ".eE") else text + ".0"
    if isinstance(value, str):
        return quote_string(value)
    raise TypeError(f"not a literal value: {value!r}")


def _level(e: Expr) -> int:
    if isinstance(e, Binary):
        return _PREC[e.op] if e.op in _BINARY else _PREC["cmp"]
    if isinstance(e, IsNull):
        return _PREC["cmp"]
    if isinstance(e, Unary):
        return _PREC["not"] if e.op == "not" else _PREC["neg"]
    if isinstance(e, Lit) and isinstance(e.value, int | float) and not isinstance(
            e.value, bool) and (e.value < 0 or str(e.value).startswith("-")):
        return _PREC["neg"]
    return _PREC["atom"]


def _wrap(e: Expr, min_level: int) -> str:
    text = format_expr(e)
    return f"({text})" if _level(e) < min_level else text


def format_expr(e: Expr) -> str:
    """Canonical text of an expression, with the fewest parentheses that keep its shape."""
    if isinstance(e, Lit):
        return _lit(e.value, e.duration)
    if isinstance(e, ListLit):
        return "[" + ", ".join(format_expr(i) for i in e.items) + "]"
    if isinstance(e, Path):
        return ".".join(quote_name(p, i == 0) for i, p in enumerate(e.parts))
    if isinstance(e, Call):
        return f"{e.func}(" + ", ".join(format_expr(a) for a in e.args) + ")"
    if isinstance(e, Attr):
        obj = format_expr(e.obj) if isinstance(e.obj, Call | Lookup) \
            else f"({format_expr(e.obj)})"
        return obj + "".join("." + quote_name(p, False) for p in e.parts)
    if isinstance(e, Lookup):
        return f"{quote_name(e.table)}[{format_expr(e.key)}]"
    if isinstance(e, IsNull):
        return _wrap(e.operand, _PREC["+"]) + (" is not null" if e.negated else " is null")
    if isinstance(e, Unary):
        if e.op == "not":
            return "not " + _wrap(e.operand, _PREC["not"])
        inner = _wrap(e.operand, _PREC["neg"])
        return "-" + (f"({inner})" if inner.startswith("-") else inner)
    if isinstance(e, Binary):
        if e.op not in _BINARY:  # an operator of cep.lang.operators
            left, right = _wrap(e.left, _PREC["+"]), _wrap(e.right, _PREC["+"])
        else:
            level = _PREC[e.op]
            left, right = _wrap(e.left, level), _wrap(e.right, level + 1)
        return f"{left} {e.op} {right}"
    raise TypeError(f"not an expression: {e!r}")


def format_modifier(m: Modifier) -> str:
    """A stage modifier as written: ``times 2 to 4``, ``within 30s``, ``allow combinations``."""
    if m.kind == "times":
        return f"times {m.n}"
    if m.kind == "times_range":
        return f"times {m.n} to {m.m}"
    if m.kind == "times_or_more":
        return f"times {m.n} or more"
    if m.kind == "until":
        assert m.expr is not None
        return f"until {format_expr(m.expr)}"
    if m.kind == "within":
        assert m.ms is not None
        return f"within {format_duration(m.ms)}"
    return m.kind.replace("_", " ")


def _stage(st: Stage, indent: str, known: Mapping[int, str] | None = None) -> list[str]:
    """The lines of a stage; ``known``: texts of conditions formatted already, by ``id``."""
    head = f"{indent}{_CONTIGUITY[st.contiguity]} {st.name}"
    mods = "".join(" " + format_modifier(m) for m in st.modifiers)
    if st.group is not None:
        lines = [head + " ("]
        for inner in st.group:
            lines.extend(_stage(inner, indent + "  ", known))
        lines.append(f"{indent}){mods}")
        return lines
    text = None
    if st.condition is not None:
        text = known.get(id(st.condition)) if known else None
        if text is None:
            text = format_expr(st.condition)
    cond = f" where {text}" if text is not None else ""
    return [head + cond + mods]


def _field_name(name: str) -> str:
    if name and "`" not in name and "\n" not in name:
        return quote_name(name)
    return quote_string(name)


def _emit(emit: Emit) -> list[str]:
    keyword = "on timeout emit" if emit.on_timeout else "emit"
    if emit.stream:
        keyword += f" to stream {emit.sink}"
    elif emit.sink != "alerts":
        keyword += f" to {emit.sink}"
    if not emit.fields:
        return [f"  {keyword} {{}}"]
    lines = [f"  {keyword} {{"]
    for i, (name, expr) in enumerate(emit.fields):
        comma = "," if i < len(emit.fields) - 1 else ""
        lines.append(f"    {_field_name(name)}: {format_expr(expr)}{comma}")
    lines.append("  }")
    return lines


def format_rule(rule: Rule) -> str:
    """The canonical text of ``rule`` (ends with a newline).

    Clause order: description, severity (omitted when ``medium``), tags, references, author,
    from, where, key by, pattern (or ``having`` / ``all of``), within, after match (omitted
    for ``no skip``), suppress for, emit, on timeout emit.
    Modifiers keep their written order.  Raises ``ValueError`` for a float that has no
    literal form (infinity, NaN), which the parser never produces.
    """
    head, meta, body = _rule_lines(rule)
    return "\n".join([head, *meta, *body]) + "\n"


def _rule_lines(rule: Rule, known: Mapping[int, str] | None = None
                ) -> tuple[str, list[str], list[str]]:
    """The lines of :func:`format_rule`: the ``rule NAME`` line, the metadata lines (none
    for a rule without metadata: no description, severity ``medium``, no tags, references
    or author), and the rest, which no metadata changes (``known``: see :func:`_stage`)."""
    head = f"rule {rule.name}"
    lines: list[str] = []
    if rule.description is not None:
        lines.append(f"  description {quote_string(rule.description)}")
    if rule.severity != "medium":
        lines.append(f"  severity {rule.severity}")
    if rule.tags:
        lines.append("  tags " + ", ".join(rule.tags))
    if rule.references:
        lines.append("  references " + ", ".join(quote_string(r) for r in rule.references))
    if rule.author is not None:
        lines.append(f"  author {quote_string(rule.author)}")
    meta, lines = lines, []
    if rule.sources:
        lines.append("  from " + ", ".join(rule.sources))
    if rule.where is not None:
        lines.append(f"  where {format_expr(rule.where)}")
    if rule.key_by:
        lines.append("  key by " + ", ".join(format_expr(p) for p in rule.key_by))
    window = rule.window
    if window is None:
        lines.append("  pattern")
        for st in rule.pattern:
            lines.extend(_stage(st, "    ", known))
    elif window.kind == "having" and window.condition is not None:
        lines.append(f"  having {format_expr(window.condition)} within "
                     f"{format_duration(window.within_ms)}")
    else:
        lines.append("  all of (")
        for i, st in enumerate(rule.pattern):
            cond = f" where {format_expr(st.condition)}" if st.condition is not None else ""
            comma = "," if i < len(rule.pattern) - 1 else ""
            lines.append(f"    {st.name}{cond}{comma}")
        lines.append(f"  ) within {format_duration(window.within_ms)}")
    if rule.within_ms is not None:
        lines.append(f"  within {format_duration(rule.within_ms)}")
    if rule.skip.kind != "no_skip":
        target = f" {rule.skip.stage}" if rule.skip.stage else ""
        lines.append(f"  after match {_SKIP[rule.skip.kind]}{target}")
    if rule.suppress is not None:
        by = rule.suppress.by
        lines.append(f"  suppress for {format_duration(rule.suppress.period_ms)}"
                     + (" by " + ", ".join(format_expr(p) for p in by) if by else ""))
    for emit in rule.emits:
        lines.extend(_emit(emit))
    lines.append("end")
    return head, meta, lines


def format_list_decl(decl: ListDecl) -> str:
    """``list NAME from "PATH"`` or ``table NAME from "PATH" key COLUMN`` (one line)."""
    head = f"{decl.kind} {decl.name} from {quote_string(decl.path)}"
    if decl.key is None:
        return head + "\n"
    key = decl.key if _NAME.match(decl.key) and decl.key not in _RESERVED \
        else quote_string(decl.key)
    return f"{head} key {key}\n"


def format_rules(rules: list[Rule] | tuple[Rule, ...]) -> str:
    """Several rules in canonical form, separated by blank lines."""
    return "\n".join(format_rule(r) for r in rules)


def matching_text(rule: Rule) -> str:
    """The canonical text of what ``rule`` matches and emits: :func:`format_rule` without
    the metadata (:data:`~cep.lang.ast.METADATA`: description, severity, tags, references,
    author)."""
    head, _, body = _rule_lines(rule)  # (the rule with its metadata cleared has no meta)
    return "\n".join([head, *body]) + "\n"


def rule_texts(rule: Rule, known: Mapping[int, str] | None = None) -> tuple[str, str]:
    """``(format_rule(rule), rule_version(rule))`` with one formatting of the rule;
    ``known``: the text (:func:`format_expr`) of some of its stage conditions, by the
    ``id`` of the condition, formatted already."""
    head, meta, body = _rule_lines(rule, known)
    matching = "\n".join([head, *body]) + "\n"
    text = "\n".join([head, *meta, *body]) + "\n" if meta else matching
    return text, _version_of(matching)


def _version_of(matching: str) -> str:
    return hashlib.sha256(matching.encode("utf-8")).hexdigest()[:16]


def rule_version(rule: Rule) -> str:
    """First 16 hex digits of the SHA-256 of :func:`matching_text`: editing a rule's
    metadata keeps its version (and so its partial matches and alert ids)."""
    return _version_of(matching_text(rule))
