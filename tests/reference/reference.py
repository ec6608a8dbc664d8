"""Reference matcher: Flink CEP semantics stated as rules over *runs*, evaluated by brute force.

This module is the slow, "obviously correct" side of the differential tests.  It reads a case
in the Flink-oracle format (``shared/peers/flinkoracle/README.md``) and returns what Flink's
``--mode file`` produces: ``{"matches", "timeouts", "late", "error"}``.  It is written from the
semantics in ``shared/design/flink-semantics.md`` (section numbers below) and from Flink's
observed behaviour, not from any NFA implementation: there is no compiled automaton, every rule
is a predicate over the pattern's stages and the events a run holds.

Vocabulary
----------

*Stage*    one entry of the pattern's stage list (NOT stages and groups included).
*Element*  one occurrence of a stage inside a match, ``(stage, iteration k, member)``:
           ``(j, k, -1)`` is the k-th element of stage j (a stage without quantifier has only
           k = 1; ``times(2, 4)`` has k = 1..4 of which 1..2 are mandatory; a looping stage has no
           upper bound); ``(j, k, m)`` is member m of the k-th iteration of group j.
*Run*      a partial match: the events taken so far, each labelled with its element, and where
           the run waits:

           * ``after``    - right after its last taken element, nothing seen since;
           * ``skipping`` - it has skipped at least one event while waiting for one *committed*
                            element (the target);
           * ``pending``  - it completed every stage before a final ``notFollowedBy`` and waits
                            for the window to close.

Every event is offered to every run (and to a run holding nothing, which stands for "a match may
start here").  What a run may do with an event follows from these rules:

R1 Next elements (§2, §3).  After element (j, c) the run may continue the same stage with
   (j, c + 1) while c < max (inside a group: the next member, then the next iteration's first
   member), and, once c >= min (a group iteration being complete), leave it: walk forward over
   the following stages; a NOT stage is passed (``notNext`` only when the event is not an X), an
   optional stage offers its first element and is passed, the first non-optional stage offers
   its first element and ends the walk.  A take after which this walk reaches the end of the
   pattern completes a match on that event (§1; an empty match is never produced).  A run whose
   last element leaves nothing but the end is complete, not partial.
R2 Take.  An element takes an event satisfying its stage's condition, evaluated against the
   events the run already holds; quantified stages with ``until`` and members of a group with
   ``until`` also need "not until" (§5).
R3 Skip.  Skipping an event commits the run to one element (§3: the "ignore" copy of a loop or
   of an optional stage cannot leave it): every later skipped event and the next taken event
   belong to that element.  Exception: a run skipping towards the first member of a
   non-mandatory iteration of a group may still leave the group on a later event.  Which events
   an element may skip: for k = 1 the stage's own contiguity (``next``: none, ``followedBy``:
   those not satisfying the stage, ``followedByAny``: all), for k >= 2 the inner contiguity
   (``consecutive``: none, relaxed: those not satisfying the stage, ``allowCombinations``: all),
   with ``until`` (k >= 2, and every group member) also only events not satisfying ``until``.
   A group member after the first one skips by its own contiguity, the first member by the
   group's (outer for iteration 1, inner afterwards).  A run holding nothing never skips.
R4 Greedy (§4).  The first element of the stage right after a greedy stage S (looping, or a
   times range) can neither take nor skip an event S's condition accepts - unless the run left
   S on an event satisfying S's ``until``.
R5 NOT stages (§6).  An event satisfying the condition of a NOT stage in whose scope a run waits
   kills the run *and everything it would produce from that event*, except matches completed
   by that very event.  Scopes:
   * ``notNext`` X: the first event after the stage before it, for runs whose count there
     allows leaving that stage; at the end of the pattern the first event that is not an X
     completes the match (without that event).
   * ``notFollowedBy`` X between P and T: events seen while waiting for the first element of T,
     or of a later stage when the stages in between are optional and skipped; after P's first
     element, also events seen while waiting for P's later elements - except runs skipping
     towards an optional iteration of a times range.  Taking an event in an optional stage after
     the NOT lifts it; taking events inside an optional (non-looping) group does not.  Runs
     skipping towards an optional iteration of a times range, or towards the first element of
     an optional stage, are checked against every ``notFollowedBy`` found walking back over
     optional stages; runs skipping towards the first member of an optional group against
     none.
   * ``notFollowedBy`` X at the end: a run that completed all other stages is pending; a run
     whose last stage could still take more elements becomes pending with the next event that
     is not an X.
R6 Windows (§7).  With ``within`` (FIRST_AND_LAST) a run is dropped as soon as time reaches
   first_ts + window: it is reported as a timeout, or released as a match when pending.  With a
   PREVIOUS_AND_CURRENT window on stage S the same happens at last_ts + window, only to runs
   waiting *at* S: runs committed to S's first element by skipping (not through the copy of
   R4's until case), runs whose last element leaves nothing but S, and, for a final
   ``notFollowedBy``, pending runs.
R7 After-match skip (§8).  Matches are emitted in start order: a completed match waits while a
   run that started earlier is alive.  Emitting match M drops the runs and waiting matches
   that started at/before (skipToNext, skipPastLastEvent) or strictly before
   (skipToFirst/skipToLast) the strategy's event of M.  With ``throwExceptionOnMiss`` an
   emission whose target stage is absent from M, or is M's first event, raises.  When several
   waiting matches share the earliest start Flink's choice is an implementation detail (heap
   order): every choice is explored, every distinct outcome is returned in ``alternatives``.
R8 File mode (§9, the oracle's CepOperator).  The watermark after each event is max ts - ooo -
   1; an event whose ts is <= the watermark on arrival is late, the others are buffered.
   Timers fire at every buffered timestamp and at ts + window after an event that started a
   run (ts > 0); a firing timer advances time to each buffered timestamp <= watermark in turn
   and matches its events in arrival order, then advances time to the watermark.  At the end
   the watermark is +infinity.

Not supported (``ReferenceUnsupported``): nested groups, group members with quantifiers or
options, NOT stages after a quantified group, a group right after a greedy stage, PREVIOUS_AND_
CURRENT windows other than the ones of R6's list, stage-level ``within``, ``key_by``.  See
tests/reference/README.md for what the strategies leave out and why.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .conditions import Condition, compile_condition

__all__ = [
    "ReferenceUnsupported",
    "PatternRejected",
    "reference_run",
    "reference_outcomes",
    "parse_pattern",
    "late_events",
    "same_result",
]

INF = float("inf")
MAX_WORLDS = 512  # distinct histories kept when R7 leaves free choices
BRANCH_BUDGET = 50_000  # histories created per case before giving up on exploring choices


class ReferenceUnsupported(Exception):
    """The case uses a construct outside the reference's documented subset."""


