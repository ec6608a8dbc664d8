"""Bytes ↔ records: decode input lines into :class:`~cep.event.Event`, encode output records.

Decoding never raises on bad input: it returns a :class:`DeadLetter` with the reason
(``malformed``, ``not_an_object``, ``no_event_time``, ``bad_event_time``, ``too_large``,
``too_deep``) and a message, so the caller can send it to the dead-letter sink and keep
going.  What a valid event is gets decided here, for every input mode: an object, at most
:data:`~cep.event.MAX_EVENT_DEPTH` levels deep, whose event time converts to an int number
of ms inside ``[MIN_EVENT_TIME_MS, MAX_EVENT_TIME_MS]``.  Encoding output records never
raises either (:func:`encode_json`).
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, BinaryIO

import orjson

from cep.event import (
    MAX_EVENT_DEPTH,
    MAX_EVENT_TIME_MS,
    MIN_EVENT_TIME_MS,
    nesting_within,
    too_deep,
)
from cep.io.sources import OversizedLine, read_lines
from cep.jsontext import encode_json, has_surrogate, json_default, writable

__all__ = [
    "DeadLetter", "TimeSpec", "Decoder", "json_decoder", "msgpack_decoder", "csv_rows",
    "parse_event_time", "encode_json", "json_default", "TIME_UNITS", "decode_json_chunk",
    "event_time_of", "writable", "nesting_within", "too_deep", "decode_lines", "too_large",
    "TIME_FORMATS", "time_spec",
]

TIME_UNITS = ("ms", "s", "us", "ns", "iso")
_SCALE = {"ms": 1, "s": 1000, "us": 0.001, "ns": 0.000001}
TIME_FORMATS = {"iso": "iso", "epoch_ms": "ms", "epoch_s": "s", "epoch_us": "us",
                "epoch_ns": "ns"}
"""The named time formats (``--time-format``, ``time_format``) and the unit each stands for;
any other format is strptime directives."""
STRPTIME = "strptime"
"""The unit of a :class:`TimeSpec` whose times are read with its ``pattern``."""


@dataclass(frozen=True)
class DeadLetter:
    """Why an input could not become an event."""

    reason: str
    error: str


@dataclass(frozen=True)
class TimeSpec:
    """Where a source's event time lives and in what unit.

    ``field`` is a key of the object (a literal key wins; otherwise a dotted path), ``unit``
    one of :data:`TIME_UNITS`: epoch ``ms`` (default), ``s``, ``us``, ``ns`` (numbers or
    numeric strings) or ``iso`` (ISO-8601 strings; no offset means UTC); or ``strptime``
    with ``pattern``, :func:`datetime.strptime` directives such as ``%Y%m%d%H%M`` (text,
    or an integer read as its digits; no ``%z`` means UTC).  Build one from user input with
    :func:`time_spec`.
    """

    field: str = "ts"
    unit: str = "ms"
    pattern: str | None = None

    def __post_init__(self) -> None:
        if (self.unit == STRPTIME) != (self.pattern is not None):
            raise ValueError("a strptime time spec needs a pattern, and only it has one")
        if self.unit not in TIME_UNITS and self.unit != STRPTIME:
            raise ValueError(f"unknown time unit {self.unit!r}; use one of {', '.join(TIME_UNITS)}")


def time_spec(field: str = "ts", unit: str = "ms", time_format: str | None = None) -> TimeSpec:
    """The :class:`TimeSpec` of a source: ``time_format`` (a name of :data:`TIME_FORMATS`, or
    strptime directives, which must contain ``%``) wins over ``unit``.  Raises ValueError
    naming the problem for an unknown unit or format, or directives strptime rejects."""
    if time_format is None:
        return TimeSpec(field, unit)
    if time_format in TIME_FORMATS:
        return TimeSpec(field, TIME_FORMATS[time_format])
    if "%" not in time_format:
        raise ValueError(f"unknown time format {time_format!r}: use strptime directives such "
                         f"as %Y%m%d%H%M, or one of {', '.join(TIME_FORMATS)}")
    sample = datetime(2001, 2, 3, 4, 5, 6, 789000, tzinfo=UTC)
    try:  # a bad directive fails here, not on every event
        datetime.strptime(sample.strftime(time_format), time_format)
    except ValueError as exc:
        raise ValueError(f"time format {time_format!r}: {exc}") from None
    return TimeSpec(field, STRPTIME, time_format)


def _lookup(data: dict[str, Any], field: str) -> Any:
    if field in data:
        return data[field]
    if "." in field:
        cur: Any = data
        for part in field.split("."):
            if type(cur) is not dict or part not in cur:
                return None
            cur = cur[part]
        return cur
    return None


def parse_event_time(value: Any, unit: str, pattern: str | None = None) -> int | DeadLetter:
    """Convert a raw event-time value to epoch milliseconds (int), or a DeadLetter.

    ``unit`` as :class:`TimeSpec`'s (``strptime`` reads text, or an int's digits, with
    ``pattern``).  The valid domain is decided here, once, for every input mode: a time that
    is not finite or falls outside ``[MIN_EVENT_TIME_MS, MAX_EVENT_TIME_MS]`` once converted
    to ms is a ``bad_event_time`` dead letter (so is a bool).  Never raises."""
    if value is None:
        return DeadLetter("no_event_time", "the event has no event-time field")
    if unit == STRPTIME:
        return _strptime_ms(value, pattern or "")
    if unit == "iso":
        if not isinstance(value, str):
            return DeadLetter("bad_event_time", f"expected an ISO-8601 string, got {_short(value)}")
        try:
            text = value.strip()
            if text.endswith(("Z", "z")):
                text = text[:-1] + "+00:00"
            dt = datetime.fromisoformat(text)
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=UTC)
            ms: float = dt.timestamp() * 1000
        except (ValueError, OverflowError):
            return DeadLetter("bad_event_time", f"not an ISO-8601 time: {_short(value)}")
        return _in_domain(ms, value)
    t = type(value)
    if t is int:
        if unit == "ms":
            if MIN_EVENT_TIME_MS <= value <= MAX_EVENT_TIME_MS:
                return value  # type: ignore[no-any-return]
            return _out_of_domain(value)
        return _in_domain(value * _SCALE[unit], value)
    if t is float:
        if value != value or value in (_INF, -_INF):
            return DeadLetter("bad_event_time", f"not a finite time: {value!r}")
        return _in_domain(value * _SCALE[unit], value)
    if t is str:
        if len(value) > 64:
            return DeadLetter("bad_event_time", f"not a number of {unit}: {_short(value)}")
        try:
            num = float(value) if any(c in value for c in ".eE") else int(value)
        except ValueError:
            return DeadLetter("bad_event_time", f"not a number of {unit}: {_short(value)}")
        return parse_event_time(num, unit)
    return DeadLetter("bad_event_time", f"not a time: {_short(value)}")


_INF = float("inf")


def _strptime_ms(value: Any, pattern: str) -> int | DeadLetter:
    """A time written as ``pattern`` (strptime directives) → epoch ms, or a DeadLetter."""
    t = type(value)
    if t is not str and t is not int:
        return DeadLetter("bad_event_time", f"expected a time like {pattern!r}, got "
                                            f"{_short(value)}")
    text = value if t is str else str(value)
    if len(text) > 64:
        return DeadLetter("bad_event_time", f"not a time like {pattern!r}: {_short(value)}")
    try:
        dt = datetime.strptime(text.strip(), pattern)
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        ms: float = dt.timestamp() * 1000
    except (ValueError, OverflowError, OSError):
        return DeadLetter("bad_event_time", f"not a time like {pattern!r}: {_short(value)}")
    return _in_domain(ms, value)


def _in_domain(ms: float, raw: Any) -> int | DeadLetter:
    """``ms`` rounded to an int when it is a finite time of the valid domain."""
    if MIN_EVENT_TIME_MS <= ms <= MAX_EVENT_TIME_MS:  # (False for nan)
        return round(ms)
    return _out_of_domain(raw)


def _out_of_domain(raw: Any) -> DeadLetter:
    return DeadLetter("bad_event_time",
                      f"event time {_short(raw)} is outside the valid range of "
                      f"±{MAX_EVENT_TIME_MS} ms from 1970-01-01")


def _short(value: Any) -> str:
    """``repr(value)`` cut to 80 characters (an error message never copies a whole field)."""
    try:
        text = repr(value) if type(value) is not int or abs(value) < 10 ** 80 else "<huge int>"
    except Exception:  # a repr that fails (deep nesting)
        return f"<{type(value).__name__}>"
    return text if len(text) <= 80 else text[:77] + "..."


def _deep_letter() -> DeadLetter:
    return DeadLetter("too_deep", f"objects and arrays nest deeper than {MAX_EVENT_DEPTH} levels")


Decoder = Callable[[bytes], "tuple[dict[str, Any], int] | DeadLetter"]


def json_decoder(time: TimeSpec, max_bytes: int = 1 << 20) -> Decoder:
    """A decoder for one JSON object per input (a line or a Kafka value): ``decode(raw)``
    gives ``(object, event time in ms)`` or a :class:`DeadLetter` (see the module
    docstring).  Never raises."""
    loads = orjson.loads
    field, unit, pattern = time.field, time.unit, time.pattern
    simple = unit == "ms"
    lo, hi = MIN_EVENT_TIME_MS, MAX_EVENT_TIME_MS
    shallow = 2 * MAX_EVENT_DEPTH  # a shorter text cannot nest deeper than the limit

    def decode(raw: bytes) -> tuple[dict[str, Any], int] | DeadLetter:
        if len(raw) > max_bytes:
            return DeadLetter("too_large", f"{len(raw)} bytes exceeds the limit of {max_bytes}")
        try:
            data = loads(raw)
        except orjson.JSONDecodeError as exc:
            return DeadLetter("malformed", f"invalid JSON: {exc}")
        if type(data) is not dict:
            return DeadLetter("not_an_object", f"expected a JSON object, got {type(data).__name__}")
        if len(raw) > shallow and not nesting_within(raw) and too_deep(data):
            return _deep_letter()
        value = data.get(field)
        if simple and type(value) is int and lo <= value <= hi:
            return data, value
        if value is None:
            value = _lookup(data, field)
        ts = parse_event_time(value, unit, pattern)
        if type(ts) is DeadLetter:
            return ts
        return data, ts  # type: ignore[return-value]

    return decode


# A line holding two objects side by side (``{..},{..}``, or ``{..} , {..}``).  Joined with
# commas into one array, such a line could make up for a value spread over two lines (which
# decodes only because of the join), and the objects would be attributed to the wrong lines.
_TWO_OBJECTS = re.compile(rb"}[ \t\r]*,[ \t\r]*{")


def decode_json_chunk(chunk: bytes, lines: int) -> list[Any] | None:
    """Decode ``lines`` JSON-lines objects in one call, or return ``None``.

    ``chunk`` holds exactly ``lines`` lines separated by ``\n`` (no final newline).  The
    lines are joined into one JSON array and decoded by a single :func:`orjson.loads`, which
    costs about a third less per object than decoding line by line.  The result is the list of
    objects, one per line in order, only when that is certainly what decoding each line alone
    gives: the array decodes, every element is an object, there is one per line, no line
    holds two objects side by side, and no object nests deeper than
    :data:`~cep.event.MAX_EVENT_DEPTH` (:func:`nesting_within`).  Otherwise (a malformed,
    blank, non-object, too deep or oversized line anywhere in the chunk) it returns ``None``
    and the caller decodes line by line, so dead letters keep their reasons and line numbers.
    """
    if _TWO_OBJECTS.search(chunk) is not None or not nesting_within(chunk):
        return None
    try:
        objs = orjson.loads(b"[" + chunk.replace(b"\n", b",") + b"]")
    except orjson.JSONDecodeError:
        return None
    if len(objs) != lines:
        return None
    for d in objs:
        if type(d) is not dict:
            return None
    return objs


def event_time_of(data: dict[str, Any], time: TimeSpec) -> int | DeadLetter:
    """The event time (epoch ms) of a decoded object under ``time``, or a DeadLetter: the
    same decision as :func:`json_decoder`'s (an int outside the valid domain included)."""
    value = data.get(time.field)
    if (type(value) is int and time.unit == "ms"
            and MIN_EVENT_TIME_MS <= value <= MAX_EVENT_TIME_MS):
        return value
    if value is None:
        value = _lookup(data, time.field)
    return parse_event_time(value, time.unit, time.pattern)


