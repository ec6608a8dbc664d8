"""``cep infer-schema``: an event schema (:mod:`cep.lang.schema`) from a JSON-lines file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from cep.io.sources import OversizedLine, open_input, read_lines
from cep.lang.schema import Schema, infer_schema

__all__ = ["Inferred", "infer_from_file"]


@dataclass
class Inferred:
    """The schema of a file's events, how many events it read and how many lines were not
    JSON objects (left out)."""

    schema: Schema = field(default_factory=lambda: Schema({}))
    events: int = 0
    skipped: int = 0


def infer_from_file(path: str, limit: int | None = None) -> Inferred:
    """Read up to ``limit`` events (every one with ``None``) of the JSON-lines file ``path``
    (``-``: standard input; gzip, bz2 or zstd too) and infer their schema.  Raises
    ``OSError`` when the file cannot be read."""
    out = Inferred()

    def events() -> Iterator[dict[str, Any]]:
        with open_input(path) as fh:
            for _, line in read_lines(fh, max_line=16 << 20):
                if limit is not None and out.events >= limit:
                    return
                value = None
                if not isinstance(line, OversizedLine):
                    try:
                        value = json.loads(line)
                    except ValueError:
                        value = None
                if isinstance(value, dict):
                    out.events += 1
                    yield value
                else:
                    out.skipped += 1

    out.schema, _ = infer_schema(events())
    return out
