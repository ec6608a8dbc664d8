"""``cep.toml``: the deployment description, loaded into typed, immutable dataclasses.

Tables (every key optional unless marked):

* ``[sources.NAME]`` — ``kind`` (``kafka`` | ``file``), ``topic`` (kafka, required) or ``path``
  (file, required; ``-`` is standard input), ``format`` (``json`` | ``msgpack`` | ``csv``),
  ``event_time`` (field, default ``ts``), ``event_time_unit`` (``ms`` ``s`` ``us`` ``ns``
  ``iso``), ``max_out_of_orderness`` and ``idle_timeout`` (durations), ``follow`` (file only),
  ``partition_key`` (Kafka: the field paths its producers key by, e.g. ``["user.name"]``),
  ``columns`` (a headerless CSV file's column names) and ``time_format`` (file only: strptime
  directives such as ``"%Y%m%d%H%M"``, or ``iso``, ``epoch_ms``, ``epoch_s``…);
* ``[sinks.NAME]`` — ``kind`` (``kafka`` | ``file``), ``topic`` or ``path``;
* ``[kafka]`` — ``bootstrap_servers`` (required with Kafka), ``group_id``,
  ``group_instance_id`` (static membership: a restarted member keeps its partitions without
  a rebalance), ``exactly_once`` (default true), ``client_id``, security
  (``security_protocol``, ``sasl_mechanism``,
  ``sasl_plain_username``, ``sasl_plain_password``, ``ssl_cafile``, ``ssl_certfile``,
  ``ssl_keyfile``, ``ssl_password``, ``ssl_check_hostname``), ``changelog_topic``,
  ``max_event_bytes``, ``max_partition_fetch_bytes``, ``session_timeout``,
  ``transaction_timeout``, ``auto_offset_reset``, and ``checkpoint_interval`` /
  ``checkpoint_records`` (also accepted under ``[state]``), ``repartition`` (default true),
  ``repartition_partitions`` (default: the source partition count), ``repartition_retention``
  (duration, default 1 day);
* ``[state]`` — ``max_partial_matches_per_key``, ``max_future_skew`` (a duration or
  ``"off"``), ``checkpoint_dir`` (file mode),
  ``checkpoint_interval`` (default 100 ms), ``checkpoint_records`` (default 10,000),
  ``max_events_per_match`` (default 1,000);
* ``[rules]`` — ``paths`` (list), ``reload`` (default true);
* ``[metrics]`` — ``http`` (``HOST:PORT``).

A duration is a string such as ``"500ms"``, ``"5s"``, ``"2m"``, ``"1h"``, ``"1d"`` or an integer
number of milliseconds.  Relative paths are resolved against the directory of the file.  Every
problem (unknown key, wrong type, missing value) is collected and reported at once as a
:class:`~cep.errors.ConfigError` whose message names the key with ``file:line``.  Passwords are
held in :class:`Secret`, whose ``repr`` and ``str`` never show the value.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cep.errors import ConfigError
from cep.settings import Kind, declared, doc_rows, setting

__all__ = [
    "Secret", "SourceConfig", "SinkConfig", "KafkaConfig", "StateConfig", "RulesConfig",
    "MetricsConfig", "Config", "load_config", "parse_config", "parse_duration",
    "options_markdown",
]

FORMATS = ("json", "msgpack", "csv")
TIME_UNITS = ("ms", "s", "us", "ns", "iso")
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "GSSAPI")
_DURATION = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h|d)\s*")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class Secret:
    """A secret string (a password).  ``repr``/``str`` print ``'***'``; :meth:`reveal`
    returns the value for the one place that needs it (the Kafka client)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))