class PatternRejected(Exception):
    """Flink rejects the pattern when it is built or compiled (§10)."""


# ============================================================================ pattern model


@dataclass(frozen=True)
class Stage:
    """A stage of the pattern; a group is a stage whose ``members`` are its inner stages."""

    index: int
    name: str
    kind: str  # "stage" | "group" | "notNext" | "notFollowedBy"
    cond: Condition
    contiguity: str  # begin | next | followedBy | followedByAny | notNext | notFollowedBy
    min: int  # mandatory elements (1 for a stage without quantifier)
    max: float  # most elements (INF for looping stages)
    looping: bool
    quantified: bool
    inner: str  # relaxed | consecutive | allowCombinations
    optional: bool
    greedy: bool
    until: Condition | None
    members: tuple[Stage, ...] = ()

    @property
    def is_not(self) -> bool:
        return self.kind in ("notNext", "notFollowedBy")

    @property
    def greedy_effective(self) -> bool:
        # greedy only rewrites anything for loops and real ranges (§4)
        return self.greedy and (self.looping or self.min != self.max)


# An element is (stage index, iteration, member index): (j, k, -1) is the k-th element of
# stage j; (j, k, m) is member m of the k-th iteration of group j.
Element = tuple[int, int, int]
Taken = tuple[tuple[int, Element], ...]  # (event position, element) in taking order


@dataclass(frozen=True)
class Pattern:
    stages: tuple[Stage, ...]
    window: int | None  # FIRST_AND_LAST window in ms, None = no window
    skip: str  # noSkip | skipToNext | skipPastLastEvent | skipToFirst | skipToLast
    skip_stage: str | None
    throw_on_miss: bool = False
    pc_window: int | None = None  # PREVIOUS_AND_CURRENT window of stage pc_stage
    pc_stage: int | None = None

    @property
    def n(self) -> int:
        return len(self.stages)

    def following_not(self, j: int) -> Stage | None:
        """The notFollowedBy stage directly after stage j, if any."""
        if j + 1 < self.n and self.stages[j + 1].kind == "notFollowedBy":
            return self.stages[j + 1]
        return None

    def nots_reachable_backwards(self, j: int) -> tuple[int, ...]:
        """notFollowedBy stages found walking back from stage j over optional stages and
        notFollowedBy stages (the NOT conditions attached to stage j's first element)."""
        out = []
        k = j - 1
        while k >= 0:
            s = self.stages[k]
            if s.kind == "notFollowedBy":
                out.append(k)
            elif s.is_not or not s.optional:
                break
            k -= 1
        return tuple(out)

    def greedy_before(self, j: int) -> Stage | None:
        if j >= 1:
            s = self.stages[j - 1]
            if s.kind == "stage" and s.greedy_effective:
                return s
        return None

    def ends_pending(self) -> bool:
        return self.n > 0 and self.stages[-1].kind == "notFollowedBy"

    def leaf(self, e: Element) -> Stage:
        j, _k, m = e
        s = self.stages[j]
        return s if m < 0 else s.members[m]


