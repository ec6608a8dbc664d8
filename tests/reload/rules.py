"""Rule texts used by the end-to-end reload tests (events come from
:class:`tests.reload.runner.Feeder`: ``kind`` ``tick`` with an ``amount``, plus injected
``start``/``end`` and ``open``/``close`` events)."""

from __future__ import annotations

from cep.compiler.build import build_rule
from cep.compiler.compiled import CompiledRule
from cep.lang.check import check_rule
from cep.lang.parse import parse_text


def compile_rule(text: str) -> CompiledRule:
    """One rule's text compiled as a reload would (asserting it has no error)."""
    rf, diags = parse_text(text)
    assert not [d for d in diags if d.is_error], diags
    assert len(rf.rules) == 1
    assert not [d for d in check_rule(rf.rules[0]) if d.is_error]
    return build_rule(rf.rules[0], "<test>")


def big(threshold: int, severity: str = "high") -> str:
    return (f"# ticks above a threshold\nrule big\n  severity {severity}\n  key by user\n"
            f"  pattern\n    begin a where kind == \"tick\" and amount > {threshold}\n"
            f"  emit {{ amount: a.amount }}\nend\n")


def tiny() -> str:
    return ("rule tiny\n  severity low\n  key by user\n  pattern\n"
            "    begin a where kind == \"tick\" and amount < 5\n"
            "  emit { amount: a.amount }\nend\n")


def pair(within: str = "30s") -> str:
    return ("rule pair\n  severity medium\n  key by user\n  pattern\n"
            "    begin a where kind == \"start\"\n    followed by b where kind == \"end\"\n"
            f"  within {within}\n  emit {{ user: a.user }}\nend\n")


# line 5, column 27 is the second `>`
BROKEN_PAIR = ("rule pair\n  severity medium\n  key by user\n  pattern\n"
               "    begin a where amount >> 3\n  emit { user: a.user }\nend\n")
BROKEN_AT = (5, 27)


def win(severity: str = "low", within: str = "1500ms", edition: int = 1) -> str:
    """``open`` then ``close`` for one user.  The severity is metadata: editions differ in
    their emitted object, which makes them different versions."""
    extra = f", edition: {edition}" if edition != 1 else ""
    return ("rule win\n"
            f"  severity {severity}\n  key by user\n  pattern\n"
            "    begin a where kind == \"open\"\n    followed by b where kind == \"close\"\n"
            f"  within {within}\n  emit {{ user: a.user{extra} }}\n"
            "  on timeout emit { user: a.user }\nend\n")


def burst(threshold: int) -> str:
    """Two ticks above ``threshold`` for one user within 200 ms: many partial matches in
    flight at a high rate, so changed versions really drain."""
    return ("rule burst\n  severity critical\n  key by user\n  pattern\n"
            f"    begin a where amount > {threshold}\n"
            f"    followed by b where amount > {threshold}\n"
            "  within 200ms\n  emit { first: a.n, second: b.n }\n"
            "  on timeout emit { first: a.n }\nend\n")
