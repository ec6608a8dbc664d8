"""Sliding event-time windows per key: the alerts of ``having`` and ``all of`` rules.

The automaton of such a rule makes a one-event match of every event the rule reads
(:mod:`cep.compiler.window_spec`); :meth:`WindowState.offer` puts that event into its key's
window and says whether it *crosses*: the condition holds over the window at the event and
did not hold over the same window without it (docs/rule-language.md, *Suppression, aggregate
thresholds and unordered sets*).  The window at an event ``e`` holds the key's events ``x``
with ``e.ts - x.ts < within_ms``, in arrival order.  Events reach a rule in event-time
order, so a window loses events only at its front, and a key whose last event is older than
the window holds nothing: keys are kept in the order of their last event and swept from
the front whenever the map has doubled (:data:`_SWEEP_MIN`).

Aggregates are kept as running values — ``count()`` the window's length, ``count_distinct``
a count per value, ``sum``/``avg`` exact sums (whole numbers of 2**-1074, the smallest
double, so adding and removing never drifts), ``min``/``max`` monotonic
queues (the sliding-window minimum) — so an event costs O(1) amortised per aggregate.  At
most :data:`MAX_WINDOW_EVENTS` events stay in one key's window; beyond, the oldest are
dropped and counted, and the window's alerts say ``exact: false`` until it has emptied.
Layer 3: plain data, no I/O.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from fractions import Fraction
from typing import Any, NamedTuple

from cep.compiler.window_spec import WindowSpec
from cep.event import Event
from cep.lang.ast import WINDOW_STAGE
from cep.lang.operators import OPERATORS
from cep.nfa.pattern import PartialMatchNode

__all__ = ["WindowState", "WindowHit", "MAX_WINDOW_EVENTS"]

MAX_WINDOW_EVENTS = 100_000
"""The most events one key's window holds; the oldest beyond are dropped (inexact)."""

_NUM = (int, float)

_SWEEP_MIN = 1024
"""Keys whose windows have expired are swept out when the map has grown to twice its size
after the last sweep (and at least this many keys): amortised O(1) per new key, and at most
twice the keys with a live window (plus this many) are ever held."""


class WindowHit(NamedTuple):
    """An event that crossed: the match to alert on (a chain of the window's events, each
    under its stage: ``events``, or every member it satisfies), the aggregates' values by
    label (``having``), the window's first event time and size, and whether it is exact."""

    node: PartialMatchNode
    aggregates: dict[str, Any]
    first_ts: int
    events: int
    exact: bool


_SCALE = 1074
"""Sums are kept as integers in units of 2**-1074 (the smallest double): every int and
every finite double is a whole number of them, so sums are exact and adding and removing
never drifts."""


def _scaled(v: int | float) -> int:
    """``v`` in units of 2**-1074 (exact)."""
    if type(v) is int:
        return v << _SCALE
    n, d = v.as_integer_ratio()  # d is a power of two, at most 2**1074
    return n << (_SCALE - d.bit_length() + 1)


class _Sum:
    """Exact running sum (in units of 2**-1074) and count of the numeric values added
    (``bool`` is not a number)."""

    __slots__ = ("total", "n")

    def __init__(self) -> None:
        self.total = 0
        self.n = 0

    def add(self, v: Any) -> None:
        if type(v) in _NUM:
            self.total += _scaled(v)
            self.n += 1

    def remove(self, v: Any) -> None:
        if type(v) in _NUM:
            self.total -= _scaled(v)
            self.n -= 1


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


_COUNT, _DISTINCT, _SUMK, _AVG, _MIN, _MAX = range(6)
_KINDS = {"count": _COUNT, "count_distinct": _DISTINCT, "sum": _SUMK, "avg": _AVG,
          "min": _MIN, "max": _MAX}


def _test(op: str) -> Callable[[Any, Any], bool]:
    """The comparison of a ``having`` term (one of ``OPERATORS`` usable there)."""
    test = OPERATORS[op].test
    assert test is not None
    return test


