"""``cep explain --format dot|png|svg``: the stage diagram (one node per stage, the
default), the DOT text of a compiled NFA (``--states``), Graphviz rendering, and the error
when Graphviz is missing."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cep.app.rules import load_rule_set
from cep.compiler.dot import dot_text

ROOT = Path(__file__).resolve().parents[2]
OTP = "tests/ruletest/suites/passing/otp.cep"
BRUTE = "tests/ruletest/suites/passing/login_brute_force.cep"


def cep(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "cep.cli", *args], capture_output=True,
                          cwd=ROOT, timeout=120, env=env)


def test_dot_has_every_state_and_transition_with_its_action_and_condition() -> None:
    rs = load_rule_set([str(ROOT / OTP)])
    (rule,) = rs.rules
    dot = dot_text([rule])
    nodes = re.findall(r'^    r0_(\d+) \[label="([^"]*)", shape=(\w+)\];$', dot, re.M)
    assert [(int(i), label, shape) for i, label, shape in nodes] == [
        (st.index, st.name, {"final": "doublecircle"}.get(k, "circle"))
        for st in rule.nfa.states for k in [("normal", "final", "stop", "pending")[st.kind]]]
    edges = re.findall(r'^    r0_(\d+) -> r0_(\d+) \[label="(\w+)(?:\\n([^"]*(?:\\"[^"]*)*))?", '
                       r'style=(\w+)', dot, re.M)
    expected = [(st.index, t.target.index, ("take", "ignore", "proceed")[t.action])
                for st in rule.nfa.states for t in st.transitions]
    assert [(int(a), int(b), act) for a, b, act, _, _ in edges] == expected
    assert '[label="take\\naction == \\"otp_request\\"", style=solid' in dot
    assert '[label="ignore\\nnot (action == \\"otp_verify\\")", style=dashed' in dot
    assert f"r0_start -> r0_{rule.nfa.start.index};" in dot
    assert "window: 60000 ms" in dot


def test_cli_dot_covers_every_rule_and_stdout_or_file(tmp_path: Path) -> None:
    res = cep("explain", "tests/ruletest/suites/passing", "--format", "dot")
    assert res.returncode == 0, res.stderr
    text = res.stdout.decode()
    assert text.startswith("digraph cep {") and text.rstrip().endswith("}")
    assert text.count("subgraph cluster_") == 2
    loop = tmp_path / "loop.cep"
    loop.write_text('rule loop\n  pattern\n    begin a where x == 1 one or more\n'
                    '    followed by b where x == 2\n  within 1m\nend\n')
    text = cep("explain", str(loop), "--format", "dot", "--states").stdout.decode()
    assert 'label="proceed' in text and "style=dotted" in text  # leaving the loop
    out = tmp_path / "nfa.dot"
    res = cep("explain", BRUTE, "--format", "dot", "-o", str(out))
    assert res.returncode == 0 and res.stdout == b""
    assert out.read_text().count("subgraph cluster_") == 1
    res = cep("explain", BRUTE, "--format", "jpeg", env={**os.environ, "COLUMNS": "200"})
    assert res.returncode == 2 and b"'jpeg' is not one of" in res.stderr


@pytest.mark.parametrize("fmt", ["png", "svg"])
def test_png_or_svg_without_graphviz_exits_2_and_says_how_to_install(
        tmp_path: Path, fmt: str) -> None:
    env = dict(os.environ, PATH=str(Path(sys.executable).parent))  # no `dot` there
    assert shutil.which("dot", path=env["PATH"]) is None
    out = tmp_path / f"x.{fmt}"
    res = cep("explain", OTP, "--format", fmt, "-o", str(out), env=env)
    assert res.returncode == 2
    assert b"Graphviz's `dot` program was not found" in res.stderr
    assert b"apt-get install graphviz" in res.stderr
    assert not out.exists()


LONG = """rule many_failures
  severity high
  where type == "login"
  key by user
  pattern
    begin first where not ok and (country != "NL" or device.trusted == false)
    followed by more where not ok times 9 or more greedy
    not followed by reset where action == "password_reset"
    followed by good where ok
  within 10m
