"""Between a rule's matches and its alerts: the window of ``having`` / ``all of`` and the
suppression of ``suppress for``.

:meth:`Alerting.offer` takes one completed match (the last node of its chain) and returns
the alert record to emit, or ``None``: the window did not cross (:mod:`cep.operator.window`)
or the alert was suppressed (:mod:`cep.operator.suppression`).  Rules with neither have no
``Alerting``; the operator then emits every match as before.  Layer 3.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from cep.compiler.compiled import CompiledRule
from cep.nfa.pattern import PartialMatchNode
from cep.operator.records import AlertBuilder
from cep.operator.suppression import Suppressor
from cep.operator.window import WindowState

__all__ = ["Alerting", "alerting_for", "ALERTING_STATS"]

ALERTING_STATS = ("suppressed", "suppression_groups", "window_keys", "window_events",
              "window_evictions")
"""The names of :meth:`Alerting.stats`."""


class Alerting:
    """The window and suppression state of one rule version.

    Attributes:
        window: the rule's windows by key (``None`` for a pattern rule).
        suppressor: its suppression state (``None`` without ``suppress for``).
        produced: alerts the rule's logic made (before suppression).
    """

    def __init__(self, rule: CompiledRule, alerts: AlertBuilder) -> None:
        self.alerts = alerts
        self.window = WindowState(rule.window) if rule.window is not None else None
        sup = rule.suppress
        self.suppressor = Suppressor(sup.period_ms) if sup is not None else None
        self._group = sup.group if sup is not None else None
        self._within = rule.window.within_ms if rule.window is not None else 0
        self.produced = 0

    def offer(self, key: Hashable, node: PartialMatchNode) -> dict[str, Any] | None:
        """The record of the match ending at ``node`` for ``key``, or ``None`` (see the
        module)."""
        window = self.window
        if window is not None:
            hit = window.offer(key, node.event)
            if hit is None:
                return None
            rec = self.alerts.match(key, hit.node)
            end = rec["end"]
            if hit.aggregates:
                rec["aggregates"] = hit.aggregates
            rec["window"] = {"start": end - self._within + 1, "end": end,
                             "events": hit.events, "exact": hit.exact}
            last = hit.node.event
        else:
            rec = self.alerts.match(key, node)
            last = node.event
        self.produced += 1
        sup = self.suppressor
        if sup is None:
            return rec
        group = key
        if self._group is not None:
            last = last.plain()
            group = self._group(last.data)
        n = sup.admit(group, rec["end"])
        if n is None:
            return None
        rec["suppressed"] = n
        return rec

    def stats(self) -> dict[str, int]:
        """``suppressed`` alerts, ``suppression_groups``, ``window_keys``, ``window_events``
        and ``window_evictions`` (events dropped from full windows)."""
        sup, win = self.suppressor, self.window
        return {
            "suppressed": sup.suppressed if sup is not None else 0,
            "suppression_groups": sup.groups() if sup is not None else 0,
            "window_keys": len(win.windows) if win is not None else 0,
            "window_events": win.events_held() if win is not None else 0,
            "window_evictions": win.evicted if win is not None else 0,
        }


def alerting_for(rule: CompiledRule, alerts: AlertBuilder) -> Alerting | None:
    """The :class:`Alerting` of ``rule``, ``None`` when it has no window and no suppression."""
    if rule.window is None and rule.suppress is None:
        return None
    return Alerting(rule, alerts)
