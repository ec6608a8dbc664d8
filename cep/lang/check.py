"""Semantic checks of parsed rules, as small passes over the AST.

Errors include every pattern Flink CEP rejects when it builds or compiles a pattern
(``Pattern``/``Quantifier`` preconditions, ``NFACompiler`` checks), plus the language's own
rules (stage references, functions, ``emit``).  Warnings flag rules that are valid but
almost certainly not what was meant.  Every message starts with ``rule `NAME`:`` and carries
the span of the offending text.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from cep.diagnostics import Diagnostic
from cep.lang.ast import (
    AGGREGATES,
    CIDR_FUNCTION,
    FUNCTIONS,
    SEVERITIES,
    Attr,
    Binary,
    Call,
    Expr,
    IsNull,
    ListLit,
    Lit,
    Lookup,
    Modifier,
    Path,
    Rule,
    RuleFile,
    Span,
    Stage,
    Unary,
)
from cep.lang.format import format_modifier
from cep.lang.limits import MAX_EXPR_DEPTH, MAX_PATTERN_STEPS, MAX_TIMES
from cep.lang.lists import check_declarations
from cep.lang.operators import OPERATORS, Kind, Lowering, OperatorTable
from cep.lang.references import check_references
from cep.lang.streams import check_streams
from cep.lang.suggest import did_you_mean
from cep.lang.window_check import check_window_clauses

__all__ = ["check_rule_file", "check_rule", "check_rule_set", "all_stages", "expr_depth",
           "MAX_EXPR_DEPTH", "RESERVED_NAMES"]

QUANTIFIERS = ("times", "times_range", "times_or_more", "one_or_more")
LOOPING = ("one_or_more", "times_or_more")
NOT_STAGES = ("not_next", "not_followed_by")
RESERVED_NAMES = frozenset({"this", "true", "false", "null", "not", "any"})
"""Names that would be read as keywords where a stage name is written or referenced."""

_KEYWORD = {
    "times": "times", "times_range": "times … to …", "times_or_more": "times … or more",
    "one_or_more": "one or more", "optional": "optional", "greedy": "greedy",
    "consecutive": "consecutive", "allow_combinations": "allow combinations",
    "until": "until", "within": "within",
}
_CONTIGUITY_TEXT = {
    "begin": "begin", "next": "next", "followed_by": "followed by",
    "followed_by_any": "followed by any", "not_next": "not next",
    "not_followed_by": "not followed by",
}
_SURROGATE = re.compile("[\ud800-\udfff]")


@functools.cache
def _re2_options() -> Any:
    import re2

    options = re2.Options()
    options.log_errors = False
    return options


@dataclass
class _Ctx:
    """What a pass needs: the rule, its stage names, and where to put diagnostics."""

    file: str
    rule: Rule
    out: list[Diagnostic]
    stages: dict[str, Stage] = field(default_factory=dict)
    groups: dict[str, Stage] = field(default_factory=dict)
    lists: frozenset[str] = frozenset()
    """The lists and tables the rule's file declares."""
    operators: OperatorTable = OPERATORS
    """The comparison operators of the language."""

    def error(self, span: Span, message: str, hint: str | None = None) -> None:
        self.out.append(Diagnostic(self.file, span, f"rule `{self.rule.name}`: {message}",
                                   "error", hint))

    def warn(self, span: Span, message: str, hint: str | None = None) -> None:
        self.out.append(Diagnostic(self.file, span, f"rule `{self.rule.name}`: {message}",
                                   "warning", hint))

    def clause_span(self, keyword: str) -> Span:
        return dict(self.rule.spans).get(keyword, self.rule.name_span)


def all_stages(stages: Iterable[Stage]) -> Iterator[Stage]:
    """Every stage of a pattern in source order, groups before their inner stages."""
    for st in stages:
        yield st
        if st.group is not None:
            yield from all_stages(st.group)


def _head(st: Stage) -> Span:
    """The stage's keyword and name: ``next again``."""
    return Span(st.span.line, st.span.col, st.name_span.end_line, st.name_span.end_col)


def _mod(st: Stage, kind: str) -> Modifier | None:
    return next((m for m in st.modifiers if m.kind == kind), None)