@dataclass(frozen=True)
class SourceConfig:
    """One ``[sources.NAME]``.  Times in milliseconds; ``idle_timeout_ms`` ``None`` = never idle."""

    name: str
    kind: str
    topic: str | None = setting(None, Kind.TEXT, "the topic (Kafka sources; required)")
    path: str | None = setting(None, Kind.PATH, "the file (file sources; required; - is "
                                                "standard input)")
    format: str = setting("json", Kind.CHOICE,
                          "`json` or `msgpack` (Kafka); `json` or `csv` (files)", choices=FORMATS)
    event_time: str = setting("ts", Kind.TEXT, "the field holding the event time")
    event_time_unit: str = setting("ms", Kind.CHOICE,
                                   "`ms`, `s`, `us`, `ns` (epoch numbers) or `iso`",
                                   choices=TIME_UNITS)
    max_out_of_orderness_ms: int = setting(0, Kind.DURATION, "the watermark bound")
    idle_timeout_ms: int | None = setting(
        None, Kind.DURATION, "after this long without events, a topic-partition stops "
                             "holding back its task's watermark (and the shuffle tasks')")
    follow: bool = setting(False, Kind.BOOL, "keep reading a growing file (files)")
    partition_key: tuple[str, ...] | None = setting(
        None, Kind.LIST, "Kafka: the field paths the topic's producers key by, "
                          "e.g. `[\"user.name\"]`; none: nothing is assumed")
    """Field paths (dotted) the topic's producers key by; ``None``: nothing is assumed."""
    columns: tuple[str, ...] | None = setting(
        None, Kind.NAMES, "the column names of a headerless CSV file")
    """File sources: the column names of a headerless CSV (``None``: a header row)."""
    time_format: str | None = setting(
        None, Kind.TEXT, "strptime directives or a named format (files); wins over "
                         "event_time_unit")
    """File sources: how event times are written (``cep.io.codecs.time_spec``: strptime
    directives or a named format); wins over ``event_time_unit``."""


@dataclass(frozen=True)
class SinkConfig:
    """One ``[sinks.NAME]``: a Kafka ``topic`` or a JSON-lines file ``path``."""

    name: str
    kind: str
    topic: str | None = setting(None, Kind.TEXT, "the topic (Kafka sinks)")
    path: str | None = setting(None, Kind.PATH, "the JSON-lines file (file sinks)")


@dataclass(frozen=True)
class KafkaConfig:
    """``[kafka]``.  Durations in milliseconds.  ``changelog_topic`` defaults to
    ``<group_id>.changelog``."""

    bootstrap_servers: tuple[str, ...] = setting(
        ("127.0.0.1:9092",), Kind.NAMES,
        "HOST:PORT of the brokers: a string (comma-separated) or a list")
    group_id: str = setting("cep", Kind.TEXT, "the consumer group; it also names the changelog, "
                                              "the repartition topics and the transactional ids")
    group_instance_id: str | None = setting(
        None, Kind.TEXT, "static membership: a restarted member gets its partitions back "
                         "without a rebalance")
    exactly_once: bool = setting(True, Kind.BOOL,
                                 "`false` gives at-least-once delivery (see below)")
    client_id: str = setting("cep", Kind.TEXT, "the client id the broker logs")
    security_protocol: str = setting(
        "PLAINTEXT", Kind.CHOICE, "`PLAINTEXT`, `SSL`, `SASL_PLAINTEXT` or `SASL_SSL`",
        choices=SECURITY_PROTOCOLS)
    sasl_mechanism: str | None = setting(
        None, Kind.CHOICE,
        "`PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512` or `GSSAPI`; required with `SASL_*`",
        choices=SASL_MECHANISMS)
    sasl_plain_username: str | None = setting(None, Kind.TEXT, "SASL user")
    sasl_plain_password: Secret | None = setting(
        None, Kind.SECRET, "SASL password (a secret: `${ENV}` is read from the environment)")
    ssl_cafile: str | None = setting(None, Kind.PATH, "CA bundle")
    ssl_certfile: str | None = setting(None, Kind.PATH, "client certificate")
    ssl_keyfile: str | None = setting(None, Kind.PATH, "client key")
    ssl_password: Secret | None = setting(None, Kind.SECRET, "the client key's password")
    ssl_check_hostname: bool = setting(True, Kind.BOOL, "check the broker's host name")
    changelog_topic: str = setting("", Kind.TEXT, "the compacted topic that holds checkpoints "
                                                  "(default `<group_id>.changelog`)")
    max_event_bytes: int = setting(1 << 20, Kind.INT,
                                   "larger values are sent to the dead-letter topic",
                                   positive=True)
    max_partition_fetch_bytes: int = setting(
        8 << 20, Kind.INT,
        "the most one fetch returns of one partition (the consumer's "
        "`max.partition.fetch.bytes`); larger fetches cost the broker less CPU while a "
        "partition is behind, and buffer more in `cep`", positive=True)
    session_timeout_ms: int = setting(10_000, Kind.DURATION,
                                      "how long a silent member keeps its partitions")
    transaction_timeout_ms: int = setting(
        60_000, Kind.DURATION, "the broker aborts a transaction that stays open longer")
    auto_offset_reset: str = setting(
        "earliest", Kind.CHOICE, "where to start a partition that has no checkpoint "
                                       "and no committed offset",
        choices=("earliest", "latest"))
    repartition: bool = setting(True, Kind.BOOL, "serve rules keyed unlike the topics through "
                                                 "repartition topics; `false`: such a rule is an "
                                                 "error at start")
    repartition_partitions: int | None = setting(
        None, Kind.INT, "partitions of the repartition topics (default: "
                         "the source partition count, which it must equal)",
        positive=True)
    repartition_retention_ms: int = setting(86_400_000, Kind.DURATION,
                                            "`retention.ms` of the repartition topics "
                                            "(consumed records are deleted sooner)")

    @property
    def changelog(self) -> str:
        return self.changelog_topic or f"{self.group_id}.changelog"


