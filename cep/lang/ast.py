"""Typed AST of rule files, every node carrying its source span.

The parser (:mod:`cep.lang.parse`) builds these from Lark's tree; the checker
(:mod:`cep.lang.check`) validates them; the compiler (:mod:`cep.compiler`) reads them.
Nodes are frozen dataclasses: plain data, safe to share and to hash.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

__all__ = [
    "Span", "Expr", "Lit", "ListLit", "Path", "Unary", "Binary", "IsNull", "Call", "Attr",
    "Lookup", "ListDecl",
    "Modifier", "Stage", "Skip", "Emit", "Suppress", "Window", "Rule", "RuleFile",
    "CONTIGUITIES", "SEVERITIES", "AGGREGATES", "FUNCTIONS", "WINDOW_AGGREGATES",
    "WINDOW_STAGE", "walk", "CIDR_FUNCTION", "METADATA",
]


@dataclass(frozen=True)
class Span:
    """A region of a rule file: 1-based line and column of its first and last character."""

    line: int
    col: int
    end_line: int
    end_col: int


NOWHERE = Span(0, 0, 0, 0)


# --------------------------------------------------------------------------- expressions


@dataclass(frozen=True)
class Lit:
    """A literal: str, int, float, bool or None. Durations are ints in milliseconds with
    ``duration=True`` (so the formatter can write ``5m`` back)."""

    value: str | int | float | bool | None
    span: Span = field(default=NOWHERE, compare=False)
    duration: bool = False


@dataclass(frozen=True)
class ListLit:
    """``[a, b, …]``."""

    items: tuple[Expr, ...]
    span: Span = field(default=NOWHERE, compare=False)


@dataclass(frozen=True)
class Path:
    """A dotted name as written: ``amount``, ``geo.country``, ``fail.user``, ``this.user``.

    ``parts`` are the segments (backquoted segments unquoted).  Whether the first segment is a
    stage, ``this`` or a field of the event under test is decided by the checker/compiler:
    a stage name wins, ``this`` names the event under test, anything else is a field.
    """

    parts: tuple[str, ...]
    span: Span = field(default=NOWHERE, compare=False)


@dataclass(frozen=True)
class Unary:
    """``not x`` (op ``"not"``) or ``-x`` (op ``"-"``)."""

    op: str
    operand: Expr
    span: Span = field(default=NOWHERE, compare=False)


CIDR_FUNCTION = "cidr"
"""``cidr("10.0.0.0/8", …)``: a set of IP blocks, only ever right of an operator that allows
it (:attr:`cep.lang.operators.Operator.cidr`: ``in``, ``not in``)."""


@dataclass(frozen=True)
class Binary:
    """A binary operation; ``op`` is ``and``, ``or``, an arithmetic operator (``+ - * / %``)
    or the spelling of one of the operators of :mod:`cep.lang.operators`."""

    op: str
    left: Expr
    right: Expr
    span: Span = field(default=NOWHERE, compare=False)


@dataclass(frozen=True)
class IsNull:
    """``x is null`` (``negated=False``) or ``x is not null`` (``negated=True``)."""

    operand: Expr
    negated: bool
    span: Span = field(default=NOWHERE, compare=False)


@dataclass(frozen=True)
class Call:
    """A function or aggregate call: ``lower(x)``, ``count(again)``, ``sum(s.amount)``."""

    func: str
    args: tuple[Expr, ...]
    span: Span = field(default=NOWHERE, compare=False)


@dataclass(frozen=True)
class Attr:
    """Field access on a call's result.

    ``first(s).src_ip`` → ``Attr(Call("first", …), ("src_ip",))``.
    """

    obj: Expr
    parts: tuple[str, ...]
    span: Span = field(default=NOWHERE, compare=False)


@dataclass(frozen=True)
class Lookup:
    """``NAME[key]``: the row of the table ``NAME`` (a :class:`ListDecl` of the rule's file)
    whose key is the value of ``key``; ``NAME[key].col`` is ``Attr(Lookup(…), ("col",))``."""

    table: str
    key: Expr
    span: Span = field(default=NOWHERE, compare=False)


Expr = Lit | ListLit | Path | Unary | Binary | IsNull | Call | Attr | Lookup

AGGREGATES = frozenset({"count", "sum", "avg", "min", "max", "first", "last", "distinct_count",
                        "values"})
"""Aggregates over a stage's matched events (Flink's IterativeCondition context)."""

def walk(expr: Expr, aggregates: bool = True) -> Iterator[Expr]:
    """Every node of ``expr``, ``expr`` included (the arguments of aggregates too unless
    ``aggregates`` is false), walked without recursion (any depth), in no particular order."""
    todo = [expr]
    while todo:
        node = todo.pop()
        yield node
        if isinstance(node, Binary):
            todo += [node.left, node.right]
        elif isinstance(node, Unary | IsNull):
            todo.append(node.operand)
        elif isinstance(node, Attr):
            todo.append(node.obj)
        elif isinstance(node, Lookup):
            todo.append(node.key)
        elif isinstance(node, Call):
            if aggregates or node.func not in AGGREGATES:
                todo += node.args
        elif isinstance(node, ListLit):
            todo += node.items


FUNCTIONS: dict[str, int] = {
    "lower": 1, "upper": 1, "len": 1, "abs": 1, "round": 2, "haversine_km": 4, "text": 1,
}
"""Scalar functions and their argument counts (``round`` also accepts 1)."""

# --------------------------------------------------------------------------- patterns

CONTIGUITIES = ("begin", "next", "followed_by", "followed_by_any", "not_next", "not_followed_by")

SEVERITIES = ("info", "low", "medium", "high", "critical")


@dataclass(frozen=True)
class Modifier:
    """One quantifier or modifier exactly as written after a stage, in source order.

    ``kind`` is one of ``times`` (``n``), ``times_range`` (``n``, ``m``), ``times_or_more``
    (``n``), ``one_or_more``, ``optional``, ``greedy``, ``consecutive``,
    ``allow_combinations``, ``until`` (``expr``), ``within`` (``ms``).  The checker rejects
    duplicates and invalid combinations; the compiler reads the normalised view on
    :class:`Stage`.
    """

    kind: str
    span: Span = field(default=NOWHERE, compare=False)
    n: int | None = None
    m: int | None = None
    expr: Expr | None = None
    ms: int | None = None


@dataclass(frozen=True)
class Stage:
    """One line of a ``pattern`` block (or a parenthesised group).

    ``contiguity`` is one of :data:`CONTIGUITIES`.  Exactly one of ``condition`` (may be
    ``None``: accepts every event) or ``group`` applies: a group stage has ``group`` set to its
    sub-pattern (whose first stage uses ``begin``) and no condition.  ``modifiers`` keeps every
    modifier as written; the convenience properties below give the first occurrence of each.
    """

    contiguity: str
    name: str
    condition: Expr | None
    modifiers: tuple[Modifier, ...]
    span: Span = field(default=NOWHERE, compare=False)
    name_span: Span = field(default=NOWHERE, compare=False)
    group: tuple[Stage, ...] | None = None

    def _first(self, *kinds: str) -> Modifier | None:
        for mod in self.modifiers:
            if mod.kind in kinds:
                return mod
        return None

    @property
    def quantifier(self) -> Modifier | None:
        """The first of ``times``/``times_range``/``times_or_more``/``one_or_more``, if any."""
        return self._first("times", "times_range", "times_or_more", "one_or_more")

    @property
    def optional(self) -> bool:
        return self._first("optional") is not None

    @property
    def greedy(self) -> bool:
        return self._first("greedy") is not None

    @property
    def consecutive(self) -> bool:
        return self._first("consecutive") is not None

    @property
    def allow_combinations(self) -> bool:
        return self._first("allow_combinations") is not None

    @property
    def until(self) -> Expr | None:
        mod = self._first("until")
        return mod.expr if mod else None

    @property
    def within_ms(self) -> int | None:
        mod = self._first("within")
        return mod.ms if mod else None


@dataclass(frozen=True)
class Skip:
    """After-match skip strategy: ``no_skip``, ``skip_to_next``, ``skip_past_last_event``,
    ``skip_to_first`` or ``skip_to_last`` (the last two name ``stage``)."""

    kind: str = "no_skip"
    stage: str | None = None
    span: Span = field(default=NOWHERE, compare=False)


@dataclass(frozen=True)
class Emit:
    """``emit [to SINK] { name: expr, … }`` or, with ``on_timeout``, ``on timeout emit …``;
    ``emit to stream NAME { … }`` (``stream`` true, ``sink`` the stream's name) makes each
    alert record an event of the internal stream ``NAME``, which rules read with ``from NAME``
    (docs/rule-language.md, *Derived streams*)."""

    fields: tuple[tuple[str, Expr], ...]
    sink: str = "alerts"
    on_timeout: bool = False
    span: Span = field(default=NOWHERE, compare=False)
    field_spans: tuple[Span, ...] = field(default=(), compare=False)
    """Where each field's name was written (parallel to ``fields``; empty when built by hand)."""
    stream: bool = False


@dataclass(frozen=True)
class Suppress:
    """``suppress for D [by FIELD, …]``: alerts of one group (the rule's key, or the values of
    ``by`` in the match's latest event) within ``period_ms`` of an emitted one are counted,
    not emitted (docs/rule-language.md)."""

    period_ms: int
    by: tuple[Path, ...] = ()
    span: Span = field(default=NOWHERE, compare=False)


WINDOW_AGGREGATES = ("count", "count_distinct", "sum", "avg", "min", "max")
"""The aggregates of a ``having`` condition, over the window's events (Sigma's correlation
types: ``event_count``, ``value_count``, ``value_sum``, ``value_avg``)."""

WINDOW_STAGE = "events"
"""The name the window's events go by in a ``having`` rule (its one stage)."""


@dataclass(frozen=True)
class Window:
    """A sliding event-time window that replaces the pattern: ``having COND within D``
    (``kind`` ``"having"``, ``condition`` a conjunction of aggregate comparisons) or
    ``all of (NAME where C, …) within D`` (``kind`` ``"all_of"``: the members are the rule's
    ``pattern``, each a ``begin`` stage of one event; ``condition`` is ``None``)."""

    kind: str
    within_ms: int
    condition: Expr | None = None
    span: Span = field(default=NOWHERE, compare=False)


@dataclass(frozen=True)
class Rule:
    """One ``rule NAME … end`` block.

    Header clauses are ``None``/empty when absent.  ``within_ms`` is the pattern-level window
    (Flink's FIRST_AND_LAST ``within``).  ``window`` replaces the pattern's sequence by a
    sliding window (``having`` / ``all of``; the pattern is then the one stage
    :data:`WINDOW_STAGE`, or the members); ``suppress`` throttles alerts.  ``emits`` holds at
    most one match emit and one timeout emit (the checker enforces it).  ``spans`` maps a
    header clause keyword (``"severity"``, ``"key by"``, ``"within"``, …) to where it was
    written, for diagnostics.

    ``description``, ``severity``, ``tags``, ``references`` and ``author`` are the rule's
    metadata (:data:`METADATA`): they reach every alert, and no edit of them changes the
    rule version (:func:`cep.lang.format.rule_version`).
    """

    name: str
    pattern: tuple[Stage, ...]
    span: Span = field(default=NOWHERE, compare=False)
    name_span: Span = field(default=NOWHERE, compare=False)
    description: str | None = None
    severity: str = "medium"
    tags: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    author: str | None = None
    sources: tuple[str, ...] = ()
    where: Expr | None = None
    key_by: tuple[Path, ...] = ()
    within_ms: int | None = None
    skip: Skip = Skip()
    emits: tuple[Emit, ...] = ()
    spans: tuple[tuple[str, Span], ...] = field(default=(), compare=False)
    window: Window | None = None
    suppress: Suppress | None = None

    @property
    def match_emit(self) -> Emit | None:
        return next((e for e in self.emits if not e.on_timeout), None)

    @property
    def timeout_emit(self) -> Emit | None:
        return next((e for e in self.emits if e.on_timeout), None)


METADATA = ("description", "severity", "tags", "references", "author")
"""The header clauses that describe a rule without taking part in matching."""


@dataclass(frozen=True)
class ListDecl:
    """``list NAME from "PATH"`` (``kind`` ``"list"``) or ``table NAME from "PATH" key COL``
    (``kind`` ``"table"``, ``key`` the column): a file of values for the rules of the file
    that declares it; ``path`` as written, relative to that file's directory."""

    kind: str
    name: str
    path: str
    key: str | None = None
    span: Span = field(default=NOWHERE, compare=False)
    name_span: Span = field(default=NOWHERE, compare=False)


@dataclass(frozen=True)
class RuleFile:
    """A parsed ``.cep`` file: its path, text, the rules that parsed and the lists and
    tables it declares."""

    path: str
    text: str
    rules: tuple[Rule, ...]
    lists: tuple[ListDecl, ...] = ()