def _is_not(st: Stage) -> bool:
    return st.contiguity in NOT_STAGES


def _is_optional(st: Stage) -> bool:
    """``optional``, or ``times 0 to M`` (which Flink turns into an optional ``times 1 to M``)."""
    quant = st.quantifier
    return st.optional or (quant is not None and quant.kind == "times_range" and quant.n == 0)


def _fmt_ms(ms: int) -> str:
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def _window(ms: int | None) -> bool:
    """A zero window is no window (Flink ignores ``within(0)``)."""
    return ms is not None and ms > 0


def _tail_span(span: Span, name: str) -> Span:
    """The last ``len(name)`` characters of a one-line ``span`` (a name closing a clause)."""
    if span.line != span.end_line or span.end_col - len(name) + 1 < 1:
        return span
    return Span(span.end_line, span.end_col - len(name) + 1, span.end_line, span.end_col)


# ---------------------------------------------------------------------- passes


def _check_header(ctx: _Ctx) -> None:
    rule = ctx.rule
    if rule.severity not in SEVERITIES:
        ctx.error(_tail_span(ctx.clause_span("severity"), rule.severity),
                  f"unknown severity `{rule.severity}`",
                  f"use one of {', '.join(SEVERITIES)}")


def _check_names(ctx: _Ctx) -> None:
    seen: dict[str, Stage] = {}
    for st in all_stages(ctx.rule.pattern):
        if st.name in seen:
            first = seen[st.name]
            what = "group" if first.group is not None else "stage"
            ctx.error(st.name_span, f"stage name `{st.name}` is used twice",
                      f"the {what} `{st.name}` is on line {first.name_span.line}; "
                      "every stage needs its own name")
            continue
        seen[st.name] = st
        if st.name in RESERVED_NAMES:
            ctx.error(st.name_span, f"`{st.name}` is a keyword and cannot name a stage")
        (ctx.groups if st.group is not None else ctx.stages)[st.name] = st


def _check_sequence(ctx: _Ctx, stages: Sequence[Stage], where: str) -> None:
    for i, st in enumerate(stages):
        if i == 0 and _is_not(st):
            ctx.error(_head(st), f"a {where} cannot begin with a `not` stage",
                      "start with `begin NAME` and put the `not` stage after it")
        elif i == 0 and st.contiguity != "begin":
            ctx.error(_head(st), f"the first stage of a {where} uses `begin`",
                      f"write `begin {st.name}`")
        elif i > 0 and st.contiguity == "begin":
            ctx.error(_head(st), f"`begin` can only start a {where}",
                      "join this stage with `next`, `followed by` or `followed by any`")
        if i > 0:
            prev = stages[i - 1]
            if _is_not(st) and _is_optional(prev):
                ctx.error(_head(st), f"a `not` stage cannot follow the optional stage "
                          f"`{prev.name}`",
                          "write two rules, one with and one without the optional stage")
            if _is_optional(st) and prev.greedy:
                where_span = (_mod(st, "optional") or st.quantifier or st).span
                ctx.error(where_span, f"stage `{st.name}` cannot be optional right after the "
                          f"greedy stage `{prev.name}`")
        if st.group is not None:
            if _is_not(st):
                ctx.error(_head(st), "a `not` stage cannot be a group")
            _check_sequence(ctx, st.group, "group")


def _check_counts(ctx: _Ctx, st: Stage) -> None:
    quant = st.quantifier
    if quant is None:
        return
    n, m = quant.n or 0, quant.m or 0
    if max(n, m) > MAX_TIMES:
        ctx.error(quant.span, f"`{_KEYWORD[quant.kind]}` counts at most {MAX_TIMES:,} events, "
                  f"not {max(n, m):,}", "the automaton has a state for each counted event")
    elif quant.kind in ("times", "times_or_more") and n < 1:
        ctx.error(quant.span, f"`{_KEYWORD[quant.kind]}` needs at least 1, not {n}",
                  "use `optional` for a stage that may be absent")
    elif quant.kind == "times_range" and n < 0:
        ctx.error(quant.span, f"`times {n} to {m}`: the lower bound cannot be negative")
    elif quant.kind == "times_range" and m < max(n, 1):
        ctx.error(quant.span, f"`times {n} to {m}`: the upper bound must be at least "
                  f"{max(n, 1)}")
    if quant.kind == "times_range" and n == 0 and st.optional:
        ctx.error((_mod(st, "optional") or quant).span,
                  f"`optional` is given twice on stage `{st.name}`: `times 0 to {m}` is "
                  "already optional")


