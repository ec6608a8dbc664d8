"""Checks of what a rule's paths read: stages that cannot have matched yet, stage names that
shadow a field, membership in a non-list, and stage names misspelt as fields.

One pass, :func:`check_references`, over one rule; every diagnostic starts with
``rule `NAME`:`` and carries the span of the offending path or literal, as the checker's
(:mod:`cep.lang.check`) do, which runs it among its passes.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from cep.diagnostics import Diagnostic
from cep.lang.ast import (
    Binary,
    Expr,
    Lit,
    Path,
    Rule,
    Span,
    Stage,
    walk,
)
from cep.lang.operators import IN, OPERATORS, Kind
from cep.lang.suggest import closest

__all__ = ["check_references", "paths_of", "cidr_hint"]

_NOT_STAGES = ("not_next", "not_followed_by")


def paths_of(expr: Expr, aggregates: bool = True) -> Iterator[Path]:
    """Every :class:`Path` of ``expr`` (the arguments of aggregates too unless
    ``aggregates`` is false), walked without recursion, in no particular order."""
    return (node for node in walk(expr, aggregates) if isinstance(node, Path))


def _binaries(expr: Expr) -> Iterator[Binary]:
    return (node for node in walk(expr) if isinstance(node, Binary))


def cidr_hint(text: str, op: str = IN.spelling) -> str | None:
    """For an IPv4 or IPv6 block written as a string (``"10.0.0.0/8"``), the test meant:
    ``in cidr("10.0.0.0/8")``; ``None`` if it is not a block."""
    if "/" not in text:
        return None
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None
    return f"to test an IP block write `{op} cidr({json.dumps(text)})`"


@dataclass
class _Stages:
    """The rule's stages in source order, with the quantified groups around each."""

    order: dict[str, int]
    stage: dict[str, Stage]
    loops: dict[str, frozenset[str]]
    """For each stage, the names of the quantified groups it is inside."""


def _index(stages: Sequence[Stage], groups: frozenset[str] = frozenset(),
           into: _Stages | None = None) -> _Stages:
    out = into or _Stages({}, {}, {})
    for st in stages:
        if st.name in out.order:
            continue  # a duplicate name: the checker's error
        out.order[st.name] = len(out.order)
        out.stage[st.name] = st
        out.loops[st.name] = groups
        if st.group is not None:
            inner = groups | {st.name} if st.quantifier is not None else groups
            _index(st.group, inner, out)
    return out


