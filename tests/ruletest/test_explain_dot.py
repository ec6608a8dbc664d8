"""``cep explain --format dot|png``: the DOT text of a compiled NFA, Graphviz rendering, and
the error when Graphviz is missing."""

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
    text = cep("explain", str(loop), "--format", "dot").stdout.decode()
    assert 'label="proceed' in text and "style=dotted" in text  # leaving the loop
    out = tmp_path / "nfa.dot"
    res = cep("explain", BRUTE, "--format", "dot", "-o", str(out))
    assert res.returncode == 0 and res.stdout == b""
    assert out.read_text().count("subgraph cluster_") == 1
    res = cep("explain", BRUTE, "--format", "svg")
    assert res.returncode == 2 and b"unknown format 'svg'" in res.stderr


def test_png_without_graphviz_exits_2_and_says_how_to_install(tmp_path: Path) -> None:
    env = dict(os.environ, PATH=str(Path(sys.executable).parent))  # no `dot` there
    assert shutil.which("dot", path=env["PATH"]) is None
    res = cep("explain", OTP, "--format", "png", "-o", str(tmp_path / "x.png"), env=env)
    assert res.returncode == 2
    assert b"apt-get install graphviz" in res.stderr
    assert not (tmp_path / "x.png").exists()


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")
def test_png_with_graphviz(tmp_path: Path) -> None:
    out = tmp_path / "nfa.png"
    res = cep("explain", BRUTE, "--format", "png", "-o", str(out))
    assert res.returncode == 0, res.stderr
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
