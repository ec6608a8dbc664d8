"""Random Flink-oracle cases (``shared/peers/flinkoracle/README.md`` format) for differential tests.

One generator, two drivers: :func:`cases` is a Hypothesis strategy (shrinks well: every choice is
a small integer), :func:`random_case` draws the same distribution from a seeded
``random.Random`` (used to build the stored Flink fixtures reproducibly).

The generated patterns are valid for Flink (no §10 rejection) and stay inside the subset the
reference matcher supports; the combinations left out on purpose are listed in
``tests/reference/README.md`` and in :data:`EXCLUSIONS`.
"""

from __future__ import annotations

import random
import re
from typing import Any, Protocol

from hypothesis import strategies as st

__all__ = ["cases", "random_case", "EXCLUSIONS", "Draw"]

EXCLUSIONS = {
    "groups": "groups only contain 2-3 plain stages (no quantifier, optional or NOT inside), "
    "are not nested, never follow a greedy stage, and a quantified group is never followed by "
    "a NOT stage",
    "pc_window": "PREVIOUS_AND_CURRENT windows only on a final notFollowedBy or on a plain, "
    "unquantified, non-optional stage that follows a plain non-optional stage",
    "greedy_next_to_not": "a greedy stage is never directly before or after a NOT stage, and an "
    "optional greedy stage never has a notFollowedBy reachable backwards over optional stages",
    "adjacent_nots": "two NOT stages are never adjacent",
}

NAMES = ("a", "b", "c", "d")
EVENT_NAMES = ("a", "b", "c", "d", "a", "b", "c")
_NAME_EQ = re.compile(r'name == "(\w)"')
STAGE_NAMES = ("A", "B", "C", "D", "E")
NOT_NAMES = ("N1", "N2", "N3", "N4")


class Draw(Protocol):
    def integer(self, lo: int, hi: int) -> int: ...

    def pick(self, options: list[Any] | tuple[Any, ...]) -> Any: ...

    def flag(self, percent: int) -> bool: ...


class RandomDraw:
    """Draws from a seeded ``random.Random``."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def integer(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)

    def pick(self, options):
        return options[self.rng.randrange(len(options))]

    def flag(self, percent: int) -> bool:
        return self.rng.randrange(100) < percent


class HypothesisDraw:
    """Draws through Hypothesis's ``draw`` (every choice shrinks towards the simplest case)."""

    def __init__(self, draw) -> None:
        self.draw = draw

    def integer(self, lo: int, hi: int) -> int:
        return self.draw(st.integers(lo, hi))

    def pick(self, options):
        return options[self.draw(st.integers(0, len(options) - 1))]

    def flag(self, percent: int) -> bool:
        # 0 (what Hypothesis shrinks to) is "no"
        return self.draw(st.integers(0, 99)) >= 100 - percent


# ----------------------------------------------------------------------------- conditions


def _simple_condition(d: Draw, w: dict[str, Any]) -> str:
    kind = d.integer(0, 13)
    if kind <= 4:
        return f'name == "{d.pick(NAMES)}"'
    if kind == 5:
        return f'name != "{d.pick(NAMES)}"'
    if kind == 6:
        return f"price {d.pick(('>', '>=', '<', '<='))} {d.integer(0, 9)}"
    if kind == 7:
        return f'name == "{d.pick(NAMES)}" or name == "{d.pick(NAMES)}"'
    if kind == 8:
        return f'name == "{d.pick(NAMES)}" and price {d.pick((">", "<"))} {d.integer(1, 8)}'
    if kind == 9:
        return f'type == "SubEvent" and volume {d.pick((">", "<="))} {d.integer(1, 8)}'
    if kind == 10:
        return f'not (startsWith(name, "{d.pick(NAMES)}") or price * 2 > {d.integer(4, 16)})'
    if kind == 11 and w.get("if", True):
        return f'if(name == "{d.pick(NAMES)}", price > {d.integer(0, 9)}, contains("ab", name))'
    return "true"