def _check_modifiers(ctx: _Ctx, st: Stage) -> None:
    first: dict[str, Span] = {}
    quant = None
    for mod in st.modifiers:
        if mod.kind in QUANTIFIERS:
            if quant is not None:
                ctx.error(mod.span, f"stage `{st.name}` already has a quantifier "
                          f"(`{format_modifier(quant)}`)", "a stage takes one quantifier")
            quant = quant or mod
        elif mod.kind in first:
            ctx.error(mod.span, f"`{_KEYWORD[mod.kind]}` is given twice on stage `{st.name}`")
        else:
            first[mod.kind] = mod.span
    if _is_not(st):
        for mod in st.modifiers:
            if mod.kind != "within":
                ctx.error(mod.span, f"`{_KEYWORD[mod.kind]}` cannot be applied to the `not` "
                          f"stage `{st.name}`", "a `not` stage checks a single event")
        return
    _check_counts(ctx, st)
    single = quant is None
    for kind in ("consecutive", "allow_combinations", "greedy"):
        if kind in first and single:
            ctx.error(first[kind], f"`{_KEYWORD[kind]}` applies only to a stage with a "
                      f"quantifier; `{st.name}` matches a single event",
                      "add `one or more`, `times N` or `times N or more`")
    if "consecutive" in first and "allow_combinations" in first:
        later = max(first["consecutive"], first["allow_combinations"],
                    key=lambda s: (s.line, s.col))
        ctx.error(later, f"stage `{st.name}` cannot be both `consecutive` and "
                  "`allow combinations`")
    if "greedy" in first and "allow_combinations" in first and not single:
        ctx.error(first["greedy"], f"`greedy` cannot be combined with `allow combinations` "
                  f"on stage `{st.name}`")
    if "greedy" in first and st.group is not None and not single:
        ctx.error(first["greedy"], f"`greedy` cannot be applied to the group `{st.name}`")
    if "until" in first and (quant is None or quant.kind not in LOOPING):
        ctx.error(first["until"], f"`until` applies only to a looping stage; `{st.name}` does "
                  "not loop", "use it with `one or more` or `times N or more`")


def _steps(stages: Sequence[Stage]) -> int:
    """How many events a pattern counts through: each stage its largest ``times`` bound (1
    without), times the steps of its group."""
    total = 0
    for st in stages:
        quant = st.quantifier
        count = max(quant.n or 1, quant.m or 1) if quant is not None else 1
        total += count * (_steps(st.group) if st.group is not None else 1)
    return total


def _check_size(ctx: _Ctx) -> None:
    counts = [_steps([st]) for st in all_stages(ctx.rule.pattern) if st.group is None]
    if not counts or max(counts) > MAX_TIMES:
        return  # a `times` too large on its own is reported by _check_counts
    steps = [_steps([st]) for st in ctx.rule.pattern]
    if sum(steps) <= MAX_PATTERN_STEPS:
        return
    biggest = ctx.rule.pattern[steps.index(max(steps))]
    what = "group" if biggest.group is not None else "stage"
    ctx.error(_head(biggest), f"the pattern counts through {sum(steps):,} events; the limit is "
              f"{MAX_PATTERN_STEPS:,}", f"the {what} `{biggest.name}` counts {max(steps):,} "
              "of them")