@dataclass(frozen=True)
class StateConfig:
    """``[state]``: the per-key cap, where file mode checkpoints, and how often (ms / records)."""

    max_partial_matches_per_key: int = setting(
        10_000, Kind.INT, "evicts whole cohorts of a key beyond it, from the middle of start order",
        positive=True)
    max_events_per_match: int = setting(
        1_000, Kind.INT, "the most events an alert's `match` shows; a longer one "
                        "is cut down, with `events_omitted`", positive=True)
    """The most events an alert's ``match`` shows; a longer match is emitted cut down, with
    ``"events_omitted"`` (``cep.operator.records.MAX_EVENTS_PER_MATCH``, the same default)."""
    checkpoint_dir: str | None = setting(None, Kind.PATH,
                                         "file mode: the directory for checkpoints")
    checkpoint_interval_ms: int = setting(
        100, Kind.DURATION, "how often state is checkpointed (also under `[kafka]`)")
    checkpoint_records: int = setting(
        10_000, Kind.INT, "also checkpoint after this many records (also under `[kafka]`)",
        positive=True)
    max_future_skew_ms: int | None = setting(
        86_400_000, Kind.DURATION_OR_OFF, "an event time further ahead of the wall "
                                          "clock or of the stream's recent time is a "
                                          "`future_event_time` dead letter (`\"off\"`: no bound)")
    """How far ahead of the stream's recent time (and, live, of the wall clock) an event time
    may be before it is dead-lettered as ``future_event_time``; ``None`` (``"off"``): no
    bound (see :mod:`cep.operator.time_guard`)."""


@dataclass(frozen=True)
class RulesConfig:
    """``[rules]``: rule files or directories and whether to reload them on change."""

    paths: tuple[str, ...] = setting((), Kind.LIST,
                                     "rule files or directories (`--rules` overrides them)")
    reload: bool = setting(True, Kind.BOOL, "reload them when they change")
    schema: str | None = setting(None, Kind.PATH, "event schema (YAML, docs/schema.md) that "
                                 "`cep check` checks the rules' fields against (`--schema` "
                                 "overrides it)")
    sigma_pipelines: tuple[str, ...] = setting(
        (), Kind.LIST, "pySigma processing pipelines of the Sigma rules (`.yml`), in order: "
        "shipped names (`windows-xml`, `windows-flat`, `winlogbeat`) or pipeline files "
        "(`--sigma-pipeline` overrides them; docs/sigma.md)")


@dataclass(frozen=True)
class MetricsConfig:
    """``[metrics]``: ``http`` is ``HOST:PORT`` or ``None`` (off)."""

    http: str | None = setting(None, Kind.TEXT,
                               "`HOST:PORT` of `/metrics`, `/status` and `/-/reload`")


