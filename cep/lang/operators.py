"""The comparison, membership, text and matching operators of the rule language, each declared
once.

Every fact about an operator that some part of the engine needs is a field of its
:class:`Operator` entry in :data:`OPERATORS`; the modules that handle operators read the table
instead of keeping their own lists of spellings:

* the grammar: :mod:`cep.lang.grammar` writes the operators' alternatives of ``predicate`` and
  their terminals into ``grammar/cep.lark`` at load time (:func:`grammar_alternatives`,
  :func:`grammar_terminals`); the parser writes an operator's words joined by single spaces;
* the checks: :mod:`cep.lang.check` (what the right operand must be, the warnings),
  :mod:`cep.lang.typecheck` (which operand types a schema field must have:
  :class:`Operands`), :mod:`cep.lang.lists` and :mod:`cep.lang.references` (membership);
* the formatter writes every operator as ``left spelling right`` and binds it as tightly as a
  comparison (looser than arithmetic, tighter than ``not``);
* the back ends: :mod:`cep.compiler.codegen` emits each operator by its :class:`Lowering`
  (one method of the code generator per lowering), with its runtime helper
  (:attr:`Operator.runtime`, a name of :data:`cep.compiler.runtime.HELPERS`);
  :mod:`cep.compiler.predicate` lowers it to the C line scanner's program by its
  :class:`Scan` (or leaves it *unknown*), and :mod:`cep.operator.prescan` evaluates those
  program tests with :attr:`Operator.test`; :mod:`cep.compiler.requirement` derives the rule
  index's keys from its :class:`IndexUse`; ``having`` terms accept the operators with
  :attr:`Operator.having`.

A new operator whose semantics one of the existing lowerings covers is one new entry here
(plus its tests); one that needs new generated code also needs a new :class:`Lowering` member
and the code generator's method for it (docs/architecture.md, "Adding a comparison
operator").  Tests build variants of the table with :meth:`OperatorTable.with_operator` and
hand them to the parser, the checks and the code generator, which all take the table as an
argument (this one by default).
"""

from __future__ import annotations

import operator as py
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

__all__ = [
    "Kind", "Nulls", "Lowering", "Scan", "IndexUse", "Syntax", "Operands", "Operator",
    "OperatorTable", "OPERATORS", "EQ", "NE", "LT", "LE", "GT", "GE", "IN", "NOT_IN",
    "CONTAINS", "STARTS_WITH", "ENDS_WITH", "MATCHES", "EQ_CI", "IN_CI", "NOT_IN_CI", "LIKE",
    "NOT_LIKE", "LIKE_CI", "NOT_LIKE_CI", "grammar_alternatives", "grammar_terminals",
    "COMPARE_TERMINAL",
]


class Kind(Enum):
    """The family an operator belongs to (docs/rule-language.md)."""

    ORDER = "comparison"
    """``==``, ``!=``, ``<`` …: two values of one type."""
    MEMBERSHIP = "membership"
    """``in``, ``not in``: a value among a list's items, a declared list, CIDR blocks."""
    TEXT = "text"
    """``contains``, ``starts with``, ``ends with``, ``matches``."""
    MATCHING = "matching"
    """Case-insensitive and wildcard forms: ``=~``, ``in~``, ``like`` …"""


class Nulls(Enum):
    """What a null (or missing) operand makes of the test."""

    FALSE = "false when either operand is null"
    SUBJECT_FALSE = "false when the tested value is null; a null item of a list never matches"


class Lowering(Enum):
    """How the code generator writes the operator (one method of
    :class:`cep.compiler.codegen._Gen` each)."""

    COMPARE = "compare"
    """Typed inline comparison with a literal (:attr:`Operator.python`), else the helper."""
    MEMBERSHIP = "membership"
    """A frozenset look-up for a list of literals, CIDR blocks, a declared list, else the
    helper."""
    CONTAINS = "contains"
    """Substring test inlined for a string literal, else the helper."""
    AFFIX = "affix"
    """``str`` method :attr:`Operator.python` inlined for a string literal, else the helper."""
    REGEX = "regex"
    """An RE2 pattern compiled once (the right operand is a string literal)."""
    FOLD_EQ = "fold_eq"
    """Equality after case folding."""
    FOLD_SET = "fold_set"
    """Membership among literals after case folding (a list of literals on the right)."""
    GLOB = "glob"
    """Wildcard patterns (one string literal or a list of them; folded with
    :attr:`Operator.folds_case`)."""


