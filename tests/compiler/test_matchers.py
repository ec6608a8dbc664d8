"""The matching operators (docs/rule-language.md, *Matching*): ``in cidr(…)``, ``like`` /
``like~``, ``=~``, ``in~`` — each against an independent brute-force reference (``ipaddress``
network membership, ``fnmatch`` over a translated pattern, ``str.casefold``), through the
compiled condition the engine runs."""

from __future__ import annotations

import fnmatch
import ipaddress
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cep.compiler.codegen import CompileError, StageScope, compile_condition, source_of
from cep.compiler.matchers import CidrSet, GlobSet, parse_glob
from cep.compiler.predicate import UNKNOWN, expr_predicate
from cep.event import Event
from cep.lang.ast import Binary, Expr
from cep.lang.cidr import MatcherError
from cep.lang.parse import parse_text

from .test_codegen import assert_safe_source

MISSING = object()


def condition(text: str) -> Expr:
    """The condition of ``begin a where TEXT``, parsed."""
    rf, diags = parse_text(f"rule r\n  pattern\n    begin a where {text}\nend\n")
    assert diags == [], diags
    cond = rf.rules[0].pattern[0].condition
    assert cond is not None
    return cond


def holds(text: str, x: Any) -> bool:
    """``TEXT`` (over the field ``x``) on an event whose ``x`` is ``x`` (absent: MISSING)."""
    cond = compile_condition(condition(text), StageScope(), text)
    assert_safe_source(source_of(cond))
    data = {} if x is MISSING else {"x": x}
    out = cond.fn(Event(0, 0, data, "input", 0), None)
    assert type(out) is bool
    return out


def quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


# --------------------------------------------------------------------------- CIDR

def ref_in_networks(x: Any, nets: list[str]) -> bool:
    """Brute force: parse each block with ``ipaddress``, test membership one by one."""
    if type(x) is not str:
        return False
    try:
        addr = ipaddress.ip_address(x)
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return any(addr in ipaddress.ip_network(n) for n in nets)


v4_nets = st.builds(lambda a, p: str(ipaddress.ip_network((a, p), strict=False)),
                    st.integers(0, 2**32 - 1), st.integers(0, 32))
v6_nets = st.builds(lambda a, p: str(ipaddress.ip_network((a, p), strict=False)),
                    st.integers(0, 2**128 - 1), st.integers(0, 128))
v4_addrs = st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n)))
addresses = st.one_of(
    v4_addrs,
    st.integers(0, 2**128 - 1).map(lambda n: str(ipaddress.IPv6Address(n))),
    v4_addrs.map(lambda a: f"::ffff:{a}"),
    st.sampled_from(["10.0.0.1", "10.255.255.255", "11.0.0.0", "192.168.1.1", "fd00::1",
                     "fe80::1%eth0", "010.0.0.1", "10.0.0", "", "::", "garbage", "1.2.3.4/32",
                     "1.2.3.4\x00", "١.2.3.4", " 1.2.3.4", "1.2.3.4 ", "0x1.2.3.4"]),
    st.text(alphabet="0123456789.: x-+١%abcdef", max_size=16),
)


@settings(max_examples=300, deadline=None)
@given(nets=st.lists(st.one_of(v4_nets, v6_nets, st.sampled_from(
    ["10.0.0.0/8", "192.168.0.0/16", "fd00::/8", "0.0.0.0/0"])), min_size=1, max_size=6),
    xs=st.lists(addresses, min_size=1, max_size=8))
def test_cidr_matches_ipaddress_membership(nets: list[str], xs: list[str]) -> None:
    blocks = CidrSet(nets)
    text = "x in cidr(" + ", ".join(quote(n) for n in nets) + ")"
    negated = "x not in cidr(" + ", ".join(quote(n) for n in nets) + ")"
    for x in xs:
        expected = ref_in_networks(x, nets)
        assert blocks.test(x) is expected
        assert holds(text, x) is expected
        assert holds(negated, x) is (not expected)


@pytest.mark.parametrize("x", [MISSING, None, 167772161, True, ["10.0.0.1"], {"ip": "10.0.0.1"}])
def test_cidr_of_what_is_no_string(x: Any) -> None:
    assert holds('x in cidr("10.0.0.0/8")', x) is False
    # `not in` is false for null, as `not in [..]` is
    assert holds('x not in cidr("10.0.0.0/8")', x) is (x is not MISSING and x is not None)


