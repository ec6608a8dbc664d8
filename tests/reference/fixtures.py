"""Loading the stored Flink fixtures of ``tests/data/flink/``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parents[1] / "data" / "flink"

# (cases file, Flink results file)
FIXTURE_SETS = (
    ("cases.jsonl", "expected.jsonl"),
    ("handwritten_cases.jsonl", "handwritten_expected.jsonl"),
)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def stored_pairs() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(case, Flink result) for every stored case; empty when the fixtures are missing."""
    pairs = []
    for cases_name, expected_name in FIXTURE_SETS:
        cases_path, expected_path = DATA / cases_name, DATA / expected_name
        if not (cases_path.exists() and expected_path.exists()):
            continue
        expected = {e["id"]: e for e in _read_jsonl(expected_path)}
        for case in _read_jsonl(cases_path):
            pairs.append((case, expected[case["id"]]))
    return pairs


def describe(case: dict[str, Any], expected: dict[str, Any], actual: dict[str, Any]) -> str:
    """A readable diff for assertion messages."""
    lines = [
        f"case {case['id']}: {json.dumps(case, sort_keys=True)}",
        f"  expected matches {expected.get('matches')}",
        f"  actual   matches {actual.get('matches')}",
        f"  expected timeouts {expected.get('timeouts')}",
        f"  actual   timeouts {actual.get('timeouts')}",
        f"  expected late {expected.get('late')} error {expected.get('error')}",
        f"  actual   late {actual.get('late')} error {actual.get('error')}",
    ]
    if actual.get("alternatives"):
        lines.append(f"  ({len(actual['alternatives'])} allowed outcomes)")
    return "\n".join(lines)
