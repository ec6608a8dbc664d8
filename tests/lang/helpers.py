"""Shared helpers of the language tests: fixture discovery and rendering."""

from __future__ import annotations

import os
from pathlib import Path

from cep.diagnostics import Diagnostic, render_all

FIXTURES = Path(__file__).parent / "fixtures"
UPDATE = os.environ.get("CEP_UPDATE_FIXTURES") == "1"
"""Set CEP_UPDATE_FIXTURES=1 to rewrite the ``*.expected`` files from the current output."""


def fixture_files(kind: str) -> list[Path]:
    return sorted((FIXTURES / kind).glob("*.cep"))


def rendered(diags: list[Diagnostic], name: str, text: str) -> str:
    return render_all(diags, {name: text})


def compare_expected(cep_file: Path, actual: str) -> None:
    """Assert ``actual`` equals the ``.expected`` file beside ``cep_file`` (or rewrite it)."""
    expected_file = cep_file.with_suffix(".expected")
    if UPDATE:
        expected_file.write_text(actual, encoding="utf-8")
    assert expected_file.exists(), f"missing {expected_file.name}"
    assert actual == expected_file.read_text(encoding="utf-8")
