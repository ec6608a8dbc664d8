"""Graphviz diagrams of the author's pattern: one node per stage (``cep explain --format
dot|png|svg``; ``--states`` draws the compiled NFA instead, :mod:`cep.compiler.dot`).

Drawn from the rule's canonical text (:attr:`CompiledRule.text`, parsed again), not from the
automaton, so ``times 9 or more`` is one node labelled with its quantifier, not the unrolled
states.  Per rule, one cluster titled with the rule's name, key, window and skip strategy:

* a point, then one node per stage in order, then a double circle for the match;
* a stage node's label is its name and its modifiers as written (quantifier, ``greedy``,
  ``consecutive``, ``optional``, ``within``, ``until [cN]``); a looping stage (``one or
  more``, ``times N or more``, ``times N to M``, ``times N`` with N > 1) has a self-loop;
* the edge into a stage carries its contiguity (``begin``, ``next``, ``followed by``, …) and
  its condition; after an ``optional`` stage the next one is also reached, by a dotted edge,
  from before it; a negative stage (``not next``, ``not followed by``) is an octagon reached
  by a dashed red edge, and the path goes on from the stage before it; a group is a
  sub-cluster labelled with its own modifiers;
* a condition longer than ``max_inline`` characters is abbreviated ``[cN]`` and written out
  in the rule's legend (a note node), as is the header ``where``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cep.compiler.compiled import CompiledRule
from cep.compiler.dot import escape as _escape
from cep.compiler.dot import q as _q
from cep.lang.ast import Expr, Stage
from cep.lang.format import format_duration, format_expr, format_modifier
from cep.lang.parse import parse_text

__all__ = ["stage_dot_text"]

_CONTIGUITY = {
    "begin": "begin", "next": "next", "followed_by": "followed by",
    "followed_by_any": "followed by any", "not_next": "not next",
    "not_followed_by": "not followed by",
}
_NEGATIVE = ("not_next", "not_followed_by")
_LOOPING = ("one_or_more", "times_or_more", "times_range")


@dataclass
class _Legend:
    """Conditions too long for an edge: ``[cN]`` → the full text (per rule)."""

    max_inline: int
    entries: list[tuple[str, str]] = field(default_factory=list)

    def text(self, expr: Expr | None) -> str:
        """The condition as shown on an edge: itself when short, else ``[cN]``."""
        if expr is None:
            return "any event"
        full = format_expr(expr)
        if len(full) <= self.max_inline:
            return full
        tag = f"[c{len(self.entries) + 1}]"
        self.entries.append((tag, full))
        return tag


def _loops(st: Stage) -> bool:
    quant = st.quantifier
    if quant is None:
        return False
    return quant.kind in _LOOPING or (quant.kind == "times" and (quant.n or 0) > 1)


def _modifiers(st: Stage, legend: _Legend) -> list[str]:
    out = []
    for m in st.modifiers:
        out.append(f"until {legend.text(m.expr)}" if m.kind == "until" else format_modifier(m))
    return out


class _Drawer:
    """DOT lines of one rule's stages; node ids ``r<i>_s<n>``."""

    def __init__(self, i: int, legend: _Legend) -> None:
        self.prefix = f"r{i}_"
        self.legend = legend
        self.lines: list[str] = []
        self.count = 0

    def node(self) -> str:
        self.count += 1
        return f"{self.prefix}s{self.count}"

    def stages(self, stages: tuple[Stage, ...], exits: list[str], indent: str) -> list[str]:
        """Draw ``stages`` after the nodes ``exits``; returns the nodes the path leaves
        from (more than one after an optional stage)."""
        for st in stages:
            exits = self.stage(st, exits, indent)
        return exits

    def enter(self, exits: list[str], me: str, label: str, style: str, indent: str) -> None:
        """The edge into a stage from the main exit (labelled) and, from the exits of
        skipped optional stages, dotted unlabelled edges."""
        main, *skips = exits
        self.lines.append(f"{indent}{main} -> {me} [label={_q(label)}{style}];")
        for other in skips:
            self.lines.append(f"{indent}{other} -> {me} [style=dotted, arrowhead=empty];")

    def stage(self, st: Stage, exits: list[str], indent: str) -> list[str]:
        negative = st.contiguity in _NEGATIVE
        edge_style = ', style=dashed, color="firebrick", fontcolor="firebrick"' \
            if negative else ""
        mods = _modifiers(st, self.legend)
        if st.group is not None:
            # the group's own statements only inside its cluster: an edge there from an
            # outside node would pull that node into the cluster
            cluster = self.node()
            first = self.node()
            outer, self.lines = self.lines, []
            ends = self.stages(st.group, [first], indent + "  ")
            body, self.lines = self.lines, outer
            self.lines += [f"{indent}subgraph cluster_{cluster} {{",
                           f"{indent}  label={_q(' '.join([st.name, *mods]))};",
                           f"{indent}  style=rounded; color=gray55;",
                           f'{indent}  {first} [shape=point, width=0.08, label=""];',
                           *body, f"{indent}}}"]
            self.enter(exits, first, _CONTIGUITY[st.contiguity], edge_style, indent)
            if _loops(st):
                self.lines.append(f"{indent}{ends[0]} -> {first} [label={_q('again')}, "
                                  "style=dotted];")
            me_exits = ends
        else:
            me = self.node()
            label = "\n".join([st.name, *mods])
            shape = "octagon" if negative else "box"
            style = ', style="rounded"' if not negative else ', color="firebrick"'
            self.lines.append(f"{indent}{me} [label={_q(label)}, shape={shape}{style}];")
            cond = self.legend.text(st.condition)
            self.enter(exits, me, _CONTIGUITY[st.contiguity] + "\n" + cond, edge_style, indent)
            if _loops(st):
                quant = st.quantifier
                assert quant is not None
                self.lines.append(f"{indent}{me} -> {me} "
                                  f"[label={_q(format_modifier(quant))}, style=dotted];")
            me_exits = [me]
        if negative:
            # a guard between its neighbours: the path goes on from the stage before it
            return exits
        return me_exits + exits if st.optional else me_exits


