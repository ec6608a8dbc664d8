"""Warnings about partial matches evicted by ``max_partial_matches_per_key``, rate-limited.

One hot key at the cap evicts on almost every event; a line per eviction would flood the log
and cost more than the eviction.  :class:`EvictionLog` writes the first eviction of a rule at
once and then at most one line per rule every :attr:`EvictionLog.every_s` seconds, with what
was evicted since the line before.  Every eviction is counted either way
(``RuleState.evictions``: the operator's ``stats()``, ``cep_evictions_total``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable

__all__ = ["EvictionLog", "EVICTION_LOG_EVERY_S"]

EVICTION_LOG_EVERY_S = 10.0
"""Default of :attr:`EvictionLog.every_s`: at most one eviction warning per rule per 10 s."""


class _RuleLog:
    """One rule's part of an :class:`EvictionLog`."""

    __slots__ = ("next_at", "evicted", "steps", "total")

    def __init__(self, now: float) -> None:
        self.next_at = now  # (s) from when the next line may be written
        self.evicted = 0  # partial matches evicted since the last line
        self.steps = 0  # evicting steps (a key over the cap) since the last line
        self.total = 0  # partial matches evicted in all


class EvictionLog:
    """Rate-limited eviction warnings of one operator, per rule name.

    Args:
        logger: where the warnings go.
        every_s: the least time (seconds) between two lines of one rule; 0 writes a line per
            call of :meth:`note`.
        clock: a monotonic clock in seconds (:func:`time.monotonic`).
    """

    __slots__ = ("logger", "every_s", "clock", "_rules")

    def __init__(self, logger: logging.Logger, every_s: float = EVICTION_LOG_EVERY_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.every_s = every_s
        self.clock = clock
        self._rules: dict[str, _RuleLog] = {}

    def note(self, rule: str, key: Hashable, evicted: int, cap: int) -> None:
        """``evicted`` partial matches of ``rule`` were evicted from ``key`` (the cap was
        ``cap``): a warning now if the rule's last one is at least :attr:`every_s` old,
        else only counted for the next."""
        now = self.clock()
        r = self._rules.get(rule)
        if r is None:
            r = self._rules[rule] = _RuleLog(now)
        r.evicted += evicted
        r.steps += 1
        r.total += evicted
        if now < r.next_at:
            return
        if r.total == r.evicted:  # the rule's first line
            self.logger.warning(
                "rule %s key %r: %d partial matches evicted (max_partial_matches_per_key=%d); "
                "further evictions of this rule are logged at most every %g s and counted in "
                "cep_evictions_total", rule, key, r.evicted, cap, self.every_s)
        else:
            self.logger.warning(
                "rule %s: %d partial matches evicted in %d steps since the last warning, "
                "%d in all (latest key %r, max_partial_matches_per_key=%d)",
                rule, r.evicted, r.steps, r.total, key, cap)
        r.next_at = now + self.every_s
        r.evicted = r.steps = 0
