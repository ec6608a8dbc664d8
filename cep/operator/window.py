"""Sliding event-time windows per key: the alerts of ``having`` and ``all of`` rules.

The automaton of such a rule makes a one-event match of every event the rule reads
(:mod:`cep.compiler.window_spec`); :meth:`WindowState.offer` puts that event into its key's
window and says whether it *crosses*: the condition holds over the window at the event and
did not hold over the same window without it (docs/rule-language.md, *Suppression, aggregate
thresholds and unordered sets*).  The window at an event ``e`` holds the key's events ``x``
with ``e.ts - x.ts < within_ms``, in arrival order.  Events reach a rule in event-time
order, so a window loses events only at its front, and a key whose last event is older than
the window holds nothing: keys are kept in the order of their last event and dropped from
the front.

Aggregates are kept as running values — ``count()`` the window's length, ``count_distinct``
a count per value, ``sum``/``avg`` exact sums (integers as ``int``, decimals as
:class:`fractions.Fraction`, so adding and removing never drifts), ``min``/``max`` monotonic
queues (the sliding-window minimum) — so an event costs O(1) amortised per aggregate.  At
most :data:`MAX_WINDOW_EVENTS` events stay in one key's window; beyond, the oldest are
dropped and counted, and the window's alerts say ``exact: false`` until it has emptied.
Layer 3: plain data, no I/O.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Hashable
from fractions import Fraction
from typing import Any, NamedTuple

from cep.compiler.window_spec import AggregateTerm, WindowSpec
from cep.event import Event, HeldEvent
from cep.lang.ast import WINDOW_STAGE
from cep.nfa.pattern import PartialMatchNode

__all__ = ["WindowState", "WindowHit", "MAX_WINDOW_EVENTS"]

MAX_WINDOW_EVENTS = 100_000
"""The most events one key's window holds; the oldest beyond are dropped (inexact)."""

_NUM = (int, float)


class WindowHit(NamedTuple):
    """An event that crossed: the match to alert on (a chain of the window's events, each
    under its stage: ``events``, or every member it satisfies), the aggregates' values by
    label (``having``), the window's first event time and size, and whether it is exact."""

    node: PartialMatchNode
    aggregates: dict[str, Any]
    first_ts: int
    events: int
    exact: bool


class _Sum:
    """Exact running sum and count of the numeric values added (``bool`` is not a number)."""

    __slots__ = ("ints", "dec", "n")

    def __init__(self) -> None:
        self.ints = 0
        self.dec = Fraction(0)
        self.n = 0

    def add(self, v: Any) -> None:
        t = type(v)
        if t is int:
            self.ints += v
        elif t is float:
            self.dec += Fraction(v)
        else:
            return
        self.n += 1

    def remove(self, v: Any) -> None:
        t = type(v)
        if t is int:
            self.ints -= v
        elif t is float:
            self.dec -= Fraction(v)
        else:
            return
        self.n -= 1

    def exact(self) -> int | Fraction:
        return self.ints + self.dec if self.dec else self.ints


class _Extreme:
    """The minimum (``sign`` 1) or maximum (``sign`` -1) of a sliding window: a deque of
    ``(index, value)`` with values strictly increasing (decreasing) from the front."""

    __slots__ = ("q", "sign")

    def __init__(self, sign: int) -> None:
        self.q: deque[tuple[int, Any]] = deque()
        self.sign = sign

    def add(self, i: int, v: Any) -> None:
        if type(v) not in _NUM:
            return
        q = self.q
        if self.sign > 0:
            while q and q[-1][1] >= v:
                q.pop()
        else:
            while q and q[-1][1] <= v:
                q.pop()
        q.append((i, v))

    def drop_before(self, base: int) -> None:
        q = self.q
        while q and q[0][0] < base:
            q.popleft()

    def value(self) -> Any:
        return self.q[0][1] if self.q else None


class _KeyWindow:
    """One key's window: its events, each one's values (one per term) or member mask, and
    the running aggregates."""

    __slots__ = ("events", "vals", "base", "aggs", "counts", "exact")

    def __init__(self, spec: WindowSpec) -> None:
        self.events: deque[Any] = deque()
        self.vals: deque[Any] = deque()
        self.base = 0  # index of the first event (for min/max)
        self.exact = True
        self.counts = [0] * len(spec.members)
        self.aggs: list[Any] = []
        for t in spec.terms:
            if t.func == "count_distinct":
                self.aggs.append({})
            elif t.func in ("sum", "avg"):
                self.aggs.append(_Sum())
            elif t.func in ("min", "max"):
                self.aggs.append(_Extreme(1 if t.func == "min" else -1))
            else:
                self.aggs.append(None)


def _compare(op: str, a: Any, b: int | float) -> bool:
    if a is None:
        return False
    if op == ">=":
        return bool(a >= b)
    if op == ">":
        return bool(a > b)
    if op == "<=":
        return bool(a <= b)
    if op == "<":
        return bool(a < b)
    return bool(a == b)


