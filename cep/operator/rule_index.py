"""Which rules an event can concern: rules indexed by the fields and literals they require.

With thousands of rules (a Sigma collection), testing every rule's first stage on every
event costs more than everything else.  Most rules *require* something of an event before
their condition can hold — ``EventID`` equal to one of a few numbers, ``Image`` ending in
``\\rundll32.exe``, a field ``TargetObject`` being present — and most events have none of
it.  Each rule's start has *clauses* (:mod:`cep.compiler.requirement`): sets of index keys,
an event carrying a key of each for the rule's first stage to take it.  The index looks up
the keys an event carries and returns the rules all of whose clauses they meet; a rule whose
condition an event cannot satisfy is never evaluated for it.

Every key is looked up once per event, whatever number of rules name it.  A clause is known
by a number: a rule's most selective clause by the rule's position, its other clauses by
numbers past the last rule, one per distinct clause (shared by the rules that have it).  The
keys of a field name the clauses they meet; the pattern keys of one subject (the field's
string, its lower-casing, ``text(this)``) are one RE2 set (:class:`PatternIndex`): one pass
over the string names every pattern found in it; a string without a UTF-8 form (a lone
surrogate), which RE2 cannot read, carries them all.  A rule is a candidate when its own
clause is met and its others are among those met.

The answer depends on nothing but the values of the fields some clause names, and on
``text(this)`` for keyword searches; events alike in those values are frequent (the same
process, the same registry key), so the index remembers, per set of such values, the clauses
they meet and the candidates (a bounded memory, started afresh when full): an event seen
alike costs a look-up and its keyword search only.  An event alike in all but one field (a
new registry value under the same process) costs the look-ups of that field's value only:
each field remembers the clauses its recent values meet.

Rules without clauses (not stateless, or nothing required) are dispatched for every event.
Dispatch order: the rules that are not indexed, in rule order, then the indexed candidates,
in rule order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

from cep.compiler import runtime as rt
from cep.compiler.requirement import RE_KINDS, Clauses, IndexKey
from cep.event import Event, get_path
from cep.operator.key_store import RuleState

__all__ = ["GatedRule", "PatternIndex", "RuleIndex", "gated", "MIN_INDEXED", "SEEN",
           "SEEN_CHARS"]

MIN_INDEXED = 16
"""Fewer indexable rules than this: no index (a plain loop is as fast)."""

SEEN = 4096
"""The most events' field values whose answer the index keeps
(:meth:`RuleIndex.gated_candidates`)."""

SEEN_CHARS = 1 << 22
"""The most characters of field values the index keeps answers for (4 Mi)."""


def _typed(v: Any) -> Any:
    """``v``, not a string, as part of what the index remembers of an event: a number with
    its type (``1`` and ``1.0`` carry the same keys, ``True`` others), anything else, which
    carries only ``has`` keys, as its type alone."""
    t = type(v)
    return (t, v) if t is int or t is float else t


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


class PatternIndex:
    """The clauses (by number) that one of several RE2 patterns found in one subject string
    meets, as RE2 sets searched once per string, compiled on the first search (a field no
    event has costs none).

    The patterns are one set, with a memory budget (``re2.Options.max_mem``) that grows
    with their size (the thousands of hashes some Sigma rules list need four times RE2's
    default); patterns that do not compile together even so are split in halves until each
    part compiles, and each part is one search.  The clauses of a pattern that does not
    compile even alone are met by every string.

    Each set holds, first, the empty pattern, found in every string: a result without it
    means the set's search could not run (RE2 out of memory), and then every clause of the
    index is returned, as when the string cannot be encoded (lone surrogates) or the sets
    cannot be built at all — more candidates, never fewer (each tests its own regex)."""

    __slots__ = ("every", "_patterns", "_parts", "_always")

    def __init__(self, patterns: dict[str, list[int]]) -> None:
        self.every = sorted({i for nums in patterns.values() for i in nums})
        self._patterns = patterns
        self._parts: list[_SetPart] | None = None
        self._always: list[int] = []

    def _compile(self) -> list[_SetPart]:
        """The compiled sets (empty: the index cannot tell, every clause is returned), and
        in :attr:`_always` the clauses of patterns no set can hold."""
        try:
            import re2

            parts, self._always = _set_parts(re2, list(self._patterns.items()))
        except Exception:  # noqa: BLE001 - a binding without sets: no filter
            return []
        return parts

    def hits(self, s: str) -> list[int]:
        """The numbers of the clauses one of whose patterns is found in ``s`` (repeats
        possible; ``every`` clause when the search cannot tell)."""
        parts = self._parts
        if parts is None:
            parts = self._parts = self._compile()
        if not parts:
            return self.every
        try:
            data = s.encode()
        except Exception:  # noqa: BLE001 - unencodable text: every rule decides alone
            return self.every
        out = list(self._always)
        for match, nums in parts:
            got = match(data)
            if not got or 0 not in got:
                return self.every
            if len(got) > 1:
                for i in got:
                    out += nums[i]
        return out


class _SetPart(NamedTuple):
    """One compiled RE2 set of a :class:`PatternIndex`: its search (``match(data)``: the
    numbers of the patterns found in the UTF-8 ``data``, 0 being the empty pattern), and
    per pattern number the clauses it meets."""

    match: Callable[[bytes], Any]
    clauses: list[list[int]]


def _set_parts(re2: Any, patterns: list[tuple[str, list[int]]]
               ) -> tuple[list[_SetPart], list[int]]:
    """``patterns`` (pattern → clause numbers) as few RE2 sets as compile: all in one, with
    a memory budget of :data:`SET_MEM_PER_BYTE` per byte of pattern (at least RE2's
    default, at most :data:`MAX_SET_MEM`), or else each half on its own, recursively.  Also
    the clauses of the patterns that do not compile even alone, which every string must be
    taken to meet."""
    size = sum(len(p) for p, _ in patterns)
    budget = min(MAX_SET_MEM, max(RE2_MAX_MEM, SET_MEM_PER_BYTE * size))
    found = re2.Set.SearchSet(rt.re2_options(budget))
    try:
        found.Add("")
        for pattern, _ in patterns:
            found.Add(pattern)
        found.Compile()
    except re2.error:
        if len(patterns) == 1:
            return [], patterns[0][1]
        mid = len(patterns) // 2
        first, always = _set_parts(re2, patterns[:mid])
        second, more = _set_parts(re2, patterns[mid:])
        return first + second, always + more
    # the binding's own set when it shows it: one call less per search
    return [_SetPart(getattr(found, "_set", found).Match,
                     [[], *(nums for _, nums in patterns)])], []


RE2_MAX_MEM = 8 << 20
"""RE2's default memory budget (bytes): ``re2.Options().max_mem``."""

