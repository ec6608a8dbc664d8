"""The value tests behind the matching operators: CIDR blocks, wildcard patterns and
case-insensitive membership (docs/rule-language.md, *Matching*).

Each matcher is built once, when a rule is compiled, from the literals the rule wrote, and
its bound :meth:`test` is handed to the generated code as a constant.  Every ``test`` is
total: any value an event can hold gives ``True`` or ``False``, never an exception.

* :class:`CidrSet` — IPv4 and IPv6 blocks merged into sorted, disjoint ranges of addresses
  (as integers); a test parses the value with :mod:`ipaddress` and does one binary search.
* :class:`GlobSet` — Sigma's wildcards (``*``, ``?``, ``\\`` escaping ``*``, ``?`` and
  itself).  Each pattern is classified as an equality, a prefix, a suffix, a substring or a
  general pattern; the general ones are joined into one RE2 automaton (linear time: no
  backtracking blow-up whatever the pattern).
* :class:`FoldedSet` — ``in~``: membership of a value among literals, strings compared after
  :meth:`str.casefold`.

Errors: :class:`~cep.lang.cidr.MatcherError` (a ``ValueError``) for a block that is not an IPv4/IPv6
network or has host bits set.
"""

from __future__ import annotations

import ipaddress
import re
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from socket import AF_INET, inet_pton
from typing import Any, NamedTuple

from cep.compiler.runtime import NUM, Regex, eq, in_set, set_key
from cep.lang.cidr import MatcherError, parse_network

__all__ = ["MatcherError", "CidrSet", "GlobSet", "FoldedSet", "GlobPart", "parse_glob",
           "eq_folded", "parse_network"]


def _merge(ranges: list[tuple[int, int]]) -> tuple[list[int], list[int]]:
    """Sorted, overlapping or adjacent ``(first, last)`` ranges merged: parallel lists of
    starts and ends."""
    starts: list[int] = []
    ends: list[int] = []
    for first, last in sorted(ranges):
        if ends and first <= ends[-1] + 1:
            ends[-1] = max(ends[-1], last)
        else:
            starts.append(first)
            ends.append(last)
    return starts, ends


class CidrSet:
    """``x in cidr(block, …)``: whether a string holds an address inside one of the blocks.

    ``blocks`` are CIDR strings (:func:`parse_network`).  An IPv4-mapped IPv6 address
    (``::ffff:10.1.2.3``) is tested as its IPv4 address; an IPv6 zone (``%eth0``) is ignored.
    Memory: two integers per merged range; time per test: one parse (``inet_pton`` for IPv4,
    which accepts exactly the strings :class:`ipaddress.IPv4Address` accepts — the property
    tests check it —, :func:`ipaddress.ip_address` for IPv6) and one binary search.
    """

    __slots__ = ("blocks", "_v4", "_v6")

    def __init__(self, blocks: Iterable[str]) -> None:
        self.blocks = tuple(blocks)
        v4: list[tuple[int, int]] = []
        v6: list[tuple[int, int]] = []
        for text in self.blocks:
            net = parse_network(text)
            rng = (int(net.network_address), int(net.broadcast_address))
            (v4 if net.version == 4 else v6).append(rng)
        self._v4 = _merge(v4)
        self._v6 = _merge(v6)

    def test(self, x: Any) -> bool:
        """Whether ``x`` is a string holding an address inside one of the blocks."""
        if type(x) is not str:
            return False
        try:  # IPv4 as ipaddress reads it (four decimal octets, no leading zero), 5× faster
            return _inside(self._v4, int.from_bytes(inet_pton(AF_INET, x), "big"))
        except (OSError, ValueError, UnicodeError):
            if ":" not in x:
                return False  # neither IPv4 nor IPv6
        try:
            addr = ipaddress.ip_address(x)
        except ValueError:
            return False
        if addr.version == 6:
            mapped = addr.ipv4_mapped  # type: ignore[union-attr]
            if mapped is None:
                return _inside(self._v6, int(addr))
            addr = mapped
        return _inside(self._v4, int(addr))

    def test_not(self, x: Any) -> bool:
        """``x not in cidr(…)``: ``x`` is not null and :meth:`test` is false."""
        return x is not None and not self.test(x)

    def __repr__(self) -> str:
        return f"CidrSet({', '.join(self.blocks)})"


def _inside(ranges: tuple[list[int], list[int]], n: int) -> bool:
    starts, ends = ranges
    i = bisect_right(starts, n) - 1
    return i >= 0 and n <= ends[i]


# --------------------------------------------------------------------------- wildcards


class GlobPart(NamedTuple):
    """One element of a parsed wildcard pattern: ``kind`` is ``"text"`` (with ``text``),
    ``"star"`` (any run of characters) or ``"one"`` (exactly one character)."""

    kind: str
    text: str = ""


_ESCAPABLE = frozenset("*?\\")


