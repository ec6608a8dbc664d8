"""pySigma processing pipelines by name or file: field mappings, placeholders' values.

A pipeline is named (one shipped beside this module: :data:`SHIPPED`) or is a path to a
pySigma pipeline YAML file (its ``vars`` give placeholders their values, with a
``value_placeholders`` transformation).  Several are merged by pySigma's own ``+`` (each keeps
its priority).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sigma.exceptions import SigmaError
from sigma.processing.pipeline import ProcessingPipeline

__all__ = ["PipelineError", "SHIPPED", "load_pipeline", "shipped_names"]

_DIR = Path(__file__).parent / "pipelines"


class PipelineError(ValueError):
    """A pipeline name that is neither shipped nor a readable file, or a file pySigma
    rejects; the message names it and says why."""


def shipped_names() -> list[str]:
    """The names of the shipped pipelines (``windows-xml``, ``windows-flat``, ``winlogbeat``)."""
    return sorted(p.stem for p in _DIR.glob("*.yml"))


SHIPPED = tuple(shipped_names())


def _one(spec: str) -> ProcessingPipeline:
    path = _DIR / f"{spec}.yml" if spec in SHIPPED else Path(spec)
    if not path.is_file():
        raise PipelineError(
            f"sigma pipeline {spec!r}: neither a shipped pipeline ({', '.join(SHIPPED)}) "
            "nor a file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PipelineError(f"sigma pipeline {spec!r}: cannot be read ({exc})") from None
    try:
        return ProcessingPipeline.from_yaml(text, source_path=str(path))
    except (SigmaError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise PipelineError(f"sigma pipeline {spec!r}: {type(exc).__name__}: {exc}") from None


def load_pipeline(specs: Sequence[str]) -> ProcessingPipeline | None:
    """The merged pipeline of ``specs`` (shipped names or YAML file paths), or ``None`` for
    none.

    Raises:
        PipelineError: a name is unknown, a file cannot be read or is not a valid pipeline."""
    merged: ProcessingPipeline | None = None
    for spec in specs:
        p = _one(spec)
        merged = p if merged is None else merged + p
    return merged
