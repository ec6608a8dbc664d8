"""What a file run is to do, from its flags and its ``cep.toml``: the one place they merge.

``cep run`` parses its flags into :class:`RunFlags` (``None``: not given) and calls
:func:`resolve_file_run`, which applies the configuration where a flag was not given and
returns a :class:`FileRun`: the input (:class:`~cep.app.pipeline.FileRunOptions`), the output
files by sink name, the checkpoint directory and the HTTP/reload settings.  Plain data, no
I/O besides checking that the input file exists.  Durations in milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from cep.app.logs import LOG_FORMATS
from cep.app.pipeline import FileRunOptions
from cep.config import (
    Config,
    KafkaConfig,
    RulesConfig,
    SourceConfig,
    StateConfig,
    load_config,
    parse_duration,
)
from cep.io.codecs import TimeSpec, time_spec
from cep.io.offsets import OffsetBound
from cep.operator.records import MAX_EVENTS_PER_MATCH
from cep.operator.time_guard import DEFAULT_MAX_SKEW_MS
from cep.settings import Kind, flag
from cep.settings import Panel as P

__all__ = ["RuleFlags", "CheckFlags", "EventFlags", "RunFlags", "ExplainFlags", "FileRun",
           "resolve_file_run", "input_format", "SettingsError",
           "ReplayFlags", "ReplayPlan", "resolve_replay", "parse_time", "parse_offsets"]


class SettingsError(ValueError):
    """Flags (with the configuration) that do not make a run; the message says why."""


_TIME_FORMAT_HELP = ("How event-time values are written: strptime directives "
                     "(%Y%m%d%H%M; no %z means UTC) or a named format: iso, epoch_ms, "
                     "epoch_s, epoch_us, epoch_ns.  Overrides --time-unit.")
_SKEW_HELP = ("An event time further ahead of the wall clock (or of the stream's recent "
              "time) than this is a future_event_time dead letter; off: no bound.")


@dataclass(frozen=True)
class RuleFlags:
    """The rule paths a command reads (its arguments and ``--rules``) and the pySigma
    pipelines its Sigma rule files go through."""

    rule_paths: tuple[str, ...] = flag(kind=Kind.LIST, metavar="[PATHS]...", panel=P.RULES,
                                       doc="Rule files or directories (as --rules).")
    rules: tuple[str, ...] = flag("--rules", "-r", kind=Kind.LIST, panel=P.RULES,
                                  doc="Rule files or directories; repeatable.")
    sigma_pipelines: tuple[str, ...] = flag(
        "--sigma-pipeline", like=(RulesConfig, "sigma_pipelines"), panel=P.RULES,
        doc="pySigma processing pipeline for the Sigma rules (.yml): a shipped name "
            "(windows-xml, windows-flat, winlogbeat) or a pipeline file; repeatable, applied "
            "in order (default: the config's [rules] sigma_pipelines).")

    @property
    def all_rules(self) -> list[str]:
        """Rule paths given as arguments and with ``--rules``, in that order."""
        return [*self.rule_paths, *self.rules]


@dataclass(frozen=True)
class CheckFlags(RuleFlags):
    """``cep check``'s flags as given, each declared once (:func:`cep.settings.flag`)."""

    config: str | None = flag("--config", "-c", kind=Kind.TEXT, doc=(
        "A cep.toml with Kafka sources: also print each rule's path (direct, or through "
        "which repartition topic); its [rules] paths when no PATHS."))
    schema: str | None = flag("--schema", like=(RulesConfig, "schema"), panel=P.RULES, doc=(
        "An event schema (YAML, docs/schema.md): unknown fields and literals of the wrong "
        "type are errors (default: the config's [rules] schema)."))
    strict: bool = flag("--strict", kind=Kind.BOOL, default=False,
                        doc="Warnings are errors (exit 1), for CI.")


