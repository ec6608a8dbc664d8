"""Rule versions in a running operator: replacing the rule set while keeping partial matches.

The policy (see ``docs/operations.md``), applied by :func:`apply_rule_set` between two events:

* **unchanged** (same name, same ``rule_version``): the rule's state is kept as it is, so its
  partial matches go on as if nothing happened; what the version does not cover (metadata
  edits: description, severity, tags, references, author) takes effect at once
  (:meth:`~cep.operator.key_store.RuleState.adopt`);
* **changed** (same name, new version): the new version starts at once with empty state; the
  old version *drains* — it keeps the partial matches it holds and finishes them (they
  complete or time out under ``within``) but starts no new ones — and disappears when its last
  partial match is gone.  Partial matches no ``within`` bounds could wait forever: they are
  dropped and counted instead;
* **added**: a new rule starts with empty state;
* **removed**: the rule's state (and that of any draining version of it) is dropped and counted.

A draining version whose version comes back (an edit that is undone) is *revived*: it becomes
the active version again, keeps its partial matches and starts new ones.  What draining and
reviving do to a version's keys is the key store's
(:meth:`~cep.operator.key_store.RuleState.start_draining`,
:meth:`~cep.operator.key_store.RuleState.revive`); this module decides which versions.

Layer 3: plain data, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from cep.compiler.compiled import CompiledRule
from cep.operator.key_store import RuleState

__all__ = ["ReloadReport", "apply_rule_set"]


@dataclass
class ReloadReport:
    """What one change of rule set did to one operator (or, merged, to several).

    ``added``, ``changed``, ``unchanged``, ``removed`` are rule names; ``drained`` lists
    ``"name@old_version"`` for each old version now draining and ``revived`` each draining
    version made active again.  ``partial_kept`` counts partial matches that live on
    (unchanged rules and draining versions), ``partial_dropped`` and ``keys_dropped`` what was
    discarded (removed rules, partial matches no ``within`` bounds).  ``versions`` maps each
    active rule to its version; ``events_in`` is how many events the operator had accepted
    when the change took effect (summed when merged); ``positions`` is filled by callers that
    know where each input stood (input → next offset), so a run can be replayed offline."""

    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    drained: list[str] = field(default_factory=list)
    revived: list[str] = field(default_factory=list)
    partial_kept: int = 0
    partial_dropped: int = 0
    keys_dropped: int = 0
    versions: dict[str, str] = field(default_factory=dict)
    events_in: int = 0
    positions: dict[str, int] = field(default_factory=dict)

    def merge(self, other: ReloadReport) -> None:
        """Add ``other`` (the same change applied to another operator) into this report."""
        for name in ("added", "changed", "unchanged", "removed", "drained", "revived"):
            mine: list[str] = getattr(self, name)
            mine.extend(x for x in getattr(other, name) if x not in mine)
        self.partial_kept += other.partial_kept
        self.partial_dropped += other.partial_dropped
        self.keys_dropped += other.keys_dropped
        self.versions.update(other.versions)
        self.events_in += other.events_in
        self.positions.update(other.positions)

    def as_dict(self) -> dict[str, Any]:
        """Plain data for logs and ``/status``."""
        return {
            "added": sorted(self.added), "changed": sorted(self.changed),
            "unchanged": sorted(self.unchanged), "removed": sorted(self.removed),
            "drained": sorted(self.drained), "revived": sorted(self.revived),
            "partial_matches_kept": self.partial_kept,
            "partial_matches_dropped": self.partial_dropped,
            "keys_dropped": self.keys_dropped, "versions": dict(sorted(self.versions.items())),
            "events_in": self.events_in, "positions": dict(sorted(self.positions.items())),
        }


def apply_rule_set(current: list[RuleState], rules: Iterable[CompiledRule],
                   make: Callable[[CompiledRule], RuleState],
                   retire: Callable[[RuleState], None], events_in: int = 0
                   ) -> tuple[list[RuleState], ReloadReport]:
    """Replace the rule states ``current`` by states for ``rules`` under the policy of this
    module: ``make(rule)`` gives a new, empty state, ``retire(state)`` is told of each version
    that goes away (its counters), ``events_in`` is recorded in the report.  Returns the new
    rule state list (active versions in ``rules`` order, then the draining ones) and what
    changed.  Call it between two events (never from inside the operator)."""
    report = ReloadReport(events_in=events_in)
    active = {rs.rule.name: rs for rs in current if not rs.draining}
    draining = [rs for rs in current if rs.draining]
    states: list[RuleState] = []
    for rule in rules:
        report.versions[rule.name] = rule.version
        cur = active.pop(rule.name, None)
        if cur is not None and cur.rule.version == rule.version:
            cur.adopt(rule)  # a metadata edit: the partial matches go on, with its metadata
            report.unchanged.append(rule.name)
            report.partial_kept += cur.partial_matches()
            states.append(cur)
            continue
        back = next((d for d in draining
                     if d.rule.name == rule.name and d.rule.version == rule.version), None)
        if back is not None:
            draining.remove(back)
            back.revive()
            report.revived.append(f"{rule.name}@{rule.version}")
            states.append(back)
        else:
            states.append(make(rule))
        if cur is None:
            report.added.append(rule.name)
            continue
        report.changed.append(rule.name)
        kept, dropped, keys_dropped = cur.start_draining()
        report.partial_kept += kept
        report.partial_dropped += dropped
        report.keys_dropped += keys_dropped
        if cur.keys:
            report.drained.append(f"{cur.rule.name}@{cur.rule.version}")
            draining.append(cur)
        else:
            retire(cur)
    names = set(report.versions)
    for rs in [*active.values(), *(d for d in draining if d.rule.name not in names)]:
        if not rs.draining:
            report.removed.append(rs.rule.name)
        report.partial_dropped += rs.partial_matches()
        report.keys_dropped += len(rs.keys)
        retire(rs)
    return states + [d for d in draining if d.rule.name in names], report
