"""Settings declared once: each option of ``cep.toml`` is a dataclass field with its key, kind,
default, unit and doc (Flink's ``ConfigOptions.key(..).intType().defaultValue(..)
.withDescription(..)``), read by one generic reader and listed in the docs from the same place.

A settings class (``KafkaConfig``, ``StateConfig``, … in :mod:`cep.config`) declares a field
with :func:`setting`; :func:`declared` lists the declarations of a class for the TOML reader
and for documentation tables (:func:`doc_rows`).  Layer 0: no I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any

__all__ = ["Kind", "Setting", "Declared", "setting", "declared", "doc_rows", "default_text"]


class Kind(enum.Enum):
    """How a setting's TOML value is read."""

    TEXT = "a string"
    INT = "an integer"
    BOOL = "a boolean"
    DURATION = "a duration"  # "500ms", "5s" … or an integer of ms; the field holds ms
    DURATION_OR_OFF = "a duration or \"off\""  # None when "off"
    PATH = "a path"  # relative to the config file
    SECRET = "a secret"  # ${ENV} expanded, held in a Secret
    NAMES = "a list of names"  # "a,b" or ["a", "b"] -> ("a", "b")
    LIST = "a list of strings"  # "a" or ["a", "b"] -> tuple (a string is one item)
    CHOICE = "one of the choices"


@dataclass(frozen=True)
class Setting:
    """One option's declaration.

    Attributes:
        key: the TOML key (a duration field ``x_ms`` is written ``x``).
        kind: how the value is read (:class:`Kind`).
        doc: one line for the option tables of the docs.
        choices: the allowed values of a :attr:`Kind.CHOICE`.
        positive: an integer that must be at least 1.
    """

    key: str
    kind: Kind
    doc: str
    choices: tuple[str, ...] = ()
    positive: bool = False


@dataclass(frozen=True)
class Declared:
    """A settings class's field, its declaration and its default."""

    name: str
    setting: Setting
    default: Any


def setting(default: Any, kind: Kind, doc: str, *, key: str | None = None,
            choices: tuple[str, ...] = (), positive: bool = False,
            factory: Callable[[], Any] | None = None) -> Any:
    """A dataclass field declared as a setting (``key`` defaults to the field's name, less a
    ``_ms`` suffix for durations; filled in by :func:`declared`)."""
    meta = {"setting": Setting(key or "", kind, doc, choices, positive)}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def declared(cls: type) -> list[Declared]:
    """The settings a dataclass declares, in field order."""
    out = []
    for f in fields(cls):
        s = f.metadata.get("setting")
        if s is None:
            continue
        key = s.key or (f.name[:-3] if f.name.endswith("_ms") else f.name)
        out.append(Declared(f.name, Setting(key, s.kind, s.doc, s.choices, s.positive),
                            _default(f)))
    return out


def _default(f: Field[Any]) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return None


def default_text(d: Declared) -> str:
    """A declaration's default as the docs write it: TOML values in backticks, durations with
    a unit, sizes in MiB, ``none`` for no value."""
    v, kind = d.default, d.setting.kind
    if v is None or v == "" or v == ():
        return "none" if v != () else "`[]`"
    if kind in (Kind.DURATION, Kind.DURATION_OR_OFF):
        text = f"{v}ms" if v else "0s"
        for unit, ms in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
            if v and v % ms == 0:
                text = f"{v // ms}{unit}"
                break
        return f'`"{text}"`'
    if isinstance(v, bool):
        return "`true`" if v else "`false`"
    if isinstance(v, int) and v >= 1 << 20 and v % (1 << 20) == 0:
        return f"{v >> 20} MiB"
    if isinstance(v, str):
        return f'`"{v}"`'
    if isinstance(v, tuple):
        return "`[" + ", ".join(f'"{x}"' for x in v) + "]`"
    return f"`{v}`"


def doc_rows(cls: type) -> list[tuple[str, str, str]]:
    """``(key, default, doc)`` of every setting of ``cls``, for an option table."""
    return [(d.setting.key, default_text(d), d.setting.doc) for d in declared(cls)]
