"""The KeyStore (:mod:`cep.operator.key_store`): the one owner of the key-state encodings.

* Outside the key store (and the event module that defines them), no module of ``cep`` tests
  whether a value is a :class:`KeyState` or a :class:`HeldEvent`.
* A key kept compactly (its event alone, or ``(deadline, events…)``) reads, through
  :meth:`RuleState.state_of` and :meth:`RuleState.key_states`, as the full state the matcher
  makes of the same events, without the compact entry being replaced.
* The operator and its rule states share one :class:`StepContext`: a step that schedules an
  earlier timer lowers the operator's ``next_due``; the cap and the hold rounds are the
  operator's.
* Draining and reviving a version are the key store's: a draining version's keys lose their
  start computation and get it back.
* The shared context makes no reference cycle: a dropped operator is freed at once, with its
  keyed state, not left to the cyclic collector; a drained version is still retired.
"""

from __future__ import annotations

import ast
import gc
import weakref
from pathlib import Path

from cep.compiler.build import build_rule
from cep.compiler.compiled import CompiledRule
from cep.event import Event
from cep.lang.parse import parse_text
from cep.nfa.matcher import KeyState, new_key_state, process
from cep.operator.cep_operator import CepOperator

ROOT = Path(__file__).resolve().parents[2]

# (the event module defines the two forms of an event; the runtime checks a guard's
# argument is an event of either form)
OWNERS = {"cep/operator/key_store.py", "cep/event.py", "cep/compiler/runtime.py"}
ENCODINGS = {"KeyState", "HeldEvent"}

PAY_REFUND = """
rule pay_refund
  key by user
  pattern
    begin a where type == "payment"
    followed by b where type == "refund"
  within 640ms
end
"""


def _rule(text: str) -> CompiledRule:
    rf, diags = parse_text(text, "<test>")
    assert not [d for d in diags if d.is_error]
    return build_rule(rf.rules[0], rf.path)


def _type_tests(tree: ast.AST) -> list[int]:
    """Lines of ``isinstance(x, C)`` and ``type(x) is [not] C`` with C an encoding."""
    lines = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id == "isinstance" and len(node.args) == 2):
            names = {n.id for n in ast.walk(node.args[1]) if isinstance(n, ast.Name)}
            if names & ENCODINGS:
                lines.append(node.lineno)
        elif isinstance(node, ast.Compare) and any(isinstance(op, (ast.Is, ast.IsNot))
                                                   for op in node.ops):
            sides = [node.left, *node.comparators]
            if any(isinstance(s, ast.Name) and s.id in ENCODINGS for s in sides):
                lines.append(node.lineno)
    return lines


def test_only_the_key_store_tests_the_encodings_of_key_state() -> None:
    found = {}
    for path in sorted((ROOT / "cep").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel in OWNERS:
            continue
        lines = _type_tests(ast.parse(path.read_text(), rel))
        if lines:
            found[rel] = lines
    assert found == {}
    # (and the scan does see such tests where they are)
    assert _type_tests(ast.parse((ROOT / "cep/operator/key_store.py").read_text()))


def test_a_compact_key_reads_as_the_full_state_the_matcher_makes() -> None:
    rule = _rule(PAY_REFUND)
    op = CepOperator([rule], lambda sink, rec: None)
    rs = op.rules[0]
    assert rs.compact_after == 640  # (timers rounded: the key is kept as its event alone)
    first = Event(1, 1, {"type": "payment", "user": "u"})
    second = Event(5, 2, {"type": "payment", "user": "u"})
    for ev in (first, second):
        op.on_event(ev)
        entry = rs.keys["u"]
        got = rs.state_of("u")
        assert type(got) is KeyState and rs.keys["u"] is entry  # read, not stored
        # the matcher's own state for the same events
        ks = new_key_state(rule.nfa)
        for e in (first, second)[: 1 + (ev is second)]:
            process(rule.nfa, ks, e)
        assert [(c.state.name, c.ck) for c in got.a] == [(c.state.name, c.ck) for c in ks.a]
        assert got.deadline == 1 + 640
        assert dict(rs.key_states()).keys() == {"u"}
    assert rs.state_of("nobody") is None
    assert rs.partial_matches() == 2


def test_the_operator_and_its_rule_states_share_one_context() -> None:
    op = CepOperator([_rule(PAY_REFUND.replace("within 640ms", "within 640ms\n  on timeout "
                                                               "emit { }"))],
                     lambda sink, rec: None, max_partial_matches_per_key=3)
    rs = op.rules[0]
    assert rs.ctx is op.context and op.cap == 3 == rs.ctx.cap
    op.refresh_due()
    assert op.next_due == float("inf")
    op.on_event(Event(10, 1, {"type": "payment", "user": "u"}))
    assert op.next_due == 10 + 640 == rs.timers[0]  # (exact timers: a timeout is emitted)
    op.hold_after = None
    assert not op.context.holding
    op.hold_after = 7
    assert op.context.holding and op.context.hold_at == 7


def test_draining_and_reviving_a_version_is_the_key_stores() -> None:
    rule = _rule(PAY_REFUND)
    op = CepOperator([rule], lambda sink, rec: None)
    rs = op.rules[0]
    op.on_event(Event(1, 1, {"type": "payment", "user": "u"}))
    op.on_event(Event(2, 2, {"type": "view", "user": "v"}))
    assert type(rs.keys["u"]) is Event
    kept, dropped, keys_dropped = rs.start_draining()
    assert (kept, dropped, keys_dropped) == (1, 0, 0)
    ks = rs.keys["u"]  # unfolded before draining, without its start computation
    assert type(ks) is KeyState and len(ks.a) == 1 and rs.draining
    rs.revive()
    assert not rs.draining and len(rs.keys["u"].a) == 2  # type: ignore[union-attr]


def test_a_dropped_operator_is_freed_without_the_cyclic_collector() -> None:
    op = CepOperator([_rule(PAY_REFUND)], lambda sink, rec: None)
    op.on_event(Event(1, 1, {"type": "payment", "user": "u"}))
    gone = weakref.ref(op)
    was = gc.isenabled()
    gc.disable()
    try:
        del op
        assert gone() is None
    finally:
        if was:
            gc.enable()


def test_a_drained_version_is_retired_through_the_context() -> None:
    v1 = _rule(PAY_REFUND)
    v2 = _rule(PAY_REFUND.replace("within 640ms", "within 600ms"))
    op = CepOperator([v1], lambda sink, rec: None)
    op.on_event(Event(1, 1, {"type": "payment", "user": "u"}))
    op.reload([v2])
    assert [(rs.rule.version, rs.draining) for rs in op.rules] == [(v2.version, False),
                                                                   (v1.version, True)]
    op.on_event(Event(2, 2, {"type": "refund", "user": "u"}))  # completes the old match
    assert [rs.rule.version for rs in op.rules] == [v2.version]
    assert op.retired["pay_refund"][0] == 1  # its match counted
