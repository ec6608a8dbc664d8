"""Reference matcher: Flink CEP semantics stated as rules over *runs*, evaluated by brute force.

This module is the slow, "obviously correct" side of the differential tests.  It reads a case
in the Flink-oracle format (``shared/peers/flinkoracle/README.md``) and returns what Flink's
file mode produces: ``{"matches", "timeouts", "late", "error"}``.

Vocabulary
----------

*Stage*   one element of the pattern's stage list (a NOT stage included).
*Element* one occurrence of a stage inside a match: ``(stage index, iteration k)``, k = 1, 2, ...
          A stage without quantifier has only k = 1; ``times(2,4)`` has k = 1..4 of which
          1..2 are mandatory; a looping stage (``oneOrMore``/``timesOrMore``) has no upper bound.
*Run*     a partial match: the events taken so far (each labelled with its element) plus where
          the run waits:

          * ``after``    – right after its last taken element, nothing seen since;
          * ``skipping`` – it has skipped at least one event while waiting for one *committed*
                           next element (the target);
          * ``pending``  – it completed every stage before a final ``notFollowedBy`` and waits
                           for the window to close.

Every event is offered to every run.  What a run may do with it follows from the rules below
(section numbers refer to ``shared/design/flink-semantics.md``):

R1 Next elements (§2, §3).  After element (j, c) the run may continue the same stage with
   (j, c + 1) while c < max, and, once c >= min, leave it: walk forward over the following
   stages; a NOT stage is passed (``notNext`` only if the event is not an X), an optional stage
   offers its first element and is passed, the first non-optional stage offers its first element
   and ends the walk.  Reaching the end of the pattern on the walk that follows a take completes
   a match (§1: a match is emitted on the event that completes it, never for "no event").
R2 Take.  An element takes an event satisfying its stage's condition (evaluated against the
   events the run already holds); quantified stages with ``until`` also need "not until" (§5).
R3 Skip.  Skipping an event commits the run to one next element (§3, the "ignore" copy of a
   loop or optional stage cannot leave it any more): every further skipped event and the next
   taken event belong to that element.  Which events an element may skip: its stage's own
   contiguity for k = 1 (``next``: none, ``followedBy``: those not satisfying the stage,
   ``followedByAny``: all), the inner contiguity for k >= 2 (``consecutive``: none, relaxed:
   those not satisfying the stage nor ``until``, ``allowCombinations``: those not satisfying
   ``until``).  A run that has taken nothing never skips (a new run starts at every event).
R4 Greedy (§4).  The first element of the stage right after a greedy stage S (looping, or a
   times range) can neither take nor skip an event that S's condition accepts - unless the run
   left S on an event satisfying S's ``until``.
R5 NOT stages (§6).  While a run waits in the scope of a NOT stage, an event satisfying the NOT
   condition kills the run *and everything it would have produced from that event*, except
   matches completed by that very event.  Scopes:
   * ``notNext``: the first event after the stage before it (only for runs whose element count
     there already allows leaving the stage); at the end of the pattern, that event completes
     the match instead when it is not an X.
   * ``notFollowedBy`` between P and T: events seen while waiting for the first element of T
     (or of a later stage when the stages in between are optional and skipped), and - when P is
     quantified - every event after P's first element (also P's own later elements), except for
     runs skipping towards an optional iteration of a times range.  Runs skipping towards an
     optional iteration of a times range, or towards the first element of an optional stage,
     are checked against every ``notFollowedBy`` reachable backwards over optional stages.
   * ``notFollowedBy`` at the end: a run that completed all other stages becomes pending; it
     turns into a match when the window closes without an X; a run still inside a looping or
     optional iteration of the last stage only becomes pending with the next event.
R6 Window (§7).  A run is dropped (reported as a timeout; a pending run is released as a
   match) as soon as time reaches first_ts + window; time is advanced to each event's timestamp
   before the event, and to +infinity at the end of the input.
R7 After-match skip (§8).  Matches are emitted in start order: a completed match waits while
   a run that started earlier is alive.  Emitting match M drops runs and waiting matches that
   started at/before (skipToNext, skipPastLastEvent) or strictly before (skipToFirst/Last) the
   strategy's event of M.  When several waiting matches share the earliest start, Flink's choice
   is an implementation detail: all choices are explored and every distinct outcome is returned
   in ``alternatives`` (the first one is the main result).
R8 File mode (§9).  Watermark after each event = max ts seen - ooo - 1; an event whose ts is <=
   the watermark on arrival is late; the others are matched in (ts, arrival) order.

Not supported (``ReferenceUnsupported``): groups, PREVIOUS_AND_CURRENT windows,
``throwExceptionOnMiss``, ``key_by``; see tests/reference/README.md for the combinations the
strategies leave out and why.
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
MAX_WORLDS = 2048
TIE_POLICY = "any"


class ReferenceUnsupported(Exception):
    """The case uses a construct outside the reference's documented subset."""


