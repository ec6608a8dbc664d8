"""Parsed rule files come back from the cache only when their parse would give the same."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import record_calls

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
def cache_home(private_cache: Path) -> Path:
    return private_cache / "rules"


def _count_parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    return record_calls(monkeypatch, parse_module, "parse_text",
                        lambda text, path="<string>": path)


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


# --------------------------------------------------------------------------- a planted entry


def _plant(entry: Path, marker: Path) -> None:
    """Write, at ``entry``, a pickle that creates ``marker`` when it is loaded."""
    import pickle

    class Boom:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, (f"touch {marker}",))

    entry.parent.mkdir(parents=True, exist_ok=True)
    entry.write_bytes(pickle.dumps(Boom()))


def _check(path: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    env.pop("CEP_NO_GRAMMAR_CACHE", None)
    return subprocess.run([sys.executable, "-m", "cep.cli", "check", str(path)], env=env,
                          capture_output=True, text=True, timeout=60)


def test_a_pickle_planted_in_a_directory_others_can_write_is_not_loaded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The shared-cache attack: the entry's directory is world-writable, so whoever wrote the
    entry, it is not unpickled (the check still parses and passes, and says why)."""
    path = tmp_path / "r.cep"
    path.write_text(RULE)
    cache = tmp_path / "cache"
    marker = tmp_path / "PWNED"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.delenv("CEP_NO_GRAMMAR_CACHE", raising=False)
    entry = parse_cache._entry(str(path), RULE)
    assert entry is not None
    _plant(entry, marker)
    os.chmod(entry.parent, 0o777)
    done = _check(path, cache)
    assert done.returncode == 0, done.stderr
    assert not marker.exists()
    assert "writable by others (mode 0777): not used" in done.stderr


def test_a_group_writable_entry_or_one_owned_by_another_user_is_not_loaded(
        tmp_path: Path, cache_home: Path) -> None:
    path = tmp_path / "r.cep"
    path.write_text(RULE)
    parse_cache.parse_file(path)  # the cache directory exists, 0700
    entry = parse_cache._entry(str(path), RULE)
    assert entry is not None and entry.exists()
    assert (cache_home.stat().st_mode & 0o777) == 0o700
    marker = tmp_path / "PWNED"
    _plant(entry, marker)
    os.chmod(entry, 0o664)
    assert parse_cache.parse_file(path)[0].rules  # parsed again, not unpickled
    assert not marker.exists()
    if os.getuid() == 0:  # only root can give a file away
        _plant(entry, marker)
        os.chmod(entry, 0o600)
        os.chown(entry, 65534, 65534)
        assert parse_cache.parse_file(path)[0].rules
        assert not marker.exists()


def test_a_cache_directory_that_is_a_symbolic_link_is_not_used(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "cep").symlink_to(elsewhere)
    path = tmp_path / "r.cep"
    path.write_text(RULE)
    done = _check(path, cache)
    assert done.returncode == 0, done.stderr
    assert "not a directory of its own" in done.stderr
    assert list(elsewhere.iterdir()) == []  # nothing written through the link


def test_a_planted_grammar_table_is_not_loaded(tmp_path: Path) -> None:
    """Lark's parser tables are pickles too: the same checks guard them."""
    path = tmp_path / "r.cep"
    path.write_text(RULE)
    cache = tmp_path / "cache"
    assert _check(path, cache).returncode == 0  # writes the grammar's tables
    (table,) = (cache / "cep").glob("grammar-*.lark")
    marker = tmp_path / "PWNED"
    _plant(table, marker)
    os.chmod(cache / "cep", 0o777)
    env = {**os.environ, "XDG_CACHE_HOME": str(cache), "CEP_NO_GRAMMAR_CACHE": ""}
    done = subprocess.run([sys.executable, "-c", "from cep.lang.grammar import parser; parser()"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert not marker.exists()
    os.chmod(cache / "cep", 0o700)  # the user's own again: the table is read
    done = subprocess.run([sys.executable, "-c", "from cep.lang.grammar import parser; parser()"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert marker.exists(), "the check, not a broken table, kept it out before"


def test_a_cache_directory_readable_by_others_is_made_private(tmp_path: Path,
                                                               cache_home: Path) -> None:
    cache_home.mkdir(parents=True)
    os.chmod(cache_home, 0o755)
    path = tmp_path / "r.cep"
    path.write_text(RULE)
    parse_cache.parse_file(path)
    assert (cache_home.stat().st_mode & 0o777) == 0o700
    assert len(list(cache_home.iterdir())) == 1
