"""Random burst cases in the Flink-oracle format (``shared/peers/flinkoracle/README.md``):
looping stages before a last waiting stage, and event sequences where one kind repeats, so
that many partial matches start and wait together (the cohorts of docs/semantics.md)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

__all__ = ["burst_cases", "stage"]

def stage(name: str, contiguity: str, where: str, quantifier: dict[str, Any] | None = None,
          greedy: bool = False, until: str | None = None) -> dict[str, Any]:
    """One stage of an oracle case (not optional, not a group)."""
    return {"name": name, "contiguity": contiguity, "where": where, "quantifier": quantifier,
            "optional": False, "greedy": greedy, "until": until, "group": None}


@st.composite
def burst_cases(draw: Any, skip: str = "skipPastLastEvent", max_events: int = 30
                ) -> dict[str, Any]:
    """Hypothesis strategy: a pattern whose last stage waits after looping stages (where
    cohorts pile up), under ``skip``, and a bursty sequence of 8 to ``max_events`` events."""
    n = draw(st.integers(1, 3))
    stages = []
    for i in range(n):
        name = "ABC"[i]
        contiguity = "begin" if i == 0 else draw(
            st.sampled_from(("followedBy", "followedByAny", "next")))
        cond = draw(st.sampled_from(
            ['name == "a"', 'name == "a"', 'name == "b"', 'name != "c"', "price > 3", "true"]))
        q = None
        if i == 0 or i < n - 1 or draw(st.booleans()):
            kind = draw(st.sampled_from(("oneOrMore", "timesOrMore", "times", "none")
                                        if i else ("oneOrMore", "timesOrMore")))
            inner = draw(st.sampled_from(("relaxed", "relaxed", "consecutive",
                                          "allowCombinations")))
            if kind == "oneOrMore":
                q = {"kind": "oneOrMore", "min": 1, "max": None, "inner": inner}
            elif kind == "timesOrMore":
                q = {"kind": "timesOrMore", "min": draw(st.integers(1, 3)), "max": None,
                     "inner": inner}
            elif kind == "times":
                k = draw(st.integers(1, 3))
                q = {"kind": "times", "min": k, "max": k, "inner": inner}
        greedy = (q is not None and q["kind"] != "times" and inner != "allowCombinations"
                  and draw(st.integers(0, 4)) == 0)
        stages.append(stage(name, contiguity, cond, q, greedy))
    last = draw(st.sampled_from(("followedBy", "followedBy", "followedByAny", "next")))
    where = draw(st.sampled_from(['name == "c"', 'name == "c" or price > 7',
                                  'name == "c" and count(A) > 2', "true"]))
    stages.append(stage("Z", last, where))
    window = draw(st.sampled_from((None, None, 4, 8, 15)))
    names = draw(st.lists(st.sampled_from(("a", "a", "a", "b", "c")), min_size=8,
                          max_size=max_events))
    ts = 0
    events = []
    for i, name in enumerate(names, 1):
        ts += draw(st.sampled_from((0, 1, 1, 2)))
        events.append({"id": i, "ts": ts, "name": name, "price": draw(st.integers(0, 9))})
    return {"id": "burst", "stages": stages, "within_ms": window, "skip": skip,
            "events": events}
