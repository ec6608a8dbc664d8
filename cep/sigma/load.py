"""Sigma rule files (``.yml``) → engine rule files, with every problem as a diagnostic.

Each file is parsed by pySigma (the specification's reference library), the processing
pipelines are applied to each rule, and each detection rule is compiled to an engine rule
(:mod:`cep.sigma.rule`); correlation rules are compiled over the detection rules of the same
file they name (:mod:`cep.sigma.correlation`).  The result is one
:class:`~cep.lang.ast.RuleFile` per Sigma file, so the rest of the engine (checks,
compiler, operator, hot reload) handles Sigma rules as it handles ``.cep`` rules.

Errors and warnings:

* a file that is not YAML or that pySigma rejects (a missing ``detection``, an unknown
  modifier, a broken condition): an **error** at the file and line pySigma names;
* a valid rule that uses what the engine cannot run exactly (a regex RE2 cannot compile, an
  unresolved placeholder, a timestamp-part modifier): a **warning** that names the rule and
  the reason, and the rule is left out — Sigma collections are run as a whole, and one
  unsupported rule must not stop the others (see docs/sigma.md).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import yaml
from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationCondition, SigmaCorrelationRule
from sigma.exceptions import SigmaError, SigmaRuleLocation
from sigma.rule import SigmaRule

from cep.diagnostics import Diagnostic
from cep.lang import ast
from cep.lang.cache_dir import open_cache
from cep.lang.limits import MAX_FILE_BYTES
from cep.sigma.cache import (
    CACHE_PARTS,
    CompiledSigmaFile,
    bundle_name,
    entry_key,
    fits,
    read_bundle,
    write_bundle,
)
from cep.sigma.chain import CorrelationOutput, compile_correlation, correlation_order
from cep.sigma.correlation import ReferencedRule, take_range_criteria
from cep.sigma.detection import UnsupportedSigma
from cep.sigma.files import sigma_files
from cep.sigma.parallel import map_forked, run_behind, worker_count
from cep.sigma.rule import rule_name, to_engine_rule

if TYPE_CHECKING:
    from sigma.processing.pipeline import ProcessingPipeline

__all__ = ["SigmaLoad", "load_sigma", "compile_collection"]

@dataclass
class SigmaLoad:
    """What loading Sigma files gave: one rule file per Sigma file (with the rules that
    compiled), every diagnostic, and per engine rule name the Sigma rule it came from —
    for the files parsed by this call only: a file taken from the compiled-file cache
    (:mod:`cep.sigma.cache`) has no pySigma objects."""

    files: list[ast.RuleFile] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    sources: dict[str, SigmaRule | SigmaCorrelationRule] = field(default_factory=dict)
    rejected: dict[str, str] = field(default_factory=dict)
    """Sigma rules left out, ``"file: title" → reason``."""


def _span(loc: SigmaRuleLocation | None) -> ast.Span:
    if loc is None or loc.line is None:
        return ast.Span(1, 1, 1, 1)
    col = (loc.char or 0) + 1
    return ast.Span(loc.line, col, loc.line, col)


def _read(path: Path) -> tuple[str | None, Diagnostic | None]:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return None, Diagnostic(str(path), ast.NOWHERE,
                                    f"larger than {MAX_FILE_BYTES} bytes: not read")
        return path.read_text(encoding="utf-8-sig"), None
    except (OSError, UnicodeDecodeError) as exc:
        return None, Diagnostic(str(path), ast.NOWHERE, f"cannot be read: {exc}")


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's safe loader where PyYAML has it (the same documents, ten times faster)."""


def _parse(path: Path, text: str) -> tuple[SigmaCollection | None, list[Diagnostic]]:
    loc = SigmaRuleLocation(path)
    try:
        docs = list(yaml.load_all(text, Loader=_LOADER))
        take_range_criteria(docs)
        coll = SigmaCollection.from_dicts(docs, collect_errors=True, source=loc,
                                          resolve_references=False)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        span = (ast.Span(mark.line + 1, mark.column + 1, mark.line + 1, mark.column + 1)
                if mark is not None else ast.Span(1, 1, 1, 1))
        return None, [Diagnostic(str(path), span, f"not valid YAML: {exc}")]
    except SigmaError as exc:
        return None, [Diagnostic(str(path), _span(exc.source), f"not a valid Sigma rule: {exc}")]
    except (TypeError, AttributeError, ValueError, KeyError) as exc:  # not a mapping of rules
        return None, [Diagnostic(str(path), ast.Span(1, 1, 1, 1),
                                 f"not a Sigma rule file: {type(exc).__name__}: {exc}")]
    diags = [Diagnostic(str(path), _span(e.source), f"not a valid Sigma rule: {e}")
             for e in coll.errors]
    for r in coll.rules:
        diags += [Diagnostic(str(path), _span(e.source), f"Sigma rule `{r.title}`: {e}")
                  for e in r.errors]
    return coll, diags