def _quantifier_bounds(q: Mapping[str, Any] | None) -> tuple[int, float, bool, bool, str]:
    """(min, max, looping, optional-by-rewrite, inner) of a quantifier description."""
    if q is None:
        return 1, 1, False, False, "relaxed"
    kind = q.get("kind")
    inner = q.get("inner") or "relaxed"
    lo = q.get("min")
    if kind == "times":
        n = 1 if lo is None else int(lo)
        if n <= 0:
            raise PatternRejected("times() needs a positive count")
        return n, n, False, False, inner
    if kind == "timesRange":
        a = int(lo if lo is not None else 1)
        b = int(q["max"])
        if a < 0 or b < a or b <= 0:
            raise PatternRejected("bad times range")
        if a == 0:  # times(0, n) == times(1, n).optional()  (§3)
            return 1, b, False, True, inner
        return a, b, False, False, inner
    if kind == "oneOrMore":
        return 1, INF, True, False, inner
    if kind == "timesOrMore":
        n = 1 if lo is None else int(lo)
        return n, INF, True, False, inner
    raise ReferenceUnsupported(f"quantifier {kind}")


def _parse_stage(i: int, st: Mapping[str, Any], names: set[str], in_group: bool) -> Stage:
    if st.get("within_ms") is not None:
        raise ReferenceUnsupported("stage-level within")
    contiguity = st["contiguity"]
    kind = contiguity if contiguity in ("notNext", "notFollowedBy") else "stage"
    members: tuple[Stage, ...] = ()
    group = st.get("group")
    name = str(st.get("name"))
    if group is not None:
        if in_group:
            raise ReferenceUnsupported("nested groups")
        kind = "group"
        if not group or group[0]["contiguity"] != "begin":
            raise PatternRejected("a group starts with begin")
        members = tuple(_parse_stage(m, g, names, True) for m, g in enumerate(group))
        for mem in members[1:]:
            if mem.contiguity == "begin":
                raise PatternRejected("begin must come first")
        for mem in members:
            if mem.kind != "stage" or mem.quantified or mem.optional or mem.greedy:
                raise ReferenceUnsupported("group members other than plain single stages")
        name = f"<group {i}>"
    else:
        if name in names:
            raise PatternRejected(f"duplicate stage name {name}")
        names.add(name)
    q = st.get("quantifier")
    lo, hi, looping, opt_rewrite, inner = _quantifier_bounds(q)
    if st.get("optional") and opt_rewrite:
        raise PatternRejected("optional already applied")
    until = st.get("until")
    return Stage(
        index=i,
        name=name,
        kind=kind,
        cond=compile_condition(st.get("where")),
        contiguity=contiguity,
        min=lo,
        max=hi,
        looping=looping,
        quantified=q is not None,
        inner=inner,
        optional=bool(st.get("optional")) or opt_rewrite,
        greedy=bool(st.get("greedy")),
        until=compile_condition(until) if until is not None else None,
        members=members,
    )


def parse_pattern(case: Mapping[str, Any]) -> Pattern:
    if case.get("builder_calls"):
        raise ReferenceUnsupported("builder_calls")
    if case.get("key_by"):
        raise ReferenceUnsupported("key_by")
    if case.get("within_type") not in (None, "FIRST_AND_LAST", "PREVIOUS_AND_CURRENT"):
        raise ReferenceUnsupported(f"window type {case.get('within_type')}")
    raw = case.get("stages") or []
    if not raw:
        raise PatternRejected("no stages")
    stages: list[Stage] = []
    names: set[str] = set()
    for i, st in enumerate(raw):
        if (i == 0) != (st["contiguity"] == "begin"):
            raise PatternRejected("begin must come first")
        stage = _parse_stage(i, st, names, False)
        _check_stage(stage, stages)
        stages.append(stage)
    window = case.get("within_ms")
    if window is not None and int(window) <= 0:
        window = None  # within(0) disables the window (§7)
    pc_window, pc_stage = None, None
    if window is not None and case.get("within_type") == "PREVIOUS_AND_CURRENT":
        pc_window, window = int(window), None
        target = case.get("within_stage")
        pc_stage = len(stages) - 1
        if target is not None:
            found = [j for j, st in enumerate(stages) if st.name == target]
            if not found:
                raise ReferenceUnsupported("within_stage names a group member or no stage")
            pc_stage = found[0]
        _check_pc_stage(stages, pc_stage)
    if stages[-1].kind == "notFollowedBy" and window is None and pc_stage != len(stages) - 1:
        raise PatternRejected("notFollowedBy at the end needs a window")
    skip = case.get("skip") or "noSkip"
    skip_stage = None
    if ":" in skip:
        skip, skip_stage = skip.split(":", 1)
        if skip_stage not in {s.name for s in stages if s.kind != "group"}:
            raise PatternRejected(f"skip strategy names unknown stage {skip_stage}")
    if skip not in ("noSkip", "skipToNext", "skipPastLastEvent", "skipToFirst", "skipToLast"):
        raise ReferenceUnsupported(f"skip strategy {skip}")
    pattern = Pattern(
        tuple(stages),
        None if window is None else int(window),
        skip,
        skip_stage,
        bool(case.get("skip_throw_on_miss")) and skip in ("skipToFirst", "skipToLast"),
        pc_window,
        pc_stage,
    )
    for j, s in enumerate(stages):
        if s.kind == "group":
            g = pattern.greedy_before(j)
            if g is not None:
                raise ReferenceUnsupported("a group right after a greedy stage")
            if pattern.following_not(j) is not None or (
                j + 1 < pattern.n and pattern.stages[j + 1].kind == "notNext"
            ):
                if s.quantified:
                    raise ReferenceUnsupported("a NOT stage after a quantified group")
    return pattern