end
"""


def test_stage_diagram_is_one_node_per_stage_with_a_legend(tmp_path: Path) -> None:
    rules = tmp_path / "long.cep"
    rules.write_text(LONG)
    res = cep("explain", str(rules), "--format", "dot")
    assert res.returncode == 0, res.stderr
    dot = res.stdout.decode()
    nodes = re.findall(r'^    (r0_s\d+) \[label="([^"]*)", shape=(\w+)', dot, re.M)
    assert [(label, shape) for _, label, shape in nodes] == [
        ("first", "box"), ("more\\ntimes 9 or more\\ngreedy", "box"),
        ("reset", "octagon"), ("good", "box")]
    edges = re.findall(r"^    r0_\w+ -> r0_\w+", dot, re.M)
    assert len(edges) == 6  # into 4 stages (reset: a guard after more), 1 loop, match
    assert 'r0_s2 -> r0_s2 [label="times 9 or more", style=dotted]' in dot
    assert 'r0_s2 -> r0_s3 [label="not followed by\\naction == \\"password_reset\\""' in dot
    assert 'r0_s2 -> r0_s4 [label="followed by\\nok"]' in dot
    # the long condition is abbreviated on its edge and written out in the legend
    assert 'r0_start -> r0_s1 [label="begin\\n[c1]"]' in dot
    assert ('[c1] not ok and (country != \\"NL\\" or device.trusted == false)\\l'
            in dot)
    assert "key: user; within 10m; after match: no skip; where type == \\\"login\\\"" in dot
    # --states: the compiled NFA, the loop unrolled into states
    states = cep("explain", str(rules), "--format", "dot", "--states").stdout.decode()
    assert len(re.findall(r"^    r0_\d+ \[label=", states, re.M)) > 9
    assert len(re.findall(r"^    r0_\d+ -> ", states, re.M)) > 20


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")
def test_png_with_graphviz(tmp_path: Path) -> None:
    out = tmp_path / "nfa.png"
    res = cep("explain", BRUTE, "--format", "png", "-o", str(out))
    assert res.returncode == 0, res.stderr
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
    svg = tmp_path / "nfa.svg"
    res = cep("explain", BRUTE, "--format", "svg", "-o", str(svg))
    assert res.returncode == 0, res.stderr
    assert b"<svg" in svg.read_bytes()


GROUP = """rule grp
  key by user
  pattern
    begin a where x == 1
    followed by g (
      begin b where x == 2
      next c where x == 3 optional
    ) times 2 or more
    followed by e where x == 4 within 30s
  within 5m
end
"""


def test_stage_diagram_groups_and_optional_stages(tmp_path: Path) -> None:
    rules = tmp_path / "grp.cep"
    rules.write_text(GROUP)
    res = cep("explain", str(rules), "--format", "dot")
    assert res.returncode == 0, res.stderr
    dot = res.stdout.decode()
    body = dot.split("subgraph cluster_r0_s2 {")[1].split("\n    }")[0]
    # the group's cluster holds its entry point and stages b and c, and no outside node
    assert 'label="g times 2 or more"' in body
    assert re.findall(r"^      (r0_\w+) \[", body, re.M) == ["r0_s3", "r0_s4", "r0_s5"]
    assert "r0_s1" not in body
    assert 'r0_s1 -> r0_s3 [label="followed by"]' in dot
    assert 'r0_s5 -> r0_s3 [label="again", style=dotted]' in dot
    # after the optional c, e is reached from c (labelled) and from b (dotted)
    assert 'r0_s5 -> r0_s6 [label="followed by\\nx == 4"]' in dot
    assert "r0_s4 -> r0_s6 [style=dotted, arrowhead=empty]" in dot
    assert 'r0_s6 [label="e\\nwithin 30s"' in dot
