"""Loading rule files and directories: what a directory holds at the moment it is read."""

from __future__ import annotations

from pathlib import Path

import pytest

import cep.lang.load as load

RULE = 'rule r{n}\n  pattern\n    begin a where x == {n}\nend\n'


def test_a_file_deleted_while_its_directory_is_loaded_is_left_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in (1, 2):
        (tmp_path / f"r{n}.cep").write_text(RULE.format(n=n))
    real = load.parse_file

    def racing_parse(path: Path):  # type: ignore[no-untyped-def]
        if path.name == "r2.cep":
            path.unlink()  # deleted between the directory listing and the read
        return real(path)

    monkeypatch.setattr(load, "parse_file", racing_parse)
    files, diags = load.load_rules([tmp_path])
    assert [rf.path for rf in files] == [str(tmp_path / "r1.cep")]
    assert diags == []


def test_a_named_file_that_is_missing_is_an_error(tmp_path: Path) -> None:
    files, diags = load.load_rules([tmp_path / "gone.cep"])
    assert files == []
    assert [d.message for d in diags] == ["no such file or directory"]
