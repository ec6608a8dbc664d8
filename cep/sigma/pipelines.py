"""pySigma processing pipelines by name or file: field mappings, placeholders' values.

A pipeline is named (one shipped beside this module: :data:`SHIPPED`) or is a path to a
pySigma pipeline YAML file (its ``vars`` give placeholders their values, with a
``value_placeholders`` transformation).  Several are merged by pySigma's own ``+`` (each keeps
its priority).  pySigma's pipeline module (a twentieth of a second to import) is imported
only when a pipeline is given.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sigma.processing.pipeline import ProcessingPipeline

__all__ = ["PipelineError", "SHIPPED", "load_keyed_pipeline", "load_pipeline", "shipped_names"]

_DIR = Path(__file__).parent / "pipelines"


class PipelineError(ValueError):
    """A pipeline name that is neither shipped nor a readable file, or a file pySigma
    rejects; the message names it and says why."""


def shipped_names() -> list[str]:
    """The names of the shipped pipelines (``windows-xml``, ``windows-flat``, ``winlogbeat``)."""
    return sorted(p.stem for p in _DIR.glob("*.yml"))


SHIPPED = tuple(shipped_names())


def _one(spec: str) -> tuple[ProcessingPipeline, str]:
    path = _DIR / f"{spec}.yml" if spec in SHIPPED else Path(spec)
    if not path.is_file():
        raise PipelineError(
            f"sigma pipeline {spec!r}: neither a shipped pipeline ({', '.join(SHIPPED)}) "
            "nor a file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PipelineError(f"sigma pipeline {spec!r}: cannot be read ({exc})") from None
    from sigma.exceptions import SigmaError
    from sigma.processing.pipeline import ProcessingPipeline

    try:
        return ProcessingPipeline.from_yaml(text, source_path=str(path)), text
    except (SigmaError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise PipelineError(f"sigma pipeline {spec!r}: {type(exc).__name__}: {exc}") from None


def load_pipeline(specs: Sequence[str]) -> ProcessingPipeline | None:
    """The merged pipeline of ``specs`` (shipped names or YAML file paths), or ``None`` for
    none.

    Raises:
        PipelineError: a name is unknown, a file cannot be read or is not a valid pipeline."""
    return load_keyed_pipeline(specs)[0]


def load_keyed_pipeline(specs: Sequence[str]) -> tuple[ProcessingPipeline | None, str]:
    """:func:`load_pipeline`, with a key of what the pipeline is: the SHA-256 (hex) of the
    text of each pipeline file in order, ``""`` for none (the compiled-file cache's,
    :mod:`cep.sigma.cache`).

    Raises:
        PipelineError: as :func:`load_pipeline`."""
    merged: ProcessingPipeline | None = None
    h = hashlib.sha256()
    for spec in specs:
        p, text = _one(spec)
        h.update(text.encode("utf-8", "surrogatepass") + b"\0")
        merged = p if merged is None else merged + p
    return merged, (h.hexdigest() if specs else "")
