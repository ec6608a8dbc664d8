"""Bytes ↔ records: decode input lines into :class:`~cep.event.Event`, encode output records.

Decoding never raises on bad input: it returns a :class:`DeadLetter` with the reason
(``malformed``, ``not_an_object``, ``no_event_time``, ``bad_event_time``, ``too_large``)
and a message, so the caller can send it to the dead-letter sink and keep going.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from cep.event import Event

__all__ = [
    "DeadLetter", "TimeSpec", "Decoder", "json_decoder", "msgpack_decoder", "csv_rows",
    "parse_event_time", "encode_json", "json_default", "TIME_UNITS", "decode_json_chunk",
    "event_time_of",
]

TIME_UNITS = ("ms", "s", "us", "ns", "iso")
_SCALE = {"ms": 1, "s": 1000, "us": 0.001, "ns": 0.000001}


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
    numeric strings) or ``iso`` (ISO-8601 strings; no offset means UTC).
    """

    field: str = "ts"
    unit: str = "ms"

    def __post_init__(self) -> None:
        if self.unit not in TIME_UNITS:
            raise ValueError(f"unknown time unit {self.unit!r}; use one of {', '.join(TIME_UNITS)}")


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


def parse_event_time(value: Any, unit: str) -> int | DeadLetter:
    """Convert a raw event-time value to epoch milliseconds (int), or a DeadLetter."""
    if value is None:
        return DeadLetter("no_event_time", "the event has no event-time field")
    if unit == "iso":
        if not isinstance(value, str):
            return DeadLetter("bad_event_time", f"expected an ISO-8601 string, got {value!r}")
        try:
            text = value.strip()
            if text.endswith(("Z", "z")):
                text = text[:-1] + "+00:00"
            dt = datetime.fromisoformat(text)
        except ValueError:
            return DeadLetter("bad_event_time", f"not an ISO-8601 time: {value!r}")
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return round(dt.timestamp() * 1000)
    if type(value) is int:
        return value if unit == "ms" else round(value * _SCALE[unit])
    if type(value) is float:
        if value != value or value in (float("inf"), float("-inf")):
            return DeadLetter("bad_event_time", f"not a finite time: {value!r}")
        return round(value * _SCALE[unit])
    if isinstance(value, str):
        try:
            num = float(value) if any(c in value for c in ".eE") else int(value)
        except ValueError:
            return DeadLetter("bad_event_time", f"not a number of {unit}: {value!r}")
        return parse_event_time(num, unit)
    return DeadLetter("bad_event_time", f"not a time: {value!r}")


Decoder = Callable[[bytes], "tuple[dict[str, Any], int] | DeadLetter"]


def json_decoder(time: TimeSpec, max_bytes: int = 1 << 20) -> Decoder:
    """A decoder for one JSON object per input (a line or a Kafka value)."""
    loads = orjson.loads
    field, unit = time.field, time.unit
    simple = unit == "ms"

    def decode(raw: bytes) -> tuple[dict[str, Any], int] | DeadLetter:
        if len(raw) > max_bytes:
            return DeadLetter("too_large", f"{len(raw)} bytes exceeds the limit of {max_bytes}")
        try:
            data = loads(raw)
        except orjson.JSONDecodeError as exc:
            return DeadLetter("malformed", f"invalid JSON: {exc}")
        if type(data) is not dict:
            return DeadLetter("not_an_object", f"expected a JSON object, got {type(data).__name__}")
        value = data.get(field)
        if simple and type(value) is int:
            return data, value
        if value is None:
            value = _lookup(data, field)
        ts = parse_event_time(value, unit)
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
    gives: the array decodes, every element is an object, there is one per line, and no line
    holds two objects side by side.  Otherwise (a malformed, blank, non-object or oversized
    line anywhere in the chunk) it returns ``None`` and the caller decodes line by line, so
    dead letters keep their reasons and line numbers.
    """
    if _TWO_OBJECTS.search(chunk) is not None:
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
    """The event time (epoch ms) of a decoded object under ``time``, or a DeadLetter."""
    value = data.get(time.field)
    if type(value) is int and time.unit == "ms":
        return value
    if value is None:
        value = _lookup(data, time.field)
    return parse_event_time(value, time.unit)


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
        ts = parse_event_time(_lookup(data, time.field), time.unit)
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


def csv_rows(lines: Any, time: TimeSpec) -> Any:
    """Yield ``(line_no, raw_text, (data, ts) | DeadLetter)`` for each data row of CSV text
    (the first row is the header; empty cells are left out of the object).  ``raw_text`` is
    the row re-encoded as CSV for dead letters and ``""`` for rows that decoded."""
    import csv

    reader = csv.reader(lines)
    header: list[str] | None = None
    for row in reader:
        line_no = reader.line_num
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
        data = {}
        for k, v in zip(header, row, strict=True):
            if v:
                data[k] = csv_value(v)
        ts = parse_event_time(_lookup(data, time.field), time.unit)
        if type(ts) is DeadLetter:
            yield line_no, _csv_text(row), ts
        else:
            yield line_no, "", (data, ts)


def encode_json(record: dict[str, Any]) -> bytes:
    """One output record as a JSON line (with the trailing newline).  Keys that are not
    strings (from msgpack input) are written as strings."""
    try:
        return orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE, default=json_default)
    except orjson.JSONEncodeError:  # a non-string key somewhere (the option is slower)
        return orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS,
                            default=json_default)


def json_default(obj: Any) -> Any:
    """orjson ``default`` for output records: sets and tuples become lists, bytes text
    (invalid UTF-8 replaced), anything else its ``str``."""
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "replace")
    return str(obj)


def make_event(data: dict[str, Any], ts: int, seq: int, source: str, offset: int,
               partition: int = -1) -> Event:
    """Build the :class:`Event` for a decoded object."""
    return Event(ts, seq, data, source, offset, partition)