@dataclass(frozen=True)
class EventFlags(RuleFlags):
    """The flags ``cep run`` and ``cep replay`` share: how input events are read and timed
    (durations as text until :func:`resolve_file_run` / :func:`resolve_replay` parse them),
    and where late events and dead letters go."""

    input_format: str | None = flag(
        "--input-format", like=(SourceConfig, "format"), choices=("json", "csv"),
        panel=P.INPUT, doc="json (JSON lines) or csv (a header row, or --columns); gzip, bz2 "
        "and zstd files are read as they are.")
    old_format: str | None = flag("--format", kind=Kind.TEXT, hidden=True, panel=P.INPUT,
                                  doc="Deprecated: --input-format.")
    columns: str | None = flag("--columns", kind=Kind.TEXT, panel=P.INPUT, doc=(
        "Column names of a headerless CSV, comma-separated (implies csv)."))
    event_time: str | None = flag("--event-time", like=(SourceConfig, "event_time"),
                                  panel=P.EVENT_TIME)
    time_unit: str | None = flag("--time-unit", like=(SourceConfig, "event_time_unit"),
                                 panel=P.EVENT_TIME)
    time_format: str | None = flag("--time-format", kind=Kind.TEXT, doc=_TIME_FORMAT_HELP,
                                   panel=P.EVENT_TIME)
    max_out_of_orderness: str | None = flag(
        "--max-out-of-orderness", like=(SourceConfig, "max_out_of_orderness_ms"),
        metavar="DURATION", panel=P.EVENT_TIME, doc="How late events may arrive and still "
        "be matched (e.g. 0s, 500ms, 5m).")
    max_future_skew: str | None = flag(
        "--max-future-skew", like=(StateConfig, "max_future_skew_ms"), metavar="DURATION",
        panel=P.EVENT_TIME, doc=_SKEW_HELP)
    late: str | None = flag("--late", kind=Kind.TEXT, panel=P.OUTPUT,
                            doc="Write late events (JSON lines) to this file.")
    dead_letter: str | None = flag("--dead-letter", kind=Kind.TEXT, panel=P.OUTPUT,
                                   doc="Write undecodable inputs, with the reason, to this "
                                   "file.")


@dataclass(frozen=True)
class RunFlags(EventFlags):
    """``cep run``'s flags as given: each declared once (:func:`cep.settings.flag`), most by
    the ``cep.toml`` setting they stand for; ``None`` (or ``()``): not given, and then the
    configuration or the setting's default applies.  Durations are text until
    :func:`resolve_file_run` parses them."""

    input_path: str | None = flag("--input", "-i", kind=Kind.TEXT, panel=P.INPUT,
                                  doc="Input file of events, or - for standard input.")
    source: str | None = flag("--source", kind=Kind.TEXT, shown="input", panel=P.INPUT,
                              doc="Source name of the input, for rules' `from`.")
    follow: bool = flag("--follow", kind=Kind.BOOL, default=False, panel=P.INPUT,
                        doc="Keep reading a growing file, as tail -f does.")
    output: str | None = flag("--output", "-o", kind=Kind.TEXT, panel=P.OUTPUT,
                              doc="Where alerts go (JSON lines); - is stdout.")
    sinks: tuple[str, ...] = flag("--sink", kind=Kind.LIST, panel=P.OUTPUT, doc=(
        "NAME=FILE for a sink a rule names in `emit to`; repeatable."))
    max_partial_matches_per_key: int | None = flag(
        "--max-partial-matches-per-key", like=(StateConfig, "max_partial_matches_per_key"),
        panel=P.LIMITS)
    max_events_per_match: int | None = flag(
        "--max-events-per-match", like=(StateConfig, "max_events_per_match"), panel=P.LIMITS)
    max_dead_letter_ratio: float | None = flag(
        "--max-dead-letter-ratio", kind=Kind.RATIO, minimum=0.0, panel=P.LIMITS,
        doc="Exit 4 when more than this share of the input (0-1) went to the dead letters.")
    checkpoint_dir: str | None = flag(
        "--checkpoint-dir", like=(StateConfig, "checkpoint_dir"), panel=P.LIMITS,
        doc="Checkpoint a file run here; a rerun on the same input resumes where it "
            "stopped, output files exact.")
    config: str | None = flag("--config", "-c", kind=Kind.TEXT,
                              doc="A cep.toml: sources, sinks, Kafka, state, rules.")
    http: str | None = flag("--http", kind=Kind.TEXT, doc=(
        "HOST:PORT for /metrics, /healthz, /status and POST /-/reload (default: off with "
        "files, 127.0.0.1:9464 with Kafka). :PORT is 127.0.0.1:PORT; 0.0.0.0:PORT serves "
        "every interface, and POST /-/reload then needs the token in $CEP_RELOAD_TOKEN "
        "(see docs/operations.md)."))
    log_format: str = flag("--log-format", kind=Kind.CHOICE, choices=LOG_FORMATS,
                           default="text", doc="Log lines on stderr.")
    quiet: bool = flag("--quiet", "-q", kind=Kind.BOOL, default=False,
                       doc="No summary on stderr.")


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


