"""The state linter: how the live partial matches of one key can grow with the events of one
window, per rule, from the pattern's shape alone.

Classes, by the growth in ``n`` (events of one key within one window):

* ``constant``: no stage waits unboundedly: every stage after the first is strict (``next``)
  and no stage loops without bound (``times N`` may be relaxed: each event that matches it
  advances every waiting match at once);
* ``linear``: each event may start a match that waits (a ``followed by``, or an unbounded loop);
* ``quadratic`` and beyond: besides, a stage branches on every event it matches, leaving a
  copy behind for each: an unbounded loop that is not ``greedy`` and not the last stage
  (``times 3 or more`` then ``followed by``: after each of the loop's events a copy of the run
  also waits at the next stage; ``consecutive`` and skip strategies do not change that), or
  ``followed by any``; each such stage adds one to the degree;
* ``exponential``: an unbounded loop with ``allow combinations`` (every subset of its events).

A superlinear rule gets a warning at the stage that makes it so, naming the fixes
(``greedy``, ``followed by`` for ``followed by any``, a tighter window).  Measured on
synthetic bursts in ``tests/lang/test_lint.py`` (``CepOperator.stats()``).
"""

from __future__ import annotations

from dataclasses import dataclass

from cep.diagnostics import Diagnostic
from cep.lang.ast import Rule, RuleFile, Stage
from cep.lang.check import all_stages

__all__ = ["StateGrowth", "state_growth", "lint_files"]

_LOOPING = ("one_or_more", "times_or_more")
_NOT = ("not_next", "not_followed_by")
_NAMES = {0: "constant", 1: "linear", 2: "quadratic", 3: "cubic"}


@dataclass(frozen=True)
class StateGrowth:
    """A rule's worst-case live partial matches per key as a function of the events of one
    window: ``degree`` (0 constant, 1 linear, 2 quadratic, …; ``None`` exponential) and the
    stages that raise it above linear, in source order."""

    degree: int | None
    culprits: tuple[Stage, ...] = ()

    @property
    def name(self) -> str:
        """``constant``, ``linear``, ``quadratic``, ``cubic``, ``polynomial (degree k)`` or
        ``exponential``."""
        if self.degree is None:
            return "exponential"
        return _NAMES.get(self.degree, f"polynomial (degree {self.degree})")


def _loops(st: Stage) -> bool:
    quant = st.quantifier
    return quant is not None and quant.kind in _LOOPING


def state_growth(rule: Rule) -> StateGrowth:
    """The :class:`StateGrowth` of ``rule`` (groups count as their inner stages)."""
    stages = [st for st in all_stages(rule.pattern) if st.contiguity not in _NOT]
    waits = any(_loops(st) or st.contiguity in ("followed_by", "followed_by_any")
                for st in stages)
    degree = 1 if waits else 0
    culprits: list[Stage] = []
    last = stages[-1] if stages else None
    for st in stages:
        if _loops(st) and st.allow_combinations:
            return StateGrowth(None, (st,))
        # a loop that is not greedy leaves, after each of its events, a copy of the run
        # waiting at the next stage (measured: `consecutive` and skip strategies do not
        # change it; `greedy` does); a last loop's copies are matches, not partial ones
        branches = _loops(st) and not st.greedy and st is not last
        if branches or st.contiguity == "followed_by_any":
            degree += 1
            culprits.append(st)
    return StateGrowth(degree, tuple(culprits))


def _warning(file: str, rule: Rule, growth: StateGrowth) -> Diagnostic:
    st = growth.culprits[0]
    if _loops(st):
        why = (f"every subset of the events of the looping stage `{st.name}` stays alive"
               if growth.degree is None else
               f"the looping stage `{st.name}` is not greedy: after each of its events a copy "
               "of the run also waits at the next stage")
        fix = (f"make `{st.name}` `greedy`" if growth.degree is not None else
               f"drop `allow combinations` from `{st.name}`")
    else:
        why = f"`followed by any` stage `{st.name}` branches on every event it matches"
        fix = f"use `followed by` for `{st.name}`"
    return Diagnostic(file, st.name_span,
                      f"rule `{rule.name}`: live partial matches per key grow {_adverb(growth)} "
                      f"with the events of one window: {why}",
                      "warning",
                      f"{fix}, or tighten the `within` (`consecutive` and skip strategies do "
                      "not bound it)")


def _adverb(growth: StateGrowth) -> str:
    return {"quadratic": "quadratically", "cubic": "cubically",
            "exponential": "exponentially"}.get(growth.name, f"as a {growth.name}")


def lint_files(files: list[RuleFile]) -> list[Diagnostic]:
    """A warning for every rule of ``files`` whose state grows faster than linearly."""
    out = []
    for rf in files:
        for rule in rf.rules:
            growth = state_growth(rule)
            if growth.degree is None or growth.degree > 1:
                out.append(_warning(rf.path, rule, growth))
    return out
