"""Which paths are Sigma rule files (no pySigma import: every command asks)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

__all__ = ["SIGMA_SUFFIXES", "is_sigma_path", "sigma_files"]

SIGMA_SUFFIXES = (".yml",)
"""Suffixes of Sigma rule files (``.yaml`` files are the engine's rule tests and configs)."""


def is_sigma_path(path: str | Path) -> bool:
    """Whether ``path`` names a Sigma rule file by its suffix."""
    return Path(path).suffix.lower() in SIGMA_SUFFIXES


def sigma_files(paths: Iterable[str | Path]) -> list[Path]:
    """The Sigma files among ``paths``: each ``.yml`` file named, and the ``.yml`` files under
    each directory (recursively, sorted; directories that are links are not followed, and
    only regular files under the directory count: a link to a file outside it does not).
    A file reached twice (named twice, or through a link) is listed once."""
    out: list[Path] = []
    seen: set[Path] = set()
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = _under(p)
        elif is_sigma_path(p):
            found = [(p, p.resolve())]
        else:
            continue
        for q, key in found:
            if key not in seen:
                seen.add(key)
                out.append(q)
    return out


def _under(top: Path) -> list[tuple[Path, Path]]:
    """The ``.yml`` regular files under the directory ``top``, sorted, each with its real
    path (only a link is resolved: a path under the resolved ``top`` through no link is
    its own real path; thousands of files are listed, from the directory entries' types)."""
    root = top.resolve()
    found = []
    todo = [(top, root)]
    while todo:
        where, real_where = todo.pop()
        with os.scandir(where) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    todo.append((where / entry.name, real_where / entry.name))
                elif not entry.name.endswith(".yml"):
                    continue
                elif entry.is_symlink():
                    real = Path(entry.path).resolve()
                    if real.is_file() and real.is_relative_to(root):
                        found.append((where / entry.name, real))
                elif entry.is_file(follow_symlinks=False):
                    found.append((where / entry.name, real_where / entry.name))
    found.sort()
    return found