def parse_glob(pattern: str) -> list[GlobPart]:
    """A wildcard pattern as its parts, adjacent text joined and runs of stars collapsed.

    ``*`` → star, ``?`` → one, ``\\`` before ``*``, ``?`` or ``\\`` → that character as text;
    any other backslash (a trailing one too) is text (Sigma's escaping rules)."""
    parts: list[GlobPart] = []
    buf: list[str] = []
    i, n = 0, len(pattern)

    def flush() -> None:
        if buf:
            parts.append(GlobPart("text", "".join(buf)))
            buf.clear()

    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n and pattern[i + 1] in _ESCAPABLE:
            buf.append(pattern[i + 1])
            i += 2
            continue
        if c == "*":
            flush()
            if not parts or parts[-1].kind != "star":
                parts.append(GlobPart("star"))
        elif c == "?":
            flush()
            parts.append(GlobPart("one"))
        else:
            buf.append(c)
        i += 1
    flush()
    return parts


def _regex_of(parts: Sequence[GlobPart]) -> str:
    out = []
    for p in parts:
        if p.kind == "star":
            out.append("(?s:.*)")
        elif p.kind == "one":
            out.append("(?s:.)")
        else:
            out.append(re.escape(p.text))
    return "".join(out)


class GlobSet:
    """``x like pattern`` (or any of several patterns); with ``fold``, ``like~``: the value
    and the patterns are compared after :meth:`str.casefold`.

    The patterns are sorted once into an exact set, prefix and suffix tuples, substrings,
    and one anchored RE2 alternation for the rest (:class:`~cep.compiler.runtime.Regex`).
    Raises whatever :class:`~cep.compiler.runtime.Regex` raises for a pattern RE2 cannot
    compile (none that :func:`parse_glob` produces).
    """

    __slots__ = ("patterns", "fold", "exact", "_prefixes", "_suffixes", "_inner",
                 "_regex", "_any")

    def __init__(self, patterns: Iterable[str], fold: bool = False) -> None:
        self.patterns = tuple(patterns)
        self.fold = fold
        exact: set[str] = set()
        prefixes: list[str] = []
        suffixes: list[str] = []
        inner: list[str] = []
        general: list[str] = []
        self._any = False
        for pattern in self.patterns:
            parts = parse_glob(pattern.casefold() if fold else pattern)
            kinds = [p.kind for p in parts]
            if "one" in kinds or kinds.count("text") > 1:
                general.append(_regex_of(parts))
            elif kinds in ([], ["text"]):
                exact.add(parts[0].text if parts else "")
            elif kinds == ["star"]:
                self._any = True
            elif kinds == ["text", "star"]:
                prefixes.append(parts[0].text)
            elif kinds == ["star", "text"]:
                suffixes.append(parts[1].text)
            else:  # star, text, star
                inner.append(parts[1].text)
        self.exact: frozenset[str] = frozenset(exact)
        self._prefixes = tuple(prefixes)
        self._suffixes = tuple(suffixes)
        self._inner = tuple(inner)
        self._regex = (Regex(r"\A(?:" + "|".join(general) + r")\z") if general else None)

    @property
    def only_exact(self) -> bool:
        """Every pattern is plain text (no wildcard): ``like`` is then ``in [..]``."""
        return not (self._any or self._prefixes or self._suffixes or self._inner
                    or self._regex is not None)

    def test(self, x: Any) -> bool:
        """Whether ``x`` is a string matched by one of the patterns."""
        if type(x) is not str:
            return False
        if self.fold:
            x = x.casefold()
        if self._any or x in self.exact:
            return True
        if self._prefixes and x.startswith(self._prefixes):
            return True
        if self._suffixes and x.endswith(self._suffixes):
            return True
        for s in self._inner:
            if s in x:
                return True
        regex = self._regex
        if regex is None:
            return False
        try:
            return regex.test(x)
        except Exception:  # text that is not UTF-8 (a lone surrogate) matches no pattern
            return False

    def test_not(self, x: Any) -> bool:
        """``x not like …``: ``x`` is not null and :meth:`test` is false."""
        return x is not None and not self.test(x)

    def __repr__(self) -> str:
        return f"GlobSet({', '.join(map(repr, self.patterns))}{', fold' if self.fold else ''})"


# --------------------------------------------------------------------------- case folding


def eq_folded(a: Any, b: Any) -> bool:
    """``a =~ b``: two strings equal after :meth:`str.casefold`; any other pair as ``==``
    (:func:`cep.compiler.runtime.eq`)."""
    if type(a) is str and type(b) is str:
        return a.casefold() == b.casefold()
    return eq(a, b)


class FoldedSet:
    """``x in~ [literals]``: strings compared after :meth:`str.casefold`, other scalars as
    ``in`` compares them (:func:`cep.compiler.runtime.in_set`; null never matches)."""

    __slots__ = ("keys",)

    def __init__(self, values: Iterable[Any]) -> None:
        self.keys: frozenset[Any] = frozenset(
            v.casefold() if type(v) is str else set_key(v) for v in values if v is not None)

    def test(self, x: Any) -> bool:
        """Whether ``x`` is one of the values (strings case-folded)."""
        if type(x) is str:
            return x.casefold() in self.keys
        return type(x) in NUM and x in self.keys or type(x) is bool and in_set(x, self.keys)

    def test_not(self, x: Any) -> bool:
        """``x not in~ …``: ``x`` is not null and :meth:`test` is false."""
        return x is not None and not self.test(x)