def _rule_lines(i: int, rule: CompiledRule, max_inline: int) -> list[str]:
    rf, diags = parse_text(rule.text or "", rule.file or "<rule>")
    if diags or not rf.rules:
        raise ValueError(f"rule {rule.name}: its text cannot be drawn as stages "
                         "(use --states)")
    ast = rf.rules[0]
    legend = _Legend(max_inline)
    skip = ast.skip.kind.replace("_", " ") + (f" {ast.skip.stage}" if ast.skip.stage else "")
    parts = [f"key: {', '.join(rule.key_names) or '(one key)'}",
             f"within {format_duration(ast.within_ms)}" if ast.within_ms else "no window",
             f"after match: {skip}"]
    if ast.where is not None:
        parts.append(f"where {legend.text(ast.where)}")
    title = f"rule {rule.name}\n" + "; ".join(parts)
    d = _Drawer(i, legend)
    start = f"{d.prefix}start"
    d.lines = [f"  subgraph cluster_{i} {{", f"    label={_q(title)};", "    labeljust=l;",
               "    color=gray70;", f'    {start} [shape=point, width=0.12, label=""];']
    exits = d.stages(ast.pattern, [start], "    ")
    done = f"{d.prefix}match"
    d.lines.append(f'    {done} [label="match", shape=doublecircle];')
    d.enter(exits, done, "", "", "    ")
    if legend.entries:
        body = "".join(_escape(f"{tag} {full}") + "\\l" for tag, full in legend.entries)
        d.lines.append(f'    {d.prefix}legend [shape=note, fontsize=9, label="{body}"];')
    d.lines.append("  }")
    return d.lines


def stage_dot_text(rules: list[CompiledRule], max_inline: int = 28) -> str:
    """DOT source of ``rules``' stage diagrams (one ``digraph``, one cluster per rule).
    Raises ``ValueError`` for a rule without parsable text."""
    lines = ["digraph cep {", "  rankdir=LR;", '  fontname="Helvetica";',
             '  node [fontname="Helvetica", fontsize=11];',
             '  edge [fontname="Helvetica", fontsize=9];']
    for i, rule in enumerate(rules):
        lines += _rule_lines(i, rule, max_inline)
    lines.append("}")
    return "\n".join(lines) + "\n"
