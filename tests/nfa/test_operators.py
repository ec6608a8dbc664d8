"""Data-driven cases per operator: rule text + events → the matches Flink produces."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from cep.compiler.build import build_rule
from cep.event import Event
from cep.lang.check import check_rule_file
from cep.lang.parse import parse_text
from cep.operator.cep_operator import CepOperator

CASES = yaml.safe_load((Path(__file__).parent / "cases.yaml").read_text())


def _rule_text(case: dict[str, Any]) -> str:
    body = "".join(f"    {line}\n" for line in case["pattern"].splitlines())
    tail = ""
    if case.get("within"):
        tail += f"  within {case['within']}\n"
    if case.get("skip"):
        tail += f"  after match {case['skip']}\n"
    return f"rule case\n  pattern\n{body}{tail}end\n"


def _events(rows: list[list[Any]]) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        i, name = row[0], row[1]
        price = row[2] if len(row) > 2 else 0
        ts = row[3] if len(row) > 3 else i
        out.append({"id": i, "ts": ts, "name": name, "price": price})
    return out


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_operator_case(case: dict[str, Any]) -> None:
    text = _rule_text(case)
    rf, diags = parse_text(text, "case.cep")
    diags = list(diags) + check_rule_file(rf)
    assert not [d for d in diags if d.severity == "error"], diags
    rule = build_rule(rf.rules[0])
    got: list[list[int]] = []

    def emit(sink: str, record: dict[str, Any]) -> None:
        if sink == "alerts":
            got.append(sorted(e["id"] for evs in record["match"].values() for e in evs))

    op = CepOperator([rule], emit)
    for seq, ev in enumerate(_events(case["events"]), 1):
        op.on_event(Event(ev["ts"], seq, ev, "input", seq))
    op.finish()
    assert sorted(got) == sorted(sorted(m) for m in case["expected"]), case["source"]
