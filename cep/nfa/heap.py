"""A binary heap that orders ties exactly as ``java.util.PriorityQueue`` does.

Flink's NFA keeps partial and completed matches in ``PriorityQueue``s and *iterates* them in
array order; the order of equal-priority entries is observable (which of several matches that
start at one event is emitted first, and so which one prunes the others under a skip
strategy).  This class replays the JDK 17 algorithms (``siftUp``, ``siftDown``, ``poll``,
``removeAll`` = compact then ``heapify``) so that our order is Flink's order.

Entries must have a ``ck`` attribute: the sort key (a tuple), smaller first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

__all__ = ["JavaHeap", "offer", "heapify"]


class JavaHeap:
    """Min-heap over ``entry.ck`` with Java's tie behaviour.  Iteration is in array order."""

    __slots__ = ("a",)

    def __init__(self, items: Iterable[Any] = ()) -> None:
        self.a: list[Any] = []
        for item in items:
            self.offer(item)

    def __len__(self) -> int:
        return len(self.a)

    def __bool__(self) -> bool:
        return bool(self.a)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.a)

    def offer(self, x: Any) -> None:
        """Insert ``x`` (JDK ``offer`` → ``siftUp``)."""
        offer(self.a, x)

    def peek(self) -> Any:
        return self.a[0] if self.a else None

    def poll(self) -> Any:
        """Remove and return the head (JDK ``poll``: last element sifted down from the root)."""
        a = self.a
        result = a[0]
        last = a.pop()
        if a:
            self._sift_down(0, last)
        return result

    def _sift_down(self, k: int, x: Any) -> None:
        a = self.a
        n = len(a)
        half = n >> 1
        key = x.ck
        while k < half:
            child = 2 * k + 1
            c = a[child]
            right = child + 1
            if right < n and c.ck > a[right].ck:
                child = right
                c = a[child]
            if key <= c.ck:
                break
            a[k] = c
            k = child
        a[k] = x

    def remove_if(self, pred: Callable[[Any], bool]) -> bool:
        """Drop every entry for which ``pred`` holds (JDK ``removeIf``/``removeAll``: the
        survivors keep their array order, then the array is re-heapified)."""
        a = self.a
        kept = [x for x in a if not pred(x)]
        if len(kept) == len(a):
            return False
        heapify(kept)
        self.a = kept
        return True


def offer(a: list[Any], x: Any) -> None:
    """``PriorityQueue.offer`` on a heap array ``a`` ordered by ``.ck`` (JDK ``siftUp``):
    append, then move up while strictly smaller than the parent, so equal keys keep Java's
    positions."""
    a.append(x)
    k = len(a) - 1
    key = x.ck
    while k > 0:
        parent = (k - 1) >> 1
        e = a[parent]
        if key >= e.ck:
            break
        a[k] = e
        k = parent
    a[k] = x


def heapify(a: list[Any]) -> None:
    """Restore the heap order of the array ``a`` in place, as the JDK's ``heapify`` does
    (``siftDown`` of every parent, the last one first; what :meth:`JavaHeap.remove_if`
    does after compacting).  One pass: O(len(a))."""
    n = len(a)
    half = n >> 1
    for i in range(half - 1, -1, -1):
        x = a[i]
        key = x.ck
        k = i
        while k < half:
            child = 2 * k + 1
            c = a[child]
            cck = c.ck
            right = child + 1
            if right < n:
                r = a[right]
                if cck > r.ck:
                    child, c, cck = right, r, r.ck
            if key <= cck:
                break
            a[k] = c
            k = child
        a[k] = x