class _Pass:
    def __init__(self, rule: Rule, file: str, out: list[Diagnostic]) -> None:
        self.rule, self.file, self.out = rule, file, out
        self.stages = _index(rule.pattern)
        self.shadowing: set[str] = set()

    def error(self, span: Span, message: str, hint: str | None, warn: bool = False) -> None:
        self.out.append(Diagnostic(self.file, span, f"rule `{self.rule.name}`: {message}",
                                   "warning" if warn else "error", hint))

    def run(self) -> None:
        self.check_shadowing()
        for name, st in self.stages.stage.items():
            for expr in _conditions(st):
                direct = {id(p) for p in paths_of(expr, aggregates=False)}
                for path in paths_of(expr):
                    self.check_read(name, st, path, id(path) in direct)
        self.check_emits()
        for expr in self.all_expressions():
            for node in _binaries(expr):
                self.check_membership(node)

    def all_expressions(self) -> Iterator[Expr]:
        if self.rule.where is not None:
            yield self.rule.where
        for st in self.stages.stage.values():
            yield from _conditions(st)
        for emit in self.rule.emits:
            yield from (expr for _, expr in emit.fields)

    def check_shadowing(self) -> None:
        """A stage named like the root of a field the rule reads outside any stage (its
        ``key by`` or header ``where``): every ``NAME.x`` in a condition reads the stage."""
        field_paths = list(self.rule.key_by)
        if self.rule.where is not None:
            field_paths += paths_of(self.rule.where)
        for path in field_paths:
            head = path.parts[0]
            st = self.stages.stage.get(head)
            if st is None or len(path.parts) < 2 or head in self.shadowing:
                continue
            self.shadowing.add(head)
            dotted = ".".join(path.parts)
            self.error(st.name_span, f"stage name `{head}` shadows the field `{dotted}`: in a "
                       f"condition or `emit`, `{head}.…` reads the stage `{head}`, not the field",
                       f"rename the stage (e.g. `{head}_event`), or write the field as "
                       f"`this.{dotted}`")

    def check_read(self, name: str, st: Stage, path: Path, direct: bool) -> None:
        """``path`` in a condition of stage ``name``; ``direct``: not an aggregate's argument
        (an aggregate over the stage's own events so far is Flink's iterative condition)."""
        head = path.parts[0]
        target = self.stages.stage.get(head)
        if target is None:
            self.check_misspelt(path)
            return
        if head in self.shadowing or target.group is not None:
            return  # reported once already / the checker's error
        dotted = ".".join(path.parts)
        if target.contiguity in _NOT_STAGES and head != name:
            self.error(path.span, f"`{dotted}` reads the `not` stage `{head}`, which never "
                       "takes an event into a match", "compare with a stage that matches")
        elif head == name and st.quantifier is None and not self.stages.loops[name]:
            if len(path.parts) > 1 and direct:
                self.error(path.span, f"stage `{name}` reads its own event as `{dotted}`, "
                           "but the stage has matched nothing while its condition is tested: "
                           "the value is always null",
                           f"the event under test is `this`: write `this.{dotted}` (or "
                           f"`{'.'.join(path.parts[1:])}`), or rename the stage")
        elif self.stages.order[head] > self.stages.order[name] and not (
                self.stages.loops[name] & self.stages.loops[head]):
            self.error(path.span, f"stage `{name}` reads `{dotted}`, but `{head}` comes later "
                       f"in the pattern and has not matched when `{name}` is tested: the "
                       "value is always null",
                       f"move the comparison to stage `{head}`, reading `{name}`'s event "
                       f"there as `{name}.…`")

    def check_misspelt(self, path: Path) -> None:
        """``fial.user`` when ``fail`` is a stage: read as a field, probably not meant."""
        head = path.parts[0]
        if len(path.parts) < 2 or head == "this":
            return
        name = closest(head, [n for n, s in self.stages.stage.items() if s.group is None])
        if name is not None:
            dotted = ".".join(path.parts)
            self.error(path.span, f"`{dotted}` is read as a field, not a stage: no stage is "
                       f"named `{head}`",
                       f"did you mean the stage `{name}` (`{name}."
                       f"{'.'.join(path.parts[1:])}`)?", warn=True)

    def check_emits(self) -> None:
        for emit in self.rule.emits:
            for _, expr in emit.fields:
                for path in paths_of(expr):
                    target = self.stages.stage.get(path.parts[0])
                    if target is not None and target.contiguity in _NOT_STAGES:
                        self.error(path.span, f"`{'.'.join(path.parts)}` reads the `not` stage "
                                   f"`{target.name}`, which never takes an event into a "
                                   "match", "emit the fields of a stage that matches")

    def check_membership(self, node: Binary) -> None:
        spec = OPERATORS.get(node.op)
        if spec is None or spec.kind is not Kind.MEMBERSHIP or not isinstance(node.right, Lit):
            return
        value = node.right.value
        kind = {str: "string", bool: "boolean", int: "number", float: "number"}.get(
            type(value), "null")
        hint: str | None = None
        if isinstance(value, str):
            hint = cidr_hint(value, node.op) or (
                f"for a list write `{node.op} [{json.dumps(value)}]`; for a substring "
                "`contains`, for a prefix `starts with`")
        else:
            hint = f"write a list: `{node.op} [{json.dumps(value)}]`"
        self.error(node.right.span, f"`{node.op}` tests membership in a list, not in a {kind}",
                   hint)


def _conditions(st: Stage) -> Iterator[Expr]:
    if st.condition is not None:
        yield st.condition
    yield from (m.expr for m in st.modifiers if m.kind == "until" and m.expr is not None)


def check_references(rule: Rule, file: str = "<string>") -> list[Diagnostic]:
    """Errors (and a warning for a stage name misspelt as a field) about what ``rule``'s
    paths read; see the module docstring.  Raises nothing."""
    out: list[Diagnostic] = []
    _Pass(rule, file, out).run()
    return out
