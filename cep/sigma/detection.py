"""A Sigma rule's detection (pySigma's condition tree) → one engine expression.

The condition tree is the one pySigma builds after its processing pipelines ran
(``SigmaCondition.parsed``: ``ConditionAND``/``ConditionOR``/``ConditionNOT`` over
``ConditionFieldEqualsValueExpression`` and keyword ``ConditionValueExpression`` leaves, with
``1 of``/``all of`` already resolved).  Each leaf becomes an expression of the rule language,
so a Sigma rule runs on the engine's own compiled conditions, never by evaluating pySigma
objects per event.

Value semantics (Sigma specification v2, "Modifiers" and "Value"):

* strings compare case-insensitively (``lower(f) == "v"``), except with the ``cased``
  modifier; ``*`` and ``?`` are wildcards: a leading/trailing ``*`` alone becomes
  ``ends with``/``starts with``/``contains``, any other wildcard a whole-value regex;
* a string of digits also equals the number it spells, and a number also equals its decimal
  string (Windows logs carry ``EventID`` as either);
* ``re`` is an RE2 search (unanchored), case-sensitive unless its ``i`` flag is given;
  ``m``/``s`` flags map to RE2's;
* ``cidr`` becomes the address prefixes pySigma expands it to;
* ``gt``/``gte``/``lt``/``lte`` order numbers; ``exists`` tests presence; ``null`` is
  ``is null``; ``fieldref`` compares two fields (case-insensitively);
* base64/base64offset/wide/utf16/windash/all/expand are applied by pySigma before this
  module sees the values (they yield plain strings, ``SigmaExpansion`` alternatives and
  ``and``-linked lists);
* a keyword (a value with no field) is searched in ``text(this)``, every string of the
  event joined by newlines: a plain keyword is contained in it, a wildcard keyword matches one
  of its lines (a whole string value); the keywords of one list are one RE2 search.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from sigma import conditions as sc
from sigma import types as st

from cep.lang import ast
from cep.lang.operators import (
    CONTAINS,
    ENDS_WITH,
    EQ,
    GE,
    GT,
    IN,
    LE,
    LT,
    MATCHES,
    NE,
    OPERATORS,
    STARTS_WITH,
    IndexUse,
)

__all__ = ["UnsupportedSigma", "detection_expr", "field_path"]


class UnsupportedSigma(ValueError):
    """A construct of a Sigma rule that cannot be compiled; the message says which and why."""


_TEXT = ast.Call("text", (ast.Path(("this",)),))


def field_path(name: str) -> ast.Path:
    """A Sigma field name as a path of the event under test (``this.…``, so that no field
    is taken for a stage): ``a.b`` is field ``b`` of object ``a`` (winlogbeat's
    ``winlog.event_data.Image``); a name without dots is a top-level field."""
    parts = tuple(name.split("."))
    if any(p == "" for p in parts):
        raise UnsupportedSigma(f"field name {name!r} has an empty segment")
    if parts == ("ts",):
        raise UnsupportedSigma("a field named `ts` is the engine's event time, not a field")
    return ast.Path(("this", *parts))


def _balanced(op: str, items: list[ast.Expr]) -> ast.Expr:
    """``items`` joined by ``op`` as a balanced tree (depth log n: rules with thousands of
    values stay shallow)."""
    if len(items) == 1:
        return items[0]
    mid = len(items) // 2
    return ast.Binary(op, _balanced(op, items[:mid]), _balanced(op, items[mid:]))


def _or(items: list[ast.Expr]) -> ast.Expr:
    """``items`` or-ed; equalities of one subject with literals become one ``in [..]``, and
    several ``contains``/``starts with``/``ends with`` literals on one ``lower(f)`` one RE2
    search (:func:`_searchable`)."""
    if not items:
        return ast.Lit(False)
    grouped: dict[ast.Expr, list[ast.Lit]] = {}
    searched: dict[ast.Expr, list[ast.Binary]] = {}
    rest: list[ast.Expr] = []
    for e in _flat("or", items):
        if type(e) is not ast.Binary:
            rest.append(e)
        elif e.op == _EQ and type(e.right) is ast.Lit and type(e.left) is not ast.Lit:
            grouped.setdefault(e.left, []).append(e.right)
        elif e.op in _AFFIXES and _searchable(e):
            searched.setdefault(e.left, []).append(e)
        else:
            rest.append(e)
    for subject, tests in searched.items():
        if len(tests) == 1:
            rest.append(tests[0])
            continue
        alts = []
        for t in tests:
            assert isinstance(t.right, ast.Lit) and isinstance(t.right.value, str)
            lit = re.escape(t.right.value)
            use = OPERATORS[t.op].index
            alts.append(lit if use is IndexUse.SEGMENT else "\\A" + lit if use is IndexUse.PREFIX
                        else lit + "\\z")
        rest.append(ast.Binary(MATCHES.spelling, subject, ast.Lit("(?s)" + "|".join(alts))))
    for subject, lits in grouped.items():
        if len(lits) == 1:
            rest.append(ast.Binary(EQ.spelling, subject, lits[0]))
        else:
            rest.append(ast.Binary(IN.spelling, subject, ast.ListLit(tuple(lits))))
    return _balanced("or", rest)


_EQ = EQ.spelling
_AFFIXES = frozenset({CONTAINS.spelling, STARTS_WITH.spelling, ENDS_WITH.spelling})


def _searchable(e: ast.Expr) -> bool:
    """Whether ``e`` is ``lower(f) contains/starts with/ends with "lit"`` with a literal the
    rule index has no use for (no whole path segment, no file name after a backslash), so
    that it may join one regex search with others on ``lower(f)``: for a string the search
    is the same test, for anything else both are false."""
    spec = OPERATORS.get(e.op) if isinstance(e, ast.Binary) else None
    use = IndexUse.NONE if spec is None else spec.index
    if not (isinstance(e, ast.Binary) and spec in (CONTAINS, STARTS_WITH, ENDS_WITH)
            and isinstance(e.right, ast.Lit) and type(e.right.value) is str
            and isinstance(e.left, ast.Call) and e.left.func == "lower"):
        return False
    lit = e.right.value
    if "\\" not in lit:
        return True
    if use is IndexUse.SUFFIX:
        return False  # the file name after the last backslash indexes it
    parts = lit.split("\\")
    whole = parts[:-1] if use is IndexUse.PREFIX else parts[1:-1]
    return not any(whole)


def _and(items: list[ast.Expr]) -> ast.Expr:
    if not items:
        return ast.Lit(True)
    return _balanced("and", _flat("and", items))


def _flat(op: str, items: list[ast.Expr]) -> list[ast.Expr]:
    """The operands of ``op`` in ``items``, nested ``op`` nodes opened (in order)."""
    out: list[ast.Expr] = []
    todo = list(reversed(items))
    while todo:
        e = todo.pop()
        if type(e) is ast.Binary and e.op == op:
            todo += [e.right, e.left]
        else:
            out.append(e)
    return out


def _lower(e: ast.Expr) -> ast.Expr:
    return ast.Call("lower", (e,))


def detection_expr(tree: object) -> ast.Expr:
    """The expression of a parsed Sigma condition tree (see the module doc).

    Raises:
        UnsupportedSigma: for a construct with no exact counterpart (an unresolved
            placeholder, a query expression, a timestamp part, a regex RE2 cannot run).
    """
    if isinstance(tree, sc.ConditionFieldEqualsValueExpression):  # (the most frequent)
        return value_expr(field_path(tree.field), tree.value)
    if isinstance(tree, sc.ConditionAND):
        return _and([detection_expr(a) for a in tree.args])
    if isinstance(tree, sc.ConditionOR):
        words = [a.value for a in tree.args if isinstance(a, sc.ConditionValueExpression)]
        rest = [detection_expr(a) for a in tree.args
                if not isinstance(a, sc.ConditionValueExpression)]
        return _or(rest + ([keywords_expr(words)] if words else []))
    if isinstance(tree, sc.ConditionNOT):
        return ast.Unary("not", detection_expr(tree.args[0]))
    if isinstance(tree, sc.ConditionValueExpression):
        return keyword_expr(tree.value)
    if tree is None:
        raise UnsupportedSigma("the detection is empty (a pipeline dropped every item)")
    raise UnsupportedSigma(f"unknown condition element {type(tree).__name__}")


# --------------------------------------------------------------------------- values


def _parts(value: st.SigmaString) -> tuple[tuple[object, ...], bool]:
    """The parts of ``value`` (strings and wildcards), and whether a wildcard is among them
    (pySigma's ``contains_special``).

    Raises:
        UnsupportedSigma: a placeholder is among them."""
    parts = tuple(value.s)
    special = False
    for p in parts:
        if type(p) is str:
            continue
        if isinstance(p, st.Placeholder):
            raise UnsupportedSigma(
                f"placeholder %{p.name}% has no value: give one in a pipeline "
                "(`--sigma-pipeline FILE` with a value_placeholders transformation)")
        special = special or isinstance(p, st.SpecialChars)
    return parts, special


def _regex_of(parts: tuple[object, ...], line_bound: bool) -> str:
    """A whole-value regex of a wildcard string (``*`` any run, ``?`` one character)."""
    anyc = "[^\\n]" if line_bound else "."
    out = []
    for p in parts:
        if p is st.SpecialChars.WILDCARD_MULTI:
            out.append(anyc + "*")
        elif p is st.SpecialChars.WILDCARD_SINGLE:
            out.append(anyc)
        else:
            out.append(re.escape(str(p)))
    return "".join(out)


def _digits_number(s: str) -> int | None:
    if s.isascii() and s.isdigit() and (s == "0" or not s.startswith("0")) and len(s) < 16:
        return int(s)
    return None


def string_expr(target: ast.Expr, value: st.SigmaString, cased: bool) -> ast.Expr:
    """``target`` against a Sigma string value (wildcards, case-insensitive unless ``cased``)."""
    parts, special = _parts(value)
    subject = target if cased else _lower(target)
    if not special:
        plain = "".join(str(p) for p in parts)
        eq: ast.Expr = ast.Binary(_EQ, subject, ast.Lit(plain if cased else plain.lower()))
        n = _digits_number(plain)
        if n is not None:
            eq = _or([eq, ast.Binary(EQ.spelling, target, ast.Lit(n))])
        return eq
    inner = parts
    lead = bool(inner) and inner[0] is st.SpecialChars.WILDCARD_MULTI
    inner = inner[1:] if lead else inner
    trail = bool(inner) and inner[-1] is st.SpecialChars.WILDCARD_MULTI
    inner = inner[:-1] if trail else inner
    if all(isinstance(p, str) for p in inner):
        text = "".join(str(p) for p in inner)
        if text == "":  # "*" (or "**"): any string value
            return ast.Binary(MATCHES.spelling, target, ast.Lit(""))
        op = (CONTAINS.spelling if lead and trail else ENDS_WITH.spelling if lead
              else STARTS_WITH.spelling if trail else EQ.spelling)
        return ast.Binary(op, subject, ast.Lit(text if cased else text.lower()))
    flags = "(?s)" if cased else "(?is)"
    return ast.Binary(MATCHES.spelling, target, ast.Lit(f"{flags}\\A{_regex_of(parts, False)}\\z"))


def _number_expr(target: ast.Expr, n: int | float) -> ast.Expr:
    text = str(n)
    return _or([ast.Binary(EQ.spelling, target, ast.Lit(n)),
                ast.Binary(EQ.spelling, target, ast.Lit(text))])


_RE_FLAGS = {
    st.SigmaRegularExpressionFlag.IGNORECASE: "i",
    st.SigmaRegularExpressionFlag.MULTILINE: "m",
    st.SigmaRegularExpressionFlag.DOTALL: "s",
}


def regex_literal(value: st.SigmaRegularExpression) -> str:
    """The RE2 pattern of a Sigma ``re`` value, its flags as an inline group.

    Raises:
        UnsupportedSigma: RE2 cannot run it (look-arounds, back-references …)."""
    if value.contains_placeholder():
        raise UnsupportedSigma("a regex with a placeholder has no value")
    flags = "".join(sorted(_RE_FLAGS[f] for f in value.flags if f in _RE_FLAGS))
    pattern = (f"(?{flags})" if flags else "") + str(value.regexp)
    check_re2(pattern)
    return pattern


def check_re2(pattern: str) -> None:
    """Raise :class:`UnsupportedSigma` when RE2 (the engine's linear-time regex engine)
    cannot compile ``pattern``."""
    from cep.compiler.runtime import Regex

    try:
        Regex(pattern)
    except Exception as exc:  # re2.error
        raise UnsupportedSigma(
            f"regex {pattern!r} needs a backtracking feature RE2 does not have ({exc}); "
            "the engine runs regexes in linear time only") from None


_CMP = {
    st.CompareOperators.LT: LT.spelling, st.CompareOperators.LTE: LE.spelling,
    st.CompareOperators.GT: GT.spelling, st.CompareOperators.GTE: GE.spelling,
    st.CompareOperators.NEQ: NE.spelling,
}


def value_expr(target: ast.Expr, value: st.SigmaType) -> ast.Expr:
    """``target`` (a field path) against one Sigma value (see the module doc).

    Raises:
        UnsupportedSigma: the value has no exact counterpart."""
    handler = _VALUE_HANDLERS.get(type(value))
    if handler is None:
        for cls, fn in _VALUE_HANDLERS.items():
            if isinstance(value, cls):
                handler = fn
                break
    if handler is None:
        raise UnsupportedSigma(f"value type {type(value).__name__} is not supported")
    return handler(target, value)


def _v_cased(target: ast.Expr, value: st.SigmaType) -> ast.Expr:
    assert isinstance(value, st.SigmaString)
    return string_expr(target, value, cased=True)


def _v_string(target: ast.Expr, value: st.SigmaType) -> ast.Expr:
    assert isinstance(value, st.SigmaString)
    return string_expr(target, value, cased=False)


def _v_number(target: ast.Expr, value: st.SigmaType) -> ast.Expr:
    assert isinstance(value, st.SigmaNumber)
    if isinstance(value, st.SigmaTimestampPart):
        raise UnsupportedSigma("timestamp part modifiers (minute, hour, …) are not supported: "
                               "the engine's conditions read fields, not parts of event time")
    return _number_expr(target, value.number)


def _v_bool(target: ast.Expr, value: st.SigmaType) -> ast.Expr:
    assert isinstance(value, st.SigmaBool)
    b = bool(value.boolean)
    return ast.Binary("or", ast.Binary(EQ.spelling, target, ast.Lit(b)),
                      ast.Binary(EQ.spelling, _lower(target), ast.Lit("true" if b else "false")))


def _v_null(target: ast.Expr, value: st.SigmaType) -> ast.Expr:
    return ast.IsNull(target, negated=False)


def _v_exists(target: ast.Expr, value: st.SigmaType) -> ast.Expr:
    assert isinstance(value, st.SigmaExists)
    return ast.IsNull(target, negated=bool(value.exists))


def _v_regex(target: ast.Expr, value: st.SigmaType) -> ast.Expr:
    assert isinstance(value, st.SigmaRegularExpression)
    return ast.Binary(MATCHES.spelling, target, ast.Lit(regex_literal(value)))


def _v_cidr(target: ast.Expr, value: st.SigmaType) -> ast.Expr:
    assert isinstance(value, st.SigmaCIDRExpression)
    return _or([string_expr(target, st.SigmaString(p), cased=False) for p in value.expand("*")])


def _v_compare(target: ast.Expr, value: st.SigmaType) -> ast.Expr:
    assert isinstance(value, st.SigmaCompareExpression)
    return ast.Binary(_CMP[value.op], target, ast.Lit(value.number.number))


def _v_fieldref(target: ast.Expr, value: st.SigmaType) -> ast.Expr:
    assert isinstance(value, st.SigmaFieldReference)
    other = _lower(field_path(value.field))
    op = (CONTAINS.spelling if value.starts_with and value.ends_with
          else ENDS_WITH.spelling if value.starts_with
          else STARTS_WITH.spelling if value.ends_with else EQ.spelling)
    return ast.Binary(op, _lower(target), other)


def _v_expansion(target: ast.Expr, value: st.SigmaType) -> ast.Expr:
    assert isinstance(value, st.SigmaExpansion)
    return _or([value_expr(target, v) for v in value.values])


def _v_query(target: ast.Expr, value: st.SigmaType) -> ast.Expr:
    raise UnsupportedSigma("a query-expression placeholder is backend text; give the "
                           "placeholder's values instead (value_placeholders)")


_VALUE_HANDLERS: dict[type, Callable[[ast.Expr, st.SigmaType], ast.Expr]] = {
    st.SigmaCasedString: _v_cased,
    st.SigmaString: _v_string,
    st.SigmaTimestampPart: _v_number,
    st.SigmaNumber: _v_number,
    st.SigmaBool: _v_bool,
    st.SigmaNull: _v_null,
    st.SigmaExists: _v_exists,
    st.SigmaRegularExpression: _v_regex,
    st.SigmaCIDRExpression: _v_cidr,
    st.SigmaCompareExpression: _v_compare,
    st.SigmaFieldReference: _v_fieldref,
    st.SigmaExpansion: _v_expansion,
    st.SigmaQueryExpression: _v_query,
}


def keyword_expr(value: st.SigmaType) -> ast.Expr:
    """A keyword (a value with no field) searched in every string of the event.

    Raises:
        UnsupportedSigma: for a keyword that is not a string, a number or a regex."""
    return ast.Binary(MATCHES.spelling, _TEXT, ast.Lit("(?m)" + keyword_pattern(value)))


def keywords_expr(values: list[st.SigmaType]) -> ast.Expr:
    """Several keywords or-ed: one search of the event's text for any of them (the text is
    built once, not once per keyword)."""
    return ast.Binary(MATCHES.spelling, _TEXT,
                      ast.Lit("(?m)" + "|".join(keyword_pattern(v) for v in values)))


def keyword_pattern(value: st.SigmaType) -> str:
    """The RE2 pattern of one keyword over ``text(this)`` (every string of the event, one
    per line; multi-line mode): a plain keyword is contained in the text, a keyword with
    wildcards is a whole line, case-insensitively unless ``cased``; a regex keyword is
    itself.

    Raises:
        UnsupportedSigma: for a keyword that is not a string, a number or a regex."""
    if isinstance(value, st.SigmaExpansion):
        return "(?:" + "|".join(keyword_pattern(v) for v in value.values) + ")"
    if isinstance(value, st.SigmaNumber):
        value = st.SigmaString(str(value.number))
    if isinstance(value, st.SigmaRegularExpression):
        return f"(?:{regex_literal(value)})"
    if not isinstance(value, st.SigmaString):
        raise UnsupportedSigma(f"a keyword of type {type(value).__name__} is not supported")
    cased = isinstance(value, st.SigmaCasedString)
    parts, special = _parts(value)
    flags = "" if cased else "i"
    if not special:
        body = re.escape("".join(str(p) for p in parts))
    else:
        lead = bool(parts) and parts[0] is st.SpecialChars.WILDCARD_MULTI
        trail = len(parts) > 1 and parts[-1] is st.SpecialChars.WILDCARD_MULTI
        inner = _regex_of(tuple(parts[1 if lead else 0:len(parts) - (1 if trail else 0)]), True)
        body = ("" if lead else "^") + inner + ("" if trail else "$")
    pattern = f"(?{flags}:{body})" if flags else f"(?:{body})"
    check_re2(pattern)
    return pattern