@dataclass(frozen=True)
class Config:
    """A whole ``cep.toml``."""

    sources: dict[str, SourceConfig] = field(default_factory=dict)
    sinks: dict[str, SinkConfig] = field(default_factory=dict)
    kafka: KafkaConfig | None = None
    state: StateConfig = field(default_factory=StateConfig)
    rules: RulesConfig = field(default_factory=RulesConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    path: str = ""

    @property
    def kafka_sources(self) -> list[SourceConfig]:
        return [s for s in self.sources.values() if s.kind == "kafka"]

    @property
    def uses_kafka(self) -> bool:
        return bool(self.kafka_sources)


def parse_duration(value: Any) -> int:
    """``"500ms"``, ``"5s"``, ``"1.5m"``, ``"2h"``, ``"1d"`` or an int (ms) → milliseconds.

    The one duration parser: config files, test files and every command-line flag.  A
    string needs a unit (``"5"`` is an error whose message asks ``5ms?``); only a typed
    integer (TOML or YAML) is read as milliseconds.  Raises ValueError for anything else
    (negative numbers and booleans included)."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"a duration cannot be negative: {value}")
        return value
    if isinstance(value, str):
        m = _DURATION.fullmatch(value)
        if m:
            return round(float(m.group(1)) * _UNIT_MS[m.group(2)])
        bare = value.strip()
        if re.fullmatch(r"[0-9]+(\.[0-9]+)?", bare):
            raise ValueError(f"a duration needs a unit: {value!r} ({bare}ms? {bare}s?)")
    raise ValueError(f"not a duration: {value!r} (use e.g. 500ms, 30s, 5m, 2h or 1d)")


# ---------------------------------------------------------------------------- parsing


class _Reader:
    """Collects errors while reading tables; knows the text to point at lines."""

    def __init__(self, text: str, file: str, base: Path) -> None:
        self.lines = text.splitlines()
        self.file = file
        self.base = base
        self.errors: list[tuple[int, str]] = []

    def error(self, table: str, key: str | None, message: str) -> None:
        """Record a problem at ``key`` of ``[table]`` (reported in line order)."""
        line = _find_line(self.lines, table, key)
        where = f"{self.file}:{line}" if line else self.file
        self.errors.append((line or 0, f"{where}: {message}"))

    def table(self, data: dict[str, Any], table: str, allowed: dict[str, type | tuple[type, ...]]
              ) -> dict[str, Any]:
        """Check keys and value types of one table; return the valid entries."""
        out: dict[str, Any] = {}
        for key, value in data.items():
            expect = allowed.get(key)
            if expect is None:
                known = ", ".join(sorted(allowed))
                self.error(table, key, f"unknown key {key!r} in [{table}] (known keys: {known})")
            elif isinstance(value, bool) and expect is not bool and bool not in _tuple(expect):
                self.error(table, key, f"[{table}].{key} must be {_type_name(expect)}")
            elif not isinstance(value, expect):
                self.error(table, key, f"[{table}].{key} must be {_type_name(expect)}")
            else:
                out[key] = value
        return out

    def duration(self, table: str, d: dict[str, Any], key: str, default: int | None
                 ) -> int | None:
        if key not in d:
            return default
        try:
            return parse_duration(d[key])
        except ValueError as exc:
            self.error(table, key, f"[{table}].{key}: {exc}")
            return default

    def choice(self, table: str, d: dict[str, Any], key: str, options: tuple[str, ...],
               default: str | None) -> str | None:
        value = d.get(key, default)
        if value is not None and value not in options:
            self.error(table, key, f"[{table}].{key} is {value!r}; use one of {', '.join(options)}")
            return default
        return value

    def path(self, value: str) -> str:
        if value == "-" or Path(value).is_absolute():
            return value
        return os.path.normpath(self.base / value)

    def secret(self, table: str, d: dict[str, Any], key: str) -> Secret | None:
        """A secret value; ``${NAME}`` is replaced from the environment."""
        if key not in d:
            return None
        raw = d[key]
        missing = [n for n in _ENV.findall(raw) if n not in os.environ]
        if missing:
            self.error(table, key, f"[{table}].{key} names unset environment variable "
                       f"{missing[0]}")
            return None
        return Secret(_ENV.sub(lambda m: os.environ[m.group(1)], raw))


def _tuple(t: type | tuple[type, ...]) -> tuple[type, ...]:
    return t if isinstance(t, tuple) else (t,)


def _type_name(t: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", bool: "a boolean", list: "a list",
             dict: "a table", float: "a number"}
    return " or ".join(names.get(x, x.__name__) for x in _tuple(t))


def _find_line(lines: list[str], table: str, key: str | None) -> int | None:
    """Line (1-based) of ``key = …`` inside ``[table]`` (or of the header when ``key`` is
    None), by a plain scan of the text.  Best effort: ``None`` when not found."""
    current = ""
    header_line = None
    for i, raw in enumerate(lines, 1):
        line = raw.split("#", 1)[0].strip()
        m = re.fullmatch(r"\[\s*([^\[\]]+?)\s*\]", line)
        if m:
            current = re.sub(r"\s*\.\s*", ".", m.group(1)).replace('"', "")
            if current == table and header_line is None:
                header_line = i
            continue
        if key is None or current != table:
            continue
        k = line.split("=", 1)[0].strip().strip('"')
        if "=" in line and k == key:
            return i
    return header_line


_TYPES: dict[Kind, type | tuple[type, ...]] = {
    Kind.TEXT: str, Kind.INT: int, Kind.BOOL: bool, Kind.DURATION: (str, int),
    Kind.DURATION_OR_OFF: (str, int), Kind.PATH: str, Kind.SECRET: str, Kind.NAMES: (str, list),
    Kind.LIST: (str, list), Kind.CHOICE: str,
}


def _keys(cls: type, **extra: type | tuple[type, ...]) -> dict[str, type | tuple[type, ...]]:
    """The TOML keys of a settings class and the types their values may have."""
    return {d.setting.key: _TYPES[d.setting.kind] for d in declared(cls)} | extra


_SOURCE_KEYS = _keys(SourceConfig, kind=str)
_SINK_KEYS = _keys(SinkConfig, kind=str)
_CHECKPOINT_KEYS = ("checkpoint_interval", "checkpoint_records")  # also under [kafka]
_KAFKA_KEYS = _keys(KafkaConfig, **{k: v for k, v in _keys(StateConfig).items()
                                    if k in _CHECKPOINT_KEYS})
_STATE_KEYS = _keys(StateConfig)
_RULES_KEYS = _keys(RulesConfig)
_METRICS_KEYS = _keys(MetricsConfig)
_TOP = ("sources", "sinks", "kafka", "state", "rules", "metrics")


def _values(r: _Reader, table: str, d: dict[str, Any], cls: type) -> dict[str, Any]:
    """The settings of ``cls`` present in the checked table ``d``, read by their kind, as
    field name → value (problems reported through ``r``; a bad value keeps the default)."""
    out: dict[str, Any] = {}
    for dec in declared(cls):
        s = dec.setting
        if s.key not in d:
            continue
        v = d[s.key]
        if s.kind is Kind.DURATION:
            v = r.duration(table, d, s.key, dec.default)
        elif s.kind is Kind.DURATION_OR_OFF:
            v = None if v == "off" else r.duration(table, d, s.key, dec.default)
        elif s.kind is Kind.PATH:
            v = r.path(v)
        elif s.kind is Kind.SECRET:
            v = r.secret(table, d, s.key)
        elif s.kind in (Kind.NAMES, Kind.LIST):
            items = [v] if isinstance(v, str) and s.kind is Kind.LIST else (
                v.split(",") if isinstance(v, str) else v)
            names = tuple(x.strip() for x in items if isinstance(x, str) and x.strip())
            if len(names) != len(items) or (not names and s.kind is Kind.NAMES):
                r.error(table, s.key, f"[{table}].{s.key} must be {s.kind.value}: {s.doc}")
                continue
            v = names
        elif s.kind is Kind.CHOICE:
            v = r.choice(table, d, s.key, s.choices, dec.default)
        if s.positive and v is not None and v <= 0:
            r.error(table, s.key, f"[{table}].{s.key} must be positive")
            continue
        out[dec.name] = v
    return out


def _endpoint(r: _Reader, section: str, name: str, raw: Any,
              keys: dict[str, type | tuple[type, ...]]) -> tuple[str, dict[str, Any], str] | None:
    """The common part of ``[sources.NAME]`` and ``[sinks.NAME]``: a table with a ``kind``
    (``kafka`` needs a topic, ``file`` a path).  Returns ``(table, values, kind)``, or None
    after reporting why the table cannot be used."""
    table, what = f"{section}.{name}", section[:-1]
    if not isinstance(raw, dict):
        r.error(section, name, f"[{section}].{name} must be a table")
        return None
    d = r.table(raw, table, keys)
    kind = r.choice(table, d, "kind", ("kafka", "file"), None)
    if kind is None:
        r.error(table, None, f"[{table}] needs kind = \"kafka\" or \"file\"")
        return None
    if kind == "kafka" and "topic" not in d:
        r.error(table, None, f"[{table}] is a Kafka {what} and needs a topic")
    if kind == "file" and "path" not in d:
        r.error(table, None, f"[{table}] is a file {what} and needs a path")
    return table, d, kind


def _source(r: _Reader, name: str, raw: Any) -> SourceConfig | None:
    found = _endpoint(r, "sources", name, raw, _SOURCE_KEYS)
    if found is None:
        return None
    table, d, kind = found
    values = _values(r, table, d, SourceConfig)
    fmt = values.get("format", "json")
    if kind == "kafka" and fmt == "csv":
        r.error(table, "format", f"[{table}].format: csv is for files; use json or msgpack")
    if kind == "file" and fmt == "msgpack":
        r.error(table, "format", f"[{table}].format: msgpack is for Kafka; use json or csv")
    columns = values.get("columns")
    if columns is not None and len(set(columns)) != len(columns):
        r.error(table, "columns", f"[{table}].columns must list distinct column names")
    elif columns is not None and (kind != "file" or fmt != "csv"):
        r.error(table, "columns", f"[{table}].columns is for CSV files (format = \"csv\")")
    if values.get("time_format") is not None:
        values["time_format"] = _time_format(r, table, values["time_format"], kind)
    return SourceConfig(name=name, kind=kind, **values)


def _time_format(r: _Reader, table: str, value: str, kind: str) -> str | None:
    """``time_format``: strptime directives or a named format, checked here."""
    if kind != "file":
        r.error(table, "time_format", f"[{table}].time_format is for file sources")
        return None
    from cep.io.codecs import time_spec

    try:
        time_spec("ts", "ms", value)
    except ValueError as exc:
        r.error(table, "time_format", f"[{table}].time_format: {exc}")
        return None
    return value


def _sink(r: _Reader, name: str, raw: Any) -> SinkConfig | None:
    found = _endpoint(r, "sinks", name, raw, _SINK_KEYS)
    if found is None:
        return None
    table, d, kind = found
    return SinkConfig(name, kind, **_values(r, table, d, SinkConfig))


def _kafka(r: _Reader, raw: dict[str, Any]) -> tuple[KafkaConfig, dict[str, Any]]:
    d = r.table(raw, "kafka", _KAFKA_KEYS)
    cfg = KafkaConfig(**_values(r, "kafka", d, KafkaConfig))
    if cfg.security_protocol.startswith("SASL") and cfg.sasl_mechanism is None:
        r.error("kafka", "security_protocol",
                f"[kafka].security_protocol {cfg.security_protocol} needs sasl_mechanism")
    return cfg, d


def _state(r: _Reader, raw: dict[str, Any], kafka: dict[str, Any]) -> StateConfig:
    d = r.table(raw, "state", _STATE_KEYS)
    for key in _CHECKPOINT_KEYS:
        if key in d and key in kafka:
            r.error("kafka", key, f"{key} is set in both [state] and [kafka]; keep one")
    values = _values(r, "kafka", {k: kafka[k] for k in _CHECKPOINT_KEYS if k in kafka},
                     StateConfig)
    values.update(_values(r, "state", d, StateConfig))
    return StateConfig(**values)


def parse_config(text: str, file: str = "cep.toml") -> Config:
    """Parse the text of a ``cep.toml``.  Raises :class:`ConfigError` listing every problem
    (TOML syntax errors included) as ``file:line: message``."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: invalid TOML: {exc}") from None
    r = _Reader(text, file, Path(file).resolve().parent if file else Path.cwd())
    for key in doc:
        if key not in _TOP:
            r.error(key, None, f"unknown table or key {key!r} (known: {', '.join(_TOP)})")
    sources = {}
    for name, raw in _table_of(r, doc, "sources").items():
        s = _source(r, name, raw)
        if s is not None:
            sources[name] = s
    sinks = {}
    for name, raw in _table_of(r, doc, "sinks").items():
        k = _sink(r, name, raw)
        if k is not None:
            sinks[name] = k
    kafka_raw = _table_of(r, doc, "kafka")
    kafka: KafkaConfig | None = None
    kafka_d: dict[str, Any] = {}
    if kafka_raw or _needs_kafka(sources, sinks):
        kafka, kafka_d = _kafka(r, kafka_raw)
    state = _state(r, _table_of(r, doc, "state"), kafka_d)
    rd = r.table(_table_of(r, doc, "rules"), "rules", _RULES_KEYS)
    rules = _values(r, "rules", rd, RulesConfig)
    rules["paths"] = tuple(r.path(p) for p in rules.get("paths", ()))
    rules["sigma_pipelines"] = tuple(p if "/" not in p and "." not in p else r.path(p)
                                     for p in rules.get("sigma_pipelines", ()))
    md = r.table(_table_of(r, doc, "metrics"), "metrics", _METRICS_KEYS)
    metrics = _values(r, "metrics", md, MetricsConfig)
    if r.errors:
        raise ConfigError("\n".join(m for _, m in sorted(r.errors, key=lambda e: e[0])))
    return Config(
        sources=sources, sinks=sinks, kafka=kafka, state=state,
        rules=RulesConfig(**rules), metrics=MetricsConfig(**metrics), path=file,
    )


