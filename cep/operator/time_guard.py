"""The future-skew guard: one forged event time cannot move the watermark far ahead.

A watermark only goes forward, so a single event dated in the far future (a forged or broken
timestamp: the year 9999) would make every later event late and blind every rule for the rest
of the run.  The guard stands between decoding and the watermark.  An event whose time is more
than ``max_skew_ms`` ahead of

* the stream's recent time (the largest event time accepted so far), or
* in live modes, the wall clock,

is refused: the operator sends it to the dead-letter output as ``future_event_time`` and it
neither moves the watermark nor reaches a rule.  A stream that really moved on (a gap in a
historical file longer than the bound) shows it by carrying on there: the ``confirm``-th
refused event in a row from one input (consecutive offsets, when known) is
accepted and becomes the new recent time; the ones before it stay dead letters.  The wall
clock has no such exception.  The same idea as Splunk's ``MAX_DAYS_HENCE`` and Druid's
``earlyMessageRejectionPeriod``, which bound event times by the wall clock; the stream-relative
bound with confirmation is this engine's, for history without a wall clock.  All times are
epoch milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable

from cep.event import MAX_EVENT_TIME_MS

__all__ = ["FutureGuard", "CONFIRM", "DEFAULT_MAX_SKEW_MS"]

DEFAULT_MAX_SKEW_MS = 86_400_000
"""Default bound: one day ahead of the stream's recent time (and of the wall clock)."""

CONFIRM = 3
"""Refused events in a row from one input after which the stream is taken to have moved."""

_NEG_INF = float("-inf")


class FutureGuard:
    """Decides whether an event time may move the stream forward.

    Args:
        max_skew_ms: the bound, ms ahead (``None``: no bound; only the valid event-time
            domain is checked by the callers).
        wall_clock: in live modes, a function giving the current time in epoch **seconds**
            (``time.time``); ``None`` in file and replay modes.
        confirm: see :data:`CONFIRM` (1: the stream-relative bound never refuses twice).

    Raises:
        ValueError: a negative bound or ``confirm`` below 1.
    """

    __slots__ = ("skew", "cap", "confirm", "_clock", "_wall_limit", "_streak_input",
                 "_streak_next",
                 "_streak", "refused")

    def __init__(self, max_skew_ms: int | None = DEFAULT_MAX_SKEW_MS,
                 wall_clock: Callable[[], float] | None = None, confirm: int = CONFIRM) -> None:
        if max_skew_ms is not None and max_skew_ms < 0:
            raise ValueError(f"max_future_skew must not be negative, got {max_skew_ms} ms")
        if confirm < 1:
            raise ValueError(f"confirm must be at least 1, got {confirm}")
        self.skew: float = float("inf") if max_skew_ms is None else max_skew_ms
        """The bound in ms (``inf`` when there is none)."""
        self.confirm = confirm
        self._clock = wall_clock if max_skew_ms is not None else None
        self._wall_limit: float = _NEG_INF if self._clock is not None else float("inf")
        self.cap: float = min(self._wall_limit, MAX_EVENT_TIME_MS)
        """No event time above this is admitted without asking (ms): the last wall-clock
        limit and ``MAX_EVENT_TIME_MS``; the stream-relative bound is ``recent + skew``
        (:meth:`limit` is both)."""
        self._streak_input: tuple[str, int] | None = None
        self._streak_next = 0
        self._streak = 0
        self.refused = 0
        """Events refused so far."""

    def limit(self, recent: float) -> float:
        """Event times up to this one are admitted without asking (ms): ``recent`` (the
        largest event time accepted) plus the bound, and past neither the last wall-clock
        limit nor ``MAX_EVENT_TIME_MS``.  ``-inf`` while nothing was accepted."""
        lim = recent + self.skew if recent != _NEG_INF else _NEG_INF
        if lim > self._wall_limit:
            lim = self._wall_limit
        return lim if lim < MAX_EVENT_TIME_MS else MAX_EVENT_TIME_MS

    def admits(self, ts: int, recent: float, source: str, partition: int, offset: int) -> bool:
        """Whether the event at ``ts`` (ms) from ``source``/``partition`` at ``offset`` (line or
        Kafka offset, ``-1`` unknown) may be accepted, ``recent`` being the largest event time
        accepted so far (``-inf``: none).  Counts a refusal in :attr:`refused`."""
        if ts > self._wall_limit:
            now_ms = self._clock() * 1000.0  # type: ignore[misc]
            self._wall_limit = now_ms + self.skew
            self.cap = min(self._wall_limit, MAX_EVENT_TIME_MS)
            if ts > self._wall_limit:
                self._streak = 0
                self.refused += 1
                return False
        if recent == _NEG_INF or ts <= recent + self.skew:
            self._streak = 0
            return True
        where = (source, partition)
        if (self._streak and where == self._streak_input
                and (offset < 0 or offset == self._streak_next)):
            self._streak += 1
        else:
            self._streak = 1
            self._streak_input = where
        self._streak_next = offset + 1
        if self._streak >= self.confirm:
            self._streak = 0
            return True
        self.refused += 1
        return False

    def reason(self, ts: int, recent: float) -> str:
        """The dead letter's message for a refused ``ts`` (ms)."""
        if ts > self._wall_limit:
            return (f"event time {ts} is more than {self.skew:.0f} ms ahead of the wall clock "
                    f"(max_future_skew)")
        return (f"event time {ts} is more than {self.skew:.0f} ms ahead of the stream's recent "
                f"time {recent:.0f} (max_future_skew); it did not move the watermark")