class PatternRejected(Exception):
    """Flink rejects the pattern when it is built or compiled (§10)."""


# ============================================================================ pattern model


@dataclass(frozen=True)
class Stage:
    index: int
    name: str
    kind: str  # "stage" | "notNext" | "notFollowedBy"
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

    @property
    def is_not(self) -> bool:
        return self.kind != "stage"

    @property
    def greedy_effective(self) -> bool:
        # greedy only rewrites anything for loops and real ranges (§4)
        return self.greedy and (self.looping or self.min != self.max)


@dataclass(frozen=True)
class Pattern:
    stages: tuple[Stage, ...]
    window: int | None  # FIRST_AND_LAST window in ms, None = no window
    skip: str  # noSkip | skipToNext | skipPastLastEvent | skipToFirst | skipToLast
    skip_stage: str | None

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
            elif not (s.kind == "stage" and s.optional):
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


def parse_pattern(case: Mapping[str, Any]) -> Pattern:
    if case.get("builder_calls"):
        raise ReferenceUnsupported("builder_calls")
    if case.get("key_by"):
        raise ReferenceUnsupported("key_by")
    if case.get("within_type") not in (None, "FIRST_AND_LAST"):
        raise ReferenceUnsupported("PREVIOUS_AND_CURRENT windows")
    if case.get("skip_throw_on_miss"):
        raise ReferenceUnsupported("throwExceptionOnMiss")
    raw = case.get("stages") or []
    if not raw:
        raise PatternRejected("no stages")
    stages: list[Stage] = []
    names: set[str] = set()
    for i, st in enumerate(raw):
        if st.get("group") is not None:
            raise ReferenceUnsupported("groups")
        if st.get("within_ms") is not None:
            raise ReferenceUnsupported("stage-level within")
        contiguity = st["contiguity"]
        if (i == 0) != (contiguity == "begin"):
            raise PatternRejected("begin must come first")
        name = st["name"]
        if name in names:
            raise PatternRejected(f"duplicate stage name {name}")
        names.add(name)
        kind = contiguity if contiguity in ("notNext", "notFollowedBy") else "stage"
        q = st.get("quantifier")
        lo, hi, looping, opt_rewrite, inner = _quantifier_bounds(q)
        if st.get("optional") and opt_rewrite:
            raise PatternRejected("optional already applied")
        optional = bool(st.get("optional")) or opt_rewrite
        until = st.get("until")
        stage = Stage(
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
            optional=optional,
            greedy=bool(st.get("greedy")),
            until=compile_condition(until) if until is not None else None,
        )
        _check_stage(stage, stages)
        stages.append(stage)
    window = case.get("within_ms")
    if window is not None and int(window) <= 0:
        window = None  # within(0) disables the window (§7)
    if stages[-1].kind == "notFollowedBy" and window is None:
        raise PatternRejected("notFollowedBy at the end needs a window")
    skip = case.get("skip") or "noSkip"
    skip_stage = None
    if ":" in skip:
        skip, skip_stage = skip.split(":", 1)
        if skip_stage not in names:
            raise PatternRejected(f"skip strategy names unknown stage {skip_stage}")
    if skip not in ("noSkip", "skipToNext", "skipPastLastEvent", "skipToFirst", "skipToLast"):
        raise ReferenceUnsupported(f"skip strategy {skip}")
    return Pattern(tuple(stages), None if window is None else int(window), skip, skip_stage)


def _check_stage(s: Stage, before: Sequence[Stage]) -> None:
    """The build-time rejections of §10 that the case format can express."""
    prev = before[-1] if before else None
    if s.is_not:
        if s.quantified or s.optional or s.greedy or s.until is not None:
            raise PatternRejected("option not applicable to NOT pattern")
        if prev is not None and prev.kind == "stage" and prev.optional:
            raise PatternRejected("NOT stage after an optional stage")
    if s.until is not None and not s.looping:
        raise PatternRejected("until on a non-looping stage")
    if s.greedy and not s.quantified:
        raise PatternRejected("greedy on a singleton")
    if s.greedy and s.inner == "allowCombinations":
        raise PatternRejected("greedy with allowCombinations")
    if s.inner != "relaxed" and not s.quantified:
        raise PatternRejected("inner contiguity on a singleton")
    if s.optional and prev is not None and prev.kind == "stage" and prev.greedy:
        raise PatternRejected("optional stage after a greedy stage")


# ============================================================================ runs


