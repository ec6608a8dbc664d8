"""Kafka mode's plan: which rules read their source topics directly, and which through an
internal repartition topic (Kafka Streams' sub-topologies; Flink's ``keyBy`` shuffle).

A rule is **direct** when every Kafka source it reads declares a ``partition_key`` whose
fields are all among the rule's ``key by`` fields: then every event of one rule key lies in
one partition number ``p`` (co-partitioning), and the task of partition ``p`` sees all of it.
Every other rule is **shuffled**: its events are re-keyed by the rule's key fields and written
to ``<group_id>.repartition.<key fields>``, one topic per distinct *set* of key fields (rules
keyed by the same fields, in any order, share it; an unkeyed rule has one global key and uses
``…repartition.global``, whose records all land in partition 0).  Partition of a record:
``blake2b(canonical JSON of the key values, in sorted field order) mod N`` — deterministic
across processes and runs, unlike Python's ``hash()``.

A rule that reads derived streams (``from NAME`` of an ``emit to stream NAME``) runs in the
tasks of the rules producing them, and only when its key carries theirs
(:mod:`cep.app.kafka_streams`).

Pure: no I/O, no asyncio.  :func:`plan_rules` raises :class:`~cep.errors.ConfigError` for a
rule that cannot be served (it needs repartitioning and ``[kafka] repartition = false``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

import orjson

from cep.app.kafka_streams import Part, place_reader, stream_readers
from cep.compiler.compiled import CompiledRule
from cep.config import SourceConfig
from cep.errors import ConfigError
from cep.event import Event

__all__ = ["Route", "Shuffle", "KafkaPlan", "plan_rules", "partition_for", "canonical_key"]

_BAD_TOPIC_CHARS = re.compile(r"[^A-Za-z0-9._-]")
GLOBAL = "global"
"""The topic suffix of unkeyed rules (one key: everything in partition 0)."""


@dataclass(frozen=True)
class Route:
    """How one rule's events reach its operator: ``topic`` ``None`` is direct, else the
    repartition topic; ``reason`` says why, for logs and ``cep check``."""

    rule: str
    key: tuple[str, ...]
    topic: str | None
    reason: str

    def line(self) -> str:
        """``rule brute_force (key user.name): direct — …`` / ``… via topic T — …``."""
        key = ", ".join(self.key) or "none"
        path = "direct" if self.topic is None else f"via {self.topic}"
        return f"rule {self.rule} (key {key}): {path} ({self.reason})"


@dataclass
class Shuffle:
    """One repartition topic: the key fields (sorted), the rules it feeds, and the source
    names whose events it carries (a rule with ``sources`` ``None`` reads every source)."""

    topic: str
    key: tuple[str, ...]
    rules: list[CompiledRule] = field(default_factory=list)
    sources: set[str] = field(default_factory=set)

    def wants(self, ev: Event) -> bool:
        """Whether some rule of this topic could read ``ev`` (its source, its header
        ``where``): events no rule reads are not shipped."""
        src = ev.source
        for rule in self.rules:
            if rule.sources is not None and src not in rule.sources:
                continue
            if rule.header_filter is None or rule.header_filter(ev):
                return True
        return False

    def partition(self, data: dict[str, Any], partitions: int) -> int:
        """The repartition partition of an event (``data``: its decoded object)."""
        rule = self.rules[0]
        return partition_for(canonical_key(rule.key_fn(data), rule.key_names, self.key),
                             partitions)


@dataclass
class KafkaPlan:
    """Routes of every rule (in rule order), the repartition topics (sorted by name), and
    the rules the source tasks run themselves."""

    routes: list[Route]
    shuffles: list[Shuffle]
    direct: list[CompiledRule]

    def by_topic(self) -> dict[str, Shuffle]:
        return {s.topic: s for s in self.shuffles}

    def for_source(self, source: str) -> list[Shuffle]:
        """The repartition topics fed by ``source`` (a source name)."""
        return [s for s in self.shuffles if source in s.sources]

    def lines(self) -> list[str]:
        """One line per rule, as logged at start and printed by ``cep check --config``."""
        return [r.line() for r in self.routes]

    def as_dict(self) -> dict[str, Any]:
        """For ``/status``: ``{"rules": {name: {"key", "path"}}, "repartition_topics":
        {topic: {"key", "rules", "sources"}}}``."""
        return {
            "rules": {r.rule: {"key": list(r.key), "path": r.topic or "direct"}
                      for r in self.routes},
            "repartition_topics": {
                s.topic: {"key": list(s.key), "rules": [r.name for r in s.rules],
                          "sources": sorted(s.sources)} for s in self.shuffles},
        }


def plan_rules(sources: list[SourceConfig], rules: list[CompiledRule], group_id: str,
               repartition: bool = True) -> KafkaPlan:
    """Decide each rule's path (see the module docstring).  ``sources``: the Kafka sources.

    Raises :class:`ConfigError` naming every rule that needs a repartition topic when
    ``repartition`` is false."""
    by_name = {s.name: s for s in sources}
    routes: list[Route] = []
    direct: list[CompiledRule] = []
    shuffled: list[tuple[CompiledRule, tuple[str, ...], list[str]]] = []
    refused: list[str] = []
    producers, readers = stream_readers(rules)
    reading = {r.name for r in readers}
    parts: dict[str, Part] = {}  # (rule → the key fields deciding its task, for readers)
    for rule in rules:
        if rule.name in reading:
            continue  # (placed with the producers of its streams, below)
        key = tuple(rule.key_names)
        read = [n for n in (sorted(by_name) if rule.sources is None else sorted(rule.sources))
                if n in by_name]
        unserved = [n for n in read if not _co_partitioned(by_name[n], key)]
        if not unserved:
            pks = {tuple(by_name[n].partition_key or ()) for n in read}
            parts[rule.name] = pks.pop() if len(pks) == 1 else () if not pks else None
            direct.append(rule)
            why = ("its sources are keyed by " + "; ".join(
                f"{n}: {', '.join(by_name[n].partition_key or ())}" for n in read)
                if read else "it reads no Kafka source")
            routes.append(Route(rule.name, key, None, why))
            continue
        if not repartition:
            refused.append(f"rule {rule.name} (key {', '.join(key) or 'none'}) reads "
                           + ", ".join(f"{n} ({_keyed(by_name[n])})" for n in unserved))
        shuffled.append((rule, key, read))
    if refused:
        raise ConfigError("[kafka] repartition = false, but these rules need their events "
                          "re-keyed (a source's partition_key must be among the rule's key "
                          "fields): " + "; ".join(refused))
    topics = _topic_names(group_id, sorted({tuple(sorted(k)) for _, k, _ in shuffled}))
    shuffles: dict[tuple[str, ...], Shuffle] = {}
    for rule, key, read in shuffled:
        skey = tuple(sorted(key))
        sh = shuffles.setdefault(skey, Shuffle(topics[skey], skey))
        sh.rules.append(rule)
        sh.sources.update(read)
        parts[rule.name] = skey
        why = "; ".join(f"{n}: {_keyed(by_name[n])}" for n in read
                        if not _co_partitioned(by_name[n], key))
        routes.append(Route(rule.name, key, sh.topic, why))
    if readers:
        _place_readers(readers, producers, routes, direct, shuffles, parts)
    order = {r.name: i for i, r in enumerate(rules)}
    routes.sort(key=lambda r: order[r.rule])
    return KafkaPlan(routes, sorted(shuffles.values(), key=lambda s: s.topic), direct)


def _place_readers(readers: list[CompiledRule], producers: dict[str, list[CompiledRule]],
                   routes: list[Route], direct: list[CompiledRule],
                   shuffles: dict[tuple[str, ...], Shuffle], parts: dict[str, Part]) -> None:
    """Add the rules reading derived streams to the tasks of their producers
    (:mod:`cep.app.kafka_streams`), each after the rules it reads; raises
    :class:`ConfigError` with every reason a reader cannot be placed."""
    placed = {r.rule: (r.topic, parts[r.rule]) for r in routes}
    by_topic = {sh.topic: sh for sh in shuffles.values()}
    pending, refused = list(readers), []
    while pending:
        left = []
        for rule in pending:
            at = place_reader(rule, producers, placed)
            if at is None:
                left.append(rule)
            elif at.refused is not None:
                refused.append(at.refused)
                placed[rule.name] = (None, None)
            else:
                placed[rule.name] = (at.topic, at.part)
                (direct if at.topic is None else by_topic[at.topic].rules).append(rule)
                routes.append(Route(rule.name, tuple(rule.key_names), at.topic, at.reason))
        if len(left) == len(pending):
            refused += [f"rule {r.name} reads derived streams in a cycle" for r in left]
            break
        pending = left
    if refused:
        raise ConfigError("derived streams need their producers and readers in one task: "
                          + "; ".join(refused))


def _co_partitioned(source: SourceConfig, key: tuple[str, ...]) -> bool:
    pk = source.partition_key
    return pk is not None and set(pk) <= set(key)


def _keyed(source: SourceConfig) -> str:
    if source.partition_key is None:
        return "no partition_key"
    return "partitioned by " + ", ".join(source.partition_key)


def _topic_names(group_id: str, keys: list[tuple[str, ...]]) -> dict[tuple[str, ...], str]:
    """``<group>.repartition.<fields joined by '-'>`` per key (characters a topic name may
    not hold become ``_``; two keys that would collide, or a name over 249 characters, get a
    short hash of the key instead)."""
    names: dict[tuple[str, ...], str] = {}
    for key in keys:
        suffix = _BAD_TOPIC_CHARS.sub("_", "-".join(key)) if key else GLOBAL
        names[key] = f"{group_id}.repartition.{suffix}"
    counts: dict[str, int] = {}
    for n in names.values():
        counts[n] = counts.get(n, 0) + 1
    for key, n in list(names.items()):
        if counts[n] > 1 or len(n) > 249:
            digest = hashlib.blake2b(orjson.dumps(list(key)), digest_size=6).hexdigest()
            names[key] = f"{group_id}.repartition.{digest}"
    return names


def canonical_key(value: Hashable, names: tuple[str, ...], order: tuple[str, ...]) -> bytes:
    """The canonical bytes of a rule key (``value`` from the rule's ``key_fn``, fields
    ``names``) with its fields in ``order``: values equal as Python keys give equal bytes
    (``True`` ≡ ``1``, ``2.0`` ≡ ``2``, tuples as lists)."""
    if not names:
        return b"[]"
    values = (value,) if len(names) == 1 else tuple(value)  # type: ignore[arg-type]
    if len(names) > 1 and order != names:
        pos = {n: i for i, n in enumerate(names)}
        values = tuple(values[pos[n]] for n in order)
    return orjson.dumps([_canon(v) for v in values])


def _canon(v: Any) -> Any:
    t = type(v)
    if t is bool:
        return int(v)
    if t is float and v.is_integer() and abs(v) < 2 ** 63:
        return int(v)
    if t is tuple or t is list:
        return [_canon(x) for x in v]
    if v is None or t is int or t is str or t is float:
        return v
    return repr(v)


def partition_for(key: bytes, partitions: int) -> int:
    """``blake2b-64(key) mod partitions``: stable across processes, versions and hosts."""
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") % partitions
