"""Brute-force references of ``having``, ``all of`` and ``suppress for``
(docs/rule-language.md), written from the documented definitions and nothing else: every
window is rebuilt from scratch at every event, every aggregate recomputed from its values,
sums exact with :class:`fractions.Fraction`."""

from __future__ import annotations

import operator
from collections.abc import Callable
from fractions import Fraction
from typing import Any

Event = dict[str, Any]  # {"id", "ts", "k", fields…}, in arrival order

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "==": operator.eq,
}


def _nums(values: list[Any]) -> list[Any]:
    return [v for v in values if type(v) in (int, float)]


def aggregate(func: str, field: str | None, window: list[Event]) -> Any:
    """One aggregate over a window, from its definition."""
    if func == "count":
        return len(window)
    values = [e.get(field) for e in window] if field else []
    if func == "count_distinct":
        return len({v for v in values if v is not None})
    nums = _nums(values)
    if func == "sum":
        return sum((Fraction(v) for v in nums), Fraction(0))
    if func == "avg":
        return sum((Fraction(v) for v in nums), Fraction(0)) / len(nums) if nums else None
    if func == "min":
        return min(nums) if nums else None
    if func == "max":
        return max(nums) if nums else None
    raise ValueError(func)


Term = tuple[str, str | None, str, int | float]  # (func, field, op, threshold)


def holds(terms: list[Term], window: list[Event]) -> bool:
    for func, field, op, threshold in terms:
        v = aggregate(func, field, window)
        if v is None or not _OPS[op](v, threshold):
            return False
    return True


def _in_order(events: list[Event]) -> list[Event]:
    return sorted(events, key=lambda e: (e["ts"], e["id"]))  # ids follow arrival


def window_at(events: list[Event], e: Event, within: int) -> list[Event]:
    """The key's events up to and including ``e`` (in order) with ``e.ts - x.ts < within``."""
    out = []
    for x in _in_order(events):
        if x["k"] == e["k"] and e["ts"] - x["ts"] < within:
            out.append(x)
        if x is e:
            break
    return out


def having_alerts(events: list[Event], terms: list[Term], within: int
                  ) -> list[tuple[Any, list[int]]]:
    """``(key, window event ids)`` of every crossing, in event order."""
    out = []
    for e in _in_order(events):
        w = window_at(events, e, within)
        without = [x for x in w if x is not e]
        if holds(terms, w) and not holds(terms, without):
            out.append((e["k"], [x["id"] for x in w]))
    return out


def all_of_alerts(events: list[Event], members: list[Callable[[Event], bool]], within: int
                  ) -> list[tuple[Any, list[int]]]:
    """``(key, window event ids satisfying some member)`` at every event completing the set."""
    def complete(w: list[Event]) -> bool:
        return all(any(m(x) for x in w) for m in members)

    out = []
    for e in _in_order(events):
        w = [x for x in window_at(events, e, within) if any(m(x) for m in members)]
        if any(m(e) for m in members) and complete(w) and not complete(
                [x for x in w if x is not e]):
            out.append((e["k"], [x["id"] for x in w]))
    return out


def suppress(alerts: list[tuple[Any, int]], period: int) -> list[tuple[int, int]]:
    """Alerts ``(group, end)`` in emission order → ``(index, suppressed count)`` of those
    emitted."""
    last: dict[Any, int] = {}
    count: dict[Any, int] = {}
    out = []
    for i, (group, end) in enumerate(alerts):
        if group in last and end < last[group] + period:
            count[group] = count.get(group, 0) + 1
            continue
        out.append((i, count.pop(group, 0)))
        last[group] = end
    return out
