"""The matching step's shortcuts against its plain form.

:func:`cep.nfa.matcher.process` takes shortcuts — a key with only its start computation that
takes the event on one edge, a key whose one partial match completes while the start takes
nothing — and the operator starts a key without state from :func:`start_shortcut` /
:func:`started_key_state`, steps a key kept as its event alone with :func:`kept_step` (as its
events, with :func:`kept_events_step` / :func:`kept_events_state`), and expires the keys of
automata whose expiry says nothing with :func:`expire_silently`.  Here, for random patterns
of every operator the reference knows (tests/reference/strategies.py) and random event
sequences, every step is compared with Flink's ``doProcess`` written plainly:
:func:`_next_computations` per computation, a :class:`JavaHeap` of the partial matches, the
STOP rule, and ``_release``: the same matches, the same partial matches (state, order key,
events), the same held-back matches, in the same order.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from reference.strategies import cases

from cep.compiler.build import build_rule
from cep.event import Event
from cep.lang.check import check_rule_file
from cep.lang.parse import parse_text
from cep.nfa.heap import JavaHeap
from cep.nfa.matcher import (
    START_CK,
    Computation,
    Kept,
    KeyState,
    _next_computations,
    _release,
    advance_time,
    expire_silently,
    is_idle,
    kept_events_state,
    kept_events_step,
    kept_step,
    new_key_state,
    next_deadline,
    process,
    start_shortcut,
    started_key_state,
)
from cep.nfa.model import FINAL, NFA, STOP
from cep.testing.flinkcase import case_to_rule_text


def _nfa(case: dict[str, Any]) -> NFA | None:
    try:
        text, _ = case_to_rule_text(case)
    except ValueError:
        return None
    rf, diags = parse_text(text, "<case>")
    if diags or check_rule_file(rf):
        return None
    # Flink's step unchanged: cohort pruning is what the plain step does not do, and is
    # checked against the unpruned step in tests/nfa/test_cohort_pruning.py
    return build_rule(rf.rules[0], "<case>", prune_cohorts=False).nfa


def _plain_process(nfa: NFA, ks: KeyState, ev: Event) -> list[Any]:
    """Flink's doProcess from its parts: each computation's next states in heap-array order;
    FINAL ones are completed, a STOP discards its computation's other branches."""
    partial = JavaHeap()
    potential = JavaHeap()
    for cs in ks.a:
        nxt = _next_computations(cs, ev)
        stop = any(c.state.kind == STOP for c in nxt)
        for c in nxt:
            if c.state.kind == FINAL:
                potential.offer(c)
            elif c.state.kind != STOP and not stop:
                partial.offer(c)
    results: list[Any] = []
    _release(nfa, ks, potential, partial, results)
    ks.a = tuple(partial.a)
    return results


def _chain(node: Any) -> list[tuple[str, int]]:
    out = []
    while node is not None:
        out.append((node.stage, node.event.seq))
        node = node.prev
    return out


def _kept_event(ks: KeyState, sc: Any) -> Any:
    """The event of a key that holds its start computation and one partial match waiting in
    the start shortcut's target with that one event (what the operator keeps as the event
    alone), else None."""
    if sc is None or len(ks.a) != 2 or ks.completed.a or ks.a[1].ck is not START_CK:
        return None
    cs = ks.a[0]
    node = cs.node
    if cs.state is not sc[0] or node is None or node.prev is not None or node.stage != sc[1]:
        return None
    return node.event


def _kept_events(ks: KeyState, sc: Any) -> list[Any] | None:
    """The events, in start order, of a key that holds its start computation and partial
    matches each waiting in the start shortcut's target with one event (what the operator
    keeps as ``(deadline, events…)``), else None."""
    if sc is None or ks.completed.a or ks.a[-1].ck is not START_CK or len(ks.a) < 2:
        return None
    events = []
    for cs in sorted(ks.a[:-1], key=lambda c: c.ck):
        node = cs.node
        if (cs.ck is START_CK or cs.state is not sc[0] or node is None
                or node.prev is not None or node.stage != sc[1]):
            return None
        events.append(node.event)
    return events


def _comps(comps: Any) -> list[tuple[Any, ...]]:
    return [(c.state.name, c.ck, _chain(c.node)) for c in comps]


def _same(a: KeyState, b: KeyState) -> None:
    assert _comps(a.a) == _comps(b.a)
    assert _comps(a.completed.a) == _comps(b.completed.a)


def _copy(ks: KeyState) -> KeyState:
    completed = ks.completed
    if completed.a:
        completed = JavaHeap()
        completed.a = list(ks.completed.a)
    return KeyState(ks.a, completed, ks.clock, ks.deadline)


