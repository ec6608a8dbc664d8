"""What an event must carry for a rule to concern it: the index keys of a condition.

With thousands of rules (a Sigma collection), testing every rule's first stage on every
event costs more than everything else.  Most rules *require* something of an event before
their condition can hold — ``EventID`` equal to one of a few numbers, ``Image`` ending in
``\\rundll32.exe``, a field ``TargetObject`` being present — and most events have none of
it.  This module derives, from each rule's first-stage condition, sets of *index keys*, one
key of each of which an event must carry for the condition to hold; the rule index
(:mod:`cep.operator.rule_index`) looks up the rules an event's keys name, so that a rule
whose condition an event cannot satisfy is never evaluated for it.

Keys (:class:`IndexKey`) over a field path ``p`` of the event:

* ``("val", p, v)``: the value of ``p``, a string lower-cased or a number written in
  decimal (``4688`` and ``"4688"`` are one key; an integral float is written as an int);
* ``("base", p, b)``: the text after the last backslash of the lower-cased string at ``p``
  (a Windows path's file name);
* ``("seg", p, s)``: ``s`` is one of the backslash-separated segments of that string
  (a directory or registry key name);
* ``("has", p)``: ``p`` holds a value (not missing, not null);
* ``("re", p, r)`` / ``("re_lower", p, r)``: the RE2 pattern ``r`` is found in the string at
  ``p`` / in its lower-casing; ``("re_text", (), r)``: ``r`` is found in ``text(this)``, every
  string of the event (Sigma's keyword searches); a string without a UTF-8 form (a lone
  surrogate), which RE2 cannot read, carries them all.

Requirement of a test (an expression not ``and``/``or``; ``None``: none, any event may
satisfy it): ``lower(p) == "v"`` and ``p == v`` require ``val``; ``in [..]`` the union;
``ends with "…\\name"`` requires ``base`` ``name``; ``matches "r"`` on ``p``, ``lower(p)``
or ``text(this)`` requires ``r`` found there (``re``, ``re_lower``, ``re_text``), and so do
``contains`` / ``starts with`` / ``ends with`` a string literal on ``lower(p)`` (the literal
escaped, anchored at the start or the end: ``lower`` yields a string or null, so these are
substring tests); any other comparison, ``contains``, ``starts with`` or ``is not null`` on
``p`` requires ``has p`` — except that ``contains`` / ``starts with`` a literal with a whole
segment between backslashes (``contains "\\currentversion\\run"``: ``currentversion``)
require ``seg`` of the longest such segment; ``not``, ``is null``, a literal ``true``, and
expressions over no field of the event under test require nothing.
An expression is true only if one key of its requirement is carried by the event (the proof
is case by case above: ``==`` between a string and a number is false, ``lower`` maps each
character on its own, so a string ending in ``\\name`` has ``name`` as its last segment; a
pattern key is the rule's own test, RE2 search of the same pattern in the same string).

*Clauses* (:func:`clauses`): the requirements an expression has all at once, each a set of keys
one of which the event must carry.  ``a and b`` has the clauses of both; ``a or b`` has, for
each clause ``x`` of ``a`` and ``y`` of ``b``, the clause ``x | y`` (either side holding
meets it), or when there are too many such pairs the one clause of both sides' most
selective clauses; an expression with no requirement has no clause.  Redundant clauses (a
superset of another) go, and at most :data:`MAX_CLAUSES` are kept, the most selective first
(:func:`requirement` is that first one): fewer ``has`` keys, then fewer keys, then fewer
pattern keys.

Only rules that never keep state for a key are indexed (a single stage that completes on
the event it takes: every TAKE of the start state reaches the final state, nothing pends,
no timeout output); for them, "can the event start a match" is the whole question
(:func:`start_clauses`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from cep.compiler import runtime as rt
from cep.compiler.generated import code_of
from cep.event import get_path
from cep.jsontext import has_surrogate
from cep.lang import ast
from cep.lang.operators import OPERATORS, IndexUse
from cep.nfa.model import FINAL, IGNORE, NFA, TAKE

__all__ = ["Clauses", "IndexKey", "MAX_CLAUSES", "RE_KINDS", "Requirement", "clauses",
           "event_keys", "requirement", "start_clauses", "stateless"]

MAX_CLAUSES = 4
"""The most clauses kept of one expression (the most selective)."""


class IndexKey(NamedTuple):
    """One thing an event can carry: ``kind`` ``val``/``base``/``seg``/``has``/``re``/
    ``re_lower``/``re_text``, the field ``path`` (``()`` for ``re_text``), and the ``value``
    (``""`` for ``has``; the RE2 pattern for the ``re`` kinds)."""

    kind: str
    path: tuple[str, ...]
    value: str = ""


Requirement = frozenset[IndexKey] | None
"""Keys one of which an event must carry; ``None``: no requirement."""

Clauses = tuple[frozenset[IndexKey], ...]
"""Requirements that all hold, most selective first; ``()``: none."""


def _norm(v: Any) -> str | None:
    """The ``val`` text of a value: lower-cased string, decimal number; ``None`` for others
    (booleans, containers, null)."""
    t = type(v)
    if t is str:
        return v.lower()  # type: ignore[no-any-return]
    if t is int:
        return str(v)
    if t is float:
        return str(int(v)) if v.is_integer() else repr(v)
    return None


def _field(e: ast.Expr, scope: frozenset[str]) -> tuple[str, ...] | None:
    """The field path of the event under test that ``e`` is, or ``lower(…)`` of; ``None``
    for anything else (a stage's field, ``ts``, a computed value)."""
    if isinstance(e, ast.Call) and e.func in ("lower", "upper") and len(e.args) == 1:
        e = e.args[0]
    if not isinstance(e, ast.Path):
        return None
    parts = e.parts
    if parts[0] == "this":
        parts = parts[1:]
    elif parts[0] in scope:
        return None
    if not parts or parts == ("ts",):
        return None
    return parts


def _has(e: ast.Expr, scope: frozenset[str]) -> Requirement:
    p = _field(e, scope)
    return None if p is None else frozenset((IndexKey("has", p),))


def _lit_key(p: tuple[str, ...], lit: ast.Expr) -> IndexKey | None:
    if not isinstance(lit, ast.Lit) or type(lit.value) is bool:
        return None
    text = _norm(lit.value)
    return None if text is None else IndexKey("val", p, text)


def _segment(lit: ast.Expr, anchored: bool) -> str | None:
    """The longest segment of a string literal that is whole in any string containing it
    (``anchored``: starting with it): bounded by backslashes on both sides, or by the
    start and a backslash when anchored; ``None`` when there is none."""
    if not isinstance(lit, ast.Lit) or type(lit.value) is not str or "\\" not in lit.value:
        return None
    parts = lit.value.lower().split("\\")
    whole = parts[:-1] if anchored else parts[1:-1]
    whole = [w for w in whole if w]
    return max(whole, key=len) if whole else None


RE_KINDS = ("re", "re_lower", "re_text")
"""The kinds of index keys that are patterns found in a string (see the module doc)."""


def _lower_of(e: ast.Expr, scope: frozenset[str]) -> tuple[str, ...] | None:
    """The field path ``p`` when ``e`` is ``lower(p)`` of the event under test, else ``None``."""
    if isinstance(e, ast.Call) and e.func == "lower" and len(e.args) == 1 \
            and isinstance(e.args[0], ast.Path):
        return _field(e.args[0], scope)
    return None


def _is_text_of_this(e: ast.Expr) -> bool:
    return (isinstance(e, ast.Call) and e.func == "text" and len(e.args) == 1
            and isinstance(e.args[0], ast.Path) and tuple(e.args[0].parts) == ("this",))


def _pattern_key(e: ast.Binary, use: IndexUse, scope: frozenset[str]) -> IndexKey | None:
    """The pattern key of ``e`` (a regex found: ``matches`` a literal; or a substring test of
    a string literal on ``lower(p)``: ``use`` segment, prefix or suffix), or ``None``."""
    lit = e.right
    if not isinstance(lit, ast.Lit) or type(lit.value) is not str:
        return None
    if use is IndexUse.PATTERN:
        if _is_text_of_this(e.left):
            return IndexKey("re_text", (), lit.value)
        lowered = _lower_of(e.left, scope)
        if lowered is not None:
            return IndexKey("re_lower", lowered, lit.value)
        if isinstance(e.left, ast.Path):
            p = _field(e.left, scope)
            return None if p is None else IndexKey("re", p, lit.value)
        return None
    lowered = _lower_of(e.left, scope)
    if lowered is None:
        return None
    body = re.escape(lit.value)
    pattern = ("\\A" + body if use is IndexUse.PREFIX else body + "\\z"
               if use is IndexUse.SUFFIX else body)
    return IndexKey("re_lower", lowered, pattern)


def _rank(req: frozenset[IndexKey]) -> tuple[int, int, int, list[IndexKey]]:
    """Smaller is more selective: sets without ``has`` keys first, then fewer keys, then
    fewer pattern keys (a search costs more than a look-up), then the keys themselves (so
    that the order never depends on hashing)."""
    return (sum(k.kind == "has" for k in req), len(req),
            sum(k.kind in RE_KINDS for k in req), sorted(req))


def _index_use(op: str) -> IndexUse:
    """What an event field tested with ``op`` tells the index (its
    :attr:`~cep.lang.operators.Operator.index`)."""
    spec = OPERATORS.get(op)
    return IndexUse.NONE if spec is None else spec.index


def _keep(found: Iterable[frozenset[IndexKey]]) -> Clauses:
    """The clauses ``found`` without repeats and supersets of others, most selective first,
    at most :data:`MAX_CLAUSES`."""
    distinct = set(found)
    if len(distinct) == 1:
        return tuple(distinct)
    out: list[frozenset[IndexKey]] = []
    for c in sorted(distinct, key=_rank):
        if not any(kept <= c for kept in out):
            out.append(c)
    return tuple(out[:MAX_CLAUSES])


def _or(left: Clauses, right: Clauses) -> Clauses:
    """The clauses of ``a or b`` from those of ``a`` and ``b`` (see the module doc)."""
    if not left or not right:
        return ()
    if len(left) * len(right) > MAX_CLAUSES * 2:
        return (left[0] | right[0],)
    return _keep(x | y for x in left for y in right)


def _operands(e: ast.Binary) -> list[ast.Expr]:
    """The operands of a chain of ``e.op`` (``a and b and c``: ``[a, b, c]``), in order,
    found without recursion."""
    out: list[ast.Expr] = []
    todo: list[ast.Expr] = [e]
    while todo:
        x = todo.pop()
        if isinstance(x, ast.Binary) and x.op == e.op:
            todo += (x.right, x.left)
        else:
            out.append(x)
    return out


def clauses(e: ast.Expr, scope: frozenset[str] = frozenset()) -> Clauses:
    """The clauses of ``e`` (see the module doc): sets of index keys, an event carrying a key
    of each, for ``e`` to hold.  ``scope``: the stage names (their fields are not the
    event's)."""
    if isinstance(e, ast.Binary) and e.op in ("and", "or"):
        parts = [clauses(x, scope) for x in _operands(e)]
        if e.op == "and":
            return _keep(c for part in parts for c in part)
        out = parts[0]
        for part in parts[1:]:
            out = _or(out, part)
        return out
    req = _atom(e, scope)
    return () if req is None else (req,)


def requirement(e: ast.Expr, scope: frozenset[str] = frozenset()) -> Requirement:
    """The index keys one of which an event must carry for ``e`` to hold: the most selective
    of its :func:`clauses`; ``None`` when it has none."""
    found = clauses(e, scope)
    return found[0] if found else None


def _atom(e: ast.Expr, scope: frozenset[str]) -> Requirement:
    """The requirement of ``e``, not an ``and`` or ``or`` (see the module doc)."""
    if isinstance(e, ast.Binary):
        use = _index_use(e.op)
        if use in (IndexUse.EQUALS, IndexUse.MEMBER):
            for subj, other in ((e.left, e.right), (e.right, e.left)):
                p = _field(subj, scope)
                if p is None:
                    continue
                items = other.items if (use is IndexUse.MEMBER
                                        and isinstance(other, ast.ListLit)) \
                    else (other,) if use is IndexUse.EQUALS else None
                if items is not None:
                    keys = [_lit_key(p, it) for it in items]
                    if all(k is not None for k in keys):
                        return frozenset(k for k in keys if k is not None)
                return frozenset((IndexKey("has", p),))
            return None
        if use is IndexUse.SUFFIX:
            p = _field(e.left, scope)
            if p is None:
                return None
            lit = e.right
            if isinstance(lit, ast.Lit) and type(lit.value) is str and "\\" in lit.value:
                tail = lit.value.lower().rsplit("\\", 1)[1]
                return frozenset((IndexKey("base", p, tail),))
            key = _pattern_key(e, use, scope)
            return frozenset((key or IndexKey("has", p),))
        if use in (IndexUse.SEGMENT, IndexUse.PREFIX):
            p = _field(e.left, scope)
            if p is None:
                return None
            key = _pattern_key(e, use, scope)
            if key is not None:
                return frozenset((key,))
            seg = _segment(e.right, use is IndexUse.PREFIX)
            if seg is not None:
                return frozenset((IndexKey("seg", p, seg),))
            return frozenset((IndexKey("has", p),))
        if use is IndexUse.PATTERN:
            key = _pattern_key(e, use, scope)
            return frozenset((key,)) if key is not None else _has(e.left, scope)
        if use is IndexUse.PRESENT:
            return _has(e.left, scope)
        return None
    if isinstance(e, ast.IsNull):
        return _has(e.operand, scope) if e.negated else None
    if isinstance(e, ast.Lit):
        return frozenset() if e.value is False or e.value is None else None
    if isinstance(e, ast.Path):
        return _has(e, scope)
    return None


def stateless(nfa: NFA, timeout_output: bool) -> bool:
    """Whether a rule with automaton ``nfa`` (and ``timeout_output``: ``on timeout emit``)
    never keeps state for a key: its start state only TAKEs into the final state (or
    ignores), nothing pends, no window, no timeout output."""
    if nfa.has_pending or timeout_output or nfa.window_ms:
        return False
    for t in nfa.start.transitions:
        if t.action == TAKE and t.target.kind != FINAL:
            return False
        if t.action not in (TAKE, IGNORE):
            return False
        if t.action == IGNORE and t.target is not nfa.start:
            return False
    return True


def start_clauses(nfa: NFA, timeout_output: bool) -> Clauses:
    """The clauses of a stateless rule's start (:func:`stateless`; any of its start
    conditions holding: their ``or``); ``()`` for a rule that is not stateless or whose
    start has none.  :func:`cep.compiler.build.build_rule` keeps them in the compiled rule
    (:attr:`~cep.compiler.compiled.CompiledRule.start_clauses`) for the rule index."""
    if not stateless(nfa, timeout_output):
        return ()
    out: Clauses | None = None
    for cond in nfa.start_take_conds:
        code = code_of(cond)
        if code is None or code.ast is None:
            return ()
        found = clauses(code.ast, frozenset(code.scope))
        out = found if out is None else _or(out, found)
        if not out:
            return ()
    return out or ()


def event_keys(data: dict[str, Any], paths: Sequence[tuple[tuple[str, ...], bool]],
               patterns: Iterable[IndexKey] = ()) -> list[IndexKey]:
    """The index keys ``data`` carries for the field ``paths`` (each with whether its
    ``seg`` keys are wanted), and those of the pattern keys ``patterns`` it carries (each
    pattern searched on its own: the reference :class:`RuleIndex` is tested against)."""
    out: list[IndexKey] = []
    for k in patterns:
        if k.kind == "re_text":
            subject = rt.fn_text(data)
        else:
            subject = data.get(k.path[0]) if len(k.path) == 1 else get_path(data, k.path)
            if k.kind == "re_lower":
                subject = rt.fn_lower(subject)
        if type(subject) is str and has_surrogate(subject):
            out.append(k)  # RE2 cannot read it: it carries every pattern key (the index's sets)
        elif rt.matches(rt.Regex(k.value), subject):
            out.append(k)
    for p, segs in paths:
        v = data.get(p[0]) if len(p) == 1 else get_path(data, p)
        if v is None:
            continue
        out.append(IndexKey("has", p))
        text = _norm(v)
        if text is not None:
            out.append(IndexKey("val", p, text))
            if type(v) is str:
                parts = text.split("\\")
                out.append(IndexKey("base", p, parts[-1]))
                if segs and len(parts) > 1:
                    out += [IndexKey("seg", p, s) for s in set(parts)]
    return out


