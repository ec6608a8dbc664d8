"""The compiled form of one rule: everything the operator needs, nothing of the syntax."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from cep.compiler.generated import GeneratedCode
from cep.compiler.requirement import Clauses
from cep.compiler.window_spec import SuppressSpec, WindowSpec
from cep.event import Event
from cep.lang.lists import ListData
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
        description, tags, references, author: the rule's metadata; with ``severity`` they
            take no part in ``version`` (see :attr:`meta`).
        text: the rule's canonical text (its version is the hash of the part without the
            metadata, :func:`~cep.lang.format.matching_text`); checkpoints keep it
            so that a restart can drain the partial matches of a version no longer on disk.
        lists: the lists and tables of its file the rule uses, by name (what its compiled
            code reads; a reload that keeps the version hands them new contents).
        key_code, header_code: what the compiler knows of ``key_fn`` and ``header_filter``
            (:class:`~cep.compiler.generated.GeneratedCode`: key paths, inlinable form,
            predicate); ``None`` for hand-made functions, which the fast paths then call as
            they are.
        window: the sliding window of a ``having`` / ``all of`` rule, which decides which of
            the automaton's one-event matches become alerts (``None``: every match does).
        suppress: ``suppress for`` (``None``: every alert is emitted).
        stream: whether ``sink`` is a derived stream (``emit to stream``): each match record
            is then an event of that stream for the rules reading it, not an output.
        carried: ``(data field, key name)`` pairs of such a rule: the fields of its records
            that hold its key's values (:func:`~cep.compiler.stream_keys.carried_keys`).
        start_clauses: what an event must carry for the rule's start to take it, for the
            rule index (:func:`~cep.compiler.requirement.start_clauses`; ``()``: the rule
            is offered every event).
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
    references: tuple[str, ...] = ()
    author: str | None = None
    text: str = ""
    key_code: GeneratedCode | None = None
    header_code: GeneratedCode | None = None
    window: WindowSpec | None = None
    suppress: SuppressSpec | None = None
    lists: tuple[tuple[str, ListData], ...] = ()
    stream: bool = False
    carried: tuple[tuple[str, str], ...] = ()
    start_clauses: Clauses = ()

    @property
    def meta(self) -> dict[str, Any]:
        """The alert's ``meta`` object: the metadata clauses the rule gives
        (``description``, ``tags``, ``references``, ``author``), absent ones left out."""
        meta: dict[str, Any] = {}
        if self.description is not None:
            meta["description"] = self.description
        if self.tags:
            meta["tags"] = list(self.tags)
        if self.references:
            meta["references"] = list(self.references)
        if self.author is not None:
            meta["author"] = self.author
        return meta

    @property
    def key_paths(self) -> tuple[tuple[str, ...], ...] | None:
        """The key's field paths (one tuple of parts per field; ``()`` unkeyed), or ``None``
        for a hand-made key function."""
        return self.key_code.key_paths if self.key_code is not None else None