def _check_pc_stage(stages: Sequence[Stage], j: int) -> None:
    """The PREVIOUS_AND_CURRENT windows the reference models (R6): on a plain stage that is
    neither optional nor quantified and follows a plain non-optional stage (possibly across a
    notFollowedBy), or on a final notFollowedBy.  (On quantified stages the compiler attaches
    the window to only some internal states; after an optional stage it lands on a copy.)"""
    s = stages[j]
    if s.kind == "notFollowedBy" and j == len(stages) - 1:
        return
    if s.kind != "stage" or s.quantified or s.optional or j == 0:
        raise ReferenceUnsupported("PREVIOUS_AND_CURRENT window on this stage")
    prev = stages[j - 1]
    if prev.kind == "notFollowedBy":
        prev = stages[j - 2]
    if prev.kind != "stage" or prev.optional:
        raise ReferenceUnsupported("PREVIOUS_AND_CURRENT window after this stage")


def _check_stage(s: Stage, before: Sequence[Stage]) -> None:
    """The build-time rejections of §10 that the case format can express."""
    prev = before[-1] if before else None
    if s.is_not:
        if s.quantified or s.optional or s.greedy or s.until is not None:
            raise PatternRejected("option not applicable to NOT pattern")
        if prev is not None and not prev.is_not and prev.optional:
            raise PatternRejected("NOT stage after an optional stage")
    if s.until is not None and not s.looping:
        raise PatternRejected("until on a non-looping stage")
    if s.greedy and (not s.quantified or s.kind == "group"):
        raise PatternRejected("greedy on a singleton or a group")
    if s.greedy and s.inner == "allowCombinations":
        raise PatternRejected("greedy with allowCombinations")
    if s.inner != "relaxed" and not s.quantified:
        raise PatternRejected("inner contiguity on a singleton")
    if s.optional and prev is not None and not prev.is_not and prev.greedy:
        raise PatternRejected("optional stage after a greedy stage")


# ============================================================================ runs


@dataclass(frozen=True)
class Run:
    """A partial match; see the module docstring."""

    taken: Taken
    where: str  # "after" | "skipping" | "pending"
    target: Element | None = None  # committed element while skipping
    restricted: bool = False  # R4 applies to the committed element
    forced: tuple[int, ...] = ()  # notFollowedBy stages in force for the committed element

    @property
    def start(self) -> int:
        return self.taken[0][0]

    @property
    def last(self) -> Element:
        return self.taken[-1][1]


START = Run((), "after")


@dataclass
class StepResult:
    runs: list[Run] = field(default_factory=list)
    completed: list[Taken] = field(default_factory=list)
    killed: bool = False


@dataclass
class Walk:
    """What a run can reach by leaving stage ``after`` on one event (rule R1)."""

    entries: list[tuple[Element, tuple[int, ...], bool]] = field(default_factory=list)
    killed: bool = False  # a NOT condition fired on the way (R5)
    reaches_end: bool = False
    notnext_end: bool = False  # passes a final notNext: completes without the event
    pending: bool = False  # passes into a final notFollowedBy


