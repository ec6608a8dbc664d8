"""Pattern spec → NFA, following the construction of Flink CEP's ``NFACompiler``.

The automaton is built back to front: first the FINAL state, then each stage from the last to
the first, each stage's states pointing at the states already built for what follows
(``NFACompiler.NFAFactoryCompiler.compileFactory``).  Per stage:

* a single-event stage becomes one state with TAKE → next and, depending on contiguity, an
  IGNORE edge (strict: none; relaxed: "not condition"; any: "true");
* ``optional`` adds a PROCEED around the stage and a separate "ignore" state so that every
  PROCEED branch is created once;
* ``times``/``times N to M`` unrolls into a chain of states (the last ``M-N`` optional);
  a looping stage (``one or more``/``times N or more``) ends in a state with a TAKE self-loop
  and an IGNORE to a twin "ignore" state governed by the *inner* contiguity;
* ``greedy`` rewrites every edge of the following stage's entry state with "and not loop
  condition"; ``until`` adds "and not until" to the loop's TAKE and IGNORE edges;
* ``not next`` is a state whose PROCEED under the negated condition leads to a shared STOP
  state; ``not followed by`` becomes PROCEED-to-STOP edges on the states of the following
  stage(s) — and, at the end of a windowed pattern, a PENDING state released by time;
* groups are compiled recursively with the group's contiguity, quantifier and ``until``
  applying to their first and inner stages.

Names and structure mirror Flink's so that matching behaviour (including its documented
surprises, see ``docs/semantics.md``) is identical.  Raises :class:`PatternError` for patterns
Flink rejects at compile time (the language checker reports them earlier, with positions).
"""

from __future__ import annotations

from cep.nfa.model import (
    FINAL,
    IGNORE,
    NFA,
    NORMAL,
    PENDING,
    PROCEED,
    STOP,
    TAKE,
    EdgeCond,
    State,
    cond_and,
    cond_not,
    cond_of,
    cond_true,
)
from cep.nfa.pattern import PatternSpec, StageSpec

__all__ = ["compile_nfa", "PatternError"]

END_STATE = "$end$"

# Flink's ConsumingStrategy values.
STRICT, SKIP_TILL_NEXT, SKIP_TILL_ANY, NOT_NEXT, NOT_FOLLOW = range(5)
_CONTIGUITY = {
    "begin": SKIP_TILL_NEXT,
    "next": STRICT,
    "followed_by": SKIP_TILL_NEXT,
    "followed_by_any": SKIP_TILL_ANY,
    "not_next": NOT_NEXT,
    "not_followed_by": NOT_FOLLOW,
}
_INNER = {"relaxed": SKIP_TILL_NEXT, "consecutive": STRICT, "allow_combinations": SKIP_TILL_ANY}


class PatternError(ValueError):
    """A pattern that Flink CEP rejects at compile time; the message says why."""


class _P:
    """One node of the pattern chain as Flink's compiler sees it (``Pattern`` with
    ``getPrevious()``); ``raw`` is a group's last inner node."""

    __slots__ = (
        "spec", "name", "prev", "raw", "consuming", "inner", "looping", "times_prop",
        "optional", "greedy", "times", "take", "until", "window",
    )

    def __init__(self, spec: StageSpec, prev: _P | None) -> None:
        self.spec = spec
        self.name = spec.name
        self.prev = prev
        q = spec.quantifier
        self.consuming = _CONTIGUITY[spec.contiguity]
        self.inner = _INNER[q.inner]
        self.looping = q.looping
        self.times_prop = q.is_times
        self.optional = spec.optional or (q.kind == "times_range" and q.min == 0)
        self.greedy = spec.greedy
        self.times: tuple[int, int] | None
        if q.kind == "single":
            self.times = None
        elif q.kind == "times_range":
            lo = max(q.min, 1)
            self.times = (lo, q.max if q.max is not None else lo)
        else:  # times, times_or_more, one_or_more
            self.times = (q.min, q.min)
        self.take = cond_of(spec.condition)
        self.until = cond_of(spec.until) if spec.until is not None else None
        self.window = spec.within_ms
        self.raw: _P | None = None
        if spec.group is not None:
            self.raw = _chain(spec.group)


