"""The command line's conventions, through the ``cep`` command as a user types it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RULES = str(ROOT / "examples" / "rules")
EVENTS = str(ROOT / "examples" / "logins.jsonl")


def cep(*args: str, columns: int = 80) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": str(columns), "NO_COLOR": "1", "TERM": "dumb"}
    return subprocess.run([sys.executable, "-m", "cep.cli", *args], capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=60)


def test_version_and_short_help() -> None:
    from cep import __version__

    out = cep("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"cep {__version__}"
    assert cep("-h").returncode == 0
    assert "cep run [OPTIONS] [PATHS]..." in cep("run", "-h").stdout


def test_commands_are_listed_in_order_of_use() -> None:
    text = cep("--help").stdout
    commands = text[text.index("Commands"):]
    positions = [commands.find(f"│ {name} ") for name in ("run", "check", "test", "replay",
                                                          "explain", "map")]
    assert all(p > 0 for p in positions) and positions == sorted(positions), text


@pytest.mark.parametrize("command", ["run", "check", "test", "replay", "explain", "map"])
def test_help_fits_80_columns_with_choices_shown(command: str) -> None:
    out = cep(command, "--help")
    assert out.returncode == 0
    lines = out.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    # no line of the description is cut and wrapped on its own (hard-wrapped docstrings)
    text = [line for line in lines if not line.startswith(("│", "╭", "╰"))]
    assert not any(len(line.strip().split()) == 1 and line.strip().isalpha()
                   and line.strip().islower() for line in text), out.stdout
    if command in ("run", "replay"):
        assert "<json|csv" in out.stdout and "<ms|s|us|ns|iso>" in out.stdout


@pytest.mark.parametrize("args", [
    ["run", RULES, "-i", EVENTS], ["run", "--rules", RULES, "-i", EVENTS],
    ["run", "-r", RULES, "-i", EVENTS],
    ["check", RULES], ["check", "--rules", RULES],
    ["explain", RULES], ["explain", "--rules", RULES],
    ["replay", RULES, "-i", EVENTS, "-q", "-o", os.devnull],
    ["replay", "--rules", RULES, "-i", EVENTS, "-q", "-o", os.devnull],
    ["test", "rules/login"], ["test", "--rules", "rules/login"],
])
def test_rule_paths_positional_or_with_rules(args: list[str]) -> None:
    out = cep(*args)
    assert out.returncode == 0, out.stderr


def test_input_format_and_the_deprecated_format() -> None:
    out = cep("run", RULES, "-i", EVENTS, "--input-format", "json", "-q")
    assert out.returncode == 0 and "deprecated" not in out.stderr
    out = cep("run", RULES, "-i", EVENTS, "--format", "json", "-q")
    assert out.returncode == 0 and "--format is deprecated" in out.stderr
    out = cep("run", RULES, "-i", EVENTS, "--input-format", "xml")
    assert out.returncode == 2 and "xml" in out.stderr
    out = cep("explain", RULES, "--output-format", "dot")
    assert out.returncode == 0 and out.stdout.startswith("digraph")


@pytest.mark.parametrize("flag", ["--max-out-of-orderness", "--max-future-skew"])
def test_a_duration_needs_a_unit(flag: str) -> None:
    out = cep("run", RULES, "-i", EVENTS, flag, "5")
    assert out.returncode == 2 and "5ms?" in out.stderr
    assert cep("run", RULES, "-i", EVENTS, flag, "5ms", "-q").returncode == 0
    out = cep("replay", RULES, "-i", EVENTS, "--max-out-of-orderness", "5")
    assert out.returncode == 2 and "5ms?" in out.stderr


def test_one_duration_parser() -> None:
    from cep.config import parse_config

    with pytest.raises(Exception, match="5ms"):
        parse_config('[sources.a]\nkind = "file"\npath = "x"\nmax_out_of_orderness = "5"\n')


def test_run_options_are_the_settings_they_stand_for() -> None:
    """`cep run`'s options are made from the cep.toml declarations: the same doc, choices,
    default and bounds."""
    from cep.config import SourceConfig, StateConfig
    from cep.settings import declared

    text = " ".join(cep("run", "--help", columns=200).stdout.replace("│", " ").split())
    for cls, name in ((SourceConfig, "event_time"), (StateConfig, "max_events_per_match")):
        doc = next(d.setting.doc for d in declared(cls) if d.name == name).replace("`", "")
        assert doc[:1].upper() + doc[1:] in text
    assert "Default 10000." in text and "Default 1d." in text
    out = cep("run", RULES, "-i", EVENTS, "--max-partial-matches-per-key", "0")
    assert out.returncode == 2 and "x>=1" in out.stderr.replace(" ", "")
    out = cep("run", RULES, "-i", EVENTS, "--time-unit", "hours")
    assert out.returncode == 2 and "'hours' is not one of" in out.stderr