class Matcher:
    def __init__(self, pattern: Pattern, events: Sequence[Mapping[str, Any]]) -> None:
        self.p = pattern
        self.events = events  # in processing order

    # -- context -------------------------------------------------------------------------

    def context(self, run: Run) -> dict[str, list[Mapping[str, Any]]]:
        ctx: dict[str, list[Mapping[str, Any]]] = {}
        for pos, e in run.taken:
            ctx.setdefault(self.p.leaf(e).name, []).append(self.events[pos])
        return ctx

    # -- R1 ------------------------------------------------------------------------------

    def walk(self, after: int, ev: Mapping[str, Any], ctx: Mapping, completing: bool) -> Walk:
        """Leave stage ``after`` (-1: the beginning) on event ``ev``.

        ``completing`` is the walk done right after a take, which only looks for the end of
        the pattern; otherwise the walk also collects the elements offered to ``ev`` and the NOT
        conditions checked on it."""
        p = self.p
        w = Walk()
        in_force: list[int] = []
        if after >= 0:
            left = p.stages[after]
            if left.kind == "group" and left.optional and not left.looping:
                # taking events inside an optional group does not lift the notFollowedBy
                # conditions before it (only the loop of a looping group exits past them)
                in_force = list(p.nots_reachable_backwards(after))
        j = after + 1
        while True:
            if j == p.n:
                w.reaches_end = True
                return w
            s = p.stages[j]
            if s.kind == "notNext":
                hit = s.cond(ev, ctx)
                if hit:
                    w.killed = not completing
                    return w
                if j == p.n - 1:
                    w.notnext_end = not completing
                    return w
                j += 1
                continue
            if s.kind == "notFollowedBy":
                if j == p.n - 1:
                    if not completing:
                        if s.cond(ev, ctx):
                            w.killed = True
                        else:
                            w.pending = True
                    return w
                in_force.append(j)
                j += 1
                continue
            restricted = False
            g = p.greedy_before(j)
            if g is not None:
                restricted = not (g.until is not None and g.until(ev, ctx))
            entry = (j, 1, 0 if s.kind == "group" else -1)
            w.entries.append((entry, tuple(in_force), restricted))
            if not completing and any(p.stages[x].cond(ev, ctx) for x in in_force):
                w.killed = True
            if s.optional:
                j += 1
                continue
            return w

    def continuation(self, e: Element) -> tuple[Element | None, bool]:
        """(next element inside the same stage, whether the stage may be left) after ``e``."""
        j, k, m = e
        s = self.p.stages[j]
        if m >= 0 and m < len(s.members) - 1:
            return (j, k, m + 1), False
        nxt: Element | None = None
        if k < s.max:
            nxt = (j, k + 1, 0 if m >= 0 else -1)
        return nxt, k >= s.min

    def completes(self, e: Element, ev: Mapping[str, Any], ctx: Mapping) -> bool:
        """Does taking ``ev`` as element ``e`` complete a match (end reachable)?"""
        _, may_leave = self.continuation(e)
        return may_leave and self.walk(e[0], ev, ctx, completing=True).reaches_end

    def retained_after(self, e: Element) -> bool:
        """A run right after ``e`` is still a partial match unless it sits on the end."""
        nxt, _ = self.continuation(e)
        return nxt is not None or e[0] != self.p.n - 1

    def is_pending(self, run: Run) -> bool:
        if run.where == "pending":
            return True
        if run.where != "after" or not run.taken:
            return False
        nxt, may_leave = self.continuation(run.last)
        return nxt is None and may_leave and run.last[0] == self.p.n - 2 and self.p.ends_pending()

    def pc_constrained(self, run: Run) -> bool:
        """Is ``run`` waiting *at* the stage that carries the PREVIOUS_AND_CURRENT window?
        That is a run committed to the stage's first element after skipping, a run whose last
        element leaves no option but that stage, or (for a final notFollowedBy) a pending run."""
        j = self.p.pc_stage
        if j is None:
            return False
        if self.p.stages[j].kind == "notFollowedBy":
            return self.is_pending(run)
        if run.where == "skipping":
            # after an until event the stage behind a greedy loop is entered through a copy
            # (R4) that carries no window
            unrestricted_copy = self.p.greedy_before(j) is not None and not run.restricted
            return run.target == (j, 1, -1) and not unrestricted_copy
        if run.where != "after" or not run.taken:
            return False
        nxt, _ = self.continuation(run.last)
        if nxt is not None:
            return False
        after = run.last[0] + 1
        if after < j and self.p.stages[after].kind == "notFollowedBy":
            after += 1
        return after == j

    def leaves_open(self, e: Element) -> bool:
        """Skipping towards ``e`` does not commit: ``e`` starts a non-mandatory iteration of a
        group, and the run may still leave the group (R3, groups)."""
        j, k, m = e
        s = self.p.stages[j]
        return m == 0 and k >= 2 and k - 1 >= s.min

    # -- R2/R3/R4 --------------------------------------------------------------------------

    def may_take(self, e: Element, restricted: bool, ev, ctx) -> bool:
        """R2 (+ R4 when ``restricted``): may element ``e`` take ``ev``?"""
        leaf = self.p.leaf(e)
        outer = self.p.stages[e[0]]
        if not leaf.cond(ev, ctx):
            return False
        if outer.until is not None and outer.until(ev, ctx):
            return False
        if restricted:
            g = self.p.greedy_before(e[0])
            assert g is not None
            if g.cond(ev, ctx):
                return False
        return True

    def may_skip(self, e: Element, restricted: bool, ev, ctx) -> bool:
        """R3 (+ R4 when ``restricted``): may a run waiting for ``e`` skip ``ev``?"""
        j, k, m = e
        leaf = self.p.leaf(e)
        outer = self.p.stages[j]
        if m > 0:
            how = _as_inner(leaf.contiguity)  # a group member after the first one
        elif k == 1:
            how = _as_inner(outer.contiguity)
        else:
            how = outer.inner
        if how == "consecutive":
            ok = False
        elif how == "allowCombinations":
            ok = True
        else:
            ok = not leaf.cond(ev, ctx)
        if ok and outer.until is not None and (k >= 2 or m >= 0) and outer.until(ev, ctx):
            ok = False
        if ok and restricted:
            g = self.p.greedy_before(j)
            assert g is not None
            ok = not g.cond(ev, ctx)
        return ok

    # -- R5 ----------------------------------------------------------------------------------

    def continuation_stops(self, e: Element) -> tuple[int, ...]:
        """NOT stages checked while waiting for ``e`` inside its stage (not its first element)."""
        j, k, m = e
        s = self.p.stages[j]
        f = self.p.following_not(j)
        if f is None or m > 0:
            return ()
        if m == 0 and s.looping and k > s.min:
            return ()  # the loop of a group carries no NOT check
        return (f.index,)

    def skipping_stops(self, run: Run) -> tuple[int, ...]:
        """R5: the NOT stages checked on every event a skipping run sees."""
        assert run.target is not None
        j, k, m = run.target
        s = self.p.stages[j]
        if k == 1 and m <= 0:
            if s.optional:
                return () if m == 0 else self.p.nots_reachable_backwards(j)
            return run.forced
        if m > 0:
            return ()
        if m == 0 or k <= s.min or s.looping:
            return self.continuation_stops(run.target)
        return self.p.nots_reachable_backwards(j)

    # -- one event for one run -----------------------------------------------------------------

    def step(self, run: Run, pos: int) -> StepResult:
        """Everything ``run`` becomes on event ``pos``: new runs (partial matches), matches
        completed on that event, and whether a NOT condition killed the run (R5)."""
        ev = self.events[pos]
        ctx = self.context(run)
        res = StepResult()
        offers: list[tuple[Element, bool, tuple[int, ...]]] = []  # (element, restricted, forced)
        p = self.p

        if run.where == "pending":
            if p.stages[-1].cond(ev, ctx):
                res.killed = True
            else:
                res.runs.append(run)
            return res

        w: Walk | None = None
        if run.where == "skipping":
            assert run.target is not None
            if any(p.stages[x].cond(ev, ctx) for x in self.skipping_stops(run)):
                res.killed = True
            offers.append((run.target, run.restricted, run.forced))
            if self.leaves_open(run.target):
                w = self.walk(run.target[0], ev, ctx, completing=False)
        elif not run.taken:
            w = self.walk(-1, ev, ctx, completing=False)
        else:
            nxt, may_leave = self.continuation(run.last)
            if nxt is not None:
                offers.append((nxt, False, ()))
                if any(p.stages[x].cond(ev, ctx) for x in self.continuation_stops(nxt)):
                    res.killed = True
            if may_leave:
                w = self.walk(run.last[0], ev, ctx, completing=False)
        if w is not None:
            for e, forced, restricted in w.entries:
                offers.append((e, restricted, forced))
            if w.killed:
                res.killed = True
            if w.notnext_end:
                res.completed.append(run.taken)
            if w.pending:
                res.runs.append(Run(run.taken, "pending"))

        can_skip = bool(run.taken)
        for e, restricted, forced in offers:
            if self.may_take(e, restricted, ev, ctx):
                taken = run.taken + ((pos, e),)
                if self.completes(e, ev, ctx):
                    res.completed.append(taken)
                if self.retained_after(e):
                    nxt_run = Run(taken, "after")
                    if self.is_pending(nxt_run):
                        nxt_run = Run(taken, "pending")
                    res.runs.append(nxt_run)
            if can_skip and self.may_skip(e, restricted, ev, ctx):
                if run.where == "skipping" and e == run.target:
                    res.runs.append(run)
                else:
                    res.runs.append(Run(run.taken, "skipping", e, restricted, forced))

        if res.killed:
            res.runs = []
        return res


