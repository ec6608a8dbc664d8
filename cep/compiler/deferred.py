"""Generated functions whose generation and Python ``compile()`` wait for their first use.

Loading thousands of rules (a Sigma collection) spends most of its time writing and
compiling the source :mod:`cep.compiler.codegen` generates, yet the rule index
(:mod:`cep.operator.rule_index`) makes most of those rules never a candidate for any event
of a given stream, and most rules never emit.  So a stage condition, header filter or emit
may be left as its expression tree (everything the index and the gates read: the tree, the
stages in scope, the equality guard) and the rest deferred: :func:`deferred_function`
returns a *stub*, a real Python function with the generated function's parameters whose
first call generates the source (the same generator, on the same tree), compiles it into the
stub's namespace and then gives the stub the compiled code (``__code__``), so every later
call runs the generated code directly, with no indirection and the same function object
(the gates and the automaton keep references to it).  Code that reads the text before any
call (the batched loop of :mod:`cep.operator.fastpath` inlines a condition's ``data_expr``)
has it generated then, once (:meth:`DeferredBody.text`).  It is one engine path: the same
source, the same namespace, the same code object, generated and compiled later.

The deferred work can only fail for a rule the checker would reject (``cep check`` and the
reload's compiler process build eagerly and report it as a rule error) or for a source
Python cannot compile (nested too deeply).  Should it still fail on first use, the stub is
given the code of a function that returns ``False`` (an emit: ``{}``): the condition, hence
the rule, never holds again, the rule is disabled; the failure is logged once as an error
naming the rule, and the run goes on.

Thread safety: the generation and the rebinding run under one lock per function, so
concurrent first uses generate and compile once and every caller gets the same code.

Layer 2, beside :mod:`cep.compiler.codegen`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from types import CodeType, FunctionType
from typing import Any, cast

from cep.compiler.generated import GeneratedText

__all__ = ["DeferredBody", "deferred_function", "DEFERRABLE_PARAMS"]

log = logging.getLogger("cep.compiler")

_FIRST_CALL = "_cep_first_call"
"""The stub's global naming its :class:`DeferredBody` (generated names start ``_c``/``_v``
followed by a digit, helpers have other names: no clash)."""


def _codes(params: str, off: str) -> tuple[CodeType, CodeType]:
    """The stub's code and the disabled function's code (``return off``) for one parameter
    list."""
    ns: dict[str, Any] = {"__builtins__": {}}
    exec(compile(f"def stub({params}):\n    return {_FIRST_CALL}({params})\n"
                 f"def off({params}):\n    return {off}\n", "<cep:deferred>", "exec"), ns)
    return ns["stub"].__code__, ns["off"].__code__


DEFERRABLE_PARAMS: dict[str, tuple[CodeType, CodeType]] = {
    "ev, pm": _codes("ev, pm", "False"), "ev": _codes("ev", "False"), "m": _codes("m", "{}")}
"""Parameter lists of the generated functions that may be deferred → the stub's code and
the disabled code: stage conditions (``ev, pm``) and header filters (``ev``) return a bool,
so a disabled one returns ``False``; an emit (``m``) returns the alert's fields, a disabled
one none.  Constant: built once at import."""


@dataclass(eq=False)
class DeferredBody:
    """The part of a generated function not done yet: its text, its compiled code.

    Attributes:
        generate: writes the function's :class:`~cep.compiler.generated.GeneratedText`
            (the generator of :mod:`cep.compiler.codegen` on the kept expression tree);
            called once.  May raise what the generator raises for a rule the checker would
            reject.
        name: the function's name in the source (``_cond``, ``_filter``, ``_emit``).
        params: its parameter list (a key of :data:`DEFERRABLE_PARAMS`).
        namespace: the globals the function runs with (runtime helpers, empty builtins; the
            generator's constants are added when it is compiled), shared with the stub.
        what: whose function it is, for the error log (``rule `x`: condition `…```).
        stub: the function handed out (set by :func:`deferred_function`).
    """

    generate: Callable[[], GeneratedText]
    name: str
    params: str
    namespace: dict[str, Any]
    what: str
    stub: Callable[..., Any] | None = None
    _text: GeneratedText | None = field(default=None, repr=False)
    _failed: bool = field(default=False, repr=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    @property
    def pending(self) -> bool:
        """True until the text has been generated."""
        return self._text is None

    def __call__(self, *args: Any) -> Any:
        """The first call of the stub: generate, compile, rebind the stub's code, answer
        ``args``."""
        stub = cast(FunctionType, self.stub)  # (a field typed FunctionType reads as a method)
        with self._lock:
            if stub.__code__.co_name == "stub":  # (not rebound by a concurrent first call)
                stub.__code__ = self.compiled()
        return stub(*args)

    def text(self) -> GeneratedText:
        """The generated text, generated on the first call (thread-safe).  When the
        generator fails, the text of the disabled function (logged as an error)."""
        with self._lock:
            if self._text is None:
                try:
                    self._text = self.generate()
                except (ValueError, RecursionError, MemoryError) as exc:  # (CompileError)
                    self._disable("generated", exc)
                    off = "{}" if self.params == "m" else "False"
                    self._text = GeneratedText(
                        f"def {self.name}({self.params}):\n    return {off}\n", None, {})
            return self._text

    def compiled(self) -> CodeType:
        """The code of the generated function (generated, compiled and executed into
        :attr:`namespace`), or the disabled function's code when it cannot be generated or
        Python cannot compile the source (logged as an error)."""
        with self._lock:
            text = self.text()
            if self._failed:
                return DEFERRABLE_PARAMS[self.params][1]
            self.namespace.update(text.consts)
            try:
                exec(compile(text.source, f"<cep:{self.name}>", "exec"), self.namespace)
            except (SyntaxError, RecursionError, MemoryError, ValueError) as exc:
                self._disable("compiled", exc)
                return DEFERRABLE_PARAMS[self.params][1]
            code: CodeType = self.namespace[self.name].__code__
            return code

    def _disable(self, verb: str, exc: BaseException) -> None:
        self._failed = True
        detail = str(exc) if verb == "generated" and str(exc) else \
            "expression too complex or too deeply nested"
        log.error("%s cannot be %s (%s: %s): disabled, %s", self.what, verb,
                  type(exc).__name__, detail,
                  "its alerts carry no fields" if self.params == "m" else "it never holds")


def deferred_function(generate: Callable[[], GeneratedText], name: str, params: str,
                      namespace: dict[str, Any], what: str,
                      text: GeneratedText | None = None) -> tuple[FunctionType, DeferredBody]:
    """A stub for ``def name(params)`` whose first call generates its text with
    ``generate`` (unless ``text``, generated already, is given) and compiles it (see the
    module doc); ``namespace`` becomes the stub's globals.

    Raises:
        KeyError: ``params`` is not one of :data:`DEFERRABLE_PARAMS`."""
    stub_code, _ = DEFERRABLE_PARAMS[params]
    body = DeferredBody(generate, name, params, namespace, what, _text=text)
    namespace[_FIRST_CALL] = body
    stub = FunctionType(stub_code, namespace, name)
    stub.__qualname__ = name
    body.stub = stub
    return stub, body
