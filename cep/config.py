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

__all__ = [
    "Secret", "SourceConfig", "SinkConfig", "KafkaConfig", "StateConfig", "RulesConfig",
    "MetricsConfig", "Config", "load_config", "parse_config", "parse_duration",
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
    topic: str | None = None
    path: str | None = None
    format: str = "json"
    event_time: str = "ts"
    event_time_unit: str = "ms"
    max_out_of_orderness_ms: int = 0
    idle_timeout_ms: int | None = None
    follow: bool = False
    partition_key: tuple[str, ...] | None = None
    """Field paths (dotted) the topic's producers key by; ``None``: nothing is assumed."""
    columns: tuple[str, ...] | None = None
    """File sources: the column names of a headerless CSV (``None``: a header row)."""
    time_format: str | None = None
    """File sources: how event times are written (``cep.io.codecs.time_spec``: strptime
    directives or a named format); wins over ``event_time_unit``."""


@dataclass(frozen=True)
class SinkConfig:
    """One ``[sinks.NAME]``: a Kafka ``topic`` or a JSON-lines file ``path``."""

    name: str
    kind: str
    topic: str | None = None
    path: str | None = None


@dataclass(frozen=True)
class KafkaConfig:
    """``[kafka]``.  Durations in milliseconds.  ``changelog_topic`` defaults to
    ``<group_id>.changelog``."""

    bootstrap_servers: tuple[str, ...] = ("127.0.0.1:9092",)
    group_id: str = "cep"
    group_instance_id: str | None = None
    exactly_once: bool = True
    client_id: str = "cep"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_plain_username: str | None = None
    sasl_plain_password: Secret | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_password: Secret | None = None
    ssl_check_hostname: bool = True
    changelog_topic: str = ""
    max_event_bytes: int = 1 << 20
    max_partition_fetch_bytes: int = 8 << 20
    session_timeout_ms: int = 10_000
    transaction_timeout_ms: int = 60_000
    auto_offset_reset: str = "earliest"
    repartition: bool = True
    repartition_partitions: int | None = None
    repartition_retention_ms: int = 86_400_000

    @property
    def changelog(self) -> str:
        return self.changelog_topic or f"{self.group_id}.changelog"


@dataclass(frozen=True)
class StateConfig:
    """``[state]``: the per-key cap, where file mode checkpoints, and how often (ms / records)."""

    max_partial_matches_per_key: int = 10_000
    max_events_per_match: int = 1_000
    """The most events an alert's ``match`` shows; a longer match is emitted cut down, with
    ``"events_omitted"`` (``cep.operator.records.MAX_EVENTS_PER_MATCH``, the same default)."""
    checkpoint_dir: str | None = None
    checkpoint_interval_ms: int = 100
    checkpoint_records: int = 10_000
    max_future_skew_ms: int | None = 86_400_000
    """How far ahead of the stream's recent time (and, live, of the wall clock) an event time
    may be before it is dead-lettered as ``future_event_time``; ``None`` (``"off"``): no
    bound (see :mod:`cep.operator.time_guard`)."""


@dataclass(frozen=True)
class RulesConfig:
    """``[rules]``: rule files or directories and whether to reload them on change."""

    paths: tuple[str, ...] = ()
    reload: bool = True


@dataclass(frozen=True)
class MetricsConfig:
    """``[metrics]``: ``http`` is ``HOST:PORT`` or ``None`` (off)."""

    http: str | None = None


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


_SOURCE_KEYS: dict[str, type | tuple[type, ...]] = {
    "kind": str, "topic": str, "path": str, "format": str, "event_time": str,
    "event_time_unit": str, "max_out_of_orderness": (str, int), "idle_timeout": (str, int),
    "follow": bool, "partition_key": (list, str), "columns": (list, str), "time_format": str,
}
_SINK_KEYS: dict[str, type | tuple[type, ...]] = {"kind": str, "topic": str, "path": str}
_KAFKA_KEYS: dict[str, type | tuple[type, ...]] = {
    "bootstrap_servers": (str, list), "group_id": str, "group_instance_id": str,
    "exactly_once": bool, "client_id": str,
    "security_protocol": str, "sasl_mechanism": str, "sasl_plain_username": str,
    "sasl_plain_password": str, "ssl_cafile": str, "ssl_certfile": str, "ssl_keyfile": str,
    "ssl_password": str, "ssl_check_hostname": bool, "changelog_topic": str,
    "max_event_bytes": int, "max_partition_fetch_bytes": int, "session_timeout": (str, int),
    "transaction_timeout": (str, int),
    "auto_offset_reset": str, "checkpoint_interval": (str, int), "checkpoint_records": int,
    "repartition": bool, "repartition_partitions": int, "repartition_retention": (str, int),
}
_STATE_KEYS: dict[str, type | tuple[type, ...]] = {
    "max_partial_matches_per_key": int, "max_events_per_match": int, "checkpoint_dir": str,
    "checkpoint_interval": (str, int), "checkpoint_records": int,
    "max_future_skew": (str, int),
}
_RULES_KEYS: dict[str, type | tuple[type, ...]] = {"paths": (list, str), "reload": bool}
_METRICS_KEYS: dict[str, type | tuple[type, ...]] = {"http": str}
_TOP = ("sources", "sinks", "kafka", "state", "rules", "metrics")


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
    fmt = r.choice(table, d, "format", FORMATS, "json") or "json"
    if kind == "kafka" and fmt == "csv":
        r.error(table, "format", f"[{table}].format: csv is for files; use json or msgpack")
    if kind == "file" and fmt == "msgpack":
        r.error(table, "format", f"[{table}].format: msgpack is for Kafka; use json or csv")
    return SourceConfig(
        name=name, kind=kind, topic=d.get("topic"),
        path=r.path(d["path"]) if "path" in d else None,
        format=fmt, event_time=d.get("event_time", "ts"),
        event_time_unit=r.choice(table, d, "event_time_unit", TIME_UNITS, "ms") or "ms",
        max_out_of_orderness_ms=r.duration(table, d, "max_out_of_orderness", 0) or 0,
        idle_timeout_ms=r.duration(table, d, "idle_timeout", None),
        follow=d.get("follow", False),
        partition_key=_partition_key(r, table, d),
        columns=_columns(r, table, d, kind, fmt),
        time_format=_time_format(r, table, d, kind),
    )


def _columns(r: _Reader, table: str, d: dict[str, Any], kind: str, fmt: str
             ) -> tuple[str, ...] | None:
    """``columns``: the names of a headerless CSV file's columns (a list, or ``"a,b,c"``)."""
    raw = d.get("columns")
    if raw is None:
        return None
    items = raw.split(",") if isinstance(raw, str) else raw
    names = tuple(x.strip() for x in items if isinstance(x, str))
    if (len(names) != len(items) or not names or not all(names)
            or len(set(names)) != len(names)):
        r.error(table, "columns", f"[{table}].columns must list distinct column names")
        return None
    if kind != "file" or fmt != "csv":
        r.error(table, "columns", f"[{table}].columns is for CSV files (format = \"csv\")")
    return names


def _time_format(r: _Reader, table: str, d: dict[str, Any], kind: str) -> str | None:
    """``time_format``: strptime directives or a named format, checked here."""
    value = d.get("time_format")
    if value is None:
        return None
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


def _partition_key(r: _Reader, table: str, d: dict[str, Any]) -> tuple[str, ...] | None:
    """``partition_key``: a field path or a list of them (dotted, e.g. ``"user.name"``)."""
    raw = d.get("partition_key")
    if raw is None:
        return None
    items = [raw] if isinstance(raw, str) else raw
    if not items or not all(isinstance(x, str) and x.strip() for x in items):
        r.error(table, "partition_key", f"[{table}].partition_key must list field paths")
        return None
    return tuple(x.strip() for x in items)


def _sink(r: _Reader, name: str, raw: Any) -> SinkConfig | None:
    found = _endpoint(r, "sinks", name, raw, _SINK_KEYS)
    if found is None:
        return None
    _, d, kind = found
    return SinkConfig(name, kind, d.get("topic"), r.path(d["path"]) if "path" in d else None)


def _kafka(r: _Reader, raw: dict[str, Any]) -> tuple[KafkaConfig, dict[str, Any]]:
    d = r.table(raw, "kafka", _KAFKA_KEYS)
    servers = d.get("bootstrap_servers", "127.0.0.1:9092")
    if isinstance(servers, str):
        servers = [s.strip() for s in servers.split(",") if s.strip()]
    if not servers or not all(isinstance(s, str) for s in servers):
        r.error("kafka", "bootstrap_servers", "[kafka].bootstrap_servers must list HOST:PORT")
        servers = ["127.0.0.1:9092"]
    defaults = KafkaConfig()
    cfg = KafkaConfig(
        bootstrap_servers=tuple(servers),
        group_id=d.get("group_id", defaults.group_id),
        group_instance_id=d.get("group_instance_id"),
        exactly_once=d.get("exactly_once", True),
        client_id=d.get("client_id", defaults.client_id),
        security_protocol=r.choice("kafka", d, "security_protocol", SECURITY_PROTOCOLS,
                                   "PLAINTEXT") or "PLAINTEXT",
        sasl_mechanism=r.choice("kafka", d, "sasl_mechanism", SASL_MECHANISMS, None),
        sasl_plain_username=d.get("sasl_plain_username"),
        sasl_plain_password=r.secret("kafka", d, "sasl_plain_password"),
        ssl_cafile=r.path(d["ssl_cafile"]) if "ssl_cafile" in d else None,
        ssl_certfile=r.path(d["ssl_certfile"]) if "ssl_certfile" in d else None,
        ssl_keyfile=r.path(d["ssl_keyfile"]) if "ssl_keyfile" in d else None,
        ssl_password=r.secret("kafka", d, "ssl_password"),
        ssl_check_hostname=d.get("ssl_check_hostname", True),
        changelog_topic=d.get("changelog_topic", ""),
        max_event_bytes=d.get("max_event_bytes", defaults.max_event_bytes),
        max_partition_fetch_bytes=d.get("max_partition_fetch_bytes",
                                        defaults.max_partition_fetch_bytes),
        session_timeout_ms=r.duration("kafka", d, "session_timeout",
                                      defaults.session_timeout_ms) or defaults.session_timeout_ms,
        transaction_timeout_ms=r.duration("kafka", d, "transaction_timeout",
                                          defaults.transaction_timeout_ms)
        or defaults.transaction_timeout_ms,
        auto_offset_reset=r.choice("kafka", d, "auto_offset_reset", ("earliest", "latest"),
                                   "earliest") or "earliest",
        repartition=d.get("repartition", True),
        repartition_partitions=d.get("repartition_partitions"),
        repartition_retention_ms=r.duration("kafka", d, "repartition_retention",
                                            defaults.repartition_retention_ms)
        or defaults.repartition_retention_ms,
    )
    if cfg.security_protocol.startswith("SASL") and cfg.sasl_mechanism is None:
        r.error("kafka", "security_protocol",
                f"[kafka].security_protocol {cfg.security_protocol} needs sasl_mechanism")
    if cfg.max_event_bytes <= 0:
        r.error("kafka", "max_event_bytes", "[kafka].max_event_bytes must be positive")
    if cfg.max_partition_fetch_bytes <= 0:
        r.error("kafka", "max_partition_fetch_bytes",
                "[kafka].max_partition_fetch_bytes must be positive")
    if cfg.repartition_partitions is not None and cfg.repartition_partitions <= 0:
        r.error("kafka", "repartition_partitions",
                "[kafka].repartition_partitions must be positive")
    return cfg, d


def _state(r: _Reader, raw: dict[str, Any], kafka: dict[str, Any]) -> StateConfig:
    d = r.table(raw, "state", _STATE_KEYS)
    for key in ("checkpoint_interval", "checkpoint_records"):
        if key in d and key in kafka:
            r.error("kafka", key, f"{key} is set in both [state] and [kafka]; keep one")
    src: dict[str, Any] = {
        k: kafka[k] for k in ("checkpoint_interval", "checkpoint_records") if k in kafka}
    src.update(d)
    table = "state" if "checkpoint_interval" in d else "kafka"
    interval = r.duration(table, src, "checkpoint_interval", 100)
    records = src.get("checkpoint_records", 10_000)
    cap = d.get("max_partial_matches_per_key", 10_000)
    if cap <= 0:
        r.error("state", "max_partial_matches_per_key",
                "[state].max_partial_matches_per_key must be positive")
    if records <= 0:
        r.error(table, "checkpoint_records", "checkpoint_records must be positive")
    per_match = d.get("max_events_per_match", 1_000)
    if per_match <= 0:
        r.error("state", "max_events_per_match", "[state].max_events_per_match must be positive")
    skew = (None if d.get("max_future_skew") == "off"
            else r.duration("state", d, "max_future_skew", 86_400_000))
    return StateConfig(
        max_partial_matches_per_key=cap,
        max_events_per_match=per_match,
        checkpoint_dir=r.path(d["checkpoint_dir"]) if "checkpoint_dir" in d else None,
        checkpoint_interval_ms=interval if interval else 100,
        checkpoint_records=records,
        max_future_skew_ms=skew,
    )


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
    paths = rd.get("paths", [])
    if isinstance(paths, str):
        paths = [paths]
    if not all(isinstance(p, str) for p in paths):
        r.error("rules", "paths", "[rules].paths must be a list of strings")
        paths = []
    md = r.table(_table_of(r, doc, "metrics"), "metrics", _METRICS_KEYS)
    if r.errors:
        raise ConfigError("\n".join(m for _, m in sorted(r.errors, key=lambda e: e[0])))
    return Config(
        sources=sources, sinks=sinks, kafka=kafka, state=state,
        rules=RulesConfig(tuple(r.path(p) for p in paths), rd.get("reload", True)),
        metrics=MetricsConfig(md.get("http")), path=file,
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


def load_config(path: str | Path) -> Config:
    """Read and parse a ``cep.toml``.  Raises :class:`ConfigError` (unreadable file or any
    invalid setting)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {p}: {exc.strerror or exc}") from None
    return parse_config(text, str(p))