SET_MEM_PER_BYTE = 128
"""RE2's memory budget for a set per byte of its patterns: RE2's default (8 MiB) holds
about 60 KiB of alternatives, and a Sigma rule may list a few thousand hashes (220 KiB)."""

MAX_SET_MEM = 256 << 20
"""The largest memory budget of one RE2 set (bytes); RE2 takes memory as it needs it, up
to the budget."""


class _PathIndex(NamedTuple):
    """The clauses (by number) that the keys of one field path meet, per key kind (the
    pattern kinds as :class:`PatternIndex` once the index is built)."""

    path: tuple[str, ...]
    has: list[int]
    val: dict[str, list[int]]
    base: dict[str, list[int]]
    seg: dict[str, list[int]]
    re: dict[str, list[int]]
    re_lower: dict[str, list[int]]


class _Field(NamedTuple):
    """What the index looks up for one field path: the clauses its presence meets, its
    ``val``/``base``/``seg`` keys (``None`` when the field has none of that kind), the
    searches of its string and of the string's lower-casing (``None``: no pattern), and the
    clauses met by the values seen lately (:meth:`RuleIndex._lookups`)."""

    path: tuple[str, ...]
    has: list[int]
    val: dict[str, list[int]] | None
    base: dict[str, list[int]] | None
    seg: dict[str, list[int]] | None
    raw: Callable[[str], list[int]] | None
    lowered: Callable[[str], list[int]] | None
    seen: dict[Any, list[int]]


def _field(pi: _PathIndex) -> _Field:
    raw = PatternIndex(pi.re).hits if pi.re else None
    lowered = PatternIndex(pi.re_lower).hits if pi.re_lower else None
    return _Field(pi.path, pi.has, pi.val or None, pi.base or None, pi.seg or None, raw,
                  lowered, {})


def _field_lookup(f: _Field, v: Any) -> list[int]:
    """The clauses (by number, repeats possible) that the keys the value ``v`` (not null) of
    the field ``f`` carries meet."""
    found: list[int] = []
    _, has, val, base, seg, raw, lowered, _ = f
    if has:
        found += has
    t = type(v)
    if t is str:
        if raw is not None:
            found += raw(v)
        if val is None and base is None and seg is None and lowered is None:
            return found
        text = v.lower()
        if lowered is not None:
            found += lowered(text)
        if base is not None or seg is not None:
            parts = text.split("\\")
            if base is not None:
                hit = base.get(parts[-1])
                if hit is not None:
                    found += hit
            if seg is not None and len(parts) > 1:
                for part in set(parts):
                    hit = seg.get(part)
                    if hit is not None:
                        found += hit
    elif val is None:
        return found
    elif t is int:
        text = str(v)
    elif t is float:
        text = str(int(v)) if v.is_integer() else repr(v)
    else:
        return found
    if val is not None:
        hit = val.get(text)
        if hit is not None:
            found += hit
    return found


