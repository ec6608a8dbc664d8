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

from cep.app.logs import LOG_FORMATS
from cep.app.pipeline import FileRunOptions
from cep.config import Config, SourceConfig, StateConfig, parse_duration
from cep.io.codecs import time_spec
from cep.settings import Kind, flag

__all__ = ["RunFlags", "FileRun", "resolve_file_run", "input_format", "SettingsError"]


class SettingsError(ValueError):
    """Flags (with the configuration) that do not make a run; the message says why."""


_TIME_FORMAT_HELP = ("How event-time values are written: strptime directives "
                     "(%Y%m%d%H%M; no %z means UTC) or a named format: iso, epoch_ms, "
                     "epoch_s, epoch_us, epoch_ns.  Overrides --time-unit.")
_SKEW_HELP = ("An event time further ahead of the wall clock (or of the stream's recent "
              "time) than this is a future_event_time dead letter; off: no bound.")


@dataclass(frozen=True)
class RunFlags:
    """``cep run``'s flags as given: each declared once (:func:`cep.settings.flag`), most by
    the ``cep.toml`` setting they stand for; ``None`` (or ``()``): not given, and then the
    configuration or the setting's default applies.  Durations are text until
    :func:`resolve_file_run` parses them."""

    rule_paths: tuple[str, ...] = flag(kind=Kind.LIST, metavar="[PATHS]...",
                                       doc="Rule files or directories (as --rules).")
    rules: tuple[str, ...] = flag("--rules", "-r", kind=Kind.LIST,
                                  doc="Rule files or directories; repeatable.")
    input_path: str | None = flag("--input", "-i", kind=Kind.TEXT,
                                  doc="Input file of events, or - for standard input.")
    output: str | None = flag("--output", "-o", kind=Kind.TEXT,
                              doc="Where alerts go (JSON lines); - is stdout.")
    input_format: str | None = flag(
        "--input-format", like=(SourceConfig, "format"), choices=("json", "csv"),
        doc="json (JSON lines) or csv (a header row, or --columns); gzip, bz2 and zstd "
            "files are read as they are.")
    old_format: str | None = flag("--format", kind=Kind.TEXT, hidden=True,
                                  doc="Deprecated: --input-format.")
    columns: str | None = flag("--columns", kind=Kind.TEXT, doc=(
        "Column names of a headerless CSV, comma-separated (implies csv)."))
    event_time: str | None = flag("--event-time", like=(SourceConfig, "event_time"))
    time_unit: str | None = flag("--time-unit", like=(SourceConfig, "event_time_unit"))
    time_format: str | None = flag("--time-format", kind=Kind.TEXT, doc=_TIME_FORMAT_HELP)
    max_out_of_orderness: str | None = flag(
        "--max-out-of-orderness", like=(SourceConfig, "max_out_of_orderness_ms"),
        metavar="DURATION", doc="How late events may arrive and still be matched "
        "(e.g. 0s, 500ms, 5m).")
    max_future_skew: str | None = flag(
        "--max-future-skew", like=(StateConfig, "max_future_skew_ms"), metavar="DURATION",
        doc=_SKEW_HELP)
    late: str | None = flag("--late", kind=Kind.TEXT,
                            doc="Write late events (JSON lines) to this file.")
    dead_letter: str | None = flag("--dead-letter", kind=Kind.TEXT,
                                   doc="Write undecodable input lines to this file.")
    sinks: tuple[str, ...] = flag("--sink", kind=Kind.LIST, doc=(
        "NAME=FILE for a sink a rule names in `emit to`; repeatable."))
    follow: bool = flag("--follow", kind=Kind.BOOL, default=False,
                        doc="Keep reading a growing file, as tail -f does.")
    max_partial_matches_per_key: int | None = flag(
        "--max-partial-matches-per-key", like=(StateConfig, "max_partial_matches_per_key"),
    )
    max_events_per_match: int | None = flag(
        "--max-events-per-match", like=(StateConfig, "max_events_per_match"))
    max_dead_letter_ratio: float | None = flag(
        "--max-dead-letter-ratio", kind=Kind.RATIO, minimum=0.0,
        doc="Exit 4 when more than this share of the input (0-1) went to the dead letters.")
    source: str | None = flag("--source", kind=Kind.TEXT, shown="input",
                              doc="Source name of the input, for rules' `from`.")
    quiet: bool = flag("--quiet", "-q", kind=Kind.BOOL, default=False,
                       doc="No summary on stderr.")
    config: str | None = flag("--config", "-c", kind=Kind.TEXT,
                              doc="A cep.toml: sources, sinks, Kafka, state, rules.")
    http: str | None = flag("--http", kind=Kind.TEXT, doc=(
        "HOST:PORT for /metrics, /healthz, /status and POST /-/reload (default: off with "
        "files, 127.0.0.1:9464 with Kafka). :PORT is 127.0.0.1:PORT; 0.0.0.0:PORT serves "
        "every interface, and POST /-/reload then needs the token in $CEP_RELOAD_TOKEN "
        "(see docs/operations.md)."))
    log_format: str = flag("--log-format", kind=Kind.CHOICE, choices=LOG_FORMATS,
                           default="text", doc="Log lines on stderr.")
    checkpoint_dir: str | None = flag(
        "--checkpoint-dir", like=(StateConfig, "checkpoint_dir"),
        doc="Checkpoint a file run here; a rerun on the same input resumes where it "
            "stopped, output files exact.")

    @property
    def all_rules(self) -> list[str]:
        """Rule paths given as arguments and with ``--rules``, in that order."""
        return [*self.rule_paths, *self.rules]


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
    warnings: tuple[str, ...] = ()


