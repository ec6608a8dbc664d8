"""Which paths are Sigma rule files (no pySigma import: every command asks)."""

from __future__ import annotations

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
    only regular files under the directory count)."""
    out: list[Path] = []
    seen: set[Path] = set()
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            root = p.resolve()
            found = []
            for q in sorted(p.rglob("*.yml")):
                real = q.resolve()  # (once per file: thousands of files)
                if q.is_file() and real.is_relative_to(root):
                    found.append((q, real))
        elif is_sigma_path(p):
            found = [(p, p.resolve())]
        else:
            continue
        for q, key in found:
            if key not in seen:
                seen.add(key)
                out.append(q)
    return out