def _check_windows(ctx: _Ctx) -> None:
    rule = ctx.rule
    if rule.window is not None:
        return  # `having` / `all of` have their own window (window_check)
    pattern_ms = rule.within_ms
    stages = list(all_stages(rule.pattern))
    if pattern_ms == 0:
        ctx.warn(ctx.clause_span("within"), "a zero `within` means no time bound",
                 "Flink treats a zero window as none; remove it or give a duration")
    for st in stages:
        mod = _mod(st, "within")
        if mod is None or mod.ms is None:
            continue
        if mod.ms == 0:
            ctx.warn(mod.span, f"a zero `within` on stage `{st.name}` means no time bound")
        if st.quantifier is not None or st.group is not None:
            what = "a group" if st.group is not None else "a quantified stage"
            ctx.error(mod.span, f"a stage `within` on {what} (`{st.name}`) is not supported: "
                      "Flink ignores it there",
                      "bound the whole match with `within DURATION` after the pattern")
        if pattern_ms is not None and mod.ms > pattern_ms:
            ctx.error(mod.span, f"the window of stage `{st.name}` ({_fmt_ms(mod.ms)}) is larger "
                      f"than the pattern's ({_fmt_ms(pattern_ms)})",
                      "a stage's window must fit in the pattern's `within`")
    last = rule.pattern[-1] if rule.pattern else None
    if last is not None and last.contiguity == "not_followed_by" and not (
            _window(pattern_ms) or _window(last.within_ms)):
        ctx.error(_head(last), "a pattern cannot end with `not followed by` without a `within`",
                  "add `within DURATION` after the pattern or on this stage")
    any_window = _window(pattern_ms) or any(_window(st.within_ms) for st in stages)
    timeout = rule.timeout_emit
    if timeout is not None and not any_window:
        ctx.error(timeout.span, "`on timeout emit` can never fire: the pattern has no `within`",
                  "add `within DURATION` after the pattern")
    if not _window(pattern_ms):
        for st in stages:
            quant = st.quantifier
            if quant is not None and quant.kind in LOOPING and not _is_not(st):
                ctx.warn(quant.span, f"stage `{st.name}` loops and the pattern has no "
                         "`within`: partial matches are unbounded",
                         "add `within DURATION` after the pattern")
    if last is not None and last.greedy and last.quantifier is not None and not _is_not(last):
        ctx.warn((_mod(last, "greedy") or last).span,
                 f"`greedy` has no effect on the last stage `{last.name}`: every prefix of "
                 "the loop is still emitted")


def _check_skip(ctx: _Ctx) -> None:
    skip = ctx.rule.skip
    if skip.stage is None:
        return
    span = _tail_span(skip.span, skip.stage)
    if skip.stage in ctx.groups:
        inner = ", ".join(s.name for s in all_stages(ctx.groups[skip.stage].group or ()))
        ctx.error(span, f"`after match` names the group `{skip.stage}`",
                  f"name one of its stages ({inner})")
    elif skip.stage not in ctx.stages:
        ctx.error(span, f"`after match` names the unknown stage `{skip.stage}`",
                  _known(ctx, skip.stage))


def _known(ctx: _Ctx, written: str | None = None) -> str:
    """The stage names, as a hint; first a "did you mean" when ``written`` is close to one."""
    names = ", ".join(ctx.stages) or "none"
    guess = did_you_mean(written, ctx.stages) if written is not None else None
    return f"{guess + ' ' if guess else ''}the stages are: {names}"


def _check_emits(ctx: _Ctx) -> None:
    seen_kind: dict[bool, int] = {}
    for emit in ctx.rule.emits:
        kind = "on timeout emit" if emit.on_timeout else "emit"
        if emit.on_timeout in seen_kind:
            ctx.error(emit.span, f"more than one `{kind}`",
                      f"the first is on line {seen_kind[emit.on_timeout]}")
        else:
            seen_kind[emit.on_timeout] = emit.span.line
        names: set[str] = set()
        for i, (name, _) in enumerate(emit.fields):
            if name in names:
                span = emit.field_spans[i] if i < len(emit.field_spans) else emit.span
                ctx.error(span, f"field `{name}` appears twice in `{kind}`")
            names.add(name)


# ---------------------------------------------------------------------- expressions