def _check_kept(nfa: NFA, sc: Any, fast: KeyState, ev: Event, silent: bool) -> None:
    """Where the operator would keep ``fast`` as its event(s) alone, :func:`kept_step` /
    :func:`kept_events_step` against :func:`process` on a copy, wherever they decide."""
    # a key kept as its event alone (its one partial match waits in the shortcut's
    # target with one event): the operator's kept_step, wherever it decides
    kept = _kept_event(fast, sc)
    if kept is not None:
        answer = kept_step(nfa, sc, kept, ev)  # type: ignore[arg-type]
        trial = _copy(fast)
        out = [_chain(m) for m in process(nfa, trial, ev)]
        if answer is Kept.KEPT:
            assert out == [] and _comps(trial.a) == _comps(fast.a)
        elif answer is Kept.DROPPED:
            assert out == [] and is_idle(trial)
        elif answer is Kept.STARTED:
            # the two events kept, in start order: the state process makes
            both = kept_events_state(nfa, sc, [kept, ev])  # type: ignore[arg-type]
            assert out == [] and _comps(both.a) == _comps(trial.a)
            assert not trial.completed.a and both.clock == ev.ts
        elif answer is not None:
            assert out == [_chain(answer)] and is_idle(trial)
    # a key kept as its events (each partial match waits in the target with one event),
    # for an automaton whose expiry says nothing: kept_events_step, wherever it decides
    events = _kept_events(fast, sc)
    if events is not None and silent:
        assert _comps(kept_events_state(nfa, sc, events).a) == _comps(fast.a)  # type: ignore[arg-type]
        answer = kept_events_step(nfa, sc, events, ev)  # type: ignore[arg-type]
        trial = _copy(fast)
        out = [_chain(m) for m in process(nfa, trial, ev)]
        if answer is Kept.KEPT:
            assert out == [] and _comps(trial.a) == _comps(fast.a)
        elif answer is not None:
            left, matches = answer
            assert [_chain(m) for m in matches] == out and not trial.completed.a
            if left:
                want = kept_events_state(nfa, sc, left)  # type: ignore[arg-type]
                assert _comps(want.a) == _comps(trial.a)
            else:
                assert is_idle(trial)


_PRUNED = {
    "id": "hypothesis", "within_ms": None, "skip": "skipPastLastEvent",
    "stages": [
        {"name": n, "contiguity": c, "where": w, "quantifier": None, "optional": o,
         "greedy": False, "until": None, "group": None}
        for n, c, w, o in (("A", "begin", "true", False), ("B", "next", 'name == "b"', True),
                           ("C", "followedBy", 'name == "a"', False),
                           ("D", "next", 'name == "a"', False))],
    "events": [{"id": 1, "ts": 0, "name": "a", "price": 0},
               {"id": 2, "ts": 0, "name": "b", "price": 0},
               {"id": 3, "ts": 0, "name": "a", "price": 0}],
}
"""A case where cohort pruning leaves fewer partial matches than the plain step: the step
under test runs unpruned."""


@settings(max_examples=700, deadline=None, suppress_health_check=list(HealthCheck))
@given(cases(if_function=False, throw_on_miss=False))
@example(_PRUNED)
def test_the_matching_step_and_its_shortcuts_agree_with_the_plain_step(
        case: dict[str, Any]) -> None:
    nfa = _nfa(case)
    assume(nfa is not None)
    assert nfa is not None
    events = sorted(case["events"], key=lambda e: e["ts"])  # as the operator releases them
    fast = new_key_state(nfa)
    plain = new_key_state(nfa)
    silent = not nfa.has_pending and nfa.skip == "no_skip"
    sc = start_shortcut(nfa)
    for seq, d in enumerate(events, 1):
        ev = Event(int(d["ts"]), seq, d, "input", seq)
        # time first, as the operator does before a key's event
        if silent:
            expired = _copy(fast)
            n = expire_silently(nfa, expired, ev.ts)
        got_m, got_t = advance_time(nfa, fast, ev.ts)
        want_m, want_t = advance_time(nfa, plain, ev.ts)
        assert [_chain(m) for m in got_m] == [_chain(m) for m in want_m]
        assert [(_chain(n_), t) for n_, t in got_t] == [(_chain(n_), t) for n_, t in want_t]
        _same(fast, plain)
        if silent:
            assert not got_m and n == len(got_t)  # nothing is ever released: silent
            _same(expired, fast)
        # a key without state that the event can start: the operator's start shortcut
        idle = len(fast.a) == 1 and fast.a[0].ck is START_CK and not fast.completed.a
        pre = nfa.start_prefilter
        if idle and sc is not None and pre is not None and pre.fn(ev, None):
            started = started_key_state(nfa, sc, ev)
            fresh = new_key_state(nfa)
            assert process(nfa, fresh, ev) == []
            _same(started, fresh)
            assert started.clock == ev.ts
            offset = sc[2]
            assert next_deadline(nfa, started) == (
                float("inf") if offset is None else ev.ts + offset)
        _check_kept(nfa, sc, fast, ev, silent)
        got = process(nfa, fast, ev)
        want = _plain_process(nfa, plain, ev)
        assert [_chain(m) for m in got] == [_chain(m) for m in want]
        _same(fast, plain)


