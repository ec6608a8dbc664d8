"""The error tree of the engine, each error carrying the process exit status it maps to.

Layer 0: imports nothing from the project except, lazily, for typing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cep.diagnostics import Diagnostic

__all__ = ["CepError", "RuleError", "ConfigError", "InputError"]


class CepError(Exception):
    """Base of every error the engine raises on purpose; ``exit_code`` is the process status."""

    exit_code: int = 1


class RuleError(CepError):
    """Rule files that do not parse or check; ``diagnostics`` lists every problem found."""

    exit_code = 1

    def __init__(self, diagnostics: Sequence[Diagnostic], message: str | None = None) -> None:
        self.diagnostics: tuple[Diagnostic, ...] = tuple(diagnostics)
        errors = sum(1 for d in self.diagnostics if d.severity == "error")
        super().__init__(message or f"{errors} error(s) in rule files")


class ConfigError(CepError):
    """An invalid configuration file or command-line setting."""

    exit_code = 2


class InputError(CepError):
    """Input that cannot be read at all (a missing file, an unreadable stream)."""

    exit_code = 3
