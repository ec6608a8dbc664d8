"""Read ``*.test.yaml`` files into :mod:`cep.ruletest.model` objects, with line numbers.

The format (every key but ``tests`` is optional; ``rule_files`` defaults to the ``.cep`` file
with the test file's stem)::

    rule_files: [login_brute_force.cep]     # relative to the test file; files or directories
    source: input                            # defaults for every test …
    event_time: ts
    time_unit: ms                            # ms | s | us | ns | iso
    time_format: '%Y%m%d%H%M'                # or: strptime directives / a named format
    max_out_of_orderness: 0s
    tests:
      - name: five failures raise one alert
        input:                               # events in arrival order (or input_file: x.jsonl,
                                             # gzip/bz2/zstd too; columns: [a, b] for a
                                             # headerless CSV)
          - {ts: 0, user: alice, outcome: failure}
          - '{"ts": 5, broken'                # a string is a raw input line
        arrival: [1, 0, {watermark: 60000}]  # optional: indices into input, watermark steps
        max_out_of_orderness: 5s             # … each can be overridden per test
        end_of_input: true                   # false: no final +∞ watermark
        expect:
          - {rule: r, key: {user: alice}, data: {attempts: 5}, match: {fail: [0, 1]}}
        expect_timeouts: [{rule: r, key: {user: bob}}]
        expect_late: [2]                     # input indices or event fields
        expect_dead_letters: [{reason: malformed}]

Errors raise :class:`~cep.ruletest.model.TestFileError` (``file:line: error: message``).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import yaml

from cep.config import parse_duration
from cep.io.codecs import TIME_UNITS, time_spec
from cep.lang.suggest import did_you_mean
from cep.ruletest.model import (
    AlertExpectation,
    InputItem,
    RuleTest,
    SideExpectation,
    Step,
    TestFile,
    TestFileError,
    WatermarkStep,
)

__all__ = ["load_test_file", "jsonable"]

_FILE_KEYS = {"rule_files", "tests", "source", "event_time", "time_unit", "time_format",
              "max_out_of_orderness"}
_TEST_KEYS = {"name", "input", "input_file", "input_format", "columns", "arrival",
              "max_out_of_orderness", "source", "event_time", "time_unit", "time_format",
              "end_of_input", "expect", "expect_timeouts", "expect_late",
              "expect_dead_letters", "description"}
_ALERT_KEYS = {"rule", "key", "data", "meta", "match", "severity", "sink", "timed_out"}


def jsonable(value: Any) -> Any:
    """``value`` with YAML-only types made JSON-like: timestamps and dates become ISO-8601
    strings (YAML reads an unquoted ``2017-03-30T15:54:19`` as a timestamp)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    return value


class _Reader:
    """Walks the YAML node tree, so every value comes with its line."""

    def __init__(self, path: str, loader: yaml.SafeLoader) -> None:
        self.path = path
        self.loader = loader

    def fail(self, node: yaml.Node | None, message: str, hint: str | None = None
             ) -> TestFileError:
        if node is None:
            return TestFileError(self.path, 1, message, hint=hint)
        return TestFileError(self.path, node.start_mark.line + 1, message,
                             node.start_mark.column + 1, hint)

    def value(self, node: yaml.Node) -> Any:
        return jsonable(self.loader.construct_object(node, deep=True))

    def mapping(self, node: yaml.Node, what: str, allowed: set[str]
                ) -> dict[str, yaml.Node]:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, f"{what} must be a mapping")
        out: dict[str, yaml.Node] = {}
        for knode, vnode in node.value:
            key = self.value(knode)
            if not isinstance(key, str):
                raise self.fail(knode, f"{what}: keys must be names, got {key!r}")
            if key not in allowed:
                guess = did_you_mean(key, allowed)
                raise self.fail(knode, f"{what}: unknown key {key!r} (known: "
                                       f"{', '.join(sorted(allowed))})",
                                guess or f"use one of: {', '.join(sorted(allowed))}")
            if key in out:
                raise self.fail(knode, f"{what}: {key!r} given twice")
            out[key] = vnode
        return out

    def sequence(self, node: yaml.Node, what: str) -> list[yaml.Node]:
        if isinstance(node, yaml.ScalarNode) and self.value(node) is None:
            return []
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(node, f"{what} must be a list")
        return list(node.value)

    def string(self, node: yaml.Node, what: str) -> str:
        v = self.value(node)
        if not isinstance(v, str) or not v:
            raise self.fail(node, f"{what} must be a non-empty string, got {v!r}")
        return v

    def duration(self, node: yaml.Node, what: str) -> int:
        try:
            return parse_duration(self.value(node))
        except ValueError as exc:
            raise self.fail(node, f"{what}: {exc}") from None

    def integer(self, node: yaml.Node, what: str) -> int:
        v = self.value(node)
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.fail(node, f"{what} must be an integer, got {v!r}")
        return v


