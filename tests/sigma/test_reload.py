"""A reload compiles Sigma files through the pipelines the run started with (the compiler
child process is handed them), and a broken Sigma file keeps the running rules."""

from __future__ import annotations

from pathlib import Path

from cep.app.rule_compiler import compile_with_deadline

RULE = """
title: WMI Persistence Probe
id: 0b7889b4-5577-4521-a60a-3376ee7f9f70
author: test
logsource:
  product: windows
detection:
  selection:
    EventID: 5861
    Consumer|contains: 'CommandLineEventConsumer'
  condition: selection
level: high
"""


def test_reload_compiles_sigma_through_the_run_pipelines(tmp_path: Path) -> None:
    yml = tmp_path / "win_wmi_probe.yml"
    yml.write_text(RULE, encoding="utf-8")
    rs = compile_with_deadline([str(tmp_path)], 60, None, ("windows-xml",))
    assert rs.ok, rs.diagnostics
    [rule] = rs.rules
    assert 'this.Event.System.EventID in [5861, "5861"]' in rule.text
    assert "lower(this.Event.EventData.Consumer)" in rule.text
    plain = compile_with_deadline([str(tmp_path)], 60)
    assert 'this.EventID in [5861, "5861"]' in plain.rules[0].text


def test_broken_sigma_file_fails_the_reload_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "broken.yml").write_text("title: x\ndetection: [\n", encoding="utf-8")
    rs = compile_with_deadline([str(tmp_path)], 60)
    assert not rs.ok and rs.rules == []
    assert rs.errors[0].file.endswith("broken.yml") and rs.errors[0].span.line >= 1
