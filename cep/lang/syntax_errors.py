"""Friendly messages for syntax errors.

Two sources, tried in order: checks on the offending text itself (``=`` for ``==``,
``followed_by`` for ``followed by``, an uppercase keyword, an unterminated string, …) and a
table of bad examples: each example is parsed once, and an error that stops the parser in the
same state on the same kind of token gets that example's message (the approach of Lark's
``UnexpectedInput.match_examples``).  Anything else gets "unexpected X; expected Y".

Every look at the text stays between the start of the parse attempt that failed and the
error (or the end of the error's line), so explaining each error of a file costs no more than
the text the parser read to find it.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from lark import Token
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from cep.diagnostics import Diagnostic
from cep.lang.ast import SEVERITIES, Span
from cep.lang.grammar import parser, terminal_text
from cep.lang.operators import OPERATORS
from cep.lang.suggest import closest

__all__ = ["explain", "EXAMPLES", "KEYWORD_WORDS"]

KEYWORD_WORDS = frozenset(
    "rule end description severity tags references author from where key by pattern begin "
    "next followed any not times to or more one optional greedy consecutive allow "
    "combinations until within after "
    "match no skip past last event first emit on timeout and is null true false this".split()
) | {word for op in OPERATORS for word in op.spelling.split() if word.isalpha()}
"""Every word that is (part of) a keyword (an operator's words among them)."""

_JOINED = {
    re.sub(r"\s+", "", words): words
    for words in (
        "followed by", "followed by any", "not followed by", "not next", "is null",
        "is not null", "key by", "or more", "one or more",
        "allow combinations", "after match", "no skip", "skip to next",
        "skip past last event", "skip to first", "skip to last", "on timeout emit",
        *(op.spelling for op in OPERATORS
          if " " in op.spelling and op.spelling.replace(" ", "").isalpha()),
    )
}

_EXPR_START = {"NAME", "QNAME", "THIS", "STRING", "INT", "DECIMAL", "DURATION", "TRUE", "FALSE",
               "NULL", "LSQB", "LPAR", "NOT", "MINUS"}
_OPERATORS = {"PLUS", "MINUS", "STAR", "SLASH", "PERCENT", "AND", "OR", "IS_NULL",
              "IS_NOT_NULL", "DOT", "LPAR"} | {op.terminal for op in OPERATORS}
_MODIFIERS = {"TIMES", "ONE_OR_MORE", "OPTIONAL", "GREEDY", "CONSECUTIVE",
              "ALLOW_COMBINATIONS", "UNTIL", "WITHIN"}
_STAGES = {"NEXT", "FOLLOWED_BY", "FOLLOWED_BY_ANY", "NOT_NEXT", "NOT_FOLLOWED_BY"}
_HEADERS = {"DESCRIPTION", "SEVERITY", "TAGS", "REFERENCES", "AUTHOR", "FROM", "WHERE",
            "KEY_BY"}
_TAILS = {"AFTER_MATCH", "EMIT", "ON_TIMEOUT_EMIT"}
_GROUPS = (
    (_EXPR_START, "an expression"),
    (_OPERATORS, "an operator"),
    (_MODIFIERS, "a modifier (`times`, `optional`, `within` …)"),
    (_STAGES, "the next stage (`next`, `followed by` …)"),
    (_HEADERS, "a header clause (`severity`, `from`, `where` …)"),
    (_TAILS, "`after match`, `emit`"),
)

_SEV = ", ".join(SEVERITIES)
_STAGE_HINT = "a stage is `begin NAME`, `next NAME`, `followed by NAME` … then `where …`"

EXAMPLES: tuple[tuple[str, str | None, tuple[str, ...]], ...] = (
    ("the first stage starts with `begin`", "write `begin NAME where …`",
     ("rule r\npattern\n a where x\nend", "rule r\npattern\n a\nend")),
    ("a pattern needs at least one stage", _STAGE_HINT, ("rule r\npattern\nend",)),
    ("missing `pattern`", "the stages of a rule come after the line `pattern`",
     ("rule r\nbegin a\nend", "rule r\nseverity high\nbegin a\nend",
      "rule r\nwhere x\nbegin a\nend", "rule r\nend", "rule r\nseverity high\nend",
      "rule r\nwhere x\nend", "rule r\nkey by x\nend", "rule r\nfrom x\nend",
      'rule r\ndescription "d"\nend', "rule r\ntags x\nend")),
    (f"the severity is one of {_SEV}", "write it without quotes, as `severity high`",
     ('rule r\nseverity "high"\npattern\nbegin a\nend',
      "rule r\nseverity 3\npattern\nbegin a\nend")),
    ("the description is a quoted string", 'write `description "…"`',
     ("rule r\ndescription hello\npattern\nbegin a\nend",)),
    ("tags are separated by commas", "write `tags a, b`",
     ("rule r\ntags a b\npattern\nbegin x\nend",)),
    ("`matches` takes a string literal (a regular expression)", 'write `x matches "^a.*"`',
     ("rule r\npattern\nbegin a where x matches y\nend",
      "rule r\npattern\nbegin a where x matches 5\nend")),
    ("comparisons do not chain", "join them with `and`: `1 < x and x < 3`",
     ("rule r\npattern\nbegin a where 1 < x < 3\nend",
      "rule r\npattern\nbegin a where 1 == x == 3\nend")),
    ("unknown skip strategy",
     "write `no skip`, `skip to next`, `skip past last event`, `skip to first NAME` or "
     "`skip to last NAME`",
     ("rule r\npattern\nbegin a\nafter match skip\nend",
      "rule r\npattern\nbegin a\nafter match skip past\nend")),
    ("an emit field is written `name: expression`", None,
     ("rule r\npattern\nbegin a\nemit { x }\nend",
      "rule r\npattern\nbegin a\nemit { a.b: 1 }\nend")),
    ("missing `,` between emit fields", None,
     ("rule r\npattern\nbegin a\nemit { x: a.b y: 1 }\nend",
      "rule r\npattern\nbegin a\nemit { x: 1\ny: 1 }\nend")),
    ("missing `{` after `emit`", "write `emit { name: expression, … }`",
     ("rule r\npattern\nbegin a\nemit x: 1\nend", "rule r\npattern\nbegin a\nemit to s x: 1\nend")),
)


@dataclass(frozen=True)
class _Signature:
    """Where the parser stopped: its state, what it would accept there, the token it got."""

    state: int
    accepts: frozenset[str]
    token_type: str


def _signature(err: UnexpectedInput) -> _Signature | None:
    if not isinstance(err, UnexpectedToken):
        return None
    state = err.state
    position = getattr(state, "position", state)
    return _Signature(position if isinstance(position, int) else -1,
                      frozenset(_accepted(err)), err.token.type)


@functools.cache
def _example_table() -> dict[_Signature, tuple[str, str | None]]:
    table: dict[_Signature, tuple[str, str | None]] = {}
    for message, hint, examples in EXAMPLES:
        for example in examples:
            try:
                parser().parse(example)
            except UnexpectedInput as err:
                sig = _signature(err)
                if sig is not None:
                    table.setdefault(sig, (message, hint))
            else:  # pragma: no cover - guarded by a test
                raise AssertionError(f"example parses: {example!r}")
    return table


def _describe(tok: Token) -> str:
    if tok.type == "$END":
        return "end of file"
    if tok.type == "NAME":
        return f"name `{tok.value}`"
    if tok.type == "QNAME":
        return f"quoted name {tok.value}"
    if tok.type in ("STRING", "INT", "DECIMAL", "DURATION", "TAG"):
        return f"`{tok.value}`"
    return f"`{' '.join(tok.value.split())}`"


def _expected_text(expected: set[str]) -> str:
    left = set(expected)
    parts: list[str] = []
    for members, label in _GROUPS:
        if len(left & members) >= 3:
            parts.append(label)
            left -= members
    parts.extend(sorted(terminal_text(n) for n in left))
    if len(parts) > 1:
        return ", ".join(parts[:-1]) + " or " + parts[-1]
    return parts[0] if parts else "nothing"


def _line_col(text: str, pos: int) -> tuple[int, int]:
    line = text.count("\n", 0, pos) + 1
    return line, pos - (text.rfind("\n", 0, pos) + 1) + 1


def _span_of(err: UnexpectedCharacters, length: int = 1) -> Span:
    """``length`` characters from where the lexer stopped (its line count, not a new one)."""
    return Span(err.line, err.column, err.line, err.column + max(length, 1) - 1)


def _span_at(text: str, pos: int, length: int = 1) -> Span:
    line, col = _line_col(text, pos)
    return Span(line, col, line, col + max(length, 1) - 1)


_RULE_NAME = re.compile(r"^[ \t]*rule\s+([A-Za-z_]\w*)", re.MULTILINE)
_COMMENT = re.compile(r"#[^\n]*")
_LAST_WORD_REVERSED = re.compile(r"\W*(\w+)")
_NAME_TAIL = re.compile(r"[A-Za-z_]\w*$")
_UNIT_WORD = re.compile(r"[A-Za-z]+")
_SIGIL_WORD = re.compile(r"[@$][\w@$.-]*")


def _rule_before(text: str, pos: int, start: int, start_line: int) -> tuple[str, int] | None:
    """The name and line of the last ``rule NAME`` line between ``start`` (a line start on
    line ``start_line``) and ``pos``."""
    found = None
    for m in _RULE_NAME.finditer(text, start, pos):
        found = m
    if found is None:
        return None
    return found.group(1), start_line + text.count("\n", start, found.start(1))


def _before(text: str, pos: int, start: int) -> str:
    """``text[start:pos]`` without its comments."""
    return _COMMENT.sub("", text[start:pos])


def _previous_word(text: str, pos: int, start: int) -> str:
    """The last name before ``pos`` (read backwards: searching forwards for "a word then only
    non-word characters up to the end" retries every position of a long word)."""
    m = _LAST_WORD_REVERSED.match(_before(text, pos, start)[::-1])
    word = _NAME_TAIL.search(m.group(1)[::-1]) if m else None
    return word.group(0) if word else ""


def _explain_chars(err: UnexpectedCharacters, text: str, pos: int
                   ) -> tuple[str, str | None, Span]:
    """Message, hint and span for a character no token starts with (at offset ``pos``)."""
    ch = text[pos] if pos < len(text) else ""
    nxt = text[pos + 1] if pos + 1 < len(text) else ""
    line_end = text.find("\n", pos)
    rest = len(text) - pos if line_end < 0 else line_end - pos
    if ch in "\"'":
        return ("unterminated string", f"close it with {ch} on the same line",
                _span_of(err, rest))
    if ch == "`":
        return ("unterminated `quoted` name", "close it with ` on the same line",
                _span_of(err, rest))
    if ch == "=" and nxt != "=":
        return "use `==` to compare, not `=`", None, _span_of(err)
    if ch == "&":
        return "use `and`, not `&&`", None, _span_of(err, 2 if nxt == "&" else 1)
    if ch == "|":
        return "use `or`, not `||`", None, _span_of(err, 2 if nxt == "|" else 1)
    if ch == "!":
        return "use `not` to negate; `!=` compares", None, _span_of(err)
    if ch == "@" or ch == "$":
        m = _SIGIL_WORD.match(text, pos)
        word = m.group(0) if m else ch
        return (f"unexpected character `{ch}`",
                f"a field whose name is not an identifier is written in backquotes: `{word}`",
                _span_of(err, len(word)))
    if ch == ";":
        return "unexpected `;`: rule files have no separators", None, _span_of(err)
    shown = ch if ch.isprintable() else f"U+{ord(ch):04X}"
    return f"unexpected character `{shown}`", None, _span_of(err)


def _accepted(err: UnexpectedToken) -> set[str]:
    """Terminals the parser would really accept here.

    LALR merges states, so ``err.expected`` may list terminals of other contexts (a header
    clause after a stage's condition); replaying the parser on a copy of its stack is exact.
    """
    expected = {str(e) for e in err.expected}
    interactive = getattr(err, "interactive_parser", None)
    if interactive is None:
        return expected
    try:
        exact = {str(a) for a in interactive.accepts()}
    except Exception:  # noqa: BLE001 - a best effort; the table answer is fine too
        return expected
    return exact or expected


_NAMELESS = re.compile(
    r"\b(begin|next|by|any)\s+(where|times|optional|greedy|consecutive|until|within|one|allow)"
    r"\s*$")


_Answer = tuple[str, str | None] | None


@dataclass(frozen=True)
class _TokenError:
    """What the rules below look at: the token, what was acceptable, where, and the text
    (``start``, on line ``start_line``, begins the part of it that was parsed)."""

    tok: Token
    expected: set[str]
    text: str
    pos: int
    start: int = 0
    start_line: int = 1

    def rule_before(self) -> tuple[str, int] | None:
        return _rule_before(self.text, self.pos, self.start, self.start_line)


def _context_rule(e: _TokenError) -> _Answer:
    nameless = _NAMELESS.search(_before(e.text, e.pos, e.start))
    if nameless and e.tok.type != "$END":
        keyword, word = nameless.groups()
        if keyword == "any":
            return (f"`followed by any` is a keyword, so the stage here is named `{word}`",
                    "name the stage: `followed by any NAME where …`")
        return f"missing stage name before `{word}`", f"write `{keyword} NAME {word} …`"
    owner = e.rule_before()
    if owner and owner[0] == "pattern" and e.tok.type in _STAGES | {"BEGIN"}:
        return "missing rule name", "write `rule NAME` on the first line of a rule"
    if e.tok.type == "WITHIN" and "_END" in e.expected and "TIMES" not in e.expected:
        return ("the pattern's `within` comes right after the last stage",
                "move it before `after match` and `emit`")
    if e.tok.type in ("_END", "$END", "_RULE") and "RPAR" in e.expected:
        return "missing `)`: a group is not closed", None
    return None


def _spelling_rule(e: _TokenError) -> _Answer:
    if e.tok.type == "KEY" and "KEY_BY" in e.expected:  # `key` alone (a table's keyword)
        return "write `key by`", "as in `key by user`"
    if e.tok.type != "NAME":
        return None
    value = e.tok.value
    joined = _JOINED.get(value.lower().replace("_", ""))
    if joined and value != joined:
        return f"write `{joined}` as separate words", "keywords are lowercase words"
    if value.lower() in KEYWORD_WORDS and value != value.lower():
        return f"keywords are lowercase: write `{value.lower()}`", None
    if value == "key" and "KEY_BY" in e.expected:
        return "write `key by`", "as in `key by user`"
    return _misspelt_keyword(e)


def _misspelt_keyword(e: _TokenError) -> _Answer:
    """``folowed by`` where a stage may start: the keyword that was probably meant."""
    if "NAME" in e.expected:
        return None
    phrases: dict[str, str] = {}
    for name in sorted(e.expected):  # the shortest phrase of each first word, in any order
        quoted = terminal_text(name)
        text = quoted.strip("`")
        if re.fullmatch(r"`[a-z ]+`", quoted) and len(text) < len(phrases.get(text.split()[0], text
                                                                           + " ")):
            phrases[text.split()[0]] = text
    first = closest(e.tok.value, phrases, cutoff=0.7)
    if first is None:
        return None
    return (f"unknown word `{e.tok.value}`: did you mean `{phrases[first]}`?",
            f"write `{phrases[first]}`")


def _end_rule(e: _TokenError) -> _Answer:
    if e.tok.type not in ("_RULE", "$END"):
        return None
    if e.expected == {"KEY"}:  # `table NAME from "PATH"` and no key column
        return ("a table needs its key column",
                'write `table NAME from "PATH" key COLUMN` (the column that names each row)')
    owner = e.rule_before()
    where = f"rule `{owner[0]}` (line {owner[1]})" if owner else "the rule"
    if "_END" in e.expected:
        return f"{where} is missing `end`", "close every rule with `end`"
    if e.tok.type == "_RULE":
        return (f"{where} is not finished before the next `rule`; expected "
                f"{_expected_text(e.expected)}", None)
    return None


def _number_rule(e: _TokenError) -> _Answer:
    tok, units = e.tok, "units are ms, s, m, h and d"
    if "DURATION" in e.expected and "INT" not in e.expected:
        unit = _UNIT_WORD.match(e.text, tok.end_pos or e.pos) if tok.type == "INT" else None
        if unit:
            return f"unknown duration unit `{unit.group(0)}`", units + ", as in `30s` or `5m`"
        if tok.type == "INT":
            return f"a duration needs a unit: write `{tok}s`, `{tok}m` …", units
        return f"expected a duration such as `30s` or `5m`, found {_describe(tok)}", units
    if "INT" in e.expected and "NAME" not in e.expected:
        return (f"expected a whole number, found {_describe(tok)}",
                "write `times 3`, `times 2 to 4` or `times 3 or more`")
    return None


def _keyword_field_rule(e: _TokenError) -> _Answer:
    prev = _previous_word(e.text, e.pos, e.start)
    if prev in ("true", "false", "null", "not") and e.tok.type in _OPERATORS | {"$END"}:
        return (f"`{prev}` is a keyword",
                f"a field with that name is written in backquotes: `{prev}`")
    return None


_TOKEN_RULES = (_context_rule, _spelling_rule, _end_rule, _number_rule, _keyword_field_rule)


def _explain_token(err: UnexpectedToken, text: str, pos: int, start: int, start_line: int
                   ) -> tuple[str, str | None]:
    e = _TokenError(err.token, _accepted(err), text, pos, start, start_line)
    for rule in _TOKEN_RULES:
        answer = rule(e)
        if answer is not None:
            return answer
    sig = _signature(err)
    if sig is not None and sig in _example_table():
        return _example_table()[sig]
    return f"unexpected {_describe(e.tok)}; expected {_expected_text(e.expected)}", None


def explain(err: UnexpectedInput, text: str, path: str, pos: int, start: int = 0,
            start_line: int = 1) -> Diagnostic:
    """Turn a Lark error at offset ``pos`` of ``text`` into a :class:`Diagnostic`.

    ``start`` (on line ``start_line``) is the line start where the failed parse began: the
    text before it is not looked at.
    """
    if isinstance(err, UnexpectedCharacters):
        message, hint, span = _explain_chars(err, text, pos)
        return Diagnostic(path, span, message, hint=hint)
    assert isinstance(err, UnexpectedToken), type(err)
    message, hint = _explain_token(err, text, pos, start, start_line)
    tok = err.token
    if tok.type == "$END":
        stripped = text.rstrip()
        span = _span_at(text, len(stripped)) if stripped else Span(1, 1, 1, 1)
    else:
        span = Span(tok.line or 1, tok.column or 1, tok.end_line or 1,
                    max((tok.end_column or 2) - 1, tok.column or 1)
                    if tok.end_line == tok.line else (tok.end_column or 2) - 1)
    return Diagnostic(path, span, message, hint=hint)
