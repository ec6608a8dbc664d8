"""The state linter: each benchmark pattern's and shipped rule's class, confirmed by the
live partial matches the operator keeps for one key after bursts of n and 2n events."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cep.app.rules import load_rule_set
from cep.event import Event
from cep.lang.lint import lint_files, state_growth
from cep.lang.load import load_rules
from cep.operator.cep_operator import CepOperator

ROOT = Path(__file__).resolve().parents[2]
PATTERNS = ROOT.parent / "shared" / "peers" / "patterns.cep"

FAIL = {"type": "login", "ok": False}
PAY = {"type": "payment", "amount": 1}

SHIPPED = {
    "card_testing": "linear", "dormant_account_burst": "linear",
    "high_risk_payment_burst": "constant", "new_payee_large_transfer": "linear",
    "payment_refund_cycle": "linear", "payment_velocity": "constant", "refund_abuse": "linear",
    "account_takeover_chain": "linear", "brute_force_single_account": "linear",
    "credential_stuffing": "linear", "impossible_travel": "constant", "kerberoasting": "linear",
    "mfa_fatigue": "linear", "ssh_brute_force_then_success": "linear",
    "windows_password_spray": "constant", "lateral_fan_out": "constant",
    "sprayed_account_in_use": "constant",
}


def live(paths: list[str], name: str, burst: list[dict[str, Any]], n: int) -> int:
    """Live partial matches of ``name`` for one key after ``n`` events cycling ``burst``,
    1 ms apart (all within one window)."""
    rules = [r for r in load_rule_set(paths).rules if r.name == name]
    op = CepOperator(rules, lambda sink, rec: None, max_partial_matches_per_key=10**7)
    for i in range(n):
        data = {**burst[i % len(burst)], "user": "u", "ts": 1000 + i}
        op.on_event(Event(1000 + i, i + 1, data))
    op.advance(1000 + n)
    return int(op.stats()["rules"][name]["partial_matches"])


def growth(paths: list[str], name: str, burst: list[dict[str, Any]], n: int = 120) -> str:
    """The class the counts at n and 2n fit: flat, doubling or quadrupling."""
    a, b = live(paths, name, burst, n), live(paths, name, burst, 2 * n)
    ratio = b / max(a, 1)
    return "constant" if b <= 10 else "linear" if ratio < 2.6 else "quadratic"


@pytest.mark.shared
@pytest.mark.parametrize(("name", "cls", "burst"), [
    ("brute_force", "constant", [FAIL]),
    ("brute_force_relaxed", "constant", [FAIL]),
    ("fail_then_success", "linear", [FAIL]),
    ("pay_refund_pay", "linear", [PAY]),
    ("card_testing", "quadratic", [PAY]),
])
def test_benchmark_patterns_class_matches_measured_growth(name: str, cls: str,
                                                          burst: list[dict[str, Any]]) -> None:
    files, _ = load_rules([PATTERNS])
    [rule] = [r for f in files for r in f.rules if r.name == name]
    assert state_growth(rule).name == cls
    assert growth([str(PATTERNS)], name, burst) == cls


def test_the_fixes_named_by_the_warning_bring_growth_down(tmp_path: Path) -> None:
    base = ('rule ct\n  key by user\n  pattern\n    begin small where type == "payment" and '
            'amount < 5 times 3 or more{mod}\n    followed by big where type == "payment" '
            'and amount > 500\n  within 10m\nend\n')
    for mod, cls in [("", "quadratic"), (" consecutive", "quadratic"), (" greedy", "linear")]:
        path = tmp_path / f"ct{len(mod)}.cep"
        path.write_text(base.format(mod=mod))
        files, _ = load_rules([path])
        assert state_growth(files[0].rules[0]).name == cls, mod
        assert growth([str(path)], "ct", [PAY]) == cls, mod
    [warning] = lint_files(load_rules([tmp_path / "ct0.cep"])[0])
    assert warning.severity == "warning" and (warning.span.line, warning.span.col) == (4, 11)
    assert "grow quadratically" in warning.message and "`small`" in warning.message
    assert warning.hint is not None and warning.hint.startswith("make `small` `greedy`")


def test_shipped_rules_classes_and_measured_bursts() -> None:
    files, _ = load_rules([ROOT / "rules"])
    assert {r.name: state_growth(r).name for f in files for r in f.rules} == SHIPPED
    fail = {"event": {"action": "login", "outcome": "failure"},
            "source": {"address": "1.2.3.4", "ip": "1.2.3.4"}}
    rules = [str(ROOT / "rules")]

    def burst_growth(name: str, key: dict[str, Any]) -> str:
        return growth(rules, name, [{**fail, **key}], n=100)

    # keyed by user.name: all events of one key
    assert burst_growth("ssh_brute_force_then_success", {"user": {"name": "u"}}) == "linear"
    assert burst_growth("brute_force_single_account", {"user": {"name": "u"}}) == "constant"


def test_strict_makes_warnings_errors(tmp_path: Path) -> None:
    path = tmp_path / "r.cep"
    path.write_text('rule r\n  pattern\n    begin a where x == 1 times 3 or more\n'
                    '    followed by b where y == 1\n  within 1m\nend\n')
    run = [sys.executable, "-m", "cep.cli", "check", str(path)]
    res = subprocess.run(run, capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert res.returncode == 0 and "1 warning(s)" in res.stdout
    assert "warning: rule `r`: live partial matches per key grow quadratically" in res.stderr
    res = subprocess.run([*run, "--strict"], capture_output=True, text=True, cwd=ROOT,
                         timeout=60)
    assert res.returncode == 1 and "error: rule `r`: live partial" in res.stderr
