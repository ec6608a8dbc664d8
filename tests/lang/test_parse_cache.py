"""Parsed rule files come back from the cache only when their parse would give the same."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cep.lang import parse as parse_module
from cep.lang import parse_cache

RULE = """\
rule brute_force
  key by user
  pattern
    begin fail where type == "login" and not ok
    next  more where type == "login" and not ok  times 4 consecutive
  within 5m
end
"""


@pytest.fixture
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("CEP_NO_GRAMMAR_CACHE", raising=False)
    parse_cache._directory.cache_clear()
    yield tmp_path / "cache" / "cep" / "rules"
    parse_cache._directory.cache_clear()


def _count_parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = parse_module.parse_text

    def counting(text: str, path: str = "<string>") -> object:
        calls.append(path)
        return real(text, path)

    monkeypatch.setattr(parse_module, "parse_text", counting)
    return calls


def test_an_unchanged_file_is_parsed_once(tmp_path: Path, cache_home: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _count_parses(monkeypatch)
    path = tmp_path / "r.cep"
    path.write_text(RULE)
    first = parse_cache.parse_file(path)
    second = parse_cache.parse_file(path)
    assert calls == [str(path)]
    assert second == first == parse_module.parse_file(path)
    assert len(list(cache_home.iterdir())) == 1
    calls.clear()
    path.write_text(RULE.replace("5m", "10m"))  # changed text: parsed again
    third = parse_cache.parse_file(path)
    assert calls == [str(path)]
    assert third != first and third[0].text == path.read_text()


def test_files_with_diagnostics_are_not_kept(tmp_path: Path, cache_home: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _count_parses(monkeypatch)
    path = tmp_path / "bad.cep"
    path.write_text(RULE.replace("key by user", "key by"))
    first = parse_cache.parse_file(path)
    second = parse_cache.parse_file(path)
    assert first == second and first[1], "a syntax error each time"
    assert len(calls) == 2
    assert not cache_home.exists() or not list(cache_home.iterdir())


def test_a_damaged_entry_means_parsing_again(tmp_path: Path, cache_home: Path) -> None:
    path = tmp_path / "r.cep"
    path.write_text(RULE)
    first = parse_cache.parse_file(path)
    (entry,) = cache_home.iterdir()
    entry.write_bytes(b"not a pickle")
    assert parse_cache.parse_file(path) == first


def test_unreadable_files_give_the_parser_s_diagnostic(tmp_path: Path,
                                                       cache_home: Path) -> None:
    missing = tmp_path / "missing.cep"
    assert parse_cache.parse_file(missing) == parse_module.parse_file(missing)


def test_the_cache_keeps_at_most_max_entries(tmp_path: Path, cache_home: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parse_cache, "MAX_ENTRIES", 3)
    for i in range(5):
        path = tmp_path / f"r{i}.cep"
        path.write_text(RULE)
        parse_cache.parse_file(path)
    assert len(list(cache_home.iterdir())) == 3


def test_no_cache_when_turned_off(tmp_path: Path, cache_home: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CEP_NO_GRAMMAR_CACHE", "1")
    parse_cache._directory.cache_clear()
    path = tmp_path / "r.cep"
    path.write_text(RULE)
    assert parse_cache.parse_file(path) == parse_module.parse_file(path)
    assert not cache_home.exists()


def test_a_run_from_the_cache_does_not_import_lark(tmp_path: Path) -> None:
    path = tmp_path / "r.cep"
    path.write_text(RULE)
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    env.pop("CEP_NO_GRAMMAR_CACHE", None)
    code = ("import sys; from cep.app.rules import load_rule_set; "
            f"rs = load_rule_set([{str(path)!r}]); assert rs.ok; "
            "print('lark' in sys.modules, len(rs.rules))")
    runs = [subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                           text=True, check=True).stdout.split() for _ in range(2)]
    assert runs == [["True", "1"], ["False", "1"]]
