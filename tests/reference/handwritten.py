"""Hand-written cases, one per behaviour cited in ``shared/design/flink-semantics.md``.

Each case mirrors the scenario of the Flink test named in its ``id`` (pattern shape and event
sequence), written in the Flink-oracle case format for ``--mode file``: timestamps are the feed
positions unless the test's own timestamps matter, and the end of input flushes time to +inf.
The stored expectation (``tests/data/flink/handwritten_expected.jsonl``) is what Flink 2.3
produced for the case, not the Java assertion; ``notes`` says what the case pins down.

``gen_flink_fixtures.py --handwritten`` writes these cases to
``tests/data/flink/handwritten_cases.jsonl`` and runs them through the oracle.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CASES"]

SOURCE = "flink-libraries/flink-cep/src/test/java/org/apache/flink/cep/"


# ----------------------------------------------------------------------------- builders


def stage(
    name: str,
    contiguity: str,
    where: str = "true",
    q: dict[str, Any] | None = None,
    *,
    optional: bool = False,
    greedy: bool = False,
    until: str | None = None,
) -> dict[str, Any]:
    return {
        "name": name,
        "contiguity": contiguity,
        "where": where,
        "quantifier": q,
        "optional": optional,
        "greedy": greedy,
        "until": until,
        "group": None,
    }


def group(
    contiguity: str,
    members: list[dict[str, Any]],
    q: dict[str, Any] | None = None,
    *,
    optional: bool = False,
    until: str | None = None,
) -> dict[str, Any]:
    g = stage(None, contiguity, None, q, optional=optional, until=until)  # type: ignore[arg-type]
    g["group"] = members
    return g


def one_or_more(inner: str = "relaxed") -> dict[str, Any]:
    return {"kind": "oneOrMore", "min": 1, "max": None, "inner": inner}


def times(n: int, inner: str = "relaxed") -> dict[str, Any]:
    return {"kind": "times", "min": n, "max": n, "inner": inner}


def times_range(lo: int, hi: int, inner: str = "relaxed") -> dict[str, Any]:
    return {"kind": "timesRange", "min": lo, "max": hi, "inner": inner}


def times_or_more(n: int, inner: str = "relaxed") -> dict[str, Any]:
    return {"kind": "timesOrMore", "min": n, "max": None, "inner": inner}


def name_is(n: str) -> str:
    return f'name == "{n}"'


def events(*specs: tuple, start_ts: int = 1) -> list[dict[str, Any]]:
    """``(name, price)`` or ``(name, price, extra-fields)``; ids and timestamps are positions
    unless an extra field ``ts`` is given."""
    out = []
    for i, spec in enumerate(specs):
        ev: dict[str, Any] = {"id": i + 1, "ts": start_ts + i, "name": spec[0], "price": spec[1]}
        if len(spec) > 2:
            ev.update(spec[2])
        out.append(ev)
    return out


def case(
    cid: str,
    source: str,
    stages: list[dict[str, Any]],
    evs: list[dict[str, Any]],
    notes: str,
    *,
    within: int | None = None,
    skip: str = "noSkip",
    **extra: Any,
) -> dict[str, Any]:
    c: dict[str, Any] = {
        "id": cid,
        "source": SOURCE + source,
        "harness": "file",
        "stages": stages,
        "within_ms": within,
        "skip": skip,
        "events": evs,
        "notes": notes,
    }
    c.update(extra)
    return c


# ----------------------------------------------------------------------------- cases

TIMED_EVENTS = [
    {"id": 1, "ts": 1, "name": "start", "price": 1.0},
    {"id": 2, "ts": 2, "name": "start", "price": 1.0},
    {"id": 3, "ts": 3, "name": "middle", "price": 1.0},
    {"id": 4, "ts": 4, "name": "foobar", "price": 1.0},
    {"id": 5, "ts": 11, "name": "end", "price": 1.0},
    {"id": 6, "ts": 13, "name": "end", "price": 1.0},
]

PENDING_EVENTS = [
    {"id": 1, "ts": 1, "name": "start", "price": 1.0},
    {"id": 2, "ts": 4, "name": "middle", "price": 1.0},
    {"id": 3, "ts": 5, "name": "start", "price": 1.0},
    {"id": 4, "ts": 11, "name": "start", "price": 1.0},
    {"id": 5, "ts": 18, "name": "middle", "price": 1.0},
]

NFA = "nfa/NFAITCase.java"
GREEDY = "nfa/GreedyITCase.java"
SKIP = "nfa/AfterMatchSkipITCase.java"
NOT = "nfa/NotPatternITCase.java"
GROUP = "nfa/GroupITCase.java"
UNTIL = "nfa/UntilConditionITCase.java"

CASES: list[dict[str, Any]] = [
    # §1 execution model ------------------------------------------------------------------
    case(
        "NFAITCase.testSimplePatternNFA",
        NFA,
        [
            stage("start", "begin", name_is("start")),
            stage("middle", "followedBy", 'type == "SubEvent" and volume > 5'),
            stage("end", "followedBy", name_is("end")),
        ],
        events(
            ("start", 1.0),
            ("foobar", 2.0),
            ("start", 3.0, {"type": "SubEvent", "volume": 10.0}),
            ("end", 4.0),
            ("end", 5.0),
        ),
        "subtype() AND-ed with where(); a start event that is also a SubEvent can be middle",
    ),
    case(
        "CEPITCase.testSimpleOrFilterPatternCEP",
        "CEPITCase.java",
        [
            stage("start", "begin", name_is("start")),
            stage("middle", "followedByAny", "price == 2 or price == 5"),
            stage("end", "followedByAny", name_is("end")),
        ],
        events(
            ("start", 1.0),
            ("middle", 2.0),
            ("start", 3.0),
            ("middle", 5.0),
            ("end", 6.0),
        ),
        "or() ORs with the where() clause; followedByAny combines every middle",
    ),
    case(
        "NFAITCase.testStartAndEndWithZeroOrMore",
        NFA,
        [stage("first", "begin", name_is("d"), one_or_more(), optional=True)],
        events(("c", 1.0), ("d", 2.0), ("d", 3.0), ("a", 4.0), ("d", 5.0)),
        "a pattern made of one optional loop: no empty match, every prefix of every run",
    ),
    case(
        "SameElementITCase~equal-records-are-distinct-events",
        "nfa/SameElementITCase.java",
        [
            stage("start", "begin", name_is("a")),
            stage("end", "followedByAny", name_is("b")),
        ],
        [
            {"id": 1, "ts": 1, "name": "a", "price": 1.0},
            {"id": 2, "ts": 2, "name": "b", "price": 2.0},
            {"id": 3, "ts": 2, "name": "b", "price": 2.0},
        ],
        "equal records with the same timestamp are distinct events and match separately",
    ),
    case(
        "SameElementITCase.testIterativeConditionWSameElement",
        "nfa/SameElementITCase.java",
        [
            stage("start", "begin", name_is("start")),
            stage(
                "middle",
                "followedByAny",
                'name == "a" and (count(middle) == 0 or price > last(middle).price)',
                one_or_more(),
            ),
            stage("end", "followedBy", 'name == "a" or name == "b"'),
        ],
        events(("start", 1.0), ("a", 2.0), ("a", 3.0), ("a", 1.0), ("b", 4.0)),
        "followedBy end takes the first qualifying event after the loop (the later b is no "
        "alternative for runs whose end condition accepts an a)",
    ),
    # §2 contiguity -------------------------------------------------------------------------
    case(
        "NFAITCase.testStrictContinuityNoResults",
        NFA,
        [stage("start", "begin", name_is("c")), stage("middle", "next", name_is("a"))],
        events(("c", 1.0), ("b", 2.0), ("a", 3.0)),
        "next: the event right after start must match, otherwise the run dies",
    ),
    case(
        "NFAITCase.testStrictContinuityWithResults",
        NFA,
        [stage("start", "begin", name_is("c")), stage("middle", "next", name_is("a"))],
        events(("c", 1.0), ("a", 2.0)),
        "next: adjacent events match",
    ),
    case(
        "NFAITCase.testBranchingPatternSkipTillNext",
        NFA,
        [
            stage("start", "begin", name_is("start")),
            stage("middle-first", "followedBy", name_is("a")),
            stage("middle-second", "followedBy", name_is("b")),
            stage("end", "followedBy", name_is("end")),
        ],
        events(("start", 1.0), ("a", 2.0), ("b", 3.0), ("a", 4.0), ("b", 5.0), ("end", 6.0)),
        "followedBy binds to the first qualifying event: one match only",
    ),
    case(
        "NFAITCase.testBranchingPattern",
        NFA,
        [
            stage("start", "begin", name_is("start")),
            stage("middle-first", "followedByAny", 'type == "SubEvent" and volume > 5'),
            stage("middle-second", "followedByAny", 'type == "SubEvent" and name == "next-one"'),
            stage("end", "followedByAny", name_is("end")),
        ],
        events(
            ("start", 1.0),
            ("foo1", 1.0, {"type": "SubEvent", "volume": 10.0}),
            ("foo2", 1.0, {"type": "SubEvent", "volume": 10.0}),
            ("foo3", 1.0, {"type": "SubEvent", "volume": 10.0}),
            ("next-one", 1.0, {"type": "SubEvent", "volume": 2.0}),
            ("next-one", 1.0, {"type": "SubEvent", "volume": 2.0}),
            ("end", 1.0),
        ),
        "followedByAny branches on every qualifying event: 3 x 2 matches",
    ),
    case(
        "NFAITCase.testComplexBranchingAfterZeroOrMore",
        NFA,
        [
            stage("start", "begin", name_is("c")),
            stage(
                "middle",
                "followedByAny",
                name_is("a"),
                one_or_more("allowCombinations"),
                optional=True,
            ),
            stage("end1", "followedByAny", name_is("b")),
            stage("end2", "followedByAny", name_is("d")),
            stage("end3", "followedByAny", name_is("e")),
        ],
        events(
            ("c", 1.0),
            ("a", 2.0),
            ("a", 3.0),
            ("a", 4.0),
            ("b", 5.0),
            ("d", 6.0),
            ("d", 7.0),
            ("e", 8.0),
        ),
        "an optional combination loop before followedByAny stages: every subset x every d",
    ),
    case(
        "NFAITCase.testBranchingPatternMixedFollowedBy",
        NFA,
        [
            stage("start", "begin", name_is("start")),
            stage("middle-first", "followedByAny", name_is("a")),
            stage("middle-second", "next", name_is("b")),
            stage("end", "followedByAny", name_is("end")),
        ],
        events(
            ("start", 1.0),
            ("a", 2.0),
            ("b", 3.0),
            ("a", 4.0),
            ("b", 5.0),
            ("a", 6.0),
            ("b", 7.0),
            ("end", 8.0),
        ),
        "contiguity composes per edge: any-then-next gives one match per a directly before a b",
    ),
    case(
        "NFAITCase.testAnyWithNoConditionNFA",
        NFA,
        [
            stage("start", "begin"),
            stage("middle", "followedByAny"),
            stage("end", "followedByAny"),
        ],
        events(("a", 1.0), ("b", 2.0), ("c", 3.0), ("d", 4.0)),
        "no conditions + followedByAny: every ordered triple",
    ),
    case(
        "GroupITCase.testFollowedByOptionalGroupPattern",
        GROUP,
        [
            stage("start", "begin", name_is("a")),
            group(
                "followedBy",
                [stage("middle1", "begin", name_is("b")), stage("middle2", "next", name_is("c"))],
                optional=True,
            ),
            stage("end", "next", name_is("d")),
        ],
        events(("a", 1.0), ("d", 2.0), ("d", 3.0)),
        "a skipped optional group: next is measured from the last taken event (only a d1)",
    ),
    case(
        "NFAITCase.testStrictContinuityNoResultsAfterZeroOrMore",
        NFA,
        [
            stage("start", "begin", name_is("d")),
            stage("middle", "followedBy", name_is("a"), one_or_more(), optional=True),
            stage("end", "next", name_is("b")),
        ],
        events(("d", 1.0), ("a", 2.0), ("a", 3.0), ("c", 4.0), ("b", 5.0)),
        "d a* next b on d a a c b: the c breaks strict contiguity for every run",
    ),
    # §3 quantifiers --------------------------------------------------------------------------
    case(
        "TimesRangeITCase.testTimesRangeFromZero",
        "nfa/TimesRangeITCase.java",
        [
            stage("start", "begin", name_is("c")),
            stage("middle", "followedByAny", name_is("a"), times_range(0, 2)),
            stage("end", "followedBy", name_is("b")),
        ],
        events(("c", 1.0), ("a", 2.0), ("a", 3.0), ("a", 4.0), ("b", 5.0)),
        "times(0, 2) is times(1, 2).optional()",
    ),
    case(
        "NFAITCase.testEndWithOneOrMore",
        NFA,
        [
            stage("start", "begin", name_is("c")),
            stage("end", "followedByAny", name_is("a"), one_or_more()),
        ],
        events(("c", 1.0), ("a", 2.0), ("b", 3.0), ("a", 4.0), ("a", 5.0)),
        "a loop at the end emits every prefix as soon as it is complete",
    ),
    case(
        "NFAITCase.testNoConditionLoopingNFA",
        NFA,
        [stage("start", "begin", "true", one_or_more()), stage("end", "followedBy")],
        events(("a", 1.0), ("b", 2.0), ("c", 3.0), ("d", 4.0)),
        "loops without conditions: one match per admissible length",
    ),
    case(
        "NFAITCase.testSkipTillNextOneOrMore",
        NFA,
        [
            stage("start", "begin", name_is("c")),
            stage("middle", "followedBy", name_is("a"), one_or_more()),
            stage("end", "followedBy", name_is("b")),
        ],
        events(("c", 1.0), ("a", 2.0), ("d", 3.0), ("a", 4.0), ("d", 5.0), ("a", 6.0), ("b", 7.0)),
        "relaxed inner contiguity skips non-matching events but never a matching one",
    ),
    case(
        "NFAITCase.testAtLeastOneEager",
        NFA,
        [
            stage("start", "begin", name_is("c")),
            stage("middle", "followedByAny", name_is("a"), one_or_more()),
            stage("end", "followedBy", name_is("b")),
        ],
        events(("c", 1.0), ("a", 2.0), ("d", 3.0), ("a", 4.0), ("a", 5.0), ("b", 6.0)),
        "followedByAny starts the loop at any a; inside the loop no a can be skipped",
    ),
    case(
        "NFAITCase.testStrictOneOrMore",
        NFA,
        [
            stage("start", "begin", name_is("c")),
            stage("middle", "followedBy", name_is("a"), one_or_more("consecutive")),
            stage("end", "followedBy", name_is("b")),
        ],
        events(("c", 1.0), ("a", 2.0), ("d", 3.0), ("a", 4.0), ("a", 5.0), ("b", 6.0)),
        "consecutive(): no event may be skipped between loop elements",
    ),
    case(
        "NFAITCase.testTimesStrictWithNextAndConsecutive",
        NFA,
        [
            stage("start", "begin", name_is("c")),
            stage("middle", "next", name_is("a"), times(2, "consecutive")),
            stage("end", "followedBy", name_is("b")),
        ],
        events(("c", 1.0), ("a", 2.0), ("d", 3.0), ("a", 4.0), ("a", 5.0), ("b", 6.0)),
        "next + times(2).consecutive(): no match because d interrupts",
    ),
    case(
        "NFAITCase.testSkipTillAnyOneOrMore",
        NFA,
        [
            stage("start", "begin", name_is("c")),
            stage("middle", "followedBy", name_is("a"), one_or_more("allowCombinations")),
            stage("end", "followedBy", name_is("b")),
        ],
        events(("c", 1.0), ("a", 2.0), ("d", 3.0), ("a", 4.0), ("a", 5.0), ("b", 6.0)),
        "allowCombinations(): every subset in order that contains the first a",
    ),
    case(
        "NFAITCase.testMultipleTakesVersionCollision",
        NFA,
        [
            stage("start", "begin", name_is("c")),
            stage("middle1", "followedBy", name_is("a"), one_or_more("allowCombinations")),
            stage("middle2", "followedBy", name_is("a"), one_or_more("allowCombinations")),
            stage("end", "followedBy", name_is("b")),
        ],
        events(("c", 1.0), ("a", 2.0), ("a", 3.0), ("a", 4.0), ("b", 5.0)),
        "two combination loops over the same events: every split, no lost branch",
    ),
    case(
        "NFAITCase.testStartWithOptional",
        NFA,
        [
            stage("start", "begin", name_is("c"), optional=True),
            stage("end", "followedBy", name_is("a")),
        ],
        events(("c", 1.0), ("a", 2.0)),
        "a pattern may begin with an optional stage: [c a] and [a]",
    ),
    case(
        "NFAITCase.testBeginWithZeroOrMore",
        NFA,
        [
            stage("start", "begin", name_is("a"), one_or_more(), optional=True),
            stage("end", "followedBy", name_is("b")),
        ],
        events(("a", 1.0), ("a", 2.0), ("a", 3.0), ("b", 4.0)),
        "begin with a*: matches start at every a and at b",
    ),
    case(
        "NFAITCase.testEndWithOptional",
        NFA,
        [
            stage("start", "begin", name_is("c")),
            stage("end", "followedBy", name_is("a"), optional=True),
        ],
        events(("c", 1.0), ("d", 2.0), ("a", 3.0)),
        "an optional last stage: the shorter match is emitted immediately",
    ),
    case(
        "NFAITCase.testEndWithZeroOrMore",
        NFA,
        [
            stage("start", "begin", name_is("c")),
            stage("end", "followedBy", name_is("a"), one_or_more(), optional=True),
        ],
        events(("c", 1.0), ("a", 2.0), ("a", 3.0), ("d", 4.0), ("a", 5.0)),
        "an optional loop at the end: [c] and every prefix of the a's",
    ),
    case(
        "TimesOrMoreITCase.testTimesOrMore",
        "nfa/TimesOrMoreITCase.java",
        [
            stage("start", "begin", name_is("c")),
            stage("middle", "followedByAny", name_is("a"), times_or_more(2)),
            stage("end", "followedBy", name_is("b")),
        ],
        events(("c", 1.0), ("a", 2.0), ("d", 3.0), ("a", 4.0), ("a", 5.0), ("b", 6.0)),
        "timesOrMore(2): at least two elements, then a loop",
    ),
    case(
        "GroupITCase.testGroupNextZeroOrMore",
        GROUP,
        [
            stage("start", "begin", name_is("c")),
            group(
                "next",
                [stage("middle1", "begin", name_is("a")), stage("middle2", "next", name_is("b"))],
                one_or_more(),
                optional=True,
            ),
            stage("end", "followedBy", name_is("d")),
        ],
        events(("c", 1.0), ("a", 2.0), ("b", 3.0), ("a", 4.0), ("b", 5.0), ("d", 6.0)),
        "a looping group: each repetition is a whole sub-sequence",
    ),
    case(
        "GroupITCase~group-times-range-keeps-exit-open",
        GROUP,
        [
            stage("start", "begin", name_is("c")),
            group(
                "followedBy",
                [
                    stage("middle1", "begin", name_is("a")),
                    stage("middle2", "followedBy", name_is("b")),
                ],
                times_range(1, 2),
            ),
            stage("end", "followedBy", name_is("d")),
        ],
        events(("c", 1.0), ("a", 2.0), ("b", 3.0), ("x", 4.0), ("a", 5.0), ("b", 6.0), ("d", 7.0)),
        "a group with a times range: skipping towards an optional repetition keeps the exit open",
    ),
    case(
        "GroupITCase.testGroupFollowedByOneOrMoreWithUntilCondition",
        GROUP,
        [
            stage("start", "begin", name_is("c")),
            group(
                "followedBy",
                [
                    stage("middle1", "begin", name_is("a")),
                    stage("middle2", "followedBy", name_is("b")),
                ],
                one_or_more(),
                until="price > 5",
            ),
            stage("end", "followedBy", name_is("d")),
        ],
        events(
            ("c", 1.0),
            ("a", 2.0),
            ("b", 3.0),
            ("a", 4.0),
            ("x", 6.0),
            ("b", 7.0),
            ("d", 8.0),
        ),
        "until on a group applies to every take and skip inside the group",
    ),
    case(
        "GroupITCase.testGroupNotFollowedBy",
        GROUP,
        [
            stage("start", "begin", name_is("c")),
            group(
                "followedBy",
                [stage("middle1", "begin", name_is("a")), stage("middle2", "next", name_is("b"))],
            ),
            stage("notEnd", "notFollowedBy", name_is("x")),
            stage("end", "followedBy", name_is("d")),
        ],
        events(("c", 1.0), ("a", 2.0), ("b", 3.0), ("x", 4.0), ("d", 5.0), ("c", 6.0)),
        "a notFollowedBy after a group constrains the gap after the group's last event",
    ),
    case(
        "GroupITCase.testGroupNotNext",
        GROUP,
        [
            stage("start", "begin", name_is("c")),
            group(
                "followedBy",
                [stage("middle1", "begin", name_is("a")), stage("middle2", "next", name_is("b"))],
            ),
            stage("notEnd", "notNext", name_is("x")),
            stage("end", "followedBy", name_is("d")),
        ],
        events(("c", 1.0), ("a", 2.0), ("b", 3.0), ("e", 4.0), ("x", 5.0), ("d", 6.0)),
        "notNext after a group checks only the event right after the group",
    ),
    case(
        "GroupITCase.testGroupNest",
        GROUP,
        [
            stage("start", "begin", name_is("c")),
            group(
                "followedBy",
                [
                    stage("middle1", "begin", name_is("a")),
                    group(
                        "followedBy",
                        [
                            stage("middle2", "begin", name_is("b")),
                            stage("middle3", "followedBy", name_is("e")),
                        ],
                        one_or_more(),
                    ),
                ],
            ),
            stage("end", "followedBy", name_is("d")),
        ],
        events(("c", 1.0), ("a", 2.0), ("b", 3.0), ("e", 4.0), ("b", 5.0), ("e", 6.0), ("d", 7.0)),
        "groups nest (outside the reference's subset: nested groups)",
    ),
    # §4 greedy --------------------------------------------------------------------------------
    case(
        "GreedyITCase.testGreedyZeroOrMore",
        GREEDY,
        [
            stage("start", "begin", name_is("c")),
            stage("middle", "followedBy", name_is("a"), one_or_more(), optional=True, greedy=True),
            stage("end", "followedBy", name_is("d")),
        ],
        events(("c", 1.0), ("a", 2.0), ("a", 2.0), ("a", 2.0), ("d", 3.0)),
        "greedy: branches that leave the loop early die, only [c a1 a2 a3 d]",
    ),
    case(
        "GreedyITCase.testGreedyTimesRange",
        GREEDY,
        [
            stage("start", "begin", name_is("c")),
            stage("middle", "followedBy", name_is("a"), times_range(2, 5), greedy=True),
            stage("end", "followedBy", name_is("d")),
        ],
        events(("c", 1.0), ("a", 2.0), ("a", 2.0), ("a", 2.0), ("a", 2.0), ("d", 3.0)),
        "greedy times range: only the longest run reaches d",
    ),
    case(
        "GreedyITCase.testEndWithZeroOrMoreGreedy",
        GREEDY,
        [
            stage("start", "begin", name_is("c")),
            stage("end", "followedBy", name_is("a"), one_or_more(), optional=True, greedy=True),
        ],
        events(("c", 1.0), ("a", 2.0), ("a", 2.0), ("dummy", 2.0), ("a", 2.0)),
        "greedy on the last stage changes nothing: every prefix is emitted",
    ),
    case(
        "GreedyITCase.testEndWithGreedyTimesRange",
        GREEDY,
        [
            stage("start", "begin", name_is("c")),
            stage("end", "followedBy", name_is("a"), times_range(2, 5), greedy=True),
        ],
        events(("c", 1.0), ("a", 2.0), ("a", 2.0), ("a", 2.0), ("a", 2.0), ("d", 3.0)),
        "greedy times range at the end: every admissible length",
    ),
    case(
        "GreedyITCase.testGreedyUntilZeroOrMoreWithDummyEventsAfterQuantifier",
        GREEDY,
        [
            stage("start", "begin", name_is("c")),
            stage(
                "middle",
                "followedBy",
                name_is("a"),
                one_or_more(),
                optional=True,
                greedy=True,
                until="price > 3",
            ),
            stage("end", "followedBy", name_is("d")),
        ],
        events(("c", 1.0), ("a", 2.0), ("a", 3.0), ("a", 3.0), ("a", 4.0), ("d", 3.0)),
        "greedy + until: the until event ends the loop and the next stage may skip it",
    ),
    case(
        "GreedyITCase.testGreedyUntilOneOrMoreWithDummyEventsBeforeQuantifier",
        GREEDY,
        [
            stage("start", "begin", name_is("c")),
            stage(
                "middle",
                "followedBy",
                name_is("a"),
                one_or_more(),
                greedy=True,
                until="price > 3",
            ),
            stage("end", "followedBy", name_is("d")),
        ],
        events(("c", 1.0), ("a", 4.0), ("a", 2.0), ("a", 3.0), ("a", 3.0), ("d", 3.0)),
        "an event satisfying both the loop and until before the first element kills the run",
    ),
    case(
        "GreedyITCase.testGreedyUntilWithDummyEventsBeforeQuantifier",
        GREEDY,
        [
            stage("start", "begin", name_is("c")),
            stage(
                "middle",
                "followedBy",
                name_is("a"),
                one_or_more(),
                optional=True,
                greedy=True,
                until="price > 3",
            ),
            stage("end", "followedBy", name_is("d")),
        ],
        events(("c", 1.0), ("a", 4.0), ("a", 2.0), ("a", 3.0), ("a", 3.0), ("d", 3.0)),
        "same with an optional loop: only the run that skipped the loop survives, [c d]",
    ),
    # §5 until -----------------------------------------------------------------------------------
    case(
        "UntilConditionITCase.testUntilConditionFollowedByOneOrMore",
        UNTIL,
        [
            stage("start", "begin", name_is("c")),
            stage("middle", "followedBy", name_is("a"), one_or_more(), until='name == "b"'),
            stage("end", "followedBy", 'name == "b"'),
        ],
        events(("c", 1.0), ("a", 2.0), ("a", 3.0), ("b", 4.0), ("a", 5.0), ("b", 6.0)),
        "the until event ends the loop and is the end",
    ),
    case(
        "UntilConditionITCase.testUntilConditionFollowedByAnyOneOrMore",
        UNTIL,
        [
            stage("start", "begin", name_is("c")),
            stage("middle", "followedByAny", name_is("a"), one_or_more(), until="price > 5"),
            stage("end", "followedBy", name_is("b")),
        ],
        events(("c", 1.0), ("a", 2.0), ("a", 6.0), ("a", 3.0), ("a", 4.0), ("b", 5.0)),
        "with followedByAny a new loop can start after the until event",
    ),
    case(
        "UntilConditionITCase.testIterativeUntilConditionOneOrMore",
        UNTIL,
        [
            stage("start", "begin", name_is("c")),
            stage(
                "middle",
                "followedBy",
                name_is("a"),
                one_or_more(),
                until="sum(middle.price) + price > 6",
            ),
            stage("end", "followedBy", name_is("b")),
        ],
        events(("c", 1.0), ("a", 2.0), ("a", 3.0), ("a", 4.0), ("b", 5.0)),
        "an iterative until sees the events already in the loop, not the event under test",
    ),
    case(
        "IterativeConditionsITCase.testIterativeWithPrevPatternDependency",
        "nfa/IterativeConditionsITCase.java",
        [
            stage("start", "begin", name_is("a")),
            stage("middle", "followedByAny", 'name == "b" and price > first(start).price'),
            stage("end", "followedBy", 'name == "c" and price > last(middle).price'),
        ],
        events(("a", 2.0), ("b", 1.0), ("b", 3.0), ("c", 2.0), ("c", 4.0)),
        "conditions read the events of earlier stages of the same partial match",
    ),
    # §6 NOT -----------------------------------------------------------------------------------
    case(
        "NotPatternITCase.testNotNext",
        NOT,
        [
            stage("start", "begin", name_is("a")),
            stage("notPattern", "notNext", name_is("c")),
            stage("end", "followedBy", name_is("b")),
        ],
        events(("a", 1.0), ("d", 2.0), ("c", 3.0), ("b", 4.0), ("a", 5.0), ("c", 6.0), ("b", 7.0)),
        "notNext checks only the event right after the previous stage",
    ),
    case(
        "NotPatternITCase.testNotNextNoMatches",
        NOT,
        [
            stage("start", "begin", name_is("a")),
            stage("notPattern", "notNext", name_is("b")),
            stage("end", "followedBy", name_is("d")),
        ],
        events(("a", 1.0), ("b", 2.0), ("d", 3.0)),
        "a forbidden next event discards the partial match",
    ),
    case(
        "NotPatternITCase.testNotNextNoMatchesAtTheEnd",
        NOT,
        [
            stage("start", "begin", name_is("a")),
            stage("end", "followedByAny", name_is("b")),
            stage("notPattern", "notNext", name_is("c")),
        ],
        events(("a", 1.0), ("b", 2.0), ("c", 3.0), ("a", 4.0), ("b", 5.0), ("d", 6.0), ("b", 7.0)),
        "notNext at the end: released by the next event unless it is an X; nothing without one",
    ),
    case(
        "NotPatternITCase.testNotNextAfterOneOrMoreSkipTillNext",
        NOT,
        [
            stage("start", "begin", name_is("a")),
            stage("middle", "followedBy", name_is("b"), one_or_more()),
            stage("notPattern", "notNext", name_is("c")),
            stage("end", "followedBy", name_is("d")),
        ],
        events(("a", 1.0), ("b", 2.0), ("c", 3.0), ("b", 4.0), ("d", 5.0)),
        "a NOT violation discards every branch of the partial match on that event",
    ),
    case(
        "NotPatternITCase.testNotNextAfterOneOrMoreSkipTillAny",
        NOT,
        [
            stage("start", "begin", name_is("a")),
            stage("middle", "followedByAny", name_is("b"), one_or_more()),
            stage("notPattern", "notNext", name_is("c")),
            stage("end", "followedBy", name_is("d")),
        ],
        events(("a", 1.0), ("b", 2.0), ("c", 3.0), ("b", 4.0), ("d", 5.0)),
        "only a followedByAny restart of the loop after c matches",
    ),
    case(
        "NotPatternITCase.testNotFollowedBy",
        NOT,
        [
            stage("start", "begin", name_is("a")),
            stage("notPattern", "notFollowedBy", name_is("c")),
            stage("end", "followedBy", name_is("d")),
        ],
        events(("a", 1.0), ("b", 2.0), ("d", 3.0), ("a", 4.0), ("c", 5.0), ("d", 6.0)),
        "no X between the stages around notFollowedBy",
    ),
    case(
        "NotPatternITCase.testNotFollowedByNextAfterOneOrMoreEager",
        NOT,
        [
            stage("start", "begin", name_is("a")),
            stage("middle", "followedByAny", name_is("b"), one_or_more()),
            stage("notPattern", "notFollowedBy", name_is("c")),
            stage("end", "followedBy", name_is("d")),
        ],
        events(("a", 1.0), ("b", 2.0), ("b", 3.0), ("c", 4.0), ("b", 5.0), ("d", 6.0)),
        "after a loop, notFollowedBy also covers the loop's later elements",
    ),
    case(
        "NotPatternITCase.testNotFollowedByBeforeOptional",
        NOT,
        [
            stage("start", "begin", name_is("a")),
            stage("notPattern", "notFollowedBy", name_is("b")),
            stage("middle", "followedBy", name_is("c"), optional=True),
            stage("end", "followedBy", name_is("d")),
        ],
        events(("a", 1.0), ("b", 2.0), ("c", 3.0), ("d", 4.0)),
        "a skipped optional stage extends the NOT's scope up to the next real stage",
    ),
    case(
        "NotPatternITCase.testNotFollowedByBeforeOptionalTimes",
        NOT,
        [
            stage("start", "begin", name_is("a")),
            stage("notPattern", "notFollowedBy", name_is("b")),
            stage("middle", "followedBy", name_is("c"), times(2), optional=True),
            stage("end", "followedBy", name_is("d")),
        ],
        events(("a", 1.0), ("c", 2.0), ("b", 3.0), ("c", 4.0), ("d", 5.0)),
        "once the optional stage took an event the NOT no longer applies",
    ),
    case(
        "NotPatternITCase.testNotFollowedByBeforeOptionalAtTheEnd",
        NOT,
        [
            stage("start", "begin", name_is("a")),
            stage("notPattern", "notFollowedBy", name_is("b")),
            stage("end", "followedBy", name_is("c"), optional=True),
        ],
        events(("a", 1.0), ("c", 2.0), ("b", 3.0), ("c", 4.0)),
        "NOT before an optional last stage: [a] at once, [a c1]",
    ),
    case(
        "NotPatternITCase.testNotFollowedByWithinFirstAndLastAtEnd",
        NOT,
        [
            stage("start", "begin", name_is("a")),
            stage("notPattern", "notFollowedBy", name_is("b")),
        ],
        [
            {"id": 1, "ts": 1, "name": "a", "price": 1.0},
            {"id": 2, "ts": 3, "name": "c", "price": 1.0},
            {"id": 3, "ts": 5, "name": "a", "price": 1.0},
            {"id": 4, "ts": 7, "name": "b", "price": 1.0},
            {"id": 5, "ts": 20, "name": "c", "price": 1.0},
        ],
        "notFollowedBy at the end: released when the window passes without an X",
        within=5,
    ),
    case(
        "NFAITCase.testPendingStateMatches~loop-before-final-notFollowedBy",
        NFA,
        [
            stage("start", "begin", name_is("a")),
            stage("middle", "followedBy", name_is("b"), one_or_more()),
            stage("notPattern", "notFollowedBy", name_is("c")),
        ],
        [
            {"id": 1, "ts": 1, "name": "a", "price": 1.0},
            {"id": 2, "ts": 2, "name": "b", "price": 1.0},
            {"id": 3, "ts": 3, "name": "x", "price": 1.0},
            {"id": 4, "ts": 4, "name": "b", "price": 1.0},
            {"id": 5, "ts": 30, "name": "x", "price": 1.0},
        ],
        "a run still inside a loop becomes pending only with the next event",
        within=6,
    ),
    case(
        "NotPatternITCase.testNotFollowedByWithinAtEndAfterMatch",
        NOT,
        [
            stage("start", "begin", name_is("a")),
            stage("notPattern", "notFollowedBy", name_is("b")),
        ],
        [
            {"id": 1, "ts": 1, "name": "a", "price": 1.0},
            {"id": 2, "ts": 2, "name": "a", "price": 1.0},
            {"id": 3, "ts": 3, "name": "a", "price": 1.0},
            {"id": 4, "ts": 20, "name": "c", "price": 1.0},
        ],
        "pending matches released together are subject to the skip strategy",
        within=5,
        skip="skipPastLastEvent",
    ),
    case(
        "NFACompilerTest.testNFACompilerPatternEndsWithNotFollowedBy",
        "nfa/compiler/NFACompilerTest.java",
        [
            stage("start", "begin", name_is("a")),
            stage("notPattern", "notFollowedBy", name_is("b")),
        ],
        events(("a", 1.0)),
        "rejected: notFollowedBy at the end without a window",
    ),
    case(
        "PatternTest.testNotNextCannotBeOneOrMore",
        "pattern/PatternTest.java",
        [
            stage("start", "begin", name_is("a")),
            stage("notPattern", "notNext", name_is("b"), one_or_more()),
            stage("end", "followedBy", name_is("c")),
        ],
        events(("a", 1.0)),
        "rejected: quantifier on a NOT stage",
    ),
    case(
        "PatternTest.testNotFollowedCannotBeOptional",
        "pattern/PatternTest.java",
        [
            stage("start", "begin", name_is("a")),
            stage("notPattern", "notFollowedBy", name_is("b"), optional=True),
            stage("end", "followedBy", name_is("c")),
        ],
        events(("a", 1.0)),
        "rejected: a NOT stage cannot be optional",
    ),
    case(
        "Pattern.notNext~rejected-after-optional-stage",
        "pattern/Pattern.java",
        [
            stage("start", "begin", name_is("a"), optional=True),
            stage("notPattern", "notNext", name_is("b")),
            stage("end", "followedBy", name_is("c")),
        ],
        events(("a", 1.0)),
        "rejected: notNext right after an optional stage",
    ),
    case(
        "PatternTest.testUntilCannotBeAppliedToTimes",
        "pattern/PatternTest.java",
        [
            stage("start", "begin", name_is("a"), times(2), until="price > 2"),
        ],
        events(("a", 1.0)),
        "rejected: until on a non-looping stage",
    ),
    case(
        "NFACompilerTest.testNFACompilerUniquePatternName",
        "nfa/compiler/NFACompilerTest.java",
        [
            stage("start", "begin", name_is("a")),
            stage("middle", "followedBy", name_is("b")),
            stage("start", "followedBy", name_is("c")),
        ],
        events(("a", 1.0)),
        "rejected: two stages with the same name",
    ),
    case(
        "NFACompilerTest.testSkipToNotExistsMatchingPattern",
        "nfa/compiler/NFACompilerTest.java",
        [stage("start", "begin", name_is("a")), stage("end", "followedBy", name_is("b"))],
        events(("a", 1.0)),
        "rejected: skip strategy naming an unknown stage",
        skip="skipToFirst:midd",
    ),
    # §7 windows and timeouts -------------------------------------------------------------------
    case(
        "NFATest.testWindowBorders",
        "nfa/NFATest.java",
        [stage("start", "begin", name_is("start")), stage("end", "followedBy", name_is("end"))],
        [
            {"id": 1, "ts": 1, "name": "start", "price": 1.0},
            {"id": 2, "ts": 3, "name": "end", "price": 1.0},
            {"id": 3, "ts": 4, "name": "start", "price": 1.0},
            {"id": 4, "ts": 5, "name": "end", "price": 1.0},
        ],
        "within(2): the right border is exclusive (last - first < window)",
        within=2,
    ),
    case(
        "NFAITCase.testSimplePatternWithTimeWindowNFAWithinFirstAndLast",
        NFA,
        [
            stage("start", "begin", name_is("start")),
            stage("middle", "followedBy", name_is("middle")),
            stage("end", "followedBy", name_is("end")),
        ],
        TIMED_EVENTS,
        "the window is measured from the first event of the partial match",
        within=10,
    ),
    case(
        "NFAITCase.testSimplePatternWithTimeWindowNFAWithinPreviousAndCurrent",
        NFA,
        [
            stage("start", "begin", name_is("start")),
            stage("middle", "followedBy", name_is("middle")),
            stage("end", "followedBy", name_is("end")),
        ],
        TIMED_EVENTS,
        "a PREVIOUS_AND_CURRENT window on end only constrains runs waiting for end",
        within=9,
        within_type="PREVIOUS_AND_CURRENT",
        within_stage="end",
    ),
    case(
        "NFAITCase.testSimplePatternWithTimeoutHandlingWithinFirstAndLast",
        NFA,
        [
            stage("start", "begin", name_is("start")),
            stage("middle", "followedByAny", name_is("middle")),
            stage("end", "followedByAny", name_is("end")),
        ],
        TIMED_EVENTS,
        "timed-out partial matches are reported; at the end of input time jumps to +inf",
        within=10,
    ),
    case(
        "NFAITCase.testSimplePatternWithTimeoutHandlingWithinPreviousAndCurrent",
        NFA,
        [
            stage("start", "begin", name_is("start")),
            stage("middle", "followedByAny", name_is("middle")),
            stage("end", "followedByAny", name_is("end")),
        ],
        TIMED_EVENTS,
        "PREVIOUS_AND_CURRENT: {start} partial matches never time out",
        within=10,
        within_type="PREVIOUS_AND_CURRENT",
        within_stage="end",
    ),
    case(
        "NFAITCase.testPendingStateMatchesWithinFirstAndLast",
        NFA,
        [
            stage("start", "begin", name_is("start")),
            stage("middle", "notFollowedBy", name_is("middle")),
        ],
        PENDING_EVENTS,
        "start notFollowedBy middle within 5: released when time passes first + 5",
        within=5,
    ),
    case(
        "NFAITCase.testPendingStateMatchesWithinPreviousAndCurrent",
        NFA,
        [
            stage("start", "begin", name_is("start")),
            stage("middle", "notFollowedBy", name_is("middle")),
        ],
        PENDING_EVENTS,
        "the same with a PREVIOUS_AND_CURRENT window on the NOT stage",
        within=5,
        within_type="PREVIOUS_AND_CURRENT",
        within_stage="middle",
    ),
    case(
        "CEPOperatorTest.testKeyedAdvancingTimeWithoutElements",
        "operator/CEPOperatorTest.java",
        [
            stage("start", "begin", name_is("start")),
            stage("middle", "followedBy", name_is("middle")),
        ],
        [{"id": 1, "ts": 5, "name": "start", "price": 1.0}],
        "a timeout fires even when no further event arrives",
        within=3,
    ),
    # §8 after-match skip --------------------------------------------------------------------------
    case(
        "AfterMatchSkipITCase.testNoSkip",
        SKIP,
        [stage("start", "begin", name_is("a"), times(3))],
        events(*[("a", 0.0)] * 6),
        "noSkip: every window of three a's",
    ),
    case(
        "AfterMatchSkipITCase.testSkipPastLast",
        SKIP,
        [stage("start", "begin", name_is("a"), times(3))],
        events(*[("a", 0.0)] * 6),
        "skipPastLastEvent: [a1 a2 a3] [a4 a5 a6]",
        skip="skipPastLastEvent",
    ),
    case(
        "AfterMatchSkipITCase.testSkipToNextWithFollowedByAny",
        SKIP,
        [stage("start", "begin", name_is("a")), stage("end", "followedByAny", name_is("b"))],
        events(("a", 0.0), ("b", 0.0), ("a", 0.0), ("b", 0.0)),
        "skipToNext drops every other run started at or before the match's first event",
        skip="skipToNext",
    ),
    case(
        "AfterMatchSkipITCase.testSkipToNextWithQuantifierAtTheEnd",
        SKIP,
        [stage("start", "begin", name_is("a")), stage("end", "next", name_is("b"), one_or_more())],
        events(("a", 0.0), ("b", 0.0), ("b", 0.0), ("b", 0.0)),
        "skipToNext with a loop at the end: only [a1 b1]",
        skip="skipToNext",
    ),
    case(
        "AfterMatchSkipITCase.testSkipPastLast2",
        SKIP,
        [
            stage("a", "begin", 'contains(name, "a")'),
            stage("b", "followedByAny", 'contains(name, "b")'),
            stage("c", "followedByAny", 'contains(name, "c")'),
            stage("d", "followedBy", 'contains(name, "d")'),
        ],
        [
            {"id": 1, "ts": 1, "name": "a1", "price": 0.0},
            {"id": 2, "ts": 2, "name": "a2", "price": 0.0},
            {"id": 3, "ts": 3, "name": "b1", "price": 0.0},
            {"id": 4, "ts": 4, "name": "b2", "price": 0.0},
            {"id": 5, "ts": 5, "name": "c1", "price": 0.0},
            {"id": 6, "ts": 6, "name": "c2", "price": 0.0},
            {"id": 7, "ts": 7, "name": "d1", "price": 0.0},
            {"id": 8, "ts": 7, "name": "d2", "price": 0.0},
        ],
        "several matches with the same start complete on one event: one of them is emitted "
        "first and prunes the others",
        skip="skipPastLastEvent",
    ),
    case(
        "AfterMatchSkipITCase.testSkipPastLast3",
        SKIP,
        [stage("a", "begin", 'contains(name, "a")'), stage("b", "next", 'contains(name, "b")')],
        [
            {"id": 1, "ts": 1, "name": "a1", "price": 0.0},
            {"id": 2, "ts": 2, "name": "c", "price": 0.0},
            {"id": 3, "ts": 3, "name": "a2", "price": 0.0},
            {"id": 4, "ts": 4, "name": "b2", "price": 0.0},
        ],
        "skipPastLastEvent with strict contiguity",
        skip="skipPastLastEvent",
    ),
    case(
        "AfterMatchSkipITCase.testSkipToFirst",
        SKIP,
        [
            stage("start", "begin", 'contains(name, "a")', times(2)),
            stage("end", "next", 'contains(name, "b")', times(2)),
        ],
        events(*[("ab", 0.0)] * 6),
        "skipToFirst(end): prune runs started strictly before end's first event",
        skip="skipToFirst:end",
    ),
    case(
        "AfterMatchSkipITCase.testSkipToLast",
        SKIP,
        [
            stage("start", "begin", 'contains(name, "a")', times(2)),
            stage("end", "next", 'contains(name, "b")', times(2)),
        ],
        events(*[("ab", 0.0)] * 7),
        "skipToLast(end): prune runs started strictly before end's last event",
        skip="skipToLast:end",
    ),
    case(
        "AfterMatchSkipITCase.testSkipToFirstDiscarding",
        SKIP,
        [
            stage("a or c", "begin", 'contains(name, "a") or contains(name, "c")'),
            stage("b or c", "followedBy", 'contains(name, "b") or contains(name, "c")'),
            stage("c*", "followedBy", 'contains(name, "c")', one_or_more(), greedy=True),
            stage("d", "followedBy", 'contains(name, "d")'),
        ],
        events(("a", 0.0), ("b", 0.0), ("c1", 0.0), ("c2", 0.0), ("c3", 0.0), ("d", 0.0)),
        "skipToFirst with a greedy loop (example from the docs)",
        skip="skipToFirst:c*",
    ),
    case(
        "AfterMatchSkipITCase.testSkipBeforeOtherAlreadyCompleted",
        SKIP,
        [
            stage("a", "begin", 'contains(name, "a")'),
            stage("c", "followedBy", 'contains(name, "c")'),
            stage("b", "followedBy", 'contains(name, "b") and first(a).price == price'),
        ],
        [
            {"id": 1, "ts": 1, "name": "a1", "price": 0.0},
            {"id": 2, "ts": 2, "name": "c1", "price": 0.0},
            {"id": 3, "ts": 3, "name": "a2", "price": 1.0},
            {"id": 4, "ts": 4, "name": "c2", "price": 0.0},
            {"id": 5, "ts": 5, "name": "b1", "price": 1.0},
            {"id": 6, "ts": 6, "name": "b2", "price": 0.0},
        ],
        "a completed match waits while an earlier-started run is alive",
        skip="skipToFirst:c",
    ),
    case(
        "AfterMatchSkipITCase.testSkipToFirstNonExistentPositionWithoutException",
        SKIP,
        [
            stage("a", "begin", 'contains(name, "a")'),
            stage("b", "next", 'contains(name, "b")', one_or_more("consecutive"), optional=True),
            stage("c", "next", 'contains(name, "c")'),
        ],
        [
            {"id": 1, "ts": 1, "name": "a", "price": 0.0},
            {"id": 2, "ts": 4, "name": "c", "price": 0.0},
        ],
        "a skip target absent from the match prunes nothing",
        skip="skipToFirst:b",
    ),
    case(
        "AfterMatchSkipITCase.testSkipToFirstNonExistentPosition",
        SKIP,
        [
            stage("a", "begin", 'contains(name, "a")'),
            stage("b", "next", 'contains(name, "b")', one_or_more("consecutive"), optional=True),
            stage("c", "next", 'contains(name, "c")'),
        ],
        [
            {"id": 1, "ts": 1, "name": "a", "price": 0.0},
            {"id": 2, "ts": 4, "name": "c", "price": 0.0},
        ],
        "throwExceptionOnMiss(): an absent skip target raises at runtime",
        skip="skipToFirst:b",
        skip_throw_on_miss=True,
    ),
    case(
        "AfterMatchSkipITCase.testSkipToFirstElementOfMatch",
        SKIP,
        [stage("a", "begin", 'contains(name, "a")')],
        [{"id": 1, "ts": 1, "name": "a1", "price": 0.0}],
        "throwExceptionOnMiss(): skipping to the match's own first event raises",
        skip="skipToFirst:a",
        skip_throw_on_miss=True,
    ),
    case(
        "AfterMatchSkipITCase.testSkipToLastWithOneOrMoreAtBeginning",
        SKIP,
        [
            stage("a", "begin", 'contains(name, "a")', one_or_more("consecutive"), greedy=True),
            stage("b", "next", 'contains(name, "b")'),
        ],
        events(("a1", 0.0), ("a2", 0.0), ("a3", 0.0), ("b1", 0.0)),
        "skipToLast(a) with a greedy consecutive loop at the beginning (docs example)",
        skip="skipToLast:a",
    ),
    case(
        "CEPITCase.testPartialMatchTimeoutOutputCompletedMatch",
        "CEPITCase.java",
        [
            stage("start", "begin", name_is("a")),
            stage("middle", "followedByAny", name_is("b")),
            stage("end", "followedBy", name_is("c")),
        ],
        [
            {"id": 1, "ts": 1, "name": "a", "price": 1.0},
            {"id": 2, "ts": 2, "name": "a", "price": 1.0},
            {"id": 3, "ts": 3, "name": "a", "price": 1.0},
            {"id": 4, "ts": 4, "name": "b", "price": 1.0},
            {"id": 5, "ts": 5, "name": "c", "price": 1.0},
            {"id": 6, "ts": 20, "name": "x", "price": 1.0},
        ],
        "completed matches wait for earlier partial matches to time out, then get pruned",
        within=4,
        skip="skipPastLastEvent",
    ),
    # §9 operator: time, order, lateness ------------------------------------------------------
    case(
        "CEPITCase.testSimplePatternEventTime",
        "CEPITCase.java",
        [
            stage("start", "begin", name_is("start")),
            stage("middle", "followedByAny", name_is("middle")),
            stage("end", "followedByAny", name_is("end")),
        ],
        [
            {"id": 1, "ts": 5, "name": "start", "price": 1.0},
            {"id": 2, "ts": 3, "name": "middle", "price": 1.0},
            {"id": 3, "ts": 6, "name": "middle", "price": 1.0},
            {"id": 4, "ts": 8, "name": "end", "price": 1.0},
            {"id": 5, "ts": 7, "name": "start", "price": 1.0},
            {"id": 6, "ts": 9, "name": "middle", "price": 1.0},
            {"id": 7, "ts": 10, "name": "end", "price": 1.0},
        ],
        "out-of-order input is matched in event-time order",
        ooo=5,
    ),
    case(
        "CEPOperatorTest.testCEPOperatorCleanupEventTime",
        "operator/CEPOperatorTest.java",
        [stage("start", "begin", name_is("start")), stage("end", "followedBy", name_is("end"))],
        [
            {"id": 1, "ts": 10, "name": "start", "price": 1.0},
            {"id": 2, "ts": 13, "name": "start", "price": 1.0},
            {"id": 3, "ts": 12, "name": "end", "price": 1.0},
            {"id": 4, "ts": 14, "name": "end", "price": 1.0},
        ],
        "a record whose timestamp equals the watermark is late (watermark 12 after ts 13)",
    ),
    case(
        "CEPOperatorTest.testCEPOperatorSideOutputLateElementsEventTime",
        "operator/CEPOperatorTest.java",
        [stage("start", "begin", name_is("start")), stage("end", "followedByAny", name_is("end"))],
        [
            {"id": 1, "ts": 5, "name": "start", "price": 1.0},
            {"id": 2, "ts": 20, "name": "end", "price": 1.0},
            {"id": 3, "ts": 7, "name": "start", "price": 1.0},
            {"id": 4, "ts": 19, "name": "end", "price": 1.0},
            {"id": 5, "ts": 22, "name": "end", "price": 1.0},
        ],
        "late records (ts <= watermark) are not matched and are reported in arrival order",
        ooo=1,
    ),
    case(
        "CEPOperatorTest.testCEPOperatorComparatorEventTime~ties-keep-arrival-order",
        "operator/CEPOperatorTest.java",
        [stage("start", "begin", name_is("a")), stage("end", "next", name_is("b"))],
        [
            {"id": 1, "ts": 3, "name": "b", "price": 1.0},
            {"id": 2, "ts": 3, "name": "a", "price": 1.0},
            {"id": 3, "ts": 3, "name": "b", "price": 1.0},
            {"id": 4, "ts": 2, "name": "a", "price": 1.0},
        ],
        "events with equal timestamps keep their arrival order (no comparator)",
        ooo=2,
    ),
]
