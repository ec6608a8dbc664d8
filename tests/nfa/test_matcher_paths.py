"""The matching step's shortcuts against its plain form.

:func:`cep.nfa.matcher.process` takes shortcuts — a key with only its start computation that
takes the event on one edge, a key whose one partial match completes while the start takes
nothing — and the operator starts a key without state from :func:`start_shortcut` /
:func:`started_key_state`, steps a key kept as its event alone with :func:`kept_step`, and
expires the keys of automata whose expiry says nothing with :func:`expire_silently`.  Here,
for random patterns of every operator the reference knows (tests/reference/strategies.py)
and random event sequences, every step is compared with Flink's ``doProcess`` written
plainly: :func:`_next_computations` per computation, a :class:`JavaHeap` of the partial
matches, the STOP rule, and ``_release``: the same matches, the same partial matches (state,
order key, events), the same held-back matches, in the same order.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from reference.strategies import cases

from cep.compiler.build import build_rule
from cep.event import Event
from cep.lang.check import check_rule_file
from cep.lang.parse import parse_text
from cep.nfa.heap import JavaHeap
from cep.nfa.matcher import (
    DROPPED,
    KEPT,
    START_CK,
    Computation,
    KeyState,
    _next_computations,
    _release,
    advance_time,
    expire_silently,
    is_idle,
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
    return build_rule(rf.rules[0], "<case>").nfa


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


@settings(max_examples=700, deadline=None, suppress_health_check=list(HealthCheck))
@given(cases(if_function=False, throw_on_miss=False))
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
        # a key kept as its event alone (its one partial match waits in the shortcut's
        # target with one event): the operator's kept_step, wherever it decides
        kept = _kept_event(fast, sc)
        if kept is not None:
            answer = kept_step(nfa, sc, kept, ev)  # type: ignore[arg-type]
            trial = _copy(fast)
            out = [_chain(m) for m in process(nfa, trial, ev)]
            if answer is KEPT:
                assert out == [] and _comps(trial.a) == _comps(fast.a)
            elif answer is DROPPED:
                assert out == [] and is_idle(trial)
            elif isinstance(answer, KeyState):
                assert out == [] and _comps(answer.a) == _comps(trial.a)
                assert not answer.completed.a and answer.clock == ev.ts
            elif answer is not None:
                assert out == [_chain(answer)] and is_idle(trial)
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
    target, stage, offset = sc
    assert (target.name, stage, offset) == ("b", "a", 10_000)
    # a looping first stage (it may take the event again), an optional one (PROCEED edges),
    # a one-stage pattern (the start completes at once): no shortcut
    assert start_shortcut(nfa_of('    begin a where name == "x" one or more\n'
                                 '    followed by b where name == "y"\n')) is None
    assert start_shortcut(nfa_of('    begin a where name == "x" optional\n'
                                 '    followed by b where name == "y"\n')) is None
    assert start_shortcut(nfa_of('    begin a where name == "x"\n')) is None


def test_completing_the_one_partial_match_leaves_the_start() -> None:
    rf, diags = parse_text('rule r\n  pattern\n    begin a where name == "x"\n'
                           '    followed by b where name == "y"\nend\n', "<t>")
    assert not diags
    nfa = build_rule(rf.rules[0], "<t>").nfa
    ks = new_key_state(nfa)
    x = Event(1, 1, {"name": "x"}, "input", 1)
    y = Event(2, 2, {"name": "y"}, "input", 2)
    assert process(nfa, ks, x) == []
    start = ks.a[1]
    [done] = process(nfa, ks, y)
    assert ks.a == (start,) and not ks.completed.a
    assert _chain(done) == [("b", 2), ("a", 1)]
    assert isinstance(start, Computation) and start.ck is START_CK