def load_sigma(paths: Sequence[str | Path], pipeline: ProcessingPipeline | None = None,
               pipeline_key: str | None = None, *,
               files: Sequence[Path] | None = None, write_behind: bool = False,
               compiled: Callable[[ast.RuleFile], None] | None = None) -> SigmaLoad:
    """Parse, process and compile the Sigma files under ``paths`` (see the module doc).

    Engine rule names come from :func:`cep.sigma.rule.rule_name`; a name already taken (two
    files with one stem, several rules in one file) gets the first eight characters of the
    Sigma rule's id appended.  Never raises for bad input.

    A file compiled before, unchanged, is taken from the compiled-file cache
    (:mod:`cep.sigma.cache`) when its rules' names are still free; ``pipeline_key`` names
    ``pipeline`` for it (:func:`cep.sigma.pipelines.load_pipeline`), and without one a
    pipeline means no cache.  The other files are compiled on every CPU
    (:func:`cep.sigma.parallel.map_forked`) before they are taken in order, as the cache's
    are.  ``files``: :func:`cep.sigma.files.sigma_files` of ``paths`` when the caller has
    it already (listing thousands of files is not free).  ``write_behind``: the cache is
    written by a detached process (:func:`cep.sigma.parallel.run_behind`) while the caller
    goes on, where one can be forked — for a run, which does not read it again.

    ``compiled``: called with each file compiled on every CPU as soon as this process has
    it, in no particular order, while other files still compile — so that the caller can
    build the engine rules of the files meanwhile.  The rule file the result holds (the
    very objects) for such a file is the one given, unless the ordered pass compiles the
    file again (a name it takes is taken already)."""
    out = SigmaLoad()
    used: set[str] = set()
    cached = pipeline is None or pipeline_key is not None
    key = pipeline_key or ""
    files = list(sigma_files(paths) if files is None else files)
    read = [(path, *_read(path)) for path in files]
    with open_cache(*CACHE_PARTS) if cached else nullcontext(None) as cache:
        name = bundle_name([str(p) for p in files], key) if cache is not None else None
        known = read_bundle(cache, name) if cache is not None and name is not None else {}
        keys = [entry_key(str(path), text, key) if name is not None and text is not None
                else None for path, text, _ in read]
        ahead = _compile_ahead([(path, text) for (path, text, _), k in zip(read, keys, strict=True)
                                if text is not None and (k is None or k not in known)],
                               pipeline, compiled)
        kept: dict[str, CompiledSigmaFile] = {}
        for (path, text, problem), k in zip(read, keys, strict=True):
            if text is None:
                out.diagnostics.append(
                    problem or Diagnostic(str(path), ast.NOWHERE, "unreadable"))
                continue
            found = known.get(k) if k is not None else None
            _load_file(path, text, pipeline, k, found or ahead.get(str(path)), kept, used,
                       out)
        if cache is not None and name is not None and kept.keys() != known.keys():
            bundle = (cache, name, kept)
            if not (write_behind and run_behind(lambda: write_bundle(*bundle))):
                write_bundle(*bundle)
    return out


def _compile_ahead(jobs: list[tuple[Path, str]], pipeline: ProcessingPipeline | None,
                   compiled: Callable[[ast.RuleFile], None] | None = None
                   ) -> dict[str, CompiledSigmaFile]:
    """The files of ``jobs`` (path, text) compiled on every CPU
    (:func:`~cep.sigma.parallel.map_forked`), by path: each as it compiles alone, kept only
    when it names its rules as in any load (:func:`_standalone`); the others are left to
    the ordered pass of :func:`load_sigma`.  ``compiled``: see :func:`load_sigma`."""
    workers = worker_count(len(jobs))
    if workers == 1:
        return {}

    def taken(c: CompiledSigmaFile) -> None:
        if compiled is not None:
            compiled(c.file)

    done = map_forked(lambda job: _standalone(job[0], job[1], pipeline), jobs, workers,
                      taken if compiled is not None else None)
    return {c.file.path: c for c in done if c is not None}