def expr_depth(expr: Expr) -> int:
    """How deeply ``expr`` nests (a literal or path is 1), computed without recursion."""
    deepest, todo = 0, [(expr, 1)]
    while todo:
        node, depth = todo.pop()
        deepest = max(deepest, depth)
        if isinstance(node, Binary):
            todo += [(node.left, depth + 1), (node.right, depth + 1)]
        elif isinstance(node, Unary | IsNull):
            todo.append((node.operand, depth + 1))
        elif isinstance(node, Attr):
            todo.append((node.obj, depth + 1))
        elif isinstance(node, Call):
            todo += [(a, depth + 1) for a in node.args]
        elif isinstance(node, ListLit):
            todo += [(i, depth + 1) for i in node.items]
    return deepest


def _expressions(rule: Rule) -> list[tuple[Expr, str]]:
    """Every expression of a rule but its keys, with where it is: ``header``, ``condition``
    (a stage's ``where`` or ``until``) or ``emit``."""
    found: list[tuple[Expr, str]] = []
    if rule.where is not None:
        found.append((rule.where, "header"))
    for st in all_stages(rule.pattern):
        if st.condition is not None:
            found.append((st.condition, "condition"))
        found += [(m.expr, "condition") for m in st.modifiers
                  if m.kind == "until" and m.expr is not None]
    for emit in rule.emits:
        found += [(expr, "emit") for _, expr in emit.fields]
    return found


def _check_expressions(ctx: _Ctx) -> None:
    for expr, where in _expressions(ctx.rule):
        if expr_depth(expr) > MAX_EXPR_DEPTH:
            ctx.error(expr.span, f"expression nested more than {MAX_EXPR_DEPTH} levels deep",
                      "a long chain of `or` comparisons is better written `x in [a, b, …]`")
        else:
            _visit(ctx, expr, where)


def _strings(expr: Expr) -> Iterator[tuple[str, Span]]:
    """Every string an expression holds (string literals, field and function names) with the
    span of the node holding it; walked without recursion."""
    todo = [expr]
    while todo:
        node = todo.pop()
        if isinstance(node, Lit):
            if isinstance(node.value, str):
                yield node.value, node.span
        elif isinstance(node, Path):
            yield from ((part, node.span) for part in node.parts)
        elif isinstance(node, Attr):
            yield from ((part, node.span) for part in node.parts)
            todo.append(node.obj)
        elif isinstance(node, Binary):
            todo += [node.right, node.left]
        elif isinstance(node, Unary | IsNull):
            todo.append(node.operand)
        elif isinstance(node, Call):
            yield node.func, node.span
            todo += reversed(node.args)
        elif isinstance(node, ListLit):
            todo += reversed(node.items)


def _check_text(ctx: _Ctx) -> None:
    """Every string a rule holds must be Unicode text: alerts are written as UTF-8 and the
    rule's canonical text is hashed as UTF-8, so a lone surrogate (``"\\uDC80"``) would
    fail only when the rule first matches."""
    rule = ctx.rule
    found: list[tuple[str, Span]] = []
    if rule.description is not None:
        found.append((rule.description, ctx.clause_span("description")))
    if rule.author is not None:
        found.append((rule.author, ctx.clause_span("author")))
    found += [(ref, ctx.clause_span("references")) for ref in rule.references]
    for emit in rule.emits:
        found += [(name, emit.field_spans[i] if i < len(emit.field_spans) else emit.span)
                  for i, (name, _) in enumerate(emit.fields)]
    for expr in [*(e for e, _ in _expressions(rule)), *rule.key_by]:
        found += _strings(expr)
    for text, span in found:
        bad = None if text.isascii() else _SURROGATE.search(text)
        if bad is not None:
            ctx.error(span, f"a lone surrogate (U+{ord(bad.group(0)):04X}) is not text: it "
                      "cannot be written as UTF-8",
                      "write the character itself, or a surrogate pair as one `\\UXXXXXXXX` "
                      "escape")


