"""Rule metadata (description, severity, tags, references, author): in every alert under
``meta``, and outside the rule version — an edit of it alone keeps the version, the partial
matches and the alert ids, and the new metadata is in the alerts from the reload on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from cep.app.rule_compiler import compile_with_deadline
from cep.compiler.compiled import CompiledRule
from cep.event import Event
from cep.lang.format import format_rule, matching_text, rule_version
from cep.lang.parse import parse_text
from cep.operator.cep_operator import CepOperator
from tests.reload.rules import compile_rule

BODY = ("  key by user\n  pattern\n    begin a where kind == \"fail\"\n"
        "    followed by b where kind == \"fail\" times 2\n  within 1m\n"
        "  emit { user: a.user, n: 1 + count(b) }\nend\n")


def rule_text(meta: dict[str, Any], body: str = BODY) -> str:
    """``rule spray`` with the metadata clauses of ``meta`` (in the order given)."""
    lines = ["rule spray"]
    for clause, value in meta.items():
        if clause in ("description", "author"):
            lines.append(f'  {clause} "{value}"')
        elif clause == "severity":
            lines.append(f"  severity {value}")
        elif clause == "tags":
            lines.append("  tags " + ", ".join(value))
        else:
            lines.append("  references " + ", ".join(f'"{v}"' for v in value))
    return "\n".join(lines) + "\n" + body


metas = st.dictionaries(
    st.sampled_from(["description", "severity", "tags", "references", "author"]),
    st.just(None), max_size=5).flatmap(lambda keys: st.fixed_dictionaries({
        k: {"description": st.sampled_from(["Three failures", "Spray of one user", "x"]),
            "severity": st.sampled_from(["info", "low", "medium", "high", "critical"]),
            "tags": st.lists(st.sampled_from(["attack.t1110.003", "login", "cve-2021-44228",
                                              "attack.credential_access"]),
                             min_size=1, max_size=3),
            "references": st.lists(st.sampled_from(["https://attack.mitre.org/T1110/",
                                                    "internal:runbook-7"]),
                                   min_size=1, max_size=2),
            "author": st.sampled_from(["SOC", "fraud team", "Zoë"])}[k]
        for k in keys}))


def parsed(text: str) -> Any:
    rf, diags = parse_text(text)
    assert diags == [], diags
    return rf.rules[0]


@settings(max_examples=100, deadline=None)
@given(a=metas, b=metas)
def test_metadata_never_changes_the_version_and_matching_logic_always_does(
        a: dict[str, Any], b: dict[str, Any]) -> None:
    ra, rb = parsed(rule_text(a)), parsed(rule_text(b))
    assert rule_version(ra) == rule_version(rb)
    assert matching_text(ra) == matching_text(rb)
    # the canonical text keeps the metadata, and reads back to the same rule
    assert parsed(format_rule(ra)) == ra
    changed = parsed(rule_text(a, BODY.replace("within 1m", "within 2m")))
    assert rule_version(changed) != rule_version(ra)
    emit_changed = parsed(rule_text(a, BODY.replace("1 + count(b)", "count(b)")))
    assert rule_version(emit_changed) != rule_version(ra)


def test_every_alert_carries_the_metadata_under_meta() -> None:
    meta = {"description": "Three failures", "severity": "high",
            "tags": ["attack.t1110.003", "login"],
            "references": ["https://attack.mitre.org/techniques/T1110/003/"],
            "author": "SOC"}
    rule = compile_rule(rule_text(meta))
    out = run([rule], [(1000, "fail"), (2000, "fail"), (3000, "fail")])
    (alert,) = out
    assert alert["severity"] == "high"
    assert alert["meta"] == {"description": "Three failures",
                             "tags": ["attack.t1110.003", "login"],
                             "references": ["https://attack.mitre.org/techniques/T1110/003/"],
                             "author": "SOC"}
    bare = compile_rule(rule_text({}))
    assert run([bare], [(1000, "fail"), (2000, "fail"), (3000, "fail")])[0]["meta"] == {}


def run(rules: list[CompiledRule], events: list[tuple[int, str]],
        reload_at: int | None = None, reload_to: list[CompiledRule] | None = None,
        reports: list[Any] | None = None) -> list[dict[str, Any]]:
    """Alerts of ``events`` (``(ts, kind)`` for user alice); before event ``reload_at`` the
    operator reloads ``reload_to``."""
    out: list[dict[str, Any]] = []
    op = CepOperator(rules, lambda sink, rec: out.append(rec))
    for i, (ts, kind) in enumerate(events, 1):
        if i == reload_at:
            assert reload_to is not None
            report = op.reload(reload_to)
            if reports is not None:
                reports.append(report)
        op.on_event(Event(ts, i, {"user": "alice", "kind": kind}, "input", i))
    op.finish()
    return [r for r in out if "rule" in r]


@settings(max_examples=40, deadline=None)
@given(before=metas, after=metas, at=st.integers(1, 6))
def test_a_metadata_edit_keeps_partial_matches_and_alert_ids(
        before: dict[str, Any], after: dict[str, Any], at: int) -> None:
    events = [(1000, "fail"), (2000, "fail"), (3000, "ok"), (4000, "fail"), (5000, "fail"),
              (6000, "fail")]
    old, new = compile_rule(rule_text(before)), compile_rule(rule_text(after))
    reports: list[Any] = []
    got = run([old], events, reload_at=at, reload_to=[new], reports=reports)
    assert reports[0].unchanged == ["spray"] and reports[0].partial_dropped == 0
    # the same alerts, ids and all, as a run that never reloaded ...
    plain = run([old], events)
    assert [(a["alert_id"], a["data"], a["rule_version"]) for a in got] == \
        [(a["alert_id"], a["data"], a["rule_version"]) for a in plain]
    # ... each with the metadata in force when it was emitted: an alert is emitted on the
    # event that completes it (its `end`), before or after the reload
    reload_ts = events[at - 1][0]
    assert got
    for alert in got:
        want = new if alert["end"] >= reload_ts else old
        assert alert["meta"] == want.meta and alert["severity"] == want.severity, at


def test_a_reload_from_files_takes_the_new_metadata_of_an_unchanged_version(
        tmp_path: Path) -> None:
    path = tmp_path / "spray.cep"
    path.write_text(rule_text({"severity": "low", "tags": ["login"]}), encoding="utf-8")
    first = compile_with_deadline([str(path)])
    assert first.ok, first.diagnostics
    (v1,) = first.rules
    path.write_text(rule_text({"severity": "critical", "tags": ["attack.t1110.003"],
                               "author": "SOC"}), encoding="utf-8")
    second = compile_with_deadline([str(path)], running={v1.name: v1})
    (v2,) = second.rules
    assert v2 is not v1 and v2.version == v1.version
    assert v2.severity == "critical" and v2.meta == {"tags": ["attack.t1110.003"],
                                                     "author": "SOC"}
    # unchanged text: the running rule is reused as it is
    third = compile_with_deadline([str(path)], running={v2.name: v2})
    assert third.rules[0] is v2


def test_a_snapshot_of_the_earlier_versioning_restores_into_the_same_rule() -> None:
    """Before metadata left the version, a version hashed the whole canonical text: a
    snapshot written then holds that hash, and the state goes back into the same rule."""
    import hashlib
    from dataclasses import replace

    from cep.checkpoint import decode, encode

    rule = compile_rule(rule_text({"severity": "high", "tags": ["login"]}))
    legacy = hashlib.sha256(rule.text.encode("utf-8")).hexdigest()[:16]
    assert legacy != rule.version
    out: list[dict[str, Any]] = []
    old = CepOperator([replace(rule, version=legacy)], lambda s, r: out.append(r))
    for i, (ts, kind) in enumerate([(1000, "fail"), (2000, "fail")], 1):
        old.on_event(Event(ts, i, {"user": "alice", "kind": kind}, "input", i))
    data = encode(old)
    new = CepOperator([rule], lambda s, r: out.append(r))
    report = decode(data, new)
    assert report.restored_rules == ["spray"] and report.dropped_rules == []
    assert report.partial_matches > 0
    new.on_event(Event(3000, 3, {"user": "alice", "kind": "fail"}, "input", 3))
    new.finish()
    assert [(a["rule_version"], a["data"]["n"]) for a in out] == [(rule.version, 3)]
