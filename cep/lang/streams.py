"""Derived streams across a rule set: ``emit to stream NAME`` and the rules reading ``from NAME``.

A rule that emits to a stream *produces* it; a rule whose ``from`` names it *reads* it.  The
checks here look at every file of a rule set at once (a stream may be produced in one file and
read in another):

* a rule that reads a derived stream reads derived streams only (``from s, auth`` would mix
  events of two kinds, and the operator dispatches a derived event right after the event that
  produced it, not in an input's order);
* no rule reads, directly or through other rules, a stream it produces (a cycle would turn one
  event into endless derived ones);
* a stream that no rule reads is a warning: its records go nowhere.

Layer 1: pure functions over parsed files.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from cep.diagnostics import Diagnostic
from cep.lang.ast import NOWHERE, Rule, RuleFile, Span
from cep.lang.suggest import did_you_mean

__all__ = ["StreamGraph", "stream_graph", "check_streams", "check_sources"]


@dataclass(frozen=True)
class StreamGraph:
    """Who produces and who reads each derived stream of a rule set.

    Attributes:
        producers: stream name → the names of the rules that emit to it (file order).
        readers: stream name → the names of the rules that read it.
    """

    producers: dict[str, list[str]]
    readers: dict[str, list[str]]


def _produced(rule: Rule) -> str | None:
    emit = rule.match_emit
    return emit.sink if emit is not None and emit.stream else None


def stream_graph(rules: Iterable[Rule]) -> StreamGraph:
    """The derived streams of ``rules`` (parsed rules of every file), their producers and
    readers.  A ``from`` name is a stream's only when some rule produces it."""
    rules = list(rules)
    producers: dict[str, list[str]] = {}
    for rule in rules:
        stream = _produced(rule)
        if stream is not None:
            producers.setdefault(stream, []).append(rule.name)
    readers: dict[str, list[str]] = {s: [] for s in producers}
    for rule in rules:
        for src in rule.sources:
            if src in producers:
                readers[src].append(rule.name)
    return StreamGraph(producers, readers)


def _from_span(rule: Rule) -> Span:
    return dict(rule.spans).get("from", rule.name_span)


def _cycle(start: str, emits: dict[str, str], read_by: dict[str, list[str]]) -> list[str] | None:
    """A path of rule names from ``start`` back to ``start`` through streams, or None."""
    path: list[str] = []
    seen: set[str] = set()

    def walk(name: str) -> bool:
        stream = emits.get(name)
        if stream is None:
            return False
        for nxt in read_by.get(stream, ()):
            if nxt == start:
                path.append(nxt)
                return True
            if nxt in seen:
                continue
            seen.add(nxt)
            path.append(nxt)
            if walk(nxt):
                return True
            path.pop()
        return False

    return [start, *path] if walk(start) else None


def check_streams(files: Iterable[RuleFile]) -> list[Diagnostic]:
    """Errors (and warnings) of the derived streams of a rule set: mixed ``from``, cycles,
    streams nobody reads; each at the ``from`` or ``emit`` it concerns (``file:line:col``)."""
    located = [(rf.path, rule) for rf in files for rule in rf.rules]
    graph = stream_graph(rule for _, rule in located)
    if not graph.producers:
        return []
    out: list[Diagnostic] = []
    emits = {rule.name: s for _, rule in located if (s := _produced(rule)) is not None}
    for path, rule in located:
        read = [s for s in rule.sources if s in graph.producers]
        if read and len(read) != len(rule.sources):
            other = ", ".join(s for s in rule.sources if s not in graph.producers)
            out.append(Diagnostic(
                path, _from_span(rule),
                f"rule `{rule.name}` reads the derived stream `{read[0]}` and the input(s) "
                f"{other}",
                hint="a rule reads either derived streams or inputs; split it into two rules"))
        cycle = _cycle(rule.name, emits, graph.readers) if rule.name in emits else None
        if cycle is not None:
            out.append(Diagnostic(
                path, _from_span(rule) if rule.sources else rule.name_span,
                f"rule `{rule.name}` reads what it emits: " + " → ".join(cycle),
                hint="derived streams must not form a cycle"))
        stream = emits.get(rule.name)
        if stream is not None and not graph.readers.get(stream):
            emit = rule.match_emit
            out.append(Diagnostic(
                path, emit.span if emit is not None else NOWHERE,
                f"no rule reads the stream `{stream}` that rule `{rule.name}` emits to",
                hint="read it with `from " + stream + "`", severity="warning"))
    return out


def check_sources(files: Iterable[RuleFile], inputs: Iterable[str]) -> list[Diagnostic]:
    """Errors for each ``from`` name that is neither one of ``inputs`` (the sources a
    config declares) nor a stream some rule emits to (``emit to stream``), at its ``from``."""
    located = [(rf.path, rule) for rf in files for rule in rf.rules]
    streams = set(stream_graph(rule for _, rule in located).producers)
    known = set(inputs)
    out: list[Diagnostic] = []
    for path, rule in located:
        for src in rule.sources:
            if src in known or src in streams:
                continue
            guess = did_you_mean(src, sorted(known | streams))
            out.append(Diagnostic(
                path, _from_span(rule),
                f"rule `{rule.name}` reads `{src}`, which is neither a source of the config "
                f"({', '.join(sorted(known)) or 'none'}) nor a stream a rule emits to",
                hint=guess or "name a [sources.NAME] of the config, or a rule's "
                              "`emit to stream NAME`"))
    return out