class Scan(Enum):
    """How the operator lowers to the C line scanner's predicate program
    (:mod:`cep.compiler.predicate`)."""

    UNKNOWN = "unknown"
    """Not modelled: the scanner answers *unknown* and leaves the line to Python."""
    CMP = "cmp"
    """``("cmp", code, slot, literal)`` with :attr:`Operator.scan_code` as ``code``."""
    LIST = "list"
    """``(code, slot, (bytes, …))`` for a list of string literals (null items dropped)."""
    EXACT_GLOB = "exact_glob"
    """As :attr:`Operator.exact_as` when no pattern holds a wildcard, else unknown."""


class IndexUse(Enum):
    """What :mod:`cep.compiler.requirement` learns from a test of an event field."""

    NONE = "none"
    """Nothing: the rule cannot be indexed by this test."""
    PRESENT = "present"
    """The field must be present (not null)."""
    EQUALS = "equals"
    """The field (either side) must be the literal's value."""
    MEMBER = "member"
    """The field (left) must be one of the list's literal items."""
    SEGMENT = "segment"
    """The field must hold the literal's text (a path segment of it when it has one)."""
    PREFIX = "prefix"
    """The field must start with the literal's text."""
    SUFFIX = "suffix"
    """The field must end with the literal's text (a path's last segment when it has one)."""
    PATTERN = "pattern"
    """The field must be a string in which the RE2 pattern (the literal) is found."""


class Syntax(Enum):
    """The grammar symbol of the right operand."""

    EXPRESSION = "sum"
    STRING = "string"


@dataclass(frozen=True)
class Operands:
    """What a schema check (:mod:`cep.lang.typecheck`) asks of the operands.

    Attributes:
        values: a literal operand must have a type the field can hold (and counts in the
            warnings about one field compared with literals of several types).
        enum: a literal operand must be one of the field's ``enum`` values.
        items: a list literal on the right is checked item by item.
        text: the schema types the tested field must have for the test ever to hold
            (empty: any).
    """

    values: bool = False
    enum: bool = False
    items: bool = False
    text: frozenset[str] = frozenset()


_VALUE = Operands(values=True)
_VALUE_ENUM = Operands(values=True, enum=True)
_MEMBER_ENUM = Operands(values=True, enum=True, items=True)
_TEXT = Operands(text=frozenset({"string", "any"}))
_UNCHECKED = Operands()


