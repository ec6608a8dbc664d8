"""JSON text of output records that cannot fail to be written.

Layer 0: every output record (alert, late event, dead letter, Kafka message) is written by
:func:`encode_json`, which never raises on a decoded event: orjson writes almost every
record; the rare one it refuses (an int beyond 64 bits, a lone surrogate, nesting past its
limit, a value that is not JSON) is written from :func:`writable`'s copy.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

__all__ = ["encode_json", "json_default", "writable", "has_surrogate"]


def encode_json(record: Any, newline: bool = True) -> bytes:
    """One output record as JSON, a line with its trailing newline unless ``newline`` is
    false.  Never raises: keys that are not strings (from msgpack input) are written as
    strings, and a record orjson cannot write at all is written from :func:`writable`."""
    opt = orjson.OPT_APPEND_NEWLINE if newline else 0
    try:
        return orjson.dumps(record, option=opt, default=json_default)
    except orjson.JSONEncodeError:  # a non-string key somewhere (the option is slower)
        pass
    try:
        return orjson.dumps(record, option=opt | orjson.OPT_NON_STR_KEYS, default=json_default)
    except orjson.JSONEncodeError:
        return orjson.dumps(writable(record), option=opt)


_WRITABLE_DEPTH = 200  # below orjson's writing limit (255) with room for an envelope
_I64_MIN, _U64_MAX = -(1 << 63), (1 << 64) - 1


def writable(value: Any, depth: int = 0) -> Any:
    """A copy of ``value`` that orjson can always write (for the rare record it refuses):
    strings with lone surrogates have them replaced by U+FFFD, ints beyond 64 bits become
    their decimal string, non-finite floats ``null``, keys strings, sets and tuples lists,
    anything else its ``str`` (:func:`json_default`), and what nests deeper than 200 levels
    the string ``"<nested too deep>"``.  Recursion is bounded by that depth."""
    t = type(value)
    if value is None or t is bool:
        return value
    if t is str:
        return _SURROGATE.sub("\ufffd", value) if has_surrogate(value) else value
    if t is int:
        return value if _I64_MIN <= value <= _U64_MAX else str(value)
    if t is float:
        return value if value - value == 0.0 else None
    if depth >= _WRITABLE_DEPTH:
        return "<nested too deep>"
    if t is dict:
        return {writable(k if type(k) is str else json_default(k)): writable(v, depth + 1)
                for k, v in value.items()}
    if t is list or t is tuple or t is set or t is frozenset:
        return [writable(v, depth + 1) for v in value]
    return writable(json_default(value), depth + 1)


_SURROGATE = re.compile("[\ud800-\udfff]")


def has_surrogate(text: str) -> bool:
    """Whether ``text`` holds a lone surrogate (which UTF-8 cannot encode)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def json_default(obj: Any) -> Any:
    """orjson ``default`` for output records: sets and tuples become lists, bytes text
    (invalid UTF-8 replaced), anything else its ``str``."""
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "replace")
    return str(obj)