def _as_inner(contiguity: str) -> str:
    """A stage's own contiguity in the vocabulary of inner contiguity."""
    return {
        "next": "consecutive",
        "followedBy": "relaxed",
        "followedByAny": "allowCombinations",
    }.get(contiguity, "consecutive")  # begin: never skipped (only runs holding nothing wait)


# ============================================================================ driver


def late_events(case: Mapping[str, Any]) -> list[Any]:
    """Ids of the events that are late in ``--mode file`` (R8), in arrival order."""
    ooo = int(case.get("ooo") or 0)
    watermark = -INF
    max_ts = -INF
    late: list[Any] = []
    for ev in case.get("events") or []:
        ts = int(ev["ts"])
        if ts <= watermark:
            late.append(ev["id"])
        max_ts = max(max_ts, ts)
        watermark = max(watermark, max_ts - ooo - 1)
    return late


@dataclass
class World:
    """One possible history of the NFA state (several when emission order is a free choice)."""

    runs: list[Run]
    waiting: list[tuple[int, Taken]]  # (completion tick, match)
    matches: list[Taken]
    timeouts: list[Taken]

    error: str | None = None  # the runtime exception that stopped this history

    def copy(self) -> World:
        return World(
            list(self.runs), list(self.waiting), list(self.matches), list(self.timeouts), self.error
        )

    def key(self) -> tuple:
        return (
            self.error,
            tuple(sorted(self.runs, key=repr)),
            tuple(sorted(self.waiting)),
            tuple(sorted(self.matches)),
            tuple(sorted(self.timeouts)),
        )