def msgpack_decoder(time: TimeSpec, max_bytes: int = 1 << 20) -> Decoder:
    """A decoder for one msgpack map per Kafka value."""
    import msgpack

    def decode(raw: bytes) -> tuple[dict[str, Any], int] | DeadLetter:
        if len(raw) > max_bytes:
            return DeadLetter("too_large", f"{len(raw)} bytes exceeds the limit of {max_bytes}")
        try:
            data = msgpack.unpackb(raw, raw=False, strict_map_key=False)
        except Exception as exc:  # msgpack raises several unrelated types
            return DeadLetter("malformed", f"invalid msgpack: {exc}")
        if type(data) is not dict:
            return DeadLetter("not_an_object", f"expected a map, got {type(data).__name__}")
        if too_deep(data):
            return _deep_letter()
        ts = parse_event_time(_lookup(data, time.field), time.unit, time.pattern)
        if type(ts) is DeadLetter:
            return ts
        return data, ts  # type: ignore[return-value]

    return decode


_INT = re.compile(r"-?(0|[1-9][0-9]{0,17})")
_FLOAT = re.compile(r"-?[0-9]+\.[0-9]+([eE][-+]?[0-9]+)?")


def csv_value(text: str) -> Any:
    """A CSV cell as a JSON-like value: empty → absent (None), integers and decimals → numbers,
    ``true``/``false`` → booleans, anything else stays a string."""
    if text == "":
        return None
    if _INT.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    low = text.lower()
    if low == "true":
        return True
    if low == "false":
        return False
    return text