def _standalone(path: Path, text: str, pipeline: ProcessingPipeline | None
                ) -> CompiledSigmaFile | None:
    """The Sigma file ``path`` with ``text`` compiled on its own (no name taken before it),
    as the cache keeps it; ``None`` when it has errors or its names are not its own."""
    coll, diags = _parse(path, text)
    if coll is None or diags:
        return None
    part = SigmaLoad()
    rules = compile_collection(path, coll, pipeline, set(), part)
    if not all(_own_name(path, r.name, part) for r in rules):
        return None
    return CompiledSigmaFile(ast.RuleFile(str(path), text, tuple(rules)),
                             tuple(part.diagnostics), tuple(part.rejected.items()))


def _load_file(path: Path, text: str, pipeline: ProcessingPipeline | None, key: str | None,
               found: CompiledSigmaFile | None, kept: dict[str, CompiledSigmaFile],
               used: set[str], out: SigmaLoad) -> None:
    """One Sigma file of :func:`load_sigma` into ``out``: ``found`` (compiled before: the
    cache's entry, or compiled ahead on another CPU) when it fits the file and its names
    are still free, else compiled here; what the cache's bundle is to keep of it (under
    ``key``, ``None``: no cache) goes into ``kept``.

    A file is kept when its rules all compiled or were left out with a reason, and kept the
    names they would have in any load (no name was taken already): a file whose names
    depend on the files before it is compiled each time."""
    if (found is not None and fits(found, str(path), text)
            and not any(r.name in used for r in found.file.rules)):
        used.update(r.name for r in found.file.rules)
        out.files.append(found.file)
        out.diagnostics += found.diagnostics
        out.rejected.update(found.rejected)
        if key is not None:
            kept[key] = found
        return
    coll, diags = _parse(path, text)
    out.diagnostics += diags
    if coll is None or diags:
        out.files.append(ast.RuleFile(str(path), text, ()))
        return
    part = SigmaLoad()
    rules = compile_collection(path, coll, pipeline, used, part)
    rf = ast.RuleFile(str(path), text, tuple(rules))
    out.files.append(rf)
    out.diagnostics += part.diagnostics
    out.sources.update(part.sources)
    out.rejected.update(part.rejected)
    own_names = all(_own_name(path, r.name, part) for r in rules)
    if key is not None and own_names:
        kept[key] = CompiledSigmaFile(rf, tuple(part.diagnostics), tuple(part.rejected.items()))


