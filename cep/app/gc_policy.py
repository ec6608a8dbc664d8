"""The garbage-collector policy of a long run (``cep run``, the Kafka mode, the benchmarks)."""

from __future__ import annotations

import gc

__all__ = ["collect_less"]


def collect_less() -> None:
    """Tune CPython's cyclic garbage collector for a long run (the process is ours).

    The engine allocates short-lived containers for every event (decoded objects, partial
    matches) and keeps long-lived ones (compiled rules, per-key state).  With CPython's
    default thresholds (700, 10, 10) the youngest generation is collected every 700 net
    container allocations, and the full collections that follow traverse every key's state.
    The objects made so far (modules, grammar tables, rules) are frozen — never garbage, no
    longer traversed — and the youngest generation is collected every 20,000 allocations.
    Cycles are still collected; acyclic garbage is freed by reference counting as always.
    Changes the interpreter's collector settings for the rest of the process."""
    gc.freeze()
    gc.set_threshold(20_000, 20, 10)