@dataclass(frozen=True)
class Operator:
    """One operator of the language.

    Attributes:
        spelling: how it is written (words joined by one space) — also its
            :attr:`cep.lang.ast.Binary.op` and how the formatter writes it.
        terminal: the grammar terminal it is read as (the six of :data:`Kind.ORDER` share
            :data:`COMPARE_TERMINAL`).
        kind: its family.
        lowering: how the code generator writes it.
        runtime: the :data:`cep.compiler.runtime.HELPERS` function that evaluates it on any
            two values (``None``: the lowering builds its own test, a matcher object).
        python: the Python operator (``"<"``) or ``str`` method (``"startswith"``) an inlined
            test uses; ``None``: none.
        test: the same as a function of two values of one type (the scanner's evaluation of
            a ``cmp`` test, ``having`` terms); ``None``: none.
        negation_of: the spelling of the operator this one negates (``not in`` → ``in``).
        flipped: the spelling that means the same with the operands swapped (``<`` →
            ``>``); ``None``: the operands are not interchangeable.
        ordering: holds only for two numbers or two strings (a bool is not ordered).
        mismatch: what it gives for two present values of different types (``!=``: true).
        nulls: what a null operand makes of it.
        null_hint: compared with a ``null`` literal it is always false; the test meant
            (``is null``), for the checker's warning.  ``None``: no such warning.
        operands: what a schema check asks of the operands.
        right: the grammar symbol of the right operand.
        list_test: the :class:`cep.lang.lists.ListData` method that tests a value against a
            declared list (``x in NAME``); ``None``: a declared list cannot be its right side.
        cidr: ``x op cidr(…)`` is allowed (membership in IP blocks).
        folds_case: strings are compared after case folding.
        exact_as: the operator it amounts to where its own treatment has nothing to do: for
            wildcard patterns the membership operator it is when no pattern holds a wildcard
            (``like "a"`` is ``in ["a"]``; not for case-folded ones), for ``=~`` the equality
            it is with a literal that is not a string.
        scan: how it lowers to the C scanner's program.
        scan_code: the code of its test in that program (``"=="``, ``"in"``); ``None``:
            not lowered.
        index: what the rule index learns from it.
        having: usable in a ``having`` term (an aggregate compared with a number).
    """

    spelling: str
    terminal: str
    kind: Kind
    lowering: Lowering
    runtime: str | None = None
    python: str | None = None
    test: Callable[[Any, Any], bool] | None = field(default=None, compare=False)
    negation_of: str | None = None
    flipped: str | None = None
    ordering: bool = False
    mismatch: bool = False
    nulls: Nulls = Nulls.FALSE
    null_hint: str | None = None
    operands: Operands = _UNCHECKED
    right: Syntax = Syntax.EXPRESSION
    list_test: str | None = None
    cidr: bool = False
    folds_case: bool = False
    exact_as: str | None = None
    scan: Scan = Scan.UNKNOWN
    scan_code: str | None = None
    index: IndexUse = IndexUse.NONE
    having: bool = False

    @property
    def equality(self) -> bool:
        """Whether it holds exactly when its two operands are equal (``==``)."""
        return self.kind is Kind.ORDER and not self.ordering and not self.mismatch

    @property
    def below(self) -> bool:
        """Whether it is an ordering that holds when the left value is the smaller
        (``<``, ``<=``)."""
        return self.ordering and self.test is not None and self.test(0, 1)

    @property
    def negated(self) -> bool:
        """Whether this is the negated form of another operator (``not in``)."""
        return self.negation_of is not None


COMPARE_TERMINAL = "COMPARE"
"""The grammar terminal of the :data:`Kind.ORDER` operators (one regular expression)."""


def _order(spelling: str, python: str, test: Callable[[Any, Any], bool], flipped: str,
           runtime: str, **kw: Any) -> Operator:
    return Operator(spelling, COMPARE_TERMINAL, Kind.ORDER, Lowering.COMPARE, runtime=runtime,
                    python=python, test=test, flipped=flipped, scan=Scan.CMP,
                    scan_code=spelling, **kw)


EQ = _order("==", "==", py.eq, "==", "_eq", null_hint="is null", operands=_VALUE_ENUM,
            index=IndexUse.EQUALS, having=True)
NE = _order("!=", "!=", py.ne, "!=", "_ne", mismatch=True, null_hint="is not null",
            operands=_VALUE_ENUM, index=IndexUse.PRESENT)
LT = _order("<", "<", py.lt, ">", "_lt", ordering=True, operands=_VALUE,
            index=IndexUse.PRESENT, having=True)
LE = _order("<=", "<=", py.le, ">=", "_le", ordering=True, operands=_VALUE,
            index=IndexUse.PRESENT, having=True)
GT = _order(">", ">", py.gt, "<", "_gt", ordering=True, operands=_VALUE,
            index=IndexUse.PRESENT, having=True)
GE = _order(">=", ">=", py.ge, "<=", "_ge", ordering=True, operands=_VALUE,
            index=IndexUse.PRESENT, having=True)

