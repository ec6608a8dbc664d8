"""Field checks of rules against an event schema (:mod:`cep.lang.schema`), and, without one,
across the rule set.

With a schema (:func:`check_schema`), errors for: a field the schema does not know (with the
closest known field, or the stage it looks like), a literal whose type the field never has
(``winlog.event_data.LogonType == 3`` where the field is a string), a value outside the field's
``enum``, ``matches``/``contains``/``starts with``/``ends with``/``like`` on a field that is
not text, and a stage named like a schema root whose ``NAME.x`` was meant as a field.  Without one
(:func:`mixed_literal_warnings`), a warning where one field is compared with literals of
different types across all the rules given: one of the two never matches.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from cep.diagnostics import Diagnostic
from cep.lang.ast import (
    Attr,
    Binary,
    Expr,
    ListLit,
    Lit,
    Lookup,
    Path,
    Rule,
    RuleFile,
    Span,
    walk,
)
from cep.lang.check import all_stages
from cep.lang.operators import OPERATORS, Operator, OperatorTable
from cep.lang.references import paths_of
from cep.lang.schema import FieldSpec, Schema, type_of
from cep.lang.suggest import closest

__all__ = ["check_schema", "mixed_literal_warnings", "field_diagnostics"]

_NUMBERS = frozenset({"integer", "number"})


@dataclass(frozen=True)
class _Read:
    """A field a rule reads: its dotted path, the node, and the stage it was read through."""

    dotted: str
    span: Span
    stage: str | None


@dataclass(frozen=True)
class _Compare:
    """A field compared with a literal: the operator and the literal's value and span."""

    read: _Read
    op: Operator
    value: object
    span: Span


def _expressions(rule: Rule) -> Iterator[Expr]:
    if rule.where is not None:
        yield rule.where
    yield from rule.key_by
    for st in all_stages(rule.pattern):
        if st.condition is not None:
            yield st.condition
        yield from (m.expr for m in st.modifiers if m.kind == "until" and m.expr is not None)
    for emit in rule.emits:
        yield from (e for _, e in emit.fields)
    if rule.window is not None and rule.window.condition is not None:
        yield rule.window.condition  # (the fields its aggregates read)
    if rule.suppress is not None:
        yield from rule.suppress.by


def _resolve(node: Expr, stages: set[str]) -> _Read | None:
    """The field ``node`` reads, or ``None`` (not a field, the event time, a whole event)."""
    if isinstance(node, Attr):
        if isinstance(node.obj, Lookup):  # a table's column, not a field of an event
            return None
        return _Read(".".join(node.parts), node.span, None) if node.parts != ("ts",) else None
    if not isinstance(node, Path):
        return None
    head, stage = node.parts[0], None
    parts = node.parts
    if head in stages or head == "this":
        stage, parts = (head if head != "this" else None), parts[1:]
    if not parts or parts == ("ts",):
        return None
    return _Read(".".join(parts), node.span, stage)


def _reads(rule: Rule, lists: frozenset[str] = frozenset()) -> Iterator[_Read]:
    """The fields ``rule`` reads; ``lists`` are its file's list and table names (a bare
    one is the list, not a field)."""
    stages = {st.name for st in all_stages(rule.pattern) if st.group is None}
    for expr in _expressions(rule):
        for path in paths_of(expr):
            if len(path.parts) == 1 and path.parts[0] in lists \
                    and path.parts[0] not in stages:
                continue
            read = _resolve(path, stages)
            if read is not None:
                yield read
        for node in _nodes(expr):
            if isinstance(node, Attr):
                read = _resolve(node, stages)
                if read is not None:
                    yield read


def _nodes(expr: Expr) -> Iterator[Expr]:
    return walk(expr)


