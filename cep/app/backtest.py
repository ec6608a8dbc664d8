"""A backtest by entity: which keys alert only in the new rule version, which stop alerting,
and which alert in both with other counts or windows (``cep replay --compare``); and, as
detail, the alerts paired by their matched events (:func:`compare`).

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

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

__all__ = ["KeyDiff", "KeyReport", "RuleDiff", "CompareResult", "compare", "diff_by_key",
           "key_text", "render_keys", "keys_json", "render_compare", "compare_json"]

Window = tuple[int, int]
Coord = tuple[Any, ...]
Signature = tuple[Any, ...]


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
    alert counts; ``none lost``) and a table of the changed keys (at most ``limit`` of
    each).  ``alerts``: rule → (old, new) count."""
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


# ------------------------------------------------- the whole backtest, with the event detail


@dataclass
class RuleDiff:
    """One rule of a backtest: alert records only the old set raised, only the new one, and
    the number both raised (with a few examples)."""

    only_old: list[dict[str, Any]] = field(default_factory=list)
    only_new: list[dict[str, Any]] = field(default_factory=list)
    both: int = 0
    both_examples: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class CompareResult:
    """A backtest: per rule name, the event-level :class:`RuleDiff` (alerts paired by their
    matched events; every rule of either set), the per-key :class:`KeyReport`
    (the headline: keys paired by key and overlapping time) and the alert counts
    ``(old, new)``."""

    rules: dict[str, RuleDiff] = field(default_factory=dict)
    keys: dict[str, KeyReport] = field(default_factory=dict)
    alerts: dict[str, tuple[int, int]] = field(default_factory=dict)


def compare(old_signed: list[tuple[Signature, dict[str, Any]]],
            new_signed: list[tuple[Signature, dict[str, Any]]], names: Iterable[str]
            ) -> CompareResult:
    """Pair the alerts of a backtest: ``*_signed`` are ``(signature, alert record)`` in
    emission order (a signature is ``(rule, key JSON, timed out, matched events'
    coordinates)``); ``names`` are every rule of either set.  By key
    (:func:`diff_by_key`) and, as detail, by signature: equal signatures pair one to one."""
    old, new = (Counter(s for s, _ in side) for side in (old_signed, new_signed))
    result = CompareResult({name: RuleDiff() for name in names})
    left_old, left_new = old - new, new - old
    for side, left, attr in ((old_signed, left_old, "only_old"),
                             (new_signed, left_new, "only_new")):
        for sig, rec in side:
            d = result.rules.setdefault(sig[0], RuleDiff())
            if left[sig] > 0:
                left[sig] -= 1
                getattr(d, attr).append(rec)
    for sig, rec in old_signed:
        if new[sig] > 0 and old[sig] > 0:
            new[sig] -= 1
            old[sig] -= 1
            d = result.rules.setdefault(sig[0], RuleDiff())
            d.both += 1
            if len(d.both_examples) < 3:
                d.both_examples.append(rec)
    result.keys = diff_by_key((rec for _, rec in old_signed),
                              (rec for _, rec in new_signed))
    for name, d in result.rules.items():
        result.alerts[name] = (d.both + len(d.only_old), d.both + len(d.only_new))
    return result


def _example(rec: dict[str, Any]) -> str:
    coords = rec.get("_coords") or []
    where = ", ".join(_coord_text(c) for c in coords[:4])
    if len(coords) > 4:
        where += f", … ({len(coords)} events)"
    kind = "timeout " if rec.get("timed_out") else ""
    return (f"{kind}key {orjson.dumps(rec['key']).decode()}  "
            f"{_iso(rec['start'])} → {_iso(rec['end'])}  events {where}")


def _coord_text(c: Coord) -> str:
    """``file:line`` or ``topic/partition@offset``."""
    if len(c) == 2:
        return f"{Path(str(c[0])).name}:{c[1]}"
    return f"{c[0]}/{c[1]}@{c[2]}"


def _iso(ms: Any) -> str:
    try:
        return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    except (TypeError, ValueError, OverflowError, OSError):
        return str(ms)


def render_compare(c: CompareResult, console: Console, examples: int = 3) -> None:
    """The backtest: first by key (:func:`render_keys`), then the detail
    by matched events (per rule: old, new, only old, only new, both) with a few examples of
    each difference."""
    render_keys(c.keys, c.alerts, console)
    table = Table(title="detail by matched events: old vs new rules", title_justify="left")
    for col in ("rule", "old", "new", "only old", "only new", "both"):
        table.add_column(col, justify="left" if col == "rule" else "right")
    for name, d in sorted(c.rules.items()):
        old, new = d.both + len(d.only_old), d.both + len(d.only_new)
        table.add_row(name, f"{old:,}", f"{new:,}", f"{len(d.only_old):,}",
                      f"{len(d.only_new):,}", f"{d.both:,}")
    console.print(table)
    for name, d in sorted(c.rules.items()):
        for label, recs in (("only in old", d.only_old), ("only in new", d.only_new)):
            if recs:
                console.print(f"[bold]{name}[/bold] {label} ({len(recs):,}), e.g.:",
                              highlight=False)
                for rec in recs[:examples]:
                    console.print("  " + _example(rec), highlight=False, markup=False)


def compare_json(c: CompareResult) -> dict[str, Any]:
    """The backtest as plain data (``--report``): per rule, the alert counts, the per-key
    diff (:func:`keys_json`) and, under ``events``, the pairing by matched
    events with every differing alert and its coordinates."""
    out: dict[str, Any] = {}
    for name, d in sorted(c.rules.items()):
        old, new = c.alerts.get(name, (0, 0))
        out[name] = {
            "alerts": {"old": old, "new": new},
            **keys_json(c.keys.get(name, KeyReport())),
            "events": {
                "only_old": len(d.only_old), "only_new": len(d.only_new), "both": d.both,
                "only_old_alerts": [_plain(r) for r in d.only_old],
                "only_new_alerts": [_plain(r) for r in d.only_new],
            },
        }
    return out


def _plain(rec: dict[str, Any]) -> dict[str, Any]:
    return {"key": rec["key"], "start": rec["start"], "end": rec["end"],
            "timed_out": bool(rec.get("timed_out")), "data": rec["data"],
            "events": [list(c) for c in rec.get("_coords", [])]}
