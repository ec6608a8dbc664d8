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

__all__ = ["Kind", "Setting", "Declared", "setting", "declared", "doc_rows", "default_text",
           "value_text", "Panel", "Flag", "DeclaredFlag", "flag", "flags_of"]


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
    RATIO = "a number from 0 to 1"
    PAIR = "two values"  # command line only: --compare OLD NEW
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
    return value_text(d.default, d.setting.kind)


def value_text(v: Any, kind: Kind, quote: str = "`") -> str:
    """A setting's value as the docs write it (:func:`default_text`); ``quote=""`` for
    ``--help``, where it reads ``5m`` rather than ``"5m"``."""
    q = quote
    s = '"' if quote else ""
    if v is None or v == "" or v == ():
        return "none" if v != () else f"{q}[]{q}"
    if kind in (Kind.DURATION, Kind.DURATION_OR_OFF):
        text = f"{v}ms" if v else "0s"
        for unit, ms in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
            if v and v % ms == 0:
                text = f"{v // ms}{unit}"
                break
        return f"{q}{s}{text}{s}{q}"
    if isinstance(v, bool):
        return f"{q}true{q}" if v else f"{q}false{q}"
    if isinstance(v, int) and v >= 1 << 20 and v % (1 << 20) == 0:
        return f"{v >> 20} MiB"
    if isinstance(v, str):
        return f"{q}{s}{v}{s}{q}"
    if isinstance(v, tuple):
        return f"{q}[" + ", ".join(f'"{x}"' for x in v) + f"]{q}"
    return f"{q}{v}{q}"


def doc_rows(cls: type) -> list[tuple[str, str, str]]:
    """``(key, default, doc)`` of every setting of ``cls``, for an option table."""
    return [(d.setting.key, default_text(d), d.setting.doc) for d in declared(cls)]


class Panel(enum.Enum):
    """The group a flag is listed under in ``--help``; groups are listed in this order."""

    RULES = "Rules"
    INPUT = "Input"
    EVENT_TIME = "Event time"
    OUTPUT = "Output"
    LIMITS = "State and limits"
    RUNNING = "Options"


@dataclass(frozen=True)
class Flag:
    """One command-line option's declaration (read by :mod:`cep.cli_flags`, which makes the
    typer option of it).

    Attributes:
        names: ``("--max-out-of-orderness",)``, ``("--rules", "-r")``; empty for the
            command's positional argument.
        kind: how the value is read; a :attr:`Kind.LIST` flag repeats, a :attr:`Kind.BOOL`
            flag takes no value, a :attr:`Kind.CHOICE` flag lists its ``choices`` in
            ``--help``; durations stay text (parsed once, by ``cep.config.parse_duration``).
        doc: the ``--help`` text, one sentence or a few.
        default: shown in ``--help`` (the setting's default, when the flag stands for one).
        choices: the allowed values of a :attr:`Kind.CHOICE`.
        metavar: the value's name in ``--help``.
        hidden: a deprecated spelling, accepted but not listed.
        minimum: the least value of an integer or ratio.
        panel: the group ``--help`` lists it under.
    """

    names: tuple[str, ...]
    kind: Kind
    doc: str
    default: Any = None
    choices: tuple[str, ...] = ()
    metavar: str | None = None
    hidden: bool = False
    minimum: float | None = None
    panel: Panel = Panel.RUNNING


@dataclass(frozen=True)
class DeclaredFlag:
    """A flags class's field and its :class:`Flag`."""

    name: str
    flag: Flag


def flag(*names: str, kind: Kind | None = None, doc: str | None = None,
         like: tuple[type, str] | None = None, default: Any = None, shown: Any = None,
         choices: tuple[str, ...] | None = None, metavar: str | None = None,
         hidden: bool = False, minimum: float | None = None,
         panel: Panel = Panel.RUNNING) -> Any:
    """A dataclass field declared as a command-line flag; its value is ``default`` when the
    flag is not given (``None`` by default: the configuration, then the setting's default,
    applies).

    ``like=(SettingsClass, "field")`` makes the flag stand for that setting: its kind, choices
    and default come from the declaration, and its help is the setting's doc (unless ``doc``
    says it for the command line), so the option is described once for ``cep.toml`` and the
    command line.  ``shown`` is the default ``--help`` shows when it is not the setting's;
    ``panel`` the group ``--help`` lists the flag under.

    Raises:
        ValueError: neither ``kind`` nor ``like`` is given, or ``like`` names no setting.
    """
    f: Flag
    if like is not None:
        cls, name = like
        got = next((d for d in declared(cls) if d.name == name), None)
        if got is None:
            raise ValueError(f"{cls.__name__} declares no setting {name!r}")
        s = got.setting
        text = s.doc[:1].upper() + s.doc[1:] + "."
        f = Flag(names, kind or s.kind, doc or text,
                 got.default if shown is None else shown,
                 s.choices if choices is None else choices, metavar, hidden,
                 1 if s.positive and minimum is None else minimum, panel)
    elif kind is None or doc is None:
        raise ValueError("a flag needs a kind and a doc, or a setting it stands for (like=)")
    else:
        f = Flag(names, kind, doc, default if shown is None else shown, choices or (),
                 metavar, hidden, minimum, panel)
    if f.kind is Kind.LIST and default is None:
        default = ()  # a repeatable flag given no time
    return field(default=default, metadata={"flag": f})


def flags_of(cls: type) -> list[DeclaredFlag]:
    """The flags a dataclass declares, in field order."""
    return [DeclaredFlag(f.name, f.metadata["flag"]) for f in fields(cls)
            if "flag" in f.metadata]