@dataclass(frozen=True)
class Run:
    """A partial match; see the module docstring."""

    taken: tuple[tuple[int, int, int], ...]  # (event position, stage index, iteration k)
    where: str  # "after" | "skipping" | "pending"
    target: tuple[int, int] | None = None  # committed element while skipping
    restricted: bool = False  # R4 applies to the committed element
    forced: tuple[int, ...] = ()  # notFollowedBy stages in force for the committed element

    @property
    def start(self) -> int:
        return self.taken[0][0]

    @property
    def last(self) -> tuple[int, int]:
        _, j, k = self.taken[-1]
        return j, k


START = Run((), "after")


@dataclass
class StepResult:
    runs: list[Run] = field(default_factory=list)
    completed: list[tuple[tuple[int, int, int], ...]] = field(default_factory=list)
    killed: bool = False


@dataclass
class Walk:
    """What a run can reach by leaving stage ``after`` on one event (rule R1)."""

    entries: list[tuple[int, tuple[int, ...], bool]] = field(default_factory=list)
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
        for pos, j, _k in run.taken:
            ctx.setdefault(self.p.stages[j].name, []).append(self.events[pos])
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
            w.entries.append((j, tuple(in_force), restricted))
            if not completing and any(p.stages[x].cond(ev, ctx) for x in in_force):
                w.killed = True
            if s.optional:
                j += 1
                continue
            return w

    def completes(self, j: int, k: int, ev: Mapping[str, Any], ctx: Mapping) -> bool:
        """Does taking ``ev`` as element (j, k) complete a match (end reachable)?"""
        s = self.p.stages[j]
        if k < s.min:
            return False
        return self.walk(j, ev, ctx, completing=True).reaches_end

    def retained_after(self, j: int, k: int) -> bool:
        """A run right after (j, k) is still a partial match unless it sits on the end."""
        s = self.p.stages[j]
        return not (k >= s.max and j == self.p.n - 1)

    def is_pending(self, run: Run) -> bool:
        if run.where == "pending":
            return True
        if run.where != "after" or not run.taken:
            return False
        j, k = run.last
        return k >= self.p.stages[j].max and j == self.p.n - 2 and self.p.ends_pending()

    # -- R2/R3/R4 --------------------------------------------------------------------------

    def may_take(self, j: int, restricted: bool, ev, ctx) -> bool:
        s = self.p.stages[j]
        if not s.cond(ev, ctx):
            return False
        if s.until is not None and s.until(ev, ctx):
            return False
        if restricted:
            g = self.p.greedy_before(j)
            assert g is not None
            if g.cond(ev, ctx):
                return False
        return True

    def may_skip(self, j: int, k: int, restricted: bool, ev, ctx) -> bool:
        s = self.p.stages[j]
        if k == 1:
            how = s.contiguity
            if how == "followedBy":
                ok = not s.cond(ev, ctx)
            else:  # next: never; begin: only runs that hold nothing wait there, and they never skip
                ok = how == "followedByAny"
        else:
            if s.inner == "consecutive":
                ok = False
            elif s.inner == "allowCombinations":
                ok = True
            else:
                ok = not s.cond(ev, ctx)
            if ok and s.until is not None and s.until(ev, ctx):
                ok = False
        if ok and restricted:
            g = self.p.greedy_before(j)
            assert g is not None
            ok = not g.cond(ev, ctx)
        return ok

    # -- R5 for skipping runs -----------------------------------------------------------------

    def skipping_stops(self, run: Run) -> Iterable[int]:
        assert run.target is not None
        j, k = run.target
        s = self.p.stages[j]
        if k == 1:
            if s.optional:
                return self.p.nots_reachable_backwards(j)
            return run.forced
        if k <= s.min or s.looping:
            f = self.p.following_not(j)
            return () if f is None else (f.index,)
        return self.p.nots_reachable_backwards(j)

    # -- one event for one run -----------------------------------------------------------------

    def step(self, run: Run, pos: int) -> StepResult:
        ev = self.events[pos]
        ctx = self.context(run)
        res = StepResult()
        offers: list[tuple[int, int, bool, tuple[int, ...]]] = []  # (j, k, restricted, forced)
        p = self.p

        if run.where == "pending":
            if p.stages[-1].cond(ev, ctx):
                res.killed = True
            else:
                res.runs.append(run)
            return res

        if run.where == "skipping":
            assert run.target is not None
            if any(p.stages[x].cond(ev, ctx) for x in self.skipping_stops(run)):
                res.killed = True
            offers.append((run.target[0], run.target[1], run.restricted, run.forced))
            can_skip = True
        else:
            can_skip = bool(run.taken)
            if not run.taken:
                w = self.walk(-1, ev, ctx, completing=False)
            else:
                j, c = run.last
                s = p.stages[j]
                if c < s.max:
                    offers.append((j, c + 1, False, ()))
                    f = p.following_not(j)
                    if f is not None and f.cond(ev, ctx):
                        res.killed = True
                w = self.walk(j, ev, ctx, completing=False) if c >= s.min else Walk()
            for j2, forced, restricted in w.entries:
                offers.append((j2, 1, restricted, forced))
            if w.killed:
                res.killed = True
            if w.notnext_end:
                res.completed.append(run.taken)
            if w.pending:
                res.runs.append(Run(run.taken, "pending"))

        for j, k, restricted, forced in offers:
            if self.may_take(j, restricted, ev, ctx):
                taken = run.taken + ((pos, j, k),)
                if self.completes(j, k, ev, ctx):
                    res.completed.append(taken)
                if self.retained_after(j, k):
                    nxt = Run(taken, "after")
                    if self.is_pending(nxt):
                        nxt = Run(taken, "pending")
                    res.runs.append(nxt)
            if can_skip and self.may_skip(j, k, restricted, ev, ctx):
                res.runs.append(Run(run.taken, "skipping", (j, k), restricted, forced))

        if res.killed:
            res.runs = []
        return res


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
    waiting: list[tuple[int, tuple[tuple[int, int, int], ...]]]  # (completion tick, match)
    matches: list[tuple[tuple[int, int, int], ...]]
    timeouts: list[tuple[tuple[int, int, int], ...]]

    def copy(self) -> World:
        return World(list(self.runs), list(self.waiting), list(self.matches), list(self.timeouts))

    def key(self) -> tuple:
        return (
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
        self.tie_policy = TIE_POLICY
        self.worlds = [World([], [], [], [])]

    # -- R7 --------------------------------------------------------------------------------

    def pruning_point(self, match: tuple[tuple[int, int, int], ...]) -> int | None:
        positions = [pos for pos, _, _ in match]
        if self.p.skip == "skipToNext":
            return min(positions)
        if self.p.skip == "skipPastLastEvent":
            return max(positions)
        mine = [pos for pos, j, _ in match if self.p.stages[j].name == self.p.skip_stage]
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
            if self.tie_policy == "completion_order":
                group = [x for x in group if x[0] == group[0][0]]
            fatal = [m for m in group if self._reaches(m, first)]
            harmless = [m for m in group if not self._reaches(m, first)]
            if not fatal:
                for m in group:
                    self._emit_one(w, m)
                todo.append(w)
                continue
            orders = [
                [*subset, f] for f in fatal for subset in _subsets(harmless, MAX_WORLDS)
            ]
            if len(orders) > MAX_WORLDS:
                self.truncated = True
                orders = orders[:MAX_WORLDS]
            for order in orders:
                nw = w.copy() if len(orders) > 1 else w
                for m in order:
                    self._emit_one(nw, m)
                todo.append(nw)
        return done

    def _reaches(self, x: tuple[int, tuple[tuple[int, int, int], ...]], start: int) -> bool:
        point = self.pruning_point(x[1])
        return point is not None and self.prunes(point, start)

    def _emit_one(self, w: World, x: tuple[int, tuple[tuple[int, int, int], ...]]) -> None:
        w.waiting.remove(x)
        m = x[1]
        point = self.pruning_point(m)
        if point is not None:
            w.runs = [r for r in w.runs if not self.prunes(point, r.start)]
            w.waiting = [y for y in w.waiting if not self.prunes(point, y[1][0][0])]
        w.matches.append(m)

    # -- R6 ---------------------------------------------------------------------------------

    def advance_time(self, world: World, now: float) -> list[World]:
        self.tick += 1
        window = self.p.window
        if window is None:
            return self.emit(world)
        keep: list[Run] = []
        for r in world.runs:
            if now - int(self.events[r.start]["ts"]) >= window:
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
        self.worlds = self._dedupe(w2 for w in self.worlds for w2 in op(w))

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


def _ids(
    pattern: Pattern, events: Sequence[Mapping[str, Any]], taken: Sequence[tuple[int, int, int]]
) -> list[Any]:
    """Event ids grouped by stage, stages in order of first appearance (Flink's output map)."""
    by_stage: dict[str, list[Any]] = {}
    for pos, j, _k in taken:
        by_stage.setdefault(pattern.stages[j].name, []).append(events[pos]["id"])
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
            "error": None,
        }
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
    """Matches (and timeouts) as multisets of id lists, late ids as a list; an expected result
    with ``alternatives`` accepts any of them."""
    if (expected.get("error") is None) != (actual.get("error") is None):
        return False
    if expected.get("error") is not None:
        return True
    if list(expected.get("late") or []) != list(actual.get("late") or []):
        return False
    options = expected.get("alternatives") or [expected]
    for opt in options:
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
