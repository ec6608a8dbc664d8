"""A backtest by entity: which keys alert only in the new rule version, which stop alerting,
and which alert in both with other counts or windows (``cep replay --compare``).

Alerts of one rule are grouped by key (its canonical JSON) and by kind (a match, or a
timed-out partial match).  Within a key the two versions' alerts are paired by overlapping
time: sorted by ``start``, an old alert ``[start, end]`` is paired with the earliest unpaired
new one whose interval overlaps it (a sweep, linear in the alerts of the key).  A threshold
change that makes an alert start earlier or later still pairs it; an alert in a quiet stretch
of the other version does not.  A key alerts *in both* unchanged when every alert is paired
with one of the same ``[start, end]``; otherwise it is *changed* (counts differ, or a paired
window moved).  Times are epoch milliseconds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

__all__ = ["KeyDiff", "KeyReport", "diff_by_key", "key_text", "render_keys", "keys_json"]

Window = tuple[int, int]


@dataclass
class KeyDiff:
    """One key of one rule: its key object, whether these are timed-out partial matches,
    the windows ``(start, end)`` of the old and new versions' alerts (sorted), and the pairs
    ``(old window, new window)`` whose intervals overlap."""

    key: Any
    timed_out: bool
    old: list[Window] = field(default_factory=list)
    new: list[Window] = field(default_factory=list)
    paired: list[tuple[Window, Window]] = field(default_factory=list)

    @property
    def unchanged(self) -> bool:
        return (len(self.old) == len(self.new) == len(self.paired)
                and all(a == b for a, b in self.paired))

    def as_dict(self) -> dict[str, Any]:
        """Plain data for the JSON report."""
        old_paired = {a for a, _ in self.paired}
        new_paired = {b for _, b in self.paired}
        return {
            "key": self.key, "timed_out": self.timed_out,
            "old": len(self.old), "new": len(self.new),
            "old_windows": [list(w) for w in self.old],
            "new_windows": [list(w) for w in self.new],
            "moved": [[list(a), list(b)] for a, b in self.paired if a != b],
            "only_old_windows": [list(w) for w in self.old if w not in old_paired],
            "only_new_windows": [list(w) for w in self.new if w not in new_paired],
        }


@dataclass
class KeyReport:
    """One rule: keys alerting only in the new version, keys that stop alerting, keys in
    both that changed, and how many keys are unchanged."""

    new_keys: list[KeyDiff] = field(default_factory=list)
    lost_keys: list[KeyDiff] = field(default_factory=list)
    changed_keys: list[KeyDiff] = field(default_factory=list)
    unchanged_keys: int = 0


def _pair(old: list[Window], new: list[Window]) -> list[tuple[Window, Window]]:
    """Pair overlapping windows of two lists sorted by start (see the module docstring)."""
    pairs: list[tuple[Window, Window]] = []
    j = 0
    for a in old:
        while j < len(new) and new[j][1] < a[0]:  # ends before this (and every later) old
            j += 1
        if j < len(new) and new[j][0] <= a[1]:
            pairs.append((a, new[j]))
            j += 1
    return pairs


def diff_by_key(old: Iterable[dict[str, Any]], new: Iterable[dict[str, Any]]
                ) -> dict[str, KeyReport]:
    """Alert records (``rule``, ``key``, ``start``, ``end``, ``timed_out``) of the old and
    the new rule set → rule name → :class:`KeyReport`."""
    groups: dict[tuple[str, bytes, bool], KeyDiff] = {}
    for side, recs in (("old", old), ("new", new)):
        for rec in recs:
            timed_out = bool(rec.get("timed_out"))
            gk = (rec["rule"], _canonical(rec["key"]), timed_out)
            d = groups.get(gk)
            if d is None:
                d = groups[gk] = KeyDiff(rec["key"], timed_out)
            getattr(d, side).append((rec["start"], rec["end"]))
    out: dict[str, KeyReport] = {}
    for (rule, _, _), d in sorted(groups.items()):
        d.old.sort()
        d.new.sort()
        d.paired = _pair(d.old, d.new)
        r = out.setdefault(rule, KeyReport())
        if not d.old:
            r.new_keys.append(d)
        elif not d.new:
            r.lost_keys.append(d)
        elif d.unchanged:
            r.unchanged_keys += 1
        else:
            r.changed_keys.append(d)
    return out


def _canonical(key: Any) -> bytes:
    return orjson.dumps(key, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS, default=str)


def key_text(d: KeyDiff) -> str:
    """``85.245.107.41 / elastic_user_8`` (the key's values), ``(one key)`` when unkeyed;
    ``(timeout)`` marks timed-out partial matches."""
    key = d.key
    values = list(key.values()) if isinstance(key, dict) else [key]
    text = " / ".join(v if isinstance(v, str) else orjson.dumps(v, default=str).decode()
                      for v in values) or "(one key)"
    return text + (" (timeout)" if d.timed_out else "")


def _counted(diffs: list[KeyDiff], side: str, limit: int) -> str:
    items = [f"{key_text(d)} ({len(getattr(d, side))})" for d in diffs[:limit]]
    more = f", … and {len(diffs) - limit:,} more" if len(diffs) > limit else ""
    return ", ".join(items) + more


def render_keys(reports: dict[str, KeyReport], alerts: dict[str, tuple[int, int]],
                console: Console, limit: int = 10) -> None:
    """The per-key backtest: a table of every rule (alerts old → new, keys new, lost,
    changed, unchanged), then per rule a line naming the new and the lost keys (with their
    alert counts; ``none lost``) and a table of the changed keys (at most ``limit`` of each).  ``alerts``: rule → (old, new) count."""
    table = Table(title="backtest by key: old vs new rules", title_justify="left")
    for col in ("rule", "alerts", "new keys", "lost keys", "changed keys", "unchanged keys"):
        table.add_column(col, justify="left" if col == "rule" else "right")
    for name in sorted(set(reports) | set(alerts)):
        r = reports.get(name, KeyReport())
        old, new = alerts.get(name, (0, 0))
        table.add_row(name, f"{old:,} → {new:,}", f"{len(r.new_keys):,}",
                      f"{len(r.lost_keys):,}", f"{len(r.changed_keys):,}",
                      f"{r.unchanged_keys:,}")
    console.print(table)
    for name, r in sorted(reports.items()):
        if not (r.new_keys or r.lost_keys or r.changed_keys):
            continue
        gained = ("new keys alerting: " + _counted(r.new_keys, "new", limit)
                  if r.new_keys else "no new keys")
        lost = ("keys that stop alerting: " + _counted(r.lost_keys, "old", limit)
                if r.lost_keys else "none lost")
        console.print(f"{name}: {gained}; {lost}", highlight=False, markup=False)
        if r.changed_keys:
            t = Table(title=f"{name}: keys alerting in both, changed", title_justify="left")
            for col in ("key", "alerts", "windows moved", "only old", "only new"):
                t.add_column(col, justify="left" if col == "key" else "right")
            for d in r.changed_keys[:limit]:
                moved = sum(1 for a, b in d.paired if a != b)
                t.add_row(key_text(d), f"{len(d.old):,} → {len(d.new):,}", f"{moved:,}",
                          f"{len(d.old) - len(d.paired):,}", f"{len(d.new) - len(d.paired):,}")
            if len(r.changed_keys) > limit:
                t.caption = f"… and {len(r.changed_keys) - limit:,} more"
            console.print(t)


def keys_json(r: KeyReport) -> dict[str, Any]:
    """One rule's per-key backtest as plain data (``--report``)."""
    return {"new_keys": [d.as_dict() for d in r.new_keys],
            "lost_keys": [d.as_dict() for d in r.lost_keys],
            "changed_keys": [d.as_dict() for d in r.changed_keys],
            "unchanged_keys": r.unchanged_keys}
