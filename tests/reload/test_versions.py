"""Rule versions inside one operator: what a reload keeps, drains, starts and drops.

The property test at the end checks the whole policy against an independent description: the
alerts of a run with reloads are exactly, for every rule version, the matches that version
finds on the whole stream (run alone) whose first event arrived while the version was active,
minus those its rule's removal cut off."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from cep.compiler.compiled import CompiledRule
from cep.event import Event
from cep.operator.cep_operator import CepOperator
from tests.reload.rules import compile_rule


def pair(name: str = "pair", threshold: int = 0, within: str | None = "10s",
         severity: str = "high") -> CompiledRule:
    """``start`` then ``end`` for one user; ``threshold`` makes versions differ.  With a
    window, a timed-out partial match is emitted too."""
    tail = f"  within {within}\n" if within else ""
    timeout = "  on timeout emit { user: a.user }\n" if within else ""
    return compile_rule(
        f"rule {name}\n  severity {severity}\n  key by user\n  pattern\n"
        f"    begin a where kind == \"start\" and amount >= {threshold}\n"
        f"    followed by b where kind == \"end\"\n{tail}"
        f"  emit {{ user: a.user }}\n{timeout}end\n")


class Run:
    """An operator fed events one at a time, with every output kept."""

    def __init__(self, rules: list[CompiledRule]) -> None:
        self.out: list[tuple[str, dict[str, Any]]] = []
        self.op = CepOperator(rules, lambda sink, rec: self.out.append((sink, rec)))
        self.seq = 0

    def feed(self, ts: int, user: str, kind: str, amount: int = 0) -> None:
        self.seq += 1
        data = {"ts": ts, "user": user, "kind": kind, "amount": amount, "i": self.seq}
        self.op.on_event(Event(ts, self.seq, data, "input", self.seq))

    def alerts(self) -> list[tuple[str, str, str, bool]]:
        """``(rule, version, user, timed_out)`` of each alert, in emission order."""
        return [(r["rule"], r["rule_version"], r["key"]["user"], bool(r.get("timed_out")))
                for _, r in self.out if "rule" in r]


def test_an_unchanged_rule_keeps_its_partial_match_across_a_reload() -> None:
    v1 = pair()
    run = Run([v1])
    run.feed(1000, "alice", "start")
    report = run.op.reload([pair(), pair("other", 5)])  # same text, freshly compiled
    assert report.unchanged == ["pair"] and report.added == ["other"]
    assert report.partial_kept == 1 and report.partial_dropped == 0
    run.feed(2000, "alice", "end")
    assert run.alerts() == [("pair", v1.version, "alice", False)]


def test_a_changed_rule_drains_its_old_version_and_starts_the_new_one_at_once() -> None:
    v1, v2 = pair(threshold=0), pair(threshold=1)
    assert v1.version != v2.version
    run = Run([v1])
    run.feed(1000, "alice", "start", amount=5)
    report = run.op.reload([v2])
    assert report.changed == ["pair"] and report.drained == [f"pair@{v1.version}"]
    assert report.partial_kept == 1
    draining = run.op.stats()["draining"]
    assert [(d["rule"], d["version"], d["partial_matches"]) for d in draining] == [
        ("pair", v1.version, 1)]
    # a new start for alice and one for bob: only the new version takes them
    run.feed(1500, "alice", "start", amount=5)
    run.feed(1600, "bob", "start", amount=5)
    run.feed(2000, "alice", "end")
    run.feed(2100, "bob", "end")
    assert sorted(run.alerts()) == sorted([
        ("pair", v1.version, "alice", False),  # the old version finished its partial match
        ("pair", v2.version, "alice", False),
        ("pair", v2.version, "bob", False),
    ])
    assert run.op.stats()["draining"] == []  # nothing left: the old version is gone
    assert [rs.rule.version for rs in run.op.rules] == [v2.version]


def test_a_draining_version_times_out_and_then_disappears() -> None:
    v1, v2 = pair(within="2s"), pair(threshold=1, within="2s")
    run = Run([v1])
    run.feed(0, "alice", "start", amount=5)
    run.op.reload([v2])
    run.feed(1000, "carol", "tick")
    assert len(run.op.rules) == 2
    run.feed(2500, "carol", "tick")  # the watermark passes alice's window
    assert run.alerts() == [("pair", v1.version, "alice", True)]
    assert [rs.rule.version for rs in run.op.rules] == [v2.version]
    assert run.op.stats()["rules"]["pair"]["timeouts"] == 1  # counters survive the version


def test_added_rules_start_empty_and_removed_rules_lose_their_state() -> None:
    a, b = pair("a"), pair("b")
    run = Run([a, b])
    run.feed(1000, "alice", "start")
    run.feed(1001, "bob", "start")
    report = run.op.reload([a, pair("c")])
    assert report.removed == ["b"] and report.added == ["c"] and report.unchanged == ["a"]
    assert report.partial_dropped == 2 and report.keys_dropped == 2
    assert run.op.dropped_partial_matches == 2
    run.feed(2000, "alice", "end")
    run.feed(2001, "bob", "end")
    assert sorted(run.alerts()) == [("a", a.version, "alice", False),
                                    ("a", a.version, "bob", False)]


def test_a_changed_rule_without_within_drops_its_partial_matches() -> None:
    v1, v2 = pair(within=None), pair(threshold=1, within=None)
    run = Run([v1])
    run.feed(1000, "alice", "start", amount=5)
    report = run.op.reload([v2])
    assert report.partial_dropped == 1 and report.partial_kept == 0 and report.drained == []
    assert [rs.rule.version for rs in run.op.rules] == [v2.version]
    run.feed(2000, "alice", "end")
    assert run.alerts() == []


def test_an_edit_undone_while_draining_revives_the_old_version() -> None:
    v1, v2 = pair(threshold=0), pair(threshold=1)
    run = Run([v1])
    run.feed(1000, "alice", "start", amount=5)
    run.op.reload([v2])
    report = run.op.reload([pair(threshold=0)])
    assert report.revived == [f"pair@{v1.version}"] and report.drained == []
    assert [rs.rule.version for rs in run.op.rules] == [v1.version]
    assert not run.op.rules[0].draining
    run.feed(1500, "bob", "start", amount=5)  # the revived version starts new matches
    run.feed(2000, "alice", "end")
    run.feed(2001, "bob", "end")
    assert sorted(run.alerts()) == [("pair", v1.version, "alice", False),
                                    ("pair", v1.version, "bob", False)]


def test_reload_report_counts_unchanged_rules_once_in_every_operator() -> None:
    from cep.operator.versions import ReloadReport

    a = ReloadReport(unchanged=["x"], partial_kept=2, events_in=3, versions={"x": "1"})
    b = ReloadReport(unchanged=["x"], partial_kept=5, events_in=4, versions={"x": "1"})
    a.merge(b)
    assert a.unchanged == ["x"] and a.partial_kept == 7 and a.events_in == 7


# ------------------------------------------------------------------------- the policy


def variant(name: str, threshold: int) -> CompiledRule:
    return compile_rule(
        f"rule {name}\n  severity medium\n  key by user\n  pattern\n"
        f"    begin a where amount > {threshold}\n"
        f"    followed by b where amount > {threshold}\n"
        f"  within 3s\n  emit {{ first: a.i, last: b.i }}\nend\n")


CACHE: dict[tuple[str, int], CompiledRule] = {}


def cached(name: str, threshold: int) -> CompiledRule:
    key = (name, threshold)
    if key not in CACHE:
        CACHE[key] = variant(name, threshold)
    return CACHE[key]


events_st = st.lists(
    st.tuples(st.integers(0, 700), st.sampled_from(["u1", "u2", "u3"]), st.integers(0, 99)),
    min_size=20, max_size=120)
rule_sets_st = st.lists(
    st.dictionaries(st.sampled_from(["r", "s"]), st.sampled_from([20, 50, 80]), min_size=1),
    min_size=1, max_size=6)


def alone(rule: CompiledRule, events: list[dict[str, Any]]) -> list[tuple[int, int]]:
    """``(first, last)`` arrival index of every match of ``rule`` run alone on ``events``."""
    run = Run([rule])
    for e in events:
        run.feed(e["ts"], e["user"], e["kind"], e["amount"])
    run.op.finish()
    return [(r["data"]["first"], r["data"]["last"]) for _, r in run.out if "rule" in r]


@settings(max_examples=60, deadline=None)
@given(events_st, rule_sets_st, st.data())
def test_reloads_lose_nothing_and_double_nothing(
    raw: list[tuple[int, str, int]], rule_sets: list[dict[str, int]], data: st.DataObject,
) -> None:
    ts, events = 0, []
    for gap, user, amount in raw:
        ts += gap
        events.append({"ts": ts, "user": user, "kind": "x", "amount": amount})
    n = len(events)
    points = sorted(data.draw(st.lists(st.integers(1, n - 1), min_size=len(rule_sets) - 1,
                                       max_size=len(rule_sets) - 1)))
    starts = [0, *points]  # rule set k is in force from event index starts[k] (0-based)
    sets = [[cached(name, t) for name, t in sorted(rs.items())] for rs in rule_sets]

    run = Run(sets[0])
    k = 1
    for i, e in enumerate(events):
        while k < len(starts) and starts[k] == i:
            run.op.reload(sets[k])
            k += 1
        run.feed(e["ts"], e["user"], e["kind"], e["amount"])
    run.op.finish()
    actual = sorted((r["rule_version"], r["data"]["first"], r["data"]["last"])
                    for _, r in run.out if "rule" in r)

    # expected: per version, matches found alone whose first event came while it was active
    # and whose last event came before the next removal of its rule (1-based indices)
    expected = []
    for version, rule in {r.version: r for rs in sets for r in rs}.items():
        found = alone(rule, events)
        for k, rs in enumerate(sets):
            if rule not in rs:
                continue
            lo = starts[k] + 1
            hi = starts[k + 1] + 1 if k + 1 < len(sets) else n + 1
            removal = next((starts[j] + 1 for j in range(k + 1, len(sets))
                            if rule.name not in {r.name for r in sets[j]}), n + 1)
            expected += [(version, f, last) for f, last in found
                         if lo <= f < hi and last < removal]
    assert actual == sorted(expected)


def test_a_draining_version_keeps_to_the_partial_match_cap() -> None:
    """A draining version has no start computation, so its cap is the cap itself: forks of
    the partial matches it holds beyond ``max_partial_matches_per_key`` are evicted."""
    def fan(threshold: int) -> CompiledRule:
        return compile_rule(
            "rule fan\n  key by user\n  pattern\n"
            f"    begin a where kind == \"start\" and amount >= {threshold}\n"
            "    followed by any b where kind == \"mid\"\n"
            "    followed by any c where kind == \"end\"\n"
            "  within 1m\nend\n")

    out: list[tuple[str, dict[str, Any]]] = []
    op = CepOperator([fan(0)], lambda sink, rec: out.append((sink, rec)),
                     max_partial_matches_per_key=3)
    for seq, (ts, kind) in enumerate([(1, "start"), (2, "start")], 1):
        op.on_event(Event(ts, seq, {"user": "u", "kind": kind, "amount": 0}, "input", seq))
    op.reload([fan(5)])
    old = next(rs for rs in op.rules if rs.draining)
    assert old.partial_matches() == 2
    for seq, ts in enumerate((3, 4, 5), 3):  # each "mid" forks every held partial match
        op.on_event(Event(ts, seq, {"user": "u", "kind": "mid", "amount": 0}, "input", seq))
        op.advance(ts)
        assert old.partial_matches() <= 3
    assert old.evictions > 0
