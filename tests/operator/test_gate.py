"""What a rule wants from an event (cep.operator.gate): the IR the batched loop and the C line
scanner's program are both made from."""

from __future__ import annotations

import pytest

from cep.compiler.build import build_rule
from cep.lang.parse import parse_text
from cep.operator.gate import Held, gate_of
from cep.operator.rule_state import RuleState


def gate(body: str, draining: bool = False):  # type: ignore[no-untyped-def]
    rule = build_rule(parse_text(f"rule r\n  key by user\n{body}\nend\n")[0].rules[0])
    rs = RuleState(rule)
    rs.draining = draining
    return gate_of(rs)


FOLLOWED = """  pattern
    begin a where type == "a"
    followed by b where type == "b"
  within 1m"""


@pytest.mark.parametrize(("body", "held"), [
    (FOLLOWED, Held.WAKE),  # followed by only, expiry says nothing
    (FOLLOWED + "\n  on timeout emit { n: 1 }", Held.WAKE_OR_DUE),  # a timeout is output
    (FOLLOWED.replace("followed by", "next"), Held.ANY),  # strict contiguity: every event
    (FOLLOWED.replace('type == "b"', "b.x > a.x"), Held.ANY),  # reads the partial match
])
def test_which_events_a_key_with_state_needs(body: str, held: Held) -> None:
    g = gate(body)
    assert g.held is held
    assert (len(g.wake) == 2) == (held is not Held.ANY)


def test_starts_and_equality_guards() -> None:
    g = gate(FOLLOWED)
    assert g.key_paths == (("user",),) and g.header_fn is None
    assert [c.eq_guard for c in g.start_codes if c is not None] == [("type", "a")]
    assert g.start_fn is not None and g.start_fn is g.rule.rule.nfa.start_prefilter.fn
    assert gate(FOLLOWED, draining=True).starts is None  # a draining version starts nothing


def test_a_start_guard_that_reads_the_match_leaves_no_prefilter() -> None:
    g = gate("""  pattern
    begin a where type == "a" and count(a) < 3  times 2 or more
  within 1m""")
    assert g.starts and g.start_fn is None  # any event may start: no prefilter
