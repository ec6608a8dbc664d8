"""Text rendering of a compiled NFA (``cep explain --format text``)."""

from __future__ import annotations

from cep.compiler.compiled import CompiledRule
from cep.nfa.model import ACTION_NAMES, KIND_NAMES, State

__all__ = ["explain_text"]


def _kind(state: State) -> str:
    parts = []
    if state.is_start:
        parts.append("start")
    if state.kind != 0 or not parts:
        parts.append(KIND_NAMES[state.kind])
    if state.window_ms:
        parts.append(f"window {state.window_ms} ms")
    return ", ".join(parts)


def explain_text(rule: CompiledRule) -> str:
    """States in order (start first) with their edges: ``take``/``ignore``/``proceed``, target
    and guard.  Also the pattern window, skip strategy, key and rule version."""
    nfa = rule.nfa
    lines = [
        f"rule {rule.name}  (version {rule.version}, severity {rule.severity})",
        f"  key: {', '.join(rule.key_names) or '(none: one key)'}",
        f"  window: {str(nfa.window_ms) + ' ms' if nfa.window_ms else 'none'}",
        "  after match: " + nfa.skip.replace("_", " ")
        + (f" {nfa.skip_stage}" if nfa.skip_stage else ""),
        f"  states: {len(nfa.states)}",
        "",
    ]
    for st in nfa.states:
        lines.append(f"  state {st.name}  [{_kind(st)}]")
        for t in st.transitions:
            target = "itself" if t.target is st else t.target.name
            lines.append(f"    {ACTION_NAMES[t.action]:<8}-> {target:<16} when {t.cond.label}")
    return "\n".join(lines) + "\n"