def _iterative_condition(d: Draw, own: str, earlier: list[str]) -> str:
    ref = d.pick([own, *earlier]) if earlier and d.flag(40) else own
    kind = d.integer(0, 4)
    if kind == 0:
        return f"sum({ref}.price) + price < {d.integer(4, 14)}"
    if kind == 1:
        return f'count({ref}) < {d.integer(1, 3)} and name == "{d.pick(NAMES)}"'
    if kind == 2:
        return f"price > last({ref}).price"
    if kind == 3:
        return f'name == "{d.pick(NAMES)}" and (count({ref}) == 0 or price >= first({ref}).price)'
    return f"ts - first({ref}).ts < {d.integer(1, 4)} or count({ref}) == 0"


def _condition(d: Draw, own: str, earlier: list[str], w: dict[str, int]) -> str:
    if d.flag(w["iterative"]):
        return _iterative_condition(d, own, earlier)
    return _simple_condition(d, w)


# ----------------------------------------------------------------------------- stages


def _stage(name: str, contiguity: str, where: str) -> dict[str, Any]:
    return {
        "name": name,
        "contiguity": contiguity,
        "where": where,
        "quantifier": None,
        "optional": False,
        "greedy": False,
        "until": None,
        "group": None,
    }


def _quantifier(d: Draw) -> dict[str, Any] | None:
    kind = d.integer(0, 9)
    if kind <= 3:
        return None
    inner = d.pick(("relaxed", "relaxed", "consecutive", "allowCombinations"))
    if kind == 4:
        n = d.integer(1, 3)
        return {"kind": "times", "min": n, "max": n, "inner": inner}
    if kind in (5, 6):
        lo = d.integer(0, 2)
        hi = d.integer(max(lo, 1) + (0 if lo == 0 else 1), 3)
        return {"kind": "timesRange", "min": lo, "max": hi, "inner": inner}
    if kind in (7, 8):
        return {"kind": "oneOrMore", "min": 1, "max": None, "inner": inner}
    return {"kind": "timesOrMore", "min": d.integer(1, 3), "max": None, "inner": inner}


def _is_looping(q: dict[str, Any] | None) -> bool:
    return q is not None and q["kind"] in ("oneOrMore", "timesOrMore")


def _greedy_able(q: dict[str, Any] | None) -> bool:
    if q is None or q["inner"] == "allowCombinations":
        return False
    if _is_looping(q):
        return True
    return q["kind"] == "timesRange" and q["min"] != q["max"] and q["max"] > max(q["min"], 1)


PROFILES: dict[str, dict[str, int]] = {
    # how often each optional feature appears (percent), and the longest event sequence
    "default": {
        "iterative": 15,
        "not_mid": 25,
        "not_end": 20,
        "optional": 25,
        "until": 20,
        "greedy": 30,
        "ooo": 20,
        "max_events": 9,
        "group": 12,
        "pc": 12,
    },
    "heavy": {
        "iterative": 25,
        "not_mid": 55,
        "not_end": 45,
        "optional": 45,
        "until": 45,
        "greedy": 60,
        "ooo": 25,
        "max_events": 10,
        "group": 25,
        "pc": 20,
    },
}


