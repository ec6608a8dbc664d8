"""Checked AST → :class:`CompiledRule`: stages become a pattern spec, the spec an NFA
(:func:`cep.nfa.compile.compile_nfa`, Flink's ``NFACompiler``), expressions code objects."""

from __future__ import annotations

from cep.compiler.codegen import (
    StageScope,
    compile_condition,
    compile_emit,
    compile_header_filter,
    compile_key,
    key_names,
)
from cep.compiler.compiled import CompiledRule
from cep.lang import ast
from cep.lang.format import format_expr, format_rule, text_version
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


def _stage(stage: ast.Stage, scope: StageScope) -> StageSpec:
    group = None
    cond = TRUE
    if stage.group is not None:
        group = tuple(_stage(s, scope) for s in stage.group)
    elif stage.condition is not None:
        cond = compile_condition(stage.condition, scope, format_expr(stage.condition))
    until = None
    if stage.until is not None:
        until = compile_condition(stage.until, scope, format_expr(stage.until))
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


def pattern_spec(rule: ast.Rule) -> PatternSpec:
    """The language-independent pattern of a checked rule."""
    scope = StageScope.from_pattern(rule.pattern)
    return PatternSpec(
        stages=tuple(_stage(s, scope) for s in rule.pattern),
        within_ms=rule.within_ms,
        skip=rule.skip.kind,
        skip_stage=rule.skip.stage,
    )


def build_rule(rule: ast.Rule, path: str = "") -> CompiledRule:
    """Compile one checked rule.  Raises :class:`cep.nfa.compile.PatternError` or
    :class:`cep.compiler.codegen.CompileError` only for rules the checker would reject."""
    scope = StageScope.from_pattern(rule.pattern)
    nfa = compile_nfa(pattern_spec(rule))
    match_emit, timeout_emit = rule.match_emit, rule.timeout_emit
    header = compile_header_filter(rule.where) if rule.where is not None else None
    key = compile_key(rule.key_by)
    text = format_rule(rule)
    return CompiledRule(
        name=rule.name,
        version=text_version(text),
        severity=rule.severity,
        sources=frozenset(rule.sources) if rule.sources else None,
        header_filter=header.fn if header is not None else None,
        key_fn=key.fn,
        key_names=key_names(rule.key_by),
        nfa=nfa,
        emit_fn=compile_emit(match_emit.fields, scope).fn if match_emit else None,
        sink=match_emit.sink if match_emit else "alerts",
        timeout_emit_fn=compile_emit(timeout_emit.fields, scope).fn if timeout_emit else None,
        timeout_sink=timeout_emit.sink if timeout_emit else "alerts",
        file=path,
        line=rule.span.line,
        description=rule.description,
        tags=rule.tags,
        text=text,
        key_code=key,
        header_code=header,
    )
