"""Text output of ``cep test``: one line per test, a diff under each failure, a summary.

A diff lists expectations that found no record (``-``) and records nobody expected (``+``);
an unexpected alert is printed as an ``expect`` entry (JSON is valid YAML), so it can be
pasted into the test once it is confirmed right.
"""

from __future__ import annotations

from typing import Any

import orjson

from cep.ruletest.runner import Outcome, Problem

__all__ = ["test_line", "diff_lines", "summary_line", "alert_as_expectation"]


def _j(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS, default=str).decode()


def test_line(outcome: Outcome) -> str:
    """``ok    FILE:LINE  NAME`` or ``FAIL  …`` / ``ERROR …``."""
    t = outcome.test
    status = "ok   " if outcome.passed else ("ERROR" if outcome.error else "FAIL ")
    return f"{status} {t.file}:{t.line}  {t.name}"


def alert_as_expectation(alert: dict[str, Any]) -> dict[str, Any]:
    """An emitted alert (as the runner shows it) in the shape of an ``expect`` entry."""
    out: dict[str, Any] = {"rule": alert["rule"], "key": alert["key"], "data": alert["data"],
                           "match": alert["match_inputs"]}
    if alert["timed_out"]:
        out["timed_out"] = True
    if alert["sink"] != "alerts":
        out["sink"] = alert["sink"]
    return out


def _problem_lines(p: Problem) -> list[str]:
    if p.kind == "missing":
        head = f"- missing {p.what} (expected at line {p.expected_line}): {_j(p.expected)}"
        return [head] + [f"    {h}" for h in p.hints]
    if p.what in ("alert", "timeout"):
        return [f"+ unexpected {p.what}: {_j(alert_as_expectation(p.actual))}"]
    if p.what == "late":
        a = p.actual
        return [f"+ unexpected late event: input {a.get('input')}, watermark "
                f"{a.get('watermark')}, event {_j(a.get('event'))}"]
    a = p.actual
    return [f"+ unexpected dead letter: input {a.get('input')}, reason {a.get('reason')}: "
            f"{a.get('error')}"]


def diff_lines(outcome: Outcome, indent: str = "      ") -> list[str]:
    """The readable diff of a failed test (empty when it passed)."""
    if outcome.error:
        return [indent + outcome.error]
    if not outcome.problems:
        return []
    n_exp = len(outcome.test.expect)
    lines = [f"expected {n_exp} alert(s)/timeout(s), emitted {len(outcome.alerts)}; "
             f"{len(outcome.late)} late, {len(outcome.dead_letters)} dead letter(s)"]
    for p in outcome.problems:
        lines += _problem_lines(p)
    return [indent + line for line in lines]


def summary_line(passed: int, failed: int, errors: int, elapsed_s: float) -> str:
    """``3 passed, 1 failed, 1 error(s) in 0.05 s``."""
    parts = [f"{passed} passed", f"{failed} failed"]
    if errors:
        parts.append(f"{errors} error(s)")
    return ", ".join(parts) + f" in {elapsed_s:.2f} s"
