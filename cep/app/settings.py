"""What a file run is to do, from its flags and its ``cep.toml``: the one place they merge.

``cep run`` parses its flags into :class:`RunFlags` (``None``: not given) and calls
:func:`resolve_file_run`, which applies the configuration where a flag was not given and
returns a :class:`FileRun`: the input (:class:`~cep.app.pipeline.FileRunOptions`), the output
files by sink name, the checkpoint directory and the HTTP/reload settings.  Plain data, no
I/O besides checking that the input file exists.  Durations in milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cep.app.pipeline import FileRunOptions
from cep.config import Config, parse_duration
from cep.io.codecs import time_spec
from cep.operator.records import MAX_EVENTS_PER_MATCH
from cep.operator.time_guard import DEFAULT_MAX_SKEW_MS

__all__ = ["RunFlags", "FileRun", "resolve_file_run", "SettingsError"]


class SettingsError(ValueError):
    """Flags (with the configuration) that do not make a run; the message says why."""


@dataclass(frozen=True)
class RunFlags:
    """``cep run``'s flags as given (``None``: not given; then the configuration or the
    default applies).  ``fmt`` is already the input format the flags chose."""

    input_path: str | None = None
    output: str | None = None
    late: str | None = None
    dead_letter: str | None = None
    sinks: tuple[str, ...] = ()  # NAME=FILE
    fmt: str = "json"
    columns: tuple[str, ...] | None = None
    event_time: str = "ts"
    time_unit: str = "ms"
    time_format: str | None = None
    max_out_of_orderness: str = "0s"
    max_future_skew: str | None = None  # a duration or "off"
    follow: bool = False
    source: str = "input"
    max_partial_matches_per_key: int = 10_000
    max_events_per_match: int | None = None
    checkpoint_dir: str | None = None
    http: str | None = None
    progress: bool = False


@dataclass(frozen=True)
class FileRun:
    """A file run, resolved: what to read (``options``), where each sink's records go
    (``outputs``: sink name → file, ``-`` standard output; ``alerts`` always there), where to
    checkpoint (``None``: nowhere), whether to watch the rule files and serve HTTP."""

    options: FileRunOptions
    outputs: dict[str, str] = field(default_factory=dict)
    checkpoint_dir: str | None = None
    watch: bool = False
    http: str | None = None


def resolve_file_run(flags: RunFlags, cfg: Config | None) -> FileRun:
    """Merge ``flags`` with ``cfg`` (its first file source and file sinks, ``[state]``,
    ``[rules]``, ``[metrics]``) into a :class:`FileRun`.  A file source of the configuration
    replaces the input flags when ``--input`` is not given.

    Raises:
        SettingsError: a bad duration, time format or ``--sink``, or a missing input file.
    """
    f = flags
    fmt, columns, source, follow = f.fmt, f.columns, f.source, f.follow
    event_time, time_unit, time_format = f.event_time, f.time_unit, f.time_format
    input_path, max_ooo = f.input_path, _duration("--max-out-of-orderness",
                                                  f.max_out_of_orderness)
    outputs = {"alerts": f.output, "late": f.late, "dead_letter": f.dead_letter}
    for given in f.sinks:
        name, sep, path = given.partition("=")
        if not sep or not name or not path:
            raise SettingsError(f"--sink takes NAME=FILE, got {given!r}")
        outputs[name] = path
    cap = f.max_partial_matches_per_key
    if cfg is not None and input_path is None:
        src = next((s for s in cfg.sources.values() if s.kind == "file"), None)
        if src is not None and src.path:
            input_path, fmt, source, follow = src.path, src.format, src.name, follow or src.follow
            event_time, time_unit = src.event_time, src.event_time_unit
            time_format = time_format or src.time_format
            columns = columns or src.columns
            max_ooo = src.max_out_of_orderness_ms
        for name, s in cfg.sinks.items():
            if s.kind == "file" and s.path and outputs.get(name) is None:
                outputs[name] = s.path
        cap = cfg.state.max_partial_matches_per_key
    input_path = input_path or "-"
    if input_path != "-" and not Path(input_path).is_file():
        raise SettingsError(f"no such input file: {input_path}")
    try:
        spec = time_spec(event_time, time_unit, time_format)
    except ValueError as exc:
        raise SettingsError(str(exc)) from None
    state = cfg.state if cfg is not None else None
    options = FileRunOptions(
        path=input_path, fmt=fmt, time=spec, columns=columns, max_out_of_orderness_ms=max_ooo,
        source=source, follow=follow, max_partial_matches_per_key=cap,
        max_events_per_match=(f.max_events_per_match if f.max_events_per_match is not None
                              else state.max_events_per_match if state else
                              MAX_EVENTS_PER_MATCH),
        progress=f.progress,
        max_future_skew_ms=(_skew(f.max_future_skew) if f.max_future_skew is not None
                            else state.max_future_skew_ms if state else DEFAULT_MAX_SKEW_MS),
    )
    return FileRun(
        options=options,
        outputs={k: v for k, v in outputs.items() if v} | {"alerts": outputs["alerts"] or "-"},
        checkpoint_dir=f.checkpoint_dir or (state.checkpoint_dir if state else None),
        watch=(cfg.rules.reload if cfg else True) and (follow or input_path == "-"),
        http=f.http or (cfg.metrics.http if cfg else None),
    )


def _duration(flag: str, text: str) -> int:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise SettingsError(f"{flag}: {exc}") from None


def _skew(text: str) -> int | None:
    return None if text.strip() == "off" else _duration("--max-future-skew", text)
