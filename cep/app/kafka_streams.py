"""Kafka mode's plan for derived streams (``emit to stream NAME`` / ``from NAME``).

A derived record is dispatched inside the operator that made it (:mod:`cep.operator.derived`):
it is never written to a topic, so it is processed exactly once exactly when the event that
produced it is, and a checkpoint covers it with that event's offset.  That needs the rules
reading a stream to run in the same task as every rule that produces it, and that task to see
every record of each of their keys.  The plan therefore:

* puts a rule that reads derived streams where their producers run (the source tasks, or the
  tasks of one repartition topic); producers of one stream on different paths (direct and
  re-keyed, or two repartition topics) are refused;
* requires the reader's key to carry each producer's key: for every key field ``k`` of a
  producer, the reader is keyed by ``key.k`` (the record's ``key`` object) or by
  ``data.n`` where the producer emits ``n: <stage>.k`` (:attr:`CompiledRule.carried`).  Then
  all records of one reader key come from one key of each producer, hence from one task.

A plan that cannot do this is refused with the reason (:class:`~cep.errors.ConfigError`).
Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from cep.compiler.compiled import CompiledRule

__all__ = ["StreamPlacement", "stream_readers", "place_reader"]


Part = tuple[str, ...] | None
"""The key fields (names of the rule's ``key`` object) whose values decide the task of a
rule's key, in the order the partitioner reads them; ``None`` when no one list does (a direct
rule reading sources partitioned by different fields)."""


@dataclass(frozen=True)
class StreamPlacement:
    """Where a reader of derived streams runs: ``topic`` ``None`` (the source tasks) or a
    repartition topic, and its :data:`Part`; ``reason`` for the plan's line, or ``refused``
    (the reason it cannot run in Kafka mode)."""

    topic: str | None = None
    part: Part = ()
    reason: str = ""
    refused: str | None = None


def stream_readers(rules: list[CompiledRule]) -> tuple[dict[str, list[CompiledRule]],
                                                        list[CompiledRule]]:
    """The derived streams of ``rules`` with their producers, and the rules that read
    them (every source they name is a derived stream), in rule order."""
    producers: dict[str, list[CompiledRule]] = {}
    for r in rules:
        if r.stream:
            producers.setdefault(r.sink, []).append(r)
    readers = [r for r in rules if r.sources and all(s in producers for s in r.sources)]
    return producers, readers


def _carrier(reader: CompiledRule, producer: CompiledRule, field: str) -> str | None:
    """The reader's key field that holds the producer's key field ``field`` in every record:
    keyed by ``key.<field>``, or by ``data.<n>`` where the producer emits ``n: <stage>.<field>``."""
    paths = reader.key_paths
    if paths is None:
        return None
    by_path = {p[1:] if len(p) > 1 and p[0] == "this" else p: name
               for p, name in zip(paths, reader.key_names, strict=True)}
    found = by_path.get(("key", field))
    if found is not None:
        return found
    return next((by_path[("data", n)] for n, k in producer.carried
                 if k == field and ("data", n) in by_path), None)


def place_reader(reader: CompiledRule, producers: dict[str, list[CompiledRule]],
                 placed: dict[str, tuple[str | None, Part]]) -> StreamPlacement | None:
    """Where ``reader`` runs, given the path and :data:`Part` of every rule placed so far
    (``placed``: rule name → (repartition topic or ``None`` for direct, part)); ``None``
    while a producer of one of its streams is not placed yet.

    Its records of one key all come from one task when every producer's part is carried by
    the reader's key, as the same list of the reader's key fields for every producer."""
    topics: dict[str | None, list[str]] = {}
    parts: dict[Part, list[str]] = {}
    for stream in sorted(reader.sources or ()):
        for p in producers[stream]:
            if p.name not in placed:
                return None
            topic, part = placed[p.name]
            topics.setdefault(topic, []).append(p.name)
            if part is None:
                return StreamPlacement(refused=(
                    f"rule {reader.name} reads stream {stream} of rule {p.name}, which reads "
                    "sources partitioned by different fields"))
            mine = tuple(_carrier(reader, p, f) for f in part)
            missing = [f for f, c in zip(part, mine, strict=True) if c is None]
            if missing:
                f = missing[0]
                return StreamPlacement(refused=(
                    f"rule {reader.name} reads stream {stream} of rule {p.name}, whose tasks "
                    f"are decided by {f}, but its key does not carry {f} (key by key.{f}, or "
                    f"by data.NAME where {p.name} emits NAME: <stage>.{f})"))
            parts.setdefault(mine, []).append(p.name)  # type: ignore[arg-type]
    if len(topics) > 1:
        where = "; ".join(f"{', '.join(n)}: {t or 'direct'}" for t, n in topics.items())
        return StreamPlacement(refused=(
            f"rule {reader.name} reads derived streams whose producers run in different "
            f"tasks ({where}); a stream's producers and readers must run in one operator"))
    if len(parts) > 1:
        where = "; ".join(f"{', '.join(n)} by {', '.join(p or ())}" for p, n in parts.items())
        return StreamPlacement(refused=(
            f"rule {reader.name} reads records whose tasks are decided by different fields of "
            f"its key ({where}): records of one key could come from different tasks"))
    [(topic, names)] = topics.items()
    [part] = parts
    streams = ", ".join(sorted(reader.sources or ()))
    return StreamPlacement(topic, part, f"reads derived stream(s) {streams} in the tasks of "
                                        f"{', '.join(names)}")
