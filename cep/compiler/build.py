"""Checked AST → :class:`CompiledRule`: stages become a pattern spec, the spec an NFA
(:func:`cep.nfa.compile.compile_nfa`, Flink's ``NFACompiler``), expressions code objects."""

from __future__ import annotations

from collections.abc import Mapping

from cep.compiler.codegen import (
    StageScope,
    compile_condition,
    compile_emit,
    compile_header_filter,
    compile_key,
    key_names,
)
from cep.compiler.compiled import CompiledRule
from cep.compiler.requirement import start_clauses
from cep.compiler.stream_keys import carried_keys
from cep.compiler.window_spec import members_condition, suppress_spec, window_spec
from cep.lang import ast
from cep.lang.format import format_expr, format_list_decl, rule_texts
from cep.lang.lists import ListData, list_names_used
from cep.nfa.compile import compile_nfa
from cep.nfa.pattern import TRUE, PatternSpec, Quantifier, StageSpec

__all__ = ["build_rule", "pattern_spec"]


def _quantifier(stage: ast.Stage) -> Quantifier:
    mod = stage.quantifier
    inner = (
        "consecutive" if stage.consecutive
        else "allow_combinations" if stage.allow_combinations
        else "relaxed"
    )
    if mod is None:
        return Quantifier("single", 1, 1, inner)
    if mod.kind == "times":
        return Quantifier("times", mod.n or 1, mod.n or 1, inner)
    if mod.kind == "times_range":
        return Quantifier("times_range", mod.n or 0, mod.m, inner)
    if mod.kind == "times_or_more":
        return Quantifier("times_or_more", mod.n or 1, None, inner)
    return Quantifier("one_or_more", 1, None, inner)


def _stage(stage: ast.Stage, scope: StageScope, labels: dict[int, str],
           defer: str | None) -> StageSpec:
    """The spec of one stage; the text of each condition formatted is kept in ``labels``
    by the condition's ``id`` (the rule's text reuses it); ``defer``: see
    :func:`pattern_spec`."""
    group = None
    cond = TRUE
    if stage.group is not None:
        group = tuple(_stage(s, scope, labels, defer) for s in stage.group)
    elif stage.condition is not None:
        label = labels[id(stage.condition)] = format_expr(stage.condition)
        cond = compile_condition(stage.condition, scope, label, defer)
    until = None
    if stage.until is not None:
        until = compile_condition(stage.until, scope, format_expr(stage.until), defer)
    return StageSpec(
        name=stage.name,
        contiguity=stage.contiguity,
        condition=cond,
        quantifier=_quantifier(stage),
        optional=stage.optional,
        greedy=stage.greedy,
        until=until,
        within_ms=stage.within_ms,
        group=group,
    )


def pattern_spec(rule: ast.Rule, lists: Mapping[str, ListData] | None = None,
                 labels: dict[int, str] | None = None, *, defer: bool = False
                 ) -> PatternSpec:
    """The language-independent pattern of a checked rule (``lists``: its file's).  A rule
    with a window (``having`` / ``all of``) has one single-event stage,
    :data:`~cep.lang.ast.WINDOW_STAGE`, taking every event of the rule (``all of``: every
    event some member wants).  ``labels``, when given, receives the text of each stage
    condition by the condition's ``id``.  ``defer``: Python's ``compile()`` of each
    condition waits for its first call (:mod:`cep.compiler.deferred`)."""
    owner = rule.name if defer else None
    if rule.window is not None:
        cond = members_condition(rule.pattern) if rule.window.kind == "all_of" else None
        compiled = TRUE if cond is None else compile_condition(
            cond, StageScope(lists=lists or {}), format_expr(cond), owner)
        return PatternSpec(stages=(StageSpec(ast.WINDOW_STAGE, "begin", compiled),))
    scope = StageScope.from_pattern(rule.pattern, lists)
    return PatternSpec(
        stages=tuple(_stage(s, scope, {} if labels is None else labels, owner)
                     for s in rule.pattern),
        within_ms=rule.within_ms,
        skip=rule.skip.kind,
        skip_stage=rule.skip.stage,
    )


def build_rule(rule: ast.Rule, path: str = "",
               lists: Mapping[str, ListData] | None = None, *,
               prune_cohorts: bool = True, defer: bool = False) -> CompiledRule:
    """Compile one checked rule; ``lists`` are the loaded lists and tables of its file
    (:func:`cep.lang.lists.load_lists`).  Raises :class:`cep.nfa.compile.PatternError` or
    :class:`cep.compiler.codegen.CompileError` only for rules the checker would reject.

    ``prune_cohorts``: let the matching step merge a cohort's partial matches where that
    cannot change an alert (:attr:`cep.nfa.model.NFA.cohort_pruning`; never for a rule with
    ``on timeout emit``, whose timed-out partial matches are all reported); ``False`` runs
    Flink's algorithm unchanged (differential tests).

    ``defer`` (for a checked rule): the generation of the code of the stage conditions, the
    header filter and the emits, and Python's ``compile()`` of it, wait for each function's
    first use (:mod:`cep.compiler.deferred`): a rule the rule index never offers an event
    costs no code generation, one that never matches no emit.  Everything else (the
    automaton, the expression trees the index and the gates read, the rule's text and
    version) is built now, by the same code, and the errors above that the checker does not
    already report are still raised now; only the generator or Python failing on a
    deferred function (an expression the checker rejects; nesting too deep for Python:
    ``defer=False`` raises it as a ``CompileError``) would show at its first use, where it
    is logged and the function disabled (a condition never holds, an emit gives no
    fields)."""
    lists = lists or {}
    scope = StageScope.from_pattern(rule.pattern, lists)
    match_emit, timeout_emit = rule.match_emit, rule.timeout_emit
    labels: dict[int, str] = {}
    nfa = compile_nfa(pattern_spec(rule, lists, labels, defer=defer),
                      prune_cohorts=prune_cohorts and timeout_emit is None)
    clauses = start_clauses(nfa, timeout_emit is not None)
    owner = rule.name if defer else None
    header = (compile_header_filter(rule.where, lists, owner)
              if rule.where is not None else None)
    used = sorted(list_names_used(rule, lists)) if lists else []  # (none declared: none used)
    key = compile_key(rule.key_by)
    text, version = rule_texts(rule, labels)
    return CompiledRule(
        name=rule.name,
        version=version,
        severity=rule.severity,
        sources=frozenset(rule.sources) if rule.sources else None,
        header_filter=header.fn if header is not None else None,
        key_fn=key.fn,
        key_names=key_names(rule.key_by),
        nfa=nfa,
        emit_fn=compile_emit(match_emit.fields, scope, owner).fn if match_emit else None,
        sink=match_emit.sink if match_emit else "alerts",
        stream=match_emit.stream if match_emit else False,
        carried=carried_keys(rule),
        timeout_emit_fn=(compile_emit(timeout_emit.fields, scope, owner).fn
                         if timeout_emit else None),
        timeout_sink=timeout_emit.sink if timeout_emit else "alerts",
        file=path,
        line=rule.span.line,
        description=rule.description,
        tags=rule.tags,
        references=rule.references,
        author=rule.author,
        text="".join(format_list_decl(lists[n].decl) for n in used) + text,
        lists=tuple((n, lists[n]) for n in used),
        key_code=key,
        header_code=header,
        window=window_spec(rule),
        suppress=suppress_spec(rule),
        start_clauses=clauses,
    )
