"""Which rules an event can concern: rules indexed by the fields and literals they require.

With thousands of rules (a Sigma collection), testing every rule's first stage on every
event costs more than everything else.  Most rules *require* something of an event before
their condition can hold — ``EventID`` equal to one of a few numbers, ``Image`` ending in
``\\rundll32.exe``, a field ``TargetObject`` being present — and most events have none of
it.  This module derives, from each rule's first-stage condition, a set of *index keys* one
of which an event must carry for the condition to hold, and looks up the rules an event's
keys name; a rule whose condition an event cannot satisfy is never evaluated for it.

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
  string of the event (Sigma's keyword searches).  The patterns of one subject are one
  RE2 set (:class:`PatternIndex`): one pass over the string names every pattern found in it;
  a string without a UTF-8 form (a lone surrogate), which RE2 cannot read, carries them all.

Requirement of an expression (:func:`requirement`; ``None``: none, any event may satisfy
it): ``lower(p) == "v"`` and ``p == v`` require ``val``; ``in [..]`` the union; ``ends with
"…\\name"`` requires ``base`` ``name``; ``matches "r"`` on ``p``, ``lower(p)`` or
``text(this)`` requires ``r`` found there (``re``, ``re_lower``, ``re_text``), and so do
``contains`` / ``starts with`` / ``ends with`` a string literal on ``lower(p)`` (the literal
escaped, anchored at the start or the end: ``lower`` yields a string or null, so these are
substring tests); any other comparison, ``contains``, ``starts with`` or ``is not null`` on
``p`` requires ``has p`` — except that ``contains`` / ``starts with`` a literal with a whole
segment between backslashes (``contains "\\currentversion\\run"``: ``currentversion``)
require ``seg`` of the longest such segment; ``a or b`` the union of both (none if either
has none); ``a and b`` the more selective of the two; ``not``, ``is null``, a literal
``true``, and expressions over no field of the event under test require nothing.
Each rule is true only if one key of its requirement is carried by the event (the proof is
case by case above: ``==`` between a string and a number is false, ``lower`` maps each
character on its own, so a string ending in ``\\name`` has ``name`` as its last segment; a
pattern key is the rule's own test, RE2 search of the same pattern in the same string).

Only rules that never keep state for a key are indexed (a single stage that completes on
the event it takes: every TAKE of the start state reaches the final state, nothing pends,
no timeout output); for them, "can the event start a match" is the whole question.  Every
other rule is dispatched as before.  Dispatch order: the rules that are not indexed, in rule
order, then the indexed candidates, in rule order.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

from cep.compiler import runtime as rt
from cep.compiler.generated import code_of
from cep.event import Event, get_path
from cep.lang import ast
from cep.lang.operators import OPERATORS, IndexUse
from cep.nfa.model import FINAL, IGNORE, TAKE
from cep.operator.key_store import RuleState

__all__ = ["GatedRule", "IndexKey", "PatternIndex", "RE_KINDS", "RuleIndex", "gated", "event_keys",
           "requirement", "MIN_INDEXED"]

MIN_INDEXED = 16
"""Fewer indexable rules than this: no index (a plain loop is as fast)."""


class IndexKey(NamedTuple):
    """One thing an event can carry: ``kind`` ``val``/``base``/``seg``/``has``/``re``/
    ``re_lower``/``re_text``, the field ``path`` (``()`` for ``re_text``), and the ``value``
    (``""`` for ``has``; the RE2 pattern for the ``re`` kinds)."""

    kind: str
    path: tuple[str, ...]
    value: str = ""


Requirement = frozenset[IndexKey] | None


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


def _rank(req: frozenset[IndexKey]) -> tuple[int, int]:
    """Smaller is more selective: sets without ``has`` keys first, then fewer keys."""
    return (sum(k.kind == "has" for k in req), len(req))


def _index_use(op: str) -> IndexUse:
    """What an event field tested with ``op`` tells the index (its
    :attr:`~cep.lang.operators.Operator.index`)."""
    spec = OPERATORS.get(op)
    return IndexUse.NONE if spec is None else spec.index


def requirement(e: ast.Expr, scope: frozenset[str] = frozenset()) -> Requirement:
    """The index keys one of which an event must carry for ``e`` to hold (see the module
    doc), or ``None``.  ``scope``: the stage names (their fields are not the event's).
    Iterative over ``and``/``or`` chains of any length."""
    if isinstance(e, ast.Binary):
        if e.op in ("and", "or"):
            left = requirement(e.left, scope)
            right = requirement(e.right, scope)
            if e.op == "or":
                return None if left is None or right is None else left | right
            if left is None:
                return right
            if right is None:
                return left
            return left if _rank(left) <= _rank(right) else right
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


def stateless(rs: RuleState) -> bool:
    """Whether the rule never keeps state for a key: its start state only TAKEs into the
    final state (or ignores), nothing pends, no window, no timeout output."""
    rule = rs.rule
    nfa = rule.nfa
    if nfa.has_pending or rule.timeout_emit_fn is not None or nfa.window_ms:
        return False
    for t in nfa.start.transitions:
        if t.action == TAKE and t.target.kind != FINAL:
            return False
        if t.action not in (TAKE, IGNORE):
            return False
        if t.action == IGNORE and t.target is not nfa.start:
            return False
    return True


def rule_requirement(rs: RuleState) -> Requirement:
    """The requirement of a stateless rule's start (the union over its start conditions),
    or ``None``."""
    if not stateless(rs):
        return None
    out: set[IndexKey] = set()
    for cond in rs.rule.nfa.start_take_conds:
        code = code_of(cond)
        if code is None or code.ast is None:
            return None
        req = requirement(code.ast, frozenset(code.scope))
        if req is None:
            return None
        out |= req
    return frozenset(out)


class GatedRule(NamedTuple):
    """A rule state with the test an event must pass to start a match of it: ``start`` is
    its automaton's start prefilter (``start(ev, None)``: whether the first stage can take
    ``ev``; ``None``: no such test).  An event for which ``start`` is false changes nothing
    of a rule that holds no key (:meth:`RuleState.offer` would test the same), so the
    operator calls the rule only when ``state.keys`` is not empty or ``start`` holds."""

    state: RuleState
    start: Callable[[Any, Any], bool] | None


def gated(rs: RuleState) -> GatedRule:
    """``rs`` with its start prefilter (see :class:`GatedRule`)."""
    pre = rs.rule.nfa.start_prefilter
    return GatedRule(rs, pre.fn if pre is not None else None)


def _utf8(s: str) -> bool:
    """Whether ``s`` has a UTF-8 form (no lone surrogate)."""
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


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
        if type(subject) is str and not _utf8(subject):
            out.append(k)  # RE2 cannot read it: it carries every pattern key (PatternIndex)
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


class PatternIndex:
    """The rules (by position) that require one of several RE2 patterns found in one
    subject string, as one RE2 set searched once per string.

    The set holds, first, the empty pattern, found in every string: a result without it
    means the set's search could not run (RE2 out of memory), and then every rule of the
    index is returned, as when the string cannot be encoded (lone surrogates) or the set
    cannot be built at all — more candidates, never fewer (each tests its own regex)."""

    __slots__ = ("every", "_rules", "_set")

    def __init__(self, patterns: dict[str, list[int]]) -> None:
        self.every = sorted({i for rules in patterns.values() for i in rules})
        self._rules: list[list[int]] = [[]]
        self._set: Any = None
        try:
            import re2

            found = re2.Set.SearchSet(rt.re2_options())
            found.Add("")
            for pattern, rules in patterns.items():
                found.Add(pattern)
                self._rules.append(rules)
            found.Compile()
            self._set = found
        except Exception:  # noqa: BLE001 - re2.error or a binding without sets: no filter
            self._set = None

    def hits(self, s: str) -> list[int]:
        """The positions of the rules one of whose patterns is found in ``s`` (repeats
        possible; ``every`` rule when the search cannot tell)."""
        found = self._set
        if found is None:
            return self.every
        try:
            got = found.Match(s)
        except Exception:  # noqa: BLE001 - unencodable text: every rule decides alone
            return self.every
        if 0 not in got:
            return self.every
        rules = self._rules
        out: list[int] = []
        for i in got:
            out += rules[i]
        return out


class _PathIndex(NamedTuple):
    """The indexed rules (by position) of one field path, per key kind (the pattern kinds
    as :class:`PatternIndex` once the index is built)."""

    path: tuple[str, ...]
    has: list[int]
    val: dict[str, list[int]]
    base: dict[str, list[int]]
    seg: dict[str, list[int]]
    re: dict[str, list[int]]
    re_lower: dict[str, list[int]]


class RuleIndex:
    """The rules of one rule list split into those always dispatched and those indexed by
    their requirement (see the module doc).

    Attributes:
        always: rule states dispatched for every event, in rule order.
        indexed: how many rules are indexed.
    """

    __slots__ = ("always", "always_gated", "indexed", "_paths", "_rules", "_gated", "_text",
                 "_text_rules", "_raw", "_lowered", "_top", "_nested")

    def __init__(self, rules: Sequence[RuleState]) -> None:
        reqs = [rule_requirement(rs) for rs in rules]
        if sum(r is not None for r in reqs) < MIN_INDEXED:
            reqs = [None] * len(rules)
        self._rules = list(rules)
        self._gated = [gated(rs) for rs in rules]
        self.always = [rs for rs, r in zip(rules, reqs, strict=True) if r is None]
        self.always_gated = [g for g, r in zip(self._gated, reqs, strict=True) if r is None]
        self.indexed = sum(r is not None for r in reqs)
        by_path: dict[tuple[str, ...], _PathIndex] = {}
        text: dict[str, list[int]] = {}
        for pos, req in enumerate(reqs):
            for key in sorted(req or ()):
                if key.kind == "re_text":
                    text.setdefault(key.value, []).append(pos)
                    continue
                pi = by_path.get(key.path)
                if pi is None:
                    pi = by_path[key.path] = _PathIndex(key.path, [], {}, {}, {}, {}, {})
                if key.kind == "has":
                    pi.has.append(pos)
                else:
                    getattr(pi, key.kind).setdefault(key.value, []).append(pos)
        self._paths = list(by_path.values())
        self._text_rules = text
        self._text = PatternIndex(text) if text else None
        self._raw = [PatternIndex(pi.re) if pi.re else None for pi in self._paths]
        self._lowered = [PatternIndex(pi.re_lower) if pi.re_lower else None
                         for pi in self._paths]
        self._top = {pi.path[0]: n for n, pi in enumerate(self._paths) if len(pi.path) == 1}
        self._nested = [(n, pi.path) for n, pi in enumerate(self._paths) if len(pi.path) > 1]

    def keys(self) -> list[IndexKey]:
        """Every index key of the index (for reports and tests)."""
        out = []
        for pi in self._paths:
            if pi.has:
                out.append(IndexKey("has", pi.path))
            for kind in ("val", "base", "seg", "re", "re_lower"):
                out += [IndexKey(kind, pi.path, v) for v in getattr(pi, kind)]
        out += [IndexKey("re_text", (), v) for v in self._text_rules]
        return out

    def candidates(self, data: dict[str, Any]) -> list[RuleState]:
        """The indexed rules whose requirement ``data`` meets, in rule order, each once."""
        return [g.state for g in self.gated_candidates(data)]

    def gated_candidates(self, data: dict[str, Any], ev: Event | None = None
                         ) -> list[GatedRule]:
        """:meth:`candidates`, each with its start test (:class:`GatedRule`); ``ev``: the
        event whose ``data`` it is, to build its ``text(this)`` once for the index and the
        rules (:func:`cep.compiler.runtime.ev_text`)."""
        found: list[int] = []
        raw, lowered, paths, top = self._raw, self._lowered, self._paths, self._top
        if len(data) <= len(top):  # the event's fields that some rule requires something of
            present = [(n, v) for k, v in data.items() if (n := top.get(k)) is not None]
        else:
            present = [(n, v) for k, n in top.items() if (v := data.get(k)) is not None]
        for n, p in self._nested:
            present.append((n, get_path(data, p)))
        for n, v in present:
            if v is None:
                continue
            _, has, val, base, seg, _, _ = paths[n]
            if has:
                found += has
            t = type(v)
            if t is str:
                text = v.lower()
                pix = raw[n]
                if pix is not None:
                    found += pix.hits(v)
                pix = lowered[n]
                if pix is not None:
                    found += pix.hits(text)
            elif t is int:
                text = str(v)
            elif t is float:
                text = str(int(v)) if v.is_integer() else repr(v)
            else:
                continue
            hit = val.get(text)
            if hit is not None:
                found += hit
            if t is str and (base or seg):
                parts = text.split("\\")
                if base:
                    hit = base.get(parts[-1])
                    if hit is not None:
                        found += hit
                if seg and len(parts) > 1:
                    for part in set(parts):
                        hit = seg.get(part)
                        if hit is not None:
                            found += hit
        if self._text is not None:
            words = rt.fn_text(data) if ev is None else rt.ev_text(ev)
            if words is not None:
                found += self._text.hits(words)
        if not found:
            return []
        rules = self._gated
        if len(found) == 1:
            return [rules[found[0]]]
        return [rules[i] for i in sorted(set(found))]