def _csv_text(row: list[str]) -> str:
    import csv

    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(row)
    return buf.getvalue()


Decoded = tuple[dict[str, Any], int] | DeadLetter
"""What decoding one input gives: ``(object, event time in ms)`` or why it is a dead letter."""


def csv_rows(fh: BinaryIO, time: TimeSpec, max_bytes: int = 1 << 20,
             columns: tuple[str, ...] | None = None) -> Iterator[tuple[int, str, Decoded]]:
    """Yield ``(line_no, raw_text, (data, ts) | DeadLetter)`` for each data row of the CSV
    bytes ``fh`` (the first row is the header, unless ``columns`` names the columns of a
    headerless file; empty cells are left out of the object).
    ``raw_text`` is the row re-encoded as CSV for dead letters and ``""`` for rows that
    decoded.  UTF-8 with or without a byte-order mark.  Each row fails alone, as a
    ``malformed`` dead letter (a CSV error such as a field over the csv module's limit, a
    wrong number of columns, bytes that are not UTF-8), or ``too_large`` for a line over
    ``max_bytes``, which is never held whole."""
    import csv

    oversized: dict[int, OversizedLine] = {}
    reader = csv.reader(_csv_lines(fh, max_bytes, oversized))
    header: list[str] | None = list(columns) if columns is not None else None
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield reader.line_num, "", DeadLetter("malformed", f"invalid CSV: {exc}")
            continue
        line_no = reader.line_num
        if line_no in oversized:
            big = oversized.pop(line_no)
            yield line_no, big.head.decode("utf-8", "replace"), too_large(big, max_bytes)
            continue
        if any(has_surrogate(cell) for cell in row):  # (bytes that were not UTF-8)
            text = _csv_text(row).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
            yield line_no, text, DeadLetter("malformed", "the line is not valid UTF-8")
            continue
        if header is None:
            header = row
            continue
        if not row:
            continue
        if len(row) != len(header):
            yield line_no, _csv_text(row), DeadLetter(
                "malformed", f"expected {len(header)} columns, got {len(row)}"
            )
            continue
        data: dict[str, Any] = {}
        for k, v in zip(header, row, strict=True):
            if v:
                data[k] = csv_value(v)
        ts = parse_event_time(_lookup(data, time.field), time.unit, time.pattern)
        if isinstance(ts, DeadLetter):
            yield line_no, _csv_text(row), ts
        else:
            yield line_no, "", (data, ts)


