"""The C line scanner (``cep._prescan``) passes over a line only when the Python path would
have done nothing with it but count it.

* Its JSON subset: a line it passes over decodes with orjson to an object with an int event
  time in range (Hypothesis, mutated lines).
* Its predicates: for conditions it models fully it says "false" exactly when the compiled
  condition is false; otherwise it never says "false" for a true condition (Hypothesis).
* Whole runs: ``run_file`` with and without the scanner writes byte-identical alerts, late
  events and dead letters, over inputs mixing in-order and late events, malformed, blank,
  non-ASCII, escaped and oddly spaced lines, several rules and nested keys.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cep.app.pipeline import FileRunOptions, run_file
from cep.app.rules import load_rule_set
from cep.compiler.compiled import CompiledRule
from cep.compiler.generated import code_of
from cep.compiler.predicate import condition_predicate
from cep.event import Event
from cep.io.sinks import JsonLinesSink, SinkSet
from cep.nfa.model import EdgeCond
from cep.operator import prescan
from cep.operator.cep_operator import CepOperator
from tests.operator.test_fastpath import RULES as FASTPATH_RULES

pytestmark = pytest.mark.skipif(not prescan.AVAILABLE, reason="cep._prescan is not built")

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1


def _program(paths: tuple[tuple[str, ...], ...], gates: tuple[Any, ...] = (),
             owners: tuple[Any, ...] = ()) -> Any:
    assert prescan.native is not None
    return prescan.native.Program(paths, 0, owners, gates)


def _skips(program: Any, line: bytes, last: int = INT64_MIN, due: int = INT64_MAX) -> bool:
    assert prescan.native is not None
    pos, skipped, *_ = prescan.native.skip(program, line, 0, last, due, 1 << 20)
    assert (pos, skipped) in ((0, 0), (len(line) + 1, 1))
    return skipped == 1


# --------------------------------------------------------------------------- the JSON subset


def test_plain_lines_are_passed_over_and_unusual_ones_left_to_python() -> None:
    pg = _program((("ts",), ("a",), ("b", "c")))
    ok = [
        b'{"ts": 5}', b'  {"ts":5 , "a" : [1, {"x": null}], "b": {"c": "d"}} \r',
        b'{"ts": -0, "z": "q\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9"}', b'{"ts": 7, "f": 1.25}',
        b'{"ts": 123456789012345678}',
    ]
    for line in ok:
        assert _skips(pg, line), line
    left = [
        b"", b"   ", b"[1]", b'"x"', b'{"ts": 5} x', b'{"ts": 5,}', b'{"ts": 5', b"{ts: 5}",
        b'{"ts": "5"}', b'{"ts": 5.0}', b'{"ts": 1e3}', b'{"a": 1}', b'{"ts": true}',
        b'{"ts": 1234567890123456789}', b'{"ts": 05}', b'{"ts": 5, "a": 1, "a": 2}',
        b'{"ts": 5, "ts": 6}', b'{"ts": 5, "b": {"c": 1, "c": 2}}',
        b'{"ts": 5, "x": "\xc3\xa9"}', b'{"ts": 5, "x": "\\ud800"}', b'{"ts": 5, "x": "\\x"}',
        b'{"ts": 5, "x": "a\tb"}', b'{"t\\u0073": 5}', b'{"ts": 5, "x": 1.}',
        b'{"ts": 5, "x": -}', b'{"ts": 5, "x": tru}', b'{"ts": 5, "x": NaN}',
        b'{"ts": 5, "x": ' + b"[" * 40 + b"]" * 40 + b"}",
    ]
    for line in left:
        assert not _skips(pg, line), line


def test_event_time_bounds() -> None:
    pg = _program((("ts",),))
    assert _skips(pg, b'{"ts": 10}', last=10, due=10)
    assert not _skips(pg, b'{"ts": 9}', last=10)  # late
    assert not _skips(pg, b'{"ts": 11}', due=10)  # passes a timer
    assert prescan.native is not None
    # a stop for the timer says at which time; any other stop does not
    assert prescan.native.skip(pg, b'{"ts": 11}', 0, 3, 10, 99) == (0, 0, 3, 11, None)
    assert prescan.native.skip(pg, b'{"ts": 2}', 0, 3, 10, 99) == (0, 0, 3, None, None)
    assert prescan.native.skip(pg, b'{"ts": 11', 0, 3, 10, 99) == (0, 0, 3, None, None)


def test_a_wanted_line_comes_back_with_the_gates_that_want_it() -> None:
    """Gate g is listed as 2g + 1 when certainly true, as 2g when unknown."""
    assert prescan.native is not None
    gates = (("cmp", "==", 1, b"a"), ("const", 0), ("const", 2), ("cmp", "!=", 1, b"b"))
    for index in (None, prescan.index_of(gates, 1)):
        pg = prescan.native.Program((("ts",), ("type",)), 0, (), gates, index)
        chunk = b'{"ts": 1, "type": "b"}\n{"ts": 2, "type": "a"}'
        assert prescan.native.skip(pg, chunk, 0, 0, 9, 99) == (0, 0, 0, 1, (2 * 2,))
        assert (prescan.native.skip(pg, chunk, 23, 1, 9, 99)
                == (23, 0, 1, 2, (2 * 0 + 1, 2 * 2, 2 * 3 + 1)))


def test_a_chunk_stops_at_the_first_line_it_cannot_pass_over() -> None:
    assert prescan.native is not None
    pg = _program((("ts",),))
    chunk = b'{"ts": 1}\n{"ts": 2}\nnot json\n{"ts": 3}\n'
    pos, skipped, last, *_ = prescan.native.skip(pg, chunk, 0, INT64_MIN, INT64_MAX, 1 << 20)
    assert (chunk[pos:pos + 8], skipped, last) == (b"not json", 2, 2)
    pos, skipped, last, *_ = prescan.native.skip(pg, chunk, pos + 9, last, INT64_MAX, 1 << 20)
    # the final blank line (after the last newline) is a line too: left to Python
    assert (pos, skipped, last) == (len(chunk), 1, 3)
    pos, skipped, *_ = prescan.native.skip(pg, chunk[:-1], 20, 2, INT64_MAX, 9)
    assert (pos, skipped) == (20, 0)  # longer than max_bytes


_PIECES = [b"{", b"}", b"[", b"]", b'"', b",", b":", b"\\", b" ", b"\t", b"\r", b"0", b"-",
           b"1", b".", b"e", b"E", b"+", b"t", b"n", b"u", b"d", b"\x00", b"\x1f", b"\xc3",
           b"\xa9", b"\xff", b'"ts"', b"true", b"null", b"99999999999999999999", b"\\u00e9",
           b"\\ud83d"]

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**20), 10**20)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                 max_size=3),
    max_leaves=8,
)


@st.composite
def _lines(draw: st.DrawFn) -> bytes:
    obj = draw(st.dictionaries(st.sampled_from(["a", "b", "c", "x", "é"]), _json_values,
                               max_size=4))
    if draw(st.booleans()):
        obj["ts"] = draw(st.integers(-(10**19), 10**19) | _json_values)
    line = bytearray(json.dumps(obj, ensure_ascii=draw(st.booleans())).encode())
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(line)))
        what = draw(st.sampled_from(["insert", "delete", "dup"]))
        if what == "insert":
            line[at:at] = draw(st.sampled_from(_PIECES))
        elif what == "delete" and at < len(line):
            del line[at]
        else:
            line[at:at] = line[at:at + draw(st.integers(1, 8))]
    return bytes(line).replace(b"\n", b" ")


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(line=_lines(), last=st.integers(-(10**6), 10**6))
def test_a_line_passed_over_decodes_to_an_object_with_an_int_time_in_range(
        line: bytes, last: int) -> None:
    pg = _program((("ts",), ("a",), ("b", "c"), ("é",)))
    due = last + 10**12
    if _skips(pg, line, last, due):
        data = orjson.loads(line)
        assert type(data) is dict
        assert type(data["ts"]) is int and last <= data["ts"] <= due


# --------------------------------------------------------------------------- predicates

_FIELDS = ["a", "b", "c.d", "this.a"]
_LITS = ['"x"', '"y"', '""', "1", "-2", "2.5", "0", "9007199254740993", "true", "false", "null"]
_VALUES = ["x", "y", "", "X", 1, -2, 2.5, 2.0, 0, -0.0, 9007199254740993, 9007199254740992,
           True, False, None, [1], {"d": 1}]


@st.composite
def _conditions(draw: st.DrawFn, depth: int = 0) -> str:
    kind = draw(st.sampled_from(["cmp", "cmp", "cmp", "null", "in", "bare", "lit"]
                                + (["not", "and", "or"] if depth < 3 else [])))
    f = draw(st.sampled_from(_FIELDS))
    if kind == "cmp":
        op = draw(st.sampled_from(["==", "!=", "<", "<=", ">", ">="]))
        lit = draw(st.sampled_from(_LITS))
        return f"{lit} {op} {f}" if draw(st.booleans()) else f"{f} {op} {lit}"
    if kind == "null":
        return f"{f} is {draw(st.sampled_from(['null', 'not null']))}"
    if kind == "in":
        items = draw(st.lists(st.sampled_from(['"x"', '"y"', '""', "null"]), max_size=3))
        return f"{f} {draw(st.sampled_from(['in', 'not in']))} [{', '.join(items)}]"
    if kind == "bare":
        return f
    if kind == "lit":
        return draw(st.sampled_from(["true", "false"]))
    if kind == "not":
        return f"not ({draw(_conditions(depth + 1))})"
    return (f"({draw(_conditions(depth + 1))}) {kind} ({draw(_conditions(depth + 1))})")


@st.composite
def _events(draw: st.DrawFn) -> dict[str, Any]:
    d: dict[str, Any] = {"ts": 1}
    for name in ("a", "b"):
        if draw(st.booleans()):
            d[name] = draw(st.sampled_from(_VALUES))
    c = draw(st.sampled_from(["missing", "obj", "scalar"]))
    if c == "obj":
        d["c"] = {"d": draw(st.sampled_from(_VALUES))} if draw(st.booleans()) else {}
    elif c == "scalar":
        d["c"] = draw(st.sampled_from(_VALUES))
    return d


def _condition(tmp_path: Path, cond: str) -> EdgeCond:
    """The guard the first stage of a rule with ``cond`` compiles to (its code, when the
    guard is not the constant ``true``: :func:`~cep.compiler.generated.code_of`)."""
    path = tmp_path / "c.cep"
    path.write_text(f"rule r\n  key by k\n  pattern\n    begin s where {cond}\nend\n")
    rs = load_rule_set([str(path)])
    assert rs.ok, rs.diagnostics
    return rs.rules[0].nfa.start_take_conds[0]


def _has_unknown(pred: Any) -> bool:
    if pred == ("const", 2):
        return True
    return any(_has_unknown(x) for x in pred if type(x) is tuple)


@settings(max_examples=1500, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(cond=_conditions(), events=st.lists(_events(), min_size=1, max_size=6))
def test_predicates_agree_with_compiled_conditions(tmp_path: Path, cond: str,
                                                   events: list[dict[str, Any]]) -> None:
    edge = _condition(tmp_path, cond)
    slots: dict[tuple[str, ...], int] = {("ts",): 0}
    pred = condition_predicate(code_of(edge), lambda p: slots.setdefault(p, len(slots)))
    paths = tuple(sorted(slots, key=slots.__getitem__))
    pg = _program(paths, (pred,))
    exact = not _has_unknown(pred)
    for d in events:
        holds = edge.fn(Event(1, 1, d, "input", 1), None)
        line = orjson.dumps(d)
        # an int beyond 2**53 against a float is left to Python (no exact double)
        big = b"900719925474099" in line or "900719925474099" in cond
        *_, gates = prescan.native.skip(pg, line, 0, INT64_MIN, INT64_MAX, 1 << 20)
        assert gates != (1,) or holds, (cond, d, pred)  # "certainly true" is
        if exact and not big and holds:
            assert gates == (1,), (cond, d, pred)
        skipped = _skips(pg, line)
        if exact and not big:
            assert skipped == (not holds), (cond, d, pred)
        else:
            assert not (skipped and holds), (cond, d, pred)


def test_held_keys_are_looked_up_in_the_rule_state() -> None:
    class Owner:
        keys: dict[Any, Any] = {"u1": 1, 7: 1, None: 1, True: 1}

    pg = _program((("ts",), ("user",)), (("held", 1, 0),), (Owner,))
    assert not _skips(pg, b'{"ts": 1, "user": "u1"}')
    assert not _skips(pg, b'{"ts": 1, "user": 7}')
    assert not _skips(pg, b'{"ts": 1}')  # a missing key field is the key None
    assert not _skips(pg, b'{"ts": 1, "user": true}')
    assert not _skips(pg, b'{"ts": 1, "user": "u\\u0031"}')  # escaped: Python decides
    assert not _skips(pg, b'{"ts": 1, "user": [1]}')  # a list key: Python decides
    assert _skips(pg, b'{"ts": 1, "user": "u2"}')
    assert _skips(pg, b'{"ts": 1, "user": 7.5}')
    assert _skips(pg, b'{"ts": 1, "user": false}')


def test_a_shared_set_of_held_keys_answers_no_for_every_rule() -> None:
    class Owner:
        keys: dict[Any, Any] = {"u1": 1}

    assert prescan.native is not None
    paths = (("ts",), ("user",))
    shared = {"u1", "u3"}
    pg = prescan.native.Program(paths, 0, (Owner,), (("held", 1, 0),), None, (None, shared))
    assert not _skips(pg, b'{"ts": 1, "user": "u1"}')  # in the set and held
    assert _skips(pg, b'{"ts": 1, "user": "u2"}')  # in neither
    assert _skips(pg, b'{"ts": 1, "user": "u3"}')  # in the set: the rule's keys decide
    # the set's "no" is final (which is why it must hold every key a rule holds)
    Owner.keys["u4"] = 1
    assert _skips(pg, b'{"ts": 1, "user": "u4"}')
    with pytest.raises(ValueError):
        prescan.native.Program(paths, 0, (Owner,), (("held", 1, 0),), None, (None,))
    with pytest.raises(TypeError):
        prescan.native.Program(paths, 0, (Owner,), (("held", 1, 0),), None, (None, ["u1"]))


def _go_or_held() -> Any:
    """A program with one rule (no key holds state) whose gate is: type == "go" or the user
    holds state."""
    class Owner:
        keys: dict[Any, Any] = {}

    gate = ("or", (("cmp", "==", 2, b"go"), ("held", 1, 0)))
    assert prescan.native is not None
    return prescan.native.Program((("ts",), ("user",), ("type",)), 0, (Owner,), (gate,))


def test_a_batch_lists_wanted_lines_and_counts_the_keys_it_met_as_held() -> None:
    pg = _go_or_held()
    assert prescan.native is not None
    chunk = b"\n".join([
        b'{"ts": 1, "user": "a", "type": "x"}',   # passed over
        b'{"ts": 2, "user": "a", "type": "go"}',  # wanted: starts a match for a
        b'{"ts": 3, "user": "b", "type": "x"}',   # passed over
        b'{"ts": 4, "user": "a", "type": "x"}',   # wanted: a may hold state by now
        b'{"ts": 50, "user": "b", "type": "x"}',  # past the first entry + horizon
    ])
    pos, batch, skipped, last, ts, gates = prescan.native.batch(
        pg, chunk, 0, INT64_MIN, INT64_MAX, 999, 40, 8)
    # (gate 0 certainly true for a "go" line: listed as 1; unknown for a key of the batch: 0)
    assert [(b, ts_, g, last_) for b, _, _, ts_, g, last_ in batch] == [(1, 2, (1,), 1),
                                                                       (1, 4, (0,), 3)]
    assert [chunk[s:e] for _, s, e, *_ in batch] == chunk.split(b"\n")[1:4:2]
    assert (skipped, last, ts, gates) == (0, 4, 50, None)  # a tick at the last line
    assert chunk[pos:] == chunk.split(b"\n")[4]
    # the keys met are forgotten after each call: alone, a's line is passed over again
    pos, batch, skipped, *_ = prescan.native.batch(pg, chunk.split(b"\n")[3], 0, INT64_MIN,
                                                    INT64_MAX, 999, 40, 8)
    assert (batch, skipped) == ([], 1)


def test_a_batch_ends_at_its_cap_and_at_keys_it_cannot_track() -> None:
    pg = _go_or_held()
    assert prescan.native is not None
    lines = [b'{"ts": 1, "user": "a", "type": "go"}', b'{"ts": 2, "user": "b", "type": "go"}']
    chunk = b"\n".join(lines)
    pos, batch, skipped, last, ts, gates = prescan.native.batch(
        pg, chunk, 0, INT64_MIN, INT64_MAX, 999, INT64_MAX, 1)
    assert len(batch) == 1 and (ts, gates) == (2, (1,)) and chunk[pos:] == lines[1]
    obj = b'{"ts": 3, "user": {"n": 1}, "type": "go"}'  # an object as key: Python decides
    pos, batch, skipped, last, ts, gates = prescan.native.batch(
        pg, obj, 0, INT64_MIN, INT64_MAX, 999, INT64_MAX, 8)
    assert (pos, batch, ts, gates) == (0, [], 3, (1,))


def test_the_horizon_is_the_smallest_window(tmp_path: Path) -> None:
    path = tmp_path / "r.cep"
    path.write_text(FASTPATH_RULES + MORE_RULES)
    op = CepOperator(load_rule_set([str(path)]).rules, lambda sink, rec: None)
    by_name = {rs.rule.name: rs for rs in op.rules}
    assert prescan.horizon_of([by_name["bare_truth"], by_name["login_then_pay"]]) == 20
    assert prescan.horizon_of([by_name["any_view"]]) == INT64_MAX  # no window
    assert prescan.horizon_of([by_name["unconfirmed"]]) == 0  # windows of its own stages


# --------------------------------------------------------------------------- whole runs

MORE_RULES = """
rule nested_key
  where kind in ["a", "b"] and not (flag is null)
  key by who.name
  pattern
    begin x where score >= 2.5 and who.name != "zed"
    next  y where score < 0 or (flag == false)
  within 25ms