def load_test_file(path: str | Path) -> TestFile:
    """Parse one test file.  Raises :class:`TestFileError` for anything malformed (the first
    problem found, with its line)."""
    p = Path(path)
    spath = str(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TestFileError(spath, 1, f"cannot read the test file: {exc}") from None
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        r = _Reader(spath, loader)
        if root is None:
            raise TestFileError(spath, 1, "the test file is empty")
        top = r.mapping(root, "the test file", _FILE_KEYS)
        if "tests" not in top:
            raise r.fail(root, "the test file has no 'tests' list")
        tf = TestFile(spath, rule_files=_rule_files(r, p, top.get("rule_files")))
        defaults = _Defaults.read(r, top)
        names: dict[str, int] = {}
        for tnode in r.sequence(top["tests"], "'tests'"):
            test = _test(r, p, tnode, defaults)
            if test.name in names:
                raise r.fail(tnode, f"two tests are named {test.name!r} (the other is on "
                                    f"line {names[test.name]})")
            names[test.name] = test.line
            tf.tests.append(test)
        return tf
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise TestFileError(spath, line, f"invalid YAML: {exc.problem or exc}") from None
    finally:
        loader.dispose()


def _rule_files(r: _Reader, path: Path, node: yaml.Node | None) -> list[str]:
    if node is None:
        beside = path.with_name(path.name.removesuffix(".test.yaml") + ".cep")
        if not beside.is_file():
            raise TestFileError(r.path, 1, f"no 'rule_files' and no {beside.name} beside the "
                                           "test file")
        return [str(beside)]
    items = r.sequence(node, "'rule_files'") if isinstance(node, yaml.SequenceNode) else [node]
    out = []
    for item in items:
        name = r.string(item, "a rule file")
        full = path.parent / name
        if not full.exists():
            raise r.fail(item, f"rule file not found: {name} (paths are relative to the "
                               "test file)")
        out.append(str(full))
    if not out:
        raise r.fail(node, "'rule_files' is empty")
    return out


class _Defaults:
    """File-level settings that tests inherit."""

    def __init__(self) -> None:
        self.source = "input"
        self.event_time = "ts"
        self.time_unit = "ms"
        self.time_format: str | None = None
        self.ooo = 0

    @classmethod
    def read(cls, r: _Reader, m: dict[str, yaml.Node]) -> _Defaults:
        d = cls()
        d.apply(r, m)
        return d

    def copy(self) -> _Defaults:
        d = _Defaults()
        d.__dict__.update(self.__dict__)
        return d

    def apply(self, r: _Reader, m: dict[str, yaml.Node]) -> None:
        if "source" in m:
            self.source = r.string(m["source"], "'source'")
        if "event_time" in m:
            self.event_time = r.string(m["event_time"], "'event_time'")
        if "time_unit" in m:
            unit = r.string(m["time_unit"], "'time_unit'")
            if unit not in TIME_UNITS:
                raise r.fail(m["time_unit"], f"unknown time_unit {unit!r}: use one of "
                                             f"{', '.join(TIME_UNITS)}")
            self.time_unit = unit
        if "time_format" in m:
            self.time_format = r.string(m["time_format"], "'time_format'")
            try:
                time_spec("ts", "ms", self.time_format)
            except ValueError as exc:
                raise r.fail(m["time_format"], str(exc)) from None
        if "max_out_of_orderness" in m:
            self.ooo = r.duration(m["max_out_of_orderness"], "'max_out_of_orderness'")


def _test(r: _Reader, path: Path, node: yaml.Node, defaults: _Defaults) -> RuleTest:
    m = r.mapping(node, "a test", _TEST_KEYS)
    if "name" not in m:
        raise r.fail(node, "a test needs a 'name'")
    d = defaults.copy()
    d.apply(r, m)
    test = RuleTest(
        name=str(r.value(m["name"])), file=r.path, line=node.start_mark.line + 1,
        max_out_of_orderness_ms=d.ooo, source=d.source,
        time=time_spec(d.event_time, d.time_unit, d.time_format),
    )
    if ("input" in m) == ("input_file" in m):
        raise r.fail(node, f"test {test.name!r}: give exactly one of 'input' and 'input_file'")
    if "input" in m:
        if "columns" in m:
            raise r.fail(m["columns"], "'columns' is for a CSV input_file")
        for item in r.sequence(m["input"], "'input'"):
            value = r.value(item)
            if not isinstance(value, (dict, str)):
                raise r.fail(item, "an input is an event (a mapping) or a raw line (a string), "
                                   f"got {value!r}")
            test.inputs.append(InputItem(value, item.start_mark.line + 1))
    else:
        name = r.string(m["input_file"], "'input_file'")
        full = path.parent / name
        if not full.is_file():
            raise r.fail(m["input_file"], f"input file not found: {name} (paths are relative "
                                          "to the test file)")
        test.input_file = str(full)
        csv_name = name.endswith((".csv", ".csv.gz", ".csv.bz2", ".csv.zst")) or "columns" in m
        fmt = r.string(m["input_format"], "'input_format'") if "input_format" in m else (
            "csv" if csv_name else "json")
        if fmt not in ("json", "csv"):
            raise r.fail(m["input_format"], f"unknown input_format {fmt!r}: use json or csv")
        test.input_format = fmt
        if "columns" in m:
            test.columns = _columns(r, m["columns"], fmt)
    if "arrival" in m:
        test.arrival = [_step(r, s) for s in r.sequence(m["arrival"], "'arrival'")]
    if "end_of_input" in m:
        v = r.value(m["end_of_input"])
        if not isinstance(v, bool):
            raise r.fail(m["end_of_input"], f"'end_of_input' must be true or false, got {v!r}")
        test.end_of_input = v
    for key, timed_out in (("expect", False), ("expect_timeouts", True)):
        if key in m:
            test.expect += [_alert(r, e, timed_out) for e in r.sequence(m[key], f"'{key}'")]
    if "expect_late" in m:
        test.expect_late = [_side(r, e, "expect_late")
                            for e in r.sequence(m["expect_late"], "'expect_late'")]
    if "expect_dead_letters" in m:
        test.expect_dead_letters = [
            _side(r, e, "expect_dead_letters")
            for e in r.sequence(m["expect_dead_letters"], "'expect_dead_letters'")]
    return test


def _columns(r: _Reader, node: yaml.Node, fmt: str) -> tuple[str, ...]:
    """``columns``: the distinct names of a headerless CSV input file's columns."""
    names = [r.string(n, "a column name") for n in r.sequence(node, "'columns'")]
    if not names or len(set(names)) != len(names):
        raise r.fail(node, "'columns' lists the distinct column names of a headerless CSV")
    if fmt != "csv":
        raise r.fail(node, "'columns' is for a CSV input file (input_format: csv)")
    return tuple(names)


def _step(r: _Reader, node: yaml.Node) -> Step:
    if isinstance(node, yaml.MappingNode):
        m = r.mapping(node, "an arrival step", {"watermark"})
        if "watermark" not in m:
            raise r.fail(node, "an arrival step is an input index or {watermark: TIME_MS}")
        return WatermarkStep(r.integer(m["watermark"], "'watermark'"), node.start_mark.line + 1)
    idx = r.integer(node, "an arrival step (an input index)")
    if idx < 0:
        raise r.fail(node, f"input indices start at 0, got {idx}")
    return idx


def _alert(r: _Reader, node: yaml.Node, timed_out: bool) -> AlertExpectation:
    m = r.mapping(node, "an expected alert", _ALERT_KEYS)
    exp = AlertExpectation(line=node.start_mark.line + 1, timed_out=timed_out,
                           written=r.value(node))
    if "rule" in m:
        exp.rule = r.string(m["rule"], "'rule'")
    for name in ("key", "data", "meta"):
        if name in m:
            v = r.value(m[name])
            if not isinstance(v, dict):
                raise r.fail(m[name], f"'{name}' must be a mapping, got {v!r}")
            setattr(exp, name, v)
    if "severity" in m:
        exp.severity = r.string(m["severity"], "'severity'")
    if "sink" in m:
        exp.sink = r.string(m["sink"], "'sink'")
    if "timed_out" in m:
        v = r.value(m["timed_out"])
        if not isinstance(v, bool):
            raise r.fail(m["timed_out"], f"'timed_out' must be true or false, got {v!r}")
        exp.timed_out = v or timed_out
    if "match" in m:
        match = r.value(m["match"])
        ok = isinstance(match, dict) and all(
            isinstance(v, list) and all(isinstance(i, int) and not isinstance(i, bool)
                                        for i in v) for v in match.values())
        if not ok:
            raise r.fail(m["match"], "'match' maps each stage to a list of input indices, "
                                     "e.g. {fail: [0], again: [1, 2]}")
        exp.match = match
    return exp


def _side(r: _Reader, node: yaml.Node, what: str) -> SideExpectation:
    v = r.value(node)
    line = node.start_mark.line + 1
    if isinstance(v, int) and not isinstance(v, bool):
        return SideExpectation(line, index=v)
    if isinstance(v, dict):
        return SideExpectation(line, fields=v)
    raise r.fail(node, f"an entry of '{what}' is an input index or a mapping of fields, "
                       f"got {v!r}")
