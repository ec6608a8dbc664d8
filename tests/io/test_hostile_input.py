"""Hostile input lines cannot crash, blind or stall a run: each becomes an event, a late event
or a dead letter with its reason, exactly once, through every file input mode.

Regression tests for the hardening defects D01 (times beyond 64 bits), D02 (deep nesting),
D03 (huge CSV fields), D04 (a far-future event time), D14 (a line never held whole) and D15
(CSV byte-order mark, bytes that are not UTF-8); then a Hypothesis test over generated
hostile lines.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cep.app.pipeline import FileRunOptions, RunSummary, run_file
from cep.app.rules import load_rule_set
from cep.event import MAX_EVENT_DEPTH, MAX_EVENT_TIME_MS
from cep.io.codecs import TimeSpec, csv_rows, encode_json, parse_event_time
from cep.io.sinks import MemorySink, SinkSet
from cep.io.sources import HEAD_BYTES, OversizedLine, compression_of, read_blocks, read_lines

KEYED = """rule any_x
  key by user
  pattern
    begin a where action == "x"
end
"""
PAIR = """rule x_then_y
  pattern
    begin a where action == "x"
    followed by b where action == "y"
  within 1m
end
"""
DAY = 86_400_000
T0 = 1_767_225_600_000  # 2026-01-01


def _rules(tmp: Path, text: str) -> list[Any]:
    path = tmp / "r.cep"
    path.write_text(text)
    rs = load_rule_set([str(path)])
    assert rs.ok, rs.diagnostics
    return rs.rules


def _run(tmp: Path, lines: list[bytes], rule: str = KEYED, **opts: Any
         ) -> tuple[RunSummary, dict[str, list[dict[str, Any]]]]:
    """``run_file`` over ``lines``; the summary and every record by sink (each encoded and
    decoded again, as a sink writes it)."""
    data = tmp / "in.data"
    data.write_bytes(b"\n".join(lines) + b"\n")
    sinks = {name: MemorySink() for name in ("alerts", "late", "dead_letter")}
    summary = run_file(_rules(tmp, rule), FileRunOptions(path=str(data), **opts),
                       SinkSet(dict(sinks)), should_stop=lambda: True)  # (follow: to the end)
    out = {name: [orjson.loads(encode_json(r)) for r in s.records] for name, s in sinks.items()}
    return summary, out


def _line(**fields: Any) -> bytes:
    return json.dumps(fields, separators=(",", ":")).encode()  # (any depth, any int)


# ----------------------------------------------------------------------------- D01


def test_event_times_beyond_the_valid_range_are_dead_letters_and_the_run_goes_on(
        tmp_path: Path) -> None:
    lines = [b'{"ts":9223372036854775808,"user":"u","action":"x"}',
             b'{"ts":1e20,"user":"u","action":"x"}',
             b'{"ts":-9223372036854775809,"user":"u","action":"x"}',
             _line(ts=MAX_EVENT_TIME_MS + 1, user="u", action="x"),
             _line(ts=5, user="u", action="x")]
    summary, out = _run(tmp_path, lines)
    assert [d["reason"] for d in out["dead_letter"]] == ["bad_event_time"] * 4
    assert [d["line"] for d in out["dead_letter"]] == [1, 2, 3, 4]
    assert summary.events == 1 and summary.dead_letters == 4
    assert [a["start"] for a in out["alerts"]] == [5]


def test_times_that_overflow_once_scaled_are_dead_letters() -> None:
    for value, unit in [(1e308, "s"), (-1e308, "s"), (10**30, "ns"), ("1e400", "ms"),
                        (MAX_EVENT_TIME_MS // 1000 + 1, "s"), ("9999999-01-01", "iso"),
                        (True, "ms"), ("9" * 5000, "ms")]:
        got = parse_event_time(value, unit)
        assert not isinstance(got, int), (value, unit)
        assert got.reason == "bad_event_time" and len(got.error) < 200
    assert parse_event_time(MAX_EVENT_TIME_MS // 1000, "s") == MAX_EVENT_TIME_MS // 1000 * 1000
    assert parse_event_time("9999-12-31T23:59:59.999Z", "iso") == 253_402_300_799_999


def test_the_command_line_survives_a_time_beyond_64_bits_with_seconds(tmp_path: Path) -> None:
    (tmp_path / "r.cep").write_text(KEYED)
    (tmp_path / "in.jsonl").write_text('{"ts":1e308,"user":"u","action":"x"}\n'
                                       '{"ts":1,"user":"u","action":"x"}\n')
    proc = subprocess.run(
        [sys.executable, "-m", "cep.cli", "run", "--rules", str(tmp_path / "r.cep"),
         "--input", str(tmp_path / "in.jsonl"), "--time-unit", "s", "-o", "-",
         "--dead-letter", str(tmp_path / "dl.jsonl")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == 1
    (dead,) = [json.loads(x) for x in (tmp_path / "dl.jsonl").read_text().splitlines()]
    assert dead["reason"] == "bad_event_time" and dead["line"] == 1


# ----------------------------------------------------------------------------- D02


def _nested(depth: int) -> Any:
    """``depth - 1`` objects one in another: as a field, an event ``depth`` levels deep."""
    value: Any = 1
    for _ in range(depth - 1):
        value = {"n": value}
    return value


def test_events_nested_deeper_than_the_limit_are_dead_letters_wherever_they_would_go(
        tmp_path: Path) -> None:
    deep = MAX_EVENT_DEPTH
    lines = [_line(ts=2, user="u", action="z"),
             _line(ts=1, user="v", action="z", d=_nested(300)),  # late
             _line(ts=3, user="u", action="x", d=_nested(deep + 1)),  # alerted
             b'{"ts":4,"user":' + b"[" * 500 + b"1" + b"]" * 500 + b',"action":"x"}',  # a key
             _line(ts=5, user="w", action="x", d=_nested(deep))]  # just inside
    summary, out = _run(tmp_path, lines)
    assert [(d["reason"], d["line"]) for d in out["dead_letter"]] == [
        ("too_deep", 2), ("too_deep", 3), ("too_deep", 4)]
    assert summary.events == 2 and summary.late == 0
    (alert,) = out["alerts"]
    assert alert["key"] == {"user": "w"} and alert["match"]["a"][0]["d"] == _nested(deep)


def test_output_encoding_never_fails() -> None:
    record = {"big": 2**70, "neg": -(2**70), "s": "a\udc80b", "nan": float("nan"),
              1: {2, 3}, "t": (1, 2), "deep": _nested(400), b"k": b"\xff"}
    text = encode_json(record)
    back = orjson.loads(text)
    assert back["big"] == str(2**70) and back["s"] == "a\ufffdb" and back["nan"] is None
    assert back["1"] == [2, 3] and back["t"] == [1, 2]


@given(st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary(),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(
        st.text() | st.integers(), kids, max_size=3) | st.tuples(kids) | st.frozensets(
        st.integers()),
    max_leaves=30))
def test_encode_json_writes_any_value(value: Any) -> None:
    orjson.loads(encode_json({"v": value}))


# ----------------------------------------------------------------------------- D03, D15


def _csv(data: bytes, max_bytes: int = 1 << 20) -> list[tuple[int, Any]]:
    return [(n, res) for n, _, res in csv_rows(io.BytesIO(data), TimeSpec(), max_bytes)]


def test_a_huge_csv_field_fails_its_row_alone() -> None:
    data = b"ts,user,action\n1,u1,x\n2," + b"A" * 131_073 + b",x\n3,u3,x\n"
    rows = _csv(data)
    assert [n for n, _ in rows] == [2, 3, 4]
    assert rows[0][1] == ({"ts": 1, "user": "u1", "action": "x"}, 1)
    assert rows[1][1].reason == "malformed" and "field larger" in rows[1][1].error
    assert rows[2][1] == ({"ts": 3, "user": "u3", "action": "x"}, 3)


def test_a_csv_line_over_the_limit_is_a_too_large_dead_letter() -> None:
    rows = _csv(b"ts,user,action\n1,u1,x\n2," + b"A" * 5000 + b",x\n3,u3,x\n", max_bytes=100)
    assert rows[1][0] == 3 and rows[1][1].reason == "too_large"
    assert [n for n, res in rows if isinstance(res, tuple)] == [2, 4]


def test_a_csv_byte_order_mark_is_not_part_of_the_first_column() -> None:
    rows = _csv(b"\xef\xbb\xbfts,user,action\n1,u1,x\n2,u2,x\n")
    assert [res for _, res in rows] == [({"ts": 1, "user": "u1", "action": "x"}, 1),
                                        ({"ts": 2, "user": "u2", "action": "x"}, 2)]


def test_csv_bytes_that_are_not_utf8_are_a_dead_letter_not_replaced() -> None:
    rows = _csv(b"ts,user,action\n1,u\xff1,x\n2,u2,x\n")
    assert rows[0][1].reason == "malformed" and "UTF-8" in rows[0][1].error
    assert rows[1][1] == ({"ts": 2, "user": "u2", "action": "x"}, 2)


# ----------------------------------------------------------------------------- D04


def test_one_far_future_event_does_not_blind_the_run(tmp_path: Path) -> None:
    lines = [_line(ts=T0 + i, user=str(i), action="x") for i in range(100)]
    lines.append(_line(ts=253_402_300_799_999, user="attacker", action="z"))
    lines += [_line(ts=T0 + i, user=str(i), action="x") for i in range(100, 200)]
    for ooo in (0, 3_600_000):
        summary, out = _run(tmp_path, lines, max_out_of_orderness_ms=ooo)
        assert len(out["alerts"]) == 200 and summary.late == 0
        (dead,) = out["dead_letter"]
        assert dead["reason"] == "future_event_time" and dead["line"] == 101
        assert summary.events == 200 and summary.dead_letters == 1


def test_a_stream_that_moves_on_is_followed_after_three_events(tmp_path: Path) -> None:
    lines = [_line(ts=T0 + i, user=str(i), action="x") for i in range(5)]
    lines += [_line(ts=T0 + 2 * DAY + i, user=f"n{i}", action="x") for i in range(5)]
    summary, out = _run(tmp_path, lines)
    assert [d["line"] for d in out["dead_letter"]] == [6, 7]
    assert [a["key"]["user"] for a in out["alerts"]] == ["0", "1", "2", "3", "4", "n2", "n3",
                                                          "n4"]
    summary, out = _run(tmp_path, lines, max_future_skew_ms=None)
    assert not out["dead_letter"] and len(out["alerts"]) == 10


# ----------------------------------------------------------------------------- D14


def test_a_line_over_the_limit_is_never_held_whole(tmp_path: Path) -> None:
    big = b'{"ts":2,"pad":"' + b"A" * 50_000 + b'"}'
    lines = [_line(ts=1, user="u", action="x"), big, _line(ts=3, user="v", action="x")]
    for follow in (False, True):
        summary, out = _run(tmp_path, lines, max_event_bytes=1000, follow=follow)
        (dead,) = out["dead_letter"]
        assert dead["reason"] == "too_large" and dead["line"] == 2
        assert len(dead["raw"]) <= HEAD_BYTES and str(len(big)) in dead["error"]
        assert summary.events == 2 and len(out["alerts"]) == 2


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([0, 1, 5, 20, 70, 200, 3000]), max_size=12),
       st.booleans(), st.sampled_from([10, 64, 500, 10**6]), st.sampled_from([7, 16, 128]))
def test_line_readers_split_as_the_lines_are_and_bound_long_ones(
        lengths: list[int], final_newline: bool, max_line: int, size: int) -> None:
    lines = [(b"xy" * n)[:n] for n in lengths]
    data = b"\n".join(lines) + (b"\n" if final_newline and lines else b"")
    want = [("long", len(x)) if len(x) > max_line else x for x in
            (data.split(b"\n")[:-1] if data.endswith(b"\n") else data.split(b"\n"))]
    got: list[Any] = []
    for item in read_blocks(io.BytesIO(data), size, max_line):
        if isinstance(item, OversizedLine):
            assert len(item.head) <= HEAD_BYTES
            got.append(("long", item.size))
        else:
            assert len(item) <= size + max_line + 1
            got.extend(item.split(b"\n"))
    if data:
        assert got == want
    by_line = [(n, ("long", x.size) if isinstance(x, OversizedLine) else x)
               for n, x in read_lines(io.BufferedReader(io.BytesIO(data), 16), max_line=max_line)]
    assert by_line == [(i + 1, x) for i, x in enumerate(want) if isinstance(x, tuple) or x]


# ----------------------------------------------------------------------------- every mode

_TIMES = st.one_of(
    st.integers(-5, 5_000), st.integers(-(2**70), 2**70),
    st.sampled_from([2**63, 2**64, -(2**63) - 1, MAX_EVENT_TIME_MS, MAX_EVENT_TIME_MS + 1,
                     253_402_300_799_999]),
    st.floats(allow_nan=False, allow_infinity=False), st.sampled_from(["12", "1e400", "x"]),
    st.none(), st.booleans())
_VALUES = st.one_of(st.text(max_size=8), st.integers(), st.sampled_from(["x", "y"]),
                    st.floats(allow_nan=False, allow_infinity=False))


@st.composite
def _hostile_line(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["event", "event", "event", "deep", "huge", "text", "odd"]))
    if kind == "text":
        return draw(st.binary(min_size=1, max_size=40).filter(
            lambda b: b"\n" not in b and b"\r" not in b and b.strip() != b""))
    if kind == "odd":
        return draw(st.sampled_from([b"[1,2]", b'"s"', b"{", b'{"ts":1,"a":"\\udc80"}',
                                     b"\xef\xbb\xbf{}", b'{"ts":1e400}', b"null", b"{}{}",
                                     b'{"ts":1},{"ts":2}']))
    obj: dict[str, Any] = {"ts": draw(_TIMES), "user": draw(_VALUES),
                           "action": draw(st.sampled_from(["x", "y", "z"]))}
    if kind == "deep":
        obj["d"] = _nested(draw(st.integers(MAX_EVENT_DEPTH - 3, MAX_EVENT_DEPTH + 3)))
    if kind == "huge":
        obj["pad"] = "A" * draw(st.integers(400, 1500))
    obj["u"] = draw(st.text(max_size=4))  # odd unicode, lone surrogates as \\u escapes
    return json.dumps(obj, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")


_MODES = [
    {},  # chunks: the C scanner where it applies, else chunk decoding
    {"max_out_of_orderness_ms": 3},  # event by event through the buffer
    {"follow": True},  # line by line (the reader of --follow and standard input)
    {"time": TimeSpec("ts", "s")},  # every time converted
    {"max_future_skew_ms": None},
]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_hostile_line(), min_size=1, max_size=25), st.sampled_from(_MODES),
       st.sampled_from([KEYED, PAIR]))
def test_every_hostile_line_is_an_event_a_late_event_or_a_dead_letter(
        tmp_path_factory: Any, lines: list[bytes], mode: dict[str, Any], rule: str) -> None:
    # (a file that begins as a compressed format does is read as one: cep.io.sources)
    assume(compression_of((lines[0] + b"\n")[:10]) is None)
    tmp = tmp_path_factory.mktemp("hostile")
    summary, out = _run(tmp, lines, rule, max_event_bytes=1000, **mode)
    assert summary.events + summary.dead_letters == len(lines)
    assert len(out["dead_letter"]) == summary.dead_letters
    assert len(out["late"]) == summary.late <= summary.events
    assert sorted(d["line"] for d in out["dead_letter"]) == sorted(
        {d["line"] for d in out["dead_letter"]})
    for dead in out["dead_letter"]:
        assert dead["reason"] in ("malformed", "not_an_object", "no_event_time",
                                  "bad_event_time", "too_large", "too_deep",
                                  "future_event_time")
    for rec in out["alerts"]:
        assert -MAX_EVENT_TIME_MS <= rec["start"] <= rec["end"] <= MAX_EVENT_TIME_MS


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(_TIMES, st.text(max_size=6), st.binary(max_size=6),
                          st.integers(0, 300)), min_size=1, max_size=15),
       st.booleans())
def test_every_hostile_csv_row_is_an_event_or_a_dead_letter(
        tmp_path_factory: Any, rows: list[tuple[Any, str, bytes, int]], bom: bool) -> None:
    tmp = tmp_path_factory.mktemp("csv")
    out = [b"\xef\xbb\xbfts,user,action,pad" if bom else b"ts,user,action,pad"]
    for ts, user, raw, pad in rows:
        cells = [str(ts).encode(), user.encode("utf-8", "surrogatepass"), raw, b"A" * pad]
        out.append(b",".join(c.replace(b"\n", b"").replace(b"\r", b"").replace(b",", b"")
                             .replace(b'"', b"") for c in cells))
    summary, recs = _run(tmp, out, KEYED, fmt="csv", max_event_bytes=200)
    data_rows = sum(1 for line in out[1:] if line)
    assert summary.events + summary.dead_letters == data_rows
    assert len(recs["dead_letter"]) == summary.dead_letters


def test_standard_input_takes_hostile_lines_too(tmp_path: Path) -> None:
    (tmp_path / "r.cep").write_text(KEYED)
    lines = [b'{"ts":9223372036854775808,"user":"u","action":"x"}', b"{",
             b'{"ts":1,"user":' + b"[" * 300 + b"]" * 300 + b',"action":"x"}',
             b'{"ts":2,"user":"u","action":"x"}', b'{"ts":253402300799999,"action":"x"}',
             b'{"ts":3,"user":"v","action":"x"}']
    proc = subprocess.run(
        [sys.executable, "-m", "cep.cli", "run", "--rules", str(tmp_path / "r.cep"),
         "--input", "-", "-o", "-", "--dead-letter", str(tmp_path / "dl.jsonl")],
        input=b"\n".join(lines) + b"\n", capture_output=True)
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(a)["key"] for a in proc.stdout.splitlines()] == [{"user": "u"},
                                                                       {"user": "v"}]
    dead = [json.loads(x) for x in (tmp_path / "dl.jsonl").read_text().splitlines()]
    assert [(d["line"], d["reason"]) for d in dead] == [
        (1, "bad_event_time"), (2, "malformed"), (3, "too_deep"), (5, "future_event_time")]


def test_a_text_file_that_only_starts_like_a_compressed_one_is_read_as_text(
        tmp_path: Path) -> None:
    good = _line(ts=1, user="u", action="x")
    for first in (b"\x1f\x8b", b"BZh,a,b", b"BZh9 not bz2", b"\x28\xb5"):
        summary, out = _run(tmp_path, [first, good])
        assert [d["line"] for d in out["dead_letter"]] == [1] and len(out["alerts"]) == 1
