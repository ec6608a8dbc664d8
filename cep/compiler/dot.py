"""Graphviz rendering of compiled NFAs (``cep explain --states --format dot|png|svg``; the
default diagram, one node per stage, is :mod:`cep.compiler.stage_dot`).

:func:`dot_text` writes DOT source: one cluster per rule, a node per state (the start state
marked by an arrow from a point; final states double circles; stop states octagons; pending
states — ``not followed by … within`` — double octagons) and an edge per transition,
labelled with its action and guard: ``take`` solid, ``ignore`` dashed, ``proceed`` dotted.
:func:`render` runs Graphviz's ``dot`` on it.
"""

from __future__ import annotations

import shutil
import subprocess
import textwrap

from cep.compiler.compiled import CompiledRule
from cep.nfa.model import ACTION_NAMES, FINAL, PENDING, STOP, State

__all__ = ["dot_text", "render", "render_png", "escape", "q", "GraphvizMissing",
           "INSTALL_HINT"]

INSTALL_HINT = ("install Graphviz (Debian/Ubuntu: apt-get install graphviz; Fedora: dnf "
                "install graphviz; macOS: brew install graphviz), or write DOT with "
                "--format dot and render it elsewhere")

_SHAPES = {FINAL: "doublecircle", STOP: "octagon", PENDING: "doubleoctagon"}
_STYLES = ("solid", "dashed", "dotted")  # take, ignore, proceed
_COLORS = ("black", "gray45", "royalblue3")


class GraphvizMissing(RuntimeError):
    """The ``dot`` program is not on ``PATH``."""


def escape(text: str) -> str:
    """``text`` for the inside of a DOT double-quoted string; ``\\n`` becomes a centred
    line break."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def q(text: str) -> str:
    """A DOT double-quoted string (:func:`escape`)."""
    return f'"{escape(text)}"'


_q = q


def _wrap(text: str, width: int = 36) -> str:
    return "\n".join(textwrap.wrap(text, width, break_long_words=True)) or text


def _state_label(st: State) -> str:
    parts = [st.name]
    if st.window_ms:
        parts.append(f"within {st.window_ms} ms")
    return "\n".join(parts)


def _rule_lines(i: int, rule: CompiledRule) -> list[str]:
    nfa = rule.nfa
    prefix = f"r{i}_"
    skip = nfa.skip.replace("_", " ") + (f" {nfa.skip_stage}" if nfa.skip_stage else "")
    title = (f"rule {rule.name}\nkey: {', '.join(rule.key_names) or '(one key)'}; "
             f"window: {str(nfa.window_ms) + ' ms' if nfa.window_ms else 'none'}; "
             f"after match: {skip}")
    lines = [f"  subgraph cluster_{i} {{", f"    label={_q(title)};", "    labeljust=l;",
             "    color=gray70;", f'    {prefix}start [shape=point, width=0.12, label=""];']
    for st in nfa.states:
        shape = _SHAPES.get(st.kind, "circle")
        lines.append(f"    {prefix}{st.index} [label={_q(_state_label(st))}, shape={shape}];")
    lines.append(f"    {prefix}start -> {prefix}{nfa.start.index};")
    for st in nfa.states:
        for t in st.transitions:
            cond = "" if t.cond.always else "\n" + _wrap(t.cond.label)
            lines.append(
                f"    {prefix}{st.index} -> {prefix}{t.target.index} "
                f"[label={_q(ACTION_NAMES[t.action] + cond)}, style={_STYLES[t.action]}, "
                f"color={_COLORS[t.action]}, fontcolor={_COLORS[t.action]}];")
    lines.append("  }")
    return lines


def dot_text(rules: list[CompiledRule]) -> str:
    """DOT source for ``rules`` (one ``digraph``, one cluster per rule)."""
    lines = ["digraph cep {", "  rankdir=LR;", '  fontname="Helvetica";',
             '  node [fontname="Helvetica", fontsize=11];',
             '  edge [fontname="Helvetica", fontsize=9];']
    for i, rule in enumerate(rules):
        lines += _rule_lines(i, rule)
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_png(dot: str, timeout_s: float = 60.0) -> bytes:
    """Render DOT source to PNG bytes with Graphviz (:func:`render`)."""
    return render(dot, "png", timeout_s)


def render(dot: str, fmt: str, timeout_s: float = 60.0) -> bytes:
    """Render DOT source with Graphviz to ``fmt`` (``png`` or ``svg``) bytes.  Raises
    :class:`GraphvizMissing` when ``dot`` is not installed and ``RuntimeError`` when it
    fails."""
    exe = shutil.which("dot")
    if exe is None:
        raise GraphvizMissing(f"Graphviz's `dot` program was not found on PATH: {INSTALL_HINT}")
    proc = subprocess.run([exe, f"-T{fmt}"], input=dot.encode(), capture_output=True,
                          timeout=timeout_s, check=False)
    if proc.returncode != 0:
        raise RuntimeError("dot failed: " + proc.stderr.decode("utf-8", "replace").strip())
    return proc.stdout