@dataclass(frozen=True)
class ReplayFlags(EventFlags):
    """``cep replay``'s flags as given, each declared once (:func:`cep.settings.flag`);
    ``None`` (or ``()``): not given.  :func:`resolve_replay` checks and merges them."""

    compare: tuple[str, str] | None = flag(
        "--compare", kind=Kind.PAIR, metavar="OLD NEW", panel=P.RULES,
        doc="Backtest: OLD and NEW rule paths over the same history.")
    input_format: str | None = flag(
        "--input-format", like=(SourceConfig, "format"), choices=("json", "csv", "msgpack"),
        panel=P.INPUT, doc="json or csv (files; gzip, bz2 and zstd files are read as they "
        "are), msgpack (Kafka).")
    inputs: tuple[str, ...] = flag("--input", "-i", kind=Kind.LIST, panel=P.INPUT,
                                   doc="Event files, read in order as one source; repeatable.")
    topics: tuple[str, ...] = flag("--topic", "-t", kind=Kind.LIST, panel=P.INPUT,
                                   doc="Kafka topic to replay; repeatable.")
    bootstrap: str | None = flag("--bootstrap", kind=Kind.TEXT, panel=P.INPUT,
                                 doc="Kafka bootstrap servers (HOST:PORT,…).")
    from_time: str | None = flag("--from", kind=Kind.TEXT, panel=P.INPUT,
                                 doc="First message timestamp: ISO-8601 or epoch ms.")
    to_time: str | None = flag("--to", kind=Kind.TEXT, panel=P.INPUT,
                               doc="Stop before this message timestamp: ISO-8601 or epoch ms.")
    from_offset: str | None = flag("--from-offset", kind=Kind.TEXT, panel=P.INPUT,
                                   doc="First offset: N (all partitions) or P:N,P:N.")
    to_offset: str | None = flag("--to-offset", kind=Kind.TEXT, panel=P.INPUT,
                                 doc="End offset (exclusive): N or P:N,P:N.")
    source: str | None = flag("--source", kind=Kind.TEXT, shown="input, or the topic",
                              panel=P.INPUT, doc="Source name for rules' `from`.")
    output: str | None = flag("--output", "-o", kind=Kind.TEXT, panel=P.OUTPUT,
                              doc="Alerts as JSON lines to this file (- is stdout).")
    output_topic: str | None = flag("--output-topic", kind=Kind.TEXT, panel=P.OUTPUT,
                                    doc="Alerts to this Kafka topic instead.")
    keep_open: bool = flag("--keep-open", kind=Kind.BOOL, default=False, panel=P.OUTPUT,
                           doc="Do not close pending windows at the end of the range.")
    report: str | None = flag("--report", kind=Kind.TEXT, panel=P.OUTPUT,
                              doc="Write the summary (and backtest diff) as JSON here.")
    max_events_per_match: int | None = flag(
        "--max-events-per-match", like=(StateConfig, "max_events_per_match"), panel=P.LIMITS,
        doc="The most events an alert's match shows; a longer match is cut down, with "
            "events_omitted (not in a backtest).")
    config: str | None = flag("--config", "-c", kind=Kind.TEXT,
                              doc="A cep.toml: its Kafka settings and Kafka sources.")
    progress: bool | None = flag("--progress/--no-progress", kind=Kind.BOOL,
                                 doc="Progress bar (default: on a terminal).")
    quiet: bool = flag("--quiet", "-q", kind=Kind.BOOL, default=False,
                       doc="No summary table.")


@dataclass(frozen=True)
class ReplayPlan:
    """A replay or backtest, checked: the rule paths (one group, or old and new), the history
    (``inputs``: files; else Kafka ``sources`` on ``kafka`` from ``start`` to ``end``), how
    events are read, where the outputs go.  Durations in milliseconds."""

    rule_groups: tuple[tuple[str, ...], ...]
    inputs: tuple[str, ...] = ()
    fmt: str = "json"
    time: TimeSpec = field(default_factory=TimeSpec)
    columns: tuple[str, ...] | None = None
    source: str = "input"
    kafka: KafkaConfig | None = None
    sources: tuple[SourceConfig, ...] = ()
    start: OffsetBound = field(default_factory=OffsetBound)
    end: OffsetBound = field(default_factory=OffsetBound)
    max_out_of_orderness_ms: int = 0
    max_future_skew_ms: int | None = DEFAULT_MAX_SKEW_MS
    max_events_per_match: int = MAX_EVENTS_PER_MATCH
    max_partial_matches_per_key: int = 10_000
    output: str | None = None
    output_topic: str | None = None
    late: str | None = None
    dead_letter: str | None = None
    report: str | None = None
    keep_open: bool = False
    progress: bool = False
    quiet: bool = False
    warnings: tuple[str, ...] = ()

    @property
    def is_backtest(self) -> bool:
        """Two rule sets (old, new) over the same history."""
        return len(self.rule_groups) == 2

    @property
    def summary_to_stderr(self) -> bool:
        """The summary goes to standard error when the alerts take standard output."""
        return self.output == "-" or (self.output is None and not self.output_topic
                                      and not self.is_backtest and bool(self.inputs))