class Simulation:
    """Feeds a case through the file-mode operator (R8) and the run semantics (R1-R7)."""

    def __init__(self, pattern: Pattern) -> None:
        self.p = pattern
        self.events: list[Mapping[str, Any]] = []  # in processing order
        self.m = Matcher(pattern, self.events)
        self.truncated = False
        self.tick = 0
        self.budget = BRANCH_BUDGET
        self.worlds = [World([], [], [], [])]

    # -- R7 --------------------------------------------------------------------------------

    def pruning_point(self, match: Taken) -> int | None:
        positions = [pos for pos, _ in match]
        if self.p.skip == "skipToNext":
            return min(positions)
        if self.p.skip == "skipPastLastEvent":
            return max(positions)
        mine = [pos for pos, e in match if self.p.leaf(e).name == self.p.skip_stage]
        if not mine:
            return None
        return min(mine) if self.p.skip == "skipToFirst" else max(mine)

    def prunes(self, point: int, start: int) -> bool:
        if self.p.skip in ("skipToNext", "skipPastLastEvent"):
            return start <= point
        return start < point

    def emit(self, world: World) -> list[World]:
        """Emits what the ordering rule lets out; one world per free choice."""
        if self.p.skip == "noSkip":
            world.matches.extend(m for _, m in world.waiting)
            world.waiting = []
            return [world]
        done: list[World] = []
        todo = [world]
        while todo:
            w = todo.pop()
            if not w.waiting:
                done.append(w)
                continue
            first = min(m[0][0] for _, m in w.waiting)
            alive = [r.start for r in w.runs]
            if alive and first > min(alive):
                done.append(w)
                continue
            # Matches sharing the earliest start leave in an order Flink does not define.  A
            # match whose pruning point does not reach back to that start ("harmless") leaves
            # the others alone; the first "fatal" one to leave drops the rest of the group.
            group = sorted(x for x in w.waiting if x[1][0][0] == first)
            fatal = [m for m in group if self._reaches(m, first)]
            harmless = [m for m in group if not self._reaches(m, first)]
            if not fatal:
                for m in group:
                    self._emit_one(w, m)
                todo.append(w)
                continue
            if self.truncated:
                orders = [[fatal[0]]]  # out of budget: one canonical choice only
            else:
                orders = [[*sub, f] for f in fatal for sub in _subsets(harmless, MAX_WORLDS)]
                self.budget -= len(orders)
                if len(orders) > MAX_WORLDS or self.budget < 0:
                    self.truncated = True
                    orders = orders[:MAX_WORLDS]
            for order in orders:
                nw = w.copy() if len(orders) > 1 else w
                for m in order:
                    self._emit_one(nw, m)
                todo.append(nw)
        return done

    def _reaches(self, x: tuple[int, Taken], start: int) -> bool:
        point = self.pruning_point(x[1])
        return point is not None and self.prunes(point, start)

    def _emit_one(self, w: World, x: tuple[int, Taken]) -> None:
        if w.error:
            return
        w.waiting.remove(x)
        m = x[1]
        point = self.pruning_point(m)
        if self.p.throw_on_miss and (point is None or point == min(pos for pos, _ in m)):
            # throwExceptionOnMiss(): no event of the target stage, or skipping to the match's
            # own first event (§8) raises
            w.error = "FlinkRuntimeException: could not skip"
            w.waiting = []
            w.runs = []
            return
        if point is not None:
            w.runs = [r for r in w.runs if not self.prunes(point, r.start)]
            w.waiting = [y for y in w.waiting if not self.prunes(point, y[1][0][0])]
        w.matches.append(m)

    # -- R6 ---------------------------------------------------------------------------------

    def advance_time(self, world: World, now: float) -> list[World]:
        self.tick += 1
        window, pc = self.p.window, self.p.pc_window
        if window is None and pc is None:
            return self.emit(world)
        keep: list[Run] = []
        for r in world.runs:
            first_ts = int(self.events[r.start]["ts"])
            last_ts = int(self.events[r.taken[-1][0]]["ts"])
            if (window is not None and now - first_ts >= window) or (
                pc is not None and self.m.pc_constrained(r) and now - last_ts >= pc
            ):
                if self.m.is_pending(r):
                    world.waiting.append((self.tick, r.taken))
                else:
                    world.timeouts.append(r.taken)
            else:
                keep.append(r)
        world.runs = keep
        return self.emit(world)

    def process(self, world: World, pos: int) -> list[World]:
        self.tick += 1
        new_runs: list[Run] = []
        for r in [START, *world.runs]:
            res = self.m.step(r, pos)
            new_runs.extend(res.runs)
            world.waiting.extend((self.tick, m) for m in res.completed)
        world.runs = new_runs
        return self.emit(world)

    def run(self, arrivals: Sequence[Mapping[str, Any]], ooo: int) -> list[World]:
        """The operator of ``--mode file``: events are buffered until the watermark passes
        them; timers fire at every buffered timestamp and at ``ts + window`` after an event
        that started a partial match; a firing timer drains the buffer (time advanced to each
        timestamp, then its events in arrival order) and advances time to the watermark."""
        watermark = -INF
        max_ts = -INF
        buffer: dict[int, list[Mapping[str, Any]]] = {}
        timers: set[float] = set()

        def on_timer() -> None:
            started = False
            for ts in sorted(t for t in buffer if t <= watermark):
                self._each(lambda w, t=ts: self.advance_time(w, t))
                for ev in buffer.pop(ts):
                    pos = len(self.events)
                    self.events.append(ev)
                    first = self.m.step(START, pos)
                    if first.runs or first.completed:
                        started = started or ts > 0
                    self._each(lambda w, p=pos: self.process(w, p))
                    if self.p.window is not None and started:
                        timers.add(ts + self.p.window)
            self._each(lambda w: self.advance_time(w, watermark))

        def fire() -> None:
            while timers and min(timers) <= watermark:
                timers.discard(min(timers))
                on_timer()

        for ev in arrivals:
            ts = int(ev["ts"])
            if ts > watermark:
                if ts not in buffer:
                    buffer[ts] = []
                    timers.add(ts)
                buffer[ts].append(ev)
            max_ts = max(max_ts, ts)
            if max_ts - ooo - 1 > watermark:
                watermark = max_ts - ooo - 1
                fire()
        watermark = INF
        fire()
        return self.worlds

    def _each(self, op) -> None:
        self.worlds = self._dedupe(w2 for w in self.worlds for w2 in ([w] if w.error else op(w)))

    def _dedupe(self, worlds: Iterable[World]) -> list[World]:
        seen: dict[tuple, World] = {}
        for w in worlds:
            seen.setdefault(w.key(), w)
        out = list(seen.values())
        if len(out) > MAX_WORLDS:
            self.truncated = True
            out = out[:MAX_WORLDS]
        return out


