"""The compiled form of one rule: everything the operator needs, nothing of the syntax."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from cep.compiler.generated import GeneratedCode
from cep.compiler.window_spec import SuppressSpec, WindowSpec
from cep.event import Event
from cep.nfa.model import NFA

__all__ = ["CompiledRule"]

EmitFn = Callable[[dict[str, list[Event]]], dict[str, Any]]


@dataclass(eq=False)
class CompiledRule:
    """One rule version, compiled.

    Attributes:
        name, version: the rule's name and ``rule_version`` (hash of its canonical text).
        severity: ``info`` … ``critical``.
        sources: source names the rule reads, or ``None`` for every source.
        header_filter: the header ``where`` as ``fn(event) -> bool``, or ``None``.
        key_fn: ``fn(event.data) -> hashable key`` (``None`` fields stay ``None``).
        key_names: names of the key fields for the alert's ``key`` object.
        nfa: the automaton shared by all keys.
        emit_fn / sink: builds the alert ``data`` from ``{stage: [events]}``; its sink.
        timeout_emit_fn / timeout_sink: the same for ``on timeout emit`` (``None``: timed-out
            partial matches are dropped silently, as Flink does without a timeout handler).
        file, line: where the rule was defined.
        text: the rule's canonical text (its version is the hash of it); checkpoints keep it
            so that a restart can drain the partial matches of a version no longer on disk.
        key_code, header_code: what the compiler knows of ``key_fn`` and ``header_filter``
            (:class:`~cep.compiler.generated.GeneratedCode`: key paths, inlinable form,
            predicate); ``None`` for hand-made functions, which the fast paths then call as
            they are.
        window: the sliding window of a ``having`` / ``all of`` rule, which decides which of
            the automaton's one-event matches become alerts (``None``: every match does).
        suppress: ``suppress for`` (``None``: every alert is emitted).
    """

    name: str
    version: str
    severity: str
    sources: frozenset[str] | None
    header_filter: Callable[[Event], bool] | None
    key_fn: Callable[[dict[str, Any]], Hashable]
    key_names: tuple[str, ...]
    nfa: NFA
    emit_fn: EmitFn | None
    sink: str = "alerts"
    timeout_emit_fn: EmitFn | None = None
    timeout_sink: str = "alerts"
    file: str = ""
    line: int = 0
    description: str | None = None
    tags: tuple[str, ...] = ()
    text: str = ""
    key_code: GeneratedCode | None = None
    header_code: GeneratedCode | None = None
    window: WindowSpec | None = None
    suppress: SuppressSpec | None = None

    @property
    def key_paths(self) -> tuple[tuple[str, ...], ...] | None:
        """The key's field paths (one tuple of parts per field; ``()`` unkeyed), or ``None``
        for a hand-made key function."""
        return self.key_code.key_paths if self.key_code is not None else None
