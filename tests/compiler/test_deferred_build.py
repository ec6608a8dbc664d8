"""Rules built with ``defer=True`` (cep/compiler/deferred.py): conditions, header filters and
emits are generated on first use, from the kept expression tree, by the same generator — the
rule answers, explains, traces and reloads as the eagerly built one, and every error the
checker reports is still reported at load."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

import pytest

from cep.app.rules import load_rule_set
from cep.app.trace import trace_key
from cep.compiler.build import build_rule
from cep.compiler.codegen import CompileError, StageScope, compile_condition, compile_emit
from cep.compiler.compiled import CompiledRule
from cep.compiler.explain import explain_text
from cep.compiler.generated import GeneratedCode, code_of
from cep.event import Event
from cep.io.codecs import TimeSpec, decode_lines
from cep.lang import ast
from cep.lang.parse import parse_text
from cep.operator.cep_operator import CepOperator

ROOT = Path(__file__).resolve().parents[2]

RULES = """rule proc
  where host != "skip"
  pattern
    begin p where lower(this.Image) ends with "\\\\cmd.exe" and (CommandLine contains "whoami"
      or CommandLine contains "net user" or lower(CommandLine) contains "ipconfig")
  emit { image: p.Image, cmd: p.CommandLine, tags: ["a", "b"], n: count(p) }
end

rule pair
  key by user
  pattern
    begin a where action == "fail" or action == "deny"
    followed by b where action == "ok" and b_user_is(a)
  within 10s
  emit { user: a.user, first: a.ts, last: b.ts }
end
""".replace("b_user_is(a)", "user == a.user")


def _rules(text: str, defer: bool) -> list[CompiledRule]:
    rf, diags = parse_text(text)
    assert not [d for d in diags if d.is_error]
    return [build_rule(r, "<t>", defer=defer) for r in rf.rules]


def _codes(rule: CompiledRule) -> list[GeneratedCode]:
    """The generated code of the rule's stage conditions and header filter."""
    out = [rule.header_code] if rule.header_code is not None else []
    for state in rule.nfa.states:
        for t in state.transitions:
            code = code_of(t.cond)
            if code is not None and code not in out:
                out.append(code)
    return out


EVENTS: list[dict[str, Any]] = [
    {"Image": "C:\\Windows\\CMD.EXE", "CommandLine": "whoami /all", "host": "h"},
    {"Image": "C:\\Windows\\cmd.exe", "CommandLine": "IPCONFIG", "host": "skip"},
    {"Image": "C:\\x\\cmd.exe", "CommandLine": "net user bob", "host": "h"},
    {"user": "al", "action": "fail"}, {"user": "bo", "action": "ok"},
    {"user": "al", "action": "deny"}, {"user": "al", "action": "ok"},
]


def _run(rules: list[CompiledRule], events: list[dict[str, Any]]) -> list[Any]:
    """What the operator writes for ``events`` (one a second), to the end of input."""
    out: list[Any] = []
    op = CepOperator(rules, lambda sink, rec: out.append((sink, rec)))
    for i, data in enumerate(events):
        op.on_event(Event(1000 * (i + 1), i, data))
    op.finish()
    return out


def test_nothing_is_generated_until_first_use() -> None:
    lazy = _rules(RULES, defer=True)
    proc, pair = lazy
    [hdr, cond] = _codes(proc)
    assert hdr.pending and cond.pending  # the index and the gates read the tree only
    assert cond.ast is not None and cond.eq_guard is None
    assert proc.emit_fn is not None and proc.emit_fn.__code__.co_name == "stub"
    first, second = _codes(pair)
    assert first.pending  # `or` of two equalities: its shape is known from the tree
    assert not second.pending  # reads stage `a`: generated now, only its compile() waits
    assert second.fn.__code__.co_name == "stub"


def test_deferred_rules_alert_as_eager_ones() -> None:
    eager, lazy = _rules(RULES, defer=False), _rules(RULES, defer=True)
    assert [(r.version, r.text) for r in eager] == [(r.version, r.text) for r in lazy]
    want, got = _run(eager, EVENTS), _run(lazy, EVENTS)
    assert got == want and len(want) == 4  # whoami, net user; al's fail→ok and deny→ok
    for e, z in zip(eager, lazy, strict=True):
        for ce, cz in zip(_codes(e), _codes(z), strict=True):
            assert (cz.source, cz.data_expr, dict(cz.consts).keys()) == \
                (ce.source, ce.data_expr, dict(ce.consts).keys())
    assert lazy[0].emit_fn is not None and lazy[0].emit_fn.__code__.co_name == "_emit"