def gen_case(
    d: Draw,
    case_id: str = "gen",
    profile: str = "default",
    *,
    if_function: bool = True,
    throw_on_miss: bool = True,
) -> dict[str, Any]:
    w = dict(PROFILES[profile], **{"if": if_function})
    n_pos = d.integer(1, 4)
    stages: list[dict[str, Any]] = []
    positive: list[str] = []
    nots_used = 0
    window = d.pick((None, None, 3, 4, 5, 6, 8, 10, 15))
    for i in range(n_pos):
        name = STAGE_NAMES[i]
        if i == 0:
            contiguity = "begin"
        else:
            prev = stages[-1]
            # an optional stage cannot be followed by a NOT stage (§6, §10)
            if _not_may_follow(prev) and d.flag(w["not_mid"]):
                kind = d.pick(("notNext", "notFollowedBy"))
                stages.append(_stage(NOT_NAMES[nots_used], kind, _simple_condition(d, w)))
                nots_used += 1
            contiguity = d.pick(("next", "followedBy", "followedBy", "followedByAny"))
        prev_stage = stages[-1] if stages else None
        after_greedy = prev_stage is not None and prev_stage["greedy"]
        if not after_greedy and d.flag(w["group"]):
            st_ = _group(d, name, contiguity, positive, w)
            stages.append(st_)
            continue
        st_ = _stage(name, contiguity, _condition(d, name, positive, w))
        st_["quantifier"] = _quantifier(d)
        q = st_["quantifier"]
        if _zero_range(q):
            # times(0, n) is times(1, n).optional(): optional() must not be applied again, and
            # it may not follow a greedy stage either
            if after_greedy:
                q["min"] = 1
        elif not after_greedy and d.flag(w["optional"]):
            st_["optional"] = True
        if _is_looping(q) and d.flag(w["until"]):
            st_["until"] = _simple_condition(d, w)
        if _greedy_able(q) and d.flag(w["greedy"]):
            prev_is_not = prev_stage is not None and prev_stage["contiguity"] in (
                "notNext",
                "notFollowedBy",
            )
            nf_behind = _optional(st_) and _nf_reachable_backwards(stages)
            if not prev_is_not and not nf_behind:
                st_["greedy"] = True
        stages.append(st_)
        positive.append(name)
    # a NOT stage at the end
    if _not_may_follow(stages[-1]) and d.flag(w["not_end"]):
        kind = "notNext" if window is None or d.flag(40) else "notFollowedBy"
        stages.append(_stage(NOT_NAMES[nots_used], kind, _simple_condition(d, w)))
    skip_kind = d.integer(0, 9)
    if skip_kind <= 3:
        skip = "noSkip"
    elif skip_kind <= 5:
        skip = "skipPastLastEvent"
    elif skip_kind == 6:
        skip = "skipToNext"
    else:
        # only top-level stage names are valid targets (group members are not found, §10)
        top = [s["name"] for s in stages if s["group"] is None and s["name"] not in NOT_NAMES]
        nots = [s["name"] for s in stages if s["name"] in NOT_NAMES]
        how = d.pick(("skipToFirst", "skipToLast"))
        if nots and (not top or d.flag(10)):
            skip = f"{how}:{d.pick(nots)}"
        elif top:
            skip = f"{how}:{d.pick(top)}"
        else:
            skip = "skipPastLastEvent"
    events, ooo = _events(d, w, stages)
    case: dict[str, Any] = {
        "id": case_id,
        "stages": stages,
        "within_ms": window,
        "skip": skip,
        "events": events,
    }
    if throw_on_miss and skip.startswith("skipTo") and ":" in skip and d.flag(10):
        case["skip_throw_on_miss"] = True
    targets = _pc_targets(stages)
    if window is not None and targets and d.flag(w["pc"]):
        # a PREVIOUS_AND_CURRENT window replaces the global one; a final notFollowedBy then
        # needs it
        last = stages[-1]
        if last["contiguity"] == "notFollowedBy":
            target = last["name"]
        else:
            target = d.pick(targets)
        case["within_type"] = "PREVIOUS_AND_CURRENT"
        case["within_stage"] = target
    if ooo:
        case["ooo"] = ooo
    return case


def _group(
    d: Draw, name: str, contiguity: str, positive: list[str], w: dict[str, int]
) -> dict[str, Any]:
    """A group of 2-3 plain member stages (names ``<name>1``, ``<name>2``, ...)."""
    members = []
    for m in range(d.integer(2, 3)):
        mname = f"{name}{m + 1}"
        how = "begin" if m == 0 else d.pick(("next", "followedBy", "followedBy", "followedByAny"))
        members.append(_stage(mname, how, _condition(d, mname, positive, w)))
        positive.append(mname)
    g = _stage(None, contiguity, None)  # type: ignore[arg-type]
    g["group"] = members
    g["quantifier"] = _quantifier(d)
    q = g["quantifier"]
    if not _zero_range(q) and d.flag(w["optional"]):
        g["optional"] = True
    if _is_looping(q) and d.flag(w["until"]):
        g["until"] = _simple_condition(d, w)
    return g


