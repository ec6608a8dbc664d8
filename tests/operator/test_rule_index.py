"""The rule index never hides a rule from an event its first stage accepts.

Generated conditions (equality, ``in``, ``ends with``, ``contains``, ``starts with``,
``matches``, ``is null``, ``not``, ``and``/``or`` over plain and lower-cased fields, literals
with backslashes) on generated events: whenever a condition holds, the event carries one of
the index keys of each of its clauses; and an operator with many rules (indexed) emits exactly
the alerts of each rule run alone (never indexed).  A rule whose other clause an event does
not meet is no candidate for it."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cep.compiler import runtime as rt
from cep.compiler.build import build_rule
from cep.compiler.requirement import RE_KINDS, clauses, event_keys, requirement
from cep.event import Event
from cep.lang import ast
from cep.operator import rule_index
from cep.operator.cep_operator import CepOperator
from cep.operator.rule_index import MIN_INDEXED, PatternIndex

FIELDS = ("A", "B")
TEXT = st.text("aB\\x", max_size=5)
PATTERN = st.sampled_from(["x", "\\Aa", "b\\z", "a.x", "(?i)b", "(?m)^x$", "\\\\", ""])
EVENT_TEXT = st.text("aB\\x.\n\ud800", max_size=5)  # (a lone surrogate: no UTF-8)
LIT = st.one_of(TEXT, st.integers(0, 2), st.sampled_from([1.0, 2.5, True]))


def _subject(draw: st.DrawFn) -> ast.Expr:
    path = ast.Path(("this", draw(st.sampled_from(FIELDS))))
    return ast.Call("lower", (path,)) if draw(st.booleans()) else path


@st.composite
def atoms(draw: st.DrawFn) -> ast.Expr:
    subject = _subject(draw)
    op = draw(st.sampled_from(["==", "in", "ends with", "contains", "starts with", "matches",
                               "is not null", "is null", ">"]))
    if op == "in":
        return ast.Binary("in", subject, ast.ListLit(tuple(
            ast.Lit(v) for v in draw(st.lists(LIT, min_size=1, max_size=3)))))
    if op == "matches":
        if draw(st.booleans()):  # a keyword search: every string of the event
            subject = ast.Call("text", (ast.Path(("this",)),))
        return ast.Binary("matches", subject, ast.Lit(draw(PATTERN)))
    if op in ("is null", "is not null"):
        return ast.IsNull(subject, negated=op == "is not null")
    if op == ">":
        return ast.Binary(">", subject, ast.Lit(1))
    return ast.Binary(op, subject, ast.Lit(draw(LIT if op == "==" else TEXT)))


conditions = st.recursive(
    atoms(),
    lambda inner: st.one_of(
        st.tuples(inner, inner).map(lambda t: ast.Binary("and", *t)),
        st.tuples(inner, inner).map(lambda t: ast.Binary("or", *t)),
        inner.map(lambda e: ast.Unary("not", e))),
    max_leaves=6)

events = st.dictionaries(st.sampled_from(FIELDS),
                         st.one_of(EVENT_TEXT, st.integers(0, 2),
                                   st.sampled_from([1.0, 2.5, True]),
                                   st.none()))


def _rule(name: str, cond: ast.Expr) -> Any:
    return build_rule(ast.Rule(name=name, pattern=(ast.Stage("begin", "s", cond, ()),)))


@settings(max_examples=400, deadline=None)
@given(conditions, st.lists(events, min_size=1, max_size=8))
def test_every_clause_is_necessary(cond: ast.Expr, evs: list[dict[str, Any]]) -> None:
    rule = _rule("r", cond)
    found = clauses(cond)
    assert requirement(cond) == (found[0] if found else None)
    paths = [(("A",), True), (("B",), True)]
    for i, data in enumerate(evs):
        if rule.nfa.start_prefilter.fn(Event(i, i, data), None):
            for req in found:
                patterns = [k for k in req if k.kind in RE_KINDS]
                assert req & set(event_keys(data, paths, patterns)), (cond, data, req)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(conditions, min_size=1, max_size=8),
       st.lists(st.one_of(TEXT, st.integers(0, 2)), min_size=MIN_INDEXED,
                max_size=MIN_INDEXED),
       st.lists(events, min_size=1, max_size=10))
def test_indexed_operator_emits_what_each_rule_alone_emits(
        mixed: list[ast.Expr], lits: list[Any], evs: list[dict[str, Any]]) -> None:
    # enough rules with a requirement that the operator indexes them, among generated ones
    conds = [ast.Binary("==", ast.Call("lower", (ast.Path(("this", "A")),)), ast.Lit(v))
             for v in lits] + mixed
    rules = [_rule(f"r{i}", c) for i, c in enumerate(conds)]
    out: list[tuple[str, int]] = []
    op = CepOperator(rules, lambda s, rec: out.append((rec["rule"], rec["start"])))
    usable = sum(requirement(c) is not None for c in conds)
    assert op.rule_index().indexed == (usable if usable >= MIN_INDEXED else 0)
    for i, d in enumerate(evs):
        op.on_event(Event(i, i, d))
    op.finish()
    batched: list[tuple[str, int]] = []  # the generated loop (fastpath) with the index
    fast = CepOperator(rules, lambda s, rec: batched.append((rec["rule"], rec["start"])))
    fast.on_batch([{**d, "ts": i} for i, d in enumerate(evs)], "input", "ts", 0, 0,
                  lambda d, line: None)
    fast.finish()
    assert batched == out
    alone: list[tuple[str, int]] = []
    for r in rules:
        one = CepOperator([r], lambda s, rec: alone.append((rec["rule"], rec["start"])))
        for i, d in enumerate(evs):
            one.on_event(Event(i, i, d))
        one.finish()
    assert sorted(out) == sorted(alone)


def test_a_rule_is_a_candidate_only_when_every_clause_is_met() -> None:
    # r<i>: lower(A) == "a<i>" and lower(B) ends with "\\x.exe" (its own clause: A's value,
    # which names one rule, not B's, which names all); s<i>: lower(B) == "b<i>" (B is looked
    # at anyway, so r<i>'s other clause is kept)
    def lower(field: str) -> ast.Expr:
        return ast.Call("lower", (ast.Path(("this", field)),))

    rules = [_rule(f"r{i}", ast.Binary(
        "and", ast.Binary("==", lower("A"), ast.Lit(f"a{i}")),
        ast.Binary("ends with", lower("B"), ast.Lit("\\x.exe")))) for i in range(MIN_INDEXED)]
    rules += [_rule(f"s{i}", ast.Binary("==", lower("B"), ast.Lit(f"b{i}")))
              for i in range(MIN_INDEXED)]
    index = CepOperator(rules, lambda s, rec: None).rule_index()
    assert index.indexed == 2 * MIN_INDEXED
    assert [rs.rule.name for rs in index.candidates({"A": "A3", "B": "c:\\X.EXE"})] == ["r3"]
    assert index.candidates({"A": "a3", "B": "c:\\y.exe"}) == []
    assert index.candidates({"A": "a3"}) == []
    assert index.candidates({"B": "c:\\x.exe"}) == []
    assert [rs.rule.name for rs in index.candidates({"A": "a3", "B": "b3"})] == ["s3"]


def test_events_alike_in_the_indexed_fields_differ_in_their_text_and_types() -> None:
    # r<i>: A == <i> (A's value the index reads); kw: a keyword search over every string
    rules = [_rule(f"r{i}", ast.Binary("==", ast.Path(("this", "A")), ast.Lit(i)))
             for i in range(MIN_INDEXED)]
    rules.append(_rule("kw", ast.Binary("matches", ast.Call("text", (ast.Path(("this",)),)),
                                        ast.Lit("secret"))))
    index = CepOperator(rules, lambda s, rec: None).rule_index()

    def names(data: dict[str, Any]) -> list[str]:
        return [rs.rule.name for rs in index.candidates(data)]

    for _ in range(2):  # the second time from what the index remembers
        assert names({"A": 1, "C": "a secret"}) == ["r1", "kw"]
        assert names({"A": 1, "C": "nothing"}) == ["r1"]
        assert names({"A": 1.0, "C": "nothing"}) == ["r1"]
        assert names({"A": True, "C": "nothing"}) == []
        assert names({"A": [1], "C": "secret"}) == ["kw"]
        assert names({"A": "1"}) == ["r1"]
        assert names({"C": "nothing"}) == []


def test_events_alike_but_for_a_nested_field_are_told_apart() -> None:
    rules = [_rule(f"r{i}", ast.Binary("==", ast.Path(("this", "E", "A")), ast.Lit(f"a{i}")))
             for i in range(MIN_INDEXED)]
    index = CepOperator(rules, lambda s, rec: None).rule_index()
    for _ in range(2):  # the second time from what the index remembers
        assert [rs.rule.name for rs in index.candidates({"E": {"A": "a1"}})] == ["r1"]
        assert [rs.rule.name for rs in index.candidates({"E": {"A": "a2"}})] == ["r2"]
        assert index.candidates({"E": {"A": "b"}}) == []
        assert index.candidates({"E": "a1"}) == []


def _hashes(seed: int, n: int) -> list[str]:
    """``n`` distinct 32-digit hex strings (as a Sigma rule lists MD5 hashes)."""
    import hashlib

    return [hashlib.md5(f"{seed}:{i}".encode()).hexdigest() for i in range(n)]


def test_patterns_too_large_for_one_default_re2_set_are_still_told_apart() -> None:
    # 44 patterns, one of 6,000 hashes (220 KiB): RE2's default budget (8 MiB) holds no
    # set of them
    lists = {i: _hashes(i, 20 + 6000 * (i == 0)) for i in range(44)}
    big = {"md5=" + "|md5=".join(h for h in hs): [i] for i, hs in lists.items()}
    index = PatternIndex(big)
    assert sorted(index.hits("x,md5=" + lists[0][4321] + ",y")) == [0]
    assert sorted(index.hits("md5=" + lists[7][3] + " md5=" + lists[43][19])) == [7, 43]
    assert index.hits("md5=" + "0" * 32) == []


def test_a_pattern_no_set_can_hold_is_met_by_every_string(monkeypatch: Any) -> None:
    # with a budget too small for the long alternation alone, its clause is a candidate for
    # every string (it tests its own regex), while the other pattern still filters
    monkeypatch.setattr(rule_index, "MAX_SET_MEM", 1 << 20)
    index = PatternIndex({"md5=" + "|md5=".join(_hashes(0, 8000)): [0], "lsass": [1]})
    assert index.hits("nothing") == [0]
    assert sorted(index.hits("lsass.exe")) == [0, 1]
    # (the budgets were the sets' own: every regex still has RE2's default)
    assert rt.re2_options().max_mem == rule_index.RE2_MAX_MEM


def test_field_values_remembered_and_forgotten_give_the_same_candidates(
        monkeypatch: Any) -> None:
    # r<i>: lower(B) contains "x<i>."; s<i>: A == "a<i>".  A new B beside a known A, and the
    # fields' memories started afresh (3 values each), change no answer.
    monkeypatch.setattr(rule_index, "SEEN", 3)
    rules = [_rule(f"r{i}", ast.Binary("contains", ast.Call("lower", (ast.Path(("this", "B")),)),
                                       ast.Lit(f"x{i}."))) for i in range(MIN_INDEXED)]
    rules += [_rule(f"s{i}", ast.Binary("==", ast.Path(("this", "A")), ast.Lit(f"a{i}")))
              for i in range(MIN_INDEXED)]
    index = CepOperator(rules, lambda s, rec: None).rule_index()
    for round_ in range(3):
        for i in range(MIN_INDEXED):
            for j in range(4):
                k = (i + j) % MIN_INDEXED
                data = {"A": f"a{i}", "B": f"..X{k}..{round_}"}
                got = [rs.rule.name for rs in index.candidates(data)]
                assert got == [f"r{k}", f"s{i}"], data