class WindowState:
    """The windows of one rule version, by key.

    Args:
        spec: the rule's :class:`~cep.compiler.window_spec.WindowSpec`.

    Attributes:
        windows: key → its window, in the order of the keys' last events.
        evicted: events dropped from full windows (:data:`MAX_WINDOW_EVENTS`) so far.
    """

    def __init__(self, spec: WindowSpec, cap: int = MAX_WINDOW_EVENTS) -> None:
        self.spec = spec
        self.cap = cap
        self.windows: OrderedDict[Hashable, _KeyWindow] = OrderedDict()
        self.evicted = 0

    # ------------------------------------------------------------------ one key's window

    def _add(self, w: _KeyWindow, ev: Any) -> None:
        spec = self.spec
        if spec.members:
            mask = 0
            for j, (_, cond) in enumerate(spec.members):
                if cond(ev, None):
                    mask |= 1 << j
                    w.counts[j] += 1
            w.vals.append(mask)
        elif spec.terms:
            data = ev.data
            vals = tuple(t.value(data) if t.value is not None else None for t in spec.terms)
            i = w.base + len(w.events)
            for t, agg, v in zip(spec.terms, w.aggs, vals, strict=True):
                if t.func == "count_distinct":
                    if v is not None:
                        agg[v] = agg.get(v, 0) + 1
                elif t.func in ("sum", "avg"):
                    agg.add(v)
                elif agg is not None:
                    agg.add(i, v)
            w.vals.append(vals)
        w.events.append(ev)

    def _pop(self, w: _KeyWindow) -> None:
        w.events.popleft()
        vals = w.vals.popleft()
        w.base += 1
        spec = self.spec
        if spec.members:
            for j in range(len(spec.members)):
                if vals >> j & 1:
                    w.counts[j] -= 1
            return
        for t, agg, v in zip(spec.terms, w.aggs, vals, strict=True):
            if t.func == "count_distinct":
                if v is not None:
                    n = agg[v] - 1
                    if n:
                        agg[v] = n
                    else:
                        del agg[v]
            elif t.func in ("sum", "avg"):
                agg.remove(v)
            elif agg is not None:
                agg.drop_before(w.base)
        if not w.events:
            w.exact = True

    @staticmethod
    def _value(t: AggregateTerm, agg: Any, w: _KeyWindow) -> Any:
        """The exact value of one aggregate (``Fraction`` for decimal sums and averages)."""
        if t.func == "count":
            return len(w.events)
        if t.func == "count_distinct":
            return len(agg)
        if t.func == "sum":
            return agg.exact()
        if t.func == "avg":
            return Fraction(agg.exact(), agg.n) if agg.n else None
        return agg.value()

    def _holds(self, w: _KeyWindow) -> bool:
        spec = self.spec
        if spec.members:
            return all(w.counts)
        return all(_compare(t.op, self._value(t, agg, w), t.threshold)
                   for t, agg in zip(spec.terms, w.aggs, strict=True))

    # ------------------------------------------------------------------ the operator's calls

    def offer(self, key: Hashable, ev: Any) -> WindowHit | None:
        """Put ``ev`` (the rule's next event in event-time order, ms) into ``key``'s window;
        the :class:`WindowHit` when it crosses, else ``None``."""
        windows = self.windows
        w = windows.get(key)
        if w is None:
            w = windows[key] = _KeyWindow(self.spec)
        else:
            windows.move_to_end(key)
        if type(ev) is HeldEvent:
            ev = ev.event()
        lo = ev.ts - self.spec.within_ms
        events = w.events
        while events and events[0].ts <= lo:
            self._pop(w)
        before = self._holds(w)
        if len(events) >= self.cap:
            self._pop(w)
            w.exact = False
            self.evicted += 1
        self._add(w, ev)
        hit = self._hit(w) if self._holds(w) and not before else None
        self._expire(lo)
        return hit

    def _expire(self, lo: int) -> None:
        """Drop the keys whose last event is at or before ``lo``: their windows are empty
        for every later event."""
        windows = self.windows
        while windows:
            k = next(iter(windows))
            if windows[k].events[-1].ts > lo:
                return
            del windows[k]

    def _hit(self, w: _KeyWindow) -> WindowHit:
        spec = self.spec
        node: PartialMatchNode | None = None
        if spec.members:
            names = [name for name, _ in spec.members]
            for ev, mask in zip(w.events, w.vals, strict=True):
                for j, name in enumerate(names):
                    if mask >> j & 1:
                        node = PartialMatchNode(name, ev, node)
        else:
            for ev in w.events:
                node = PartialMatchNode(WINDOW_STAGE, ev, node)
        assert node is not None
        aggs: dict[str, Any] = {}
        for t, agg in zip(spec.terms, w.aggs, strict=True):
            v = self._value(t, agg, w)
            aggs[t.label] = float(v) if isinstance(v, Fraction) else v
        return WindowHit(node, aggs, w.events[0].ts, len(w.events), w.exact)

    # ------------------------------------------------------------------ checkpoints

    def state(self) -> list[tuple[Hashable, list[Event], bool]]:
        """Every key's window as ``(key, events in order, exact)``, keys in their order."""
        return [(k, list(w.events), w.exact) for k, w in self.windows.items()]

    def restore(self, saved: list[tuple[Hashable, list[Event], bool]], evicted: int) -> None:
        """The windows of :meth:`state` (the running values are computed again)."""
        self.windows.clear()
        self.evicted = evicted
        for key, events, exact in saved:
            w = self.windows[key] = _KeyWindow(self.spec)
            for ev in events:
                self._add(w, ev)
            w.exact = exact

    def events_held(self) -> int:
        """Events in all windows."""
        return sum(len(w.events) for w in self.windows.values())