def resolve_file_run(flags: RunFlags, cfg: Config | None, tty: bool = False) -> FileRun:
    """Merge ``flags`` with ``cfg`` (its first file source and file sinks, ``[state]``,
    ``[rules]``, ``[metrics]``) into a :class:`FileRun`: a flag given wins, then the
    configuration, then the setting's default.  A file source of the configuration is the
    input when ``--input`` is not given.  ``tty``: standard error is a terminal (a progress
    bar, unless ``--quiet``).

    Raises:
        SettingsError: a bad duration, time format, ``--columns`` or ``--sink``, formats that
            disagree, or a missing input file.
    """
    f = flags
    fmt, warnings = input_format(f.input_format, f.old_format, f.columns)
    columns = _columns(f.columns)
    src = (next((s for s in cfg.sources.values() if s.kind == "file" and s.path), None)
           if cfg is not None and f.input_path is None else None)
    state = cfg.state if cfg is not None else StateConfig()
    outputs = {"alerts": f.output, "late": f.late, "dead_letter": f.dead_letter}
    for given in f.sinks:
        name, sep, path = given.partition("=")
        if not sep or not name or not path:
            raise SettingsError(f"--sink takes NAME=FILE, got {given!r}")
        outputs[name] = path
    for name, s in (cfg.sinks.items() if cfg is not None else ()):
        if s.kind == "file" and s.path and outputs.get(name) is None:
            outputs[name] = s.path
    if src is None:
        src = SourceConfig(name=f.source or "input", kind="file", path=f.input_path or "-",
                           format=fmt, columns=columns)
    elif f.input_format is None and f.columns is None:
        fmt, columns = src.format, src.columns
    input_path = src.path or "-"
    if input_path != "-" and not Path(input_path).is_file():
        raise SettingsError(f"no such input file: {input_path}")
    try:
        spec = time_spec(f.event_time or src.event_time, f.time_unit or src.event_time_unit,
                         f.time_format or src.time_format)
    except ValueError as exc:
        raise SettingsError(str(exc)) from None
    follow = f.follow or src.follow
    options = FileRunOptions(
        path=input_path, fmt=fmt, time=spec, columns=columns,
        max_out_of_orderness_ms=(src.max_out_of_orderness_ms if f.max_out_of_orderness is None
                                 else _duration("--max-out-of-orderness",
                                                f.max_out_of_orderness)),
        source=f.source or src.name, follow=follow,
        max_partial_matches_per_key=_given(f.max_partial_matches_per_key,
                                           state.max_partial_matches_per_key),
        max_events_per_match=_given(f.max_events_per_match, state.max_events_per_match),
        progress=tty and not f.quiet,
        max_future_skew_ms=(_skew(f.max_future_skew) if f.max_future_skew is not None
                            else state.max_future_skew_ms),
    )
    return FileRun(
        options=options,
        outputs={k: v for k, v in outputs.items() if v} | {"alerts": outputs["alerts"] or "-"},
        checkpoint_dir=f.checkpoint_dir or state.checkpoint_dir,
        watch=(cfg.rules.reload if cfg else True) and (follow or input_path == "-"),
        http=f.http or (cfg.metrics.http if cfg else None),
        warnings=warnings,
    )


def input_format(new: str | None, old: str | None, columns: str | None,
                 allowed: tuple[str, ...] = ("json", "csv")) -> tuple[str, tuple[str, ...]]:
    """The input format from ``--input-format``, the deprecated ``--format``, or ``csv`` when
    ``--columns`` is given; ``json`` otherwise — with the warnings to print.

    Raises:
        SettingsError: the two spellings disagree, an unknown format, or ``--columns`` with
            JSON.
    """
    warnings: tuple[str, ...] = ()
    if old is not None:
        warnings = ("--format is deprecated here; use --input-format",)
        if new is not None and new != old:
            raise SettingsError(f"--format {old} and --input-format {new} disagree")
    chosen = new or old
    if chosen is not None and chosen not in allowed:
        raise SettingsError(f"unknown input format {chosen!r}: use {' or '.join(allowed)}")
    if columns is not None and chosen == "json":
        raise SettingsError("--columns names the columns of a CSV: use it with "
                            "--input-format csv")
    return chosen or ("csv" if columns is not None else "json"), warnings


def _columns(text: str | None) -> tuple[str, ...] | None:
    """``--columns a,b,c`` → ``("a", "b", "c")``."""
    if text is None:
        return None
    names = tuple(c.strip() for c in text.split(","))
    if not all(names) or len(set(names)) != len(names):
        raise SettingsError(f"--columns {text!r}: give distinct, non-empty names, e.g. "
                            "ts,user,action")
    return names


def _given(flag: int | None, configured: int) -> int:
    return configured if flag is None else flag


def _duration(flag: str, text: str) -> int:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise SettingsError(f"{flag}: {exc}") from None


def _skew(text: str) -> int | None:
    return None if text.strip() == "off" else _duration("--max-future-skew", text)