def _pc_targets(stages: list[dict[str, Any]]) -> list[str]:
    """Stages that may carry a PREVIOUS_AND_CURRENT window in generated cases: a final
    notFollowedBy, or a plain, unquantified, non-optional stage after a plain non-optional
    stage (possibly across a notFollowedBy)."""
    out = []
    for j, s in enumerate(stages):
        if s["contiguity"] == "notFollowedBy" and j == len(stages) - 1:
            out.append(s["name"])
            continue
        if j == 0 or s["group"] is not None or s["quantifier"] is not None or _optional(s):
            continue
        if s["contiguity"] in ("notNext", "notFollowedBy"):
            continue
        prev = stages[j - 1]
        if prev["contiguity"] == "notFollowedBy":
            prev = stages[j - 2]
        if prev["contiguity"] == "notNext" or prev["group"] is not None or _optional(prev):
            continue
        out.append(s["name"])
    return out


def _not_may_follow(prev: dict[str, Any]) -> bool:
    """A NOT stage may follow ``prev``: not optional (§10), not greedy, not a quantified group
    (both left out, see EXCLUSIONS)."""
    if _optional(prev) or prev["greedy"]:
        return False
    return not (prev["group"] is not None and prev["quantifier"] is not None)


def _nf_reachable_backwards(stages: list[dict[str, Any]]) -> bool:
    for s in reversed(stages):
        if s["contiguity"] == "notFollowedBy":
            return True
        if not _optional(s):
            return False
    return False


def _zero_range(q: dict[str, Any] | None) -> bool:
    return q is not None and q["kind"] == "timesRange" and q["min"] == 0


def _optional(stage: dict[str, Any]) -> bool:
    return bool(stage["optional"]) or _zero_range(stage["quantifier"])


def _wanted_names(stages: list[dict[str, Any]]) -> list[str]:
    """Event names the positive stages ask for (``name == "x"``), in stage order."""
    out = []
    for s in stages:
        if s["contiguity"] in ("notNext", "notFollowedBy"):
            continue
        for member in s["group"] or [s]:
            m = _NAME_EQ.search(member["where"] or "")
            out.append(m.group(1) if m else "")
    return out


def _events(
    d: Draw, w: dict[str, int], stages: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], int]:
    n = d.integer(2, w["max_events"])
    # Half of the sequences follow the pattern's stages (so that matches are frequent):
    # event i then prefers the name wanted by the stage it would fall into.
    plan = _wanted_names(stages) if d.flag(50) else []
    ts = d.integer(0, 3)
    out = []
    for i in range(n):
        ts += d.pick((0, 1, 1, 1, 2, 3))
        name = d.pick(EVENT_NAMES)
        if plan and d.flag(70):
            wanted = plan[min(len(plan) - 1, i * len(plan) // n)]
            name = wanted or name
        ev: dict[str, Any] = {"id": i + 1, "ts": ts, "name": name}
        ev["price"] = d.integer(0, 9)
        if d.flag(15):
            ev["type"] = "SubEvent"
            ev["volume"] = d.integer(0, 9)
        out.append(ev)
    ooo = 0
    if n > 1 and d.flag(w["ooo"]):
        ooo = d.integer(0, 3)
        # perturb the arrival order: a few events arrive later than their time
        for _ in range(d.integer(1, 3)):
            i = d.integer(0, n - 2)
            j = d.integer(i + 1, min(n - 1, i + 3))
            out.insert(j, out.pop(i))
        for k, ev in enumerate(out):
            ev["id"] = k + 1
    return out, ooo


@st.composite
def cases(
    draw, profile: str | None = None, if_function: bool = True, throw_on_miss: bool = True
) -> dict[str, Any]:
    """Hypothesis strategy: one random case (profile drawn too unless given).
    ``if_function=False`` leaves out conditions using ``if(...)``, ``throw_on_miss=False``
    the ``throwExceptionOnMiss()`` skip strategies."""
    if profile is None:
        profile = draw(st.sampled_from(sorted(PROFILES)))
    return gen_case(
        HypothesisDraw(draw),
        "hypothesis",
        profile,
        if_function=if_function,
        throw_on_miss=throw_on_miss,
    )


def random_case(
    rng: random.Random, case_id: str, profile: str = "default", *, if_function: bool = True
) -> dict[str, Any]:
    return gen_case(RandomDraw(rng), case_id, profile, if_function=if_function)