IN = Operator("in", "IN", Kind.MEMBERSHIP, Lowering.MEMBERSHIP, runtime="_in",
              nulls=Nulls.SUBJECT_FALSE, operands=_MEMBER_ENUM, list_test="test", cidr=True,
              scan=Scan.LIST, scan_code="in", index=IndexUse.MEMBER)
NOT_IN = Operator("not in", "NOT_IN", Kind.MEMBERSHIP, Lowering.MEMBERSHIP, runtime="_not_in",
                  negation_of="in", nulls=Nulls.SUBJECT_FALSE, operands=_MEMBER_ENUM,
                  list_test="test_not", cidr=True, scan=Scan.LIST, scan_code="notin")

CONTAINS = Operator("contains", "CONTAINS", Kind.TEXT, Lowering.CONTAINS, runtime="_contains",
                    operands=Operands(text=frozenset({"string", "any", "list"})),
                    index=IndexUse.SEGMENT)
STARTS_WITH = Operator("starts with", "STARTS_WITH", Kind.TEXT, Lowering.AFFIX,
                       runtime="_starts_with", python="startswith", operands=_TEXT,
                       index=IndexUse.PREFIX)
ENDS_WITH = Operator("ends with", "ENDS_WITH", Kind.TEXT, Lowering.AFFIX,
                     runtime="_ends_with", python="endswith", operands=_TEXT,
                     index=IndexUse.SUFFIX)
MATCHES = Operator("matches", "MATCHES", Kind.TEXT, Lowering.REGEX, runtime="_matches",
                   operands=_TEXT, right=Syntax.STRING, index=IndexUse.PATTERN)

EQ_CI = Operator("=~", "EQ_CI", Kind.MATCHING, Lowering.FOLD_EQ, folds_case=True,
                 exact_as="==")
IN_CI = Operator("in~", "IN_CI", Kind.MATCHING, Lowering.FOLD_SET, nulls=Nulls.SUBJECT_FALSE,
                 list_test="test_folded", folds_case=True)
NOT_IN_CI = Operator("not in~", "NOT_IN_CI", Kind.MATCHING, Lowering.FOLD_SET,
                     negation_of="in~", nulls=Nulls.SUBJECT_FALSE,
                     list_test="test_folded_not", folds_case=True)
LIKE = Operator("like", "LIKE", Kind.MATCHING, Lowering.GLOB, nulls=Nulls.SUBJECT_FALSE,
                operands=_TEXT, exact_as="in", scan=Scan.EXACT_GLOB)
NOT_LIKE = Operator("not like", "NOT_LIKE", Kind.MATCHING, Lowering.GLOB, negation_of="like",
                    nulls=Nulls.SUBJECT_FALSE, operands=_TEXT, exact_as="not in",
                    scan=Scan.EXACT_GLOB)
LIKE_CI = Operator("like~", "LIKE_CI", Kind.MATCHING, Lowering.GLOB, nulls=Nulls.SUBJECT_FALSE,
                   operands=_TEXT, folds_case=True)
NOT_LIKE_CI = Operator("not like~", "NOT_LIKE_CI", Kind.MATCHING, Lowering.GLOB,
                       negation_of="like~", nulls=Nulls.SUBJECT_FALSE, operands=_TEXT,
                       folds_case=True)