def _visit(ctx: _Ctx, expr: Expr, where: str) -> None:
    if isinstance(expr, Path):
        _check_path(ctx, expr, where)
    elif isinstance(expr, Call):
        _check_call(ctx, expr, where)
    elif isinstance(expr, Attr):
        if not (isinstance(expr.obj, Call) and expr.obj.func in ("first", "last")
                or isinstance(expr.obj, Lookup)):
            ctx.error(expr.span, "only `first(stage)`, `last(stage)` and `table[key]` have "
                      "fields", "write `first(s).field`, `last(s).field` or `geo[ip].country`")
        _visit(ctx, expr.obj, where)
    elif isinstance(expr, Lookup):
        _visit(ctx, expr.key, where)  # the table itself: lists.check_declarations
    elif isinstance(expr, Binary):
        _check_binary(ctx, expr)
        _visit(ctx, expr.left, where)
        spec = ctx.operators.get(expr.op)
        if _is_cidr(expr.right) and spec is not None and spec.cidr:
            _check_cidr(ctx, expr.right)  # type: ignore[arg-type]
        elif _is_list(ctx, expr):
            pass  # `x in NAME` of a declared list or table
        elif spec is not None and spec.kind is Kind.MATCHING:
            _check_matching(ctx, expr, spec.lowering)
        else:
            _visit(ctx, expr.right, where)
    elif isinstance(expr, Unary | IsNull):
        _visit(ctx, expr.operand, where)
    elif isinstance(expr, ListLit):
        for item in expr.items:
            _visit(ctx, item, where)


def _example_stage(ctx: _Ctx) -> str:
    return next(iter(ctx.stages), "stage")


def _check_path(ctx: _Ctx, path: Path, where: str) -> None:
    head = path.parts[0]
    dotted = ".".join(path.parts)
    if head in ctx.groups:
        inner = ", ".join(s.name for s in all_stages(ctx.groups[head].group or ()))
        ctx.error(path.span, f"`{head}` is a group, not a single event",
                  f"name one of its stages ({inner})")
    elif head in ctx.stages:
        if where == "header":
            ctx.error(path.span, f"the header `where` cannot refer to stage `{head}`",
                      "it filters events before matching; move the condition to the stage"
                      + (f", or rename the stage if `{'.'.join(path.parts)}` is a field"
                         if len(path.parts) > 1 else ""))
    elif where == "emit" and head == "this":
        ctx.error(path.span, "`this` has no meaning in `emit`",
                  f"name the stage whose event you want, e.g. `{_example_stage(ctx)}.user`")
    elif where == "emit" and (guess := did_you_mean(head, ctx.stages)) and len(path.parts) > 1:
        ctx.error(path.span, f"`{head}` in `emit` is not a stage", f"{guess} {_known(ctx)}")
    elif where == "emit":
        ctx.error(path.span, f"`{dotted}` in `emit` does not name a stage",
                  f"name the stage whose event holds it, e.g. `{_example_stage(ctx)}.{dotted}`")


def _is_list(ctx: _Ctx, expr: Binary) -> bool:
    """``x in NAME`` (``not in``, ``in~``, ``not in~``: an operator with a
    :attr:`~cep.lang.operators.Operator.list_test`) where NAME is a declared list or table,
    not a stage."""
    right = expr.right
    spec = ctx.operators.get(expr.op)
    return (spec is not None and spec.list_test is not None and isinstance(right, Path)
            and len(right.parts) == 1 and right.parts[0] in ctx.lists
            and right.parts[0] not in ctx.stages)


def _is_cidr(expr: Expr) -> bool:
    return isinstance(expr, Call) and expr.func == CIDR_FUNCTION


def _check_cidr(ctx: _Ctx, call: Call) -> None:
    """``cidr(…)`` right of ``in``: one or more string literals, each a valid block."""
    from cep.lang.cidr import MatcherError, parse_network

    if not call.args:
        ctx.error(call.span, "`cidr` needs at least one block", 'write `cidr("10.0.0.0/8")`')
    for arg in call.args:
        if not isinstance(arg, Lit) or not isinstance(arg.value, str):
            ctx.error(arg.span, "`cidr` takes string literals",
                      'write the blocks in quotes: `cidr("10.0.0.0/8", "fd00::/8")`')
            continue
        try:
            parse_network(arg.value)
        except MatcherError as exc:
            ctx.error(arg.span, f"invalid CIDR block: {exc}",
                      "write an IPv4 or IPv6 network, as `10.0.0.0/8` or `2001:db8::/32`")


