"""Language-independent description of a pattern, mirroring Flink CEP's Pattern API.

This is what :mod:`cep.nfa.compile` turns into an automaton.  The rule-language compiler
builds it from the AST; tests build it directly.  Plain frozen data.

A :class:`Condition` wraps a predicate ``fn(event, partial) -> bool`` where ``event`` is the
:class:`cep.event.Event` under test and ``partial`` is the partial match so far (a
:class:`PartialMatchNode` chain, newest first, or ``None``), never including the event under
test — Flink's ``IterativeCondition.Context.getEventsForPattern``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Condition", "TRUE", "PartialMatchNode", "Quantifier", "StageSpec", "PatternSpec",
    "events_of", "match_map",
]


class PartialMatchNode:
    """One event taken into a partial match: a persistent (immutable, shared) linked list.

    Branches of a partial match share their common prefix, so this list *is* the shared
    buffer: taking an event allocates one node and copies nothing.  ``stage`` is the name of
    the stage (pattern) that took ``event``; ``prev`` is the previously taken node.  The one
    change a node ever sees: the operator may replace ``event`` by its compact
    :class:`~cep.event.HeldEvent` form, which reads the same.
    """

    __slots__ = ("stage", "event", "prev")

    def __init__(self, stage: str, event: Any, prev: PartialMatchNode | None) -> None:
        self.stage = stage
        self.event = event
        self.prev = prev


def events_of(node: PartialMatchNode | None, stage: str) -> list[Any]:
    """Events taken by ``stage`` in the partial match ending at ``node``, oldest first."""
    out = []
    while node is not None:
        if node.stage == stage:
            out.append(node.event)
        node = node.prev
    out.reverse()
    return out


def match_map(node: PartialMatchNode | None) -> dict[str, list[Any]]:
    """The whole partial match as ``{stage: [events oldest first]}``, stages in match order."""
    chain = []
    while node is not None:
        chain.append(node)
        node = node.prev
    out: dict[str, list[Any]] = {}
    for n in reversed(chain):
        out.setdefault(n.stage, []).append(n.event)
    return out


Predicate = Callable[[Any, "PartialMatchNode | None"], bool]


@dataclass(frozen=True, eq=False)
class Condition:
    """A stage condition.

    ``fn(event, partial)`` returns a bool and never raises.  ``label`` is shown by ``cep
    explain``.  ``iterative`` is true when ``fn`` reads ``partial`` (aggregates or stage
    references); a non-iterative condition's result depends on the event alone, which lets the
    matcher evaluate it once per event.
    """

    fn: Predicate
    label: str = "true"
    iterative: bool = False
    always: bool = False  # the constant ``true`` (a stage with no ``where``)
    code: object = None
    """What the rule compiler knows of ``fn`` (its
    :class:`~cep.compiler.generated.GeneratedCode`); the automaton never reads it."""


TRUE = Condition(lambda e, p: True, "true", False, True)


@dataclass(frozen=True)
class Quantifier:
    """How many events a stage takes.

    ``kind``: ``single``, ``times`` (exactly ``min``), ``times_range`` (``min``..``max``),
    ``times_or_more`` (``min``..∞), ``one_or_more`` (1..∞).  ``inner`` is the contiguity
    *between* the stage's own events: ``relaxed`` (Flink's default skip-till-next),
    ``consecutive`` (strict) or ``allow_combinations`` (skip-till-any).
    """

    kind: str = "single"
    min: int = 1
    max: int | None = 1
    inner: str = "relaxed"

    @property
    def looping(self) -> bool:
        return self.kind in ("one_or_more", "times_or_more")

    @property
    def is_times(self) -> bool:
        return self.kind in ("times", "times_range")


SINGLE = Quantifier()


@dataclass(frozen=True, eq=False)
class StageSpec:
    """One stage of a pattern (Flink: one ``Pattern`` in the chain, or a ``GroupPattern``).

    ``contiguity`` is its relation to the previous stage: ``begin``, ``next``,
    ``followed_by``, ``followed_by_any``, ``not_next``, ``not_followed_by``.  A group stage has
    ``group`` (its sub-pattern's stages) and ``condition`` ``TRUE``.  ``within_ms`` is a
    stage-level window (Flink's ``WithinType.PREVIOUS_AND_CURRENT``).
    """

    name: str
    contiguity: str
    condition: Condition = TRUE
    quantifier: Quantifier = SINGLE
    optional: bool = False
    greedy: bool = False
    until: Condition | None = None
    within_ms: int | None = None
    group: tuple[StageSpec, ...] | None = None


@dataclass(frozen=True, eq=False)
class PatternSpec:
    """A whole pattern: stages in order, the pattern window (FIRST_AND_LAST, ms) and the
    after-match skip strategy (``no_skip``, ``skip_to_next``, ``skip_past_last_event``,
    ``skip_to_first``, ``skip_to_last``; the last two name ``skip_stage``)."""

    stages: tuple[StageSpec, ...]
    within_ms: int | None = None
    skip: str = "no_skip"
    skip_stage: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
