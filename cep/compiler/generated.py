"""What the rule compiler knows of a function it generated, as one typed record.

Every compiled key, header filter, stage condition and emit is a Python function made by
:mod:`cep.compiler.codegen`.  The other back ends need more than the function: its source (to
show and to audit), the same expression over the event's data object alone (for the batched
loop of :mod:`cep.operator.fastpath`, which inlines it), its constants, its expression tree
(for the predicates of the C line scanner, :mod:`cep.compiler.predicate`), the field and
string an equality test in it pins down (to branch on one field for many rules), and for a
key its field paths.  :class:`GeneratedCode` carries all of that beside the function; the
automaton keeps it on the stage :class:`~cep.nfa.pattern.Condition` it belongs to, and
:func:`code_of` finds it from an edge guard.  Layer 2.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from cep.lang import ast
from cep.nfa.model import EdgeCond

__all__ = ["GeneratedCode", "GeneratedText", "PendingText", "code_of"]


class GeneratedText(NamedTuple):
    """What generating one function writes.

    Attributes:
        source: the Python module source (``def name(params): return …``).
        data_expr: its body as one expression over the data object ``_d`` alone, when it
            reads nothing else (no ``ts``, no stage, not an emit); ``None`` otherwise.
        consts: the constants the source refers to (``_c…`` names → values).
    """

    source: str
    data_expr: str | None
    consts: Mapping[str, Any]


class PendingText(Protocol):
    """A function's text not generated yet (:class:`cep.compiler.deferred.DeferredBody`):
    :meth:`text` generates it once (thread-safe) and returns it every time after."""

    def text(self) -> GeneratedText:
        """The generated text (generated now when not yet)."""
        ...

    @property
    def pending(self) -> bool:
        """True until the text has been generated."""
        ...


@dataclass(frozen=True, eq=False)
class GeneratedCode:
    """A generated function and what the back ends need to know of it.

    Attributes:
        fn: the function (``fn(ev, pm)`` for a condition, ``fn(ev)`` for a header filter,
            ``fn(data)`` for a key, ``fn(match)`` for an emit).
        body: its :class:`GeneratedText`, or (a rule built with ``defer``) the
            :class:`PendingText` that generates it on first need: its first call, or the
            first read of :attr:`source`, :attr:`data_expr` or :attr:`consts`.
        ast: the expression it was compiled from (conditions and header filters).
        scope: the stage names in scope (conditions).
        eq_guard: ``(field, text)`` when it can only hold for an event whose top-level
            ``field`` is the string ``text`` (:func:`cep.compiler.codegen.eq_guard`).
        key_paths: a key's field paths, one tuple of parts per field.
    """

    fn: Callable[..., Any]
    body: GeneratedText | PendingText
    ast: ast.Expr | None = None
    scope: tuple[str, ...] = ()
    eq_guard: tuple[str, str] | None = None
    key_paths: tuple[tuple[str, ...], ...] | None = None

    @property
    def text(self) -> GeneratedText:
        """The generated text (generated now when it was deferred and not yet)."""
        body = self.body
        return body if isinstance(body, GeneratedText) else body.text()

    @property
    def pending(self) -> bool:
        """True while the text is deferred and not generated yet."""
        body = self.body
        return not isinstance(body, GeneratedText) and body.pending

    @property
    def source(self) -> str:
        """The Python source the function is compiled from."""
        return self.text.source

    @property
    def data_expr(self) -> str | None:
        """See :attr:`GeneratedText.data_expr`."""
        return self.text.data_expr

    @property
    def consts(self) -> Mapping[str, Any]:
        """See :attr:`GeneratedText.consts`."""
        return self.text.consts


def code_of(edge: EdgeCond) -> GeneratedCode | None:
    """The generated code behind an edge guard that is exactly one stage condition, or
    ``None`` (a composite guard, the constant ``true``, a condition not made by the
    compiler)."""
    origin = edge.origin
    code = origin.code if origin is not None else None
    return code if isinstance(code, GeneratedCode) else None