def test_cidr_examples_of_the_docs() -> None:
    t = 'x in cidr("10.0.0.0/8", "192.168.0.0/16", "2001:db8::/32")'
    assert holds(t, "10.1.2.3") and holds(t, "192.168.255.1") and holds(t, "2001:db8::7")
    assert holds(t, "::ffff:10.1.2.3")  # IPv4-mapped: tested as the IPv4 address
    assert not holds(t, "11.1.2.3") and not holds(t, "2001:db9::1")
    assert not holds(t, "010.1.2.3")  # a leading zero: no address, as ipaddress reads it
    assert holds('x in cidr("1.2.3.4")', "1.2.3.4")  # a bare address: a block of one
    assert holds('x in cidr("fe80::/10")', "fe80::1%eth0")  # the zone is ignored


@pytest.mark.parametrize("block, why", [("10.0.0.1/8", "host bits"), ("300.0.0.0/8", "not an"),
                                        ("10.0.0.0/33", "not an"), ("", "not an")])
def test_invalid_blocks_are_errors(block: str, why: str) -> None:
    with pytest.raises(MatcherError, match=why):
        CidrSet([block])
    with pytest.raises(CompileError, match=why):
        compile_condition(condition(f"x in cidr({quote(block)})"), StageScope(), "t")


def test_cidr_as_a_value_does_not_compile() -> None:
    with pytest.raises(CompileError, match="write `x in cidr"):
        compile_condition(condition('cidr("10.0.0.0/8") == x'), StageScope(), "t")


# --------------------------------------------------------------------------- wildcards

def ref_like(x: Any, pattern: str, fold: bool = False) -> bool:
    """Brute force with ``fnmatch.fnmatchcase``: the Sigma pattern translated to fnmatch's
    syntax (literal ``*``, ``?`` and ``[`` as one-character classes)."""
    if type(x) is not str:
        return False
    if fold:
        x, pattern = x.casefold(), pattern.casefold()
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern) and pattern[i + 1] in "*?\\":
            out.append({"*": "[*]", "?": "[?]", "\\": "\\"}[pattern[i + 1]])
            i += 2
            continue
        out.append({"*": "*", "?": "?", "[": "[[]"}.get(c, c))
        i += 1
    return fnmatch.fnmatchcase(x, "".join(out))


glob_chars = st.sampled_from(list("ab*?\\.A[]ß") + ["SS", "\n", "é"])
patterns = st.lists(glob_chars, max_size=8).map("".join)
values = st.one_of(st.lists(st.sampled_from(list("abAB.*?\\[]ßé\n") + ["ss", "SS"]),
                            max_size=10).map("".join), st.text(max_size=6))


@settings(max_examples=400, deadline=None)
@given(pats=st.lists(patterns, min_size=1, max_size=4), xs=st.lists(values, max_size=6),
       fold=st.booleans())
def test_like_matches_fnmatch(pats: list[str], xs: list[str], fold: bool) -> None:
    op = "like~" if fold else "like"
    text = f"x {op} [" + ", ".join(quote(p) for p in pats) + "]"
    single = f"x {op} {quote(pats[0])}"
    globs = GlobSet(pats, fold)
    for x in xs:
        expected = any(ref_like(x, p, fold) for p in pats)
        assert globs.test(x) is expected, (pats, x)
        assert holds(text, x) is expected
        assert holds(f"x not {op} [" + ", ".join(quote(p) for p in pats) + "]", x) is (
            not expected)
        assert holds(single, x) is ref_like(x, pats[0], fold)


def test_like_examples_of_the_docs() -> None:
    ps = 'x like "*\\\\powershell.exe"'  # rule text "*\\powershell.exe", pattern *\powershell.exe
    assert holds(ps, "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe")
    assert not holds(ps, "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\POWERSHELL.EXE")
    assert holds(ps.replace("like", "like~"), "C:\\WINDOWS\\POWERSHELL.EXE")
    assert holds('x like "*.exe"', "a.exe") and not holds('x like "*.exe"', "a.exe.txt")
    assert holds('x like "a?c"', "abc") and not holds('x like "a?c"', "abbc")
    assert holds('x like "a\\\\*"', "a*") and not holds('x like "a\\\\*"', "ab")
    assert holds('x like "C:\\\\Windows\\\\\\\\*"', "C:\\Windows\\notepad.exe")
    assert not holds('x like "*"', None) and holds('x like "*"', "")
    assert not holds('x like "1*"', 12)  # a number is no string
    assert not holds('x not like "a*"', MISSING) and holds('x not like "a*"', "b")


def test_parse_glob_escapes_like_sigma() -> None:
    assert [p.kind for p in parse_glob("a**b?")] == ["text", "star", "text", "one"]
    assert parse_glob("\\*\\?\\\\\\x\\") == [("text", "*?\\\\x\\")]


def test_long_values_and_many_stars_stay_linear() -> None:
    # a pattern that makes a backtracking matcher take exponential time
    pat = "*a" * 12 + "*b"
    assert not holds(f"x like {quote(pat)}", "a" * 5000)


# --------------------------------------------------------------------------- case folding