def _compares(rule: Rule, operators: OperatorTable) -> Iterator[_Compare]:
    """The fields of ``rule`` tested with an operator whose operands a schema checks
    (:class:`~cep.lang.operators.Operands`): with each literal (a list's items one by one
    where the operator says so), and with ``None`` where a text operator's other side is no
    literal.  A field right of the operator counts only where the operands can be swapped."""
    stages = {st.name for st in all_stages(rule.pattern) if st.group is None}
    for expr in _expressions(rule):
        for node in _nodes(expr):
            spec = operators.get(node.op) if isinstance(node, Binary) else None
            if spec is None or not (spec.operands.values or spec.operands.text):
                continue
            assert isinstance(node, Binary)
            for side, other in ((node.left, node.right), (node.right, node.left)):
                read = _resolve(side, stages)
                if read is None or (side is node.right and spec.flipped is None):
                    continue
                literals = other.items if isinstance(other, ListLit) and spec.operands.items \
                    else (other,)
                for lit in literals:
                    if isinstance(lit, Lit) and lit.value is not None and not lit.duration:
                        yield _Compare(read, spec, lit.value, lit.span)
                if spec.operands.text and not isinstance(other, Lit):
                    yield _Compare(read, spec, None, other.span)


def _kind(value: object) -> str:
    kind = type_of(value) or "null"
    return "number" if kind in _NUMBERS else kind


def _fits(spec: FieldSpec, value: object) -> bool:
    kind = type_of(value)
    if "any" in spec.types or kind is None:
        return True
    if kind in _NUMBERS:
        return bool(spec.types & _NUMBERS)
    return kind in spec.types


def _literal(value: object) -> str:
    import json

    return json.dumps(value, ensure_ascii=False)


class _SchemaPass:
    def __init__(self, schema: Schema, file: str, rule: Rule, out: list[Diagnostic],
                 lists: frozenset[str] = frozenset(), operators: OperatorTable = OPERATORS
                 ) -> None:
        self.schema, self.file, self.rule, self.out = schema, file, rule, out
        self.lists = lists
        self.operators = operators
        self.stages = [st.name for st in all_stages(rule.pattern) if st.group is None]

    def error(self, span: Span, message: str, hint: str | None) -> None:
        self.out.append(Diagnostic(self.file, span, f"rule `{self.rule.name}`: {message}",
                                   "error", hint))

    def run(self) -> None:
        seen: set[tuple[str, int, int]] = set()
        for read in _reads(self.rule, self.lists):
            if (read.dotted, read.span.line, read.span.col) not in seen:
                seen.add((read.dotted, read.span.line, read.span.col))
                self.check_known(read)
        for cmp in _compares(self.rule, self.operators):
            spec = self.schema.lookup(cmp.read.dotted)
            if spec is not None:
                self.check_compare(cmp, spec)

    def check_known(self, read: _Read) -> None:
        if self.schema.lookup(read.dotted) is not None:
            return
        where = f"the schema {self.schema.path}" if self.schema.path else "the schema"
        whole = f"{read.stage}.{read.dotted}" if read.stage else None
        if whole is not None and self.schema.lookup(whole) is not None:
            self.error(read.span, f"`{whole}` reads field `{read.dotted}` of stage "
                       f"`{read.stage}`, which {where} does not know; `{whole}` is a field "
                       f"there: the stage name `{read.stage}` shadows it",
                       f"rename the stage `{read.stage}`, or write `this.{whole}`")
            return
        head = read.dotted.split(".")[0]
        stage = closest(head, self.stages) if "." in read.dotted and not read.stage else None
        if stage is not None:
            hint = f"did you mean the stage `{stage}` (`{stage}.{read.dotted.split('.', 1)[1]}`)?"
        else:
            guess = closest(read.dotted, self.schema.names(), cutoff=0.6)
            hint = (f"did you mean `{guess}`?" if guess else
                    f"add it to {where} if events carry it")
        self.error(read.span, f"unknown field `{read.dotted}`: not in {where}", hint)

    def check_compare(self, cmp: _Compare, spec: FieldSpec) -> None:
        field, types = cmp.read.dotted, " or ".join(sorted(spec.types))
        op = cmp.op.spelling
        if cmp.op.operands.text:
            if not spec.types & cmp.op.operands.text:
                self.error(cmp.read.span, f"`{op}` on `{field}`, which is {_a(types)} in "
                           "the schema: it never holds",
                           "compare it with `==`, `<`, `in [..]` …, or test a text field")
            return
        if not _fits(spec, cmp.value):
            want = sorted(spec.types)[0]
            fix = _convert(cmp.value, want)
            self.error(cmp.span, f"`{field}` is {_a(types)} in the schema; `{op}` with "
                       f"the {_kind(cmp.value)} {_literal(cmp.value)} never holds",
                       f"write {fix}" if fix else f"compare it with {_a(want)}")
        elif spec.enum is not None and cmp.op.operands.enum and (
                cmp.value not in spec.enum):
            guess = closest(str(cmp.value), [str(v) for v in spec.enum], cutoff=0.6)
            values = ", ".join(_literal(v) for v in spec.enum)
            self.error(cmp.span, f"{_literal(cmp.value)} is not a value of `{field}`",
                       (f"did you mean \"{guess}\"? " if guess else "") + f"the values are: "
                       f"{values}")


