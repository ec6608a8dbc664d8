"""Shipped schema mappings (``cep map NAME FILE``): public log formats → docs/schema.md events.

See :mod:`cep.mapping.datasets` for each mapping and what it keeps.
"""

from cep.mapping.datasets import DATASETS, write_jsonl

__all__ = ["DATASETS", "write_jsonl"]
