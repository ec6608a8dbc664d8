"""Generated functions whose Python ``compile()`` waits for their first call.

Loading thousands of rules (a Sigma collection) spends a good part of its time in
:func:`compile` on the source :mod:`cep.compiler.codegen` generates, yet the rule index
(:mod:`cep.operator.rule_index`) makes most of those rules never a candidate for any event
of a given stream.  So a stage condition or header filter may be generated in full (its
source, constants, data-only form, expression tree: everything the index, the gates and the
fast paths read) and only its ``compile()`` + ``exec`` deferred: :func:`deferred_function`
returns a *stub*, a real Python function with the generated function's parameters whose
first call compiles the very same source into the very same namespace and then gives the
stub the compiled code (``__code__``), so every later call runs the generated code directly,
with no indirection and the same function object (the gates and the automaton keep
references to it).  It is one engine path: the same source, the same namespace, the same
code object, compiled later.

The deferred ``compile()`` can only fail for a source Python cannot compile (nested too
deeply; ``cep check`` and the reload's compiler process compile eagerly and report it as a
rule error).  Should it still fail on a first call, the stub is given the code of a function
that returns ``False`` (the condition, hence the rule, never holds again: the rule is
disabled), and the failure is logged as an error naming the rule; the run goes on.

Layer 2, beside :mod:`cep.compiler.codegen`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from types import CodeType, FunctionType
from typing import Any, cast

__all__ = ["DeferredBody", "deferred_function", "DEFERRABLE_PARAMS"]

log = logging.getLogger("cep.compiler")

_FIRST_CALL = "_cep_first_call"
"""The stub's global naming its :class:`DeferredBody` (generated names start ``_c``/``_v``
followed by a digit, helpers have other names: no clash)."""


def _codes(params: str) -> tuple[CodeType, CodeType]:
    """The stub's code and the disabled function's code for one parameter list."""
    ns: dict[str, Any] = {"__builtins__": {}}
    exec(compile(f"def stub({params}):\n    return {_FIRST_CALL}({params})\n"
                 f"def off({params}):\n    return False\n", "<cep:deferred>", "exec"), ns)
    return ns["stub"].__code__, ns["off"].__code__


DEFERRABLE_PARAMS: dict[str, tuple[CodeType, CodeType]] = {
    p: _codes(p) for p in ("ev, pm", "ev")}
"""Parameter lists of the generated functions that may be deferred (stage conditions,
header filters; both return a bool, so a disabled one returns ``False``) → the stub's code
and the disabled code.  Constant: built once at import."""


@dataclass(eq=False)
class DeferredBody:
    """The part of a generated function not compiled yet.

    Attributes:
        source: the generated module source (``def name(params): return …``).
        name: the function's name in it (``_cond``, ``_filter``).
        namespace: the globals the function runs with (runtime helpers and the generator's
            constants, empty builtins), shared with the stub.
        what: whose function it is, for the error log (``rule `x`: condition `…```).
        off: the code the stub gets when Python cannot compile ``source`` (``return False``).
        stub: the function handed out (set by :func:`deferred_function`).
    """

    source: str
    name: str
    namespace: dict[str, Any]
    what: str
    off: CodeType
    stub: Callable[..., Any] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __call__(self, *args: Any) -> Any:
        """The first call of the stub: compile, rebind the stub's code, answer ``args``."""
        stub = cast(FunctionType, self.stub)  # (a field typed FunctionType reads as a method)
        with self._lock:
            if stub.__code__.co_name == "stub":  # (not rebound by a concurrent first call)
                stub.__code__ = self.compiled()
        return stub(*args)

    def compiled(self) -> CodeType:
        """The code of the generated function (compiled and executed into
        :attr:`namespace`), or the disabled function's code when Python cannot compile the
        source (logged as an error)."""
        try:
            exec(compile(self.source, f"<cep:{self.name}>", "exec"), self.namespace)
        except (SyntaxError, RecursionError, MemoryError, ValueError) as exc:
            log.error("%s cannot be compiled (%s: expression too complex or too deeply "
                      "nested): disabled, it never holds", self.what, type(exc).__name__)
            return self.off
        code: CodeType = self.namespace[self.name].__code__
        return code


def deferred_function(source: str, name: str, params: str, namespace: dict[str, Any],
                      what: str) -> tuple[FunctionType, DeferredBody]:
    """A stub for ``def name(params)`` of ``source`` whose first call compiles it (see the
    module doc); ``namespace`` becomes the stub's globals.

    Raises:
        KeyError: ``params`` is not one of :data:`DEFERRABLE_PARAMS`."""
    stub_code, off = DEFERRABLE_PARAMS[params]
    body = DeferredBody(source, name, namespace, what, off)
    namespace[_FIRST_CALL] = body
    stub = FunctionType(stub_code, namespace, name)
    stub.__qualname__ = name
    body.stub = stub
    return stub, body