class _KeyWindow:
    """One key's window: its events, each one's values (one per term) or member mask, and
    the running aggregates."""

    __slots__ = ("events", "vals", "base", "aggs", "counts", "exact")

    def __init__(self, kinds: tuple[int, ...], members: int) -> None:
        self.events: deque[Any] = deque()
        self.vals: deque[Any] = deque()
        self.base = 0  # index of the first event (for min/max)
        self.exact = True
        self.counts = [0] * members
        self.aggs: list[Any] = [
            {} if k == _DISTINCT else _Sum() if k in (_SUMK, _AVG)
            else _Extreme(1 if k == _MIN else -1) if k in (_MIN, _MAX) else None
            for k in kinds]


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
        self._kinds = tuple(_KINDS[t.func] for t in spec.terms)
        self._getters = tuple(t.value for t in spec.terms)
        # per term: (kind, comparison, threshold — scaled for sums and averages)
        self._checks = tuple(
            (k, _test(t.op), _scaled(t.threshold) if k in (_SUMK, _AVG) else t.threshold)
            for k, t in zip(self._kinds, spec.terms, strict=True))
        self._members = tuple(cond for _, cond in spec.members)
        self._sweep_at = _SWEEP_MIN
        self._term_checks: tuple[Callable[[_KeyWindow], bool], ...] = (
            (lambda w: all(w.counts)),) if self._members else tuple(
            self._term_check(j) for j in range(len(self._checks)))
        # whether the condition holds over an empty window (the one before a key's first
        # event): 0 events, 0 distinct values, sums 0, no average, minimum or maximum
        self._empty_holds = self._holds(_KeyWindow(self._kinds, len(self._members)))

    # ------------------------------------------------------------------ one key's window

    def _add(self, w: _KeyWindow, ev: Any) -> None:
        members = self._members
        if members:
            mask = 0
            counts = w.counts
            for j, cond in enumerate(members):
                if cond(ev, None):
                    mask |= 1 << j
                    counts[j] += 1
            w.vals.append(mask)
        else:
            data = ev.data
            vals = tuple([g(data) if g is not None else None for g in self._getters])
            i = w.base + len(w.events)
            aggs = w.aggs
            for j, k in enumerate(self._kinds):
                if k == _COUNT:
                    continue
                v = vals[j]
                if k == _DISTINCT:
                    if v is not None:
                        agg = aggs[j]
                        agg[v] = agg.get(v, 0) + 1
                elif k <= _AVG:
                    aggs[j].add(v)
                else:
                    aggs[j].add(i, v)
            w.vals.append(vals)
        w.events.append(ev)

    def _pop(self, w: _KeyWindow) -> None:
        w.events.popleft()
        vals = w.vals.popleft()
        w.base += 1
        if self._members:
            counts = w.counts
            for j in range(len(counts)):
                if vals >> j & 1:
                    counts[j] -= 1
        else:
            aggs = w.aggs
            for j, k in enumerate(self._kinds):
                if k == _COUNT:
                    continue
                v = vals[j]
                if k == _DISTINCT:
                    if v is not None:
                        agg = aggs[j]
                        n = agg[v] - 1
                        if n:
                            agg[v] = n
                        else:
                            del agg[v]
                elif k <= _AVG:
                    aggs[j].remove(v)
                else:
                    aggs[j].drop_before(w.base)
        if not w.events:
            w.exact = True

    def _holds(self, w: _KeyWindow) -> bool:
        """Whether the condition holds over ``w`` (every term's check, in order)."""
        for check in self._term_checks:
            if not check(w):
                return False
        return True

    def _term_check(self, j: int) -> Callable[[_KeyWindow], bool]:
        """The check of term ``j`` over a window, as one closure (its kind decided once)."""
        k, cmp, th = self._checks[j]
        if k == _COUNT:
            return lambda w: cmp(len(w.events), th)
        if k == _DISTINCT:
            return lambda w: cmp(len(w.aggs[j]), th)
        if k == _SUMK:
            return lambda w: cmp(w.aggs[j].total, th)
        if k == _AVG:
            return lambda w: bool(w.aggs[j].n) and cmp(w.aggs[j].total, th * w.aggs[j].n)

        def extreme(w: _KeyWindow) -> bool:
            v = w.aggs[j].value()
            return v is not None and cmp(v, th)
        return extreme

    def _value(self, j: int, w: _KeyWindow) -> Any:
        """The value of term ``j`` for the alert (sums and averages as int or float)."""
        k, agg = self._kinds[j], w.aggs[j]
        if k == _COUNT:
            return len(w.events)
        if k == _DISTINCT:
            return len(agg)
        if k in (_SUMK, _AVG):
            if k == _AVG and not agg.n:
                return None
            exact = Fraction(agg.total, (1 << _SCALE) * (agg.n if k == _AVG else 1))
            return int(exact) if exact.denominator == 1 else float(exact)
        return agg.value()

    # ------------------------------------------------------------------ the operator's calls

    def offer(self, key: Hashable, ev: Any) -> WindowHit | None:
        """Put ``ev`` (the rule's next event in event-time order, ms) into ``key``'s window;
        the :class:`WindowHit` when it crosses, else ``None``."""
        windows = self.windows
        w = windows.get(key)
        ev = ev.plain()
        lo = ev.ts - self.spec.within_ms
        if w is None:
            if len(windows) >= self._sweep_at:  # (only a new key makes the map grow)
                self._expire(lo)
                self._sweep_at = max(2 * len(windows), _SWEEP_MIN)
            w = windows[key] = _KeyWindow(self._kinds, len(self._members))
            before = self._empty_holds
        else:
            windows.move_to_end(key)
            events = w.events
            while events and events[0].ts <= lo:
                self._pop(w)
            before = self._holds(w) if events else self._empty_holds
        if len(w.events) >= self.cap:
            self._pop(w)
            w.exact = False
            self.evicted += 1
        self._add(w, ev)
        return self._hit(w) if not before and self._holds(w) else None

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
        aggs = {t.label: self._value(j, w) for j, t in enumerate(spec.terms)}
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
            w = self.windows[key] = _KeyWindow(self._kinds, len(self._members))
            for ev in events:
                self._add(w, ev)
            w.exact = exact

    def events_held(self) -> int:
        """Events in all windows."""
        return sum(len(w.events) for w in self.windows.values())