def _subject(key: IndexKey) -> tuple[str, tuple[str, ...]]:
    """What is looked at to tell whether an event carries ``key``: the field (its path), and
    for a pattern key the string searched (its kind too)."""
    return (key.kind if key.kind in RE_KINDS else "", key.path)


def _own_first(reqs: list[Clauses]) -> list[Clauses]:
    """``reqs`` with each rule's own clause first: of those with the fewest ``has`` keys,
    one that looks at nothing no other rule looks at (:func:`_subject`; each such thing
    costs a look, a search, for every event with the field, for the sake of one rule), and
    of those the one whose keys name the fewest rules (a key many rules name is common)."""
    rules_of: dict[Any, int] = {}
    for req in reqs:
        for thing in {_subject(k) for c in req for k in c} | {k for c in req for k in c}:
            rules_of[thing] = rules_of.get(thing, 0) + 1

    def cost(c: frozenset[IndexKey]) -> tuple[int, bool, int]:
        return (sum(k.kind == "has" for k in c), any(rules_of[_subject(k)] == 1 for k in c),
                sum(rules_of[k] for k in c))

    out = []
    for req in reqs:
        if len(req) > 1:
            first = min(req, key=cost)  # (the first of equals: the most selective)
            if first is not req[0]:
                req = (first, *(c for c in req if c is not first))
        out.append(req)
    return out


