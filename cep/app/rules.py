"""Load, check and compile rule files: all or nothing.

Every file is parsed and checked first; only when no file has an error are the rules
compiled.  The caller gets the compiled rules or the complete list of diagnostics.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cep.compiler.build import build_rule
from cep.compiler.compiled import CompiledRule
from cep.diagnostics import Diagnostic, render
from cep.lang.ast import RuleFile
from cep.lang.load import load_rules

__all__ = ["RuleSet", "load_rule_set", "render_diagnostics"]


@dataclass
class RuleSet:
    """The outcome of loading rule paths: compiled rules (empty when there are errors),
    every diagnostic (errors and warnings) and the parsed files."""

    rules: list[CompiledRule] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    files: list[RuleFile] = field(default_factory=list)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]

    @property
    def ok(self) -> bool:
        return not self.errors


def load_rule_set(paths: list[str]) -> RuleSet:
    """Parse and check every ``.cep`` file under ``paths``; compile them if all are clean."""
    files, diags = load_rules(paths)
    rs = RuleSet(diagnostics=list(diags), files=list(files))
    if rs.errors:
        return rs
    for rf in files:
        for rule in rf.rules:
            rs.rules.append(build_rule(rule, rf.path))
    return rs


def render_diagnostics(rs: RuleSet) -> str:
    """All diagnostics rendered ``file:line:col: error: message`` + source line + caret."""
    texts = {rf.path: rf.text for rf in rs.files}
    out = []
    for d in rs.diagnostics:
        text = texts.get(d.file)
        if text is None:
            try:
                text = Path(d.file).read_text(encoding="utf-8", errors="replace")
            except OSError:
                text = ""
        out.append(render(d, text))
    return "\n".join(out)