def test_a_start_shortcut_needs_one_way_from_the_start(tmp_path: Any) -> None:
    def nfa_of(body: str) -> NFA:
        rf, diags = parse_text(f"rule r\n  pattern\n{body}  within 10s\nend\n", "<t>")
        assert not diags and not check_rule_file(rf)
        return build_rule(rf.rules[0], "<t>").nfa

    simple = nfa_of('    begin a where name == "x"\n    followed by b where name == "y"\n')
    sc = start_shortcut(simple)
    assert sc is not None
    target, stage, offset, waits = sc
    assert (target.name, stage, offset) == ("b", "a", 10_000)
    # the last stage of `followed by` / `next`: one test of its guard decides; not so for
    # `followed by any` (the partial match also waits when the guard holds)
    assert waits is not None and waits[1:2] + waits[3:] == ("b", True, False)
    strict = start_shortcut(nfa_of('    begin a where name == "x"\n'
                                   '    next b where name == "y"\n'))
    assert strict is not None and strict[3] is not None and strict[3][3] is False
    relaxed = start_shortcut(nfa_of('    begin a where name == "x"\n'
                                    '    followed by any b where name == "y"\n'))
    assert relaxed is not None and relaxed[3] is None
    # a looping first stage (it may take the event again), an optional one (PROCEED edges),
    # a one-stage pattern (the start completes at once): no shortcut
    assert start_shortcut(nfa_of('    begin a where name == "x" one or more\n'
                                 '    followed by b where name == "y"\n')) is None
    assert start_shortcut(nfa_of('    begin a where name == "x" optional\n'
                                 '    followed by b where name == "y"\n')) is None
    assert start_shortcut(nfa_of('    begin a where name == "x"\n')) is None


def _rule_nfa(text: str) -> NFA:
    """The automaton of the one rule of ``text``."""
    rf, diags = parse_text(text, "<t>")
    assert not diags and not check_rule_file(rf)
    return build_rule(rf.rules[0], "<t>").nfa


def test_completing_the_one_partial_match_leaves_the_start() -> None:
    nfa = _rule_nfa('rule r\n  pattern\n    begin a where name == "x"\n'
                    '    followed by b where name == "y"\nend\n')
    ks = new_key_state(nfa)
    x = Event(1, 1, {"name": "x"}, "input", 1)
    y = Event(2, 2, {"name": "y"}, "input", 2)
    assert process(nfa, ks, x) == []
    start = ks.a[1]
    [done] = process(nfa, ks, y)
    assert ks.a == (start,) and not ks.completed.a
    assert _chain(done) == [("b", 2), ("a", 1)]
    assert isinstance(start, Computation) and start.ck is START_CK


@settings(max_examples=400, deadline=None)
@given(contiguity=st.sampled_from(["followed by", "next", "followed by any"]),
       second=st.sampled_from(['name == "y"', 'name == "y" and price > 2',
                               'name != "x"', 'price > 3', 'price > first(a).price']),
       first=st.sampled_from(['name == "x"', 'name == "x" and price < 4']),
       window=st.sampled_from(["", "  within 6ms\n"]),
       steps=st.lists(st.tuples(st.sampled_from("xxyz"), st.integers(0, 5), st.integers(0, 2)),
                      max_size=30))
def test_keys_kept_as_their_events_step_as_the_full_state(
        contiguity: str, second: str, first: str, window: str,
        steps: list[tuple[str, int, int]]) -> None:
    # two-stage patterns, one key, many events: keys with several partial matches of one
    # event each (what the operator keeps as its events) are frequent here
    nfa = _rule_nfa(f"rule r\n  pattern\n    begin a where {first}\n"
                    f"    {contiguity} b where {second}\n{window}end\n")
    sc = start_shortcut(nfa)
    assert sc is not None
    ks = new_key_state(nfa)
    ts = 0
    for seq, (name, price, gap) in enumerate(steps, 1):
        ts += gap
        ev = Event(ts, seq, {"name": name, "price": price}, "input", seq)
        expire_silently(nfa, ks, ts)  # (the operator's timers and clock, first)
        _check_kept(nfa, sc, ks, ev, True)
        process(nfa, ks, ev)


def test_an_event_before_the_kept_ones_in_start_order_takes_the_general_step() -> None:
    # kept events are in start order (event time, then arrival): an event that would start
    # a partial match before the last of them is left to process, which orders the heap
    nfa = _rule_nfa('rule r\n  pattern\n    begin a where name == "x"\n'
                    '    followed by b where name == "y"\n  within 10ms\nend\n')
    sc = start_shortcut(nfa)
    assert sc is not None

    def x(ts: int, seq: int) -> Event:
        return Event(ts, seq, {"name": "x"}, "input", seq)

    assert kept_step(nfa, sc, x(5, 2), x(5, 3)) is Kept.STARTED
    assert kept_step(nfa, sc, x(5, 2), x(5, 1)) is None
    assert kept_step(nfa, sc, x(5, 2), x(4, 3)) is None
    left, matches = kept_events_step(nfa, sc, [x(1, 1), x(5, 2)], x(5, 3))
    assert [e.seq for e in left] == [1, 2, 3] and matches == []
    assert kept_events_step(nfa, sc, [x(1, 1), x(5, 2)], x(5, 1)) is None
    assert kept_events_step(nfa, sc, [x(1, 1), x(5, 2)], x(4, 3)) is None
