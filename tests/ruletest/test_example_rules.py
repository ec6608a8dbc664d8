"""The example rules (``examples/rules``) pass their rule tests through ``cep test``: the
matching operators, lists and tables, and metadata, as a rule author uses them."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_cep_test_examples_passes() -> None:
    proc = subprocess.run([sys.executable, "-m", "cep.cli", "test", "examples/rules/"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    summary = re.search(r"(\d+) passed, (\d+) failed", out)
    assert summary is not None and int(summary.group(2)) == 0, out
    assert "soc_matching.test.yaml:3" in out and int(summary.group(1)) >= 2, out
