"""An event schema: which field paths events carry and of which type, read from a small
YAML file, and inferred from events.

The file (see ``docs/schema.md``)::

    fields:
      ts: integer
      event.action: {type: string, enum: [login, logoff]}
      winlog.event_id: [integer, string]        # either type
      winlog.event_data.*: string               # any field under winlog.event_data

Types are ``string``, ``integer``, ``number`` (an integer or a decimal), ``boolean``,
``list``, ``object`` and ``any``.  A ``share`` (0..1, the part of events that held the field)
is informational; :func:`infer_schema` writes it.  Layer 1: no I/O but :func:`load_schema`'s
read of the file.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cep.errors import ConfigError

__all__ = ["TYPES", "FieldSpec", "Schema", "load_schema", "parse_schema", "infer_schema",
           "schema_yaml", "type_of"]

_PLAIN = re.compile(r"^[A-Za-z_][\w.*-]*$")
TYPES = ("string", "integer", "number", "boolean", "list", "object", "any")


@dataclass(frozen=True)
class FieldSpec:
    """One field: the types its values may have, its allowed values (``enum``) if closed,
    and the share of events that held it (``None`` when not measured)."""

    types: frozenset[str]
    enum: tuple[Any, ...] | None = None
    share: float | None = None


@dataclass(frozen=True)
class Schema:
    """Field paths (dotted) to their :class:`FieldSpec`; ``wildcards`` are the prefixes
    declared as ``prefix.*`` (any field under them, of the spec's types)."""

    fields: Mapping[str, FieldSpec]
    wildcards: Mapping[str, FieldSpec] = field(default_factory=dict)
    path: str = ""

    def lookup(self, dotted: str) -> FieldSpec | None:
        """The spec of a field path: its own, the closest wildcard's, ``object`` for a path
        that is a prefix of declared fields; ``None`` when the schema does not know it."""
        spec = self.fields.get(dotted)
        if spec is not None:
            return spec
        parts = dotted.split(".")
        for i in range(len(parts) - 1, 0, -1):
            wild = self.wildcards.get(".".join(parts[:i]))
            if wild is not None:
                return wild
        if dotted in self.prefixes:
            return FieldSpec(frozenset({"object"}))
        return None

    @property
    def prefixes(self) -> frozenset[str]:
        """Every proper prefix of a declared path (``user`` for ``user.name``) and every
        wildcard prefix."""
        out = set(self.wildcards)
        for name in [*self.fields, *self.wildcards]:
            parts = name.split(".")
            out.update(".".join(parts[:i]) for i in range(1, len(parts)))
        return frozenset(out)

    @property
    def roots(self) -> frozenset[str]:
        """The first segment of every declared path."""
        return frozenset(n.split(".")[0] for n in [*self.fields, *self.wildcards])

    def names(self) -> list[str]:
        """Every declared path (wildcards as ``prefix.*``), for "did you mean"."""
        return [*self.fields, *(f"{w}.*" for w in self.wildcards)]


def type_of(value: Any) -> str | None:
    """The schema type of a JSON value (``None`` for null)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    return "object"


def _spec(name: str, raw: Any, where: str) -> FieldSpec:
    if isinstance(raw, str | list):
        raw = {"type": raw}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: field `{name}`: give a type or {{type: …, enum: […]}}")
    unknown = set(raw) - {"type", "enum", "share"}
    if unknown:
        raise ConfigError(f"{where}: field `{name}`: unknown key {sorted(unknown)[0]!r} "
                          "(known: enum, share, type)")
    types = raw.get("type", "any")
    types = [types] if isinstance(types, str) else types
    if not isinstance(types, list) or not types or any(t not in TYPES for t in types):
        raise ConfigError(f"{where}: field `{name}`: type must be one of {', '.join(TYPES)} "
                          f"(or a list of them), not {raw.get('type')!r}")
    enum = raw.get("enum")
    if enum is not None and not isinstance(enum, list):
        raise ConfigError(f"{where}: field `{name}`: enum must be a list")
    share = raw.get("share")
    if share is not None and not (isinstance(share, int | float) and 0 <= share <= 1):
        raise ConfigError(f"{where}: field `{name}`: share must be a number from 0 to 1")
    return FieldSpec(frozenset(types), tuple(enum) if enum is not None else None,
                     float(share) if share is not None else None)


def parse_schema(data: Any, where: str = "<schema>") -> Schema:
    """A :class:`Schema` from the parsed YAML document; raises :class:`ConfigError` naming
    ``where`` and the field for anything malformed."""
    if not isinstance(data, dict) or not isinstance(data.get("fields"), dict):
        raise ConfigError(f"{where}: a schema is a mapping with `fields:` (field path → type)")
    extra = set(data) - {"fields", "description"}
    if extra:
        raise ConfigError(f"{where}: unknown key {sorted(extra)[0]!r} (known: description, "
                          "fields)")
    fields_: dict[str, FieldSpec] = {}
    wild: dict[str, FieldSpec] = {}
    for name, raw in data["fields"].items():
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{where}: field names are dotted paths, not {name!r}")
        spec = _spec(name, raw, where)
        if name.endswith(".*"):
            wild[name[:-2]] = spec
        else:
            fields_[name] = spec
    return Schema(fields_, wild, "" if where == "<schema>" else where)


def load_schema(path: str | Path) -> Schema:
    """Read a schema file; raises :class:`ConfigError` when it cannot be read or is
    malformed."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read the schema {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None
    return parse_schema(data, str(path))


def _walk(value: Mapping[str, Any], prefix: str, seen: dict[str, Counter[str]],
          present: set[str]) -> None:
    for key, item in value.items():
        name = f"{prefix}{key}"
        if isinstance(item, dict) and item:
            _walk(item, name + ".", seen, present)
            continue
        kind = type_of(item)
        if kind is not None:
            seen.setdefault(name, Counter())[kind] += 1
            present.add(name)


def infer_schema(events: Iterable[Mapping[str, Any]]) -> tuple[Schema, int]:
    """A schema of the fields seen in ``events`` (nested objects flattened to dotted paths):
    each field's types and the share of events that held it (null values do not count).
    Returns the schema and the number of events read."""
    seen: dict[str, Counter[str]] = {}
    counts: Counter[str] = Counter()
    n = 0
    for event in events:
        n += 1
        present: set[str] = set()
        _walk(event, "", seen, present)
        counts.update(present)
    fields_ = {name: FieldSpec(frozenset(kinds), None, round(counts[name] / n, 4))
               for name, kinds in sorted(seen.items())}
    return Schema(fields_), n


def schema_yaml(schema: Schema, description: str | None = None) -> str:
    """The schema file's text: ``fields`` in path order, one per line (``type`` a list
    when the field was seen with several; ``share`` when known)."""
    lines = []
    if description:
        lines.append(f"description: {json.dumps(description)}")
    lines.append("fields:")
    items = [*schema.fields.items(), *((f"{w}.*", s) for w, s in schema.wildcards.items())]
    for name, spec in sorted(items):
        kinds = sorted(spec.types)
        entry: dict[str, Any] = {"type": kinds[0] if len(kinds) == 1 else kinds}
        if spec.enum is not None:
            entry["enum"] = list(spec.enum)
        if spec.share is not None:
            entry["share"] = spec.share
        body = yaml.safe_dump(entry, default_flow_style=True, width=10**6).strip()
        lines.append(f"  {name if _PLAIN.match(name) else json.dumps(name)}: {body}")
    return "\n".join(lines) + "\n"
