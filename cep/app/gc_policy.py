"""The garbage-collector policy of a long run (``cep run``, the Kafka mode, the benchmarks)."""

from __future__ import annotations

import gc

__all__ = ["collect_less"]


def collect_less(loading: bool = False) -> None:
    """Tune CPython's cyclic garbage collector for a long run (the process is ours).

    The engine allocates short-lived containers for every event (decoded objects, partial
    matches) and keeps long-lived ones (compiled rules, per-key state).  With CPython's
    default thresholds (700, 10, 10) the youngest generation is collected every 700 net
    container allocations, and the full collections that follow traverse every key's state.
    The objects made so far (modules, grammar tables, rules) are frozen — never garbage, no
    longer traversed — and the youngest generation is collected every 20,000 allocations.
    Cycles are still collected; acyclic garbage is freed by reference counting as always.
    Changes the interpreter's collector settings for the rest of the process.

    ``loading``: rules are about to be loaded, and the call that starts the run follows.
    What a load makes is kept (rules, their automata and code) but for the few cycles the
    parsers leave behind (pySigma's objects point at their parents), so the middle
    generation, where the survivors of young collections wait, is then collected only
    every :data:`LOADING_MIDDLE` young collections: each such collection would traverse
    every rule made so far.  The cycles left in it are frozen with the rules when the run
    starts (thousands of objects for thousands of Sigma rules)."""
    gc.freeze()
    gc.set_threshold(20_000, LOADING_MIDDLE if loading else 20, 10)


LOADING_MIDDLE = 1000
"""Young collections per collection of the middle generation while rules load."""
