"""A pySigma backend whose output is the engine's rule text (``.cep``).

``cep sigma convert RULE.yml`` and pySigma's own ``sigma convert -t cep`` (the backend is
found through pySigma's plugin directory ``sigma.backends``, where this distribution
installs ``sigma/backends/cep``) print, for each Sigma rule, the engine rule that
:mod:`cep.sigma.rule` compiles it to — the same text ``cep run`` runs, to fork into a
hand-written pattern.

The backend converts whole rules: a collection, file by file, through
:func:`cep.sigma.load.compile_collection` (the rules ``cep sigma convert`` prints for those
files, correlation rules included; a rule the engine cannot run is left out), one rule
through :func:`cep.sigma.rule.to_engine_rule`.  pySigma's per-condition hooks of text-query
backends are not used.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from sigma.collection import SigmaCollection
from sigma.conversion.base import Backend
from sigma.correlations import SigmaCorrelationRule
from sigma.filters import SigmaFilter
from sigma.rule import SigmaRule

from cep.lang.format import format_rule
from cep.sigma.load import SigmaLoad, compile_collection
from cep.sigma.rule import rule_name, to_engine_rule

__all__ = ["CepBackend", "convert_rule_text"]


def convert_rule_text(rule: SigmaRule) -> str:
    """The ``.cep`` text of one processed Sigma detection rule.

    Raises:
        cep.sigma.detection.UnsupportedSigma: the rule uses what the engine cannot run."""
    stem = Path(str(rule.source.path)).stem if rule.source is not None else "sigma_rule"
    return format_rule(to_engine_rule(rule, rule_name(stem, rule)))


class CepBackend(Backend):
    """pySigma backend ``cep``: Sigma rules → ``.cep`` rule text (one string per rule; the
    collection's output is the rules joined by blank lines).  Correlation rules are compiled
    over the detection rules of their own file, as ``cep run`` does."""

    name: ClassVar[str] = "cep rule engine"
    formats: ClassVar[dict[str, str]] = {"default": "cep rule text (.cep)"}
    requires_pipeline: ClassVar[bool] = False

    def convert(self, rule_collection: SigmaCollection, output_format: str | None = None,
                correlation_method: str | None = None,
                callback: Callable[..., Any] | None = None) -> Any:
        self.init_processing_pipeline(output_format)
        by_file: dict[str, list[SigmaRule | SigmaCorrelationRule | SigmaFilter]] = {}
        for rule in rule_collection.rules:
            src = rule.source.path if rule.source is not None else None
            by_file.setdefault(str(src) if src is not None else "sigma_rule", []).append(rule)
        texts: list[str] = []
        used: set[str] = set()
        for path, rules in by_file.items():
            compiled = compile_collection(Path(path), SigmaCollection(rules),
                                          self.last_processing_pipeline, used, SigmaLoad())
            texts += [format_rule(r) for r in compiled]
        return self.finalize(texts, output_format or "default")

    def convert_rule(self, rule: SigmaRule, output_format: str | None = None,
                     callback: Callable[..., Any] | None = None) -> list[Any]:
        if not hasattr(self, "last_processing_pipeline"):
            self.init_processing_pipeline(output_format)
        self.last_processing_pipeline.apply(rule)
        return [convert_rule_text(rule)]

    def finalize(self, queries: list[Any], output_format: str) -> Any:
        return "\n".join(queries)


# The condition hooks pySigma declares abstract belong to query-string backends; this one
# converts whole rules (above), so none of them is ever called.
CepBackend.__abstractmethods__ = frozenset()
