"""Load, check and compile rule files: all or nothing.

Every file is parsed and checked first; only when no file has an error are the rules
compiled (the rules of Sigma files compiled on other CPUs are built while the others
compile, and kept only then).  The caller gets the compiled rules or the complete list of
diagnostics.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from cep.compiler.build import build_rule
from cep.compiler.compiled import CompiledRule
from cep.diagnostics import Diagnostic, render
from cep.lang.ast import NOWHERE, Rule, RuleFile
from cep.lang.lists import load_lists
from cep.lang.load import load_rules
from cep.sigma.files import is_sigma_path, sigma_files

if TYPE_CHECKING:
    from cep.sigma.load import SigmaLoad

__all__ = ["RuleSet", "load_rule_set", "render_diagnostics", "source_texts", "file_checks"]


@dataclass
class RuleSet:
    """The outcome of loading rule paths: compiled rules (empty when there are errors),
    every diagnostic (errors and warnings) and the parsed files."""

    rules: list[CompiledRule] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    files: list[RuleFile] = field(default_factory=list)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]

    @property
    def ok(self) -> bool:
        return not self.errors


def load_rule_set(paths: list[str], sigma_pipelines: Sequence[str] = (), *,
                  defer: bool = False) -> RuleSet:
    """Parse and check every ``.cep`` file under ``paths``; compile them if all are clean.

    Sigma rule files (``.yml``, named or under a directory) are loaded beside them
    (:func:`cep.sigma.load.load_sigma`) through the pySigma processing pipelines
    ``sigma_pipelines`` (shipped names or pipeline files, in order); a pipeline that cannot be
    loaded is an error.

    A rule that passes the checks but fails to compile is reported as an error at its name
    (no exception): callers such as the hot reload then keep the rules they run.

    ``defer`` (for running, not for checking): the code of each rule's conditions, header
    filter and emits is generated and compiled on its first use (``build_rule(defer=True)``,
    :mod:`cep.compiler.deferred`), so rules no event is ever a candidate for cost little.
    Every rule is still built and every diagnostic above still reported now; only the
    generator or Python failing on a deferred function (which ``cep check``, building
    eagerly, reports) would show later, as a logged error that disables the function.  The
    Sigma files' compiled-file cache is then written by a detached process while the run
    goes on (:func:`cep.sigma.parallel.run_behind`).
    """
    files, diags = load_rules([p for p in paths if not is_sigma_path(p)])
    sig_files = sigma_files(paths)
    built = _Prebuilt(defer)
    if sigma_pipelines or sig_files:
        sig = _load_sigma(paths, sigma_pipelines, sig_files, defer, built.add)
        files += sig.files
        diags += sig.diagnostics
    rs = RuleSet(diagnostics=list(diags), files=list(files))
    if rs.errors:
        return rs
    for rf in files:
        lists, list_diags = load_lists(rf)
        if list_diags:
            rs.diagnostics.extend(list_diags)
            continue
        for rule in rf.rules:
            try:
                rs.rules.append(built.take(rule)
                                or build_rule(rule, rf.path, lists, defer=defer))
            except Exception as exc:  # noqa: BLE001 - a checked rule should compile; if one
                # does not, it is still reported at the rule, and nothing is half loaded
                rs.diagnostics.append(Diagnostic(
                    rf.path, rule.name_span,
                    f"rule `{rule.name}`: cannot be compiled ({type(exc).__name__}: {exc})"))
    if rs.errors:
        rs.rules = []
    return rs


class _Built(NamedTuple):
    """A rule built ahead (:class:`_Prebuilt`): the syntax tree (kept, so that its ``id``
    names no other object while this lives) and what it was built into."""

    rule: Rule
    compiled: CompiledRule


class _Prebuilt:
    """Rules built while other Sigma files still compile on other CPUs
    (``load_sigma(compiled=…)``), by the ``id`` of their syntax tree: a file of rules
    without lists is built as soon as it is compiled; the ordered building of
    :func:`load_rule_set` takes a rule from here when it is the very object built (a rule
    that fails to build here is built there again, where its error is reported)."""

    def __init__(self, defer: bool) -> None:
        self.defer = defer
        self.built: dict[int, _Built] = {}

    def add(self, rf: RuleFile) -> None:
        """Build the rules of ``rf`` now (none for a file that declares lists)."""
        if rf.lists:
            return
        for rule in rf.rules:
            try:
                self.built[id(rule)] = _Built(rule, build_rule(rule, rf.path, {},
                                                               defer=self.defer))
            except Exception:  # noqa: BLE001 - reported when built in order
                continue

    def take(self, rule: Rule) -> CompiledRule | None:
        """The rule built from ``rule`` (this very object), or ``None``."""
        found = self.built.pop(id(rule), None)
        return found.compiled if found is not None and found.rule is rule else None


def _load_sigma(paths: list[str], pipelines: Sequence[str], files: list[Path],
                running: bool, compiled: Callable[[RuleFile], None] | None = None
                ) -> SigmaLoad:
    """The Sigma part of :func:`load_rule_set` (pySigma imported only here); ``files``:
    :func:`~cep.sigma.files.sigma_files` of ``paths``; ``running``: a load for a run, which
    writes the compiled-file cache behind (``load_sigma(write_behind=True)``); ``compiled``:
    given each file compiled on another CPU as soon as it is (``load_sigma(compiled=…)``)."""
    from cep.sigma.load import SigmaLoad, load_sigma
    from cep.sigma.pipelines import PipelineError, load_keyed_pipeline

    try:
        pipeline, key = load_keyed_pipeline(pipelines)
    except PipelineError as exc:
        return SigmaLoad(diagnostics=[Diagnostic(", ".join(pipelines), NOWHERE, str(exc))])
    return load_sigma(paths, pipeline, key, files=files, write_behind=running,
                      compiled=compiled)


def source_texts(rs: RuleSet) -> Callable[[str], str]:
    """``text_of(path)``: the text a diagnostic points into, so a caret can be drawn under
    it — the loaded rule file's text, else empty.  Nothing is read from disk here: a file
    that was not loaded as a rule file (a link out of the rule directories, binary data,
    ``/etc/passwd`` named by mistake) is never echoed by a diagnostic."""
    texts = {rf.path: rf.text for rf in rs.files}

    def text_of(path: str) -> str:
        return texts.get(path, "")

    return text_of


def render_diagnostics(rs: RuleSet) -> str:
    """All diagnostics rendered ``file:line:col: error: message`` + source line + caret."""
    text_of = source_texts(rs)
    out = []
    for d in rs.diagnostics:
        out.append(render(d, text_of(d.file)))
    return "\n".join(out)


def file_checks(schema_path: str | None) -> Callable[[RuleSet], list[Diagnostic]]:
    """The checks ``cep check`` adds to loading, as a function of the loaded set: fields
    against the event schema at ``schema_path`` (without one, a field compared with literals
    of different types across the rules is a warning) and the lints (unbounded state,
    superlinear partial matches).  Sigma files are left out: their conditions compare one
    field with several types on purpose.

    Raises:
        CepError: the schema cannot be read.
    """
    from cep.lang.lint import lint_files
    from cep.lang.schema import load_schema
    from cep.lang.typecheck import field_diagnostics

    event_schema = load_schema(schema_path) if schema_path else None

    def more(rs: RuleSet) -> list[Diagnostic]:
        own = [f for f in rs.files if not is_sigma_path(f.path)]
        return field_diagnostics(own, event_schema) + lint_files(own)

    return more