def resolve_replay(flags: ReplayFlags, tty: bool = False) -> ReplayPlan:
    """Check ``cep replay``'s flags and merge them with the ``--config`` file (its
    ``[kafka]`` settings and Kafka sources; ``--bootstrap`` and ``--topic`` win) into a
    :class:`ReplayPlan`.

    Raises:
        SettingsError: flags that exclude each other, a missing rule path or input file, a
            bad duration, time, offset spec or time format, no history or no Kafka
            connection.
        cep.errors.CepError: an unreadable or invalid ``--config`` file.
    """
    f = flags
    rules = (*f.rule_paths, *f.rules)
    if f.compare is not None and rules:
        raise SettingsError("give --rules for a replay or --compare OLD NEW for a backtest, "
                            "not both")
    groups = ((f.compare[0],), (f.compare[1],)) if f.compare else (rules,)
    if not groups[0]:
        raise SettingsError("no rules: give --rules PATH (or --compare OLD NEW)")
    for p in (p for g in groups for p in g):
        if not Path(p).exists():
            raise SettingsError(f"no such rule file or directory: {p}")
    kafka_mode = bool(f.topics) or (f.config is not None and not f.inputs)
    if kafka_mode == bool(f.inputs):
        raise SettingsError("give the history to replay: --input FILE… or --topic TOPIC "
                            "(with --bootstrap or --config)")
    if f.output and f.output_topic:
        raise SettingsError("--output and --output-topic exclude each other")
    if f.compare and (f.output or f.output_topic):
        raise SettingsError("a backtest writes a report (--report FILE), not alerts")
    fmt, warnings = input_format(f.input_format, f.old_format, f.columns,
                                 ("json", "csv", "msgpack"))
    try:
        spec = time_spec(f.event_time or "ts", f.time_unit or "ms", f.time_format)
    except ValueError as exc:
        raise SettingsError(f"--time-format: {exc}") from None
    ooo = _duration("--max-out-of-orderness", f.max_out_of_orderness or "0s")
    plan = ReplayPlan(
        rule_groups=groups, inputs=f.inputs, fmt=fmt, time=spec, columns=_columns(f.columns),
        source=f.source or "input", max_out_of_orderness_ms=ooo,
        max_future_skew_ms=(DEFAULT_MAX_SKEW_MS if f.max_future_skew is None
                            else _skew(f.max_future_skew)),
        max_events_per_match=f.max_events_per_match or MAX_EVENTS_PER_MATCH,
        output=f.output, output_topic=f.output_topic, late=f.late, dead_letter=f.dead_letter,
        report=f.report, keep_open=f.keep_open, quiet=f.quiet, warnings=warnings,
        progress=tty and not f.quiet if f.progress is None else f.progress)
    if not kafka_mode:
        if f.from_time or f.to_time or f.from_offset or f.to_offset:
            raise SettingsError("--from/--to/--from-offset/--to-offset select a Kafka range; "
                                "a file replay reads the whole files")
        for p in f.inputs:
            if not Path(p).is_file():
                raise SettingsError(f"no such input file: {p}")
        return plan
    return _kafka_replay(f, plan, ooo)


def _kafka_replay(f: ReplayFlags, plan: ReplayPlan, ooo: int) -> ReplayPlan:
    """The Kafka half of :func:`resolve_replay`: the range and where to read it."""
    if (f.from_time and f.from_offset) or (f.to_time and f.to_offset):
        raise SettingsError("give a bound as a time (--from/--to) or as offsets "
                            "(--from-offset/--to-offset), not both")
    try:
        start = OffsetBound(time_ms=parse_time(f.from_time)) if f.from_time else OffsetBound()
        end = OffsetBound(time_ms=parse_time(f.to_time)) if f.to_time else OffsetBound()
        if f.from_offset:
            start = _offset_bound(parse_offsets(f.from_offset))
        if f.to_offset:
            end = _offset_bound(parse_offsets(f.to_offset))
    except ValueError as exc:
        raise SettingsError(str(exc)) from None
    cfg = load_config(f.config) if f.config else None
    if cfg is not None and cfg.kafka is not None:
        kafka = cfg.kafka
        if f.bootstrap:
            kafka = replace(kafka, bootstrap_servers=(f.bootstrap,))
    elif f.bootstrap:
        kafka = KafkaConfig(bootstrap_servers=tuple(f.bootstrap.split(",")))
    else:
        raise SettingsError("Kafka replay needs --bootstrap HOST:PORT or a --config with "
                            "[kafka]")
    configured = {s.topic: s for s in (cfg.kafka_sources if cfg else [])}
    sources = tuple(configured.get(t) or SourceConfig(
        name=f.source or t, kind="kafka", topic=t, format=plan.fmt,
        event_time=plan.time.field, event_time_unit=plan.time.unit,
        max_out_of_orderness_ms=ooo) for t in f.topics) or tuple(configured.values())
    if not sources:
        raise SettingsError("no Kafka topics: give --topic or Kafka sources in the --config")
    return replace(plan, kafka=kafka, sources=sources, start=start, end=end)