def _a(types: str) -> str:
    return ("an " if types[:1] in "aeiou" else "a ") + types


def _convert(value: object, want: str) -> str | None:
    """The literal written as type ``want``, when it converts exactly."""
    if want == "string" and not isinstance(value, bool):
        return f"`{_literal(str(value))}`"
    if want in _NUMBERS and isinstance(value, str):
        try:
            number = int(value) if want == "integer" else float(value)
        except ValueError:
            return None
        return f"`{number}`"
    return None


def check_schema(files: Iterable[RuleFile], schema: Schema,
                 operators: OperatorTable = OPERATORS) -> list[Diagnostic]:
    """Errors of every rule of ``files`` against ``schema`` (see the module docstring), in
    file and source order (``operators``: the language's comparison operators, another table
    for tests).  Raises nothing."""
    out: list[Diagnostic] = []
    for rf in files:
        local: list[Diagnostic] = []
        for rule in rf.rules:
            _SchemaPass(schema, rf.path, rule, local,
                        frozenset(d.name for d in rf.lists), operators).run()
        out += sorted(local, key=lambda d: (d.span.line, d.span.col))
    return out


def mixed_literal_warnings(files: Iterable[RuleFile]) -> list[Diagnostic]:
    """A warning at each comparison of a field with a literal of a type other than the one
    the field is most often compared with across ``files`` (integers and decimals are one
    type): at most one of them can match the events."""
    by_field: dict[str, list[tuple[str, str, _Compare]]] = {}
    for rf in files:
        for rule in rf.rules:
            for cmp in _compares(rule, OPERATORS):
                if cmp.value is not None and cmp.op.operands.values:
                    by_field.setdefault(cmp.read.dotted, []).append((rf.path, rule.name, cmp))
    out: list[Diagnostic] = []
    for field, uses in by_field.items():
        kinds: dict[str, int] = {}
        for _, _, cmp in uses:
            kinds[_kind(cmp.value)] = kinds.get(_kind(cmp.value), 0) + 1
        if len(kinds) < 2:
            continue
        main = max(kinds, key=lambda k: (kinds[k], -list(kinds).index(k)))
        first = next((p, c) for p, _, c in uses if _kind(c.value) == main)
        for path, rule_name, cmp in uses:
            if _kind(cmp.value) != main:
                out.append(Diagnostic(
                    path, cmp.span, f"rule `{rule_name}`: `{field}` is compared with the "
                    f"{_kind(cmp.value)} {_literal(cmp.value)} here and with {_a(main)} at "
                    f"{first[0]}:{first[1].span.line}: events hold one type, so one of the "
                    "two never matches", "warning", "compare with the type the events hold "
                    "(`cep infer-schema` shows it), or check with `--schema`"))
    return sorted(out, key=lambda d: (d.file, d.span.line, d.span.col))


def field_diagnostics(files: Iterable[RuleFile], schema: Schema | None) -> list[Diagnostic]:
    """:func:`check_schema` with a schema, :func:`mixed_literal_warnings` without one."""
    files = list(files)
    return check_schema(files, schema) if schema is not None else mixed_literal_warnings(files)
