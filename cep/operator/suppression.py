"""``suppress for D [by …]``: one alert per group and period, the rest counted.

After an emitted alert of a group, the group's alerts whose ``end`` (event time, ms) is
before ``end + D`` of the emitted one are suppressed and counted; the next emitted alert of
the group carries the count (docs/rule-language.md).  Groups are kept in the order of their
emitted alerts; a group whose period is over leaves that order at the next emitted alert of
the rule — forgotten when nothing was suppressed, else its count waits in ``pending`` for the
group's next alert.  Layer 3: plain data, no I/O.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

__all__ = ["Suppressor"]


class Suppressor:
    """The suppression state of one rule version.

    Args:
        period_ms: how long after an emitted alert the group's alerts are suppressed (ms).

    Attributes:
        periods: group → ``[end of its period (ms), alerts suppressed in it]``.
        pending: group → alerts suppressed in a period that is over, for its next alert.
        suppressed: alerts suppressed so far.
    """

    def __init__(self, period_ms: int) -> None:
        self.period_ms = period_ms
        self.periods: OrderedDict[Hashable, list[int]] = OrderedDict()
        self.pending: dict[Hashable, int] = {}
        self.suppressed = 0

    def admit(self, group: Hashable, end: int) -> int | None:
        """An alert of ``group`` ending at ``end`` (ms): ``None`` when it is suppressed, else
        the number of the group's alerts suppressed since its last emitted one."""
        periods = self.periods
        entry = periods.get(group)
        if entry is not None:
            if end < entry[0]:
                entry[1] += 1
                self.suppressed += 1
                return None
            del periods[group]
            n = entry[1]
        else:
            n = self.pending.pop(group, 0)
        periods[group] = [end + self.period_ms, 0]
        while periods:
            first = next(iter(periods))
            until, count = periods[first]
            if until > end:
                break
            del periods[first]
            if count:
                self.pending[first] = count
        return n

    def groups(self) -> int:
        """Groups with state (in a period, or with a count waiting)."""
        return len(self.periods) + len(self.pending)
