"""``cep test``: find test files, load their rules, run every test, report, set the status.

Exit status: 0 when every test passes; 1 when a test fails; 2 when the run itself is wrong —
a path that does not exist, no test file found, a test file that does not load, or rule
files with errors (their diagnostics are printed as ``cep check`` prints them).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cep.app.rules import RuleSet, load_rule_set, render_diagnostics
from cep.ruletest.junit import FileResult, write_junit
from cep.ruletest.loader import load_test_file
from cep.ruletest.model import TestFileError
from cep.ruletest.report import diff_lines, summary_line, test_line
from cep.ruletest.runner import run_test

__all__ = ["SuiteResult", "find_test_files", "run_suite", "EXIT_PASS", "EXIT_FAIL",
           "EXIT_USAGE"]

EXIT_PASS, EXIT_FAIL, EXIT_USAGE = 0, 1, 2

Echo = Callable[[str], None]


@dataclass
class SuiteResult:
    """Everything a ``cep test`` run found; ``exit_code`` as described in the module."""

    files: list[FileResult] = field(default_factory=list)
    uncovered: list[str] = field(default_factory=list)
    passed: int = 0
    failed: int = 0
    errors: int = 0
    usage_error: str | None = None
    elapsed_s: float = 0.0

    @property
    def exit_code(self) -> int:
        if self.usage_error is not None or any(f.error for f in self.files):
            return EXIT_USAGE
        return EXIT_FAIL if self.failed or self.errors else EXIT_PASS


def find_test_files(paths: list[str]) -> tuple[list[Path], list[Path]]:
    """``(test files, rule files)`` under ``paths``: ``*.test.yaml`` and ``*.cep``, searched
    recursively in directories, sorted.  Raises ``FileNotFoundError`` for a missing path and
    ``ValueError`` for a file that is neither."""
    tests: list[Path] = []
    rules: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            tests += sorted(p.rglob("*.test.yaml"))
            rules += sorted(p.rglob("*.cep"))
        elif p.is_file():
            if p.name.endswith(".test.yaml"):
                tests.append(p)
            elif p.suffix == ".cep":
                rules.append(p)
            else:
                raise ValueError(f"{raw}: not a test file (*.test.yaml), rule file or directory")
        else:
            raise FileNotFoundError(f"no such file or directory: {raw}")
    return _unique(tests), _unique(rules)


def _unique(paths: list[Path]) -> list[Path]:
    seen: set[Path] = set()
    out = []
    for p in paths:
        r = p.resolve()
        if r not in seen:
            seen.add(r)
            out.append(p)
    return out


def run_suite(paths: list[str], echo: Echo, echo_err: Echo, junit: str | None = None
              ) -> SuiteResult:
    """Run every test under ``paths``; print one line per test (with a diff under each
    failure) and a summary through ``echo``, warnings and rule errors through ``echo_err``;
    write JUnit XML to ``junit`` when given."""
    started = time.perf_counter()
    res = SuiteResult()
    try:
        test_paths, rule_paths = find_test_files(paths)
    except (FileNotFoundError, ValueError) as exc:
        res.usage_error = str(exc)
        echo_err(f"cep: error: {exc}")
        return res
    if not test_paths:
        res.usage_error = "no test files (*.test.yaml) under " + ", ".join(paths)
        echo_err(f"cep: error: {res.usage_error}")
        return res
    cache: dict[tuple[str, ...], RuleSet] = {}
    covered: set[Path] = set()
    for tp in test_paths:
        fr = _run_file(str(tp), cache, covered, echo, echo_err)
        res.files.append(fr)
        for o in fr.outcomes:
            if o.passed:
                res.passed += 1
            elif o.error:
                res.errors += 1
            else:
                res.failed += 1
    res.uncovered = [str(p) for p in rule_paths if p.resolve() not in covered]
    res.elapsed_s = time.perf_counter() - started
    echo("")
    bad_files = sum(1 for f in res.files if f.error)
    echo(summary_line(res.passed, res.failed, res.errors + bad_files, res.elapsed_s))
    for path in res.uncovered:
        echo_err(f"warning: no test covers {path}")
    if junit:
        try:
            write_junit(res.files, junit)
        except OSError as exc:
            res.usage_error = f"cannot write {junit}: {exc}"
            echo_err(f"cep: error: {res.usage_error}")
    return res


def _run_file(path: str, cache: dict[tuple[str, ...], RuleSet], covered: set[Path],
              echo: Echo, echo_err: Echo) -> FileResult:
    fr = FileResult(path)
    try:
        tf = load_test_file(path)
    except TestFileError as exc:
        fr.error = str(exc)
        echo(f"ERROR {path}")
        echo(f"      {exc}")
        return fr
    key = tuple(tf.rule_files)
    rs = cache.get(key)
    if rs is None:
        rs = cache[key] = load_rule_set(list(key))
        if rs.errors:
            echo_err(render_diagnostics(RuleSet(diagnostics=rs.errors, files=rs.files)))
    for rf in rs.files:
        covered.add(Path(rf.path).resolve())
    if rs.errors:
        fr.error = (f"{path}: error: {len(rs.errors)} error(s) in its rule files "
                    f"({', '.join(tf.rule_files)}); tests not run")
        echo(f"ERROR {path}")
        echo(f"      {fr.error}")
        return fr
    for test in tf.tests:
        try:
            outcome = run_test(test, rs.rules)
        except TestFileError as exc:
            fr.error = str(exc)
            echo(f"ERROR {path}")
            echo(f"      {exc}")
            return fr
        fr.outcomes.append(outcome)
        echo(test_line(outcome))
        for line in diff_lines(outcome):
            echo(line)
    return fr
