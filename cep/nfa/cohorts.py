"""Which partial matches the per-key cap (``max_partial_matches_per_key``) evicts.

A *cohort* is the set of partial matches of one key that started at the same event (the same
``ck``, first event time and arrival).  The cap evicts whole cohorts, never part of one: under
``skip past last event`` a cohort emits at most one match, and which of its members emits it
is decided among all of them (docs/semantics.md, *Cohorts under skip past last event*), so a
cohort cut in part could emit a match no unbounded run emits.  Victims are taken from the
middle of start order outward: the oldest cohorts (the earliest evidence of what a match will
report) and the newest (the ones that can still complete inside the window) are kept longest.
When only the oldest and the newest are left, the oldest goes first, so that doomed old
partial matches cannot hold the cap until no new match can start.  The argument is in
docs/semantics.md (*The per-key cap*).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cep.nfa.heap import heapify

__all__ = ["eviction_order", "evict_cohorts"]


def eviction_order(m: int) -> list[int]:
    """The order in which the cohorts ``0 … m-1`` (in start order, oldest first) are evicted:
    the inner ones by their distance from the middle (the later first at equal distance),
    then the oldest, then the newest.  ``eviction_order(5) == [2, 3, 1, 0, 4]``."""
    if m <= 0:
        return []
    if m == 1:
        return [0]
    inner = sorted(range(1, m - 1), key=lambda j: (abs(2 * j - (m - 1)), -j))
    inner += [0, m - 1]
    return inner


def evict_cohorts(a: Sequence[Any], n: int) -> tuple[list[Any], int]:
    """Drop whole cohorts of the heap array ``a`` (entries with ``ck`` and ``node``; the
    start computation, ``node`` ``None``, is never dropped) holding at least ``n`` partial
    matches in all, in :func:`eviction_order`, as few cohorts as that order allows.

    Returns ``(array, dropped)``: the survivors in their array order, re-heapified as Java's
    ``removeIf`` leaves them, and how many partial matches were dropped (0 and ``a`` as a new
    list when ``n <= 0``).  One pass over ``a`` to size the cohorts, a sort of the cohorts'
    keys (not of the partial matches), one pass to remove: O(len(a) + m log m) for m
    cohorts."""
    if n <= 0:
        return list(a), 0
    sizes: dict[Any, int] = {}
    for c in a:
        if c.node is not None:
            ck = c.ck
            sizes[ck] = sizes.get(ck, 0) + 1
    starts = sorted(sizes)
    victims: set[Any] = set()
    dropped = 0
    for j in eviction_order(len(starts)):
        if dropped >= n:
            break
        ck = starts[j]
        victims.add(ck)
        dropped += sizes[ck]
    kept = [c for c in a if c.node is None or c.ck not in victims]
    heapify(kept)
    return kept, dropped