def compile_collection(path: Path, coll: SigmaCollection,
                       pipeline: ProcessingPipeline | None, used: set[str], out: SigmaLoad
                       ) -> list[ast.Rule]:
    """The engine rules of one parsed Sigma file: its detection rules (those a correlation
    uses without ``generate: true`` compiled for it but not run on their own), then its
    correlation rules over them; what cannot be compiled is left out with a warning."""
    unresolved = _resolve_references(coll)
    rules: list[ast.Rule] = []
    detections: dict[int, ReferencedRule] = {}

    def left_out(sr: SigmaRule | SigmaCorrelationRule, reason: str) -> None:
        kind = "correlation rule" if isinstance(sr, SigmaCorrelationRule) else "rule"
        out.rejected[f"{path}: {sr.title}"] = reason
        out.diagnostics.append(Diagnostic(
            str(path), _span(sr.source), f"Sigma {kind} `{sr.title}` left out: {reason}",
            severity="warning"))

    for sr in coll.rules:
        if not isinstance(sr, SigmaRule):
            continue
        name = _unique(rule_name(path.stem, sr), sr, used)
        try:
            processed = sr
            if pipeline is not None:  # (a pipeline changes the rule in place)
                processed = copy.deepcopy(sr)
                pipeline.apply(processed)
            rule = to_engine_rule(processed, name)
        except (UnsupportedSigma, SigmaError) as exc:
            left_out(sr, str(exc))
            continue
        detections[id(sr)] = ReferencedRule(name, rule.pattern[0].condition or ast.Lit(True))
        if sr._output:
            used.add(name)
            rules.append(_at(rule, sr))
            out.sources[name] = sr
    for bad, reason in unresolved:
        left_out(bad, reason)
    corrs = [cr for cr in coll.rules if isinstance(cr, SigmaCorrelationRule)]
    read = {id(getattr(r, "rule", None)) for cr in corrs
            for r in (cr.referenced_rules or cr.rules or [])}
    outputs: dict[int, CorrelationOutput] = {}
    for cr in correlation_order(corrs):
        name = _unique(rule_name(path.stem, cr), cr, used)
        try:
            processed_cr = cr
            if pipeline is not None:
                processed_cr = copy.deepcopy(cr)
                pipeline.apply(processed_cr)
            cond = processed_cr.condition
            made = compile_correlation(
                cr, name, detections, outputs, processed_cr.group_by,
                cond.fieldref if isinstance(cond, SigmaCorrelationCondition) else None,
                processed_cr.aliases, read_by_others=id(cr) in read)
        except (UnsupportedSigma, SigmaError) as exc:
            left_out(cr, str(exc))
            continue
        if made.output is not None:
            outputs[id(cr)] = made.output
        for rule in made.rules:
            used.add(rule.name)
            rules.append(_at(rule, cr))
            out.sources[rule.name] = cr
    return rules


def _resolve_references(coll: SigmaCollection) -> list[tuple[SigmaCorrelationRule, str]]:
    """Resolve the collection's rule references (pySigma's ``resolve_rule_references``); a
    correlation naming a rule the file does not hold (one of another file) is taken out of
    the collection and returned with pySigma's reason, so the file's other rules stay."""
    try:
        coll.resolve_rule_references()
        return []
    except SigmaError:
        pass
    bad: list[tuple[SigmaCorrelationRule, str]] = []
    for r in coll.rules:
        if isinstance(r, SigmaCorrelationRule):
            try:
                r.resolve_rule_references(coll)
            except SigmaError as exc:
                bad.append((r, str(exc)))
    # (the correlations referring to a left-out one are left out too, with its reason)
    while True:
        out = {id(r) for r, _ in bad}
        more = [(r, f"it refers to {ref.reference!r}, which is left out")
                for r in coll.rules if isinstance(r, SigmaCorrelationRule) and id(r) not in out
                for ref in (r.rules or []) if id(getattr(ref, "rule", None)) in out]
        if not more:
            break
        bad += more[:1]
    out = {id(r) for r, _ in bad}
    coll.rules = [r for r in coll.rules if id(r) not in out]
    try:
        coll.resolve_rule_references()
    except SigmaError as exc:  # (not expected: every reference left resolved above)
        rest = [r for r in coll.rules if isinstance(r, SigmaCorrelationRule)]
        coll.rules = [r for r in coll.rules if not isinstance(r, SigmaCorrelationRule)]
        bad += [(r, str(exc)) for r in rest]
    return bad


def _own_name(path: Path, name: str, part: SigmaLoad) -> bool:
    """Whether engine rule ``name`` of ``path`` has the name it gets in any load: its Sigma
    rule's own (:func:`rule_name`), or one made from it (``<own>__…``: a correlation's
    feeders and stream form, :mod:`cep.sigma.chain`)."""
    own = rule_name(path.stem, part.sources[name])
    return name == own or name.startswith(own + "__")


def _unique(name: str, sr: SigmaRule | SigmaCorrelationRule, used: set[str]) -> str:
    if name not in used:
        return name
    suffix = str(sr.id).replace("-", "")[:8] if sr.id is not None else "rule"
    candidate = f"{name}_{suffix}"
    n = 2
    while candidate in used:
        candidate = f"{name}_{suffix}_{n}"
        n += 1
    return candidate


def _at(rule: ast.Rule, sr: SigmaRule | SigmaCorrelationRule) -> ast.Rule:
    """``rule`` with its span at the Sigma rule's first line, for diagnostics."""
    span = _span(sr.source)
    return ast.Rule(**{**{f: getattr(rule, f) for f in rule.__dataclass_fields__},
                       "span": span, "name_span": span})
