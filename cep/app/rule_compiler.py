"""Compiling rule files for a reload in a child process that can be killed.

A reload must not wedge the reload worker: a rule whose compilation never ends (a huge
``times``, say) would hold a thread for good, and a thread cannot be stopped.  So
:func:`compile_with_deadline` first has a child process (``python -m cep.app.rule_compiler``)
load, check and compile every rule file; a child that is not done within the deadline is
killed and the reload fails with one diagnostic.  The child sends back the parsed files and
the diagnostics (pickled, over its standard output: our own code on our own pipe), never the
compiled rules (generated code does not travel); when there is no error, the parent compiles
the very syntax trees the child compiled in time — the same work, so it ends too — and the
files are read once, by the child.  A rule whose version, file and line are those of a running
rule is not compiled again: the running one is reused, so a reload of unchanged files costs
the process little besides the child.

Cost: starting the child, about 0.2 s per reload (off the pipeline thread; the pipeline goes
on meanwhile).
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import orjson

from cep.app.rules import RuleSet, load_rule_set
from cep.compiler.build import build_rule
from cep.compiler.compiled import CompiledRule
from cep.diagnostics import Diagnostic
from cep.lang.ast import NOWHERE, Rule
from cep.lang.format import format_rule, rule_version
from cep.lang.lists import ListData, load_lists

__all__ = ["DEFAULT_DEADLINE_S", "compile_with_deadline", "main"]

DEFAULT_DEADLINE_S = 20.0
"""How long a reload's compilation may take, in seconds."""

_ROOT = str(Path(__file__).resolve().parents[2])  # the directory holding the cep package


def compile_with_deadline(paths: list[str], deadline_s: float = DEFAULT_DEADLINE_S,
                          running: Mapping[str, CompiledRule] | None = None,
                          sigma_pipelines: tuple[str, ...] = ()) -> RuleSet:
    """:func:`~cep.app.rules.load_rule_set` of ``paths``, with the check and the compilation
    first done by a child process given ``deadline_s`` seconds.  A child that takes longer is
    killed; the result then holds one error diagnostic (so does a child that fails).
    ``sigma_pipelines``: the pySigma pipelines of the Sigma files among them.
    ``running`` (name → rule) are compiled rules that may be reused as they are.  Never
    raises for bad rules."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (_ROOT, os.environ.get("PYTHONPATH", "")) if p)}
    try:
        done = subprocess.run([sys.executable, "-m", "cep.app.rule_compiler"],
                              input=orjson.dumps({"paths": paths,
                                                  "sigma_pipelines": sigma_pipelines}),
                              capture_output=True,
                              timeout=deadline_s, env=env, check=False)
    except subprocess.TimeoutExpired:  # the child is killed by now
        return _failed(paths, f"compiling the rules took longer than {deadline_s:g} s "
                              "(stopped); the running rules stay in force")
    if done.returncode != 0:
        last = (done.stderr.decode(errors="replace").strip().splitlines() or ["no output"])[-1]
        return _failed(paths, f"compiling the rules failed in the compiler process "
                              f"(status {done.returncode}): {last[:300]}")
    rs: RuleSet = pickle.loads(done.stdout)
    if rs.ok:
        rules = []
        for rf in rs.files:
            lists, errors = load_lists(rf)  # read again: the child's copy does not travel
            if errors:  # changed since the child read it
                return RuleSet(diagnostics=errors, files=rs.files)
            rules += [_reuse_or_build(rule, rf.path, running or {}, lists) for rule in rf.rules]
        rs.rules = rules
    return rs


def _reuse_or_build(rule: Rule, path: str, running: Mapping[str, CompiledRule],
                    lists: Mapping[str, ListData]) -> CompiledRule:
    old = running.get(rule.name)
    if (old is not None and old.file == path and old.line == rule.span.line
            and old.version == rule_version(rule) and old.text == format_rule(rule)):
        return old  # (a rule that uses lists never: its text holds their declarations)
    return build_rule(rule, path, lists, defer=True)  # (the child compiled it in full)


def _failed(paths: list[str], message: str) -> RuleSet:
    return RuleSet(diagnostics=[Diagnostic(", ".join(paths), NOWHERE, message)])


def main() -> None:
    """The child: ``{"paths": [...], "sigma_pipelines": [...]}`` (JSON) on standard input;
    the parsed files and the
    diagnostics of :func:`~cep.app.rules.load_rule_set` (a pickled :class:`RuleSet` without
    compiled rules) on standard output."""
    asked = orjson.loads(sys.stdin.buffer.read())
    rs = load_rule_set(asked["paths"], asked.get("sigma_pipelines", ()))
    sys.stdout.buffer.write(pickle.dumps(RuleSet(diagnostics=rs.diagnostics, files=rs.files),
                                         protocol=pickle.HIGHEST_PROTOCOL))


if __name__ == "__main__":
    main()
