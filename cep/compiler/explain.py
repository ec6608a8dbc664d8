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
    and guard.  Also the pattern window, skip strategy, key and rule version; the sources it
    reads, the window of ``having`` / ``all of``, ``suppress for`` and the derived stream it
    emits to where the rule has them."""
    nfa = rule.nfa
    lines = [
        f"rule {rule.name}  (version {rule.version}, severity {rule.severity})",
        f"  key: {', '.join(rule.key_names) or '(none: one key)'}",
        f"  window: {str(nfa.window_ms) + ' ms' if nfa.window_ms else 'none'}",
        "  after match: " + nfa.skip.replace("_", " ")
        + (f" {nfa.skip_stage}" if nfa.skip_stage else ""),
        f"  states: {len(nfa.states)}",
    ]
    win, sup = rule.window, rule.suppress
    if win is not None and win.kind == "having":
        lines.insert(-1, "  having: " + " and ".join(
            f"{t.label} {t.op} {t.threshold}" for t in win.terms)
            + f" over a sliding window of {win.within_ms} ms (alert where it is crossed)")
    elif win is not None:
        lines.insert(-1, "  all of: " + ", ".join(name for name, _ in win.members)
                     + f" within a sliding window of {win.within_ms} ms")
    if sup is not None:
        lines.insert(-1, f"  suppress: {sup.period_ms} ms per "
                     + (", ".join(sup.names) if sup.names else "key"))
    if rule.sources is not None:
        lines.insert(1, "  from: " + ", ".join(sorted(rule.sources)))
    if rule.stream:
        lines.insert(-1, f"  matches: events of the derived stream {rule.sink}, for the rules "
                         "reading it")
    lines.append("")
    for st in nfa.states:
        lines.append(f"  state {st.name}  [{_kind(st)}]")
        for t in st.transitions:
            target = "itself" if t.target is st else t.target.name
            lines.append(f"    {ACTION_NAMES[t.action]:<8}-> {target:<16} when {t.cond.label}")
    return "\n".join(lines) + "\n"
