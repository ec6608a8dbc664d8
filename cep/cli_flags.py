"""Typer options made from flag declarations: a command takes its flags as one typed record.

A flags class (``RunFlags``, ``ReplayFlags`` in :mod:`cep.app.settings`) declares each option
once with :func:`cep.settings.flag` — names, kind, help, choices, default, often by pointing
at the ``cep.toml`` setting it stands for.  :func:`takes` turns a function of that record
into a typer command: the parameters typer reads (``inspect.signature``) are made from the
declarations, choices become an :class:`enum.Enum` so ``--help`` lists them, and each call
builds the record from what was given (a flag not given keeps the record's default).  Layer 6.
"""

import enum
import inspect
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer

from cep.settings import Flag, Kind, Panel, flags_of, value_text

__all__ = ["takes"]

T = TypeVar("T")

_TYPES: dict[Kind, Any] = {
    Kind.BOOL: bool, Kind.INT: int | None, Kind.RATIO: float | None,
    Kind.LIST: list[str] | None, Kind.NAMES: str | None, Kind.PAIR: tuple[str, str] | None,
}


# typer's own "Options" group (with --help) holds the flags about running the command
_PANELS = {p: None if p is Panel.RUNNING else p.value for p in Panel}


def _choice_type(name: str, choices: tuple[str, ...]) -> type[enum.Enum]:
    """An enum whose values are ``choices``, for ``--help`` to list (``[json|csv]``)."""
    return enum.Enum(name, [(c, c) for c in choices], type=str)  # type: ignore[return-value]


def _help(f: Flag) -> str:
    """The ``--help`` text: the declared doc (a setting's Markdown backticks dropped) and the
    default."""
    doc = f.doc.replace("`", "").replace("[", "\\[")  # rich would read "[rules]" as markup
    if f.default is None or f.default == () or f.kind is Kind.BOOL:
        return doc
    return f"{doc}  Default {value_text(f.default, f.kind, quote='')}."


def _parameter(name: str, f: Flag) -> inspect.Parameter:
    """The typer parameter of one declared flag (keyword-only, default ``None``/``False``)."""
    typ = (_choice_type(name, f.choices) | None if f.kind is Kind.CHOICE
           else _TYPES.get(f.kind, str | None))
    info: Any
    if not f.names:
        info = typer.Argument(metavar=f.metavar, help=f.doc, show_default=False)
    else:
        extra: dict[str, Any] = {}
        if f.minimum is not None:
            extra["min"] = f.minimum
        if f.kind is Kind.RATIO:
            extra["max"] = 1.0
        info = typer.Option(*f.names, help=_help(f), metavar=f.metavar, hidden=f.hidden,
                            show_default=False, rich_help_panel=_PANELS[f.panel], **extra)
    if f.kind is Kind.BOOL and f.default is None:
        typ = bool | None  # --x/--no-x, neither given: None
    default = False if f.kind is Kind.BOOL and f.default is not None else None
    kind = (inspect.Parameter.POSITIONAL_OR_KEYWORD if not f.names
            else inspect.Parameter.KEYWORD_ONLY)
    return inspect.Parameter(name, kind, annotation=Annotated[typ, info], default=default)


def takes(cls: type[T]) -> Callable[[Callable[[T], None]], Callable[..., None]]:
    """Decorator: ``@takes(RunFlags) def run(flags: RunFlags) -> None`` is a typer command
    whose options are ``RunFlags``'s declared flags; its docstring is the command's help.
    ``--help`` lists them by :class:`~cep.settings.Panel`, in declaration order within one.

    A flag not given (``None``, or a repeatable flag given no time) leaves the record's
    default; a choice arrives as its text; a repeatable flag as a tuple.
    """
    declared = flags_of(cls)
    order = {p: i for i, p in enumerate(Panel)}
    declared.sort(key=lambda d: (bool(d.flag.names), order[d.flag.panel]))  # stable
    params = [_parameter(d.name, d.flag) for d in declared]  # the positional argument first

    def wrap(body: Callable[[T], None]) -> Callable[..., None]:
        def command(*args: Any, **given: Any) -> None:
            for p, v in zip(params, args, strict=False):
                given[p.name] = v
            values = {}
            for k, v in given.items():
                if v is None or v == []:
                    continue
                values[k] = v.value if isinstance(v, enum.Enum) else (
                    tuple(v) if isinstance(v, list) else v)
            body(cls(**values))

        command.__name__ = body.__name__
        command.__qualname__ = body.__qualname__
        command.__doc__ = body.__doc__
        command.__module__ = body.__module__
        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        return command

    return wrap