# ============================================================================ results


def _ids(pattern: Pattern, events: Sequence[Mapping[str, Any]], taken: Taken) -> list[Any]:
    """Event ids grouped by stage, stages in order of first appearance (Flink's output map)."""
    by_stage: dict[str, list[Any]] = {}
    for pos, e in taken:
        by_stage.setdefault(pattern.leaf(e).name, []).append(events[pos]["id"])
    return [i for ids in by_stage.values() for i in ids]


def reference_outcomes(case: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every outcome the semantics allow (one unless R7 leaves a free choice)."""
    late = late_events(case)
    try:
        pattern = parse_pattern(case)
    except PatternRejected as exc:
        return [
            {
                "matches": [],
                "timeouts": [],
                "late": [],
                "error": f"rejected: {exc}",
                "error_phase": "compile",
            }
        ]
    sim = Simulation(pattern)
    worlds = sim.run(case.get("events") or [], int(case.get("ooo") or 0))
    events = sim.events
    outcomes: list[dict[str, Any]] = []
    seen: set[tuple] = set()
    for w in worlds:
        res = {
            "matches": [_ids(pattern, events, m) for m in w.matches],
            "timeouts": [_ids(pattern, events, t) for t in w.timeouts],
            "late": late,
            "error": w.error,
        }
        if w.error:
            res["error_phase"] = "runtime"
        key = _canon(res)
        if key not in seen:
            seen.add(key)
            outcomes.append(res)
    if sim.truncated:
        for o in outcomes:
            o["truncated"] = True
    return outcomes


def reference_run(case: Mapping[str, Any]) -> dict[str, Any]:
    """The reference result of ``case`` in ``--mode file``: ``{"matches", "timeouts", "late",
    "error"}``; when the skip strategy leaves Flink a free choice (R7), ``"alternatives"`` lists
    every allowed outcome (the main result included)."""
    outcomes = reference_outcomes(case)
    main = dict(outcomes[0])
    if len(outcomes) > 1:
        main["alternatives"] = outcomes
    return main


# ============================================================================ comparison


def _multiset(lists: Iterable[Sequence[Any]]) -> Counter:
    return Counter(tuple(x) for x in lists)


def _canon(res: Mapping[str, Any]) -> tuple:
    return (
        tuple(sorted(_multiset(res.get("matches") or []).items(), key=repr)),
        tuple(sorted(_multiset(res.get("timeouts") or []).items(), key=repr)),
    )


def same_result(
    expected: Mapping[str, Any], actual: Mapping[str, Any], *, timeouts: bool = True
) -> bool:
    """Matches (and timeouts) as multisets of id lists, late ids as a list, an error on both
    sides or on neither; an expected result with ``alternatives`` accepts any of them."""
    for opt in expected.get("alternatives") or [expected]:
        if (opt.get("error") is None) != (actual.get("error") is None):
            continue
        if opt.get("error") is not None:
            return True  # what came out before the exception is not compared
        if list(opt.get("late") or []) != list(actual.get("late") or []):
            continue
        if _multiset(opt.get("matches") or []) != _multiset(actual.get("matches") or []):
            continue
        if timeouts and _multiset(opt.get("timeouts") or []) != _multiset(
            actual.get("timeouts") or []
        ):
            continue
        return True
    return False


def _subsets(items: Sequence[Any], limit: int) -> list[list[Any]]:
    """Subsets of ``items`` (smallest first), at most ``limit`` of them."""
    out: list[list[Any]] = [[]]
    for x in items:
        out += [[*s, x] for s in out[: max(0, limit - len(out))]]
        if len(out) >= limit:
            break
    return out
