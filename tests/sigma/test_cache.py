"""Compiled Sigma files come back from the cache only when compiling would give the same:
same rules, names, diagnostics and left-out rules; a changed file, another pipeline, a name
already taken or a damaged entry means compiling again."""

from __future__ import annotations

from pathlib import Path

import pytest

from cep.sigma.load import SigmaLoad, load_sigma
from cep.sigma.pipelines import load_keyed_pipeline
from tests.sigma.conftest import count_parses

RULE = """\
title: Whoami
id: 1f3a0c5e-3b5e-4c56-9d2a-6a6d2f0c1a11
status: test
author: someone
level: high
logsource:
  product: windows
  category: process_creation
detection:
  selection:
    Image|endswith: '\\whoami.exe'
  condition: selection
"""

UNSUPPORTED = """\
title: Placeholder
id: 2a4b1d6f-4c6f-4d67-8e3b-7b7e3f1d2b22
logsource:
  product: windows
detection:
  selection:
    CommandLine|expand: '%admins%'
  condition: selection
"""


# (``cache_home``: a fixture of conftest.py)


def _same(a: SigmaLoad, b: SigmaLoad) -> None:
    assert a.files == b.files
    assert a.diagnostics == b.diagnostics
    assert a.rejected == b.rejected


def test_an_unchanged_file_is_compiled_once(tmp_path: Path, cache_home: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    calls = count_parses(monkeypatch)
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "whoami.yml").write_text(RULE)
    (tmp_path / "r" / "placeholder.yml").write_text(UNSUPPORTED)
    first = load_sigma([tmp_path / "r"])
    assert sorted(calls) == ["placeholder.yml", "whoami.yml"]
    assert len(first.rejected) == 1 and first.files[1].rules[0].name == "whoami"
    calls.clear()
    second = load_sigma([tmp_path / "r"])
    assert calls == []
    _same(second, first)
    assert second.sources == {}  # (no pySigma objects for a file from the cache)
    assert len(list(cache_home.glob("*.pickle"))) == 1  # (one bundle per set of files)
    (tmp_path / "r" / "whoami.yml").write_text(RULE.replace("level: high", "level: low"))
    third = load_sigma([tmp_path / "r"])
    assert calls == ["whoami.yml"]
    assert third.files[1].rules[0].severity == "low"


def test_a_name_taken_by_an_earlier_file_is_given_as_without_cache(
        tmp_path: Path, cache_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "whoami.yml").write_text(RULE)
    alone = load_sigma([tmp_path / "b"])  # cached under the name `whoami`
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "whoami.yml").write_text(RULE.replace("1f3a0c5e", "0e2b9f4d"))
    monkeypatch.setenv("CEP_NO_GRAMMAR_CACHE", "1")
    plain = load_sigma([tmp_path / "a", tmp_path / "b"])
    monkeypatch.delenv("CEP_NO_GRAMMAR_CACHE")
    cached = load_sigma([tmp_path / "a", tmp_path / "b"])
    _same(cached, plain)
    assert [rf.rules[0].name for rf in cached.files] == ["whoami", "whoami_1f3a0c5e"]
    assert alone.files[0].rules[0].name == "whoami"


def test_the_pipeline_is_part_of_the_key(tmp_path: Path, cache_home: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    calls = count_parses(monkeypatch)
    path = tmp_path / "whoami.yml"
    path.write_text(RULE)
    plain = load_sigma([path])
    pipeline, key = load_keyed_pipeline(["windows-xml"])
    assert key
    mapped = load_sigma([path], pipeline, key)
    assert calls == ["whoami.yml", "whoami.yml"]
    assert mapped.files != plain.files  # (the pipeline maps Image to Event.EventData.Image)
    _same(load_sigma([path], pipeline, key), mapped)
    load_sigma([path], pipeline)  # a pipeline without a key: no cache
    assert calls == ["whoami.yml"] * 3


def test_a_damaged_entry_is_compiled_again(tmp_path: Path, cache_home: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "whoami.yml"
    path.write_text(RULE)
    first = load_sigma([path])
    (entry,) = cache_home.glob("*.pickle")
    entry.write_bytes(b"not a pickle")
    calls = count_parses(monkeypatch)
    _same(load_sigma([path]), first)
    assert calls == ["whoami.yml"]