def _needs_kafka(sources: dict[str, SourceConfig], sinks: dict[str, SinkConfig]) -> bool:
    return any(s.kind == "kafka" for s in sources.values()) or any(
        s.kind == "kafka" for s in sinks.values())


def _table_of(r: _Reader, doc: dict[str, Any], name: str) -> dict[str, Any]:
    value = doc.get(name, {})
    if not isinstance(value, dict):
        r.error(name, None, f"{name} must be a table ([{name}])")
        return {}
    return value


_TABLES: tuple[tuple[str, type, tuple[tuple[str, str, str], ...]], ...] = (
    ("[kafka]", KafkaConfig, ()),
    ("[sources.NAME]", SourceConfig, (("kind", "required", "`kafka` or `file`"),)),
    ("[sinks.NAME]", SinkConfig, (("kind", "required", "`kafka` or `file`; one table per sink: "
                                   "`alerts`, `late`, `dead_letter`, or a sink that a rule "
                                   "names in `emit to`"),)),
    ("[state]", StateConfig, ()),
    ("[rules]", RulesConfig, ()),
    ("[metrics]", MetricsConfig, ()),
)


def options_markdown() -> str:
    """The option table of ``cep.toml`` as Markdown (``| table | key | default | meaning |``),
    made from the declarations (:mod:`cep.settings`); ``docs/kafka.md`` holds it, and a test
    keeps the two equal."""
    lines = ["| table | key | default | meaning |", "|---|---|---|---|"]
    for table, cls, extra in _TABLES:
        rows = [*extra, *doc_rows(cls)]
        for i, (key, default, doc) in enumerate(rows):
            lines.append(f"| {f'`{table}`' if i == 0 else ''} | `{key}` | {default} | {doc} |")
    return "\n".join(lines) + "\n"


def load_config(path: str | Path) -> Config:
    """Read and parse a ``cep.toml``.  Raises :class:`ConfigError` (unreadable file or any
    invalid setting)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {p}: {exc.strerror or exc}") from None
    return parse_config(text, str(p))