def _chain(stages: tuple[StageSpec, ...]) -> _P:
    node: _P | None = None
    for s in stages:
        node = _P(s, node)
    assert node is not None
    return node


def compile_nfa(spec: PatternSpec, *, prune_cohorts: bool = False) -> NFA:
    """Build the NFA for ``spec``.

    ``prune_cohorts`` allows the matching step to keep one partial match per cohort and
    absorbing state where that cannot change the matches
    (:attr:`~cep.nfa.model.NFA.cohort_pruning`); leave it off when timed-out partial matches
    are reported (the merged ones would not be) or to run the plain Flink algorithm.

    Returns an immutable :class:`~cep.nfa.model.NFA` whose states are listed start first.
    Raises :class:`PatternError` for the compile-time rejections of Flink's ``NFACompiler``
    (duplicate stage names, unknown skip stage, stage window above the pattern window,
    ``not followed by`` at the end without a window).
    """
    if not spec.stages:
        raise PatternError("a pattern needs at least one stage")
    return _Compiler(spec, prune_cohorts).build()


class _Compiler:
    def __init__(self, spec: PatternSpec, prune_cohorts: bool = False) -> None:
        self.spec = spec
        self.prune_cohorts = prune_cohorts
        self.states: list[State] = []
        self.used: set[str] = set()
        self.next_suffix: dict[str, int] = {}
        self.stop_states: dict[str, State] = {}
        self.window: int | None = None
        self.group: _P | None = None
        self.first_of_loop: dict[int, bool] = {}
        self.current: _P = _chain(spec.stages)
        self.following: _P | None = None
        self.original: dict[str, State] = {}

    # ------------------------------------------------------------------ driver

    def build(self) -> NFA:
        last = self.current
        self._check_names()
        self._check_skip()
        sink = self._ending_state()
        sink = self._middle_states(sink)
        start = self._convert(sink)
        start.is_start = True
        window = self.window or 0
        for s in self.states:
            if s.window_ms is not None and window and s.window_ms > window:
                raise PatternError(
                    f"the window of stage {s.stage!r} ({s.window_ms} ms) is larger than the "
                    f"pattern's ({window} ms)"
                )
        if last.consuming == NOT_FOLLOW and not last.window and not window:
            raise PatternError("a pattern cannot end with 'not followed by' without a window")
        states = [start] + [s for s in self.states if s is not start]
        return NFA(states, start, window, self.spec.skip, self.spec.skip_stage,
                   tuple(_all_names(self.spec.stages)), self.prune_cohorts)

    def _check_names(self) -> None:
        seen: set[str] = set()
        for name in _all_names(self.spec.stages):
            if name in seen or name == END_STATE:
                raise PatternError(f"stage name {name!r} is used more than once")
            seen.add(name)

    def _check_skip(self) -> None:
        if self.spec.skip in ("skip_to_first", "skip_to_last"):
            if self.spec.skip_stage not in set(_all_names(self.spec.stages)):
                raise PatternError(f"skip strategy names unknown stage {self.spec.skip_stage!r}")

    # ------------------------------------------------------------------ states

    def _new_state(self, base: str, kind: int, stage: str | None = None) -> State:
        """A new state named ``base``, else ``base:i`` with the smallest free ``i``.

        Names are only ever added, so the search resumes where the previous one for ``base``
        stopped: unrolling ``times N`` names its N states in O(N), not O(N²)."""
        name, i = base, self.next_suffix.get(base, 0)
        while name in self.used:
            name = f"{base}:{i}"
            i += 1
        self.next_suffix[base] = i
        self.used.add(name)
        st = State(name, stage if stage is not None else base.split(":")[0], kind)
        self.states.append(st)
        return st

    def _state(self, kind: int, is_take: bool) -> State:
        """Flink's ``createState(type, isTake)``: a state of the current stage; take states of
        single-event stages carry the stage's PREVIOUS_AND_CURRENT window."""
        cur = self.current
        st = self._new_state(cur.name, kind, cur.name)
        if is_take and cur.times is None and cur.window is not None:
            st.window_ms = cur.window
        return st

    def _ending_state(self) -> State:
        end = self._new_state(END_STATE, FINAL, END_STATE)
        self.window = self.spec.within_ms if self.spec.within_ms else None
        return end

    def _stop_state(self, cond: EdgeCond, name: str) -> State:
        st = self.stop_states.get(name)
        if st is None:
            st = self._new_state(name, STOP, name)
            st.add(TAKE, None, cond)
            self.stop_states[name] = st
        return st

    # ------------------------------------------------------------------ conditions

    def _true(self) -> EdgeCond:
        g = self.group
        if g is not None and g.until is not None:
            return _with_until(cond_true(), g.until, True)  # type: ignore[return-value]
        return cond_true()

    def _take_cond(self, p: _P) -> EdgeCond:
        g = self.group
        if g is not None and g.until is not None:
            return _with_until(p.take, g.until, True)  # type: ignore[return-value]
        return p.take

    def _head_of_group(self, p: _P) -> bool:
        return self.group is not None and p.prev is None

    def _group_first_of_loop(self) -> bool:
        return self.first_of_loop.get(id(self.group), True)

    def _set_first_of_loop(self, value: bool) -> None:
        if self.current.raw is not None:
            self.first_of_loop[id(self.current)] = value

    def _ignore_by(self, strategy: int, p: _P) -> EdgeCond | None:
        if strategy == STRICT:
            ign: EdgeCond | None = None
        elif strategy == SKIP_TILL_NEXT:
            ign = cond_not(p.take)
        else:
            ign = cond_true()
        g = self.group
        if g is not None and g.until is not None:
            ign = _with_until(ign, g.until, False)
        return ign

    def _ignore_cond(self, p: _P) -> EdgeCond | None:
        strategy = p.consuming
        if self._head_of_group(p):
            assert self.group is not None
            strategy = self.group.consuming if self._group_first_of_loop() else self.group.inner
        return self._ignore_by(strategy, p)

    def _inner_ignore_cond(self, p: _P) -> EdgeCond | None:
        strategy = p.inner
        if self._head_of_group(p):
            assert self.group is not None
            strategy = self.group.inner
        return self._ignore_by(strategy, p)

    def _not_conditions(self) -> list[tuple[EdgeCond, str]]:
        """NOT stages that still constrain the current one: walk back over optional stages
        and ``not followed by`` stages (Flink's ``getCurrentNotCondition``)."""
        out = []
        p = self.current
        while p.prev is not None and (p.prev.optional or p.prev.consuming == NOT_FOLLOW):
            p = p.prev
            if p.consuming == NOT_FOLLOW:
                out.append((self._take_cond(p), p.name))
        return out

    # ------------------------------------------------------------------ stages

    def _middle_states(self, sink: State) -> State:
        last = sink
        while self.current.prev is not None:
            cur = self.current
            if cur.consuming == NOT_FOLLOW:
                if (cur.window is not None or (self.window or 0) > 0) and last.kind == FINAL:
                    pending = self._state(PENDING, True)
                    not_cond = self._take_cond(cur)
                    stop = self._stop_state(not_cond, cur.name)
                    pending.add(PROCEED, stop, not_cond)
                    pending.add(IGNORE, None, cond_not(not_cond))
                    last = pending
            elif cur.consuming == NOT_NEXT:
                not_next = self._state(NORMAL, True)
                not_cond = self._take_cond(cur)
                stop = self._stop_state(not_cond, cur.name)
                if last.kind == FINAL:
                    not_next.add(IGNORE, last, cond_not(not_cond))
                else:
                    not_next.add(PROCEED, last, cond_not(not_cond))
                not_next.add(PROCEED, stop, not_cond)
                last = not_next
            else:
                last = self._convert(last)
            self.following = cur
            prev = cur.prev
            assert prev is not None
            self.current = prev
        return last

    def _convert(self, sink: State) -> State:
        cur = self.current
        if cur.looping:
            self._set_first_of_loop(False)
            sink_no_nots = self._copy_without_transitive_nots(sink)
            looping = self._looping(sink_no_nots)
            self._set_first_of_loop(True)
            assert cur.times is not None
            last = self._times_state(looping, sink, cur.times)
        elif cur.times_prop:
            assert cur.times is not None
            last = self._times_state(sink, sink, cur.times)
        else:
            last = self._singleton(sink, sink, self._take_cond(cur), self._ignore_cond(cur),
                                   cur.optional)
        self._add_stop_states(last)
        return last

    def _copy_without_transitive_nots(self, sink: State) -> State:
        nots = self._not_conditions()
        if not nots or not self.current.optional:
            return sink
        names = {n for _, n in nots}
        copy = self._new_state(sink.name, sink.kind, sink.stage)
        for t in sink.transitions:
            if t.action == PROCEED:
                target = t.target
                if target.kind == STOP:
                    if target.name in names:
                        continue
                else:
                    target = self._copy_without_transitive_nots(target)
                copy.add(PROCEED, target, t.cond)
            else:
                copy.add(t.action, copy if t.target is t.source else t.target, t.cond)
        return copy

    def _copy(self, state: State) -> State:
        copy = self._new_state(state.stage, state.kind, state.stage)
        for t in state.transitions:
            copy.add(t.action, copy if t.target is t.source else t.target, t.cond)
        return copy

    def _add_stop_states(self, state: State) -> None:
        for cond, name in self._not_conditions():
            state.add(PROCEED, self._stop_state(cond, name), cond)

    def _add_stop_state_to_looping(self, state: State) -> None:
        f = self.following
        if f is not None and f.consuming == NOT_FOLLOW:
            cond = self._take_cond(f)
            state.add(PROCEED, self._stop_state(cond, f.name), cond)

    def _times_state(self, sink: State, proceed: State, times: tuple[int, int]) -> State:
        cur = self.current
        lo, hi = times
        last = sink
        self._set_first_of_loop(False)
        until = cur.until
        inner_ignore = _with_until(self._inner_ignore_cond(cur), until, False)
        take = _with_until(self._take_cond(cur), until, True)
        assert take is not None
        if cur.greedy and lo != hi:
            if until is not None:
                self.original[sink.name] = self._copy(sink)
            _greedy(sink, take)
        for _ in range(lo, hi):
            last = self._singleton(last, proceed, take, inner_ignore, True)
            self._add_stop_state_to_looping(last)
        for _ in range(lo - 1):
            last = self._singleton(last, None, take, inner_ignore, False)
            self._add_stop_state_to_looping(last)
        self._set_first_of_loop(True)
        return self._singleton(last, proceed, take, self._ignore_cond(cur), cur.optional)

    def _singleton(
        self,
        sink: State,
        proceed: State | None,
        take: EdgeCond,
        ignore: EdgeCond | None,
        optional: bool,
    ) -> State:
        cur = self.current
        if cur.raw is not None:
            return self._group(cur, sink, proceed, optional)
        state = self._state(NORMAL, True)
        sink_no_nots = self._copy_without_transitive_nots(sink)
        state.add(TAKE, sink_no_nots, take)
        proceed_cond = self._true()
        if optional:
            assert proceed is not None
            if cur.greedy:
                until = cur.until
                original = self.original.get(proceed.name)
                if until is not None:
                    if original is not None:
                        state.add(PROCEED, original, cond_and(proceed_cond, until))
                    state.add(PROCEED, proceed, cond_and(proceed_cond, cond_not(until)))
                else:
                    state.add(PROCEED, proceed, proceed_cond)
            else:
                state.add(PROCEED, proceed, proceed_cond)
        if ignore is not None:
            if optional or self._head_of_optional_group(cur):
                ignore_state = self._state(NORMAL, False)
                ignore_state.add(TAKE, sink_no_nots, take)
                ignore_state.add(IGNORE, None, ignore)
                self._add_stop_states(ignore_state)
            else:
                ignore_state = state
            state.add(IGNORE, ignore_state, ignore)
        return state

    def _head_of_optional_group(self, p: _P) -> bool:
        if not self._head_of_group(p):
            return False
        assert self.group is not None
        return self._group_first_of_loop() and self.group.optional

    def _enter_group(self, group: _P) -> tuple[_P, _P | None, _P | None]:
        saved = (self.current, self.following, self.group)
        self.group = group
        assert group.raw is not None
        self.current = group.raw
        return saved

    def _leave_group(self, saved: tuple[_P, _P | None, _P | None]) -> None:
        self.current, self.following, self.group = saved

    def _group(self, group: _P, sink: State, proceed: State | None, optional: bool) -> State:
        # As in Flink's createGroupPatternState, the PROCEED condition is taken in the
        # enclosing context: the group's own `until` does not guard leaving the group.
        proceed_cond = self._true()
        saved = self._enter_group(group)
        last = self._middle_states(sink)
        last = self._convert(last)
        if optional:
            assert proceed is not None
            last.add(PROCEED, proceed, proceed_cond)
        self._leave_group(saved)
        return last

    def _looping_group(self, group: _P, sink: State) -> State:
        proceed_cond = self._true()  # the enclosing context's, as in _group
        saved = self._enter_group(group)
        # the dummy state belongs to the group (Flink creates it before switching patterns)
        self.current = group
        dummy = self._state(NORMAL, True)
        assert group.raw is not None
        self.current = group.raw
        last = self._middle_states(dummy)
        last = self._convert(last)
        last.add(PROCEED, sink, proceed_cond)
        dummy.add(PROCEED, last, proceed_cond)
        self._leave_group(saved)
        return last

    def _looping(self, sink: State) -> State:
        cur = self.current
        if cur.raw is not None:
            return self._looping_group(cur, sink)
        until = cur.until
        ignore = _with_until(self._inner_ignore_cond(cur), until, False)
        take = _with_until(self._take_cond(cur), until, True)
        assert take is not None
        proceed_cond = self._true()
        looping = self._state(NORMAL, True)
        if cur.greedy:
            if until is not None:
                sink_copy = self._copy(sink)
                looping.add(PROCEED, sink_copy, cond_and(proceed_cond, until))
                self.original[sink.name] = sink_copy
                looping.add(PROCEED, sink, cond_and(proceed_cond, cond_not(until)))
            else:
                looping.add(PROCEED, sink, proceed_cond)
            _greedy(sink, self._take_cond(cur))
        else:
            looping.add(PROCEED, sink, proceed_cond)
        looping.add(TAKE, None, take)
        self._add_stop_state_to_looping(looping)
        if ignore is not None:
            ignore_state = self._state(NORMAL, False)
            ignore_state.add(TAKE, looping, take)
            ignore_state.add(IGNORE, None, ignore)
            looping.add(IGNORE, ignore_state, ignore)
            self._add_stop_state_to_looping(ignore_state)
        return looping


def _with_until(cond: EdgeCond | None, until: EdgeCond | None, is_take: bool) -> EdgeCond | None:
    """Flink's ``extendWithUntilCondition``: ``not until and cond``."""
    if until is not None and cond is not None:
        return cond_and(cond_not(until), cond)
    if until is not None and is_take:
        return cond_not(until)
    return cond


def _greedy(state: State, take: EdgeCond) -> None:
    """Flink's ``updateWithGreedyCondition``: every edge of ``state`` also requires that the
    event is *not* one the greedy loop could take."""
    for t in state.transitions:
        t.cond = cond_and(t.cond, cond_not(take))


def _all_names(stages: tuple[StageSpec, ...]) -> list[str]:
    out: list[str] = []
    for s in stages:
        if s.group is not None:
            out.extend(_all_names(s.group))
        else:
            out.append(s.name)
    return out

