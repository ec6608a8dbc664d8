"""Which files under a rule directory are Sigma rule files: ``.yml`` regular files, sorted,
each once; links to directories are not followed, a link to a file outside the directory
is not read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cep.sigma.files import sigma_files

pytestmark = pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symbolic links")


def test_yml_files_under_a_directory_sorted_links_to_directories_not_followed(
        tmp_path: Path) -> None:
    root = tmp_path / "rules"
    for rel in ("b/z.yml", "b/a.yml", "a.yml", "c/d/e.yml", "c/notes.yaml", "c/x.txt"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("title: x\n")
    (root / "c" / "dir.yml").mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.yml").write_text("title: s\n")
    (root / "linked-dir").symlink_to(outside)
    (root / "out.yml").symlink_to(outside / "secret.yml")
    (root / "b" / "again.yml").symlink_to(root / "a.yml")  # (a second name of a.yml)
    got = sigma_files([root])
    assert got == [root / "a.yml", root / "b" / "a.yml", root / "b" / "z.yml",
                   root / "c" / "d" / "e.yml"]


def test_a_file_named_and_found_under_a_directory_is_listed_once(tmp_path: Path) -> None:
    root = tmp_path / "rules"
    root.mkdir()
    (root / "r.yml").write_text("title: x\n")
    (root / "s.yml").write_text("title: y\n")
    relative = Path(os.path.relpath(root, Path.cwd()))
    assert sigma_files([root / "s.yml", relative, root]) == [root / "s.yml",
                                                            relative / "r.yml"]
    assert sigma_files([root / "not-sigma.cep", tmp_path / "missing.yml"]) == [
        tmp_path / "missing.yml"]
