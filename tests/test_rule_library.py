"""The rule library (rules/) passes its own rule tests: ``cep test rules/`` exits 0."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "rules"


def test_every_library_rule_file_has_a_test_file_beside_it() -> None:
    rule_files = sorted(RULES.rglob("*.cep"))
    assert rule_files, "the library has no rules"
    missing = [str(p.relative_to(ROOT)) for p in rule_files
               if not p.with_name(p.stem + ".test.yaml").exists()]
    assert missing == []


def test_cep_test_rules_passes() -> None:
    proc = subprocess.run([sys.executable, "-m", "cep.cli", "test", "rules/"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    summary = re.search(r"(\d+) passed, (\d+) failed", out)
    assert summary is not None, out
    passed, failed = int(summary.group(1)), int(summary.group(2))
    assert failed == 0
    # every rule file contributes tests (several each: positive, negative, late)
    assert passed >= 3 * len(list(RULES.rglob("*.cep"))), out
    assert "no test covers" not in out, out