def _check_matching(ctx: _Ctx, expr: Binary, lowering: Lowering) -> None:
    """The right side of a matching operator, by its lowering: ``=~`` (any expression),
    ``in~`` (a list of literals) and ``like`` (a string literal or a list of them)."""
    op, right = expr.op, expr.right
    if lowering is Lowering.FOLD_EQ:
        return
    items = right.items if isinstance(right, ListLit) else None
    if lowering is Lowering.FOLD_SET:
        if items is None or not all(isinstance(i, Lit) for i in items):
            ctx.error(right.span, f"`{op}` needs a list of literals",
                      f'write `{op} ["admin", "root"]`')
        return
    if items is None:
        items = (right,)
    for item in items:
        if not isinstance(item, Lit) or not isinstance(item.value, str):
            ctx.error(item.span, f"the pattern of `{op}` must be a string literal",
                      f'write `{op} "*.exe"` or `{op} ["*.exe", "*.dll"]`')


def _check_call(ctx: _Ctx, call: Call, where: str) -> None:
    name, args = call.func, call.args
    if name == CIDR_FUNCTION:
        ctx.error(call.span, "`cidr(…)` is a set of IP blocks, tested only with `in`",
                  'write `source.ip in cidr("10.0.0.0/8")` or `not in cidr(…)`')
        return
    if name in AGGREGATES:
        _check_aggregate(ctx, call, where)
        return
    if name not in FUNCTIONS:
        known = ", ".join(sorted(FUNCTIONS) + sorted(AGGREGATES))
        guess = did_you_mean(name, [*FUNCTIONS, *AGGREGATES])
        ctx.error(call.span, f"unknown function `{name}`",
                  f"{guess + ' ' if guess else ''}the functions are: {known}")
    else:
        counts = (1, 2) if name == "round" else (FUNCTIONS[name],)
        if len(args) not in counts:
            want = " or ".join(str(c) for c in counts)
            ctx.error(call.span, f"`{name}` takes {want} argument{'s' * (counts[-1] > 1)}, "
                      f"not {len(args)}")
    for arg in args:
        _visit(ctx, arg, where)


def _check_aggregate(ctx: _Ctx, call: Call, where: str) -> None:
    name = call.func
    needs_field = name not in ("count", "first", "last")
    shape = f"{name}(stage.field)" if needs_field else f"{name}(stage)"
    if where == "header":
        ctx.error(call.span, f"the header `where` cannot use `{name}`: it runs before matching")
        return
    if len(call.args) != 1:
        ctx.error(call.span, f"`{name}` takes 1 argument, not {len(call.args)}",
                  f"write `{shape}`")
        return
    arg = call.args[0]
    if not isinstance(arg, Path):
        ctx.error(arg.span, f"`{name}` aggregates over a stage", f"write `{shape}`")
        return
    head = arg.parts[0]
    if head in ctx.groups:
        inner = ", ".join(s.name for s in all_stages(ctx.groups[head].group or ()))
        ctx.error(arg.span, f"`{name}` over the group `{head}`",
                  f"name one of its stages ({inner})")
    elif head not in ctx.stages:
        ctx.error(arg.span, f"`{name}` over `{head}`, which is not a stage",
                  _known(ctx, head))
    elif needs_field and len(arg.parts) == 1:
        ctx.error(arg.span, f"`{name}` needs a field of stage `{head}`",
                  f"write `{name}({head}.field)`")
    elif not needs_field and len(arg.parts) > 1:
        hint = f"write `{name}({head})." + ".".join(arg.parts[1:]) + "`" \
            if name != "count" else f"write `count({head})`"
        ctx.error(arg.span, f"`{name}` takes a stage name, not a field", hint)