def decode_lines(fh: BinaryIO, fmt: str, time: TimeSpec, max_bytes: int = 1 << 20,
                 columns: tuple[str, ...] | None = None, **follow: Any
                 ) -> Iterator[tuple[int, bytes, Decoded]]:
    """Yield ``(line_no, raw, (data, ts) | DeadLetter)`` for each line of ``fh``: JSON lines
    (``fmt`` ``json``, blank lines skipped) or CSV (``csv``, :func:`csv_rows`; ``columns``
    for a headerless file).  ``raw`` is
    the line (for a dead letter; at most :data:`~cep.io.sources.HEAD_BYTES` of a line over
    ``max_bytes``, which is never held whole).  ``follow`` goes to
    :func:`~cep.io.sources.read_lines` (JSON lines only).  Never raises on bad input."""
    if fmt == "csv":
        for line_no, text, res in csv_rows(fh, time, max_bytes, columns):
            yield line_no, text.encode("utf-8", "replace"), res
        return
    decode = json_decoder(time, max_bytes)
    for line_no, raw in read_lines(fh, max_line=max_bytes, **follow):
        if isinstance(raw, OversizedLine):
            yield line_no, raw.head, too_large(raw, max_bytes)
        else:
            yield line_no, raw, decode(raw)


def too_large(line: OversizedLine, max_bytes: int) -> DeadLetter:
    """The dead letter of a line over the limit."""
    return DeadLetter("too_large", f"{line.size} bytes exceeds the limit of {max_bytes}")


def _csv_lines(fh: BinaryIO, max_bytes: int, oversized: dict[int, OversizedLine]
               ) -> Iterator[str]:
    """The lines of ``fh`` as text for the csv module, their endings kept: UTF-8 (a leading
    byte-order mark dropped), bytes that are not UTF-8 kept as lone surrogates (for
    :func:`csv_rows` to find), and a line over ``max_bytes`` replaced by an empty line and
    noted in ``oversized`` by line number."""
    for line_no, raw in read_lines(fh, max_line=max_bytes, keep_blank=True, keep_ends=True):
        if isinstance(raw, OversizedLine):
            oversized[line_no] = raw
            yield "\n"
            continue
        if line_no == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        yield raw.decode("utf-8", "surrogateescape")