class RuleIndex:
    """The rules of one rule list split into those always dispatched and those indexed by
    their clauses (see the module doc).

    Attributes:
        always: rule states dispatched for every event, in rule order.
        indexed: how many rules are indexed.
    """

    __slots__ = ("always", "always_gated", "indexed", "_paths", "_rules", "_gated", "_text",
                 "_text_rules", "_top", "_nested", "_needs", "_count", "_seen", "_seen_chars",
                 "_value_chars")

    def __init__(self, rules: Sequence[RuleState]) -> None:
        reqs = [rs.rule.start_clauses for rs in rules]
        if sum(bool(r) for r in reqs) < MIN_INDEXED:
            reqs = [()] * len(rules)
        self._rules = list(rules)
        self._gated = [gated(rs) for rs in rules]
        self.always = [rs for rs, r in zip(rules, reqs, strict=True) if not r]
        self.always_gated = [g for g, r in zip(self._gated, reqs, strict=True) if not r]
        self.indexed = sum(bool(r) for r in reqs)
        self._count = len(rules)
        self._needs, by_key = self._number(reqs)
        by_path: dict[tuple[str, ...], _PathIndex] = {}
        text: dict[str, list[int]] = {}
        for key, nums in by_key.items():
            if key.kind == "re_text":
                text[key.value] = nums
                continue
            pi = by_path.get(key.path)
            if pi is None:
                pi = by_path[key.path] = _PathIndex(key.path, [], {}, {}, {}, {}, {})
            if key.kind == "has":
                pi.has.extend(nums)
            else:
                getattr(pi, key.kind)[key.value] = nums
        self._paths = list(by_path.values())
        self._text_rules = text
        self._text = PatternIndex(text).hits if text else None
        fields = [_field(pi) for pi in self._paths]
        self._top = {f.path[0]: f for f in fields if len(f.path) == 1}
        self._nested = [f for f in fields if len(f.path) > 1]
        self._seen: dict[frozenset[Any], tuple[list[int], list[GatedRule]]] = {}
        self._seen_chars = 0
        self._value_chars = 0

    def _number(self, reqs: list[Clauses]
                ) -> tuple[list[frozenset[int] | None] | None, dict[IndexKey, list[int]]]:
        """The clauses' numbers (see the module doc): per rule, the numbers of its other
        clauses (``None``: it has none; the list itself ``None`` when no rule has any), and
        per index key the numbers of the clauses it meets."""
        n = len(reqs)
        reqs = _own_first(reqs)
        # another clause only when what it looks at is looked at anyway, for rules' own
        looked = {_subject(k) for req in reqs if req for k in req[0]}
        others: dict[frozenset[IndexKey], int] = {}
        needs: list[frozenset[int] | None] = [None] * n
        by_key: dict[IndexKey, list[int]] = {}
        for pos, req in enumerate(reqs):
            if not req:
                continue
            for key in sorted(req[0]):
                by_key.setdefault(key, []).append(pos)
            nums = []
            for clause in req[1:]:
                if any(_subject(k) not in looked for k in clause):
                    continue
                num = others.get(clause)
                if num is None:
                    num = others[clause] = n + len(others)
                    for key in sorted(clause):
                        by_key.setdefault(key, []).append(num)
                nums.append(num)
            if nums:
                needs[pos] = frozenset(nums)
        return (needs if others else None), by_key

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
        """The indexed rules whose clauses ``data`` meets, in rule order, each once."""
        return [g.state for g in self.gated_candidates(data)]

    def gated_candidates(self, data: dict[str, Any], ev: Event | None = None
                         ) -> list[GatedRule]:
        """:meth:`candidates`, each with its start test (:class:`GatedRule`); ``ev``: the
        event whose ``data`` it is, to build its ``text(this)`` once for the index and the
        rules (:func:`cep.compiler.runtime.ev_text`).  The list is the index's own (the same
        list for events alike in every field the index reads): not to be changed."""
        top = self._top
        names = top.keys() & data.keys()  # the event's fields some clause names (in C)
        # what the answer depends on besides text(this): each such field's value (a string
        # itself, another value with its type, as 1, 1.0 and True carry different keys)
        look: frozenset[tuple[Any, Any]] = frozenset(
            [(k, v) if type(v) is str else (k, _typed(v)) for k in names
             if (v := data[k]) is not None])
        if self._nested:
            look |= {(f.path, v if type(v) is str else _typed(v))
                     for f in self._nested if (v := get_path(data, f.path)) is not None}
        known = self._seen.get(look)
        if known is None:
            known = self._remember(look, self._lookups(data, names))
        if self._text is None:
            return known[1]
        words = rt.fn_text(data) if ev is None else rt.ev_text(ev)
        more = self._text(words) if words is not None else None
        return self._pick(known[0] + more) if more else known[1]

    def _remember(self, look: frozenset[Any], found: list[int]
                  ) -> tuple[list[int], list[GatedRule]]:
        """Keep what the fields ``look`` carry (the clauses met, the candidates) for the
        next event alike: at most :data:`SEEN` events' worth, of at most :data:`SEEN_CHARS`
        characters of field values in all (then the memory starts afresh)."""
        size = sum(len(v) for _, v in look if type(v) is str)
        if len(self._seen) >= SEEN or self._seen_chars + size > SEEN_CHARS:
            self._seen.clear()
            self._seen_chars = 0
        known = self._seen[look] = (found, self._pick(found))
        self._seen_chars += size
        return known

    def _lookups(self, data: dict[str, Any], names: Iterable[str]) -> list[int]:
        """The clauses (by number, repeats possible) the keys of the fields ``names`` of
        ``data`` and of its nested field paths meet.  Each field remembers the clauses of
        the values it had lately (a new combination of values is mostly one new value):
        at most :data:`SEEN` values per field, of at most :data:`SEEN_CHARS` characters
        over all fields (then every field's memory starts afresh)."""
        found: list[int] = []
        top = self._top
        present = [(top[k], data[k]) for k in names]
        if self._nested:
            present += [(f, get_path(data, f.path)) for f in self._nested]
        for f, v in present:
            if v is None:
                continue
            key = v if type(v) is str else _typed(v)
            hit = f.seen.get(key)
            if hit is None:
                hit = _field_lookup(f, v)
                size = len(v) if type(v) is str else 0
                if len(f.seen) >= SEEN or self._value_chars + size > SEEN_CHARS:
                    for other in self._paths_seen():
                        other.clear()
                    self._value_chars = 0
                f.seen[key] = hit
                self._value_chars += size
            found += hit
        return found

    def _paths_seen(self) -> list[dict[Any, list[int]]]:
        return [f.seen for f in self._top.values()] + [f.seen for f in self._nested]

    def _pick(self, found: list[int]) -> list[GatedRule]:
        """The rules, in rule order, whose own clause is in ``found`` and whose other
        clauses are too."""
        if not found:
            return []
        rules = self._gated
        if len(found) == 1:
            i = found[0]
            return [rules[i]] if i < self._count and (
                self._needs is None or self._needs[i] is None) else []
        met = set(found)
        needs = self._needs
        if needs is None:
            return [rules[i] for i in sorted(met)]
        n = self._count
        return [rules[i] for i in sorted(met)
                if i < n and ((need := needs[i]) is None or need <= met)]