end

rule bare_truth
  key by user
  pattern
    begin x where ok
    followed by y where ok and amount != 3
  within 20ms
end
"""


def _line(rng: random.Random, d: dict[str, Any]) -> bytes:
    line = orjson.dumps(d)
    r = rng.random()
    if r < 0.03:
        return b"{not json"
    if r < 0.05:
        return b""
    if r < 0.07:
        return line.replace(b'"user"', b'"us\\u0065r"')
    if r < 0.09:
        return line.replace(b":", b" : ").replace(b",", b" ,\t") + b"\r"
    if r < 0.10:
        return line[:-1] + ',"name":"\xc3\xa9l\xc3\xa9na"}'.encode()
    if r < 0.11:
        return line[:-1] + b',"amount":1e2}'
    if r < 0.12:
        return line[:-1] + b',"type":"dup"}'
    if r < 0.13:
        return b"[1, 2]"
    return line


def _input(rng: random.Random, n: int) -> bytes:
    from tests.operator.test_fastpath import _objects

    lines = []
    for d in _objects(rng, n):
        d["who"] = rng.choice([{"name": "ann"}, {"name": "zed"}, {"name": 3}, "ann", None])
        d["kind"] = rng.choice("abc")
        d["flag"] = rng.choice([True, False, None])
        d["score"] = rng.choice([1, 2.5, 3, -1, -0.5, "3"])
        if rng.random() < 0.5:
            del d["who"]
        lines.append(_line(rng, d))
    return b"\n".join(lines) + (b"\n" if rng.random() < 0.5 else b"")


def _run(rules: list[CompiledRule], path: Path, out: Path, native: bool) -> tuple[Any, ...]:
    saved = prescan.native
    if not native:
        prescan.native = None
    try:
        out.mkdir()
        names = ("alerts", "late", "dead_letter")
        sinks = SinkSet({k: JsonLinesSink(str(out / k)) for k in names})
        summary = run_file(rules, FileRunOptions(path=str(path)), sinks)
        sinks.close()
    finally:
        prescan.native = saved
    return (summary.events, summary.dead_letters, summary.late,
            *((out / k).read_bytes() for k in names))


@pytest.mark.parametrize("seed", range(12))
def test_runs_with_and_without_the_scanner_write_the_same_records(tmp_path: Path,
                                                                    seed: int) -> None:
    rng = random.Random(seed)
    src = tmp_path / "r.cep"
    src.write_text(FASTPATH_RULES + MORE_RULES)
    rs = load_rule_set([str(src)])
    assert rs.ok, rs.diagnostics
    # every rule, and rule sets the scanner can take whole (no `ts` or hand-made keys)
    sets = [rs.rules, [r for r in rs.rules if r.name not in ("unconfirmed", "any_view",
                                                              "small_then_big")]]
    data = tmp_path / "in.jsonl"
    data.write_bytes(_input(rng, 1500))
    for i, rules in enumerate(sets):
        python = _run(rules, data, tmp_path / f"py{i}", native=False)
        native = _run(rules, data, tmp_path / f"c{i}", native=True)
        assert native == python
        assert python[3], "some alerts"
    op = CepOperator(sets[1], lambda sink, rec: None)
    assert prescan.build_program(op.rules, "input", "ts") is not None


@settings(max_examples=600, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(conds=st.lists(_conditions(), min_size=1, max_size=5),
       events=st.lists(_events(), min_size=1, max_size=6))
def test_the_index_decides_as_the_gates_do(tmp_path: Path, conds: list[str],
                                           events: list[dict[str, Any]]) -> None:
    """Specialising gates to the value of the indexed field changes no decision."""
    assert prescan.native is not None
    slots: dict[tuple[str, ...], int] = {("ts",): 0}
    # the conditions, each made to constrain `a` to a few strings half of the time
    gates = []
    for i, cond in enumerate(conds):
        if i % 2:
            cond = f'a in ["x", "y"] and ({cond})'
        code = code_of(_condition(tmp_path, cond))
        gates.append(condition_predicate(code, lambda p: slots.setdefault(p, len(slots))))
    paths = tuple(sorted(slots, key=slots.__getitem__))
    index = prescan.index_of(gates, 1)
    # (the odd gates constrain `a` unless they simplify to a constant)
    assert index is not None or len(conds) < 2 or all(g[0] == "const" for g in gates[1::2])
    plain = prescan.native.Program(paths, 0, (), tuple(gates))
    indexed = prescan.native.Program(paths, 0, (), tuple(gates), index)
    for d in events:
        line = orjson.dumps(d)
        assert (prescan.native.skip(indexed, line, 0, 0, 9, 999)
                == prescan.native.skip(plain, line, 0, 0, 9, 999)), (conds, d, index)


_THRESHOLDS = [-3, -1, 0, 2, 3, -1.5, 0.0, 2.5, 2**53 + 1, -(2**53) - 1, 2**60]
_NUMBERS: list[Any] = [-3, -1, 0, 1, 2, 3, -1.5, -0.0, 2.5, 2.0, 2**53, 2**53 + 1, 2**60, -(2**60),
                       1e300, "3", None, True]


@st.composite
def _grouped_gates(draw: st.DrawFn) -> tuple[Any, ...]:
    """Gates like those of many rules keyed alike whose first stages order one number with
    a literal (`type == "pay" and amount > 50`) and whose later stages look their key up:
    slot 1 is `type`, 2 `amount`, 3 the key `user`."""
    gates = []
    for i in range(draw(st.integers(4, 14))):
        value = draw(st.sampled_from([b"pay", b"pay", b"pay", b"x"]))
        order = ("cmp", draw(st.sampled_from(["<", "<=", ">", ">=", ">", "==", "!="])), 2,
                 draw(st.sampled_from(_THRESHOLDS)))
        held = ("held", 3, i)
        start = ("and", (("cmp", "==", 1, value), order))
        later = ("and", (("cmp", "==", 1, draw(st.sampled_from([b"pay", b"x", b"x"]))), held))
        gates.append(draw(st.sampled_from([start, later, ("or", (start, later)), order,
                                           ("or", (order, held))])))
    return tuple(gates)


@settings(max_examples=500, deadline=None)
@given(gates=_grouped_gates(),
       held=st.lists(st.sets(st.sampled_from(["u1", "u2", 3])), min_size=14, max_size=14),
       extra=st.sets(st.sampled_from(["u1", "u2", 3, "u4"])), shared=st.booleans(),
       lines=st.lists(st.tuples(st.sampled_from(["pay", "x", "y", None]),
                                st.sampled_from(_NUMBERS + ["missing"]),
                                st.sampled_from(["u1", "u2", 3, "u4", 2.5])),
                      min_size=1, max_size=12))
def test_grouped_gates_decide_as_each_gate_does(gates: tuple[Any, ...], held: list[set[Any]],
                                               extra: set[Any], shared: bool,
                                               lines: list[tuple[Any, Any, Any]]) -> None:
    """Within an index entry, the gates ordering one number (decided by a binary search over
    their sorted literals) and the gates looking one key up (decided by one look-up in the
    shared holders or the batch's keys when that settles them all) want exactly the lines
    that testing each gate wants, in rule order: one line at a time and in batches."""
    assert prescan.native is not None
    owners = tuple(type("Owner", (), {"keys": dict.fromkeys(held[i], 1)})
                   for i in range(len(gates)))
    holders = set().union(*held[:len(gates)], extra) if shared else None
    paths = (("ts",), ("type",), ("amount",), ("user",))
    index = prescan.index_of(gates, 1)
    plain = prescan.native.Program(paths, 0, owners, gates, None, (None, None, None, holders))
    indexed = prescan.native.Program(paths, 0, owners, gates, index,
                                     (None, None, None, holders))
    rows = []
    for ts, (kind, amount, user) in enumerate(lines):
        d: dict[str, Any] = {"ts": ts, "user": user}
        if kind is not None:
            d["type"] = kind
        if amount != "missing":
            d["amount"] = amount
        rows.append(orjson.dumps(d))
        assert (prescan.native.skip(indexed, rows[-1], 0, 0, 99, 999)
                == prescan.native.skip(plain, rows[-1], 0, 0, 99, 999)), (gates, d, index)
    chunk = b"\n".join(rows)
    assert (prescan.native.batch(indexed, chunk, 0, 0, 99, 999, 99, 64)
            == prescan.native.batch(plain, chunk, 0, 0, 99, 999, 99, 64)), (gates, lines)


def test_a_program_for_rules_ordering_one_number_groups_them() -> None:
    """Fifty `type == "pay" and amount > t` gates: a line wants exactly those below its
    amount, in rule order, for ints, floats and ties (`>=` includes the tie)."""
    assert prescan.native is not None
    thresholds = [(i * 37) % 50 for i in range(50)]  # shuffled, with repeats
    ops = [">=" if i % 3 == 0 else ">" for i in range(50)]
    gates = tuple(("and", (("cmp", "==", 1, b"pay"), ("cmp", op, 2, t)))
                  for op, t in zip(ops, thresholds, strict=True))
    paths = (("ts",), ("type",), ("amount",))
    pg = prescan.native.Program(paths, 0, (), gates, prescan.index_of(gates))
    amounts: list[Any] = [-1, 0, 10, 10.5, 25, 49, 49.0, 50, 1e9, "50"]
    for amount in amounts:
        line = orjson.dumps({"ts": 1, "type": "pay", "amount": amount})
        *_, wanted = prescan.native.skip(pg, line, 0, 0, 9, 999)
        expect = tuple(2 * i + 1 for i, (op, t) in enumerate(zip(ops, thresholds, strict=True))
                       if type(amount) is not str and (amount > t or (op == ">=" and amount == t)))
        assert (wanted or ()) == expect, amount  # (each certainly true: 2g + 1)
