"""JUnit XML for CI systems: one ``<testsuite>`` per test file, one ``<testcase>`` per test.

A failed test carries a ``<failure>`` with the same diff ``cep test`` prints; a test file
that cannot be loaded (bad YAML, rule errors) is one ``<testcase>`` with an ``<error>``.
Times are in seconds, as the format wants.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from cep.ruletest.report import diff_lines
from cep.ruletest.runner import Outcome

__all__ = ["FileResult", "write_junit", "junit_tree"]


@dataclass
class FileResult:
    """The outcomes of one test file, or the error that stopped it from running."""

    path: str
    outcomes: list[Outcome] = field(default_factory=list)
    error: str | None = None


def _classname(path: str) -> str:
    name = Path(path).as_posix().removesuffix(".test.yaml")
    return name.replace("/", ".").lstrip(".")


def junit_tree(results: list[FileResult]) -> ET.ElementTree:
    """Build the document (``<testsuites>`` root with totals)."""
    root = ET.Element("testsuites", name="cep test")
    totals = {"tests": 0, "failures": 0, "errors": 0}
    total_time = 0.0
    for fr in results:
        suite = ET.SubElement(root, "testsuite", name=fr.path)
        counts = {"tests": 0, "failures": 0, "errors": 0}
        suite_time = 0.0
        if fr.error is not None:
            case = ET.SubElement(suite, "testcase", classname=_classname(fr.path),
                                 name="(load test file)", file=fr.path, time="0")
            err = ET.SubElement(case, "error", message=fr.error.splitlines()[0],
                                type="TestFileError")
            err.text = fr.error
            counts["tests"] += 1
            counts["errors"] += 1
        for o in fr.outcomes:
            t = o.test
            case = ET.SubElement(suite, "testcase", classname=_classname(fr.path), name=t.name,
                                 file=t.file, line=str(t.line), time=f"{o.elapsed_s:.6f}")
            counts["tests"] += 1
            suite_time += o.elapsed_s
            if o.error is not None:
                counts["errors"] += 1
                err = ET.SubElement(case, "error", message=o.error, type="InputError")
                err.text = o.error
            elif not o.passed:
                counts["failures"] += 1
                text = "\n".join(diff_lines(o, indent=""))
                fail = ET.SubElement(case, "failure", type="AssertionError",
                                     message=f"{len(o.problems)} difference(s) between "
                                             "expected and actual output")
                fail.text = text
        for k, v in counts.items():
            suite.set(k, str(v))
            totals[k] += v
        suite.set("time", f"{suite_time:.6f}")
        total_time += suite_time
    for k, v in totals.items():
        root.set(k, str(v))
    root.set("time", f"{total_time:.6f}")
    ET.indent(root)
    return ET.ElementTree(root)


def write_junit(results: list[FileResult], path: str) -> None:
    """Write the JUnit XML document to ``path`` (UTF-8).  Raises ``OSError``."""
    junit_tree(results).write(path, encoding="utf-8", xml_declaration=True)