def test_text_read_before_the_first_call_is_generated_once() -> None:
    [proc, _] = _rules(RULES, defer=True)
    [_, cond] = _codes(proc)
    body = cond.body
    calls = []
    generate = body.generate  # type: ignore[union-attr]
    body.generate = lambda: calls.append(1) or generate()  # type: ignore[union-attr]
    data_expr = cond.data_expr  # as the batched loop reads it to inline the condition
    assert data_expr is not None and not cond.pending
    assert cond.fn.__code__.co_name == "stub"  # generated, not compiled yet
    assert cond.fn(Event(1, 0, EVENTS[0]), None) is True
    assert cond.fn.__code__.co_name == "_cond" and calls == [1]


def test_concurrent_first_calls_generate_and_compile_once() -> None:
    expr = ast.Binary("or", ast.Binary("==", ast.Path(("x",)), ast.Lit(1)),
                      ast.Binary("contains", ast.Path(("y",)), ast.Lit("z")))
    cond = compile_condition(expr, StageScope(), "x == 1 or y contains \"z\"", defer="r")
    body = cond.code.body  # type: ignore[union-attr]
    calls = []
    generate = body.generate
    body.generate = lambda: calls.append(1) or generate()
    barrier = threading.Barrier(8)
    results: list[bool] = []

    def first_call(i: int) -> None:
        barrier.wait()
        results.append(cond.fn(Event(1, i, {"x": i % 2, "y": "z" * (i % 3)}), None))

    threads = [threading.Thread(target=first_call, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [1] and cond.fn.__code__.co_name == "_cond"
    assert sorted(results) == sorted(i % 2 == 1 or i % 3 > 0 for i in range(8))


def test_condition_first_called_after_a_reload() -> None:
    text2 = RULES.replace('"deny"', '"refused"')  # `pair` changes version, `proc` does not
    events = [*EVENTS[:3], {"user": "al", "action": "refused"}, {"user": "al", "action": "ok"}]
    want = _run(_rules(text2, defer=False), events)
    out: list[Any] = []
    op = CepOperator(_rules(RULES, defer=True), lambda sink, rec: out.append((sink, rec)))
    report = op.reload(_rules(text2, defer=True))  # before any event: nothing generated yet
    assert report.versions == {r.name: r.version for r in _rules(text2, defer=False)}
    assert all(c.pending for rs in op.rules for c in _codes(rs.rule)[:1])
    for i, data in enumerate(events):
        op.on_event(Event(1000 * (i + 1), i, data))
    op.finish()
    assert out == want and len([1 for s, _ in out if s == "alerts"]) == 3


def test_explain_and_trace_of_a_deferred_rule(tmp_path: Path) -> None:
    (tmp_path / "r.cep").write_text(RULES)
    eager = load_rule_set([str(tmp_path / "r.cep")]).rules
    lazy = load_rule_set([str(tmp_path / "r.cep")], defer=True).rules
    assert _codes(lazy[1])[0].pending
    assert [explain_text(r) for r in lazy] == [explain_text(r) for r in eager]
    data = tmp_path / "in.jsonl"
    data.write_text("".join(json.dumps({**e, "ts": 1000 * (i + 1)}) + "\n"
                            for i, e in enumerate(EVENTS)))

    def fates(rule: CompiledRule) -> list[tuple[int, str, str]]:
        with data.open("rb") as fh:
            got = trace_key(rule, {"user": "al"}, decode_lines(fh, "json", TimeSpec()))
        return [(f.line, f.what, f.detail) for f in got.fates]

    assert fates(lazy[1]) == fates(eager[1]) and len(fates(eager[1])) >= 3


def test_checker_errors_are_still_reported_at_load(tmp_path: Path) -> None:
    bad = RULES.replace('action == "ok" and', 'action == "ok" and nosuch(x) and') \
        .replace('"ipconfig")', '"ipconfig") and count(q) > 1')
    (tmp_path / "r.cep").write_text(bad)
    eager = load_rule_set([str(tmp_path / "r.cep")])
    lazy = load_rule_set([str(tmp_path / "r.cep")], defer=True)
    assert not lazy.ok and not lazy.rules
    assert [d.message for d in lazy.diagnostics] == [d.message for d in eager.diagnostics]
    assert any("nosuch" in d.message for d in lazy.errors)
    assert any("count" in d.message for d in lazy.errors)


def test_a_generation_failure_on_first_use_disables_and_is_logged(
        caplog: pytest.LogCaptureFixture) -> None:
    # an unchecked tree the checker would reject (unknown function) in an `and`
    expr = ast.Binary("and", ast.Binary("==", ast.Path(("x",)), ast.Lit(1)),
                      ast.Binary("==", ast.Call("nosuch", (ast.Path(("y",)),)), ast.Lit(2)))
    with pytest.raises(CompileError):
        compile_condition(expr, StageScope(), "bad")
    cond = compile_condition(expr, StageScope(), "bad", defer="bad_rule")
    with caplog.at_level(logging.ERROR, logger="cep.compiler"):
        assert cond.fn(Event(1, 0, {"x": 1, "y": 2}), None) is False
        assert cond.fn(Event(1, 1, {"x": 1, "y": 2}), None) is False
    [record] = caplog.records
    assert record.getMessage() == ("rule `bad_rule`: condition `bad` cannot be generated "
                                   "(CompileError: unknown function nosuch()): disabled, "
                                   "it never holds")
    assert cond.code.source == "def _cond(ev, pm):\n    return False\n"  # type: ignore[union-attr]


@pytest.mark.parametrize("tree", ["rules", "examples"])
def test_shape_known_from_the_tree_is_the_generated_one(tree: str) -> None:
    """Over the shipped rules: each condition built deferred has the ``iterative`` and
    ``always`` of the eager build, and (once generated) the same source."""
    eager = load_rule_set([str(ROOT / tree)])
    lazy = load_rule_set([str(ROOT / tree)], defer=True)
    assert eager.ok and lazy.ok and eager.rules
    for e, z in zip(eager.rules, lazy.rules, strict=True):
        conds_e = [t.cond for s in e.nfa.states for t in s.transitions]
        conds_z = [t.cond for s in z.nfa.states for t in s.transitions]
        assert [(c.label, c.iterative, c.always) for c in conds_z] == \
            [(c.label, c.iterative, c.always) for c in conds_e]
        assert [c.source for c in _codes(z)] == [c.source for c in _codes(e)]


def test_an_emit_that_cannot_be_generated_gives_no_fields(
        caplog: pytest.LogCaptureFixture) -> None:
    scope = StageScope.of(["s"])
    fields = [("a", ast.Path(("s", "x"))), ("b", ast.Call("nosuch", ()))]
    with pytest.raises(CompileError):
        compile_emit(fields, scope)
    code = compile_emit(fields, scope, defer="r")
    with caplog.at_level(logging.ERROR, logger="cep.compiler"):
        assert code.fn({"s": [Event(1, 0, {"x": 1})]}) == {}
    [record] = caplog.records
    assert record.getMessage() == ("rule `r`: emit cannot be generated (CompileError: "
                                   "unknown function nosuch()): disabled, its alerts carry "
                                   "no fields")
    good = compile_emit(fields[:1], scope, defer="r")
    assert good.pending and good.fn({"s": [Event(1, 0, {"x": 1})]}) == {"a": 1}
    assert good.source == compile_emit(fields[:1], scope).source


@pytest.mark.shared
def test_every_sigma_rule_of_the_collection_passes_the_checker(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Sigma rules are not parsed from text, so the checker has not seen them at load: what
    lets their generation wait is that the translator writes only trees the checker (and so
    the generator) accepts.  Over SigmaHQ's Windows rules, which a run builds deferred."""
    from cep.lang.check import check_rule
    from cep.sigma.load import load_sigma

    monkeypatch.setenv("CEP_NO_GRAMMAR_CACHE", "1")  # (a cached load gives the same trees)
    loaded = load_sigma([str(ROOT.parent / "shared" / "sigma" / "rules" / "windows")])
    rules = [(rf.path, r) for rf in loaded.files for r in rf.rules]
    assert len(rules) > 2000
    errors = [(r.name, d.message) for path, r in rules for d in check_rule(r, path)
              if d.is_error]
    assert errors == []