words = st.one_of(st.sampled_from(["admin", "ADMIN", "Admin", "straße", "STRASSE", "ǅ", "ǆ",
                                   "ﬁ", "FI", "", "root"]), st.text(max_size=4))
scalars = st.one_of(words, st.integers(-2, 2), st.booleans(), st.none(),
                    st.just(1.0))


def ref_eq_folded(a: Any, b: Any) -> bool:
    if type(a) is str and type(b) is str:
        return a.casefold() == b.casefold()
    if a is None or b is None:
        return False
    if type(a) is bool or type(b) is bool:
        return a is b
    return bool(a == b)


def lit(v: Any) -> str:
    if isinstance(v, str):
        return quote(v)
    return {None: "null", True: "true", False: "false"}.get(v, repr(v)) \
        if v is None or type(v) is bool else repr(v)


@settings(max_examples=300, deadline=None)
@given(x=scalars, items=st.lists(scalars, max_size=5))
def test_case_insensitive_forms_match_casefold(x: Any, items: list[Any]) -> None:
    for item in items[:2]:
        assert holds(f"x =~ {lit(item)}", x) is ref_eq_folded(x, item)
        assert holds(f"{lit(item)} =~ x", x) is ref_eq_folded(item, x)
    expected = x is not None and any(ref_eq_folded(x, i) for i in items)
    listed = "[" + ", ".join(lit(i) for i in items) + "]"
    assert holds(f"x in~ {listed}", x) is expected
    assert holds(f"x not in~ {listed}", x) is (x is not None and not expected)


def test_eq_folded_between_two_fields() -> None:
    rf, _ = parse_text('rule r\n pattern\n  begin a where x =~ y\nend\n')
    cond = compile_condition(rf.rules[0].pattern[0].condition, StageScope(), "t")  # type: ignore[arg-type]
    for x, y, want in [("Ab", "aB", True), ("a", "b", False), (1, 1.0, True), ("1", 1, False),
                       (None, None, False)]:
        assert cond.fn(Event(0, 0, {"x": x, "y": y}, "input", 0), None) is want


# --------------------------------------------------------------------------- the scanner

def test_scanner_predicate_decides_exact_like_and_leaves_the_rest_unknown() -> None:
    slots: dict[tuple[str, ...], int] = {}

    def slot_of(path: tuple[str, ...]) -> int:
        return slots.setdefault(path, len(slots))

    def pred(text: str) -> Any:
        return expr_predicate(condition(text), frozenset(), slot_of)

    assert pred('x like ["a", "b\\\\*"]') == ("in", 0, (b"a", b"b*"))
    assert pred('x not like "a"') == ("notin", 0, (b"a",))
    for text in ['x like "a*"', 'x like~ "a"', 'x =~ "a"', 'x in~ ["a"]',
                 'x in cidr("10.0.0.0/8")', 'x not in cidr("10.0.0.0/8")']:
        assert pred(text) == UNKNOWN, text
    # a decisive conjunct still lets the scanner skip the line
    both = pred('y == "4624" and x in cidr("10.0.0.0/8")')
    assert both[0] == "and" and ("cmp", "==", 1, b"4624") in both[1]


def test_binary_ops_round_trip_through_the_canonical_text() -> None:
    from cep.lang.format import format_expr

    for text in ['x =~ "a"', 'x in~ ["a", 1]', 'x not in~ ["a"]', 'x like "a*"',
                 'x not like ["a", "b"]', 'x like~ "a"', 'x not like~ "a"',
                 'x in cidr("10.0.0.0/8", "fd00::/8")', 'x not in cidr("10.0.0.0/8")']:
        e = condition(text)
        assert isinstance(e, Binary)
        assert format_expr(e) == text
        assert condition(format_expr(e)) == e


def test_the_operators_work_in_the_header_where_and_in_emit() -> None:
    from cep.compiler.codegen import compile_emit, compile_header_filter

    where = condition('host like~ "WS-*" and ip in cidr("10.0.0.0/8") and user in~ ["Bob"]')
    header = compile_header_filter(where)
    assert_safe_source(header.source)
    yes = Event(0, 0, {"host": "ws-7", "ip": "10.9.9.9", "user": "BOB"}, "input", 0)
    no = Event(0, 0, {"host": "ws-7", "ip": "11.9.9.9", "user": "BOB"}, "input", 0)
    assert header.fn(yes) is True and header.fn(no) is False
    emit = compile_emit((("inside", condition('a.ip in cidr("10.0.0.0/8")')),
                         ("admin", condition('a.user =~ "bob"'))), StageScope.of(["a"]))
    assert emit.fn({"a": [yes]}) == {"inside": True, "admin": True}
    assert emit.fn({"a": [no]}) == {"inside": False, "admin": True}
