"""``cep test`` end to end: a passing suite, a failing one (the diff text), JUnit output, and
the format's errors, each with its exit status."""

from __future__ import annotations

import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from cep.ruletest import run_suite
from cep.ruletest.loader import load_test_file
from cep.ruletest.model import TestFileError

ROOT = Path(__file__).resolve().parents[2]
SUITES = Path(__file__).resolve().parent / "suites"
PASSING = "tests/ruletest/suites/passing"
FAILING = "tests/ruletest/suites/failing"


def cep(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cep.cli", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)


def test_passing_suite_exits_0_with_one_line_per_test() -> None:
    res = cep("test", PASSING)
    assert res.returncode == 0, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    assert [ln.split()[0] for ln in lines[:-2]] == ["ok"] * 10
    first = f"ok    {PASSING}/login_brute_force.test.yaml:4  five failures raise one alert"
    assert lines[0] == first
    assert lines[-1].startswith("10 passed, 0 failed in ")
    assert "warning" not in res.stderr


FAILING_OUT = f"""\
ok    {FAILING}/wrong.test.yaml:3  right
FAIL  {FAILING}/wrong.test.yaml:10  wrong count
      expected 1 alert(s)/timeout(s), emitted 1; 0 late, 0 dead letter(s)
      - missing alert (expected at line 18): {{"rule":"login_brute_force","key":{{"user":"alice"}},"data":{{"attempts":6,"last_ip":"10.0.0.3"}}}}
          nearest emitted one differs in: data.attempts: expected 6, got 5
      + unexpected alert: {{"rule":"login_brute_force","key":{{"user":"alice"}},"data":{{"user":"alice","attempts":5,"first_ip":"10.0.0.1","last_ip":"10.0.0.3"}},"match":{{"fail":[0],"again":[1,2,3,4]}}}}
FAIL  {FAILING}/wrong.test.yaml:22  late event not expected
      expected 1 alert(s)/timeout(s), emitted 0; 1 late, 0 dead letter(s)
      - missing alert (expected at line 31): {{"rule":"login_brute_force","key":{{"user":"bob"}}}}
      + unexpected late event: input 1, watermark 39999, event {{"ts":5000,"user":"bob","action":"login","outcome":"failure"}}
FAIL  {FAILING}/wrong.test.yaml:34  timeout not listed
      expected 0 alert(s)/timeout(s), emitted 1; 0 late, 0 dead letter(s)
      + unexpected timeout: {{"rule":"otp_not_verified","key":{{"user":"frank"}},"data":{{"user":"frank","asked_at":0}},"match":{{"ask":[0]}},"timed_out":true}}
"""  # noqa: E501


def test_failing_suite_exits_1_with_a_readable_diff(tmp_path: Path) -> None:
    junit = tmp_path / "out.xml"
    res = cep("test", FAILING, "--junit", str(junit))
    assert res.returncode == 1
    body, summary = res.stdout.rsplit("\n\n", 1)
    assert body + "\n" == FAILING_OUT
    assert summary.startswith("1 passed, 3 failed in ")
    assert res.stderr == f"warning: no test covers {FAILING}/uncovered.cep\n"

    root = ET.parse(junit).getroot()
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("4", "3", "0")
    (suite,) = root.findall("testsuite")
    assert suite.get("name") == f"{FAILING}/wrong.test.yaml"
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [
        "right", "wrong count", "late event not expected", "timeout not listed"]
    assert [c.get("line") for c in cases] == ["3", "10", "22", "34"]
    assert cases[0].find("failure") is None
    failure = cases[1].find("failure")
    assert failure is not None
    assert "data.attempts: expected 6, got 5" in (failure.text or "")
    assert all(float(c.get("time") or "x") >= 0 for c in cases)


def test_junit_of_a_passing_suite(tmp_path: Path) -> None:
    junit = tmp_path / "j.xml"
    res = run_suite([str(SUITES / "passing")], lambda s: None, lambda s: None, str(junit))
    assert res.exit_code == 0 and res.passed == 10
    root = ET.parse(junit).getroot()
    assert root.get("tests") == "10" and root.get("failures") == "0"
    assert sorted(s.get("name", "").rsplit("/", 1)[1] for s in root.findall("testsuite")) == [
        "login_brute_force.test.yaml", "otp.test.yaml"]
    assert not root.findall(".//failure") and not root.findall(".//error")


def _write(tmp_path: Path, test_yaml: str, rules: str | None = None) -> Path:
    (tmp_path / "r.cep").write_text(rules or (SUITES / "passing" / "otp.cep").read_text())
    p = tmp_path / "r.test.yaml"
    p.write_text(test_yaml)
    return p


@pytest.mark.parametrize(("text", "line", "message"), [
    ("tests:\n  - name: a\n    inputs: []\n", 3, "a test: unknown key 'inputs'"),
    ("tests:\n  - name: a\n    input: [{ts: 1}]\n    arrival: [0, -1]\n", 4,
     "input indices start at 0, got -1"),
    ("tests:\n  - name: a\n    input: [{ts: 1}]\n    max_out_of_orderness: soon\n", 4,
     "'max_out_of_orderness': not a duration"),
    ("tests:\n  - name: a\n    input: [{ts: 1}]\n  - name: a\n    input: []\n", 4,
     "two tests are named 'a' (the other is on line 2)"),
    ("tests:\n  - name: a\n    input: [{ts: 1}\n", 4, "invalid YAML"),
    ("rule_files: [nope.cep]\ntests: []\n", 1, "rule file not found: nope.cep"),
    ("tests:\n  - name: a\n    input: [{ts: 1}]\n    expect: [{rule: x, match: {a: b}}]\n", 4,
     "'match' maps each stage to a list of input indices"),
])
def test_format_errors_name_the_line(tmp_path: Path, text: str, line: int,
                                     message: str) -> None:
    p = _write(tmp_path, text)
    with pytest.raises(TestFileError) as exc:
        load_test_file(p)
    assert exc.value.line == line
    assert message in exc.value.message
    assert re.match(rf"{re.escape(str(p))}:{line}(:\d+)?: error: ", str(exc.value))


def test_a_misspelt_key_is_reported_at_its_column_with_did_you_mean(tmp_path: Path) -> None:
    p = _write(tmp_path, "tests:\n  - name: a\n    inputs: []\n")
    with pytest.raises(TestFileError) as exc:
        load_test_file(p)
    assert (exc.value.line, exc.value.col, exc.value.hint) == (3, 5, "did you mean `input`?")
    assert str(exc.value).startswith(f"{p}:3:5: error: a test: unknown key 'inputs'")


def test_a_bad_test_file_or_bad_rules_exit_2(tmp_path: Path) -> None:
    p = _write(tmp_path, "tests:\n  - name: a\n    input: [{ts: 1}]\n    arrival: [0, 3]\n")
    res = cep("test", str(p))
    assert res.returncode == 2
    assert "arrival names input 3, but there are only 1 inputs" in res.stdout

    p = _write(tmp_path, "tests:\n  - name: a\n    input: [{ts: 1}]\n",
               rules="rule r\n  pattern\n    begin a where x = 1\nend\n")
    res = cep("test", str(p))
    assert res.returncode == 2
    assert f"{tmp_path}/r.cep:3:" in res.stderr  # the rule error, as `cep check` shows it
    assert "tests not run" in res.stdout

    assert cep("test", str(tmp_path / "missing")).returncode == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    res = cep("test", str(empty))
    assert res.returncode == 2 and "no test files" in res.stderr


def test_input_file_and_iso_times(tmp_path: Path) -> None:
    (tmp_path / "events.jsonl").write_text(
        '{"at": "2024-01-01T00:00:00Z", "user": "u", "action": "otp_request"}\n'
        '\n'
        '{"at": "2024-01-01T00:00:30Z", "user": "u", "action": "otp_verify"}\n'
        '{"at": "yesterday", "user": "u", "action": "otp_verify"}\n')
    p = _write(tmp_path, """\
event_time: at
time_unit: iso
tests:
  - name: from a file
    input_file: events.jsonl
    expect:
      - {rule: otp_not_verified, key: {user: u}, match: {ask: [0], verify: [1]}}
    expect_dead_letters: [{input: 2, reason: bad_event_time, line: 4}]
""")
    res = run_suite([str(p)], lambda s: None, lambda s: None)
    assert (res.passed, res.failed, res.exit_code) == (1, 0, 0)


def test_loose_expectations_do_not_steal_the_record_a_strict_one_needs(tmp_path: Path
                                                                       ) -> None:
    p = _write(tmp_path, """\
tests:
  - name: two alerts, a loose and a strict expectation
    input:
      - {ts: 0, user: a, action: otp_request}
      - {ts: 1, user: b, action: otp_request}
      - {ts: 2, user: a, action: otp_verify}
      - {ts: 3, user: b, action: otp_verify}
    expect:
      - {rule: otp_not_verified}
      - {rule: otp_not_verified, key: {user: a}, match: {ask: [0], verify: [2]}}
""")
    out: list[str] = []
    res = run_suite([str(p)], out.append, out.append)
    assert res.exit_code == 0, "\n".join(out)