def _check_binary(ctx: _Ctx, expr: Binary) -> None:
    spec = ctx.operators.get(expr.op)
    if spec is None:
        return
    if (spec.lowering is Lowering.REGEX and isinstance(expr.right, Lit)
            and isinstance(expr.right.value, str)):
        import re2

        try:
            re2.compile(expr.right.value, options=_re2_options())
        except re2.error as exc:
            reason = exc.args[0] if exc.args else exc
            if isinstance(reason, bytes):
                reason = reason.decode("utf-8", "replace")
            ctx.error(expr.right.span, f"invalid regular expression: {reason}",
                      "the regex engine is RE2: no look-around or back-references")
    if spec.kind is not Kind.ORDER:
        return
    left_null = isinstance(expr.left, Lit) and expr.left.value is None
    right_null = isinstance(expr.right, Lit) and expr.right.value is None
    if (left_null or right_null) and spec.null_hint is not None:
        ctx.warn(expr.span, f"`{expr.op} null` is always false",
                 f"use `{spec.null_hint}` to test for a missing value")
    elif isinstance(expr.left, Lit | ListLit) and isinstance(expr.right, Lit | ListLit):
        ctx.warn(expr.span, "this compares two literals: the result never changes")


# ---------------------------------------------------------------------- entry points

def _check_references(ctx: _Ctx) -> None:
    ctx.out.extend(check_references(ctx.rule, ctx.file))


def _check_window_clauses(ctx: _Ctx) -> None:
    ctx.out.extend(check_window_clauses(ctx.rule, ctx.file))


def _check_pattern(ctx: _Ctx) -> None:
    if ctx.rule.window is not None:
        return  # one stage, or the members of `all of` (window_check)
    _check_sequence(ctx, ctx.rule.pattern, "pattern")
    for st in all_stages(ctx.rule.pattern):
        _check_modifiers(ctx, st)


_PASSES: tuple[Callable[[_Ctx], None], ...] = (
    _check_header,
    _check_names,
    _check_pattern,
    _check_windows,
    _check_skip,
    _check_emits,
    _check_expressions,
    _check_text,
    _check_size,
    _check_references,
    _check_window_clauses,
)


def check_rule(rule: Rule, file: str = "<string>", lists: frozenset[str] = frozenset(),
               operators: OperatorTable = OPERATORS) -> list[Diagnostic]:
    """Run every pass over one rule (``lists``: the names of the lists and tables its file
    declares; ``operators``: the language's comparison operators, another table for tests);
    returns its errors and warnings in source order."""
    ctx = _Ctx(file, rule, [], lists=lists, operators=operators)
    for check in _PASSES:
        check(ctx)
    ctx.out.sort(key=lambda d: (d.span.line, d.span.col))
    return ctx.out


def check_rule_file(rf: RuleFile) -> list[Diagnostic]:
    """Check every rule of a parsed file, and that no two rules share a name.

    Returns errors and warnings (``Diagnostic.severity``); raises nothing.
    """
    out: list[Diagnostic] = check_declarations(rf)
    seen: dict[str, Rule] = {}
    names = frozenset(d.name for d in rf.lists)
    for rule in rf.rules:
        if rule.name in seen:
            out.append(Diagnostic(rf.path, rule.name_span,
                                  f"rule `{rule.name}` is defined twice in this file",
                                  hint=f"the first is on line {seen[rule.name].name_span.line}"))
        else:
            seen[rule.name] = rule
        out.extend(check_rule(rule, rf.path, names))
    out.sort(key=lambda d: (d.span.line, d.span.col))
    return out


def check_rule_set(files: Iterable[RuleFile]) -> list[Diagnostic]:
    """Rule names must be unique across files: one error per rule whose name an earlier file
    already used (duplicates inside one file are :func:`check_rule_file`'s); and the derived
    streams' checks (:func:`cep.lang.streams.check_streams`)."""
    files = list(files)
    out: list[Diagnostic] = check_streams(files)
    owner: dict[str, tuple[str, Rule]] = {}
    for rf in files:
        local: dict[str, Rule] = {}
        for rule in rf.rules:
            if rule.name in local:
                continue
            local[rule.name] = rule
            if rule.name in owner:
                path, first = owner[rule.name]
                out.append(Diagnostic(rf.path, rule.name_span,
                                      f"rule `{rule.name}` is already defined in "
                                      f"{path}:{first.name_span.line}",
                                      hint="rule names are unique across all rule files"))
        for name, rule in local.items():
            owner.setdefault(name, (rf.path, rule))
    return out
