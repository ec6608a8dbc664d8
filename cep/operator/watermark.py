"""Event-time watermarks: Flink's bounded-out-of-orderness strategy per source (or partition).

The watermark of one input is ``max event time seen − max_out_of_orderness − 1`` (ms); the
engine's watermark is the minimum over inputs that are not idle.  An input that has seen
nothing yet holds the watermark at −∞ unless it is idle.  All times are epoch milliseconds.
"""

from __future__ import annotations

__all__ = ["WatermarkTracker", "NEG_INF", "POS_INF"]

NEG_INF = float("-inf")
POS_INF = float("inf")


class WatermarkTracker:
    """Tracks per-input maxima and derives the engine watermark.

    ``inputs`` maps an input id (a source name, or ``"source/partition"``) to its
    ``max_out_of_orderness`` in ms.  Inputs may be added later with :meth:`add_input`.
    """

    __slots__ = ("_max", "_ooo", "_idle", "_finished", "current")

    def __init__(self, inputs: dict[str, int] | None = None) -> None:
        self._max: dict[str, float] = {}
        self._ooo: dict[str, int] = {}
        self._idle: set[str] = set()
        self._finished = False
        self.current: float = NEG_INF
        for name, ooo in (inputs or {}).items():
            self.add_input(name, ooo)

    def add_input(self, name: str, max_out_of_orderness_ms: int = 0) -> None:
        """Register an input (idempotent)."""
        if name not in self._max:
            self._max[name] = NEG_INF
            self._ooo[name] = max_out_of_orderness_ms

    def remove_input(self, name: str) -> None:
        """Forget an input (a revoked partition)."""
        self._max.pop(name, None)
        self._ooo.pop(name, None)
        self._idle.discard(name)

    def observe(self, name: str, ts: int) -> float:
        """Record an event time (ms) seen on ``name``; return the (possibly advanced) engine
        watermark.  The watermark never goes back."""
        if ts > self._max[name]:
            self._max[name] = ts
            if len(self._max) == 1 and not self._finished:
                wm = ts - self._ooo[name] - 1
                if wm > self.current:
                    self.current = wm
                self._idle.discard(name)
                return self.current
            self._idle.discard(name)
            return self._recompute()
        if name in self._idle:
            self._idle.discard(name)
            return self._recompute()
        return self.current

    def is_sole_in_order(self, name: str) -> bool:
        """True when ``name`` is the only input, with ``max_out_of_orderness`` 0, and the
        input is not finished: then the watermark is always the largest event time − 1."""
        return (len(self._max) == 1 and name in self._max and self._ooo[name] == 0
                and not self._finished and not self._idle)

    def set_idle(self, name: str, idle: bool = True) -> float:
        """Mark an input idle (excluded from the minimum) or active again."""
        if idle:
            self._idle.add(name)
        else:
            self._idle.discard(name)
        return self._recompute()

    def finish(self) -> float:
        """End of a finite input: the watermark jumps to +∞."""
        self._finished = True
        self.current = POS_INF
        return POS_INF

    def inputs(self) -> list[tuple[str, float, bool]]:
        """``(input, largest event time seen (ms, -inf: none), idle)`` for every input, in
        the order they were added.  For checkpoints."""
        return [(name, m, name in self._idle) for name, m in self._max.items()]

    @property
    def finished(self) -> bool:
        """Whether :meth:`finish` was called (end of a finite input)."""
        return self._finished

    def per_input(self) -> dict[str, float]:
        """Each input's own watermark (for status pages)."""
        return {n: m - self._ooo[n] - 1 for n, m in self._max.items()}

    def _recompute(self) -> float:
        if self._finished:
            return POS_INF
        active = [m - self._ooo[n] - 1 for n, m in self._max.items() if n not in self._idle]
        if not active:
            return self.current
        wm = min(active)
        if wm > self.current:
            self.current = wm
        return self.current
