"""Parse and check rule files and directories in one call."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from cep.diagnostics import Diagnostic
from cep.lang.ast import NOWHERE, RuleFile
from cep.lang.check import check_rule_file, check_rule_set
from cep.lang.limits import MAX_FILE_BYTES
from cep.lang.parse_cache import parse_file

__all__ = ["expand_paths", "load_rules"]


def expand_paths(paths: Iterable[str | Path]) -> tuple[list[Path], list[Diagnostic]]:
    """Files to load: each file as given, each directory's ``*.cep`` files recursively
    (sorted).  A path that does not exist yields a diagnostic; duplicates are dropped.

    A file found in a directory must really be under one of the directories given: a
    symbolic link whose target leaves them (to ``/etc/passwd``, ``/proc/self/environ``, …) is
    not read and yields a diagnostic naming the link, never its target or content.
    Directories that are symbolic links are not descended into."""
    paths = list(paths)
    roots = [Path(raw).resolve() for raw in paths if Path(raw).is_dir()]
    files: list[Path] = []
    diags: list[Diagnostic] = []
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = []
            for p in sorted(q for q in path.rglob("*.cep") if q.is_file()):
                inside = _inside(p, roots)
                if inside:
                    found.append(p)
                elif inside is not None:
                    diags.append(Diagnostic(str(p), NOWHERE, _OUTSIDE, hint=_OUTSIDE_HINT))
        elif path.exists():
            found = [path]
        else:
            diags.append(Diagnostic(str(raw), NOWHERE, "no such file or directory"))
            continue
        for p in found:
            key = p.resolve()
            if key not in seen:
                seen.add(key)
                files.append(p)
    return files, diags


_OUTSIDE = "a symbolic link to a file outside the rule directories: not read"
_OUTSIDE_HINT = "rule files in a directory may link only to files under a rule directory"


def _inside(path: Path, roots: list[Path]) -> bool | None:
    """Whether ``path``, all links followed, is a file under one of ``roots`` (``None``: it
    is gone, deleted since the directory was listed)."""
    try:
        real = path.resolve(strict=True)
    except FileNotFoundError:
        return None
    except (OSError, RuntimeError):  # a loop, no permission
        return False
    return any(real.is_relative_to(root) for root in roots)


def load_rules(paths: Iterable[str | Path]) -> tuple[list[RuleFile], list[Diagnostic]]:
    """Parse and check every rule file under ``paths``.

    Returns the parsed files (each with the rules that parsed) and every diagnostic: syntax
    errors, semantic errors and warnings of each file, then rule names defined in more than
    one file.  Nothing is raised for bad rules; callers decide what an error means.  A file
    found in a directory that is deleted before it is read is left out (a reload racing an
    edit sees the directory as it is a moment later); a file named directly must exist.  A
    file larger than :data:`~cep.lang.limits.MAX_FILE_BYTES` is not read past the limit.
    """
    paths = list(paths)
    named = {Path(p).resolve() for p in paths if not Path(p).is_dir()}
    files, diags = expand_paths(paths)
    parsed: list[RuleFile] = []
    for path in files:
        if _too_large(path):
            from cep.lang.parse import parse_file as parse_bounded  # Lark only when needed

            rf, parse_diags = parse_bounded(path)
        else:
            rf, parse_diags = parse_file(path)
        if not path.exists() and path.resolve() not in named:
            continue  # found in a directory, deleted since: as if listed a moment later
        parsed.append(rf)
        file_diags = parse_diags + check_rule_file(rf)
        diags.extend(sorted(file_diags, key=lambda d: (d.span.line, d.span.col)))
    diags.extend(check_rule_set(parsed))
    return parsed, diags


def _too_large(path: Path) -> bool:
    """Larger than a rule file may be (a byte-order mark aside), as far as ``stat`` knows."""
    try:
        return path.stat().st_size > MAX_FILE_BYTES + 3
    except OSError:
        return False