class OperatorTable:
    """The operators of one language, by spelling (and by scanner code), immutable.

    Raises :class:`ValueError` when an entry refers to a spelling the table lacks or two
    entries share a spelling or a scanner code."""

    __slots__ = ("_by_spelling", "_by_scan_code")

    def __init__(self, operators: tuple[Operator, ...]) -> None:
        self._by_spelling = {op.spelling: op for op in operators}
        self._by_scan_code = {op.scan_code: op for op in operators if op.scan_code is not None}
        if len(self._by_spelling) != len(operators):
            raise ValueError("two operators share a spelling")
        if len(self._by_scan_code) != sum(op.scan_code is not None for op in operators):
            raise ValueError("two operators share a scanner code")
        for op in operators:
            for ref in (op.negation_of, op.flipped, op.exact_as):
                if ref is not None and ref not in self._by_spelling:
                    raise ValueError(f"{op.spelling!r} refers to {ref!r}, not in the table")

    def __iter__(self) -> Iterator[Operator]:
        return iter(self._by_spelling.values())

    def __len__(self) -> int:
        return len(self._by_spelling)

    def __contains__(self, spelling: object) -> bool:
        return spelling in self._by_spelling

    def __getitem__(self, spelling: str) -> Operator:
        return self._by_spelling[spelling]

    def __hash__(self) -> int:
        return hash(tuple(self._by_spelling.values()))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OperatorTable) and tuple(self) == tuple(other)

    def get(self, spelling: str) -> Operator | None:
        """The operator spelled ``spelling`` (``None``: not one of these — ``and``, ``+``…)."""
        return self._by_spelling.get(spelling)

    def scanned(self, code: object) -> Operator | None:
        """The operator whose scanner program test has code ``code``, else ``None``."""
        return self._by_scan_code.get(code) if type(code) is str else None

    def spellings(self) -> frozenset[str]:
        """Every spelling."""
        return frozenset(self._by_spelling)

    def of_kind(self, kind: Kind) -> tuple[Operator, ...]:
        """The operators of ``kind``, in table order."""
        return tuple(op for op in self if op.kind is kind)

    def with_operator(self, op: Operator) -> OperatorTable:
        """A copy of this table with ``op`` added (or replacing the entry of its spelling)."""
        return OperatorTable((*(o for o in self if o.spelling != op.spelling), op))


OPERATORS = OperatorTable((
    EQ, NE, LT, LE, GT, GE, IN, NOT_IN, CONTAINS, STARTS_WITH, ENDS_WITH, MATCHES,
    EQ_CI, IN_CI, NOT_IN_CI, LIKE, NOT_LIKE, LIKE_CI, NOT_LIKE_CI,
))
"""The operators of the rule language."""


# ---------------------------------------------------------------------- grammar text


def grammar_alternatives(table: OperatorTable) -> str:
    """The alternatives of the grammar's ``predicate`` rule that read the operators of
    ``table``: ``| sum TERMINAL sum -> binary``, one per terminal, in table order."""
    seen: dict[str, Syntax] = {}
    for op in table:
        seen.setdefault(op.terminal, op.right)
    return "\n".join(f"          | sum {terminal} {right.value}  -> binary"
                     for terminal, right in seen.items())


def grammar_terminals(table: OperatorTable) -> str:
    """The terminal definitions of the operators of ``table``.

    The :data:`COMPARE_TERMINAL` operators are one regular expression, longest first.  A
    spelling of words is a regular expression whose words may be separated by any
    whitespace and that ends at a word boundary (or after its ``~``); it outranks a name
    (priority 2), a keyword of several words outranks one word (3), and a case-insensitive
    form ending in ``~`` outranks the plain one (4).  Any other spelling is a literal string.
    """
    out: list[str] = []
    by_terminal: dict[str, list[str]] = {}
    for op in table:
        by_terminal.setdefault(op.terminal, []).append(op.spelling)
    for terminal, spellings in by_terminal.items():
        if terminal == COMPARE_TERMINAL or len(spellings) > 1:
            alts = "|".join(re.escape(s) for s in sorted(
                spellings, key=lambda s: (-len(s), spellings.index(s))))
            out.append(f"{terminal}: /{alts}/")
            continue
        spelling = spellings[0]
        words = spelling.rstrip("~").split(" ")
        if not all(w.isalpha() for w in words):
            out.append(f'{terminal}: "{spelling}"')
            continue
        body = r"\s+".join(words)
        if spelling.endswith("~"):
            out.append(f"{terminal}.4: /{body}~/")
        else:
            out.append(f"{terminal}.{3 if len(words) > 1 else 2}: /{body}\\b/")
    return "\n".join(out)