def _offset_bound(spec: int | dict[int, int]) -> OffsetBound:
    return OffsetBound(offset=spec) if isinstance(spec, int) else OffsetBound(offsets=spec)


def parse_time(text: str) -> int:
    """``--from``/``--to``: epoch milliseconds, or ISO-8601 (``2024-05-01``,
    ``2024-05-01T12:00:00Z``; no offset means UTC) → epoch ms.  Raises ``ValueError``."""
    t = text.strip()
    if t.lstrip("-").isdigit():
        return int(t)
    try:
        dt = datetime.fromisoformat(t[:-1] + "+00:00" if t.endswith(("Z", "z")) else t)
    except ValueError:
        raise ValueError(f"not a time: {text!r} (use epoch ms or ISO-8601, e.g. "
                         "2024-05-01T12:00:00Z)") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return round(dt.timestamp() * 1000)


def parse_offsets(text: str) -> int | dict[int, int]:
    """``--from-offset``/``--to-offset``: ``N`` (every partition) or ``P:N,P:N`` (per
    partition).  Raises ``ValueError``."""
    t = text.strip()
    if t.isdigit():
        return int(t)
    out: dict[int, int] = {}
    for part in t.split(","):
        p, sep, n = part.strip().partition(":")
        if not sep or not p.isdigit() or not n.isdigit():
            raise ValueError(f"not an offset spec: {text!r} (use N, or PARTITION:OFFSET,… "
                             "e.g. 0:100,1:250)")
        out[int(p)] = int(n)
    return out


@dataclass(frozen=True)
class ExplainFlags(RuleFlags):
    """``cep explain``'s flags as given, each declared once (:func:`cep.settings.flag`)."""

    rule: str | None = flag("--rule", kind=Kind.TEXT, doc="Only this rule.", panel=P.RULES)
    output_format: str = flag("--output-format", "--format", kind=Kind.CHOICE,
                              choices=("text", "dot", "png", "svg"), default="text",
                              panel=P.OUTPUT,
                              doc="text, dot (Graphviz source), png or svg (need Graphviz).")
    output: str | None = flag("--output", "-o", kind=Kind.TEXT, panel=P.OUTPUT,
                              doc="Write to this file instead of standard output.")
    states: bool = flag("--states", kind=Kind.BOOL, default=False, panel=P.OUTPUT,
                        doc="Draw the compiled NFA's states, not one node per stage.")
    trace: str | None = flag("--trace", kind=Kind.TEXT, metavar="RULE", panel=P.OUTPUT, doc=(
        "Trace this rule over --input for one --key: every event's fate."))
    keys: tuple[str, ...] = flag("--key", kind=Kind.LIST, panel=P.OUTPUT,
                                 doc="FIELD=VALUE of the traced key, one per key field.")
    input_path: str | None = flag("--input", "-i", kind=Kind.TEXT, panel=P.INPUT,
                                  doc="Events to trace (JSON lines; compressed files too).")
    max_out_of_orderness: str | None = flag(
        "--max-out-of-orderness", like=(SourceConfig, "max_out_of_orderness_ms"),
        metavar="DURATION", doc="As for cep run.", panel=P.EVENT_TIME)
    event_time: str | None = flag("--event-time", like=(SourceConfig, "event_time"),
                                  panel=P.EVENT_TIME)
    time_unit: str | None = flag("--time-unit", like=(SourceConfig, "event_time_unit"),
                                 panel=P.EVENT_TIME)

    def trace_time(self) -> tuple[TimeSpec, int]:
        """The traced input's event time and its out-of-orderness (ms).

        Raises:
            SettingsError: a bad duration.
        """
        return (TimeSpec(self.event_time or "ts", self.time_unit or "ms"),
                _duration("--max-out-of-orderness", self.max_out_of_orderness or "0s"))
